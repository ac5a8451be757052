"""Exact-output tests of brcd_lib.analysis.redundancy: mean |correlation| by hand (also on a frame
of object dtype), the exact sentence of describe_mean_abs_correlation, and the input errors of
offset_positive_rate naming the argument at fault."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from brcd_lib.analysis import redundancy

torch.set_num_threads(1)

# bit 0 = [1, 1, -1, -1], bit 1 = [1, -1, 1, -1], bit 2 = [1, 1, 1, -1], bit 3 constant +1.
# corr(0, 1) = 0 (E[b0 b1] = 0, both means 0).
# bit 2: mean 0.5, variance 1 - 0.25 = 0.75.
# corr(0, 2) = E[b0 b2] / sqrt(0.75) = ((1 + 1 - 1 + 1) / 4) / sqrt(0.75) = 0.5 / sqrt(0.75) = 1/sqrt(3)
# corr(1, 2) = ((1 - 1 + 1 + 1) / 4) / sqrt(0.75) = 1/sqrt(3)
# bit 3 is constant: its pairs are undefined and left out.
# mean over the 6 ordered off-diagonal pairs of bits 0-2: (0 + 0 + 4/sqrt(3)) / 6 = 2 / (3 sqrt(3))
CODES = np.array([[1, 1, 1, 1], [1, -1, 1, 1], [-1, 1, 1, 1], [-1, -1, -1, 1]], dtype=float)
MEAN_ABS = 2 / (3 * math.sqrt(3))  # 0.3849...


def test_mean_abs_correlation_by_hand_and_against_corrcoef():
    corr = redundancy.bit_correlation(CODES)
    assert redundancy.mean_abs_correlation(corr) == pytest.approx(MEAN_ABS, abs=1e-12)
    ref = np.abs(np.corrcoef(CODES[:, :3].T))
    naive = (ref.sum() - np.trace(ref)) / 6
    assert MEAN_ABS == pytest.approx(naive, abs=1e-12)


def test_mean_abs_correlation_of_an_object_frame_is_the_same_number():
    """A correlation frame of object dtype (e.g. after ``astype(object)`` or a mixed-type round
    trip) is read as floats: its NaN entries are still left out, no TypeError from isnan."""
    corr = redundancy.bit_correlation(CODES).astype(object)
    assert corr.to_numpy().dtype == object
    assert redundancy.mean_abs_correlation(corr) == pytest.approx(MEAN_ABS, abs=1e-12)
    # a plain nested list with None for an undefined pair: None is NaN, left out
    # pairs: |0.5| twice, |-0.25| twice -> (0.5 + 0.5 + 0.25 + 0.25) / 4 = 0.375
    rows = [[1.0, 0.5, None], [0.5, 1.0, -0.25], [None, -0.25, 1.0]]
    assert redundancy.mean_abs_correlation(rows) == pytest.approx(0.375)


def test_describe_mean_abs_correlation_exact_sentences():
    corr = redundancy.bit_correlation(CODES)
    assert redundancy.describe_mean_abs_correlation(corr) == (
        "mean |correlation| between bits 0.385")  # 2 / (3 sqrt 3) = 0.3849
    collapsed = redundancy.bit_correlation(np.ones((3, 2)))
    assert redundancy.describe_mean_abs_correlation(collapsed) == (
        "mean |correlation| between bits undefined (fewer than two bits vary over the codes)")


# ------------------------------------------------------------------ offset_positive_rate errors
CLEAN = np.array([[1, 1], [-1, -1], [1, -1]], dtype=float)
CENTROIDS = np.array([[1, 1], [-1, -1]], dtype=float)
LABELS = np.array([0, 1, 0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        # clean codes of the wrong rank / with a 0: named clean_codes (not "codes")
        ({"clean_codes": np.array([1.0, -1.0])},
         r"^clean_codes must be a non-empty \(n, L\) array; got shape \(2,\)$"),
        ({"clean_codes": np.array([[1.0, 0.0]])}, r"^clean_codes must contain only \+1 and -1"),
        # labels of the wrong length: named clean_labels (not "clusters")
        ({"clean_labels": np.array([0, 1])},
         r"^clean_labels must be \(n,\) with n = 3; got shape \(2,\)$"),
        ({"clean_labels": np.array([0.5, 1.0, 0.0])},
         r"^clean_labels must hold integer cluster indices$"),
        # centroids of the wrong width (2-D) and of the wrong rank (1-D)
        ({"centroids": np.zeros((2, 3))}, r"^centroids must be \(K, 2\); got shape \(2, 3\)$"),
        ({"centroids": np.zeros(2)}, r"^centroids must be \(K, 2\); got shape \(2,\)$"),
        # ragged centroids cannot be made an array at all
        ({"centroids": [[1.0, 1.0], [1.0]]}, r"^centroids must be a tensor or array$"),
    ],
)
def test_offset_positive_rate_names_the_bad_argument(kwargs, match):
    args = {"clean_codes": CLEAN, "view_codes": CLEAN, "centroids": CENTROIDS,
            "clean_labels": LABELS, **kwargs}
    with pytest.raises(ValueError, match=match):
        redundancy.offset_positive_rate(**args)


def test_offset_positive_rate_takes_integer_centroids():
    """Integer centroids (e.g. sign codes as int) give the float answer: view 1 of the
    by-hand case moves image 1 to cluster 0 -> 1 of 3."""
    view = np.array([[1, 1], [1, 1], [1, -1]], dtype=float)
    rate = redundancy.offset_positive_rate(CLEAN, view, CENTROIDS.astype(np.int64), LABELS)
    assert rate == pytest.approx(1 / 3)
    assert redundancy.offset_positive_rate(
        torch.from_numpy(CLEAN), torch.from_numpy(view), torch.from_numpy(CENTROIDS),
        torch.from_numpy(LABELS)) == pytest.approx(1 / 3)

"""Exact-value tests for brcd_lib.analysis.redundancy (kills mutation-testing survivors).

Functions are looked up on the module at call time so that an in-process substitution is seen.
"""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import brcd_lib.analysis.redundancy as red

NAN = float("nan")


def _raises(msg: str):
    return pytest.raises(ValueError, match="^" + re.escape(msg) + "$")


def _same(got, expected):
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape
    assert all(
        (math.isnan(e) and math.isnan(g)) or g == e for g, e in zip(got.ravel(), expected.ravel())
    ), (got, expected)


# ---------------------------------------------------------------- _codes


def test_codes_messages_default_name():
    with _raises("codes must contain only +1 and -1 (binarise with sign, sign(0) = +1)"):
        red.bit_correlation(np.zeros((2, 2)))
    with _raises("codes must be a non-empty (n, L) array; got shape (0, 3)"):
        red.bit_correlation(np.zeros((0, 3)))
    with _raises("codes must be a non-empty (n, L) array; got shape (2, 0)"):
        red.bit_balance(np.zeros((2, 0)))
    with _raises("codes must be a tensor or array"):
        red.bit_correlation([[1, -1], [1]])


def test_one_bit_codes_are_accepted():
    df = red.bit_balance(np.array([[1], [-1], [1], [1]]))
    assert df["mean"].tolist() == [0.5]
    assert df["p_plus"].tolist() == [0.75]


# ---------------------------------------------------------------- _labels


def test_labels_messages_default_name():
    codes = np.array([[1, -1], [-1, 1]])
    with _raises("clusters must be (n,) with n = 2; got shape (1,)"):
        red.cluster_bit_means(codes, [0])
    with _raises("clusters must hold integer cluster indices; got dtype bool"):
        red.cluster_bit_means(codes, np.array([True, False]))
    with _raises("clusters must hold integer cluster indices"):
        red.cluster_bit_means(codes, np.array([0.0, 0.5]))
    with _raises("clusters must be a tensor or array"):
        red.cluster_bit_means(codes, [[0], [1, 2]])


def test_integer_valued_float_labels_accepted():
    df = red.cluster_bit_means(np.array([[1, -1], [-1, -1], [1, 1]]), np.array([1.0, 0.0, 1.0]))
    assert df["cluster"].tolist() == [0, 0, 1, 1]
    assert df["bit"].tolist() == [0, 1, 0, 1]
    assert df["mean"].tolist() == [-1.0, -1.0, 1.0, 0.0]


def test_huge_int_labels_stay_distinct():
    # 2**53 and 2**53 + 1 are distinct int64 labels but equal as float64
    big = 2**53
    df = red.cluster_bit_means(np.array([[1, 1], [-1, 1]]), np.array([big, big + 1], dtype=np.int64))
    assert df["cluster"].tolist() == [big, big, big + 1, big + 1]
    assert df["mean"].tolist() == [1.0, 1.0, -1.0, 1.0]


# ---------------------------------------------------------------- _views / bit_flip_rate


def test_views_messages():
    clean = np.array([[1, -1], [-1, 1]])
    with _raises("view_codes must contain only +1 and -1"):
        red.bit_flip_rate(clean, np.array([[1, 0], [-1, 1]]))
    with _raises(
        "view_codes must be (n, L) = (2, 2) or (V, n, L) with V >= 1 views; got shape (0, 2, 2)"
    ):
        red.bit_flip_rate(clean, np.zeros((0, 2, 2)))
    with _raises("view_codes must be a tensor or array"):
        red.bit_flip_rate(clean, [[1, -1], [1]])


def test_flip_rate_clean_codes_name():
    with _raises("clean_codes must contain only +1 and -1 (binarise with sign, sign(0) = +1)"):
        red.bit_flip_rate(np.array([[1, 0]]), np.array([[1, 1]]))


def test_flip_rate_counts():
    clean = np.array([[1, -1], [-1, 1]])
    views = np.array([[[1, 1], [-1, 1]], [[-1, 1], [-1, 1]]])  # bit0: 1 of 4 flipped, bit1: 2 of 4
    df = red.bit_flip_rate(clean, views)
    assert df["bit"].tolist() == [0, 1]
    assert df["flip_rate"].tolist() == [0.25, 0.5]


# ---------------------------------------------------------------- bit_correlation


def test_correlation_diagonal_exactly_one_n3():
    # n = 3 makes the column means inexact; the diagonal of a varying bit is still exactly 1
    for codes in ([[-1, -1], [-1, -1], [-1, 1]], [[-1, -1], [-1, 1], [-1, -1]]):
        df = red.bit_correlation(np.array(codes))
        _same(df.to_numpy(), [[NAN, NAN], [NAN, 1.0]])
    df = red.bit_correlation(np.array([[-1, -1], [-1, -1], [1, -1]]))
    _same(df.to_numpy(), [[1.0, NAN], [NAN, NAN]])


def test_correlation_clipped_to_unit_interval():
    # raw ratios are +-1.0000000000000002 here; they must come back as exactly +-1
    col = np.array([1, -1, -1])
    df = red.bit_correlation(np.stack([col, -col, col], axis=1))
    _same(df.to_numpy(), [[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, -1.0, 1.0]])


def test_correlation_constant_bit_nan_without_warning():
    codes = np.array([[1, 1, -1], [1, -1, 1], [1, 1, 1], [1, -1, -1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = red.bit_correlation(codes)
    _same(df.to_numpy(), [[NAN, NAN, NAN], [NAN, 1.0, 0.0], [NAN, 0.0, 1.0]])


def test_correlation_index_and_columns_named_bit():
    df = red.bit_correlation(np.array([[1, -1, 1], [-1, 1, 1], [1, 1, -1], [-1, -1, -1]]))
    assert df.index.name == "bit"
    assert df.columns.name == "bit"
    assert df.index.tolist() == [0, 1, 2]
    assert df.columns.tolist() == [0, 1, 2]
    _same(df.to_numpy(), [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------- redundancy_vs_delta


def test_redundancy_empty_deltas_message():
    with _raises("deltas is empty; pass the margins to scan, e.g. np.linspace(0, 1, 11)"):
        red.redundancy_vs_delta(np.array([[1, -1]]), [0], [])


def test_redundancy_complex_deltas_rejected():
    with pytest.raises(TypeError):
        red.redundancy_vs_delta(np.array([[1, -1]]), [0], [0.5 + 1j])


def test_redundancy_counts():
    codes = np.array([[1, 1, -1], [1, -1, -1], [-1, 1, 1], [-1, 1, -1]])
    df = red.redundancy_vs_delta(codes, np.array([1, 1, 0, 0]), [0, 0.5])
    assert df.columns.tolist() == ["cluster", "delta", "n_redundant_bits", "n_kept_bits"]
    assert df["cluster"].tolist() == [0, 0, 1, 1]
    assert df["delta"].tolist() == [0.0, 0.5, 0.0, 0.5]
    # cluster 0 means (-1, 1, 0); cluster 1 means (1, 0, -1)
    assert df["n_kept_bits"].tolist() == [2, 2, 2, 2]
    assert df["n_redundant_bits"].tolist() == [1, 1, 1, 1]

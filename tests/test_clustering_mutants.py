"""Exact-value tests for brcd_lib.distill.clustering (kills mutation-testing survivors).

Functions are looked up on the module at call time so that an in-process substitution is seen.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

import brcd_lib.distill.clustering as clu


def _raises(msg: str):
    return pytest.raises(ValueError, match="^" + re.escape(msg) + "$")


# ---------------------------------------------------------------- _as_matrix (via public callers)


def test_empty_codes_message_names_codes():
    with _raises("codes is empty (shape (0, 2)); pass at least one code"):
        clu.kmeans_codes(np.zeros((0, 2)), n_clusters=1, seed=0)
    with _raises("codes is empty (shape (2, 0)); pass at least one code"):
        clu.kmeans_codes(np.zeros((2, 0)), n_clusters=1, seed=0)


def test_one_bit_codes_are_accepted():
    res = clu.kmeans_codes(np.array([[1.0], [-1.0], [1.0]]), n_clusters=2, seed=0)
    assert res.inertia == 0.0
    assert res.labels[0] == res.labels[2] != res.labels[1]
    assert sorted(res.centroids[:, 0].tolist()) == [-1.0, 1.0]


def test_missing_value_none_is_reported_as_nan():
    # None in a nested list becomes NaN under the float64 conversion and is rejected as such
    with _raises("codes contains NaN or infinite values; encode the images again"):
        clu.kmeans_codes([[1.0, None], [1.0, -1.0]], n_clusters=1, seed=0)


# ---------------------------------------------------------------- _check_k


def test_bool_k_rejected_with_full_message():
    codes = np.array([[1.0, -1.0], [-1.0, 1.0]])
    with _raises("n_clusters must be an int; got True"):
        clu.kmeans_codes(codes, n_clusters=True, seed=0)
    with _raises("n_clusters must be >= 1; got 0"):
        clu.kmeans_codes(codes, n_clusters=0, seed=0)


# ---------------------------------------------------------------- kmeans_codes


def test_n_init_max_iter_message_shows_defaults():
    codes = np.array([[1.0, -1.0], [-1.0, 1.0]])
    with _raises("n_init and max_iter must be >= 1; got n_init=0, max_iter=300"):
        clu.kmeans_codes(codes, n_clusters=1, seed=0, n_init=0)
    with _raises("n_init and max_iter must be >= 1; got n_init=10, max_iter=0"):
        clu.kmeans_codes(codes, n_clusters=1, seed=0, max_iter=0)


def _data():
    rng = np.random.default_rng(1)
    x = np.sign(rng.standard_normal((40, 6)))
    x[x == 0] = 1
    return x


def _ref(x, seed, n_init, max_iter):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return KMeans(
            n_clusters=4, init="k-means++", n_init=n_init, max_iter=max_iter, random_state=seed
        ).fit(x)


def test_kmeans_matches_sklearn_reference_with_restarts():
    x = _data()
    ref = _ref(x, 1, 10, 300)
    res = clu.kmeans_codes(x, n_clusters=4, seed=1, n_init=10)
    assert res.inertia == float(ref.inertia_)
    np.testing.assert_array_equal(res.labels, ref.labels_)
    assert res.labels.dtype == np.int64
    assert res.centroids.dtype == np.float64


def test_kmeans_honours_max_iter_one():
    x = _data()
    ref = _ref(x, 1, 1, 1)
    res = clu.kmeans_codes(x, n_clusters=4, seed=1, n_init=1, max_iter=1)
    assert res.inertia == float(ref.inertia_)
    np.testing.assert_array_equal(res.labels, ref.labels_)


# ---------------------------------------------------------------- nearest_centroid


def test_nearest_shape_messages():
    with _raises("codes must be (n, L) and centroids (K, L); got (3,) and (2, 3)"):
        clu.nearest_centroid(torch.zeros(3), torch.zeros(2, 3))
    with _raises("codes must be (n, L) and centroids (K, L); got (1, 3) and (3,)"):
        clu.nearest_centroid(torch.zeros(1, 3), torch.zeros(3))
    with _raises(
        "codes have L=3 bits but centroids have 2; use the centroids of the same code length"
    ):
        clu.nearest_centroid(torch.zeros(1, 3), torch.zeros(2, 2))
    with _raises("centroids is empty; run k-means first"):
        clu.nearest_centroid(torch.zeros(1, 3), torch.zeros(0, 3))


def test_nearest_zero_bits_all_tie_to_centroid_zero():
    out = clu.nearest_centroid(np.zeros((2, 0)), np.zeros((3, 0)))
    assert out.tolist() == [0, 0]


def test_nearest_float64_not_rounded_to_float32():
    # 1 + 2**-30 is exact in float64 but rounds to 1.0 in float32 (which would tie -> index 0)
    c = torch.tensor([[1.0 + 2.0**-30]], dtype=torch.float64)
    mu = torch.tensor([[1.0], [1.0 + 2.0**-30]], dtype=torch.float64)
    assert clu.nearest_centroid(c, mu).tolist() == [1]


def test_nearest_uint8_inputs_do_not_wrap():
    # in uint8, (0 - 16)**2 = 57600 wraps to 0; as floats 256 > 1 so centroid 1 is nearest
    c = torch.tensor([[0]], dtype=torch.uint8)
    mu = torch.tensor([[16], [1]], dtype=torch.uint8)
    assert clu.nearest_centroid(c, mu).tolist() == [1]


def test_nearest_bool_inputs():
    c = torch.tensor([[True, False], [False, False]])
    mu_bool = torch.tensor([[False, False], [True, False]])
    assert clu.nearest_centroid(c, mu_bool).tolist() == [1, 0]
    mu_float = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert clu.nearest_centroid(c, mu_float).tolist() == [1, 0]


def test_nearest_complex_inputs_use_real_part():
    # complex promotes to a non-floating dtype, so both sides are cast to float32 (real part)
    mu = torch.tensor([[0.0 + 5.0j], [3.0 + 0.0j]], dtype=torch.complex64)
    c = torch.tensor([[2.9, 0.0]], dtype=torch.float32)[:, :1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = clu.nearest_centroid(c, mu)
        out2 = clu.nearest_centroid(mu, torch.tensor([[0.0], [3.0]]))
    assert out.tolist() == [1]
    assert out2.tolist() == [0, 1]
    assert out.dtype == torch.long

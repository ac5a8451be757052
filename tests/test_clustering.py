"""Tests of k-means on codes, nearest centroid, elbow curve and the k-means cache."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brcd_lib.distill import clustering
from brcd_lib.distill.clustering import (
    KMeansResult,
    cached_kmeans,
    elbow_curve,
    kmeans_cache_path,
    kmeans_codes,
    nearest_centroid,
)

torch.set_num_threads(1)

# Two obvious groups of 4-bit codes.
GROUP_A = [[1, 1, 1, 1], [1, 1, 1, -1], [1, 1, 1, 1]]
GROUP_B = [[-1, -1, -1, -1], [-1, -1, 1, -1]]
CODES = np.array(GROUP_A + GROUP_B, dtype=np.float64)


def _same_partition(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


def test_kmeans_recovers_groups_and_means():
    res = kmeans_codes(torch.from_numpy(CODES), n_clusters=2, seed=0, n_init=3)
    assert isinstance(res, KMeansResult) and res.n_clusters == 2
    assert _same_partition(res.labels, [0, 0, 0, 1, 1])
    mean_a = np.array(GROUP_A, dtype=float).mean(0)
    mean_b = np.array(GROUP_B, dtype=float).mean(0)
    ca = res.centroids[res.labels[0]]
    cb = res.centroids[res.labels[3]]
    np.testing.assert_allclose(ca, mean_a, atol=1e-12)
    np.testing.assert_allclose(cb, mean_b, atol=1e-12)
    # inertia by hand: squared distances to the group means
    expected = sum(((np.array(x) - mean_a) ** 2).sum() for x in GROUP_A) + sum(
        ((np.array(x) - mean_b) ** 2).sum() for x in GROUP_B
    )
    assert res.inertia == pytest.approx(expected)


def test_kmeans_is_seeded():
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 1.0], size=(60, 8))
    a = kmeans_codes(x, n_clusters=4, seed=7, n_init=2)
    b = kmeans_codes(x, n_clusters=4, seed=7, n_init=2)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centroids, b.centroids)


def test_k_larger_than_n_names_both_numbers():
    with pytest.raises(ValueError, match=r"n_clusters=6.*n=5"):
        kmeans_codes(CODES, n_clusters=6, seed=0)


def test_k_larger_than_distinct_codes():
    with pytest.raises(ValueError, match=r"distinct codes \(4"):
        kmeans_codes(CODES, n_clusters=5, seed=0)


def test_bad_codes():
    with pytest.raises(ValueError, match="2-D"):
        kmeans_codes(np.ones(4), n_clusters=1, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        kmeans_codes(np.array([[1.0, np.nan]]), n_clusters=1, seed=0)


def test_nearest_centroid_by_hand_and_ties():
    codes = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    centroids = torch.tensor([[1.0, 0.0], [0.0, -1.0], [0.9, 0.9]])
    # row 0: d = [1, 5, 0.02] -> 2; row 1: d = [5, 1, 7.22] -> 1; row 2: d = [1, 1, 3.62] -> tie -> 0
    got = nearest_centroid(codes, centroids)
    assert got.dtype == torch.long
    assert got.tolist() == [2, 1, 0]
    assert nearest_centroid(codes.numpy(), centroids.numpy()).tolist() == [2, 1, 0]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_nearest_centroid_matches_loop(n, k, L, seed):
    rng = np.random.default_rng(seed)
    codes = rng.choice([-1.0, 1.0], size=(n, L))
    mu = rng.normal(size=(k, L))
    expected = []
    for i in range(n):
        d = [sum((codes[i, j] - mu[c, j]) ** 2 for j in range(L)) for c in range(k)]
        expected.append(min(range(k), key=lambda c: (d[c], c)))
    assert nearest_centroid(torch.from_numpy(codes), torch.from_numpy(mu)).tolist() == expected


def test_nearest_centroid_chunks(monkeypatch):
    monkeypatch.setattr(clustering, "_NEAREST_CHUNK_ELEMENTS", 8)
    rng = np.random.default_rng(1)
    codes = torch.from_numpy(rng.choice([-1.0, 1.0], size=(23, 4)))
    mu = torch.from_numpy(rng.normal(size=(3, 4)))
    d = ((codes[:, None] - mu[None]) ** 2).sum(-1)
    assert nearest_centroid(codes, mu).tolist() == d.argmin(1).tolist()


def test_nearest_centroid_length_mismatch():
    with pytest.raises(ValueError, match="L=2"):
        nearest_centroid(torch.ones(3, 2), torch.ones(2, 3))


def test_elbow_curve():
    df = elbow_curve(CODES, [1, 2, 3], seed=0, n_init=2)
    assert list(df.columns) == ["k", "inertia", "silhouette"]
    assert df["k"].tolist() == [1, 2, 3]
    total = ((CODES - CODES.mean(0)) ** 2).sum()
    assert df["inertia"].iloc[0] == pytest.approx(total)
    assert np.isnan(df["silhouette"].iloc[0])
    assert -1 <= df["silhouette"].iloc[1] <= 1
    assert df["inertia"].iloc[1] < df["inertia"].iloc[0]


def test_elbow_curve_sampled_silhouette_is_seeded():
    rng = np.random.default_rng(2)
    x = rng.choice([-1.0, 1.0], size=(80, 6))
    a = elbow_curve(x, [3], seed=1, n_init=1, silhouette_sample_size=30)
    b = elbow_curve(x, [3], seed=1, n_init=1, silhouette_sample_size=30)
    assert a["silhouette"].iloc[0] == b["silhouette"].iloc[0]


def _forbid_kmeans(monkeypatch):
    class Boom:
        def __init__(self, *a, **k):
            raise AssertionError("KMeans must not run: the cache should have been used")

    monkeypatch.setattr(clustering, "KMeans", Boom)


def test_cache_roundtrip_does_not_rerun(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    x = rng.choice([-1.0, 1.0], size=(40, 6))
    kw = dict(n_clusters=3, seed=5, n_init=2, cache_dir=tmp_path, cache_key="teacher-a")
    first = cached_kmeans(x, **kw)
    path = kmeans_cache_path(x, **kw)
    assert path.exists() and path.parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary leftovers
    _forbid_kmeans(monkeypatch)
    second = cached_kmeans(torch.from_numpy(x), **kw)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.centroids, second.centroids)
    assert first.inertia == second.inertia


def test_cache_key_covers_arguments(tmp_path):
    x = np.random.default_rng(4).choice([-1.0, 1.0], size=(30, 5))
    base = dict(n_clusters=3, seed=5, n_init=2, cache_dir=tmp_path, cache_key="k")
    p0 = kmeans_cache_path(x, **base)
    others = [
        kmeans_cache_path(x, **{**base, "n_clusters": 2}),
        kmeans_cache_path(x, **{**base, "seed": 6}),
        kmeans_cache_path(x, **{**base, "n_init": 3}),
        kmeans_cache_path(x, **{**base, "max_iter": 7}),
        kmeans_cache_path(x, **{**base, "cache_key": "other"}),
        kmeans_cache_path(-x, **base),
    ]
    assert len({p0, *others}) == 1 + len(others)


def test_a_cache_of_other_k_means_arguments_is_not_reused(tmp_path, monkeypatch):
    """Behaviour: each argument of k-means is part of the cache entry. A cached result with
    max_iter=1 (one Lloyd step) is not what a request with max_iter=300 gets: k-means runs again
    with max_iter=300; the same request again is served from the cache."""
    x = np.random.default_rng(7).choice([-1.0, 1.0], size=(60, 8))
    kw = dict(n_clusters=4, seed=5, n_init=1, cache_dir=tmp_path, cache_key="k")
    seen = []
    real = clustering.kmeans_codes

    def counting(codes, **args):
        seen.append(args)
        return real(codes, **args)

    monkeypatch.setattr(clustering, "kmeans_codes", counting)
    cached_kmeans(x, max_iter=1, **kw)
    assert [a["max_iter"] for a in seen] == [1]
    full = cached_kmeans(x, max_iter=300, **kw)
    assert [a["max_iter"] for a in seen] == [1, 300]  # not the max_iter=1 entry
    for change in ({"seed": 6}, {"n_init": 2}, {"n_clusters": 3}, {"cache_key": "other"}):
        cached_kmeans(x, max_iter=300, **{**kw, **change})
    assert len(seen) == 6 and len(list(tmp_path.glob("kmeans_*.npz"))) == 6
    again = cached_kmeans(x, max_iter=300, **kw)
    assert len(seen) == 6  # the same request: from the cache
    np.testing.assert_array_equal(again.labels, full.labels)


def test_corrupt_cache_is_rebuilt(tmp_path):
    x = np.random.default_rng(5).choice([-1.0, 1.0], size=(30, 5))
    kw = dict(n_clusters=3, seed=5, n_init=2, cache_dir=tmp_path, cache_key="k")
    ref = cached_kmeans(x, **kw)
    path = kmeans_cache_path(x, **kw)
    path.write_bytes(b"not an npz")
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        again = cached_kmeans(x, **kw)
    np.testing.assert_array_equal(ref.labels, again.labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached_kmeans(x, **kw)  # the rebuilt file loads cleanly


def test_mismatched_cache_is_rebuilt(tmp_path):
    x = np.random.default_rng(6).choice([-1.0, 1.0], size=(30, 5))
    kw = dict(n_clusters=3, seed=5, n_init=2, cache_dir=tmp_path, cache_key="k")
    ref = cached_kmeans(x, **kw)
    path = kmeans_cache_path(x, **kw)
    np.savez(path, labels=np.zeros(7, dtype=np.int64), centroids=np.zeros((3, 5)),
             inertia=np.float64(0.0), digest=np.array("something else"))
    with pytest.warns(RuntimeWarning, match="does not match"):
        again = cached_kmeans(x, **kw)
    np.testing.assert_array_equal(ref.labels, again.labels)


def test_cache_rejects_too_many_clusters(tmp_path):
    with pytest.raises(ValueError, match=r"n_clusters=9.*n=5"):
        cached_kmeans(CODES, n_clusters=9, seed=0, n_init=1, cache_dir=tmp_path, cache_key="k")

"""Exact behaviour of the k-means cache (``cached_kmeans``): the file name is the SHA-256 of the
documented fields, computed here by hand; a stored file is validated (digest, shapes, label range,
no pickles) and reloaded with the documented dtypes; a rejected file is rebuilt with a warning
whose full text names the reason and that points at the caller of ``cached_kmeans``."""
from __future__ import annotations

import hashlib
import sys
import warnings

import numpy as np
import pytest

from brcd_lib.distill import clustering
from brcd_lib.distill.clustering import cached_kmeans, kmeans_cache_path

# Two obvious groups of 4-bit codes (5 rows): K = 2 gives rows 0-2 and rows 3-4.
CODES = np.array([[1, 1, 1, 1], [1, 1, 1, -1], [1, 1, 1, 1], [-1, -1, -1, -1], [-1, -1, 1, -1]],
                 dtype=np.float64)


def _codes_sha(arr: np.ndarray) -> str:
    """SHA-256 of repr(shape) then the float64 (little-endian, C order) bytes, as documented."""
    arr = np.asarray(arr)
    h = hashlib.sha256()
    h.update(repr(tuple(int(s) for s in arr.shape)).encode("ascii"))
    h.update(np.ascontiguousarray(arr.astype("<f8")).tobytes())
    return h.hexdigest()


def _digest(cache_key, codes, n_clusters, seed, n_init, max_iter) -> str:
    """The documented key: JSON (sorted keys, default separators) of the six fields, hashed."""
    payload = (
        '{"cache_key": "%s", "codes_sha256": "%s", "max_iter": %d, "n_clusters": %d, '
        '"n_init": %d, "seed": %d}' % (cache_key, _codes_sha(codes), max_iter, n_clusters, n_init,
                                       seed)
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def test_codes_sha_by_hand():
    # repr((5, 4)) is "(5, 4)": the shape comes first, then 20 float64 values.
    want = hashlib.sha256(b"(5, 4)" + CODES.astype("<f8").tobytes()).hexdigest()
    assert _codes_sha(CODES) == want
    assert clustering._codes_digest(CODES) == want


def test_codes_sha_covers_the_shape():
    # the same 20 values as (4, 5): only the shape text differs, so the digest differs
    flat = CODES.reshape(4, 5)
    want = hashlib.sha256(b"(4, 5)" + CODES.astype("<f8").tobytes()).hexdigest()
    assert clustering._codes_digest(flat) == want != clustering._codes_digest(CODES)


@pytest.mark.parametrize("cache_key,n_clusters,seed,n_init,max_iter", [
    ("teacher-a", 2, 5, 3, 300),
    ("other", 1, 0, 1, 7),
    ("k", 2, 11, 2, 1),
])
def test_cache_path_is_the_sha256_of_the_documented_fields(tmp_path, cache_key, n_clusters, seed,
                                                           n_init, max_iter):
    digest = _digest(cache_key, CODES, n_clusters, seed, n_init, max_iter)
    want = tmp_path / f"kmeans_{digest}.npz"
    kw = dict(n_clusters=n_clusters, seed=seed, n_init=n_init, cache_dir=tmp_path,
              cache_key=cache_key, max_iter=max_iter)
    assert kmeans_cache_path(CODES, **kw) == want
    cached_kmeans(CODES, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == [want.name]
    with np.load(want, allow_pickle=False) as z:
        assert str(z["digest"]) == digest
        assert z["digest"].dtype.kind == "U"


def test_default_n_init_is_10_in_the_file_name(tmp_path):
    cached_kmeans(CODES, n_clusters=2, seed=5, cache_dir=tmp_path, cache_key="d")
    want = f"kmeans_{_digest('d', CODES, 2, 5, 10, 300)}.npz"
    assert [p.name for p in tmp_path.iterdir()] == [want]


def test_k_means_runs_with_the_requested_n_init(tmp_path, monkeypatch):
    seen = []
    real = clustering.KMeans

    class Recording(real):
        def __init__(self, **kwargs):
            seen.append(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(clustering, "KMeans", Recording)
    cached_kmeans(CODES, n_clusters=2, seed=5, n_init=3, cache_dir=tmp_path, cache_key="n")
    cached_kmeans(CODES, n_clusters=2, seed=5, cache_dir=tmp_path, cache_key="n")
    assert seen == [
        dict(n_clusters=2, init="k-means++", n_init=3, max_iter=300, random_state=5),
        dict(n_clusters=2, init="k-means++", n_init=10, max_iter=300, random_state=5),
    ]


def _write(path, *, labels, centroids, inertia=np.float64(1.5), digest):
    np.savez(path, labels=labels, centroids=centroids, inertia=inertia, digest=digest)


KW = dict(n_clusters=2, seed=5, n_init=1, cache_key="v", max_iter=300)


def _path(tmp_path):
    return tmp_path / f"kmeans_{_digest('v', CODES, 2, 5, 1, 300)}.npz"


def test_a_valid_file_is_loaded_with_the_documented_dtypes(tmp_path, monkeypatch):
    path = _path(tmp_path)
    labels = np.array([1, 1, 1, 0, 0], dtype=np.int32)
    centroids = np.array([[-1, -1, 0, -1], [1, 1, 1, 1 / 3]], dtype=np.float32)
    _write(path, labels=labels, centroids=centroids, inertia=np.float32(2.5),
           digest=np.array(_digest("v", CODES, 2, 5, 1, 300)))
    monkeypatch.setattr(clustering, "KMeans", None)  # must not run
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = cached_kmeans(CODES, cache_dir=tmp_path, **KW)
    assert got.labels.dtype == np.int64 and got.labels.tolist() == [1, 1, 1, 0, 0]
    assert got.centroids.dtype == np.float64
    assert got.centroids.tolist() == [[-1.0, -1.0, 0.0, -1.0], [1.0, 1.0, 1.0, float(np.float32(1 / 3))]]
    assert type(got.inertia) is float and got.inertia == 2.5


def _rebuilt(tmp_path):
    """cached_kmeans over the prepared file: one RuntimeWarning, then the file is rewritten."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = cached_kmeans(CODES, cache_dir=tmp_path, **KW)
    assert [w.category for w in caught] == [RuntimeWarning]
    assert len(set(got.labels[:3].tolist())) == 1 and got.labels[3] == got.labels[4] != got.labels[0]
    with np.load(_path(tmp_path), allow_pickle=False) as z:  # rebuilt: the right digest now
        assert str(z["digest"]) == _digest("v", CODES, 2, 5, 1, 300)
    return str(caught[0].message)


GOOD_LABELS = np.array([0, 0, 0, 1, 1], dtype=np.int64)
GOOD_CENTROIDS = np.zeros((2, 4))


@pytest.mark.parametrize("labels,centroids,digest,reason", [
    (GOOD_LABELS, GOOD_CENTROIDS, "something else",
     "stored digest differs from the requested one"),
    (np.zeros(6, dtype=np.int64), GOOD_CENTROIDS, None,
     "stored shapes labels (6,), centroids (2, 4) do not match (5,) and (2, 4)"),
    (GOOD_LABELS, np.zeros((3, 4)), None,
     "stored shapes labels (5,), centroids (3, 4) do not match (5,) and (2, 4)"),
    (np.array([0, 0, 0, 1, 2]), GOOD_CENTROIDS, None, "stored labels are out of range"),
    (np.array([0, 0, 0, 1, 7]), GOOD_CENTROIDS, None, "stored labels are out of range"),
    (np.array([0, -1, 0, 1, 1]), GOOD_CENTROIDS, None, "stored labels are out of range"),
])
def test_a_mismatched_file_is_rebuilt_with_the_reason(tmp_path, labels, centroids, digest, reason):
    path = _path(tmp_path)
    _write(path, labels=labels, centroids=centroids,
           digest=np.array(digest or _digest("v", CODES, 2, 5, 1, 300)))
    assert _rebuilt(tmp_path) == (
        f"k-means cache {path} is unreadable or does not match ({reason}); rebuilding it")


def test_labels_equal_to_k_minus_one_are_in_range(tmp_path, monkeypatch):
    path = _path(tmp_path)
    _write(path, labels=np.array([1, 1, 1, 0, 0]), centroids=GOOD_CENTROIDS,
           digest=np.array(_digest("v", CODES, 2, 5, 1, 300)))
    monkeypatch.setattr(clustering, "KMeans", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached_kmeans(CODES, cache_dir=tmp_path, **KW).labels.tolist() == [1, 1, 1, 0, 0]


def test_a_file_with_pickled_objects_is_not_unpickled(tmp_path):
    """allow_pickle=False: an object array in the file is refused (rebuilt), never unpickled."""
    path = _path(tmp_path)
    _write(path, labels=GOOD_LABELS, centroids=GOOD_CENTROIDS,
           digest=np.array(_digest("v", CODES, 2, 5, 1, 300), dtype=object))
    msg = _rebuilt(tmp_path)
    reason = "Object arrays cannot be loaded when allow_pickle=False"
    assert msg == f"k-means cache {path} is unreadable or does not match ({reason}); rebuilding it"


def test_the_rebuild_warning_points_at_the_caller_of_cached_kmeans(tmp_path, monkeypatch):
    """The warning's location is the frame that called cached_kmeans' body (stacklevel=2): this
    test's line, or the first frame outside the module when a wrapper sits in between."""
    where = []
    module_file = clustering.__file__

    def failing_load(*args):
        frame = sys._getframe(1)  # the body of cached_kmeans
        assert frame.f_code.co_filename == module_file
        caller = frame.f_back
        where.append((caller.f_code.co_filename, caller.f_lineno))
        raise ValueError("boom")

    monkeypatch.setattr(clustering, "_load_cached", failing_load)
    path = _path(tmp_path)
    path.write_bytes(b"x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cached_kmeans(CODES, cache_dir=tmp_path, **KW)
    assert len(where) == 1 and len(caught) == 1
    assert (caught[0].filename, caught[0].lineno) == where[0]
    assert str(caught[0].message) == (
        f"k-means cache {path} is unreadable or does not match (boom); rebuilding it")

"""Exact tests of the ranking internals of brcd_lib.metrics that mutation testing found unpinned:
the word-wise ``_flatnonzero``, the sample thresholds, the candidate ranking's fallback walk,
the chunk runner, the chunk sizes of the numpy backend, the backend's path choice (argsort,
sampled, fused) and its chunks, and the wiring of ``_ranking`` (device, backend, threads).

Expected values are literals worked out by hand (shown in the comments) or plain NumPy written
here (XOR + a popcount table, a stable argsort); spies (monkeypatched module functions, a fake
executor) check which path ran and with which arguments.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np
import pytest

from brcd_lib import metrics
from test_metrics_exact import _LoggedRow, _deadline

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _reference_distances(q_bytes: np.ndarray, db_bytes: np.ndarray) -> np.ndarray:
    """Hamming distances (n_query, n_db) of packed codes: XOR, a popcount table, a row sum."""
    return np.stack([_POPCOUNT[q ^ db_bytes].sum(axis=1, dtype=np.uint16) for q in q_bytes])


def _reference_ranking(q_bytes, db_bytes, top):
    dist = _reference_distances(q_bytes, db_bytes)
    return np.stack([np.argsort(row, kind="stable")[:top] for row in dist])


def _random_bytes(seed: int, n: int, n_bytes: int, random_bytes: int | None = None) -> np.ndarray:
    """Packed codes (n, n_bytes) of random bits; with ``random_bytes``, only that many leading
    bytes are random and the rest are zero (long codes whose distances are cheap to check)."""
    out = np.zeros((n, n_bytes), np.uint8)
    m = n_bytes if random_bytes is None else random_bytes
    out[:, :m] = np.random.default_rng(seed).integers(0, 256, (n, m), dtype=np.uint8)
    return out


# --------------------------------------------------------------------------------------------
# _flatnonzero
# --------------------------------------------------------------------------------------------

def _aligned_bools(n: int, true_at) -> np.ndarray:
    """A bool array of length n whose data starts on an 8-byte boundary (the word-wise path)."""
    buf = np.zeros(n + 8, np.bool_)
    off = (-buf.ctypes.data) % 8
    arr = buf[off:off + n]
    arr[list(true_at)] = True
    assert arr.ctypes.data % 8 == 0
    return arr


def test_flatnonzero_word_path_on_sparse_words():
    # three words: one True in word 0 (byte 3), two in word 1 (bytes 8, 9), one in word 2 (23)
    mask = _aligned_bools(24, [3, 8, 9, 23])
    got = metrics._flatnonzero(mask)
    assert got.tolist() == [3, 8, 9, 23]
    assert metrics._flatnonzero(_aligned_bools(16, [])).tolist() == []


def test_flatnonzero_words_are_integers_with_denormals_flushed():
    # a word holding a single True byte read as float64 is a denormal, which the CPU reads as 0
    # once flush-to-zero / denormals-are-zero is on (torch.set_flush_denormal(True), a common
    # speed setting): the words must be compared as integers
    torch = pytest.importorskip("torch")
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU has no flush-denormal mode")
    try:
        got = metrics._flatnonzero(_aligned_bools(16, [0, 9]))
    finally:
        torch.set_flush_denormal(False)
    assert got.tolist() == [0, 9]


@pytest.mark.parametrize("n, true_at", [(9, [0, 8]), (18, [1, 17])])
def test_flatnonzero_length_not_a_multiple_of_8(n, true_at):
    # 9 and 18 bytes are no whole 64-bit words: the one-pass np.flatnonzero path
    assert metrics._flatnonzero(_aligned_bools(n, true_at)).tolist() == true_at


# --------------------------------------------------------------------------------------------
# _sample_thresholds: the value of rank j of each sample row, j = ceil(S k/n + margin * sd)
# --------------------------------------------------------------------------------------------

def _permuted_rows(size: int, dtype) -> np.ndarray:
    """Two rows each holding 0..size-1 once (one reversed, one shuffled): rank j has value j."""
    shuffled = np.random.default_rng(3).permutation(size)
    return np.stack([np.arange(size)[::-1], shuffled]).astype(dtype)


@pytest.mark.parametrize("k, n, margin, j", [
    (10, 100, 2.0, 16),   # S p = 10, sd = sqrt(100 * 0.1 * 0.9) = 3: ceil(10 + 6) = 16
    (10, 100, -5.0, 0),   # ceil(10 - 15) = -5, clipped to 0
    (100, 100, 1.0, 99),  # p = 1, sd = 0: j = 100, clipped to S - 1 = 99
])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_sample_thresholds_rank_j(k, n, margin, j, dtype):
    got = metrics._sample_thresholds(_permuted_rows(100, dtype), k, n, margin)
    assert got.dtype == np.dtype(dtype)
    assert got.tolist() == [j, j]


def test_sample_thresholds_with_ties_by_hand():
    # S = 6, k/n = 1/6: S p = 1, sd = sqrt(5/6) = 0.913, margin 1: j = ceil(1.913) = 2;
    # sorted rows [0 0 1 2 2 2] -> 1 and [0 1 3 3 3 3] -> 3
    sample = np.array([[2, 0, 2, 1, 2, 0], [3, 3, 0, 3, 1, 3]], np.uint8)
    got = metrics._sample_thresholds(sample, 1, 6, 1.0)
    assert got.dtype == np.uint8
    assert got.tolist() == [1, 3]


# --------------------------------------------------------------------------------------------
# _rank_candidates: a row with fewer than k candidates walks on from its threshold + 1
# --------------------------------------------------------------------------------------------

def test_rank_candidates_fallback_starts_one_above_the_threshold():
    # row 0 has one entry <= 0 (column 4) for k = 3: the walk tests <= 1 (2 entries), <= 2
    # (3 entries: stop), then takes the entries <= 2; row 1 has four zeros: no walk
    dist = np.array([[4, 1, 4, 2, 0, 4],
                     [0, 3, 0, 0, 3, 0]], np.uint8).view(_LoggedRow)
    flat = np.array([4, 6, 8, 9, 11], np.int64)
    values = np.zeros(5, np.uint8)
    out = np.empty((2, 3), np.int64)
    _LoggedRow.log = []
    with _deadline():
        got = metrics._rank_candidates(dist, flat, values, 6, 3, np.array([0, 0], np.uint8), out)
    assert np.asarray(got).tolist() == [[4, 1, 3], [0, 2, 3]]
    assert _LoggedRow.log == [("<=", 1), ("<=", 2), ("<=", 2)]


# --------------------------------------------------------------------------------------------
# _run_chunks
# --------------------------------------------------------------------------------------------

class _FakePool:
    """A ThreadPoolExecutor stand-in that runs each task at submit and logs what it was given."""
    made: list = []

    def __init__(self, **kw):
        self.kw, self.submitted = kw, []
        _FakePool.made.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def submit(self, fn, *args):
        self.submitted.append(args)
        future = Future()
        future.set_result(fn(*args))
        return future


@pytest.fixture
def fake_pool(monkeypatch):
    _FakePool.made = []
    monkeypatch.setattr(metrics, "ThreadPoolExecutor", _FakePool)
    return _FakePool


@pytest.mark.parametrize("threads, starts, pooled", [
    (1, [0, 1, 2], False),  # one thread: in the caller's thread
    (2, [5], False),        # one chunk: in the caller's thread
    (2, [0, 1], True),      # two threads, two chunks: on the pool
    (3, [0, 1, 2], True),
])
def test_run_chunks_uses_the_pool_only_for_several_threads_and_chunks(fake_pool, threads,
                                                                       starts, pooled):
    got = list(metrics._run_chunks(lambda s: 10 * s, starts, threads))
    assert got == [10 * s for s in starts]
    if pooled:
        assert len(fake_pool.made) == 1
        pool = fake_pool.made[0]
        assert pool.kw == {"max_workers": threads, "thread_name_prefix": "brcd-metrics"}
        assert pool.submitted == [(s,) for s in starts]
    else:
        assert fake_pool.made == []


def test_run_chunks_holds_at_most_two_chunks_per_thread_in_flight(fake_pool):
    gen = metrics._run_chunks(lambda s: s, range(10), 2)
    assert next(gen) == 0
    assert fake_pool.made[0].submitted == [(0,), (1,), (2,), (3,)]  # 2 * threads submitted
    assert next(gen) == 1
    assert len(fake_pool.made[0].submitted) == 5
    assert list(gen) == list(range(2, 10))


def test_run_chunks_thread_names():
    def work(start):
        return threading.current_thread().name
    main = threading.current_thread().name
    assert list(metrics._run_chunks(work, [0, 1, 2], 1)) == [main] * 3
    names = list(metrics._run_chunks(work, [0, 1, 2], 2))
    assert all(name in ("brcd-metrics_0", "brcd-metrics_1") for name in names), names


# --------------------------------------------------------------------------------------------
# _topk_chunk_rows
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    # 1 MB, 1 thread: half = 2**19 = 524288 bytes; 65536 items at 1.125 bytes = 73728 bytes a
    # row: 7 rows (< 8 minimum, < 1000 queries); 524288 // 36 = 14563 selection pairs
    ((1000, 65536, 1, 1.0, 1), (7, 14563)),
    # 2 threads: half = 262144: 3 rows, 7281 pairs
    ((1000, 65536, 1, 1.0, 2), (3, 7281)),
    # 256 MB, 1024 items: 2**20 // 1024 = 1024 rows would fit, but 3 queries on 1 thread: 3;
    # half // 36 = 3728270 pairs, capped at 2**20
    ((3, 1024, 1, 256.0, 1), (3, 1048576)),
    ((7, 1024, 1, 256.0, 2), (4, 1048576)),  # ceil(7 / 2) = 4 rows a thread
])
def test_topk_chunk_rows_by_hand(args, expected):
    assert metrics._topk_chunk_rows(*args) == expected


# --------------------------------------------------------------------------------------------
# _numpy_ranking: chunks, default threads, path choice (argsort / sampled / fused)
# --------------------------------------------------------------------------------------------

def _run_numpy(q_bytes, db_bytes, code_length, top, **kw):
    """The chunks of the numpy backend: [(rows, thread name)] and the assembled ranking."""
    seen = []

    def per_chunk(rows, ranked):
        seen.append((rows, threading.current_thread().name))
        return ranked.copy()

    kw.setdefault("memory_budget_mb", 256.0)
    ranking = np.full((q_bytes.shape[0], top), -1, np.int64)
    for rows, ranked in metrics._numpy_ranking(q_bytes, db_bytes, code_length, top,
                                               device=None, per_chunk=per_chunk, **kw):
        ranking[rows] = ranked
    return seen, ranking


def test_numpy_ranking_default_threads_is_one():
    # 2 queries, 16 items: one thread takes both queries in one chunk, in the caller's thread
    q, d = _random_bytes(1, 2, 1), _random_bytes(2, 16, 1)
    seen, ranking = _run_numpy(q, d, 8, 3)
    assert seen == [(slice(0, 2), threading.current_thread().name)]
    np.testing.assert_array_equal(ranking, _reference_ranking(q, d, 3))


def test_numpy_ranking_chunks_follow_the_budget():
    # 20 queries, 4096 items of 1-byte codes, 0.05 MB on 1 thread: half = 26214.4 bytes, a row
    # takes 4096 * 1.125 = 4608 bytes: 5 rows a chunk
    q, d = _random_bytes(3, 20, 1), _random_bytes(4, 4096, 1)
    seen, ranking = _run_numpy(q, d, 8, 600, memory_budget_mb=0.05, threads=1)
    assert [rows for rows, _ in seen] == [slice(0, 5), slice(5, 10), slice(10, 15),
                                          slice(15, 20)]
    np.testing.assert_array_equal(ranking, _reference_ranking(q, d, 600))


def _spy(monkeypatch, name):
    calls = []
    real = getattr(metrics, name)

    def spy(*args, **kw):
        calls.append((args, kw))
        return real(*args, **kw)
    monkeypatch.setattr(metrics, name, spy)
    return calls


@pytest.mark.parametrize("n_db, top, sampled", [
    (2048, 256, True),    # top * 8 == n_db, n_db == 4 * 512: sampled
    (2048, 257, False),   # top * 8 > n_db
    (2048, 1, True),
    (2047, 1, False),     # n_db < 4 * 512 (the minimum sample)
])
def test_numpy_ranking_path_choice(monkeypatch, n_db, top, sampled):
    thresholds = _spy(monkeypatch, "_sample_thresholds")
    q, d = _random_bytes(5, 2, 2), _random_bytes(6, n_db, 2)
    _, ranking = _run_numpy(q, d, 16, top, threads=1)
    np.testing.assert_array_equal(ranking, _reference_ranking(q, d, top))
    assert len(thresholds) == (1 if sampled else 0)


def test_numpy_ranking_sample_is_every_stride_th_item_from_half_a_stride(monkeypatch):
    # 2048 items: sample of 512, stride 4, from item 2 (items 2, 6, 10, ...)
    thresholds = _spy(monkeypatch, "_sample_thresholds")
    q, d = _random_bytes(7, 2, 2), _random_bytes(8, 2048, 2)
    _run_numpy(q, d, 16, 3, threads=1)
    (sample, k, n, margin), _ = thresholds[0]
    assert (k, n, margin) == (3, 2048, 1.0)
    np.testing.assert_array_equal(sample, _reference_distances(q, d[2::4]))


def test_numpy_ranking_selection_blocks_of_one_row_on_a_small_budget(monkeypatch):
    # 0.1 MB: half = 52428.8 bytes, 52428.8 // 36 = 1456 selection pairs < one row of 2048
    # items: each stable_topk_rows call takes a single row
    blocks = _spy(monkeypatch, "stable_topk_rows")
    q, d = _random_bytes(9, 4, 2), _random_bytes(10, 2048, 2)
    _, ranking = _run_numpy(q, d, 16, 2, memory_budget_mb=0.1, threads=1)
    np.testing.assert_array_equal(ranking, _reference_ranking(q, d, 2))
    assert [args[0].shape[0] for args, _ in blocks] == [1, 1, 1, 1]


def _no_fallback(monkeypatch):
    def boom(*args, **kw):
        raise AssertionError("every row has k candidates: no fallback")
    monkeypatch.setattr(metrics, "_row_topk_from", boom)


@pytest.mark.parametrize("n_db, code_bytes, fused", [
    (524352, 1, True),    # 8 rows x 524352 items x 1 byte > 4 MiB: fused
    (524288, 1, False),   # exactly 4 MiB: not fused
    (262208, 32, True),   # 256-bit codes, 2-byte distances: 8 x 262208 x 2 > 4 MiB
])
def test_numpy_ranking_fused_path(monkeypatch, n_db, code_bytes, fused):
    groups = _spy(monkeypatch, "_topk_from_groups")
    rows = _spy(monkeypatch, "stable_topk_rows")
    _no_fallback(monkeypatch)  # one differing byte: thousands of items at distance 0 for k = 5
    # the codes differ in their first byte only (the other bytes are zero in both sets)
    q, d = _random_bytes(11, 8, code_bytes, 1), _random_bytes(12, n_db, code_bytes, 1)
    seen, ranking = _run_numpy(q, d, 8 * code_bytes, 5, threads=1)
    assert [r for r, _ in seen] == [slice(0, 8)]
    np.testing.assert_array_equal(ranking, _reference_ranking(q[:, :1], d[:, :1], 5))
    assert (len(groups) > 0, len(rows) > 0) == (fused, not fused)


def test_numpy_ranking_large_k_on_a_large_database_is_not_sampled():
    # top * 8 > n_db: a stable argsort of whole rows, however large the chunk
    q, d = _random_bytes(13, 8, 1), _random_bytes(14, 524352, 1)
    _, ranking = _run_numpy(q, d, 8, 65545, threads=1)
    np.testing.assert_array_equal(ranking, _reference_ranking(q, d, 65545))


# --------------------------------------------------------------------------------------------
# _ranking: device, backend, threads
# --------------------------------------------------------------------------------------------

_Q = np.array([[1, -1, 1, 1], [-1, -1, 1, -1]])
_D = np.array([[1, 1, 1, 1], [-1, -1, -1, -1], [1, -1, 1, -1]])


@pytest.fixture
def backends(monkeypatch):
    calls = []

    def fake(name):
        def rank(q_bytes, db_bytes, length, top, **kw):
            calls.append((name, q_bytes.tolist(), db_bytes.tolist(), length, top, kw))
            return iter(())
        return rank
    for name in ("numba", "numpy", "torch", "faiss"):
        monkeypatch.setitem(metrics.BACKENDS, name, fake(name))
    return calls


def _call_ranking(**kw):
    return metrics._ranking(_Q, _D, 2, packed=False, code_length=None, memory_budget_mb=1.0,
                            ties="index", **kw)


@pytest.mark.parametrize("has_numba, chosen", [(True, "numba"), (False, "numpy")])
def test_ranking_auto_on_cpu_is_numba_or_numpy_with_the_threads(monkeypatch, backends, has_numba,
                                                               chosen):
    monkeypatch.setattr(metrics, "_numba_available", lambda: has_numba)
    chunks, n_query, n_db, length = _call_ranking(backend="auto", threads=3)
    assert (n_query, n_db, length) == (2, 3, 4)
    # bits 1 -1 1 1 -> 0b1011 << 4 = 176, -1 -1 1 -1 -> 0b0010 << 4 = 32, ...
    assert backends == [(chosen, [[176], [32]], [[240], [0], [160]], 4, 2,
                         {"memory_budget_mb": 1.0, "device": None, "threads": 3,
                          "per_chunk": metrics._identity})]


def test_numba_available_follows_the_import_system(monkeypatch):
    import importlib.util

    assert metrics._numba_available() is True  # numba is a core dependency of the kit
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert metrics._numba_available() is False


def test_ranking_auto_on_an_accelerator_is_torch_on_that_device(monkeypatch, backends):
    device, seen = object(), []

    def accelerator_of(*xs):
        seen.append(xs)
        return device
    monkeypatch.setattr(metrics, "_accelerator_of", accelerator_of)
    _call_ranking(backend="auto", threads=2)
    assert len(seen) == 1 and len(seen[0]) == 2
    assert seen[0][0] is _Q and seen[0][1] is _D
    assert [c[0] for c in backends] == ["torch"]
    assert backends[0][5]["device"] is device and backends[0][5]["threads"] == 2
    # a backend named explicitly gets the device too
    _call_ranking(backend="numpy", threads=1)
    assert backends[1][0] == "numpy" and backends[1][5]["device"] is device


def test_ranking_checks_the_codes_on_its_threads(monkeypatch, backends):
    prepared = _spy(monkeypatch, "_prepare_codes")
    _call_ranking(backend="numpy", threads=3)
    assert prepared[0][1]["threads"] == 3

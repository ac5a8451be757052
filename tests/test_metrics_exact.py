"""Exact, fast tests of the internals of brcd_lib.metrics: stable top-k selection (paths, buffers,
sampling), the candidate helpers, multi-hot packing and the default thread count.

Expected values are literals worked out by hand on tiny inputs (exact ties), or a plain NumPy
stable argsort written here; spies (monkeypatched module functions, an ndarray subclass that
logs its comparisons) check which path ran and with which arguments.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys

import numpy as np
import pytest

from brcd_lib import metrics


@contextlib.contextmanager
def _deadline(seconds: float = 20.0):
    """Fail (TimeoutError) instead of hanging when a loop never ends (a guard, not a timing: the
    loops below take microseconds)."""
    def _raise(signum, frame):
        raise TimeoutError("loop did not end")
    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _reference_topk(dist: np.ndarray, k: int) -> np.ndarray:
    """Independent stable top-k: argsort by (value, column) with np.lexsort."""
    k = min(k, dist.shape[1])
    cols = np.arange(dist.shape[1])
    return np.stack([np.lexsort((cols, row))[:k] for row in dist]).astype(np.int64)


def _spy_sample(monkeypatch):
    calls = []
    real = metrics._sample_thresholds

    def spy(sample, k, n, margin):
        calls.append((sample.copy(), k, n, margin))
        return real(sample, k, n, margin)
    monkeypatch.setattr(metrics, "_sample_thresholds", spy)
    return calls


# --------------------------------------------------------------------------------------------
# stable_topk_rows: which path (argsort vs sampled candidates), default parameters, buffers
# --------------------------------------------------------------------------------------------

_DIST17 = np.array([[3, 1, 4, 1, 5, 0, 2, 6, 5, 3, 5, 0, 7, 9, 3, 2, 3],
                    [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5, 2]], np.uint8)


@pytest.mark.parametrize("n, sample_size, k, sampled", [
    (17, 2, 3, False),   # k * 8 = 24 > 17: argsort
    (17, 1, 2, True),    # sample_size 1 is a valid sample
    (17, 2, 2, True),    # k * 8 = 16 <= 17
    (16, 2, 2, True),    # k * 8 = 16 == n: still sampled
    (8, 2, 1, True),     # n == 4 * sample_size: sampled
    (16, 8, 1, False),   # n = 16 < 4 * 8: argsort
    (16, 0, 1, False),   # sample_size 0: argsort (never a division by the sample size)
])
def test_stable_topk_path_choice(monkeypatch, n, sample_size, k, sampled):
    calls = _spy_sample(monkeypatch)
    dist = np.ascontiguousarray(_DIST17[:, :n])
    got = metrics.stable_topk_rows(dist, k, sample_size=sample_size)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, _reference_topk(dist, k))
    assert (len(calls) == 1) is sampled


def test_stable_topk_default_sample_size_and_margin(monkeypatch):
    calls = _spy_sample(monkeypatch)
    dist = np.arange(8192, dtype=np.uint16)[None, :]  # n = 4 * 2048: the default samples
    got = metrics.stable_topk_rows(dist, 1)
    np.testing.assert_array_equal(got, [[0]])
    assert got.dtype == np.int64
    assert len(calls) == 1
    sample, k, n, margin = calls[0]
    assert (k, n, margin) == (1, 8192, 4.0)
    assert sample.shape == (1, 2048)
    # stride 4, offset default_rng(0).integers(4) == 3
    np.testing.assert_array_equal(sample[0, :3], [3, 7, 11])


def test_stable_topk_default_seed_offset(monkeypatch):
    calls = _spy_sample(monkeypatch)
    dist = np.arange(4096, dtype=np.uint16)[None, :]
    got = metrics.stable_topk_rows(dist, 1, sample_size=2)
    np.testing.assert_array_equal(got, [[0]])
    # stride 2048, offset default_rng(0).integers(2048) == 1742
    np.testing.assert_array_equal(calls[0][0], [[1742, 3790]])
    got = metrics.stable_topk_rows(dist, 1, sample_size=2, seed=1)
    np.testing.assert_array_equal(calls[1][0], [[969, 3017]])  # default_rng(1): 969


def test_stable_topk_argsort_path_dtype():
    dist = np.array([[2, 0, 2, 1], [1, 1, 0, 1]], np.uint8)
    got = metrics.stable_topk_rows(dist, 3)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [[1, 3, 0], [2, 0, 1]])


_ROW16 = np.array([[0, 3, 1, 4, 2, 5, 0, 3, 6, 1, 7, 2, 0, 3, 0, 3]], np.uint8)


def test_stable_topk_reuses_exact_size_mask():
    mask = np.ones(16, np.bool_)  # exactly c * n rounded up to a multiple of 8
    got = metrics.stable_topk_rows(_ROW16, 2, thresholds=np.array([2]), mask=mask)
    np.testing.assert_array_equal(got, [[0, 6]])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(
        mask, [1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0])


def test_stable_topk_reuses_2d_mask():
    mask = np.ones((1, 16), np.bool_)
    got = metrics.stable_topk_rows(_ROW16, 3, thresholds=np.array([1]), mask=mask)
    np.testing.assert_array_equal(got, [[0, 6, 12]])
    np.testing.assert_array_equal(
        mask, [[1, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0]])


def test_stable_topk_larger_mask_tail_cleared():
    mask = np.ones(24, np.bool_)
    dist = np.array([[4, 0, 4, 1, 4]], np.uint8)  # size 5, padded to 8
    got = metrics.stable_topk_rows(dist, 2, thresholds=np.array([1]), mask=mask)
    np.testing.assert_array_equal(got, [[1, 3]])
    np.testing.assert_array_equal(mask[:8], [0, 1, 0, 1, 0, 0, 0, 0])
    assert mask[8:].all()


def test_stable_topk_thresholds_cast_to_dist_dtype(monkeypatch):
    seen = []
    real = metrics._rank_candidates

    def spy(dist, flat, values, n, k, thresholds, out):
        seen.append(thresholds.dtype)
        return real(dist, flat, values, n, k, thresholds, out)
    monkeypatch.setattr(metrics, "_rank_candidates", spy)
    got = metrics.stable_topk_rows(_ROW16, 2, thresholds=[2.0])
    np.testing.assert_array_equal(got, [[0, 6]])
    assert seen == [np.dtype(np.uint8)]


# --------------------------------------------------------------------------------------------
# _row_topk_from: the threshold walk, observed through the comparisons made on the row
# --------------------------------------------------------------------------------------------

class _LoggedRow(np.ndarray):
    log: list = []

    def __le__(self, other):
        _LoggedRow.log.append(("<=", int(other)))
        return np.asarray(self) <= other

    def __lt__(self, other):
        _LoggedRow.log.append(("<", int(other)))
        return np.asarray(self) < other


def _logged_topk(values, k, t):
    _LoggedRow.log = []
    row = np.array(values, np.uint8).view(_LoggedRow)
    with _deadline():
        got = metrics._row_topk_from(row, k, t)
    return np.asarray(got).tolist(), list(_LoggedRow.log)


def test_row_topk_from_stops_at_kth_value():
    got, log = _logged_topk([4, 1, 4, 2, 0, 4], 3, 0)
    assert got == [4, 1, 3]
    assert log == [("<=", 0), ("<=", 1), ("<=", 2), ("<=", 2)]


def test_row_topk_from_stops_at_row_max():
    got, log = _logged_topk([3, 3, 0], 3, 0)
    assert got == [2, 0, 1]
    assert log == [("<=", 0), ("<=", 1), ("<=", 2), ("<=", 3)]


def test_row_topk_from_k_above_row_length():
    got, log = _logged_topk([2, 0, 2], 5, 0)
    assert got == [1, 0, 2]
    assert log == [("<=", 0), ("<=", 1), ("<=", 2)]


def test_row_topk_from_threshold_already_at_max():
    got, log = _logged_topk([1, 0, 1], 2, 1)
    assert got == [1, 0]
    assert log == [("<=", 1)]


# --------------------------------------------------------------------------------------------
# _topk_from_groups
# --------------------------------------------------------------------------------------------

def _groups_of(dist, thresholds):
    c, width = dist.shape
    return (dist <= np.asarray(thresholds)[:, None]).reshape(c, width // 8, 8).any(axis=2)


# rows (a second real value 5 / 9 and four padding columns), per-row thresholds, expected top 2
_NO_FALLBACK_CASES = {
    "equal thresholds": ([[5, 1, 5, 5, 5, 5, 5, 5, 5, 5, 0, 5],
                          [1, 5, 5, 5, 5, 5, 5, 5, 1, 5, 5, 5]], [1, 1], [[10, 1], [0, 8]]),
    "row thresholds": ([[3, 2, 9, 9, 9, 9, 9, 9, 2, 9, 9, 9],
                        [9, 9, 9, 0, 9, 9, 9, 9, 9, 0, 9, 9]], [2, 0], [[1, 8], [3, 9]]),
}


@pytest.mark.parametrize("case", sorted(_NO_FALLBACK_CASES))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_topk_from_groups_without_fallback(monkeypatch, dtype, case):
    def boom(*a, **kw):
        raise AssertionError("every row has k candidates: no fallback")
    monkeypatch.setattr(metrics, "_row_topk_from", boom)
    rows, thresholds, expected = _NO_FALLBACK_CASES[case]
    pad = np.iinfo(dtype).max
    dist = np.array([r + [pad] * 4 for r in rows], dtype)
    th = np.array(thresholds, dtype)
    out = np.empty((2, 2), np.int64)
    got = metrics._topk_from_groups(dist, _groups_of(dist, th), th, 12, 2, out)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_topk_from_groups_fallback_ignores_padding(dtype):
    # padding (from n = 10 on) is above the threshold 0 but below the real 5s
    dist = np.array([[0, 5, 5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1, 1, 1, 1]], dtype)
    th = np.array([0], dtype)
    groups = np.array([[True, False]])
    out = np.empty((1, 2), np.int64)
    got = metrics._topk_from_groups(dist, groups, th, 10, 2, out)
    np.testing.assert_array_equal(got, [[0, 1]])


# --------------------------------------------------------------------------------------------
# _candidate_blocks
# --------------------------------------------------------------------------------------------

def test_candidate_blocks_running_total_restarts_at_zero():
    groups = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]], np.bool_)  # 16, 8, 8 pairs
    assert metrics._candidate_blocks(groups, 16) == [(0, 1), (1, 3)]


def test_candidate_blocks_single_block_at_limit():
    groups = np.array([[1, 0], [0, 1]], np.bool_)  # 16 pairs
    assert metrics._candidate_blocks(groups, 16) == [(0, 2)]
    assert metrics._candidate_blocks(groups, 15) == [(0, 1), (1, 2)]


# --------------------------------------------------------------------------------------------
# _default_threads
# --------------------------------------------------------------------------------------------

class _FakeTorch:
    def __init__(self, n):
        self.n = n

    def get_num_threads(self):
        return self.n


@pytest.mark.parametrize("torch_threads, expected", [(5, 5), (1, 1), (0, 1)])
def test_default_threads_from_loaded_torch(monkeypatch, torch_threads, expected):
    monkeypatch.setitem(sys.modules, "torch", _FakeTorch(torch_threads))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert metrics._default_threads() == expected


@pytest.mark.parametrize("cpus, expected", [({0, 1, 2}, 3), ({4}, 1), (set(), 1)])
def test_default_threads_from_affinity(monkeypatch, cpus, expected):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cpus, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert metrics._default_threads() == expected


@pytest.mark.parametrize("count, expected", [(3, 3), (1, 1), (None, 1), (0, 1)])
def test_default_threads_from_cpu_count(monkeypatch, count, expected):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: count)
    assert metrics._default_threads() == expected


# --------------------------------------------------------------------------------------------
# multi-hot packing and words
# --------------------------------------------------------------------------------------------

def test_pack_multi_hot_bytes():
    labels = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 1, 1], [0, 1, 1, 0, 0, 0, 0, 1, 0, 0]], np.int64)
    got = metrics._pack_multi_hot(labels, "labels")
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, [[128, 192], [97, 0]])


def test_multihot_words_one_byte():
    got = metrics._MultiHot._words(np.array([[5], [128]], np.uint8))
    assert got.dtype == np.uint8 and got.shape == (2,)
    np.testing.assert_array_equal(got, [5, 128])


def test_multihot_words_two_bytes():
    got = metrics._MultiHot._words(np.array([[1, 2], [0, 128]], np.uint8))
    assert got.dtype == np.uint16 and got.shape == (2,)
    np.testing.assert_array_equal(got, [513, 32768])


def test_multihot_words_three_and_four_bytes():
    got = metrics._MultiHot._words(np.array([[1, 2, 3], [0, 0, 128]], np.uint8))
    assert got.dtype == np.uint32 and got.shape == (2,)
    np.testing.assert_array_equal(got, [197121, 8388608])
    got = metrics._MultiHot._words(np.array([[1, 0, 0, 1]], np.uint8))
    assert got.dtype == np.uint32 and got.shape == (1,)
    np.testing.assert_array_equal(got, [16777217])


def test_multihot_words_eight_and_nine_bytes():
    got = metrics._MultiHot._words(np.array([[1, 0, 0, 0, 0, 0, 0, 2]], np.uint8))
    assert got.dtype == np.uint64 and got.shape == (1,)
    np.testing.assert_array_equal(got, [(2 << 56) + 1])
    got = metrics._MultiHot._words(np.array([[1, 0, 0, 0, 0, 0, 0, 0, 3]], np.uint8))
    assert got.dtype == np.uint64 and got.shape == (1, 2)
    np.testing.assert_array_equal(got, [[1, 3]])

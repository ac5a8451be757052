"""The numba ranking backend (brcd_lib/hamming_topk.py and metrics._numba_ranking) against the
plain per-query reference of tests/test_metrics_fast.py: every ranking element by element, on
integer codes with heavy exact ties, through each of the kernel's paths (a sampled threshold that
holds, one too low that forces the second scan, none; buffer compaction; several words per
code; tiles cut short)."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brcd_lib import hamming_topk as H
from brcd_lib import metrics as M

from test_metrics_fast import labels_for, plain_ap, plain_ranking, pm1, tied_codes


def _words(bits: np.ndarray) -> np.ndarray:
    return M._le_words(np.packbits(bits, axis=1))


def _kernel(q_bits, d_bits, top, sample_rows=None, cap=None):
    """topk_rows on bool codes; ``sample_rows``: database rows used as the threshold sample."""
    length = q_bits.shape[1]
    db_t = np.ascontiguousarray(_words(d_bits).T)
    sample = (db_t[:, :0] if sample_rows is None
              else np.ascontiguousarray(db_t[:, np.asarray(sample_rows, np.int64)]))
    out = np.full((q_bits.shape[0], top), -1, np.int64)
    H.topk_rows(_words(q_bits), db_t, sample, top, length,
                min(4 * top, d_bits.shape[0]) if cap is None else cap, out)
    return out.tolist()


@pytest.mark.parametrize("length", [1, 7, 16, 63, 64, 65, 130])
@pytest.mark.parametrize("n_db", [1, 5, 255, 256, 257, 1000])
def test_kernel_matches_plain_ranking_with_heavy_ties(length, n_db):
    rng = np.random.default_rng(length * 1009 + n_db)
    d_bits = tied_codes(rng, n_db, length, max(1, n_db // 20))
    q_bits = np.concatenate([tied_codes(rng, 3, length, 4), rng.random((2, length)) < 0.5])
    for top in sorted({1, 2, 10, n_db // 3 or 1, n_db}):
        top = min(top, n_db)
        assert _kernel(q_bits, d_bits, top) == plain_ranking(q_bits, d_bits, top)


def test_a_sample_of_the_nearest_items_forces_the_second_scan_and_stays_exact():
    # the sample holds only each query's nearest items: its threshold admits fewer than K
    rng = np.random.default_rng(3)
    d_bits = rng.random((3000, 32)) < 0.5
    q_bits = d_bits[[10, 2000]].copy()
    dist = (d_bits[None] != q_bits[:, None]).sum(-1)
    nearest = np.argsort(dist[0], kind="stable")[:40]
    for top in (50, 400):
        assert _kernel(q_bits, d_bits, top, sample_rows=nearest) == plain_ranking(q_bits, d_bits,
                                                                                 top)


def test_a_sample_of_the_farthest_items_only_widens_the_scan():
    rng = np.random.default_rng(4)
    d_bits = rng.random((2000, 24)) < 0.5
    q_bits = rng.random((3, 24)) < 0.5
    farthest = np.argsort(-(d_bits != q_bits[0]).sum(1), kind="stable")[:64]
    assert _kernel(q_bits, d_bits, 30, sample_rows=farthest) == plain_ranking(q_bits, d_bits, 30)


def _staircase(n: int, length: int) -> np.ndarray:
    """n codes whose distances to the all-zero query are 0, 1, ..., n - 1."""
    codes = np.zeros((n, length), bool)
    for i in range(n):
        codes[i, :i] = True
    return codes


def _threshold(sample_bits: np.ndarray, top: int, n_db: int) -> int:
    """_first_threshold of the all-zero query against ``sample_bits`` as the sample."""
    length = sample_bits.shape[1]
    return H._first_threshold(_words(np.zeros((1, length), bool)), 0,
                              np.ascontiguousarray(_words(sample_bits).T), top, n_db, length,
                              np.empty(H.TILE, np.int64))


def test_first_threshold_admits_the_sampled_quantile_with_its_margin():
    # 100 sampled items at distance 0..99 (one each) of a 1,000-item database, K = 50: the
    # sample expects 5 items, and asks for 1.25 * 5 + 3 * sqrt(5) + 1 = 13.96 -> 14 of them
    length = 128
    sample = _staircase(100, length)
    assert _threshold(sample, 50, 1000) == 13
    # a sample that cannot hold enough admits every distance
    # (K = 1,000 of 1,000: 3 sampled items expected, 3.75 + 3 sqrt(3) + 1 asked of 3)
    assert _threshold(sample[:3], 1000, 1000) == length
    assert _threshold(sample[:0], 50, 1000) == length


def test_first_threshold_meets_an_exact_need_at_its_distance():
    # K = 40 of 1,000, 100 sampled items at distance 0..99: 4 expected, need exactly
    # 1.25 * 4 + 3 * 2 + 1 = 12, met by the 12 items at distance 0..11
    assert _threshold(_staircase(100, 128), 40, 1000) == 11


def test_first_threshold_reaches_the_last_distances():
    # 10 sampled items at distance L - 1 and one at L, K = 4 of 20: 2 expected, need 7.74,
    # met at L - 1; the item at L must be counted too (no index past the counters)
    length = 16
    sample = np.zeros((11, length), bool)
    sample[:10, : length - 1] = True
    sample[10] = True
    assert _threshold(sample, 4, 20) == length - 1
    assert _threshold(sample[10:], 1, 2) == length


@pytest.mark.parametrize("top", [301, 600, 999, 1000])
def test_the_second_scan_admits_the_farthest_items(top):
    # 300 items at distance 0 and 700 at distance L (= 4), mixed; the sample holds only items at
    # distance 0, so its threshold admits 300 < K items and the second scan must reach distance L
    rng = np.random.default_rng(8)
    length, n = 4, 1000
    far = rng.permutation(n) >= 300
    d_bits = np.zeros((n, length), bool)
    d_bits[far] = True
    q_bits = np.zeros((2, length), bool)
    near = np.flatnonzero(~far)[:200]
    assert _kernel(q_bits, d_bits, top, sample_rows=near) == plain_ranking(q_bits, d_bits, top)


@pytest.mark.parametrize("top", [1, 2, 3, 8])
def test_compaction_of_a_small_buffer_keeps_the_ranking(top):
    # K small, items arriving in decreasing distance: every item is accepted, the buffer of
    # 4 K entries fills and is compacted many times
    length, n = 40, 600
    d_bits = np.zeros((n, length), bool)
    for j in range(n):
        d_bits[j, : (length - j * length // n)] = True
    q_bits = np.zeros((2, length), bool)
    q_bits[1, ::2] = True
    assert _kernel(q_bits, d_bits, top) == plain_ranking(q_bits, d_bits, top)
    # the smallest buffer the compaction bound allows: 2 K
    assert _kernel(q_bits, d_bits, top, cap=2 * top) == plain_ranking(q_bits, d_bits, top)
    # a sample of codes equal to the query (none of them in the database) admits nothing: the
    # second scan must start from a clean state to keep its buffer within the bound
    out = np.full((1, top), -1, np.int64)
    db_t = np.ascontiguousarray(_words(d_bits).T)
    sample = np.ascontiguousarray(_words(np.zeros((8, length), bool)).T)
    H.topk_rows(_words(q_bits[:1]), db_t, sample, top, length, 2 * top, out)
    assert out.tolist() == plain_ranking(q_bits[:1], d_bits, top)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 70), st.integers(1, 600), st.integers(1, 5),
       st.integers(1, 8), st.booleans())
def test_kernel_matches_plain_ranking_hypothesis(seed, length, n_db, n_q, n_distinct, sampled):
    rng = np.random.default_rng(seed)
    d_bits = tied_codes(rng, n_db, length, n_distinct)
    q_bits = tied_codes(rng, n_q, length, n_distinct)
    top = int(rng.integers(1, n_db + 1))
    rows = np.arange(n_db)[:: max(1, n_db // 16)] if sampled else None
    assert _kernel(q_bits, d_bits, top, sample_rows=rows) == plain_ranking(q_bits, d_bits, top)


# ------------------------------------------------------------------------------------------------
# the backend: chunks, threads, the sample, AP through the public call
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("threads, budget", [(1, 256.0), (2, 256.0), (2, 0.05)])
def test_numba_backend_map_matches_plain_reference(multi, threads, budget):
    rng = np.random.default_rng(17 + int(multi))
    n_db = 16 * 300  # >= 16 x the sample: a sampled first threshold
    d_bits = tied_codes(rng, n_db, 48, 30)
    q_bits = np.concatenate([tied_codes(rng, 9, 48, 30), rng.random((3, 48)) < 0.5])
    ql, dl = labels_for(rng, 12, 4, multi), labels_for(rng, n_db, 4, multi)
    for k in (1, 100, 1000, None):
        got = M.mean_average_precision_per_query(pm1(q_bits), pm1(d_bits), ql, dl, k,
                                                 backend="numba", threads=threads,
                                                 memory_budget_mb=budget)
        np.testing.assert_allclose(got, plain_ap(q_bits, d_bits, ql, dl, k), rtol=0, atol=1e-12)


def test_numba_backend_samples_every_stride_th_item_from_half_a_stride(monkeypatch):
    seen = []

    def topk_rows(q_words, db_words_t, sample, top, length, cap, out):
        seen.append(sample.copy())
        out[:] = 0
    monkeypatch.setattr(H, "topk_rows", topk_rows)
    monkeypatch.setattr(M, "_NUMBA_SAMPLE", 4)
    db_bytes = np.arange(100, dtype=np.uint8)[:, None]

    def sampled(n_db):
        seen.clear()
        list(M._numba_ranking(db_bytes[:2], db_bytes[:n_db], 8, 1, memory_budget_mb=1.0,
                              device=None))
        return seen[0].view(np.uint8).ravel()[::8].tolist()
    assert sampled(100) == [12, 37, 62, 87]  # 4 items, stride 100 // 4 = 25, from item 12
    assert sampled(64) == [8, 24, 40, 56]  # 16 x 4 items: stride 16, from item 8
    assert sampled(63) == [10, 31, 52]  # below 16 x the sample size: 63 // 16 = 3 items
    assert sampled(16) == [8]
    assert sampled(15) == []  # below 16 items: none


def test_numba_chunk_rows_follow_the_budget_and_the_threads():
    # K = 10 of 1,000: cap 40, 12 * 40 + 8 * 10 = 560 bytes per row
    assert M._numba_chunk_rows(1000, 1000, 10, 256.0, 1) == (M._NUMBA_CHUNK_ROWS, 40)
    assert M._numba_chunk_rows(1000, 1000, 10, 560 * 2 * 2 * 5 / 2**20, 2) == (5, 40)
    assert M._numba_chunk_rows(7, 1000, 10, 256.0, 2) == (4, 40)  # one chunk per thread
    assert M._numba_chunk_rows(7, 1000, 10, 1e-6, 2) == (1, 40)  # at least one row
    assert M._numba_chunk_rows(7, 30, 10, 256.0, 1) == (7, 30)  # cap: the whole database
    with pytest.raises(ValueError, match="memory_budget_mb must be a finite number"):
        M._numba_chunk_rows(7, 30, 10, float("inf"), 1)


def test_le_words_pads_to_whole_words_and_keeps_the_bits():
    b = np.arange(30, dtype=np.uint8).reshape(3, 10)
    w = M._le_words(b)
    assert w.dtype == np.uint64 and w.shape == (3, 2)
    assert w.view(np.uint8).reshape(3, 16)[:, :10].tolist() == b.tolist()
    assert not w.view(np.uint8).reshape(3, 16)[:, 10:].any()
    full = np.arange(16, dtype=np.uint8).reshape(2, 8)
    assert np.shares_memory(M._le_words(full), full)  # whole words: a view
    strided = np.arange(32, dtype=np.uint8).reshape(2, 16)[:, ::2]
    assert M._le_words(strided).view(np.uint8).tolist() == strided.tolist()


def test_numba_backend_without_numba_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "brcd_lib.hamming_topk", None)
    with pytest.raises(ImportError, match=r"^backend='numba' needs the numba package \(pip install "
                                          r"numba\); backend='numpy' gives the same values"):
        M.map_at_k(pm1(np.eye(4, dtype=bool)), pm1(np.eye(4, dtype=bool)), np.arange(4),
                   np.arange(4), 2, backend="numba")

"""Mutants that the mutmut run at cfb412c left alive: in brcd_lib.metrics, the numba backend's
chunking and three numpy-backend mutants that the default call killed while it still ran the
numpy backend (it now runs numba, so these tests call the numpy backend by name); in
brcd_lib.distill.memory, the per-row fallback of the class-conditional negatives."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from brcd_lib import hamming_topk as H
from brcd_lib import metrics as M
from test_metrics_fast import labels_for, plain_ap, pm1, tied_codes


def test_topk_chunk_rows_are_whole_numbers():
    # 10,000 queries x 100,000 items, 1-byte distances, 256 MB, 1 thread: half = 128 MiB;
    # 2**20 // 100,000 = 10 rows (above the minimum of 8), selection blocks of 2**20 pairs
    rows, select = M._topk_chunk_rows(10_000, 100_000, 1, 256.0, 1)
    assert (rows, select) == (10, 2**20) and type(rows) is int


def test_candidate_blocks_start_no_empty_block_for_a_row_above_the_limit():
    # candidate pairs per row 24, 8, 8 with a limit of 16: the first row is a block of its own
    groups = np.array([[1, 1, 1], [0, 0, 1], [0, 1, 0]], bool)
    assert M._candidate_blocks(groups, 16) == [(0, 1), (1, 3)]


@pytest.mark.parametrize("fused", [True, False])
def test_numpy_backend_on_a_database_that_is_no_whole_number_of_words(monkeypatch, fused):
    # 4,100 items (not a multiple of 64): the fused path pads each row to whole 64-bit words of
    # candidate groups; the other paths use the database as it is
    monkeypatch.setattr(M, "_FUSED_MIN_BYTES", 0 if fused else 1 << 60)
    rng = np.random.default_rng(41)
    d_bits = tied_codes(rng, 4100, 24, 40)
    q_bits = tied_codes(rng, 6, 24, 40)
    ql, dl = labels_for(rng, 6, 3, False), labels_for(rng, 4100, 3, False)
    for k in (7, 300):
        got = M.mean_average_precision_per_query(pm1(q_bits), pm1(d_bits), ql, dl, k,
                                                 backend="numpy", threads=1)
        np.testing.assert_allclose(got, plain_ap(q_bits, d_bits, ql, dl, k), rtol=0, atol=1e-12)


def test_numba_chunk_rows_per_row_bytes():
    # K = 10 of 1,000: cap 40, 12 * 40 + 8 * 10 = 560 bytes per row; 3,359 bytes for the
    # thread's chunk hold 5 rows (6 would need 3,360)
    budget = 2 * 3359 / 2**20
    assert M._numba_chunk_rows(1000, 1000, 10, budget, 1) == (5, 40)


def _spy_kernel(monkeypatch):
    calls = []

    def topk_rows(q_words, db_words_t, sample, top, length, cap, out):
        calls.append((q_words.shape[0], threading.current_thread().name))
        out[:] = 0
    monkeypatch.setattr(H, "topk_rows", topk_rows)
    return calls


def test_numba_backend_calls_the_kernel_once_per_chunk(monkeypatch):
    calls = _spy_kernel(monkeypatch)
    db = np.arange(40, dtype=np.uint8)[:, None]
    chunks = list(M._numba_ranking(db[:7], db, 8, 3, memory_budget_mb=1.0, device=None,
                                   threads=2))
    assert [rows for rows, _ in chunks] == [slice(0, 4), slice(4, 7)]
    assert sorted(c[0] for c in calls) == [3, 4]


def test_numba_backend_default_threads_is_one(monkeypatch):
    calls = _spy_kernel(monkeypatch)
    db = np.arange(40, dtype=np.uint8)[:, None]
    chunks = list(M._numba_ranking(db[:7], db, 8, 3, memory_budget_mb=1.0, device=None))
    assert [rows for rows, _ in chunks] == [slice(0, 7)]
    assert calls == [(7, threading.current_thread().name)]


def test_a_row_with_no_label_free_item_draws_from_the_others_while_the_rest_keep_theirs():
    # distill.memory (sample_class_negatives__mutmut_30, `any(dim=None)`): item 0 shares a label
    # with every other item, so its row falls back to all other items; item 1's row keeps its
    # own pool (item 2 only). A check over the whole batch instead of per row misses row 0.
    import torch

    from brcd_lib.distill.memory import MomentumMemory

    labels = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 0]], dtype=torch.float32)
    mem = MomentumMemory(n_items=4, dim=2, momentum=0.5, seed=0)
    neg = mem.sample_class_negatives(torch.tensor([0, 1]), 50, labels)
    assert set(neg[0].tolist()) == {1, 2, 3}
    assert set(neg[1].tolist()) == {2}

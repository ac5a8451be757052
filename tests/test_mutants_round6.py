"""Tests written against the last survivors and timeouts of the mutation run (docs/testing.md).

Each pins a documented property that the existing tests left open:

* ``metrics._rank_candidates`` bounds every row of the distance matrix, also when a chunk holds
  more rows than the matrix has columns (more queries than database items);
* ``metrics._pack_rows`` checks a range of rows in one pass over disjoint blocks ("one pass over
  blocks of rows"), reading each row once;
* ``clustering.nearest_centroid`` covers every row when the rows span more than two chunks;
* ``sskd.kept_rows`` keeps the wrong rows of equal rank in row order (a stable sort), also for
  batches large enough that an unstable sort reorders ties.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import brcd_lib.distill.clustering as clu
from brcd_lib import metrics as M
from brcd_lib.distill.sskd import kept_rows


# --------------------------------------------------------------------- _rank_candidates bounds

@pytest.mark.parametrize("rows, cols", [(9, 3), (5, 1), (12, 4)])
def test_given_thresholds_rank_every_row_of_a_tall_matrix(rows, cols):
    """More rows than columns: each row still gets its own stable top-k; rows with enough
    candidates take the candidate path, the others the raised-threshold path."""
    rng = np.random.default_rng(rows * 10 + cols)
    dist = rng.integers(0, 4, size=(rows, cols)).astype(np.uint8)
    k = max(1, cols - 1)
    thresholds = np.where(np.arange(rows) % 2 == 0, 3, 0).astype(np.uint8)
    got = M.stable_topk_rows(dist, k, thresholds=thresholds)
    want = np.argsort(dist, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------- _pack_rows: one pass

def test_pack_rows_reads_each_row_once_in_disjoint_blocks(monkeypatch):
    """Blocks of 2 rows (16 entries of 8 bits): rows 1..6 are read as [1,3), [3,5), [5,7)."""
    monkeypatch.setattr(M, "_CHECK_BLOCK", 16)
    rng = np.random.default_rng(3)
    codes = np.where(rng.random((8, 8)) < 0.5, 1.0, -1.0)
    reads = []

    def to_numpy(block):
        reads.append(block.shape[0])
        return np.asarray(block)

    out = np.zeros((8, 1), np.uint8)
    unset = M._pack_rows(codes.astype(np.float32), to_numpy, out, 1, 7, None, "codes")
    assert reads == [2, 2, 2]
    assert unset == -1
    np.testing.assert_array_equal(out[1:7], np.packbits(codes[1:7] > 0, axis=1))
    assert not out[[0, 7]].any()


# --------------------------------------------------------------------- nearest_centroid chunks

# 4 centroids of 2 bits and 5 rows whose nearest centroid is 3 (a skipped row would keep what
# torch.empty left there)
_MU4 = torch.tensor([[-9.0, -9.0], [-8.0, -8.0], [-7.0, -7.0], [1.0, 1.0]])
_ROWS5 = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [1.0, -1.0]])


def test_nearest_centroid_chunks_of_one_row_cover_every_row(monkeypatch):
    # chunk = max(1, 8 // (4 * 2)) = 1 row: the 5 rows are 5 chunks
    monkeypatch.setattr(clu, "_NEAREST_CHUNK_ELEMENTS", 8)
    assert clu.nearest_centroid(_ROWS5, _MU4).tolist() == [3, 3, 3, 3, 3]


# --------------------------------------------------------------------- kept_rows stability

def _kept_rows_reference(sim: np.ndarray, n_copies: int, ratio: float) -> list[int]:
    """SSKD's selection by hand: rank = columns scoring above the right one; rows ordered by
    (rank, row), the first rows - n_wrong + int(n_wrong * ratio) kept, returned sorted."""
    rows = sim.shape[0]
    rank = [int((sim[r] > sim[r, r // n_copies]).sum()) for r in range(rows)]
    n_wrong = sum(v > 0 for v in rank)
    n_keep = rows - n_wrong + int(n_wrong * ratio)
    return sorted(sorted(range(rows), key=lambda r: (rank[r], r))[:n_keep])


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_kept_rows_keeps_tied_wrong_rows_in_row_order_in_a_large_batch(ratio):
    # 64 images, 4 copies: 256 rows whose scores take 3 values, so most wrong rows share a rank
    # with many others and the cut at n_keep falls inside a run of ties
    rng = np.random.default_rng(7)
    sim = rng.integers(0, 3, size=(256, 64)).astype(np.float32)
    got = kept_rows(torch.from_numpy(sim), 4, ratio).tolist()
    assert got == _kept_rows_reference(sim, 4, ratio)

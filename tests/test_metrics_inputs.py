"""The call users make: float codes in (NumPy or torch, +-1 or 0/1), checked and packed in one pass
over blocks of rows; the metric importable and callable without torch; the fused top-K path
(distances + candidate groups in one tile loop) exact on padded, multi-tile and tied inputs.

Every expected value here comes from a plain reference written in this file (stable argsort of
integer Hamming distances), never from the module under test."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from brcd_lib import metrics as M

ROOT = Path(__file__).resolve().parents[1]
CODES_ERROR = r"must hold \+-1 or 0/1 values \(one convention per array\)"


def plain_ap(q_bits: np.ndarray, d_bits: np.ndarray, ql: np.ndarray, dl: np.ndarray,
             k: int) -> np.ndarray:
    """AP@K per query: stable argsort of the integer Hamming distances, class-id relevance."""
    out = []
    for i in range(q_bits.shape[0]):
        dist = (d_bits != q_bits[i]).sum(axis=1)
        rel = dl[np.argsort(dist, kind="stable")[:k]] == ql[i]
        hits = np.cumsum(rel)
        out.append(float((hits / np.arange(1, rel.size + 1))[rel].sum() / hits[-1])
                   if hits[-1] else 0.0)
    return np.array(out)


def tied_bits(rng, n: int, length: int, n_distinct: int) -> np.ndarray:
    base = rng.random((n_distinct, length)) < 0.5
    return base[rng.integers(0, n_distinct, n)]


# ------------------------------------------------------------------------------------------------
# no torch for NumPy inputs
# ------------------------------------------------------------------------------------------------

_NO_TORCH = textwrap.dedent("""
    import sys
    import numpy as np
    {imports}
    rng = np.random.default_rng(0)
    q = np.where(rng.random((5, 32)) < 0.5, -1.0, 1.0).astype(np.float32)
    d = np.where(rng.random((300, 32)) < 0.5, -1.0, 1.0).astype(np.float32)
    ql, dl = rng.integers(0, 3, 5), rng.integers(0, 3, 300)
    value = map_at_k(q, d, ql, dl, 50)
    assert 0.0 <= value <= 1.0, value
    M.pr_curve(q, d, ql, dl)
    M.precision_at_k_curve(q, d, ql, dl, [1, 10])
    M.hamming_distance(q, d)
    M.mean_average_precision_per_query(M.pack_codes(q), M.pack_codes(d), ql, dl, 50, packed=True)
    print("torch imported:", "torch" in sys.modules)
""")


@pytest.mark.parametrize("imports", [
    "import brcd_lib.metrics as M\nfrom brcd_lib.metrics import map_at_k",
    "from brcd_lib import map_at_k\nimport brcd_lib.metrics as M",
])
def test_metric_imports_and_runs_without_torch(imports):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", _NO_TORCH.format(imports=imports)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "torch imported: False", done.stdout


# ------------------------------------------------------------------------------------------------
# the one-pass check: exactly as strict as before, every dtype and form
# ------------------------------------------------------------------------------------------------


def _codes(rng, n=40, length=24):
    bits = rng.random((n, length)) < 0.5
    return bits, np.where(bits, 1.0, -1.0)


@pytest.mark.parametrize("form", ["float32 pm1", "float64 pm1", "float16 pm1", "int8 pm1",
                                  "int64 pm1", "float32 01", "uint8 01", "int32 01", "bool",
                                  "float32 01 with -0.0", "fortran float32 pm1",
                                  "strided float64 pm1"])
def test_every_accepted_form_packs_like_packbits(form):
    rng = np.random.default_rng(3)
    bits, pm1 = _codes(rng)
    codes = {
        "float32 pm1": pm1.astype(np.float32), "float64 pm1": pm1,
        "float16 pm1": pm1.astype(np.float16), "int8 pm1": pm1.astype(np.int8),
        "int64 pm1": pm1.astype(np.int64), "float32 01": bits.astype(np.float32),
        "uint8 01": bits.astype(np.uint8), "int32 01": bits.astype(np.int32), "bool": bits,
        "float32 01 with -0.0": np.where(bits, 1.0, -0.0).astype(np.float32),
        "fortran float32 pm1": np.asfortranarray(pm1.astype(np.float32)),
        "strided float64 pm1": np.repeat(pm1, 2, axis=1)[:, ::2],
    }[form]
    np.testing.assert_array_equal(M.pack_codes(codes), np.packbits(bits, axis=1))


@pytest.mark.parametrize("bad, where", [
    (0.5, "found 0.5 at row 17, column 5"),
    (2.0, "found 2.0 at row 17, column 5"),
    (-2.0, "found -2.0 at row 17, column 5"),
    (np.nan, "found nan at row 17, column 5"),
    (np.inf, "found inf at row 17, column 5"),
    (0.0, "found 0.0 at row 17, column 5 (the array also holds -1"),  # +-1 codes with one 0
])
def test_bad_values_are_named_with_their_position(bad, where):
    rng = np.random.default_rng(4)
    _, pm1 = _codes(rng)
    pm1[17, 5] = bad
    with pytest.raises(ValueError, match=CODES_ERROR) as err:
        M.map_at_k(pm1[:3], pm1, np.zeros(3, int), np.zeros(40, int), 5)
    assert where in str(err.value)
    assert "binarise first" in str(err.value)


def test_mixed_conventions_are_refused_in_one_block_across_blocks_and_across_threads(
        monkeypatch):
    rng = np.random.default_rng(5)
    bits, pm1 = _codes(rng, n=4000, length=16)
    mixed = pm1.copy()
    mixed[3000:] = bits[3000:]  # 0/1 from row 3000 on
    for block, parallel in ((1 << 16, 1 << 22), (64, 1 << 22), (64, 1000)):
        monkeypatch.setattr(M, "_CHECK_BLOCK", block)
        monkeypatch.setattr(M, "_PARALLEL_CHECK_ENTRIES", parallel)
        for threads in (1, 2, 3):
            with pytest.raises(ValueError, match=CODES_ERROR) as err:
                M._pack_checked(mixed, "db_codes", threads)
            assert "at row 3000" in str(err.value) and "cannot be mixed" in str(err.value)
            packed, length = M._pack_checked(pm1, "db_codes", threads)
            assert length == 16
            np.testing.assert_array_equal(packed, np.packbits(bits, axis=1))
            np.testing.assert_array_equal(M._pack_checked(bits.astype(np.float32), "d",
                                                          threads)[0], packed)


def test_all_set_codes_and_shape_errors():
    ones = np.ones((3, 9), np.float32)  # every bit set: either convention
    np.testing.assert_array_equal(M.pack_codes(ones), np.packbits(ones > 0, axis=1))
    with pytest.raises(ValueError, match=r"shape \(n, L\)"):
        M.pack_codes(np.ones(5))
    with pytest.raises(ValueError, match="code length 0"):
        M.pack_codes(np.ones((5, 0)))
    with pytest.raises(ValueError, match="numeric array"):
        M.pack_codes(np.array([[1, -1]], dtype=object))
    with pytest.raises(ValueError, match="numeric array"):
        M.pack_codes(np.array([[1 + 0j, -1]]))
    with pytest.raises(ValueError, match="query codes have 8 bits but database codes have 9"):
        M.map_at_k(np.ones((2, 8)), ones, np.zeros(2, int), np.zeros(3, int))


def test_the_check_makes_no_full_size_temporary():
    """A 200,000 x 64 float32 database (49 MiB): the check and packing allocate a few blocks
    (the packed result is 1.5 MiB), never a bool or float copy of the whole array."""
    rng = np.random.default_rng(6)
    d = np.where(rng.random((200_000, 64), dtype=np.float32) < 0.5, np.float32(-1),
                 np.float32(1))
    tracemalloc.start()
    try:
        packed = M.pack_codes(d)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert packed.shape == (200_000, 8)
    assert peak < 4 * 2**20, f"tracemalloc peak {peak / 2**20:.1f} MiB"


def test_torch_codes_bfloat16_and_float32_give_the_numpy_value():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    q_bits, d_bits = tied_bits(rng, 6, 32, 9), tied_bits(rng, 500, 32, 9)
    ql, dl = rng.integers(0, 3, 6), rng.integers(0, 3, 500)
    expected = plain_ap(q_bits, d_bits, ql, dl, 60)
    for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.int8):
        q = torch.where(torch.from_numpy(q_bits), 1.0, -1.0).to(dtype)
        d = torch.where(torch.from_numpy(d_bits), 1.0, -1.0).to(dtype)
        got = M.mean_average_precision_per_query(q, d, torch.from_numpy(ql), dl, 60)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    bad = torch.where(torch.from_numpy(d_bits), 1.0, 0.5).to(torch.bfloat16)
    with pytest.raises(ValueError, match=CODES_ERROR):
        M.map_at_k(q, bad, ql, dl, 60)


def test_meta_tensors_get_a_clear_error():
    torch = pytest.importorskip("torch")
    meta = torch.empty((4, 16), device="meta")
    real = torch.ones((4, 16))
    labels = np.zeros(4, int)
    for q, d, what in ((meta, real, "query_codes"), (real, meta, "db_codes")):
        with pytest.raises(ValueError, match=f"{what} is a tensor on the 'meta' device"):
            M.map_at_k(q, d, labels, labels, 2)
    with pytest.raises(ValueError, match="query_labels is a tensor on the 'meta' device"):
        M.map_at_k(real, real, torch.zeros(4, device="meta"), labels, 2)


# ------------------------------------------------------------------------------------------------
# labels: a single column is ambiguous
# ------------------------------------------------------------------------------------------------


def test_a_single_label_column_is_refused_with_both_readings_and_the_fix():
    rng = np.random.default_rng(8)
    q, d = np.where(rng.random((5, 16)) < 0.5, -1.0, 1.0), np.where(rng.random((30, 16)) < .5,
                                                                      -1.0, 1.0)
    ids_q, ids_d = rng.integers(0, 2, 5), rng.integers(0, 2, 30)
    for ql, dl, what in ((ids_q[:, None], ids_d, "query_labels"),
                         (ids_q, ids_d[:, None], "db_labels"),
                         (ids_q[:, None], ids_d[:, None], "query_labels")):
        with pytest.raises(ValueError, match=rf"{what} has shape \(\d+, 1\): a single column "
                                             r"reads either as class ids or as multi-hot"):
            M.map_at_k(q, d, ql, dl, 10)
    # the two fixes it names give the two readings
    as_ids = M.map_at_k(q, d, ids_q[:, None][:, 0], ids_d[:, None].ravel(), 10)
    as_one_hot = M.map_at_k(q, d, np.eye(2)[ids_q], np.eye(2)[ids_d], 10)
    assert as_ids == as_one_hot


def test_multi_hot_label_check_is_blockwise_and_as_strict(monkeypatch):
    monkeypatch.setattr(M, "_CHECK_BLOCK", 16)  # a block of a few rows
    rng = np.random.default_rng(9)
    q = np.where(rng.random((4, 8)) < 0.5, -1.0, 1.0)
    d = np.where(rng.random((50, 8)) < 0.5, -1.0, 1.0)
    ql = (rng.random((4, 5)) < 0.4).astype(np.float32)
    dl = (rng.random((50, 5)) < 0.4).astype(np.float32)
    base = M.map_at_k(q, d, ql, dl, 20)
    assert base == M.map_at_k(q, d, ql.astype(bool), dl.astype(np.uint8), 20)
    for bad in (0.5, 2.0, -1.0, np.nan):
        worse = dl.copy()
        worse[47, 2] = bad
        with pytest.raises(ValueError, match=r"db_labels must be multi-hot 0/1 \(n, C\)"):
            M.map_at_k(q, d, ql, worse, 20)


# ------------------------------------------------------------------------------------------------
# the top-K paths (fused and per chunk): padding, many tiles, uint16 distances, split blocks
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length, n_db, n_distinct", [(64, 10_001, 40), (16, 9_999, 300),
                                                      (72, 8_193, 25), (300, 4_100, 20)])
@pytest.mark.parametrize("tiles", ["default", "tiny"])
@pytest.mark.parametrize("fused", [True, False])
def test_top_k_paths_match_the_plain_reference(monkeypatch, length, n_db, n_distinct, tiles,
                                               fused):
    # fused: candidates marked in the tile loop (the path of databases of millions of items)
    monkeypatch.setattr(M, "_FUSED_MIN_BYTES", 0 if fused else 1 << 60)
    if tiles == "tiny":  # many tiles, a partial last tile, rows split over tiles
        monkeypatch.setattr(M, "_TILE_WORDS", 192)
        monkeypatch.setattr(M, "_TILE_WIDTH", 64)
        monkeypatch.setattr(M, "_SELECT_PAIRS", 1 << 12)  # candidate blocks of a few rows
    rng = np.random.default_rng(length + n_db)
    d_bits = tied_bits(rng, n_db, length, n_distinct)
    q_bits = np.concatenate([tied_bits(rng, 9, length, n_distinct), rng.random((4, length)) < .5])
    ql, dl = rng.integers(0, 4, 13), rng.integers(0, 4, n_db)
    for k in (1, 64, 500):
        expected = plain_ap(q_bits, d_bits, ql, dl, k)
        for threads in (1, 2):
            got = M.mean_average_precision_per_query(np.where(q_bits, 1.0, -1.0),
                                                     np.where(d_bits, 1.0, -1.0), ql, dl, k,
                                                     threads=threads)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_candidate_blocks_split_on_candidates():
    groups = np.zeros((5, 16), bool)
    groups[1, :10] = True   # 80 pairs
    groups[3, :3] = True    # 24 pairs
    assert M._candidate_blocks(groups, 1000) == [(0, 5)]
    # rows are added while the block's pairs stay within the limit; a row over it stands alone
    assert M._candidate_blocks(groups, 80) == [(0, 3), (3, 5)]
    assert M._candidate_blocks(groups, 20) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]


def test_default_threads_without_torch_follow_the_cpu_affinity():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = ("import os, sys, brcd_lib.metrics as M; "
            "print(M._default_threads() == len(os.sched_getaffinity(0)), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.stdout.split() == ["True", "False"], done.stderr


def test_memory_budget_is_shared_by_threads_without_starving_the_chunks():
    # 256 MiB over 16 threads at a million items: each thread still holds several rows
    rows, select = M._topk_chunk_rows(1000, 1_000_064, 1, 256.0, 16)
    assert rows >= 4 and select >= 1_000_064 // 8
    # 2 threads: the usual chunk (at least _MIN_CHUNK_ROWS rows) and the full selection block
    assert M._topk_chunk_rows(1000, 1_000_064, 1, 256.0, 2) == (M._MIN_CHUNK_ROWS,
                                                                M._SELECT_PAIRS)
    # a tiny budget: one row, never zero
    assert M._topk_chunk_rows(1000, 1_000_064, 1, 0.01, 2)[0] == 1

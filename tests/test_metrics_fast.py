"""Exactness of the fast top-K paths of brcd_lib.metrics (sampled threshold, fallbacks, threads, the
faiss backend) against a plain per-query reference written below, on integer codes with heavy
exact ties. Nothing here depends on float ties or on the CPU: distances are integer bit counts and
every ranking is compared element by element."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brcd_lib import metrics as M

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------
# the plain reference: one query at a time, integer distances, sort by (distance, index)
# ------------------------------------------------------------------------------------------------


def plain_ranking(q_bits: np.ndarray, d_bits: np.ndarray, k: int | None) -> list[list[int]]:
    """Per query: database indices sorted by (Hamming distance, index), the first k."""
    n = d_bits.shape[0]
    top = n if k is None else min(k, n)
    rankings = []
    for qi in q_bits:
        dist = [int(x) for x in (d_bits != qi).sum(axis=1)]
        rankings.append(sorted(range(n), key=lambda j: (dist[j], j))[:top])
    return rankings


def plain_label_sets(labels: np.ndarray) -> list[set[int]]:
    """Class ids (n,) or multi-hot (n, C) -> one set of classes per item."""
    if labels.ndim == 1:
        return [{int(c)} for c in labels]
    return [set(np.flatnonzero(row).tolist()) for row in labels]


def plain_ap(q_bits, d_bits, q_labels, d_labels, k) -> np.ndarray:
    """AP@K per query, BRCD convention: (1/R) sum over relevant ranks i of hits(i)/i; R = 0 -> 0."""
    q_sets, d_sets = plain_label_sets(q_labels), plain_label_sets(d_labels)
    out = []
    for qi, order in enumerate(plain_ranking(q_bits, d_bits, k)):
        hits, total = 0, 0.0
        for rank, j in enumerate(order, start=1):
            if q_sets[qi] & d_sets[j]:
                hits += 1
                total += hits / rank
        out.append(total / hits if hits else 0.0)
    return np.array(out)


def tied_codes(rng, n: int, length: int, n_distinct: int) -> np.ndarray:
    """n codes (bool bits) drawn from only ``n_distinct`` distinct codes: heavy exact ties."""
    base = rng.random((n_distinct, length)) < 0.5
    return base[rng.integers(0, n_distinct, n)]


def labels_for(rng, n: int, n_classes: int, multi: bool) -> np.ndarray:
    if multi:
        return (rng.random((n, n_classes)) < 0.3).astype(np.uint8)
    return rng.integers(0, n_classes, n)


def pm1(bits: np.ndarray) -> np.ndarray:
    return np.where(bits, 1.0, -1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# golden cases: the sampled-threshold path, its fallback, threads, K beyond the database
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("length, n_distinct", [(16, 12), (64, 40), (8, 5)])
@pytest.mark.parametrize("margin", [1.0, -10.0])  # -10: every row takes the fallback
@pytest.mark.parametrize("fused", [False, True])  # True: candidates marked in the tile loop
def test_map_at_k_matches_plain_reference_with_heavy_ties(monkeypatch, multi, length, n_distinct,
                                                          margin, fused):
    monkeypatch.setattr(M, "_CANDIDATE_MARGIN", margin)
    monkeypatch.setattr(M, "_FUSED_MIN_BYTES", 0 if fused else 1 << 60)
    rng = np.random.default_rng(length * 7 + n_distinct + int(multi))
    n_db, n_q = 4096, 12  # n_db >= 4 * sample size: the sampled-threshold path
    d_bits = tied_codes(rng, n_db, length, n_distinct)
    q_bits = np.concatenate([tied_codes(rng, n_q - 2, length, n_distinct),
                             rng.random((2, length)) < 0.5])
    ql, dl = labels_for(rng, n_q, 4, multi), labels_for(rng, n_db, 4, multi)
    for k in (1, 37, 300, 512):
        expected = plain_ap(q_bits, d_bits, ql, dl, k)
        for threads in (1, 2):
            got = M.mean_average_precision_per_query(pm1(q_bits), pm1(d_bits), ql, dl, k,
                                                     backend="numpy", threads=threads)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("multi", [False, True])
def test_k_beyond_database_and_zero_hit_queries(multi):
    rng = np.random.default_rng(11)
    d_bits = tied_codes(rng, 300, 16, 6)
    q_bits = tied_codes(rng, 5, 16, 6)
    dl = labels_for(rng, 300, 3, multi)
    if multi:
        ql = (rng.random((5, 4)) < 0.5).astype(np.uint8)
        dl = np.concatenate([dl, np.zeros((300, 1), np.uint8)], axis=1)
        ql[0] = [0, 0, 0, 1]  # class 3 is nowhere in the database: AP 0
    else:
        ql = rng.integers(0, 3, 5)
        ql[0] = 7  # class 7 is nowhere in the database: AP 0
    for k in (None, 300, 301, 10_000):
        expected = plain_ap(q_bits, d_bits, ql, dl, k)
        assert expected[0] == 0.0
        got = M.mean_average_precision_per_query(pm1(q_bits), pm1(d_bits), ql, dl, k,
                                                 backend="numpy", threads=2)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        assert M.map_at_k(pm1(q_bits), pm1(d_bits), ql, dl, k) == pytest.approx(
            expected.mean(), abs=1e-12)


def test_stable_topk_rows_against_plain_sort_with_ties_at_the_boundary():
    # every row: a block of equal values straddles position k, so the k-th value is tied
    rng = np.random.default_rng(5)
    n, k = 20_000, 1000
    dist = rng.integers(3, 9, (6, n)).astype(np.uint8)
    dist[:, rng.choice(n, 700, replace=False)] = 2  # 700 items below, then ties at value 3
    for margin in (4.0, 1.0, 0.0, -10.0):
        got = M.stable_topk_rows(dist, k, sample_size=512, candidate_margin=margin)
        for r in range(dist.shape[0]):
            expected = sorted(range(n), key=lambda j: (int(dist[r, j]), j))[:k]
            assert got[r].tolist() == expected


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([8, 16, 24, 64, 72, 264]), st.integers(1, 30),
       st.integers(2048, 5000), st.integers(1, 600), st.booleans(), st.sampled_from([1, 2]),
       st.sampled_from([1.0, 0.0, -3.0]))
def test_hypothesis_exact_ties_sampled_path(seed, length, n_distinct, n_db, k, multi, threads,
                                            margin):
    rng = np.random.default_rng(seed)
    d_bits = tied_codes(rng, n_db, length, n_distinct)
    q_bits = tied_codes(rng, 4, length, n_distinct)
    ql, dl = labels_for(rng, 4, 3, multi), labels_for(rng, n_db, 3, multi)
    expected = plain_ap(q_bits, d_bits, ql, dl, k)
    old, M._CANDIDATE_MARGIN = M._CANDIDATE_MARGIN, margin  # no function-scoped fixture in @given
    try:
        got = M.mean_average_precision_per_query(
            M.pack_codes(q_bits), M.pack_codes(d_bits), ql, dl, k, packed=True,
            code_length=length, backend="numpy", threads=threads, memory_budget_mb=1.0)
    finally:
        M._CANDIDATE_MARGIN = old
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_threads_and_chunking_do_not_change_the_ranking():
    rng = np.random.default_rng(2)
    q = tied_codes(rng, 40, 32, 50)
    d = tied_codes(rng, 6000, 32, 50)
    ql, dl = rng.integers(0, 5, 40), rng.integers(0, 5, 6000)
    base = M.mean_average_precision_per_query(pm1(q), pm1(d), ql, dl, 200, threads=1)
    for threads, budget in ((2, 256.0), (3, 0.05), (1, 1e-6)):
        got = M.mean_average_precision_per_query(pm1(q), pm1(d), ql, dl, 200, threads=threads,
                                                 memory_budget_mb=budget)
        np.testing.assert_array_equal(got, base)
    np.testing.assert_allclose(base, plain_ap(q, d, ql, dl, 200), rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_threads_raise(bad):
    q = pm1(np.ones((1, 8), bool))
    with pytest.raises(ValueError, match="threads"):
        M.map_at_k(q, q, np.array([0]), np.array([0]), threads=bad)


def test_average_precision_from_ranking():
    ranking = np.array([[0, 2, 1, 4, 3]])
    # relevance 0, 1, 1, 0, 1 (class 0 at 1, 2, 3): (1/2 + 2/3 + 3/5) / 3 = 53/90
    got = M.average_precision_from_ranking(ranking, np.array([0]), np.array([1, 0, 0, 0, 1]))
    assert got[0] == pytest.approx(53 / 90, abs=1e-15)
    with pytest.raises(ValueError, match="outside the database"):
        M.average_precision_from_ranking(np.array([[0, -1]]), np.array([0]), np.array([0, 1]))


# ------------------------------------------------------------------------------------------------
# the call's own memory on a large database
# ------------------------------------------------------------------------------------------------


def test_memory_of_the_call_is_bounded_on_a_million_codes():
    rng = np.random.default_rng(0)
    n_db = 1_000_000
    db = rng.integers(0, 256, (n_db, 8), dtype=np.uint8)
    q = rng.integers(0, 256, (4, 8), dtype=np.uint8)
    dl, ql = rng.integers(0, 10, n_db), rng.integers(0, 10, 4)
    tracemalloc.start()
    try:
        M.mean_average_precision_per_query(q, db, ql, dl, 1000, packed=True, threads=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"tracemalloc peak {peak / 2**20:.1f} MiB"


# ------------------------------------------------------------------------------------------------
# faiss: its own tie order, and the backend without any repair
# ------------------------------------------------------------------------------------------------


def _ties_case(seed: int = 1):
    rng = np.random.default_rng(seed)
    d_bits = tied_codes(rng, 6000, 64, 30)
    q_bits = tied_codes(rng, 24, 64, 30)
    flips = rng.random(q_bits.shape) < 0.03  # some queries sit between the distinct codes
    return q_bits ^ flips, d_bits


def _boundary_ks(dist_row: np.ndarray) -> list[int]:
    """K values that cut a group of equal distances in the middle (the K-th distance is tied)."""
    counts = np.bincount(dist_row)
    cum = np.cumsum(counts)
    ks = [int(cum[v - 1] + counts[v] // 2) for v in range(1, counts.size) if counts[v] >= 4]
    return [k for k in ks if 0 < k < dist_row.size][:4]


@pytest.mark.parametrize("use_heap", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_faiss_returns_ties_in_database_index_order(use_heap, threads):
    faiss = pytest.importorskip("faiss")
    q_bits, d_bits = _ties_case()
    qp, dp = M.pack_codes(q_bits), M.pack_codes(d_bits)
    dist = (q_bits[:, None, :] != d_bits[None, :, :]).sum(axis=2)
    ks = sorted({k for row in dist[:3] for k in _boundary_ks(row)} | {1, 6000})
    assert len(ks) > 4  # several K that cut a group of tied distances
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        index = faiss.IndexBinaryFlat(64)
        index.use_heap = use_heap
        index.add(dp)
        for k in ks:
            distances, ids = index.search(qp, k)
            expected = np.argsort(dist, axis=1, kind="stable")[:, :k]  # integer keys: exact
            np.testing.assert_array_equal(ids, expected)
            np.testing.assert_array_equal(distances, np.take_along_axis(dist, expected, axis=1))
            # the K-th distance is tied with items left out, and the kept ones are the first
            kth = distances[:, -1]
            left_out_ties = (dist == kth[:, None]).sum(axis=1) > (distances == kth[:, None]).sum(1)
            if k < 6000:
                assert left_out_ties.any() or k == 1
    finally:
        faiss.omp_set_num_threads(before)


@pytest.mark.parametrize("multi", [False, True])
def test_faiss_backend_equals_numpy_backend(multi):
    pytest.importorskip("faiss")
    q_bits, d_bits = _ties_case(3)
    rng = np.random.default_rng(4)
    ql, dl = labels_for(rng, q_bits.shape[0], 4, multi), labels_for(rng, d_bits.shape[0], 4, multi)
    dist = (q_bits[:, None, :] != d_bits[None, :, :]).sum(axis=2)
    for k in sorted(set(_boundary_ks(dist[0])) | {1, 100}) + [None]:
        expected = plain_ap(q_bits, d_bits, ql, dl, k)
        for budget in (256.0, 0.01):  # 0.01 MiB: faiss in heap mode, one query per search
            got = M.mean_average_precision_per_query(pm1(q_bits), pm1(d_bits), ql, dl, k,
                                                     backend="faiss", memory_budget_mb=budget)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        got_np = M.mean_average_precision_per_query(pm1(q_bits), pm1(d_bits), ql, dl, k,
                                                    backend="numpy", threads=2)
        np.testing.assert_allclose(got_np, expected, rtol=0, atol=1e-12)


def test_faiss_backend_makes_no_range_search(monkeypatch):
    faiss = pytest.importorskip("faiss")

    def forbidden(*args, **kwargs):
        raise AssertionError("range_search called")

    monkeypatch.setattr(faiss.IndexBinaryFlat, "range_search", forbidden)
    q_bits, d_bits = _ties_case(5)
    ql, dl = np.arange(24) % 3, np.arange(6000) % 3
    got = M.mean_average_precision_per_query(pm1(q_bits), pm1(d_bits), ql, dl, 250,
                                             backend="faiss")
    np.testing.assert_allclose(got, plain_ap(q_bits, d_bits, ql, dl, 250), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_bytes, top, budget_mb, want", [
    # counting buffer: 32 queries x (8 * 8 + 1) distances x 1000 ids x 8 B = 16,640,000 B; half of
    # 33,280,000 B (31.73828125 MiB) is exactly that: it fits (not greater), so counting mode.
    # Queries per search: 33,280,000 // (2 x 12 B x 1000) = 1386
    (8, 1000, 33_280_000 / 2**20, (False, 1386)),
    # one byte less of budget: half is 16,639,999.5 B < 16,640,000 B -> heap; 33,279,999 // 24,000
    (8, 1000, 33_279_999 / 2**20, (True, 1386)),
    # 256 MiB: half is 134,217,728 B, counting fits; 268,435,456 // 24,000 = 11,184 -> cap 4096
    (8, 1000, 256.0, (False, 4096)),
    # 1 MiB: heap; 1,048,576 // 24,000 = 43
    (8, 1000, 1.0, (True, 43)),
    # 0.01 MiB: 10,485.76 // 24,000 = 0 -> at least one query per search
    (8, 1000, 0.01, (True, 1)),
    # 16 bits, K = 10: counting 32 x 17 x 10 x 8 = 43,520 B > 419.4 B; 838.86 // 240 = 3
    (2, 10, 0.0008, (True, 3)),
])
def test_faiss_plan_by_hand(n_bytes, top, budget_mb, want):
    assert M._faiss_plan(n_bytes, top, budget_mb, 32) == want


def test_faiss_searches_each_query_once_in_budget_sized_chunks(monkeypatch):
    faiss = pytest.importorskip("faiss")
    searched = []

    class Recording:
        """IndexBinaryFlat that records how many queries each search gets."""
        def __init__(self, d):
            object.__setattr__(self, "inner", faiss.IndexBinaryFlat(d))

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __setattr__(self, name, value):
            setattr(self.inner, name, value)

        def search(self, q, k):
            searched.append(q.shape[0])
            return self.inner.search(q, k)

    class Faiss:  # the faiss module with the recording index
        IndexBinaryFlat = Recording
        omp_get_max_threads = staticmethod(faiss.omp_get_max_threads)
        omp_set_num_threads = staticmethod(faiss.omp_set_num_threads)

    monkeypatch.setattr(M, "_import_faiss", lambda: Faiss)
    rng = np.random.default_rng(6)
    q_bits, d_bits = rng.random((7, 16)) < 0.5, rng.random((40, 16)) < 0.5
    ql, dl = np.arange(7) % 2, np.arange(40) % 2
    got = M.mean_average_precision_per_query(pm1(q_bits), pm1(d_bits), ql, dl, 10,
                                             backend="faiss", memory_budget_mb=0.0008)
    assert searched == [3, 3, 1]  # 3 queries per search (test_faiss_plan_by_hand), 7 in all
    np.testing.assert_allclose(got, plain_ap(q_bits, d_bits, ql, dl, 10), rtol=0, atol=1e-12)


def test_faiss_backend_without_faiss_names_the_fix(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` raises ImportError
    with pytest.raises(ImportError, match=r"^backend='faiss' needs the faiss package \(pip install "
                                          r"faiss-cpu, or faiss-gpu\); backend='numpy' gives the "
                                          r"same values without it$"):
        M._import_faiss()


def test_unpack_torch_stays_on_the_requested_device():
    """On the meta device (shapes only), every tensor of the unpacking must be made there: a CPU
    tensor mixed in raises. The values are checked on the CPU."""
    b = np.array([[0b10100000, 0b01000000]], dtype=np.uint8)  # bits 1010 0000 0100 0000
    out = M._unpack_torch(b, 10, torch.device("meta"))
    assert out.device.type == "meta" and tuple(out.shape) == (1, 10)
    cpu = M._unpack_torch(b, 10, torch.device("cpu"))
    assert cpu.tolist() == [[1, -1, 1, -1, -1, -1, -1, -1, -1, 1]]


def test_torch_ranking_makes_every_tensor_on_the_requested_device(monkeypatch):
    made, unpacked = [], []
    real_arange, real_unpack = torch.arange, M._unpack_torch

    def arange(*args, **kwargs):
        made.append(kwargs.get("device"))
        return real_arange(*args, **kwargs)

    def unpack(b, code_length, device):
        unpacked.append(device)
        return real_unpack(b, code_length, device)

    monkeypatch.setattr(torch, "arange", arange)
    monkeypatch.setattr(M, "_unpack_torch", unpack)
    rng = np.random.default_rng(7)
    q_bits, d_bits = rng.random((3, 16)) < 0.5, rng.random((9, 16)) < 0.5
    cpu = torch.device("cpu")
    chunks = list(M._torch_ranking(M.pack_codes(q_bits), M.pack_codes(d_bits), 16, 4,
                                   memory_budget_mb=64.0, device=cpu))
    assert unpacked == [cpu, cpu]
    assert made == [cpu, cpu, cpu]  # the shifts of both unpackings and the database index
    dist = (q_bits[:, None, :] != d_bits[None, :, :]).sum(axis=2)
    np.testing.assert_array_equal(np.concatenate([ids for _, ids in chunks]),
                                  np.argsort(dist, axis=1, kind="stable")[:, :4])


def test_host_tensor_moves_a_tensor_of_another_device_to_the_cpu():
    """A tensor off the CPU (here a stand-in with device.type 'cuda') is detached and then copied
    with .cpu(); the copy is what comes back, not the device tensor."""
    calls = []

    class Device:
        type = "cuda"

    class DeviceTensor:
        device = Device()

        def detach(self):
            calls.append("detach")
            return self

        def cpu(self):
            calls.append("cpu")
            return "host copy"

    assert M._host_tensor(DeviceTensor(), "query_codes") == "host copy"
    assert calls == ["detach", "cpu"]
    t = torch.ones(2, 3, requires_grad=True)
    out = M._host_tensor(t, "query_codes")
    assert out.device.type == "cpu" and not out.requires_grad
    assert out.data_ptr() == t.data_ptr()  # no copy of a CPU tensor

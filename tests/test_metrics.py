"""Tests of brcd_lib.metrics against plain per-query loops written here, and hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brcd_lib import metrics as M

torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------
# independent references: one query at a time, stable argsort, explicit loops
# ------------------------------------------------------------------------------------------------


def _pm1(codes) -> np.ndarray:
    a = codes.numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
    a = a.astype(np.float64)
    if a.min() >= 0:  # 0/1 codes
        a = 2 * a - 1
    return a


def _relevant(q_label, db_labels) -> np.ndarray:
    q_label, db_labels = np.asarray(q_label), np.asarray(db_labels)
    if db_labels.ndim == 1:
        return db_labels == q_label
    return (db_labels.astype(np.int64) @ q_label.astype(np.int64)) > 0


def ref_ap_per_query(q, d, ql, dl, k) -> np.ndarray:
    q, d = _pm1(q), _pm1(d)
    ql, dl = np.asarray(ql), np.asarray(dl)
    n_db, length = d.shape
    top = n_db if k is None else min(k, n_db)
    out = []
    for i in range(q.shape[0]):
        dist = (length - d @ q[i]) / 2
        order = np.argsort(dist, kind="stable")[:top]
        rel = _relevant(ql[i], dl)[order]
        hits, total = 0, 0.0
        for rank, r in enumerate(rel, start=1):
            if r:
                hits += 1
                total += hits / rank
        out.append(total / hits if hits else 0.0)
    return np.array(out)


def ref_ranked_relevance(q, d, ql, dl, top):
    q, d = _pm1(q), _pm1(d)
    length = d.shape[1]
    rows = []
    for i in range(q.shape[0]):
        order = np.argsort((length - d @ q[i]) / 2, kind="stable")[:top]
        rows.append(_relevant(np.asarray(ql)[i], np.asarray(dl))[order])
    return rows


# ------------------------------------------------------------------------------------------------
# strategies
# ------------------------------------------------------------------------------------------------


@st.composite
def retrieval_case(draw):
    length = draw(st.sampled_from([4, 8, 16, 64]))
    n_q = draw(st.integers(1, 6))
    n_db = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    p_one = draw(st.sampled_from([0.5, 0.9]))  # 0.9 makes many tied distances
    q_bits = rng.random((n_q, length)) < p_one
    d_bits = rng.random((n_db, length)) < p_one
    n_classes = draw(st.integers(1, 5))
    if draw(st.booleans()):
        ql = rng.integers(0, n_classes, n_q)
        dl = rng.integers(0, n_classes, n_db)
    else:  # multi-hot has >= 2 columns: a single column is refused as ambiguous
        ql = (rng.random((n_q, n_classes + 1)) < 0.4).astype(np.uint8)
        dl = (rng.random((n_db, n_classes + 1)) < 0.4).astype(np.uint8)
    k = draw(st.one_of(st.none(), st.integers(1, 60)))
    fmt = draw(st.sampled_from(["pm1", "01"]))
    to_torch = draw(st.booleans())

    def encode(bits):
        a = bits.astype(np.float32) if fmt == "01" else np.where(bits, 1.0, -1.0).astype(np.float32)
        return torch.from_numpy(a) if to_torch else a

    backend = draw(st.sampled_from(["numba", "numpy", "torch", "auto"]))
    return encode(q_bits), encode(d_bits), ql, dl, k, backend


@settings(max_examples=80, deadline=None)
@given(retrieval_case())
def test_ap_matches_per_query_reference(case):
    q, d, ql, dl, k, backend = case
    expected = ref_ap_per_query(q, d, ql, dl, k)
    got = M.mean_average_precision_per_query(q, d, ql, dl, k, backend=backend)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert M.map_at_k(q, d, ql, dl, k, backend=backend) == pytest.approx(expected.mean(), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(retrieval_case(), st.sampled_from([1e-6, 0.01, 256.0]))
def test_packed_input_and_chunking_give_the_same_value(case, budget):
    q, d, ql, dl, k, _ = case
    expected = ref_ap_per_query(q, d, ql, dl, k)
    length = q.shape[1]
    pd = M.pack_codes(d)
    for q_in in (q, M.pack_codes(q)):
        got = M.mean_average_precision_per_query(q_in, pd, ql, dl, k, packed=True,
                                                 code_length=length, memory_budget_mb=budget)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(64, 600), st.integers(1, 80), st.integers(0, 30),
       st.sampled_from([-10.0, 0.0, 4.0]), st.integers(0, 2**31 - 1))
def test_stable_topk_rows_equals_stable_argsort(rows, n, k, max_value, margin, seed):
    rng = np.random.default_rng(seed)
    dist = rng.integers(0, max_value + 1, (rows, n)).astype(np.uint8)
    got = M.stable_topk_rows(dist, k, sample_size=16, candidate_margin=margin)
    expected = np.argsort(dist, axis=1, kind="stable")[:, : min(k, n)]
    np.testing.assert_array_equal(got, expected)


def test_candidate_path_on_a_large_database_matches_reference():
    # n_db >= 4 * 2048 and k <= n_db / 8: map_at_k takes the sampled-threshold path.
    rng = np.random.default_rng(3)
    q = np.where(rng.random((12, 16)) < 0.5, 1.0, -1.0)
    d = np.where(rng.random((10_000, 16)) < 0.5, 1.0, -1.0)
    ql, dl = rng.integers(0, 4, 12), rng.integers(0, 4, 10_000)
    for k in (1, 100, 1000):
        got = M.mean_average_precision_per_query(q, d, ql, dl, k)
        np.testing.assert_allclose(got, ref_ap_per_query(q, d, ql, dl, k), rtol=0, atol=1e-12)


@pytest.mark.parametrize("length", [100, 300])
def test_long_codes_and_many_classes(length):
    # more than one machine word per code; more than 64 classes (two label words)
    rng = np.random.default_rng(length)
    q = np.where(rng.random((5, length)) < 0.5, 1.0, -1.0)
    d = np.where(rng.random((50, length)) < 0.5, 1.0, -1.0)
    d[7] = d[3]  # a tie
    ql = (rng.random((5, 70)) < 0.05).astype(np.uint8)
    dl = (rng.random((50, 70)) < 0.05).astype(np.uint8)
    for k in (None, 10):
        got = M.mean_average_precision_per_query(q, d, ql, dl, k)
        np.testing.assert_allclose(got, ref_ap_per_query(q, d, ql, dl, k), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(M.hamming_distance(q, d), ((length - q @ d.T) / 2).astype(int))


# ------------------------------------------------------------------------------------------------
# hand-computed golden values
# ------------------------------------------------------------------------------------------------

# query q = [1, 1, 1, 1] (class 0); database (class, distance to q):
#   d0 [ 1, 1, 1, 1] class 1, dist 0
#   d1 [-1, 1, 1, 1] class 0, dist 1
#   d2 [ 1, 1, 1, 1] class 0, dist 0
#   d3 [-1,-1, 1, 1] class 0, dist 2
#   d4 [ 1,-1, 1, 1] class 1, dist 1
# ranking by (distance, index): d0, d2, d1, d4, d3 -> relevance 0, 1, 1, 0, 1
# k=None: hits at ranks 2, 3, 5 -> AP = (1/2 + 2/3 + 3/5) / 3 = 53/90
# k=3: hits at ranks 2, 3       -> AP = (1/2 + 2/3) / 2 = 7/12
# k=1: no hit                   -> AP = 0
GOLD_Q = np.array([[1, 1, 1, 1]], np.float32)
GOLD_D = np.array([[1, 1, 1, 1], [-1, 1, 1, 1], [1, 1, 1, 1], [-1, -1, 1, 1], [1, -1, 1, 1]],
                  np.float32)
GOLD_QL = np.array([0])
GOLD_DL = np.array([1, 0, 0, 0, 1])


@pytest.mark.parametrize("k, expected", [(None, 53 / 90), (5, 53 / 90), (99, 53 / 90),
                                         (3, 7 / 12), (1, 0.0)])
def test_golden_value_by_hand(k, expected):
    assert M.map_at_k(GOLD_Q, GOLD_D, GOLD_QL, GOLD_DL, k) == pytest.approx(expected, abs=1e-15)
    # the same with 0/1 codes, torch tensors and multi-hot labels
    q01 = torch.from_numpy((GOLD_Q > 0).astype(np.float32))
    d01 = torch.from_numpy((GOLD_D > 0).astype(np.float32))
    onehot = np.eye(2, dtype=np.uint8)
    assert M.map_at_k(q01, d01, onehot[GOLD_QL], onehot[GOLD_DL], k) == pytest.approx(
        expected, abs=1e-15)


def test_zero_hit_query_counts_or_is_skipped():
    q = np.concatenate([GOLD_Q, GOLD_Q])
    ql = np.array([0, 2])  # class 2 appears nowhere in the database: AP 0
    # count: (7/12 + 0) / 2 = 7/24 ; skip: 7/12
    assert M.map_at_k(q, GOLD_D, ql, GOLD_DL, 3) == pytest.approx(7 / 24, abs=1e-15)
    assert M.map_at_k(q, GOLD_D, ql, GOLD_DL, 3, zero_hit="skip") == pytest.approx(7 / 12,
                                                                                  abs=1e-15)
    np.testing.assert_allclose(M.mean_average_precision_per_query(q, GOLD_D, ql, GOLD_DL, 3),
                               [7 / 12, 0.0], atol=1e-15)
    assert np.isnan(M.map_at_k(q[1:], GOLD_D, ql[1:], GOLD_DL, 3, zero_hit="skip"))


def test_all_distances_tied_ranks_by_index():
    # every database code equals the query: ranking is the index order 0..5
    # relevance 0, 0, 1, 0, 1, 1 -> hits at ranks 3, 5, 6: AP = (1/3 + 2/5 + 3/6) / 3 = 37/90
    q = np.ones((1, 8), np.float32)
    d = np.ones((6, 8), np.float32)
    dl = np.array([1, 1, 0, 1, 0, 0])
    assert M.map_at_k(q, d, np.array([0]), dl) == pytest.approx(37 / 90, abs=1e-15)
    # top-2 holds no relevant item
    assert M.map_at_k(q, d, np.array([0]), dl, 2) == 0.0
    # reversing the database order changes the value: ties really follow the index
    # relevance 0, 0, 1, 0, 1, 1 reversed = 1, 1, 0, 1, 0, 0 -> (1 + 1 + 3/4) / 3 = 11/12
    assert M.map_at_k(q, d, np.array([0]), dl[::-1].copy()) == pytest.approx(11 / 12, abs=1e-15)


def test_precision_within_radius_by_hand():
    # L = 6. q1 = all +1 (class 0), q2 = all -1 (class 0)
    # db a = +1 x6 (class 0): dist q1 0, q2 6 ; b = one -1 (class 1): 1, 5
    #    c = two -1 (class 0): 2, 4        ; d = three -1 (class 0): 3, 3
    # radius 2: q1 retrieves a, b, c -> 2 relevant of 3 = 2/3 ; q2 retrieves nothing -> 0
    q = np.array([[1] * 6, [-1] * 6], np.float32)
    d = np.array([[1] * 6, [-1] + [1] * 5, [-1] * 2 + [1] * 4, [-1] * 3 + [1] * 3], np.float32)
    ql, dl = np.array([0, 0]), np.array([0, 1, 0, 0])
    assert M.precision_within_radius(q, d, ql, dl, 2) == pytest.approx(1 / 3, abs=1e-15)
    assert M.precision_within_radius(q, d, ql, dl, 2, zero_hit="skip") == pytest.approx(2 / 3)
    assert M.precision_within_radius(q, d, ql, dl, 0) == pytest.approx(1 / 2, abs=1e-15)
    # PR curve of q1 alone: retrieved 1, 2, 3, 4 ; relevant 1, 1, 2, 3 of 3
    curve = M.pr_curve(q[:1], d, ql[:1], dl)
    np.testing.assert_allclose(curve["precision"][:4], [1, 1 / 2, 2 / 3, 3 / 4], atol=1e-15)
    np.testing.assert_allclose(curve["recall"][:4], [1 / 3, 1 / 3, 2 / 3, 1], atol=1e-15)
    np.testing.assert_array_equal(curve["radius"], np.arange(7))


# ------------------------------------------------------------------------------------------------
# curves against loops
# ------------------------------------------------------------------------------------------------


def _random_case(seed, n_q=7, n_db=30, length=8, multi=False):
    rng = np.random.default_rng(seed)
    q = np.where(rng.random((n_q, length)) < 0.6, 1.0, -1.0)
    d = np.where(rng.random((n_db, length)) < 0.6, 1.0, -1.0)
    if multi:
        return q, d, (rng.random((n_q, 3)) < 0.3).astype(np.uint8), (
            rng.random((n_db, 3)) < 0.3).astype(np.uint8)
    return q, d, rng.integers(0, 3, n_q), rng.integers(0, 3, n_db)


@pytest.mark.parametrize("seed, multi", [(0, False), (1, True), (2, True)])
def test_precision_at_k_curve_matches_loop(seed, multi):
    q, d, ql, dl = _random_case(seed, multi=multi)
    ks = [1, 5, 30, 45]
    ranked = ref_ranked_relevance(q, d, ql, dl, d.shape[0])
    expected = [np.mean([r[: min(kk, 30)].sum() / min(kk, 30) for r in ranked]) for kk in ks]
    np.testing.assert_allclose(M.precision_at_k_curve(q, d, ql, dl, ks), expected, atol=1e-12)


@pytest.mark.parametrize("seed, multi, zero_hit", [(3, False, "count"), (4, True, "count"),
                                                   (5, True, "skip")])
def test_pr_curve_matches_loop(seed, multi, zero_hit):
    q, d, ql, dl = _random_case(seed, multi=multi)
    length = q.shape[1]
    precision, recall = [], []
    for r in range(length + 1):
        p_vals, p_keep, r_vals, r_keep = [], [], [], []
        for i in range(q.shape[0]):
            dist = (length - d @ q[i]) / 2
            rel = _relevant(ql[i], dl)
            inside = dist <= r
            p_keep.append(inside.sum() > 0)
            p_vals.append((rel & inside).sum() / inside.sum() if inside.sum() else 0.0)
            r_keep.append(rel.sum() > 0)
            r_vals.append((rel & inside).sum() / rel.sum() if rel.sum() else 0.0)
        p_vals, r_vals = np.array(p_vals), np.array(r_vals)
        if zero_hit == "skip":
            p_vals, r_vals = p_vals[np.array(p_keep)], r_vals[np.array(r_keep)]
        precision.append(p_vals.mean() if p_vals.size else np.nan)
        recall.append(r_vals.mean() if r_vals.size else np.nan)
    curve = M.pr_curve(q, d, ql, dl, zero_hit=zero_hit)
    np.testing.assert_allclose(curve["precision"], precision, atol=1e-12)
    np.testing.assert_allclose(curve["recall"], recall, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# helpers: packing, distances, paradigms
# ------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 9), st.integers(1, 130), st.integers(0, 2**31 - 1), st.booleans())
def test_pack_unpack_roundtrip(n, length, seed, zero_one):
    rng = np.random.default_rng(seed)
    bits = rng.random((n, length)) < 0.5
    codes = bits.astype(np.float32) if zero_one else np.where(bits, 1.0, -1.0).astype(np.float32)
    packed = M.pack_codes(codes)
    assert packed.dtype == np.uint8 and packed.shape == (n, -(-length // 8))
    np.testing.assert_array_equal(M.unpack_codes(packed, length), np.where(bits, 1.0, -1.0))
    np.testing.assert_array_equal(M.pack_codes(torch.from_numpy(codes)), packed)


def test_hamming_distance_matches_definition():
    q, d, _, _ = _random_case(6, length=16)
    expected = np.array([[np.sum(qi != di) for di in d] for qi in q])
    got = M.hamming_distance(q, d)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(
        M.hamming_distance(M.pack_codes(q), M.pack_codes(d), packed=True, code_length=16), expected)


def test_popcount_fallback_matches_bitwise_count():
    rng = np.random.default_rng(8)
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        words = rng.integers(0, np.iinfo(dtype).max, (3, 17), dtype=dtype, endpoint=True)
        expected = np.array([[bin(int(w)).count("1") for w in row] for row in words])
        np.testing.assert_array_equal(M._popcount_table(words), expected)


def test_class_ids_mixed_with_multi_hot_labels():
    # query class ids against multi-hot database labels: id c means one-hot column c
    multi = np.array([[0, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 1]], np.uint8)
    # relevance to class 0 is GOLD_DL == 0 -> same value as the golden case, 53/90
    assert M.map_at_k(GOLD_Q, GOLD_D, GOLD_QL, multi) == pytest.approx(53 / 90, abs=1e-15)
    with pytest.raises(ValueError, match="class ids must lie"):
        M.map_at_k(GOLD_Q, GOLD_D, np.array([3]), multi)


def test_evaluate_paradigms():
    rng = np.random.default_rng(7)
    sq = np.where(rng.random((6, 8)) < 0.5, 1.0, -1.0)
    sdb = np.where(rng.random((25, 8)) < 0.5, 1.0, -1.0)
    tdb = np.where(rng.random((25, 8)) < 0.5, 1.0, -1.0)
    ql, dl = rng.integers(0, 3, 6), rng.integers(0, 3, 25)
    out = M.evaluate_paradigms(student_query=sq, student_db=sdb, teacher_db=tdb, query_labels=ql,
                               db_labels=dl, k=10)
    assert set(out) == {"symmetric", "asymmetric"}
    assert out["symmetric"] == pytest.approx(ref_ap_per_query(sq, sdb, ql, dl, 10).mean(),
                                             abs=1e-12)
    assert out["asymmetric"] == pytest.approx(ref_ap_per_query(sq, tdb, ql, dl, 10).mean(),
                                              abs=1e-12)
    assert out["symmetric"] != out["asymmetric"]


def test_metric_convention_names_the_rules():
    text = M.metric_convention.lower()
    assert "ties broken by database index" in text and "r = 0" in text
    assert set(M.ZERO_HIT_CONVENTIONS) == {"count", "skip"} and set(M.TIE_RULES) == {"index"}


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"zero_hit": "drop"}, "count, skip"),
    ({"ties": "random"}, "index"),
    ({"backend": "cuda"}, "numpy, torch"),
    ({"k": 0}, "positive integer"),
    ({"memory_budget_mb": 0}, "memory_budget_mb"),
])
def test_bad_options_raise(kwargs, match):
    k = kwargs.pop("k", None)
    with pytest.raises(ValueError, match=match):
        M.map_at_k(GOLD_Q, GOLD_D, GOLD_QL, GOLD_DL, k, **kwargs)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\+-1 or 0/1"):
        M.map_at_k(GOLD_Q * 0.5, GOLD_D, GOLD_QL, GOLD_DL)
    with pytest.raises(ValueError, match=r"\+-1 or 0/1"):
        M.map_at_k(np.array([[1, 0, -1, 1]]), GOLD_D, GOLD_QL, GOLD_DL)
    with pytest.raises(ValueError, match="bits"):
        M.map_at_k(GOLD_Q[:, :3], GOLD_D, GOLD_QL, GOLD_DL)
    with pytest.raises(ValueError, match="rows"):
        M.map_at_k(GOLD_Q, GOLD_D, GOLD_QL, GOLD_DL[:3])
    with pytest.raises(ValueError, match="padding bits"):
        M.map_at_k(GOLD_Q, np.full((5, 1), 255, np.uint8), GOLD_QL, GOLD_DL, packed=True,
                   code_length=4)
    with pytest.raises(ValueError, match="uint8"):
        M.map_at_k(GOLD_Q, GOLD_D, GOLD_QL, GOLD_DL, packed=True)

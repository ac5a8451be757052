"""Fast tests aimed at mutants of brcd_lib.metrics that survived the mutmut run: boundaries (a
radius equal to a distance, a single retrieved item, class ids in the second byte of the labels),
the arguments evaluate_paradigms forwards, and the input checks' messages. Every expected value is
a literal worked out by hand in the comments (or by a plain NumPy loop written here)."""
from __future__ import annotations

import numpy as np
import pytest

from brcd_lib import metrics as M


def _minus_first(n_minus: int, length: int) -> list[int]:
    """A +-1 code of ``length`` bits whose first ``n_minus`` bits are -1: Hamming distance
    ``n_minus`` from the all +1 code and ``length - n_minus`` from the all -1 code."""
    return [-1] * n_minus + [1] * (length - n_minus)


# ------------------------------------------------------------------------------------------------
# class ids meeting multi-hot labels (_pack_class_ids)
# ------------------------------------------------------------------------------------------------

# C = 9 classes: two label bytes, class 8 is the first bit of the second byte
MULTI9 = np.zeros((6, 9), np.uint8)
for _item, _classes in enumerate([[7], [0], [8], [1], [0, 8], [3]]):
    MULTI9[_item, _classes] = 1
RANK6 = np.array([[0, 1, 2, 3, 4, 5]] * 3)  # every query ranks the database in index order


def test_class_ids_against_multi_hot_labels_in_the_second_label_byte():
    # database items (multi-hot over 9 classes): 0:{7} 1:{0} 2:{8} 3:{1} 4:{0,8} 5:{3}
    # query id 0 -> relevant 1, 4: rel 0 1 0 0 1 0 -> AP = (1/2 + 2/5) / 2 = 9/20
    # query id 1 -> relevant 3:    rel 0 0 0 1 0 0 -> AP = 1/4
    # query id 8 -> relevant 2, 4: rel 0 0 1 0 1 0 -> AP = (1/3 + 2/5) / 2 = 11/30
    ap = M.average_precision_from_ranking(RANK6, np.array([0, 1, 8]), MULTI9)
    np.testing.assert_allclose(ap, [9 / 20, 1 / 4, 11 / 30], rtol=0, atol=1e-15)


def test_multi_hot_queries_against_class_id_database():
    # the same relevance seen from the other side: database class ids 7 0 8 1 0 3, queries
    # multi-hot {0} -> items 1, 4 ; {8} -> item 2 ; {1, 8} -> items 2, 3
    # {0}: rel 0 1 0 0 1 0 -> (1/2 + 2/5) / 2 = 9/20
    # {8}: rel 0 0 1 0 0 0 -> 1/3
    # {1, 8}: rel 0 0 1 1 0 0 -> (1/3 + 2/4) / 2 = 5/12
    q = np.zeros((3, 9), np.uint8)
    q[0, 0] = q[1, 8] = q[2, 1] = q[2, 8] = 1
    ap = M.average_precision_from_ranking(RANK6, q, np.array([7, 0, 8, 1, 0, 3]))
    np.testing.assert_allclose(ap, [9 / 20, 1 / 3, 5 / 12], rtol=0, atol=1e-15)


def test_class_id_outside_the_multi_hot_classes_names_the_valid_range():
    # 9 classes: valid ids 0..8
    with pytest.raises(ValueError, match=r"query_labels: class ids must lie in 0\.\.8 to match "
                                         r"multi-hot labels"):
        M.average_precision_from_ranking(RANK6, np.array([0, 1, 9]), MULTI9)
    with pytest.raises(ValueError, match=r"class ids must lie in 0\.\.8 "):
        M.average_precision_from_ranking(RANK6, np.array([0, -1, 8]), MULTI9)


# ------------------------------------------------------------------------------------------------
# popcount by byte table (the NumPy < 2.0 path)
# ------------------------------------------------------------------------------------------------


def test_popcount_into_table_writes_the_bit_counts_into_out():
    words = np.array([[0, 1, 0xFF, 0x8000_0000_0000_0001],
                      [0xFFFF_FFFF_FFFF_FFFF, 0x0F0F, 7, 2**40]], np.uint64)
    # bit counts: 0, 1, 8, 2 ; 64, 8, 3, 1
    out = np.full(words.shape, 99, np.uint8)
    got = M._popcount_into_table(words, out)
    assert got is out
    np.testing.assert_array_equal(out, [[0, 1, 8, 2], [64, 8, 3, 1]])


def test_hamming_distance_through_the_table_popcount(monkeypatch):
    # the tile loop with the byte-table popcount instead of np.bitwise_count (NumPy < 2.0):
    # 72-bit codes span two 64-bit words, so the per-word counts are added too
    rng = np.random.default_rng(3)
    q = np.where(rng.random((3, 72)) < 0.5, 1.0, -1.0)
    d = np.where(rng.random((5, 72)) < 0.5, 1.0, -1.0)
    expected = np.array([[int(np.sum(a != b)) for b in d] for a in q])
    monkeypatch.setattr(M, "_popcount_into", M._popcount_into_table)
    np.testing.assert_array_equal(M.hamming_distance(q, d), expected)


# ------------------------------------------------------------------------------------------------
# precision within a Hamming radius
# ------------------------------------------------------------------------------------------------

# L = 4; the query is all +1 (class 0); database item j has its first j bits at -1, so it lies at
# distance j from the query: distances 0 1 2 3 4, classes 0 1 0 1 1
RAD_Q = np.array([[1, 1, 1, 1]], np.float32)
RAD_D = np.array([_minus_first(j, 4) for j in range(5)], np.float32)
RAD_QL, RAD_DL = np.array([0]), np.array([0, 1, 0, 1, 1])


@pytest.mark.parametrize("radius, expected", [
    (0, 1.0),        # {0}: 1 relevant of 1
    (1, 1 / 2),      # {0, 1}: 1 of 2 (the radius equals item 1's distance: it is inside)
    (2, 2 / 3),      # {0, 1, 2}: 2 of 3
    (3, 2 / 4),      # {0..3}: 2 of 4
    (4, 2 / 5),      # radius = L: the whole database, 2 of 5
    (9, 2 / 5),      # radius > L is clipped to L
    (np.int64(2), 2 / 3),
])
def test_precision_within_radius_at_each_distance(radius, expected):
    got = M.precision_within_radius(RAD_Q, RAD_D, RAD_QL, RAD_DL, radius)
    assert got == pytest.approx(expected, rel=0, abs=1e-15)


def test_precision_within_radius_default_radius_is_two():
    # radius 2 -> 2/3 (radius 3 would give 1/2)
    assert M.precision_within_radius(RAD_Q, RAD_D, RAD_QL, RAD_DL) == pytest.approx(
        2 / 3, rel=0, abs=1e-15)


def test_precision_within_radius_skip_keeps_a_query_that_retrieves_one_item():
    # radius 0: query 0 (all +1) retrieves item 0 only (relevant) -> 1 ; query 1 (all -1, class 0)
    # retrieves item 4 only (class 1) -> 0 ; query 2 (first bit -1, class 1) retrieves item 1
    # only (class 1) -> 1. Every query retrieves exactly one item, so "skip" keeps all three:
    # (1 + 0 + 1) / 3 = 2/3
    q = np.array([[1, 1, 1, 1], [-1, -1, -1, -1], [-1, 1, 1, 1]], np.float32)
    ql = np.array([0, 0, 1])
    got = M.precision_within_radius(q, RAD_D, ql, RAD_DL, 0, zero_hit="skip")
    assert got == pytest.approx(2 / 3, rel=0, abs=1e-15)
    assert M.precision_within_radius(q[:1], RAD_D, ql[:1], RAD_DL, 0, zero_hit="skip") == 1.0


def test_precision_within_radius_skip_and_count_with_an_empty_ball():
    # query 1 = (+1, -1, +1, -1) (class 0): distances to items 0..4 = 2, 3, 2, 3, 2, so radii 0
    # and 1 retrieve nothing; query 0 (all +1) retrieves item 0 (relevant) -> 1
    q = np.array([[1, 1, 1, 1], [1, -1, 1, -1]], np.float32)
    ql = np.array([0, 0])
    # count: (1 + 0) / 2 ; skip: query 1 left out -> 1
    assert M.precision_within_radius(q, RAD_D, ql, RAD_DL, 0) == 0.5
    assert M.precision_within_radius(q, RAD_D, ql, RAD_DL, 0, zero_hit="skip") == 1.0
    # radius 1: query 1 still retrieves nothing -> 0 ; query 0 retrieves items 0, 1 -> 1/2
    assert M.precision_within_radius(q, RAD_D, ql, RAD_DL, 1) == pytest.approx(1 / 4, abs=1e-15)
    assert M.precision_within_radius(q, RAD_D, ql, RAD_DL, 1, zero_hit="skip") == 0.5
    # radius 2: query 1 retrieves items 0, 2, 4 (classes 0 0 1) -> 2/3 ; query 0 -> 2/3
    assert M.precision_within_radius(q, RAD_D, ql, RAD_DL, 2) == pytest.approx(2 / 3, abs=1e-15)


@pytest.mark.parametrize("radius", [-1, np.int64(-1), 1.5, 2.0, True, False, "2", None])
def test_precision_within_radius_refuses_a_bad_radius(radius):
    with pytest.raises(ValueError, match=r"radius must be a non-negative integer, got "):
        M.precision_within_radius(RAD_Q, RAD_D, RAD_QL, RAD_DL, radius)


def test_precision_within_radius_names_the_zero_hit_conventions():
    with pytest.raises(ValueError, match=r"^unknown zero_hit convention 'none'; valid names: "
                                         r"count, skip$"):
        M.precision_within_radius(RAD_Q, RAD_D, RAD_QL, RAD_DL, 2, zero_hit="none")


def test_precision_within_radius_on_packed_codes_with_a_code_length():
    # L = 4 packed in one byte (4 padding bits): item j = first j bits -1 -> byte (0xF0 >> j) & 0xF0
    db = M.pack_codes(RAD_D)
    np.testing.assert_array_equal(db[:, 0], [0xF0, 0x70, 0x30, 0x10, 0x00])
    # packed database, unpacked 4-bit query: the query's length must meet code_length = 4
    got = M.precision_within_radius(RAD_Q, db, RAD_QL, RAD_DL, 2, packed=True, code_length=4)
    assert got == pytest.approx(2 / 3, rel=0, abs=1e-15)
    got = M.precision_within_radius(M.pack_codes(RAD_Q), db, RAD_QL, RAD_DL, 3, packed=True,
                                    code_length=4)
    assert got == pytest.approx(1 / 2, rel=0, abs=1e-15)
    # unpacked codes of 4 bits against code_length = 5: refused
    with pytest.raises(ValueError, match=r"have 4 bits but code_length=5"):
        M.precision_within_radius(RAD_Q, RAD_D, RAD_QL, RAD_DL, 2, code_length=5)


def test_precision_within_radius_empty_balls_score_exactly_zero():
    # 300 queries all -1 against items all +1 (L = 8): every query is at distance 8, so radius 2
    # retrieves nothing: each precision is 0 by convention ("count": mean 0.0 exactly) and "skip"
    # leaves every query out (NaN). The per-query precisions must be written for these queries
    # too, not left as whatever memory the division got: the float arrays of 300 values freed
    # here first make such memory hold 7.0, and 300 x 8 bytes is past NumPy's small-block cache.
    q, d = -np.ones((300, 8)), np.ones((3, 8))
    ql, dl = np.zeros(300, np.int64), np.zeros(3, np.int64)
    for _ in range(3):
        junk = [np.full(300, 7.0) for _ in range(8)]
        del junk
        assert M.precision_within_radius(q, d, ql, dl, 2) == 0.0
    assert np.isnan(M.precision_within_radius(q, d, ql, dl, 2, zero_hit="skip"))


# ------------------------------------------------------------------------------------------------
# evaluate_paradigms forwards every option to both searches
# ------------------------------------------------------------------------------------------------

# L = 12 (two bytes, 4 padding bits). Query 0 is all +1 (class 0); query 1 is all -1 (class 2,
# which no database item has: it never has a hit). Distances from query 0:
#   student db: s0 = 1 (class 0), s1 = 0 (class 1), s2 = 3 (class 0), s3 = 2 (class 1)
#   teacher db: t0 = 0 (class 0), t1 = 1 (class 1), t2 = 2 (class 0), t3 = 3 (class 1)
# k = 2: query 0, student: s1, s0 -> rel 0 1 -> AP = (1/2) / 1 = 1/2
#                  teacher: t0, t1 -> rel 1 0 -> AP = 1 / 1 = 1
# query 1 has AP 0 in both. skip: mean over query 0 only -> 1/2 and 1; count: 1/4 and 1/2
PAR_Q = np.array([[1] * 12, [-1] * 12], np.float32)
PAR_S = np.array([_minus_first(j, 12) for j in (1, 0, 3, 2)], np.float32)
PAR_T = np.array([_minus_first(j, 12) for j in (0, 1, 2, 3)], np.float32)
PAR_QL, PAR_DL = np.array([0, 2]), np.array([0, 1, 0, 1])


def _paradigms(**kw):
    args = dict(student_query=PAR_Q, student_db=M.pack_codes(PAR_S),
                teacher_db=M.pack_codes(PAR_T), query_labels=PAR_QL, db_labels=PAR_DL, k=2,
                packed=True, code_length=12)
    args.update(kw)
    return M.evaluate_paradigms(**args)


def test_evaluate_paradigms_forwards_zero_hit_packed_and_code_length():
    # packed databases with code_length = 12 and unpacked 12-bit queries (packed=True allows it)
    out = _paradigms(zero_hit="skip")
    assert out == {"symmetric": pytest.approx(1 / 2, rel=0, abs=1e-15),
                   "asymmetric": pytest.approx(1.0, rel=0, abs=1e-15)}
    out = _paradigms(zero_hit="count")
    assert out == {"symmetric": pytest.approx(1 / 4, rel=0, abs=1e-15),
                   "asymmetric": pytest.approx(1 / 2, rel=0, abs=1e-15)}
    out = _paradigms(zero_hit="skip", packed=False, code_length=None, student_db=PAR_S,
                     teacher_db=PAR_T, threads=1, memory_budget_mb=1.0, backend="numpy")
    assert out == {"symmetric": pytest.approx(1 / 2, rel=0, abs=1e-15),
                   "asymmetric": pytest.approx(1.0, rel=0, abs=1e-15)}


@pytest.mark.parametrize("kw, message", [
    (dict(threads=0), r"threads must be a positive integer or None, got 0"),
    (dict(memory_budget_mb=0),
     r"memory_budget_mb must be a finite number of megabytes > 0, got 0$"),
    (dict(backend="cuda"), r"unknown backend \(or 'auto'\) 'cuda'; valid names: faiss, numba, numpy, "
                           r"torch"),
    (dict(zero_hit="mean"), r"unknown zero_hit convention 'mean'; valid names: count, skip"),
])
def test_evaluate_paradigms_checks_the_options_it_forwards(kw, message):
    with pytest.raises(ValueError, match=message):
        _paradigms(**kw)


# ------------------------------------------------------------------------------------------------
# PR curve and the radius counts
# ------------------------------------------------------------------------------------------------

# RAD_D (distances 0..4 from all +1, classes 0 1 0 1 1) against three queries, L = 4:
#   q0 = all +1 (class 0): items at d = 0..4 one each -> retrieved 1 2 3 4 5, relevant 1 1 2 2 2
#       of 2: precision 1, 1/2, 2/3, 1/2, 2/5 ; recall 1/2, 1/2, 1, 1, 1
#   q1 = (+1, -1, +1, -1) (class 0): distances 2 3 2 3 2 -> retrieved 0 0 3 5 5, relevant
#       0 0 2 2 2 of 2: precision 0, 0 (none retrieved), 2/3, 2/5, 2/5 ; recall 0, 0, 1, 1, 1
#   q2 = all -1 (class 2, nothing relevant): distances 4 3 2 1 0 -> retrieved 1 2 3 4 5,
#       relevant 0: precision 0 everywhere ; recall 0 (count) or left out (skip)
PR_Q = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [-1, -1, -1, -1]], np.float32)
PR_QL = np.array([0, 0, 2])
# count: precision r0 (1 + 0 + 0)/3 = 1/3, r1 (1/2)/3 = 1/6, r2 (2/3 + 2/3)/3 = 4/9,
#        r3 (1/2 + 2/5)/3 = 3/10, r4 (2/5 + 2/5)/3 = 4/15 ; recall (1/2)/3 = 1/6, 1/6, 2/3, 2/3, 2/3
PR_COUNT_P = [1 / 3, 1 / 6, 4 / 9, 3 / 10, 4 / 15]
PR_COUNT_R = [1 / 6, 1 / 6, 2 / 3, 2 / 3, 2 / 3]
# skip: precision r0 and r1 leave q1 out: (1 + 0)/2 = 1/2, (1/2 + 0)/2 = 1/4, then as count ;
#       recall leaves q2 out:
#       (1/2 + 0)/2 = 1/4, 1/4, 1, 1, 1
PR_SKIP_P = [1 / 2, 1 / 4, 4 / 9, 3 / 10, 4 / 15]
PR_SKIP_R = [1 / 4, 1 / 4, 1, 1, 1]


def _assert_curve(curve, precision, recall):
    np.testing.assert_array_equal(curve["radius"], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(curve["precision"], precision, rtol=0, atol=1e-15)
    np.testing.assert_allclose(curve["recall"], recall, rtol=0, atol=1e-15)


def test_pr_curve_by_hand_count_and_skip():
    _assert_curve(M.pr_curve(PR_Q, RAD_D, PR_QL, RAD_DL), PR_COUNT_P, PR_COUNT_R)
    _assert_curve(M.pr_curve(PR_Q, RAD_D, PR_QL, RAD_DL, zero_hit="skip"), PR_SKIP_P, PR_SKIP_R)


def test_pr_curve_one_query_row_per_chunk():
    # a budget below one (query, item) pair per 48 bytes holds one query row per chunk: every
    # row must still be counted (the count arrays start uninitialised: fill such memory first)
    for _ in range(3):
        junk = [np.full((3, 5), 10**6, np.int64) for _ in range(8)]
        del junk
        curve = M.pr_curve(PR_Q, RAD_D, PR_QL, RAD_DL, memory_budget_mb=1e-6)
        _assert_curve(curve, PR_COUNT_P, PR_COUNT_R)


def test_pr_curve_on_packed_codes_with_a_code_length():
    db = M.pack_codes(RAD_D)  # one byte per code, 4 padding bits
    _assert_curve(M.pr_curve(PR_Q, db, PR_QL, RAD_DL, packed=True, code_length=4),
                  PR_COUNT_P, PR_COUNT_R)
    _assert_curve(M.pr_curve(M.pack_codes(PR_Q), db, PR_QL, RAD_DL, packed=True, code_length=4,
                             zero_hit="skip"), PR_SKIP_P, PR_SKIP_R)


def test_pr_curve_names_the_zero_hit_conventions():
    with pytest.raises(ValueError, match=r"^unknown zero_hit convention 'all'; valid names: "
                                         r"count, skip$"):
        M.pr_curve(PR_Q, RAD_D, PR_QL, RAD_DL, zero_hit="all")


def test_pr_curve_empty_balls_score_exactly_zero():
    # 300 queries all -1 (class 0) against 3 items all +1 (classes 0 0 1), L = 8: radii 0..7
    # retrieve nothing (precision 0 by convention, recall 0); radius 8 retrieves all 3 items,
    # 2 relevant: precision 2/3, recall 1. Memory of the per-radius precision array's size is
    # filled with 7.0 first: the precision of an empty ball must be written, not left over.
    q, d = -np.ones((300, 8)), np.ones((3, 8))
    ql, dl = np.zeros(300, np.int64), np.array([0, 0, 1])
    for _ in range(3):
        junk = [np.full((300, 9), 7.0) for _ in range(8)]
        del junk
        curve = M.pr_curve(q, d, ql, dl)
        np.testing.assert_array_equal(curve["precision"][:8], np.zeros(8))
        assert curve["precision"][8] == pytest.approx(2 / 3, rel=0, abs=1e-15)
        np.testing.assert_array_equal(curve["recall"], [0] * 8 + [1])


def test_chunk_rows_of_the_radius_counts_follow_the_budget():
    # 1.5 MB = 1572864 bytes; 48 bytes per pair x 8192 items = 393216 bytes per row -> 4 rows
    assert M._chunk_rows(8192, 1.5) == 4
    # 1 MB: 1048576 // (48 * 5000 = 240000) = 4 (4.37 rows)
    assert M._chunk_rows(5000, 1.0) == 4
    # 0.001 MB = 1048.576 bytes < one row of 48 * 1000 bytes: still one row, never more
    assert M._chunk_rows(1000, 0.001) == 1
    # a large budget is capped at 16 rows
    assert M._chunk_rows(10, 256.0) == 16


# ------------------------------------------------------------------------------------------------
# zero-hit reductions
# ------------------------------------------------------------------------------------------------


def test_skip_without_any_hit_is_nan_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's "Mean of empty slice" would be an error here
        assert np.isnan(M._mean_skip(np.zeros(3), np.zeros(3, bool)))
        assert M._mean_skip(np.array([0.25, 0.5, 1.0]), np.array([True, False, True])) == 0.625
        # q1 = (+1, -1, +1, -1): its nearest items are at distance 2, radius 0 retrieves nothing
        got = M.precision_within_radius(PR_Q[1:2], RAD_D, PR_QL[1:2], RAD_DL, 0, zero_hit="skip")
        assert np.isnan(got)


# ------------------------------------------------------------------------------------------------
# unpack_codes input checks
# ------------------------------------------------------------------------------------------------


def test_unpack_codes_round_trip_with_padding():
    # 0b1010_0000 with code_length 3 -> +1 -1 +1 ; 0b0100_0000 -> -1 +1 -1
    got = M.unpack_codes(np.array([[0xA0], [0x40]], np.uint8), 3)
    np.testing.assert_array_equal(got, [[1, -1, 1], [-1, 1, -1]])
    assert got.dtype == np.float32


def test_unpack_codes_names_what_is_wrong():
    with pytest.raises(TypeError, match=r"^packed codes must be a numpy array or a torch tensor, "
                                        r"got list$"):
        M.unpack_codes([[0xA0]])
    for bad in (np.array([0xA0, 0x40], np.uint8),      # 1-D uint8
                np.array([[0xA0], [0x40]], np.int64),  # 2-D, not uint8
                np.zeros((1, 1, 1), np.uint8)):
        with pytest.raises(ValueError, match=r"^packed codes must be a uint8 array \(n, "
                                             r"ceil\(L/8\)\), got dtype .* produce them with "
                                             r"pack_codes$"):
            M.unpack_codes(bad)
    with pytest.raises(ValueError, match=r"^packed codes: code_length=9 does not match 1 packed "
                                         r"bytes per code \(need 1\.\.8\)$"):
        M.unpack_codes(np.array([[0xA0]], np.uint8), 9)
    with pytest.raises(ValueError, match=r"^packed codes: padding bits beyond code_length=2 are "
                                         r"not zero; pack with pack_codes$"):
        M.unpack_codes(np.array([[0xA0]], np.uint8), 2)  # bit 3 (0x20) is set


# ------------------------------------------------------------------------------------------------
# every user-facing message of the input checks, word for word
# ------------------------------------------------------------------------------------------------

_BINARISE = "; binarise first, e.g. torch.where(x >= 0, 1.0, -1.0) (sign(0) = +1)"


def _map(**kw):
    """map_at_k on the radius data (one query, five 4-bit items) with some inputs replaced."""
    args = dict(query_codes=RAD_Q, db_codes=RAD_D, query_labels=RAD_QL, db_labels=RAD_DL, k=None)
    args.update(kw)
    return M.map_at_k(args.pop("query_codes"), args.pop("db_codes"), args.pop("query_labels"),
                      args.pop("db_labels"), args.pop("k"), **args)


@pytest.mark.parametrize("kw, error, message", [
    # option names (_lookup), an unhashable name included
    (dict(zero_hit="drop"), ValueError, "unknown zero_hit convention 'drop'; valid names: count, skip"),
    (dict(ties="random"), ValueError, "unknown tie rule 'random'; valid names: index"),
    (dict(ties=["index"]), ValueError, "unknown tie rule ['index']; valid names: index"),
    (dict(backend="cuda"), ValueError,
     "unknown backend (or 'auto') 'cuda'; valid names: faiss, numba, numpy, torch"),
    # budget, threads, k
    (dict(memory_budget_mb=0), ValueError,
     "memory_budget_mb must be a finite number of megabytes > 0, got 0"),
    (dict(memory_budget_mb=-1.5), ValueError,
     "memory_budget_mb must be a finite number of megabytes > 0, got -1.5"),
    (dict(memory_budget_mb=float("inf")), ValueError,
     "memory_budget_mb must be a finite number of megabytes > 0, got inf"),
    (dict(memory_budget_mb=float("nan")), ValueError,
     "memory_budget_mb must be a finite number of megabytes > 0, got nan"),
    (dict(threads=0), ValueError, "threads must be a positive integer or None, got 0"),
    (dict(threads=True), ValueError, "threads must be a positive integer or None, got True"),
    (dict(threads=2.0), ValueError, "threads must be a positive integer or None, got 2.0"),
    (dict(k=0), ValueError, "k must be a positive integer or None (whole database), got 0"),
    (dict(k=True), ValueError, "k must be a positive integer or None (whole database), got True"),
    (dict(k=2.0), ValueError, "k must be a positive integer or None (whole database), got 2.0"),
    (dict(k=np.int64(-3)), ValueError,
     "k must be a positive integer or None (whole database), got np.int64(-3)"),
    # codes: type, shape, length, dtype
    (dict(db_codes=[[1, 1, 1, 1]]), TypeError,
     "db_codes must be a numpy array or a torch tensor, got list"),
    (dict(query_codes=[[1, 1, 1, 1]]), TypeError,
     "query_codes must be a numpy array or a torch tensor, got list"),
    (dict(db_codes=np.ones(4)), ValueError, "db_codes must have shape (n, L), got shape (4,)"),
    (dict(query_codes=np.ones((1, 0))), ValueError, "query_codes has code length 0"),
    (dict(db_codes=np.full((5, 4), "1")), ValueError,
     "db_codes must be a numeric array of +-1 or 0/1 codes, got dtype <U1"),
    (dict(query_codes=np.ones((1, 4), complex)), ValueError,
     "query_codes must be a numeric array of +-1 or 0/1 codes, got dtype complex128"),
    # codes: values (0.5 at row 1, column 2 of the database; a -1 among 0/1 query codes)
    (dict(db_codes=np.where(np.arange(20).reshape(5, 4) == 6, 0.5, RAD_D)), ValueError,
     "db_codes must hold +-1 or 0/1 values (one convention per array); found 0.5 at row 1, "
     "column 2" + _BINARISE),
    (dict(query_codes=np.array([[1, 0, -1, 1]])), ValueError,
     "query_codes must hold +-1 or 0/1 values (one convention per array); found -1 at row 0, "
     "column 2 (the array also holds 0: +-1 and 0/1 codes cannot be mixed)" + _BINARISE),
    # code lengths
    (dict(query_codes=np.ones((1, 5))), ValueError,
     "query codes have 5 bits but database codes have 4"),
    (dict(code_length=5), ValueError, "db_codes have 4 bits but code_length=5"),
    (dict(query_codes=np.ones((0, 4))), ValueError,
     "query_codes and db_codes must each hold at least one code"),
    (dict(db_codes=np.ones((0, 4)), db_labels=np.zeros(0, np.int64)), ValueError,
     "query_codes and db_codes must each hold at least one code"),
    # packed codes
    (dict(packed=True), ValueError,
     "db_codes with packed=True must be a uint8 array (n, ceil(L/8)) from pack_codes, got dtype "
     "float32 shape (5, 4)"),
    (dict(packed=True, db_codes=np.zeros((5, 1), np.uint8), code_length=9), ValueError,
     "db_codes: code_length=9 does not match 1 packed bytes per code (need 1..8)"),
    (dict(packed=True, db_codes=np.zeros((5, 2), np.uint8), code_length=8), ValueError,
     "db_codes: code_length=8 does not match 2 packed bytes per code (need 9..16)"),
    (dict(packed=True, db_codes=np.full((5, 1), 0x08, np.uint8), code_length=4), ValueError,
     "db_codes: padding bits beyond code_length=4 are not zero; pack with pack_codes"),
    # labels
    (dict(query_labels=[0]), TypeError,
     "query_labels must be a numpy array or a torch tensor, got list"),
    (dict(db_labels=(0, 1, 0, 1, 1)), TypeError,
     "db_labels must be a numpy array or a torch tensor, got tuple"),
    (dict(query_labels=np.zeros((1, 2, 2), np.int64)), ValueError,
     "query_labels must be multi-hot (n, C) or class ids (n,), got shape (1, 2, 2)"),
    (dict(db_labels=np.zeros((), np.int64)), ValueError,
     "db_labels must be multi-hot (n, C) or class ids (n,), got shape ()"),
    (dict(db_labels=np.array([0, 1, 0])), ValueError, "db_labels has 3 rows but there are 5 codes"),
    (dict(query_labels=np.array([0, 1])), ValueError,
     "query_labels has 2 rows but there are 1 codes"),
    (dict(query_labels=np.zeros((1, 1), np.int64)), ValueError,
     "query_labels has shape (1, 1): a single column reads either as class ids or as multi-hot "
     "labels of one class, which rank differently; pass class ids as a 1-D array (labels[:, 0] "
     "or labels.ravel()), or multi-hot labels with one column per class (e.g. np.eye(2)[ids] for "
     "two classes)"),
    (dict(query_labels=np.array([0.0])), ValueError,
     "query_labels given as class ids (n,) must be integers, got float64"),
    (dict(db_labels=np.eye(5, 3, dtype=np.int64) * 2), ValueError,
     "db_labels must be multi-hot 0/1 (n, C), got values from 0 to 2; +-1 labels: pass "
     "(labels > 0)"),
    (dict(query_labels=-np.ones((1, 3))), ValueError,
     "query_labels must be multi-hot 0/1 (n, C), got values from -1.0 to -1.0; +-1 labels: pass "
     "(labels > 0)"),
    (dict(query_labels=np.array([[0.5, 0.0, 0.0]])), ValueError,
     "query_labels must be multi-hot 0/1 (n, C), got values from 0.0 to 0.5; +-1 labels: pass "
     "(labels > 0)"),
    (dict(query_labels=np.array([[1, 0, 0]]), db_labels=np.eye(5, 2, dtype=np.int64)), ValueError,
     "query_labels have 3 classes (columns) but db_labels have 2; both must be multi-hot over the "
     "same C classes (or integer class ids (n,))"),
    (dict(query_labels=np.array([3]), db_labels=np.eye(5, 3, dtype=np.int64)), ValueError,
     "query_labels: class ids must lie in 0..2 to match multi-hot labels"),
    (dict(db_labels=np.array([0, 1, 0, 1, 2]), query_labels=np.array([[1, 0]])), ValueError,
     "db_labels: class ids must lie in 0..1 to match multi-hot labels"),
])
def test_map_at_k_input_messages(kw, error, message):
    import re

    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        _map(**kw)


@pytest.mark.parametrize("call, message", [
    (lambda: M.average_precision_from_ranking(np.array([[0.0, 1.0]]), RAD_QL, RAD_DL),
     "ranking must be an integer array (n_query, K), got dtype float64 shape (1, 2)"),
    (lambda: M.average_precision_from_ranking(np.array([0, 1]), RAD_QL, RAD_DL),
     "ranking must be an integer array (n_query, K), got dtype int64 shape (2,)"),
    (lambda: M.average_precision_from_ranking(np.array([[0, 5]]), RAD_QL, RAD_DL),
     "ranking holds indices outside the database (faiss pads with -1 when K exceeds the database "
     "size)"),
    (lambda: M.average_precision_from_ranking(np.array([[-1, 0]]), RAD_QL, RAD_DL),
     "ranking holds indices outside the database (faiss pads with -1 when K exceeds the database "
     "size)"),
    (lambda: M.precision_at_k_curve(RAD_Q, RAD_D, RAD_QL, RAD_DL, []),
     "ks must be a non-empty sequence of positive integers, got []"),
    (lambda: M.precision_at_k_curve(RAD_Q, RAD_D, RAD_QL, RAD_DL, (2, 0)),
     "ks must be a non-empty sequence of positive integers, got (2, 0)"),
    (lambda: M.precision_at_k_curve(RAD_Q, RAD_D, RAD_QL, RAD_DL, [2.5]),
     "ks must be a non-empty sequence of positive integers, got [2.5]"),
    (lambda: M.precision_at_k_curve(RAD_Q, RAD_D, RAD_QL, RAD_DL, [1, float("nan")]),
     "ks must be a non-empty sequence of positive integers, got [1, nan]"),
    (lambda: M.precision_at_k_curve(RAD_Q, RAD_D, RAD_QL, RAD_DL, ["3"]),
     "ks must be a non-empty sequence of positive integers, got ['3']"),
    (lambda: M.precision_at_k_curve(RAD_Q, RAD_D, RAD_QL, RAD_DL, [[1, 2]]),
     "ks must be a non-empty sequence of positive integers, got [[1, 2]]"),
    (lambda: M.stable_topk_rows(np.zeros(3, np.uint8), 1),
     "dist must be 2-D (rows, n), got shape (3,)"),
    (lambda: M.stable_topk_rows(np.zeros((2, 3), np.uint8), 0), "k must be >= 1, got 0"),
    (lambda: M.pack_codes(np.array([[1, 2]])),
     "codes must hold +-1 or 0/1 values (one convention per array); found 2 at row 0, column 1"
     + _BINARISE),
])
def test_other_input_messages(call, message):
    import re

    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        call()


# ------------------------------------------------------------------------------------------------
# mAP@K and precision@K at the boundaries of K, with ties decided by the database index
# ------------------------------------------------------------------------------------------------

# PR_Q against RAD_D (classes 0 1 0 1 1), stable ranking (distance, index):
#   q0 (class 0): distances 0 1 2 3 4 -> items 0 1 2 3 4 -> rel 1 0 1 0 0
#   q1 (class 0): distances 2 3 2 3 2 -> items 0 2 4 (d 2) then 1 3 (d 3) -> rel 1 1 0 0 0
#      (a tie rule putting item 4 before item 2 would give rel 1 0 1 and AP@3 5/6)
#   q2 (class 2): nothing relevant -> AP 0, precision 0
# AP@1: 1, 1, 0 ; AP@2: 1, 1, 0 ; AP@K >= 3: q0 (1 + 2/3) / 2 = 5/6, q1 1, q2 0
# mAP count: K = 1, 2 -> 2/3 ; K >= 3 -> (5/6 + 1) / 3 = 11/18
# mAP skip:  K = 1, 2 -> 1   ; K >= 3 -> (5/6 + 1) / 2 = 11/12
@pytest.mark.parametrize("backend", ["numpy", "torch", "faiss"])
@pytest.mark.parametrize("k, count, skip", [
    (1, 2 / 3, 1.0), (2, 2 / 3, 1.0), (3, 11 / 18, 11 / 12), (4, 11 / 18, 11 / 12),
    (5, 11 / 18, 11 / 12),    # K = database size
    (6, 11 / 18, 11 / 12),    # K > database size: clipped
    (None, 11 / 18, 11 / 12), # whole database
])
def test_map_at_k_boundaries_by_hand(backend, k, count, skip):
    if backend != "numpy":
        pytest.importorskip(backend)
    got = M.map_at_k(PR_Q, RAD_D, PR_QL, RAD_DL, k, backend=backend)
    assert got == pytest.approx(count, rel=0, abs=1e-15)
    got = M.map_at_k(PR_Q, RAD_D, PR_QL, RAD_DL, k, zero_hit="skip", backend=backend)
    assert got == pytest.approx(skip, rel=0, abs=1e-15)


def test_ap_per_query_and_precision_at_k_by_hand():
    ap = M.mean_average_precision_per_query(PR_Q, RAD_D, PR_QL, RAD_DL, 3)
    np.testing.assert_allclose(ap, [5 / 6, 1, 0], rtol=0, atol=1e-15)
    ap = M.mean_average_precision_per_query(PR_Q, RAD_D, PR_QL, RAD_DL, np.int64(1))
    np.testing.assert_array_equal(ap, [1, 1, 0])
    # precision@K (rel rows above): P@1 (1 + 1 + 0)/3 = 2/3 ; P@2 (1/2 + 1)/3 = 1/2 ;
    # P@3 (2/3 + 2/3)/3 = 4/9 ; P@5 (2/5 + 2/5)/3 = 4/15 ; P@6 clipped to P@5
    got = M.precision_at_k_curve(PR_Q, RAD_D, PR_QL, RAD_DL, [1, 2, 3, 5, 6])
    np.testing.assert_allclose(got, [2 / 3, 1 / 2, 4 / 9, 4 / 15, 4 / 15], rtol=0, atol=1e-15)
    got = M.precision_at_k_curve(PR_Q, RAD_D, PR_QL, RAD_DL, (np.int64(3),))
    np.testing.assert_allclose(got, [4 / 9], rtol=0, atol=1e-15)


def test_single_item_database_and_single_query():
    # n_db = 1: the item is relevant (AP 1) or not (AP 0), for every K
    for k in (1, 2, None):
        assert M.map_at_k(RAD_Q, RAD_D[:1], RAD_QL, RAD_DL[:1], k) == 1.0
        assert M.map_at_k(RAD_Q, RAD_D[1:2], RAD_QL, RAD_DL[1:2], k) == 0.0
        assert np.isnan(M.map_at_k(RAD_Q, RAD_D[1:2], RAD_QL, RAD_DL[1:2], k, zero_hit="skip"))
    assert M.precision_within_radius(RAD_Q, RAD_D[:1], RAD_QL, RAD_DL[:1], 0) == 1.0
    np.testing.assert_array_equal(M.hamming_distance(RAD_Q, RAD_D[4:5]), [[4]])


# ------------------------------------------------------------------------------------------------
# packed codes: the code_length range of B bytes is 8 (B - 1) + 1 .. 8 B, default 8 B
# ------------------------------------------------------------------------------------------------


def test_packed_code_length_defaults_to_whole_bytes_and_takes_both_ends_of_its_range():
    one = np.array([[0xA0], [0x41]], np.uint8)
    # default: 8 bits per byte -> 1010 0000 and 0100 0001 as +-1
    np.testing.assert_array_equal(M.unpack_codes(one), [[1, -1, 1, -1, -1, -1, -1, -1],
                                                        [-1, 1, -1, -1, -1, -1, -1, 1]])
    np.testing.assert_array_equal(M.unpack_codes(one, 8), M.unpack_codes(one))  # upper end
    two = np.array([[0xFF, 0x80], [0x00, 0x00]], np.uint8)
    # two bytes: 9..16 bits; 9 bits keeps the first bit of the second byte
    np.testing.assert_array_equal(M.unpack_codes(two, 9), [[1] * 9, [-1] * 9])
    assert M.unpack_codes(two).shape == (2, 16)
    # the same through the metrics: distances of packed codes, default and explicit lengths
    # (0xA0 vs 0x41: bits 0, 1, 2, 7 differ -> 4 ; 0xFF80 vs 0x0000 at 9 bits -> 9)
    np.testing.assert_array_equal(M.hamming_distance(one, one, packed=True), [[0, 4], [4, 0]])
    np.testing.assert_array_equal(M.hamming_distance(two, two, packed=True, code_length=9),
                                  [[0, 9], [9, 0]])
    np.testing.assert_array_equal(M.hamming_distance(two, two, packed=True), [[0, 9], [9, 0]])
    # unpacked 16-bit queries meet a packed database of default length 16
    np.testing.assert_array_equal(
        M.hamming_distance(np.ones((1, 16)), two, packed=True), [[7, 16]])
    assert M.map_at_k(np.ones((1, 16)), two, np.array([1]), np.array([0, 1]), packed=True) == 0.5


@pytest.mark.parametrize("last_byte", [0x01, 0x02, 0x04, 0x08])
def test_every_padding_bit_is_checked(last_byte):
    # code_length 4 in one byte: the low 4 bits are padding, each must be zero
    with pytest.raises(ValueError, match=r"padding bits beyond code_length=4 are not zero"):
        M.unpack_codes(np.array([[0x00], [0xF0 | last_byte]], np.uint8), 4)
    with pytest.raises(ValueError, match=r"padding bits beyond code_length=4 are not zero"):
        M.hamming_distance(RAD_Q, np.array([[0xF0 | last_byte]], np.uint8), packed=True,
                           code_length=4)
    # code_length 7: one padding bit, the lowest
    assert M.unpack_codes(np.array([[0xFE]], np.uint8), 7).tolist() == [[1.0] * 7]
    with pytest.raises(ValueError, match=r"padding bits beyond code_length=7 are not zero"):
        M.unpack_codes(np.array([[0xFF]], np.uint8), 7)


def test_average_precision_from_ranking_names_a_ranking_of_the_wrong_type():
    with pytest.raises(TypeError, match=r"^ranking must be a numpy array or a torch tensor, got "
                                        r"list$"):
        M.average_precision_from_ranking([[0, 1]], RAD_QL, RAD_DL)
    # the same ranking as an array: rel 1 0 -> AP 1
    np.testing.assert_array_equal(
        M.average_precision_from_ranking(np.array([[0, 1]]), RAD_QL, RAD_DL), [1.0])


def test_radius_counts_hold_one_query_row_at_a_time_on_a_small_budget():
    # 400 queries x 4000 items, L = 8, memory_budget_mb = 0.1: one row of 4000 pairs at 48 bytes
    # is 192000 bytes > 0.1 MB, so the counts run one query row per chunk. Counting all 400 rows
    # at once would take 400 x 4000 x (8-byte distances + 8-byte bin keys) = 25.6 MB; one row at
    # a time, with the tile scratch and the per-query counts, stays far below 4 MB.
    import tracemalloc

    rng = np.random.default_rng(11)
    q = np.where(rng.random((400, 8)) < 0.5, 1.0, -1.0)
    d = np.where(rng.random((4000, 8)) < 0.5, 1.0, -1.0)
    ql, dl = rng.integers(0, 3, 400), rng.integers(0, 3, 4000)
    tracemalloc.start()
    try:
        M.pr_curve(q, d, ql, dl, memory_budget_mb=0.1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, peak


def test_hamming_distance_is_an_int32_matrix_and_checks_the_code_length():
    # RAD_Q (all +1) against item j with j bits at -1: distance j
    got = M.hamming_distance(RAD_Q, RAD_D)
    assert got.dtype == np.int32 and got.shape == (1, 5)  # documented: int32 (n_query, n_db)
    np.testing.assert_array_equal(got, [[0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(M.hamming_distance(RAD_Q, RAD_D, code_length=4), got)
    with pytest.raises(ValueError, match=r"^db_codes have 4 bits but code_length=5$"):
        M.hamming_distance(RAD_Q, RAD_D, code_length=5)


def test_average_precision_from_ranking_names_labels_of_the_wrong_type():
    with pytest.raises(TypeError, match=r"^query_labels must be a numpy array or a torch tensor, "
                                        r"got list$"):
        M.average_precision_from_ranking(np.array([[0, 1]]), [0], RAD_DL)
    with pytest.raises(TypeError, match=r"^db_labels must be a numpy array or a torch tensor, "
                                        r"got tuple$"):
        M.average_precision_from_ranking(np.array([[0, 1]]), RAD_QL, (0, 1, 0, 1, 1))


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_a_tensor_dtype_numpy_lacks_is_named_with_the_fix():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"^query_labels has dtype torch\.complex32, which NumPy "
                                         r"cannot hold; convert it first \(e\.g\. \.float\(\) for "
                                         r"codes, \.long\(\) for class ids\)$"):
        M.average_precision_from_ranking(np.array([[0, 1]]), torch.zeros(1, dtype=torch.complex32),
                                         RAD_DL)


def test_a_bad_value_is_found_against_the_first_unset_entry():
    # 0/1 codes (the first entry that is not set is a 0) holding a 2 and a -1: the 2 is named
    # first (column 2); reading the convention from any other entry would name the 0 or the -1
    with pytest.raises(ValueError, match=r"^codes must hold \+-1 or 0/1 values \(one convention "
                                         r"per array\); found 2 at row 0, column 2; binarise"):
        M.pack_codes(np.array([[1, 0, 2, -1]]))
    # +-1 codes whose first unset entry is a -1 in row 1, then a 0: the 0 is the bad value
    with pytest.raises(ValueError, match=r"^codes must hold \+-1 or 0/1 values \(one convention "
                                         r"per array\); found 0 at row 1, column 3 \(the array "
                                         r"also holds -1: \+-1 and 0/1 codes cannot be mixed\); "):
        M.pack_codes(np.array([[1, 1, 1, 1], [1, -1, 1, 0]]))


def test_ap_per_query_forwards_packed_code_length_and_threads():
    # PAR data (see evaluate_paradigms above), student database packed with code_length 12,
    # unpacked 12-bit queries, k = 2: query 0 -> 1/2, query 1 (no relevant item) -> 0
    ap = M.mean_average_precision_per_query(PAR_Q, M.pack_codes(PAR_S), PAR_QL, PAR_DL, 2,
                                            packed=True, code_length=12, threads=1)
    np.testing.assert_allclose(ap, [1 / 2, 0], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"^threads must be a positive integer or None, got 0$"):
        M.mean_average_precision_per_query(PAR_Q, PAR_S, PAR_QL, PAR_DL, 2, threads=0)


def test_precision_at_k_takes_integer_valued_float_ks():
    # ks from np.linspace are floats 1.0 .. 5.0 (K = 5 is the database size). Rel rows of PR_Q
    # (see above): q0 1 0 1 0 0, q1 1 1 0 0 0, q2 none. P@1 2/3, P@2 1/2, P@3 4/9,
    # P@4 (2/4 + 2/4 + 0)/3 = 1/3, P@5 (2/5 + 2/5)/3 = 4/15
    got = M.precision_at_k_curve(PR_Q, RAD_D, PR_QL, RAD_DL, np.linspace(1, 5, 5))
    np.testing.assert_allclose(got, [2 / 3, 1 / 2, 4 / 9, 1 / 3, 4 / 15], rtol=0, atol=1e-15)


def test_precision_at_k_forwards_packed_code_length_and_threads():
    # PAR data, student database packed with code_length 12, unpacked 12-bit queries:
    # q0 ranks s1 s0 s3 s2 (distances 0 1 2 3) -> rel 0 1 0 1 ; q1 has no relevant item
    # P@1 (0 + 0)/2 = 0 ; P@2 (1/2)/2 = 1/4 ; P@4 (2/4)/2 = 1/4
    got = M.precision_at_k_curve(PAR_Q, M.pack_codes(PAR_S), PAR_QL, PAR_DL, [1, 2, 4],
                                 packed=True, code_length=12, threads=1)
    np.testing.assert_allclose(got, [0, 1 / 4, 1 / 4], rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"^threads must be a positive integer or None, got 0$"):
        M.precision_at_k_curve(PAR_Q, PAR_S, PAR_QL, PAR_DL, [1], threads=0)


def _reference_ap(q, d, ql, dl, k):
    """AP@k per query: plain loop, distances by counting differing entries, stable argsort."""
    out = []
    for i in range(q.shape[0]):
        dist = np.array([np.sum(q[i] != row) for row in d])
        rel = (dl == ql[i])[np.argsort(dist, kind="stable")[:k]]
        hits = np.cumsum(rel)
        ranks = np.arange(1, len(rel) + 1)
        out.append(float(np.sum(rel * hits / ranks) / hits[-1]) if hits[-1] else 0.0)
    return np.array(out)


def test_torch_backend_on_codes_longer_than_127_bits():
    # L = 256: the +-1 matrix product reaches +-256, beyond any 8-bit integer arithmetic
    pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    q = np.where(rng.random((3, 256)) < 0.5, 1.0, -1.0)
    d = np.where(rng.random((20, 256)) < 0.5, 1.0, -1.0)
    d[7] = q[0]  # distance 0
    d[3] = -q[1]  # distance 256
    ql, dl = rng.integers(0, 2, 3), rng.integers(0, 2, 20)
    expected = _reference_ap(q, d, ql, dl, 5)
    got = M.mean_average_precision_per_query(q, d, ql, dl, 5, backend="torch")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_torch_backend_one_query_row_per_chunk_covers_every_query():
    # a budget below one row holds one query row per torch chunk; 6 queries (more than L = 4):
    # PR_Q twice -> AP@3 5/6, 1, 0 (see the by-hand mAP test above) for each copy
    pytest.importorskip("torch")
    q, ql = np.concatenate([PR_Q, PR_Q]), np.concatenate([PR_QL, PR_QL])
    for _ in range(2):
        junk = [np.full(6, 7.0) for _ in range(8)]
        del junk
        ap = M.mean_average_precision_per_query(q, RAD_D, ql, RAD_DL, 3, backend="torch",
                                                memory_budget_mb=1e-6)
        np.testing.assert_allclose(ap, [5 / 6, 1, 0] * 2, rtol=0, atol=1e-15)


@pytest.mark.parametrize("zero_hit", ["count", "skip"])
def test_pr_curve_query_with_a_single_relevant_item(zero_hit):
    # query all -1 (class 2); RAD_D items at distances 4 3 2 1 0 from it, classes 0 1 0 1 2:
    # the one relevant item (4) is at distance 0 -> recall 1 at every radius; precision
    # 1/1, 1/2, 1/3, 1/4, 1/5
    curve = M.pr_curve(-np.ones((1, 4)), RAD_D, np.array([2]), np.array([0, 1, 0, 1, 2]),
                       zero_hit=zero_hit)
    _assert_curve(curve, [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5], [1, 1, 1, 1, 1])


def test_precision_curve_takes_integer_valued_floats():
    """K = 2.0 is K = 2 (a whole number); only fractional, NaN or non-numeric K are refused."""
    np.testing.assert_array_equal(
        M.precision_at_k_curve(RAD_Q, RAD_D, RAD_QL, RAD_DL, [2.0, 1]),
        M.precision_at_k_curve(RAD_Q, RAD_D, RAD_QL, RAD_DL, [2, 1]))

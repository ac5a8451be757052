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

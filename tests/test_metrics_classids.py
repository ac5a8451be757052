"""Exact dtypes and relevance of ``metrics._ClassIds``: the ids are held in the smallest integer
type that fits both the query and the database ids (``np.int64`` when either side is empty)."""
from __future__ import annotations

import numpy as np

from brcd_lib.metrics import _ClassIds


def test_classids_smallest_common_dtype_signed():
    # lo = -1 (int8), hi = 1000 (uint16): common type int32
    ids = _ClassIds(np.array([-1, 3], np.int64), np.array([1000, 3, 7], np.int64))
    assert ids.query.dtype == np.dtype(np.int32)
    assert ids.db.dtype == np.dtype(np.int32)
    assert ids.query.tolist() == [-1, 3]
    assert ids.db.tolist() == [1000, 3, 7]


def test_classids_smallest_common_dtype_unsigned():
    # lo = 0 (uint8), hi = 300 (uint16): common type uint16
    ids = _ClassIds(np.array([300, 0], np.int64), np.array([5], np.int64))
    assert ids.query.dtype == np.dtype(np.uint16)
    assert ids.db.dtype == np.dtype(np.uint16)


def test_classids_small_range_uint8():
    ids = _ClassIds(np.array([2, 1], np.int64), np.array([0, 2], np.int64))
    assert ids.query.dtype == np.dtype(np.uint8)
    assert ids.db.dtype == np.dtype(np.uint8)


def test_classids_empty_side_keeps_int64():
    ids = _ClassIds(np.array([5, 7], np.int32), np.array([], np.int32))
    assert ids.query.dtype == np.dtype(np.int64)
    assert ids.db.dtype == np.dtype(np.int64)
    assert ids.query.tolist() == [5, 7]
    ids = _ClassIds(np.array([], np.int32), np.array([5, 7], np.int32))
    assert ids.query.dtype == np.dtype(np.int64)
    assert ids.db.dtype == np.dtype(np.int64)


def test_classids_relevance_by_hand():
    ids = _ClassIds(np.array([1, 2, 1]), np.array([1, 0, 2, 1]))
    np.testing.assert_array_equal(
        ids.relevance(slice(0, 3), None),
        np.array([[True, False, False, True],
                  [False, False, True, False],
                  [True, False, False, True]]))
    np.testing.assert_array_equal(
        ids.relevance(slice(1, 3), np.array([[2, 0], [3, 1]])),
        np.array([[True, False], [True, False]]))

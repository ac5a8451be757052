"""Fast tests aimed at surviving mutants of brcd_lib.metrics, second batch: the memory budget
check, the parallel check of the codes (its row ranges, threads and the unset value across
ranges), the messages of packed inputs, the device detection, and the buffers of the popcount
tile loop (word widths, scratch, cached plans, candidate groups). Expected values are literals
worked out by hand in the comments or come from a plain NumPy reference written here."""
from __future__ import annotations

import math
import re
import sys
import threading
import types

import numpy as np
import pytest

from brcd_lib import metrics as M

_BINARISE = "; binarise first, e.g. torch.where(x >= 0, 1.0, -1.0) (sign(0) = +1)"
_MIXED = " (the array also holds {}: +-1 and 0/1 codes cannot be mixed)"


def _codes_error(what: str, value: str, row: int, col: int, also: str | None = None) -> str:
    """The exact message of a bad code value, as a full-match pattern."""
    mixed = "" if also is None else _MIXED.format(also)
    return "^" + re.escape(
        f"{what} must hold +-1 or 0/1 values (one convention per array); found {value} at row "
        f"{row}, column {col}{mixed}{_BINARISE}") + "$"


# ------------------------------------------------------------------------------------------------
# the memory budget: refused before any chunking loop
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("budget, shown", [(0, "0"), (0.0, "0.0"), (-0.0, "-0.0"),
                                           (-1.5, "-1.5"), (-1e-9, "-1e-09"),
                                           (float("inf"), "inf"), (float("-inf"), "-inf"),
                                           (float("nan"), "nan")])
def test_check_budget_refuses_zero_negative_infinite_and_nan(budget, shown):
    with pytest.raises(ValueError, match="^" + re.escape(
            f"memory_budget_mb must be a finite number of megabytes > 0, got {shown}") + "$"):
        M._check_budget(budget)


@pytest.mark.parametrize("budget", [1e-6, 0.5, 1, 256.0, 1e300])
def test_check_budget_accepts_positive_finite_budgets(budget):
    assert M._check_budget(budget) is None


def test_a_budget_whose_bytes_overflow_is_refused_by_name():
    # 1e303 MB is finite but 1e303 * 2**20 B is not: the chunk sizes were int(NaN) (a ValueError
    # "cannot convert float NaN to integer" from inside the backends); now refused up front
    assert math.isfinite(1e303) and not math.isfinite(1e303 * 2**20)
    message = "^" + re.escape("memory_budget_mb=1e+303 is too large: its size in bytes "
                              "overflows a float") + "$"
    with pytest.raises(ValueError, match=message):
        M._check_budget(1e303)
    q, d = np.ones((2, 8)), np.ones((5, 8))
    for backend in ("numpy", "faiss", "torch"):
        with pytest.raises(ValueError, match=message):
            M.map_at_k(q, d, np.zeros(2, int), np.zeros(5, int), 3, memory_budget_mb=1e303,
                       backend=backend)
    with pytest.raises(ValueError, match=message):
        M.pr_curve(q, d, np.zeros(2, int), np.zeros(5, int), memory_budget_mb=1e303)
    # the largest budgets below the overflow still work: every item is relevant, AP@3 = 1
    assert M.map_at_k(q, d, np.zeros(2, int), np.zeros(5, int), 3, memory_budget_mb=1e302) == 1.0


# ------------------------------------------------------------------------------------------------
# the parallel check of the codes: row ranges, their threads, the unset value across ranges
# ------------------------------------------------------------------------------------------------


def _spy_pack_rows(monkeypatch):
    """Record (lo, hi, rows of the array, thread name) of every _pack_rows call."""
    calls = []
    real = M._pack_rows

    def spy(arr, to_numpy, out, lo, hi, unset, what):
        calls.append((lo, hi, arr.shape[0], threading.current_thread().name))
        return real(arr, to_numpy, out, lo, hi, unset, what)
    monkeypatch.setattr(M, "_pack_rows", spy)
    return calls


def _pm1(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    bits = np.random.default_rng(seed).random((n, length)) < 0.5
    bits[:, 0] = False  # every row holds an unset entry (-1)
    return bits, np.where(bits, 1.0, -1.0)


def test_pack_codes_checks_on_one_thread(monkeypatch):
    # even when the array is large enough to be split, pack_codes checks it in one range
    monkeypatch.setattr(M, "_PARALLEL_CHECK_ENTRIES", 1)
    calls = _spy_pack_rows(monkeypatch)
    bits, codes = _pm1(4, 8, 0)
    np.testing.assert_array_equal(M.pack_codes(codes), np.packbits(bits, axis=1))
    assert [c[:2] for c in calls] == [(0, 4)]


@pytest.mark.parametrize("n, length, entries, threads, ranges", [
    (3, 8, 16, 2, [(0, 3)]),                   # 24 // 16 = 1 part (24 / 16 = 1.5 is not a count)
    (3, 8, 16, 1, [(0, 3)]),                   # one thread: one part
    (4, 16, 16, 2, [(0, 2), (2, 4)]),          # 64 // 16 = 4 parts, at most 2 threads
    (5, 8, 8, 3, [(0, 1), (1, 3), (3, 5)]),    # 40 // 8 = 5 -> 3 parts: bounds 5 * i // 3
    (4, 16, 32, 7, [(0, 2), (2, 4)]),          # 64 // 32 = 2 parts although 7 threads
])
def test_parallel_check_splits_rows_into_ranges(monkeypatch, n, length, entries, threads,
                                                ranges):
    monkeypatch.setattr(M, "_PARALLEL_CHECK_ENTRIES", entries)
    calls = _spy_pack_rows(monkeypatch)
    bits, codes = _pm1(n, length, n + length)
    packed, got_length = M._pack_checked(codes, "db_codes", threads)
    assert got_length == length
    np.testing.assert_array_equal(packed, np.packbits(bits, axis=1))
    assert sorted(c[:2] for c in calls) == ranges
    if len(ranges) > 1:  # the ranges run on the check's own named threads
        assert all(re.fullmatch(r"brcd-pack_\d+", c[3]) for c in calls), calls


def _mixed_across_ranges(first: str) -> np.ndarray:
    """4 x 8 codes: rows 0-1 in one convention, rows 2-3 in the other; each half is consistent
    by itself. The first unset entry of rows 2-3 is at row 2, column 1."""
    a = np.array([[1, -1, 1, 1, -1, 1, 1, 1], [-1, 1, 1, 1, 1, 1, 1, -1]], np.float64)
    b = np.array([[1, 0, 1, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1]], np.float64)
    return np.concatenate([a, b] if first == "pm1" else [b, a])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("first, value, also", [("pm1", "0.0", "-1"), ("01", "-1.0", "0")])
def test_conventions_mixed_across_ranges_are_refused_naming_the_first_entry(
        monkeypatch, threads, first, value, also):
    # 32 entries // 8 = 4 -> 2 ranges of 2 rows with 2 threads: each range alone is consistent,
    # the unset values of the ranges differ; the error is the serial one: the first entry of
    # rows 2-3 that is not 1 and not the array's first unset value (row 2, column 1)
    monkeypatch.setattr(M, "_PARALLEL_CHECK_ENTRIES", 8)
    calls = _spy_pack_rows(monkeypatch)
    with pytest.raises(ValueError, match=_codes_error("db_codes", value, 2, 1, also)):
        M._pack_checked(_mixed_across_ranges(first), "db_codes", threads)
    assert {c[:2] for c in calls} >= ({(0, 2), (2, 4)} if threads == 2 else {(0, 4)})


def test_conventions_mixed_across_three_ranges_with_an_all_set_range_between(monkeypatch):
    # 6 x 8 = 48 entries // 8 = 6 -> 3 ranges of 2 rows: +-1, all ones (no unset value), 0/1
    monkeypatch.setattr(M, "_PARALLEL_CHECK_ENTRIES", 8)
    codes = np.ones((6, 8))
    codes[0, 3] = codes[1, 5] = -1.0
    codes[5, 6] = 0.0
    with pytest.raises(ValueError, match=_codes_error("codes", "0.0", 5, 6, "-1")):
        M._pack_checked(codes, "codes", 3)


@pytest.mark.parametrize("set_rows", [slice(0, 2), slice(2, 4)])
def test_a_range_with_every_bit_set_agrees_with_either_convention(monkeypatch, set_rows):
    # 2 ranges, one of them all ones: only one range reports an unset value -> valid codes
    monkeypatch.setattr(M, "_PARALLEL_CHECK_ENTRIES", 8)
    bits, codes = _pm1(4, 8, 9)
    bits[set_rows] = True
    codes[set_rows] = 1.0
    for arr in (codes, np.where(bits, 1.0, 0.0)):
        packed, length = M._pack_checked(arr, "db_codes", 2)
        assert length == 8
        np.testing.assert_array_equal(packed, np.packbits(bits, axis=1))


def test_a_bad_value_after_the_first_block_is_named_against_the_array_unset_value(monkeypatch):
    # one row per block; row 0 fixes the unset value -1. Row 1 holds 0 then 2: the 2 breaks the
    # count of ones, and the entry named is the first one that is neither 1 nor -1: the 0
    monkeypatch.setattr(M, "_CHECK_BLOCK", 8)
    codes = np.array([[1, -1, 1, 1, 1, 1, 1, 1], [1, 0, 2, 1, 1, 1, 1, 1]], np.float64)
    with pytest.raises(ValueError, match=_codes_error("codes", "0.0", 1, 1, "-1")):
        M.pack_codes(codes)


def test_metrics_check_both_code_sets_on_their_threads(monkeypatch):
    # 4 queries and 6 items of 8 bits, every array split (one entry per part at most): with
    # threads=2 each code set is checked as 2 ranges; hamming_distance has no threads: 1 range
    monkeypatch.setattr(M, "_PARALLEL_CHECK_ENTRIES", 1)
    calls = _spy_pack_rows(monkeypatch)
    q_bits, q = _pm1(4, 8, 1)
    d_bits, d = _pm1(6, 8, 2)
    M.mean_average_precision_per_query(q, d, np.zeros(4, int), np.zeros(6, int), 2, threads=2)
    assert sorted((c[2], c[0], c[1]) for c in calls) == [(4, 0, 2), (4, 2, 4), (6, 0, 3),
                                                          (6, 3, 6)]
    calls.clear()
    dist = M.hamming_distance(q, d)
    np.testing.assert_array_equal(dist, (q_bits[:, None] != d_bits[None]).sum(-1))
    assert sorted((c[2], c[0], c[1]) for c in calls) == [(4, 0, 4), (6, 0, 6)]


# ------------------------------------------------------------------------------------------------
# packed inputs: which set is named, when a query counts as packed
# ------------------------------------------------------------------------------------------------

_DB8 = np.array([[0b1010_0000], [0b0000_0001], [0xFF]], np.uint8)  # 3 packed 8-bit codes


def test_packed_inputs_of_the_wrong_type_are_named():
    with pytest.raises(TypeError, match=r"^query_codes must be a numpy array or a torch tensor, "
                                        r"got list$"):
        M.hamming_distance([[1, -1]], _DB8, packed=True)
    with pytest.raises(TypeError, match=r"^db_codes must be a numpy array or a torch tensor, "
                                        r"got tuple$"):
        M.hamming_distance(_DB8, ((1,),), packed=True)


def test_an_unpacked_query_one_byte_wide_is_not_read_as_packed():
    # float32 +-1 queries of 1 bit against 8-bit packed codes: packed=True, but the query is not
    # uint8, so it is unpacked codes of length 1, which do not match
    with pytest.raises(ValueError, match=r"^query codes have 1 bits but database codes have 8$"):
        M.hamming_distance(np.ones((2, 1), np.float32), _DB8, packed=True)
    with pytest.raises(ValueError, match=r"^query_codes must have shape \(n, L\), got shape "
                                         r"\(3,\)$"):
        M.hamming_distance(np.ones(3), _DB8, packed=True)
    # unpacked 8-bit +-1 queries against the packed database: distances by hand
    q = np.array([[1, -1, 1, -1, -1, -1, -1, -1]], np.float32)  # bits 1010 0000
    np.testing.assert_array_equal(M.hamming_distance(q, _DB8, packed=True), [[0, 3, 6]])


# ------------------------------------------------------------------------------------------------
# device detection and tensor dtypes
# ------------------------------------------------------------------------------------------------


class _FakeTensor:
    def __init__(self, device_type: str) -> None:
        self.device = types.SimpleNamespace(type=device_type, name=f"device:{device_type}")


@pytest.fixture
def fake_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(Tensor=_FakeTensor))


@pytest.mark.parametrize("devices, expected", [
    ((), None),
    (("cpu",), None),
    (("meta",), None),
    (("cpu", "meta"), None),
    (("cuda",), "cuda"),
    (("cpu", "cuda"), "cuda"),
    (("meta", "mps", "cuda"), "mps"),   # the first accelerator
])
def test_accelerator_of_returns_the_first_accelerator_device(fake_torch, devices, expected):
    xs = [_FakeTensor(t) for t in devices]
    got = M._accelerator_of(np.ones((2, 8)), *xs)
    if expected is None:
        assert got is None
    else:
        assert got is next(x.device for x in xs if x.device.type == expected)


def test_accelerator_of_without_torch_is_none(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert M._accelerator_of(np.ones((2, 8)), _FakeTensor("cuda")) is None


class _FakeComplexHalf(_FakeTensor):
    """A CPU tensor whose dtype NumPy lacks and that is not floating point (torch.complex32)."""

    dtype = "torch.complex32"

    def __init__(self) -> None:
        super().__init__("cpu")
        self.shape, self.ndim = (2, 3), 2

    def detach(self):
        return self

    def numpy(self):
        raise TypeError("Got unsupported ScalarType ComplexHalf")

    def is_floating_point(self) -> bool:
        return False


def test_code_tensor_of_a_dtype_numpy_lacks_is_named_with_the_fix(fake_torch):
    with pytest.raises(ValueError, match=r"^codes has dtype torch\.complex32, which NumPy cannot "
                                         r"hold; convert it first \(e\.g\. \.float\(\)\)$"):
        M.pack_codes(_FakeComplexHalf())


# ------------------------------------------------------------------------------------------------
# the popcount tile loop: word widths, distance type, scratch, plans, candidate groups
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_bytes, dtype, n_words", [(1, np.uint8, 1), (2, np.uint32, 1),
                                                     (3, np.uint32, 1), (4, np.uint32, 1),
                                                     (5, np.uint64, 1), (8, np.uint64, 1),
                                                     (9, np.uint64, 2), (16, np.uint64, 2),
                                                     (17, np.uint64, 3)])
def test_popcount_words_are_8_32_or_64_bits(n_bytes, dtype, n_words):
    b = np.arange(3 * n_bytes, dtype=np.uint8).reshape(3, n_bytes)
    words = M._PopcountHamming._words(b)
    assert words.dtype == dtype and words.shape == (n_words, 3)
    if n_bytes == 1:
        np.testing.assert_array_equal(words, [[0, 1, 2]])


@pytest.mark.parametrize("length, dtype", [(1, np.uint8), (254, np.uint8), (255, np.uint16),
                                           (256, np.uint16), (65534, np.uint16),
                                           (65535, np.uint32)])
def test_distance_type_keeps_its_largest_value_above_every_distance(length, dtype):
    b = np.zeros((1, -(-length // 8)), np.uint8)
    assert M._PopcountHamming(b, b, length).out_dtype == dtype


def _engine(n_q: int, n_db: int, length: int, seed: int):
    rng = np.random.default_rng(seed)
    q_bits, d_bits = rng.random((n_q, length)) < 0.5, rng.random((n_db, length)) < 0.5
    engine = M._PopcountHamming(np.packbits(q_bits, axis=1), np.packbits(d_bits, axis=1),
                                length)
    return engine, (q_bits[:, None] != d_bits[None]).sum(-1)


@pytest.mark.parametrize("n_q, length, counts", [(3, 16, False), (1, 16, False), (1, 72, True),
                                                 (3, 72, True)])
def test_scratch_is_one_tile(n_q, length, counts):
    # 21 items: tiles of 65536 // 21 = 3120 rows x 21 columns; the candidate test is padded to
    # 24 columns; bit counts only when a code spans several words (72 bits: two uint64)
    engine, _ = _engine(n_q, 21, length, 0)
    words, bit_counts, marks = engine.scratch()
    assert words.shape == (3120 * 21,) and words.dtype == engine.d.dtype
    if counts:
        assert bit_counts.shape == (3120 * 21,) and bit_counts.dtype == np.uint8
    else:
        assert bit_counts is None
    assert marks.shape == (3120 * 24,) and marks.dtype == np.bool_


def test_distances_use_the_given_scratch_and_keep_the_plans(monkeypatch):
    engine, expected = _engine(3, 21, 72, 1)
    scratch = engine.scratch()
    out = np.empty((3, 21), engine.out_dtype)
    plans = {}

    def no_new_scratch():
        raise AssertionError("scratch given: no new one is made")
    monkeypatch.setattr(engine, "scratch", no_new_scratch)
    np.testing.assert_array_equal(engine.distances(slice(0, 3), out=out, scratch=scratch,
                                                   plans=plans), expected)
    plan = plans[3]
    assert isinstance(plan, list) and list(plans) == [3]

    def no_new_plan(*args):
        raise AssertionError("the plan of 3 rows is kept")
    monkeypatch.setattr(engine, "_plan", no_new_plan)
    out[...] = 0
    np.testing.assert_array_equal(engine.distances(slice(0, 3), out=out, scratch=scratch,
                                                   plans=plans), expected)
    assert plans[3] is plan


def test_thresholds_without_groups_give_the_plain_distances():
    engine, expected = _engine(3, 21, 16, 2)
    got = engine.distances(slice(None), thresholds=np.array([3, 8, 0], engine.out_dtype))
    np.testing.assert_array_equal(got, expected)


def _reference_groups(dist: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """groups[r, j]: any item 8j..8j+7 of row r at distance <= thresholds[r] (plain NumPy)."""
    hit = dist <= thresholds[:, None]
    n_groups = -(-dist.shape[1] // 8)
    padded = np.zeros((dist.shape[0], 8 * n_groups), bool)
    padded[:, :dist.shape[1]] = hit
    return padded.reshape(dist.shape[0], n_groups, 8).any(axis=2)


@pytest.mark.parametrize("length", [16, 72])
@pytest.mark.parametrize("stale", [False, True])
def test_distances_mark_the_candidate_groups(length, stale):
    # 21 items: groups 0-7, 8-15 and 16-20 (+ 3 padding columns of the candidate test)
    engine, dist = _engine(4, 21, length, 3 + length)
    # per row: the smallest distance of the first group (group 0 marked, others may be),
    # the row minimum, a threshold below every distance, and one above every distance
    assert dist[2].min() >= 1
    thresholds = np.array([dist[0, :8].min(), dist[1].min(), dist[2].min() - 1,
                           dist[3].max()]).astype(engine.out_dtype)
    expected = _reference_groups(dist, thresholds)
    assert expected.any() and not expected.all() and not expected[:, 2].all()
    scratch = engine.scratch()
    scratch[2][...] = stale  # candidate marks left from an earlier call: padding is reset
    for before in (False, True):
        groups = np.full((4, 3), before)
        out = np.empty((4, 21), engine.out_dtype)
        got = engine.distances(slice(None), out=out, scratch=scratch, thresholds=thresholds,
                               groups=groups)
        np.testing.assert_array_equal(got, dist)
        np.testing.assert_array_equal(groups, expected)

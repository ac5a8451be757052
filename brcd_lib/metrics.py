"""Retrieval metrics over Hamming ranking: mAP@K, precision@K, PR curve, radius precision.

Convention (see :data:`metric_convention`): an item is relevant to a query when the two share at
least one label; the database is ranked by Hamming distance ascending and ties are broken by
database index (a stable sort); AP@K = (1/R) * sum over relevant ranks i <= K of precision@i, where
R is the number of relevant items inside the top K; a query with R = 0 has AP 0 and stays in the
mean (``zero_hit="count"``, the convention of the BRCD / CIBHash / DeepHash-pytorch code).
``zero_hit="skip"`` averages over queries with R > 0 only (the HashNet / TBH convention).

Inputs. Codes are ``numpy`` arrays or ``torch`` tensors of shape (n, L) holding either +-1 or 0/1
(detected per array; 1 and +1 are the set bit), of any numeric dtype (bfloat16 tensors included).
They are checked and packed in one pass over blocks of rows (:func:`_pack_checked`): a value that
is neither 1 nor the array's unset value (0 or -1), NaN, or a mix of both conventions is an error
naming the value and its position; no temporary of the array's size is made. With
``packed=True`` the database codes are ``uint8`` arrays (n, ceil(L/8)) as written by
:func:`pack_codes` (``np.packbits`` bit order, zero padding); query codes may then be packed the
same way or given unpacked. Labels are multi-hot (n, C >= 2) (any non-zero entry is a label) or
integer class ids (n,); a single column (n, 1) is refused, since it reads both ways. The module
imports no torch: NumPy inputs never load it, and tensors are recognised only once the caller has
imported torch.

Implementation. On CPU the default backend is ``numba`` when numba is installed (a core
dependency of the kit), ``numpy`` otherwise; both give identical values. The ``numba`` backend
(:func:`_numba_ranking`, kernel in :mod:`brcd_lib.hamming_topk`) ranks each query in one pass
over the database: vector popcounts over tiles that stay in cache, a running K-th distance below
which an item must lie to enter, and a stable counting sort of the accepted items at the end.
The ``numpy`` backend works on chunks of query rows (several at a time
on ``threads`` threads; NumPy releases the GIL inside its loops). For a chunk it computes the
Hamming distances with XOR + popcount on machine words (``np.bitwise_count``; a byte lookup table
on NumPy < 2.0) tile by tile into a reused buffer, so no temporary of size rows x database is
allocated. The exact stable top-K of each row: the distances of the query to a systematic sample
of the database give a per-row threshold a little above the K/N quantile; the items at or below
it are the candidates, their positions (in index order) and distances are extracted, and a
stable radix sort of those distances orders them -- equal distances keep index order. On a large
database (a chunk's distances above ``_FUSED_MIN_BYTES``) the tile loop itself marks, while a
tile is in cache, the groups of 8 items that hold a candidate, and only those groups are read
again (:func:`_topk_from_groups`); on a smaller one the chunk's distances are compared afterwards
(:func:`stable_topk_rows`). A row with fewer than K candidates raises its threshold until it
holds K, so the result never depends on the sample. The ``torch`` backend (chosen automatically
when a code tensor lives on an accelerator) computes distances on the codes' device as
(L - q.d) / 2 with a matrix product of +-1 codes and ranks with ``torch.topk`` on the unique
integer key distance * n_db + index. The ``faiss`` backend (by name only) searches a
``faiss.IndexBinaryFlat``, whose results already follow the (distance, index) order
(:func:`_faiss_ranking`). Every backend returns identical values;
``benchmarks/bench_retrieval.py`` records the timings against faiss.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence

import numpy as np

__all__ = [
    "metric_convention",
    "ZERO_HIT_CONVENTIONS",
    "TIE_RULES",
    "BACKENDS",
    "hamming_distance",
    "pack_codes",
    "unpack_codes",
    "stable_topk_rows",
    "mean_average_precision_per_query",
    "average_precision_from_ranking",
    "map_at_k",
    "precision_at_k_curve",
    "pr_curve",
    "precision_within_radius",
    "evaluate_paradigms",
]

metric_convention: str = (
    "mAP@K (BRCD convention): relevant = shares >= 1 label with the query; database ranked by "
    "Hamming distance ascending, ties broken by database index (stable sort; the BRCD reference "
    "code uses NumPy's unstable default argsort instead); AP@K = (1/R) * sum over relevant ranks "
    "i <= K of precision@i with R = number of relevant items in the top K; a query with R = 0 "
    "scores 0 and stays in the mean; K = None means the whole database, K > database size is "
    "clipped."
)

_DEFAULT_MEMORY_BUDGET_MB = 256.0
# Input checks: entries per block of rows in the one pass that checks and packs codes (and
# multi-hot labels); its temporaries are a few blocks.
_CHECK_BLOCK = 1 << 16
# ... and entries per thread below which the check runs on one thread.
_PARALLEL_CHECK_ENTRIES = 1 << 22
# Radius counts (PR curve, radius precision): rows per chunk and bytes per (query, item) pair
# held at once (distances, int64 bin keys, relevance).
_MAX_CHUNK_ROWS = 16
_BYTES_PER_PAIR = 48
# Top-K ranking of the numpy backend. A chunk of query rows holds about _CHUNK_PAIRS (query, item)
# distances and at least _MIN_CHUNK_ROWS rows (buffer reused); the selection runs on blocks of at
# most _SELECT_PAIRS candidate pairs, _TOPK_BYTES_PER_PAIR bytes per pair in the worst case (every
# item a candidate): group index (1/8 x 8), the group's values and test (<= 4 + 1), candidate
# position (8) and value (<= 4), the sort order and the taken positions (8 + 8).
_CHUNK_PAIRS = 1 << 20
_MIN_CHUNK_ROWS = 8
_SELECT_PAIRS = 1 << 20
_TOPK_BYTES_PER_PAIR = 36
# XOR scratch of one tile, in words (512 KiB of uint64), and the tile's width in database columns
# (long inner loops: measured faster than short ones on the same scratch size).
_TILE_WORDS = 1 << 16
_TILE_WIDTH = 1 << 13
# The numpy backend marks top-K candidates inside the distance tile loop when one chunk's
# distances take more than this (they would be read again from memory, not from cache).
_FUSED_MIN_BYTES = 4 << 20
# Threshold sample of stable_topk_rows: max(_MIN_SAMPLE, n_db // _SAMPLE_FRACTION) columns, and
# the margin above the k/n quantile in binomial standard deviations.
_MIN_SAMPLE = 512
_SAMPLE_FRACTION = 128
_CANDIDATE_MARGIN = 1.0
# numba backend: query rows per chunk (at most) and database items in the threshold sample
_NUMBA_CHUNK_ROWS = 64
_NUMBA_SAMPLE = 4096


def _lookup(table: dict, name: str, what: str):
    """Return ``table[name]`` or raise ValueError naming the valid choices."""
    try:
        return table[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown {what} {name!r}; valid names: {', '.join(sorted(table))}"
        ) from None


# ---------------------------------------------------------------------------------------------
# reductions over queries (zero-hit conventions) and tie rules
# ---------------------------------------------------------------------------------------------


def _mean_count(values: np.ndarray, has_hit: np.ndarray) -> float:
    """Mean over all queries; queries without a hit already carry 0."""
    return float(np.mean(values)) if values.size else float("nan")


def _mean_skip(values: np.ndarray, has_hit: np.ndarray) -> float:
    """Mean over queries with at least one hit; NaN when no query has one."""
    return float(np.mean(values[has_hit])) if np.any(has_hit) else float("nan")


ZERO_HIT_CONVENTIONS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "count": _mean_count,
    "skip": _mean_skip,
}
"""How queries without a hit enter a mean: ``count`` (score 0, kept; BRCD, CIBHash,
DeepHash-pytorch) or ``skip`` (left out; HashNet, TBH)."""

TIE_RULES: dict[str, str] = {
    "index": "items at equal Hamming distance are ranked by ascending database index",
}
"""Tie rules supported by the ranking; only the deterministic ``index`` rule is implemented."""


# ---------------------------------------------------------------------------------------------
# codes: validation, packing
# ---------------------------------------------------------------------------------------------


def _loaded_torch():
    """The torch module when it is already imported, else None. A tensor can only exist once
    torch is imported, so the metric never imports torch itself for NumPy inputs."""
    return sys.modules.get("torch")


def _is_tensor(x) -> bool:
    torch = _loaded_torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _host_tensor(x, what: str):
    """``x`` (a tensor) detached and on the CPU; a clear error for the 'meta' device."""
    if x.device.type == "meta":
        raise ValueError(
            f"{what} is a tensor on the 'meta' device, which has a shape but no values; compute "
            "the codes (and labels) on a real device (cpu or cuda) and evaluate those"
        )
    x = x.detach()
    return x if x.device.type == "cpu" else x.cpu()


def _tensor_to_numpy(t, what: str) -> np.ndarray:
    """A CPU tensor as a NumPy array (shared memory where NumPy has the dtype); floating dtypes
    NumPy lacks (bfloat16, float8) become float32, which holds their values exactly."""
    try:
        return t.numpy()
    except TypeError:
        if t.is_floating_point():
            return t.float().numpy()
        raise ValueError(
            f"{what} has dtype {t.dtype}, which NumPy cannot hold; convert it first (e.g. "
            ".float() for codes, .long() for class ids)"
        ) from None


def _to_numpy(x, what: str) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if _is_tensor(x):
        return _tensor_to_numpy(_host_tensor(x, what), what)
    raise TypeError(f"{what} must be a numpy array or a torch tensor, got {type(x).__name__}")


def _code_rows(codes, what: str) -> tuple[object, Callable[[object], np.ndarray]]:
    """(codes as an array or a CPU tensor, a function turning a block of its rows into NumPy).

    A tensor whose dtype NumPy lacks (bfloat16, float8) is converted block by block, so the
    check and the packing never hold a converted copy of the whole array."""
    if isinstance(codes, np.ndarray):
        return codes, _identity_block
    if _is_tensor(codes):
        t = _host_tensor(codes, what)
        try:
            return t.numpy(), _identity_block
        except TypeError:
            if not t.is_floating_point():
                raise ValueError(
                    f"{what} has dtype {t.dtype}, which NumPy cannot hold; convert it first "
                    "(e.g. .float())"
                ) from None
            return t, lambda block: block.float().numpy()
    raise TypeError(f"{what} must be a numpy array or a torch tensor, got {type(codes).__name__}")


def _identity_block(block: np.ndarray) -> np.ndarray:
    return block


def _first_unset(block: np.ndarray, is_set: np.ndarray):
    """The first entry (row order) of ``block`` that is not > 0, as 0 or -1 (anything else is
    returned as -1: it is then reported as a bad value)."""
    value = block[np.unravel_index(int(np.argmin(is_set)), block.shape)]
    return 0 if value == 0 else -1


def _bad_codes(block: np.ndarray, first_row: int, unset, what: str) -> ValueError:
    """The error for a block holding a value that is neither 1 nor the array's unset value."""
    unset_value = unset if unset is not None else _first_unset(block, block > 0)
    bad = ~((block == 1) | (block == unset_value))
    row, col = (int(i) for i in np.argwhere(bad)[0])
    value = block[row, col].item()
    mixed = (f" (the array also holds {unset_value}: +-1 and 0/1 codes cannot be mixed)"
             if value in (0, -1) else "")
    return ValueError(
        f"{what} must hold +-1 or 0/1 values (one convention per array); found {value!r} at row "
        f"{first_row + row}, column {col}{mixed}; binarise first, e.g. "
        "torch.where(x >= 0, 1.0, -1.0) (sign(0) = +1)"
    )


def _pack_checked(codes, what: str, threads: int = 1) -> tuple[np.ndarray, int]:
    """Validate +-1 or 0/1 codes (n, L) and pack them: (``uint8`` (n, ceil(L/8)), L).

    One pass over blocks of rows (about ``_CHECK_BLOCK`` entries each): the set bits (> 0) are
    packed, and the block's counts of entries equal to 1 and to the unset value (0 or -1, fixed
    by the first unset entry of the array) must account for every entry, so a value that is
    neither (0.5, 2, NaN, inf) or a second unset value is an error. No temporary larger than a
    block is made. A large array is split into ``threads`` row ranges checked in parallel (NumPy
    releases the GIL), whose unset values must then agree."""
    arr, to_numpy = _code_rows(codes, what)
    if arr.ndim != 2:
        raise ValueError(f"{what} must have shape (n, L), got shape {tuple(arr.shape)}")
    n, length = arr.shape
    if length == 0:
        raise ValueError(f"{what} has code length 0")
    if isinstance(arr, np.ndarray) and arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must be a numeric array of +-1 or 0/1 codes, got dtype "
                         f"{arr.dtype}")
    out = np.empty((n, -(-length // 8)), np.uint8)
    parts = max(1, min(threads, n * length // _PARALLEL_CHECK_ENTRIES))
    bounds = [n * i // parts for i in range(parts + 1)]
    ranges = list(zip(bounds[:-1], bounds[1:]))

    def check(lo_hi, unset=None):
        return _pack_rows(arr, to_numpy, out, *lo_hi, unset, what)

    if parts == 1:
        check(ranges[0])
        return out, length
    with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="brcd-pack") as pool:
        unsets = list(pool.map(check, ranges))  # the first failing range raises first
    found = [u for u in unsets if u is not None]
    if found and any(u != found[0] for u in found):  # each range alone was consistent
        first = next(i for i, u in enumerate(unsets) if u is not None and u != found[0])
        check(ranges[first], found[0])  # raises, naming the first entry of the other value
    return out, length


def _pack_rows(arr, to_numpy, out: np.ndarray, lo: int, hi: int, unset, what: str):
    """Check and pack rows lo:hi of ``arr`` into ``out`` (see :func:`_pack_checked`); returns
    the unset value found (0, -1, or ``unset`` / None when every entry was set)."""
    length = arr.shape[1]
    step = max(1, _CHECK_BLOCK // length)
    if isinstance(arr, np.ndarray) and arr.dtype == np.bool_:
        for start in range(lo, hi, step):
            stop = min(start + step, hi)
            out[start:stop] = np.packbits(arr[start:stop], axis=1)
        return None
    is_set = np.empty((min(step, hi - lo), length), np.bool_)
    equal = np.empty_like(is_set)
    for start in range(lo, hi, step):
        block = to_numpy(arr[start:min(start + step, hi)])
        rows = block.shape[0]
        np.greater(block, 0, out=is_set[:rows])
        out[start:start + rows] = np.packbits(is_set[:rows], axis=1)
        n_set = np.count_nonzero(is_set[:rows])
        if np.count_nonzero(np.equal(block, 1, out=equal[:rows])) != n_set:
            raise _bad_codes(block, start, unset, what)
        n_unset = block.size - n_set
        if n_unset:
            if unset is None:  # the array's first unset entry decides: 0 or -1
                unset = _first_unset(block, is_set[:rows])
            if np.count_nonzero(np.equal(block, unset, out=equal[:rows])) != n_unset:
                raise _bad_codes(block, start, unset, what)
    return unset


def pack_codes(codes) -> np.ndarray:
    """Pack +-1 or 0/1 codes (n, L) into ``uint8`` (n, ceil(L/8)), ``np.packbits`` bit order.

    The set bit is +1 (or 1); padding bits of the last byte are 0. The values are checked as in
    :func:`map_at_k` (one pass over blocks of rows, no full-size temporary).
    """
    return _pack_checked(codes, "codes")[0]


def unpack_codes(packed, code_length: int | None = None) -> np.ndarray:
    """Inverse of :func:`pack_codes`: ``uint8`` (n, B) -> float32 +-1 codes (n, code_length).

    ``code_length`` defaults to 8 * B.
    """
    arr = _to_numpy(packed, "packed codes")
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise ValueError(
            f"packed codes must be a uint8 array (n, ceil(L/8)), got dtype {arr.dtype} shape "
            f"{arr.shape}; produce them with pack_codes"
        )
    length = _packed_length(arr, code_length, "packed codes")
    bits = np.unpackbits(arr, axis=1, count=length)
    return np.where(bits.astype(bool), np.float32(1.0), np.float32(-1.0))


def _packed_length(arr: np.ndarray, code_length: int | None, what: str) -> int:
    n_bytes = arr.shape[1]
    length = 8 * n_bytes if code_length is None else int(code_length)
    if not (8 * (n_bytes - 1) < length <= 8 * n_bytes):
        raise ValueError(
            f"{what}: code_length={length} does not match {n_bytes} packed bytes per code "
            f"(need {8 * (n_bytes - 1) + 1}..{8 * n_bytes})"
        )
    pad = 8 * n_bytes - length
    if pad and arr.size and np.any(arr[:, -1] & np.uint8((1 << pad) - 1)):
        raise ValueError(
            f"{what}: padding bits beyond code_length={length} are not zero; pack with pack_codes"
        )
    return length


def _packed_bytes(codes, *, packed: bool, code_length: int | None, what: str,
                  threads: int = 1) -> tuple[np.ndarray, int]:
    """Return (uint8 packed bytes (n, ceil(L/8)), L) for unpacked or packed input."""
    if packed:
        arr = _to_numpy(codes, what)
        if arr.ndim != 2 or arr.dtype != np.uint8:
            raise ValueError(
                f"{what} with packed=True must be a uint8 array (n, ceil(L/8)) from pack_codes, "
                f"got dtype {arr.dtype} shape {arr.shape}"
            )
        length = _packed_length(arr, code_length, what)
        return np.ascontiguousarray(arr), length
    packed_rows, length = _pack_checked(codes, what, threads)
    if code_length is not None and length != code_length:
        raise ValueError(f"{what} have {length} bits but code_length={code_length}")
    return packed_rows, length


def _prepare_codes(query_codes, db_codes, *, packed: bool, code_length: int | None,
                   threads: int = 1):
    """Pack both code sets (checking unpacked ones on up to ``threads`` threads); with
    ``packed=True`` queries may be packed or unpacked."""
    db_bytes, length = _packed_bytes(db_codes, packed=packed, code_length=code_length,
                                     what="db_codes", threads=threads)
    n_bytes = db_bytes.shape[1]
    q_is_packed = False
    if packed:
        q_arr = _to_numpy(query_codes, "query_codes")
        q_is_packed = q_arr.ndim == 2 and q_arr.dtype == np.uint8 and q_arr.shape[1] == n_bytes
    q_bytes, q_length = _packed_bytes(query_codes, packed=q_is_packed,
                                      code_length=length if q_is_packed else None,
                                      what="query_codes", threads=threads)
    if q_length != length:
        raise ValueError(f"query codes have {q_length} bits but database codes have {length}")
    if q_bytes.shape[0] == 0 or db_bytes.shape[0] == 0:
        raise ValueError("query_codes and db_codes must each hold at least one code")
    return q_bytes, db_bytes, length


def _accelerator_of(*xs):
    """The device of the first tensor that lives on an accelerator, else None (CPU)."""
    torch = _loaded_torch()
    if torch is None:
        return None
    for x in xs:
        if isinstance(x, torch.Tensor) and x.device.type not in ("cpu", "meta"):
            return x.device
    return None


# ---------------------------------------------------------------------------------------------
# labels and relevance
# ---------------------------------------------------------------------------------------------


class _ClassIds:
    """Integer class ids (held in the smallest integer type that fits them); relevance is
    equality."""

    def __init__(self, query: np.ndarray, db: np.ndarray) -> None:
        dtype = np.int64
        if query.size and db.size:
            lo, hi = min(int(query.min()), int(db.min())), max(int(query.max()), int(db.max()))
            dtype = np.result_type(np.min_scalar_type(lo), np.min_scalar_type(hi))
        self.query, self.db = query.astype(dtype), db.astype(dtype)

    def relevance(self, rows: slice, db_index: np.ndarray | None) -> np.ndarray:
        """Bool (c, m): query row vs database items ``db_index`` (c, m), or all items if None."""
        db = self.db[None, :] if db_index is None else self.db[db_index]
        return db == self.query[rows][:, None]


class _MultiHot:
    """Multi-hot labels packed into words (one word of 8, 16, 32 or 64 bits up to 64 classes,
    several uint64 words beyond); relevance is a non-empty intersection."""

    def __init__(self, query: np.ndarray, db: np.ndarray) -> None:
        """``query``, ``db``: the labels as ``np.packbits`` bytes (n, ceil(C/8))."""
        self.query, self.db = self._words(query), self._words(db)

    @staticmethod
    def _words(bits: np.ndarray) -> np.ndarray:
        n_bytes = max(1, bits.shape[1])
        width = next((w for w in (1, 2, 4, 8) if w >= n_bytes), 8)
        n_words = -(-n_bytes // width)
        padded = np.zeros((bits.shape[0], width * n_words), np.uint8)
        padded[:, : bits.shape[1]] = bits
        words = padded.view(_WORD_DTYPES[width])
        return words[:, 0].copy() if n_words == 1 else words

    def relevance(self, rows: slice, db_index: np.ndarray | None) -> np.ndarray:
        """Bool (c, m): query row vs database items ``db_index`` (c, m), or all items if None."""
        db = self.db[None, :] if db_index is None else self.db[db_index]
        hit = (db & self.query[rows][:, None]) != 0
        return hit if self.query.ndim == 1 else hit.any(axis=-1)


def _check_label_shape(arr: np.ndarray, n: int, what: str) -> None:
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{what} must be multi-hot (n, C) or class ids (n,), got shape {arr.shape}"
        )
    if arr.shape[0] != n:
        raise ValueError(f"{what} has {arr.shape[0]} rows but there are {n} codes")
    if arr.ndim == 2 and arr.shape[1] == 1:
        raise ValueError(
            f"{what} has shape {arr.shape}: a single column reads either as class ids or as "
            "multi-hot labels of one class, which rank differently; pass class ids as a 1-D "
            "array (labels[:, 0] or labels.ravel()), or multi-hot labels with one column per "
            "class (e.g. np.eye(2)[ids] for two classes)"
        )
    if arr.ndim == 1 and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} given as class ids (n,) must be integers, got {arr.dtype}")


def _pack_multi_hot(labels: np.ndarray, what: str) -> np.ndarray:
    """Check multi-hot 0/1 labels (n, C) and pack them (``np.packbits`` bytes, n x ceil(C/8)),
    block by block (no temporary of the full size)."""
    n, n_classes = labels.shape
    out = np.empty((n, -(-n_classes // 8)), np.uint8)
    step = max(1, _CHECK_BLOCK // max(1, n_classes))
    for start in range(0, n, step):
        block = labels[start:start + step]
        if block.size and (block.min() < 0 or block.max() > 1 or (  # +-1, counts, fractions
                labels.dtype.kind == "f"
                and np.count_nonzero(block == 0) + np.count_nonzero(block == 1) != block.size)):
            raise ValueError(f"{what} must be multi-hot 0/1 (n, C), got values from "
                             f"{labels.min()} to {labels.max()}; +-1 labels: pass (labels > 0)")
        out[start:start + block.shape[0]] = np.packbits(block != 0, axis=1)
    return out


def _pack_class_ids(ids: np.ndarray, n_classes: int, what: str) -> np.ndarray:
    """Class ids (n,) as packed one-hot bytes (n, ceil(C/8)), to meet multi-hot labels."""
    if ids.size and (ids.min() < 0 or ids.max() >= n_classes):
        raise ValueError(
            f"{what}: class ids must lie in 0..{n_classes - 1} to match multi-hot labels"
        )
    ids = ids.astype(np.int64)
    out = np.zeros((ids.shape[0], -(-n_classes // 8)), np.uint8)
    out[np.arange(ids.shape[0]), ids >> 3] = np.right_shift(128, ids & 7).astype(np.uint8)
    return out


def _prepare_labels(query_labels, db_labels, n_query: int, n_db: int):
    q = _to_numpy(query_labels, "query_labels")
    d = _to_numpy(db_labels, "db_labels")
    _check_label_shape(q, n_query, "query_labels")
    _check_label_shape(d, n_db, "db_labels")
    if q.ndim == 1 and d.ndim == 1:
        return _ClassIds(q, d)
    packed = {what: _pack_multi_hot(x, what) for x, what in
              ((q, "query_labels"), (d, "db_labels")) if x.ndim == 2}
    if q.ndim == 2 and d.ndim == 2 and q.shape[1] != d.shape[1]:
        raise ValueError(
            f"query_labels have {q.shape[1]} classes (columns) but db_labels have {d.shape[1]}; "
            "both must be multi-hot over the same C classes (or integer class ids (n,))"
        )
    n_classes = q.shape[1] if q.ndim == 2 else d.shape[1]
    for x, what in ((q, "query_labels"), (d, "db_labels")):
        if x.ndim == 1:
            packed[what] = _pack_class_ids(x, n_classes, what)
    return _MultiHot(packed["query_labels"], packed["db_labels"])


# ---------------------------------------------------------------------------------------------
# Hamming distances (numpy: XOR + popcount on machine words, tile by tile)
# ---------------------------------------------------------------------------------------------

_WORD_DTYPES = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_POPCOUNT_BYTE = np.array([bin(i).count("1") for i in range(256)], np.uint8)
_HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")


def _popcount_table(words: np.ndarray) -> np.ndarray:
    """Bit count per element via a byte lookup table (for NumPy < 2.0, no ``bitwise_count``)."""
    as_bytes = words.view(np.uint8).reshape(words.shape + (words.dtype.itemsize,))
    return _POPCOUNT_BYTE[as_bytes].sum(axis=-1, dtype=np.uint8)


_popcount = getattr(np, "bitwise_count", _popcount_table)


def _popcount_into_table(words: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[...] = popcount(words)`` via the byte table; returns ``out``."""
    out[...] = _popcount_table(words)
    return out


# ``_popcount_into(words, out=out)``: the ufunc itself on NumPy >= 2.0 (no Python call per tile)
_popcount_into = np.bitwise_count if _HAS_BITWISE_COUNT else _popcount_into_table


class _PopcountHamming:
    """Hamming distances between packed codes with XOR + ``np.bitwise_count``.

    The distances of a block of query rows are written into a buffer the caller may reuse, one
    tile at a time: the XOR words of a tile live in a scratch buffer of at most ``_TILE_WORDS``
    words, so no temporary of size rows x database is ever allocated. Given per-row thresholds,
    the same tile loop also marks, while the tile is in cache, which groups of 8 database items
    hold an item at or below the row's threshold (the top-K candidates).
    """

    def __init__(self, q_bytes: np.ndarray, db_bytes: np.ndarray, code_length: int) -> None:
        self.code_length = code_length
        self.q, self.d = self._words(q_bytes), self._words(db_bytes)
        self.n_db = db_bytes.shape[0]
        # one XOR tile: rows of at most _TILE_WIDTH columns (a multiple of 8), _TILE_WORDS words
        width = max(1, min(self.n_db, _TILE_WIDTH))
        self.tile_shape = (max(1, _TILE_WORDS // width), width)
        self.columns = [(start, min(start + width, self.n_db),
                         [d[None, start:start + width] for d in self.d])
                        for start in range(0, self.n_db, width)]
        # the largest value of the type stays above every distance (it marks padding columns)
        self.out_dtype = next(t for t in (np.uint8, np.uint16, np.uint32)
                              if code_length < np.iinfo(t).max)

    @staticmethod
    def _words(b: np.ndarray) -> np.ndarray:
        """(n, B) bytes -> (W, n) words; a single word of 8, 32 or 64 bits when B <= 8 (a view
        of ``b``, no copy, when B is 1, 4 or 8). Never 16 bits: ``np.bitwise_count`` on uint16
        took about 12 times as long per element as on uint8, uint32 or uint64 (NumPy 2.4, no
        SIMD loop for it), so 2- and 3-byte codes are padded to 32 bits."""
        n_bytes = b.shape[1]
        width = next((w for w in (1, 4, 8) if w >= n_bytes), 8)
        total = -(-n_bytes // width) * width
        if total != n_bytes:
            padded = np.zeros((b.shape[0], total), np.uint8)
            padded[:, :n_bytes] = b
            b = padded
        words = np.ascontiguousarray(b).view(_WORD_DTYPES[width])
        return np.ascontiguousarray(words.T)


    def scratch(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Scratch buffers for :meth:`distances`: one tile of XOR words, of bit counts (when a
        code spans several words) and of the candidate test."""
        rows, width = self.tile_shape
        counts = np.empty(rows * width, np.uint8) if self.q.shape[0] > 1 else None
        return (np.empty(rows * width, self.d.dtype), counts,
                np.empty(rows * -(-width // 8) * 8, np.bool_))

    def distances(self, rows: slice, out: np.ndarray | None = None,
                  scratch: tuple | None = None, thresholds: np.ndarray | None = None,
                  groups: np.ndarray | None = None, plans: dict | None = None) -> np.ndarray:
        """Hamming distances (c, n_db) of query rows ``rows`` to the whole database, written into
        ``out`` (c, >= n_db) of ``out_dtype`` when given, with ``scratch`` from :meth:`scratch`.

        With ``thresholds`` (c,) and ``groups`` (c, ceil(n_db / 8)) bool: ``groups[r, j]`` is
        set to whether any of the database items 8j..8j+7 lies at distance <= thresholds[r].
        ``plans``: a dict the caller keeps with the same ``out``, ``groups`` and ``scratch``
        buffers from call to call; the views of every tile are then made once, not per call."""
        q = self.q[:, rows]
        c = q.shape[1]
        if out is None:
            out = np.empty((c, self.n_db), self.out_dtype)
        scratch = scratch if scratch is not None else self.scratch()
        plan = None if plans is None else plans.get(c)
        if plan is None:
            plan = self._plan(c, out, scratch, groups if thresholds is not None else None)
            if plans is not None:
                plans[c] = plan
        xor_, count_, add_ = np.bitwise_xor, _popcount_into, np.add
        less_equal_, not_equal_ = np.less_equal, np.not_equal
        for r0, r1, tiles in plan:
            q_rows = [q[w, r0:r1, None] for w in range(q.shape[0])]
            q0 = q_rows[0]
            limit = None if thresholds is None else thresholds[r0:r1, None]
            for d_cols, xor, tile, part, mark, padding, words, group in tiles:
                xor_(q0, d_cols[0], xor)
                count_(xor, tile)
                for w in range(1, len(q_rows)):
                    xor_(q_rows[w], d_cols[w], xor)
                    add_(tile, count_(xor, part), tile)
                if limit is not None:
                    less_equal_(tile, limit, mark)
                    if padding is not None:
                        padding[...] = False
                    not_equal_(words, 0, group)
        return out

    def _plan(self, c: int, out: np.ndarray, scratch: tuple, groups: np.ndarray | None):
        """The views of every tile of ``c`` query rows: [(r0, r1, tiles)], each tile (database
        word columns, XOR scratch, distance tile, bit-count scratch, candidate marks, their
        padding to whole words or None, the marks as words, the candidate groups)."""
        words, counts, marks = scratch
        tile_rows = self.tile_shape[0]
        plan = []
        for r0 in range(0, c, tile_rows):
            r1 = min(r0 + tile_rows, c)
            m = r1 - r0
            tiles = []
            for start, stop, d_cols in self.columns:
                size, padded = stop - start, -(-(stop - start) // 8) * 8
                part = None if counts is None else counts[: m * size].reshape(m, size)
                mark = padding = as_words = group = None
                if groups is not None:
                    full = marks[: m * padded].reshape(m, padded)
                    mark = full[:, :size]
                    padding = full[:, size:] if padded != size else None
                    as_words = full.view(np.uint64)
                    group = groups[r0:r1, start >> 3: (start + padded) >> 3]
                tiles.append((d_cols, words[: m * size].reshape(m, size), out[r0:r1, start:stop],
                              part, mark, padding, as_words, group))
            plan.append((r0, r1, tiles))
        return plan


def hamming_distance(query_codes, db_codes, *, packed: bool = False,
                     code_length: int | None = None) -> np.ndarray:
    """Hamming distance matrix (n_query, n_db) as ``int32`` between +-1 / 0/1 (or packed) codes."""
    q_bytes, db_bytes, length = _prepare_codes(query_codes, db_codes, packed=packed,
                                               code_length=code_length)
    return _PopcountHamming(q_bytes, db_bytes, length).distances(slice(None)).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# exact stable top-K per row
# ---------------------------------------------------------------------------------------------


def _flatnonzero(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` of a 1-D bool array whose length is a multiple of 8, in two steps: the
    8-byte words holding a True first, then the True bytes inside those words. A top-K candidate
    mask is sparse (a few percent of True or less), and on such masks the two passes over the
    denser word mask and selected words took less time than one ``np.flatnonzero`` when this
    was written (NumPy 2.x)."""
    if mask.size % 8 or mask.ctypes.data % 8:
        return np.flatnonzero(mask)
    words = mask.view(np.uint64)
    at = np.flatnonzero(words != 0)
    inside = np.flatnonzero(words[at].view(np.bool_))
    return (at[inside >> 3] << 3) | (inside & 7)


def _row_topk_from(row: np.ndarray, k: int, t: int) -> np.ndarray:
    """Stable top-k of one row whose entries <= t number fewer than k: raise t one value at a
    time until at least k entries are <= t (the k-th smallest value), then sort those."""
    top = int(row.max())
    while t < top and np.count_nonzero(row <= t) < k:
        t += 1
    cand = np.flatnonzero(row <= t)
    return cand[np.argsort(row[cand], kind="stable")[:k]]


def _sample_thresholds(sample: np.ndarray, k: int, n: int, margin: float) -> np.ndarray:
    """Per-row candidate threshold from a column sample (c, S) of a (c, n) distance matrix: the
    value of rank j of each sample row (from its histogram, no sort), j = S * k/n + ``margin``
    binomial standard deviations."""
    n_rows, size = sample.shape
    span = int(sample.max()) + 1
    keys = sample + (np.arange(n_rows, dtype=np.intp) * span)[:, None]
    cum = np.cumsum(np.bincount(keys.ravel(), minlength=n_rows * span).reshape(n_rows, span),
                    axis=1)
    p = k / n
    j = math.ceil(size * p + margin * math.sqrt(size * p * (1 - p)))
    j = min(max(j, 0), size - 1)
    return np.count_nonzero(cum <= j, axis=1).astype(sample.dtype)  # sorted sample[:, j]


def stable_topk_rows(dist: np.ndarray, k: int, *, sample_size: int = 2048,
                     candidate_margin: float = 4.0, seed: int = 0,
                     out: np.ndarray | None = None, mask: np.ndarray | None = None,
                     thresholds: np.ndarray | None = None) -> np.ndarray:
    """Column indices (c, min(k, n)) of the k smallest entries of each row of ``dist`` (c, n),
    ordered by (value, column index): an exact, stable top-k.

    ``dist`` holds small non-negative integers (Hamming distances). When k is small against n, a
    per-row threshold is read from a systematic sample of ``sample_size`` columns (every
    (n // sample_size)-th column from a seeded offset) at ``candidate_margin`` binomial standard
    deviations above the k/n quantile (a histogram of the sample, no sort), unless the caller
    gives ``thresholds`` (c,) itself. One pass marks the entries at or below the threshold; the
    candidates of each row come out in column order and are sorted by value with a stable radix
    sort (uint8/uint16 keys), so equal values keep column order. A row with fewer than k
    candidates is redone with its threshold raised one value at a time until k entries lie at
    or below it, so the result is always exact whatever the thresholds; they only decide the
    speed. ``out`` (c, min(k, n)) int64 and ``mask`` (a contiguous bool buffer of at least
    c * n elements rounded up to a multiple of 8) are reused when given.
    """
    dist = np.ascontiguousarray(dist)
    if dist.ndim != 2:
        raise ValueError(f"dist must be 2-D (rows, n), got shape {dist.shape}")
    n_rows, n = dist.shape
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(int(k), n)
    if out is None:
        out = np.empty((n_rows, k), np.int64)
    if n_rows == 0:
        return out
    if thresholds is not None:
        threshold = np.asarray(thresholds).astype(dist.dtype)
    elif sample_size < 1 or k * 8 > n or n < 4 * sample_size:
        out[...] = np.argsort(dist, axis=1, kind="stable")[:, :k]
        return out
    else:
        stride = n // sample_size
        offset = int(np.random.default_rng(seed).integers(stride))
        threshold = _sample_thresholds(dist[:, offset::stride][:, :sample_size], k, n,
                                       candidate_margin)
    size = n_rows * n
    padded = -(-size // 8) * 8
    buf = mask.reshape(-1) if mask is not None and mask.size >= padded else None
    buf = np.empty(padded, np.bool_) if buf is None else buf[:padded]
    np.less_equal(dist, threshold[:, None], out=buf[:size].reshape(n_rows, n))
    buf[size:] = False
    flat = _flatnonzero(buf)
    return _rank_candidates(dist, flat, dist.ravel()[flat], n, k, threshold, out)


def _rank_candidates(dist: np.ndarray, flat: np.ndarray, values: np.ndarray, n: int, k: int,
                     thresholds: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (c, k) with the stable top-k of each row of ``dist`` (c, >= n; a row's
    entries are its first n) from the candidates: ``flat`` the positions (ascending, in the
    flattened C-contiguous ``dist``) of every entry <= its row's threshold, ``values`` their
    distances. The candidates of a row come in column order and a stable sort of their values
    keeps it among equals; a row with fewer than k candidates takes :func:`_row_topk_from`."""
    stride = dist.shape[1]
    bounds = np.searchsorted(flat, np.arange(dist.shape[0] + 1, dtype=np.int64) * stride).tolist()
    for r in range(dist.shape[0]):
        lo, hi = bounds[r], bounds[r + 1]
        if hi - lo >= k:
            order = np.argsort(values[lo:hi], kind="stable")[:k]
            np.subtract(flat[lo:hi][order], r * stride, out=out[r])
        else:
            out[r] = _row_topk_from(dist[r, :n], k, int(thresholds[r]) + 1)
    return out


def _topk_from_groups(dist: np.ndarray, groups: np.ndarray, thresholds: np.ndarray, n: int,
                      k: int, out: np.ndarray) -> np.ndarray:
    """Stable top-k (``out``, c x k) of each row of ``dist`` (c, 8 * G, C-contiguous; entries
    from n on are padding above every threshold) given ``groups`` (c, G) from
    :meth:`_PopcountHamming.distances`: only the groups of 8 items that hold a candidate are
    read again, and their entries at or below the row's threshold are the candidates."""
    n_groups = groups.shape[1]
    at = _flatnonzero(groups.reshape(-1))
    if dist.dtype == np.uint8:  # a group of 8 distances is one 64-bit word
        values8 = dist.reshape(-1).view(np.uint64)[at].view(np.uint8).reshape(-1, 8)
    else:
        values8 = dist.reshape(-1, 8)[at]
    values = values8.reshape(-1)
    if thresholds.min() == thresholds.max():
        hit = np.less_equal(values, thresholds[0])
    else:  # each row's groups (consecutive in ``at``) against the row's threshold
        hit = np.empty(values.size, np.bool_)
        ends = np.searchsorted(at, np.arange(1, len(thresholds) + 1) * n_groups).tolist()
        for r, (lo, hi) in enumerate(zip([0] + ends[:-1], ends)):
            np.less_equal(values[8 * lo: 8 * hi], thresholds[r], out=hit[8 * lo: 8 * hi])
    inside = np.flatnonzero(hit)
    flat = (at[inside >> 3] << 3) | (inside & 7)
    return _rank_candidates(dist, flat, values[inside], n, k, thresholds, out)


def _candidate_blocks(groups: np.ndarray, max_pairs: int) -> list[tuple[int, int]]:
    """Consecutive row ranges of ``groups`` (c, G) whose candidate groups hold at most
    ``max_pairs`` (query, item) pairs together (a row with more is a range of its own)."""
    if 8 * np.count_nonzero(groups) <= max_pairs:  # the usual case: one block
        return [(0, groups.shape[0])]
    pairs = [8 * np.count_nonzero(row) for row in groups]
    blocks, b0, total = [], 0, 0
    for r, p in enumerate(pairs):
        if r > b0 and total + p > max_pairs:
            blocks.append((b0, r))
            b0, total = r, 0
        total += p
    blocks.append((b0, len(pairs)))
    return blocks


# ---------------------------------------------------------------------------------------------
# ranking backends: yield (query rows, per_chunk(rows, top-K database indices)) chunk by chunk
# ---------------------------------------------------------------------------------------------


def _chunk_rows(n_db: int, memory_budget_mb: float) -> int:
    """Query rows per chunk of the radius counts (``_BYTES_PER_PAIR`` per pair)."""
    _check_budget(memory_budget_mb)
    rows = int(memory_budget_mb * 2**20 // (_BYTES_PER_PAIR * n_db))
    return max(1, min(_MAX_CHUNK_ROWS, rows))


def _check_budget(memory_budget_mb: float) -> None:
    # an infinite budget has no chunk size (inf // bytes is NaN): refuse it here, by name
    if not (memory_budget_mb > 0 and math.isfinite(memory_budget_mb)):
        raise ValueError(f"memory_budget_mb must be a finite number of megabytes > 0, got "
                         f"{memory_budget_mb}")
    # a finite budget whose byte count overflows a float has no chunk size either
    if not math.isfinite(memory_budget_mb * 2**20):
        raise ValueError(f"memory_budget_mb={memory_budget_mb} is too large: its size in bytes "
                         "overflows a float")


def _default_threads() -> int:
    """Threads when ``threads=None``: torch's intra-op threads when torch is already imported
    (the kit's notebooks set them), else the CPUs this process may run on."""
    torch = _loaded_torch()
    if torch is not None:
        return max(1, torch.get_num_threads())
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _resolve_threads(threads: int | None) -> int:
    if threads is None:
        return _default_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    return int(threads)


def _identity(rows: slice, top: np.ndarray) -> np.ndarray:
    return top


def _run_chunks(work: Callable[[int], tuple], starts: Sequence[int],
                threads: int) -> Iterator[tuple]:
    """``work(start)`` for every start, in order; on ``threads`` threads (at most 2 * threads
    chunks in flight, so finished results do not pile up)."""
    if threads <= 1 or len(starts) <= 1:
        for start in starts:
            yield work(start)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="brcd-metrics") as pool:
        pending: deque = deque()
        for start in starts:
            pending.append(pool.submit(work, start))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _topk_chunk_rows(n_query: int, n_db: int, itemsize: int, memory_budget_mb: float,
                     threads: int) -> tuple[int, int]:
    """(query rows per chunk, candidate pairs per selection block) of the numpy backend.

    Each thread gets ``memory_budget_mb / threads``: half of it for the chunk's distances
    (``itemsize`` bytes per pair) and candidate groups (1/8 byte per pair), half for one
    selection block (``_TOPK_BYTES_PER_PAIR`` bytes per candidate pair, at most
    ``_SELECT_PAIRS``). A chunk holds about ``_CHUNK_PAIRS`` pairs and at least
    ``_MIN_CHUNK_ROWS`` rows (each XOR tile of the database then serves several queries while
    it is in cache) within that, and there is at least one chunk per thread; at least one row is
    always held."""
    _check_budget(memory_budget_mb)
    half = memory_budget_mb * 2**20 / threads / 2
    budget_rows = int(half // ((itemsize + 0.125) * n_db))
    rows = min(max(_MIN_CHUNK_ROWS, _CHUNK_PAIRS // n_db), budget_rows, -(-n_query // threads))
    return max(1, rows), int(min(_SELECT_PAIRS, half // _TOPK_BYTES_PER_PAIR))


def _numpy_ranking(q_bytes, db_bytes, code_length, top, *, memory_budget_mb, device, threads=1,
                   per_chunk=_identity):
    """Popcount distances on CPU + an exact stable top-K, ``threads`` chunks at a time.

    Per chunk of query rows: the distances to a systematic sample of the database give each row
    a candidate threshold (:func:`_sample_thresholds`); the distances to the whole database are
    computed tile by tile into a buffer, and the same tile loop marks the groups of 8 items that
    hold a candidate (:meth:`_PopcountHamming.distances`); :func:`_topk_from_groups` then ranks
    the candidates, on blocks of at most ``_SELECT_PAIRS`` pairs (whole rows). Without a sample
    (K above n/8, or a small database) a stable argsort ranks whole rows. Each thread reuses its
    own buffers; ``per_chunk`` (e.g. the AP of the chunk) runs on the same thread, so only its
    (small) result is kept."""
    engine = _PopcountHamming(q_bytes, db_bytes, code_length)
    n_query, n_db = q_bytes.shape[0], db_bytes.shape[0]
    n_pad = -(-n_db // 64) * 64  # the groups of 8 items of a row fill whole 64-bit words
    itemsize = np.dtype(engine.out_dtype).itemsize
    step, select_pairs = _topk_chunk_rows(n_query, n_pad, itemsize, memory_budget_mb, threads)
    block = max(1, min(step, select_pairs // n_pad))
    sample_size = max(_MIN_SAMPLE, n_db // _SAMPLE_FRACTION)
    sampled = top * 8 <= n_db and n_db >= 4 * sample_size
    # mark candidates inside the tile loop when a chunk's distances are too large to be read
    # again from cache; otherwise compare the chunk's distances afterwards (stable_topk_rows)
    fused = sampled and step * n_pad * itemsize > _FUSED_MIN_BYTES
    if not fused:
        n_pad = n_db
    if sampled:  # a systematic sample of the database, its distances computed per chunk
        stride = n_db // sample_size
        sample = _PopcountHamming(q_bytes, db_bytes[stride // 2::stride][:sample_size],
                                  code_length)
    local = threading.local()

    def buffers():
        bufs = getattr(local, "buffers", None)
        if bufs is None:
            dist = np.empty((step, n_pad), engine.out_dtype)
            dist[:, n_db:] = np.iinfo(engine.out_dtype).max  # padding: never a candidate
            marks = (np.zeros((step, n_pad // 8), np.bool_) if fused
                     else np.empty(-(-block * n_db // 8) * 8, np.bool_))
            bufs = local.buffers = (dist, marks, engine.scratch(), {})
        return bufs

    def work(start: int) -> tuple[slice, object]:
        rows = slice(start, min(start + step, n_query))
        c = rows.stop - rows.start
        dist_buf, marks, scratch, plans = buffers()
        ranked = np.empty((c, top), np.int64)
        if fused:
            thresholds = _sample_thresholds(sample.distances(rows), top, n_db,
                                            _CANDIDATE_MARGIN)
            dist = engine.distances(rows, out=dist_buf[:c], scratch=scratch,
                                    thresholds=thresholds, groups=marks[:c], plans=plans)
            for b0, b1 in _candidate_blocks(marks[:c], select_pairs):
                _topk_from_groups(dist[b0:b1], marks[b0:b1], thresholds[b0:b1], n_db, top,
                                  ranked[b0:b1])
        elif sampled:
            thresholds = _sample_thresholds(sample.distances(rows), top, n_db,
                                            _CANDIDATE_MARGIN)
            dist = engine.distances(rows, out=dist_buf[:c], scratch=scratch, plans=plans)
            for b0 in range(0, c, block):
                b1 = min(b0 + block, c)
                stable_topk_rows(dist[b0:b1], top, out=ranked[b0:b1], mask=marks,
                                 thresholds=thresholds[b0:b1])
        else:
            dist = engine.distances(rows, out=dist_buf[:c], scratch=scratch, plans=plans)
            for b0 in range(0, c, block):
                b1 = min(b0 + block, c)
                ranked[b0:b1] = np.argsort(dist[b0:b1, :n_db], axis=1, kind="stable")[:, :top]
        return rows, per_chunk(rows, ranked)

    yield from _run_chunks(work, range(0, n_query, step), threads)


def _import_numba_kernel():
    try:
        hamming_topk = importlib.import_module(f"{__package__}.hamming_topk")
    except ImportError:
        raise ImportError("backend='numba' needs the numba package (pip install numba); "
                          "backend='numpy' gives the same values without it") from None
    return hamming_topk


def _numba_available() -> bool:
    """Whether numba can be imported (found without importing it)."""
    return importlib.util.find_spec("numba") is not None


def _le_words(b: np.ndarray) -> np.ndarray:
    """(n, B) bytes -> (n, ceil(B / 8)) uint64 words, zero-padded (a view when B is a multiple
    of 8). The byte order inside a word does not matter to XOR + popcount."""
    n_bytes = b.shape[1]
    total = -(-n_bytes // 8) * 8
    if total != n_bytes or not b.flags.c_contiguous:
        padded = np.zeros((b.shape[0], total), np.uint8)
        padded[:, :n_bytes] = b
        b = padded
    return b.view(np.uint64)


def _numba_chunk_rows(n_query: int, n_db: int, top: int, memory_budget_mb: float,
                      threads: int) -> tuple[int, int]:
    """(query rows per chunk, accepted-item buffer length per query) of the numba backend.

    Each query holds a buffer of ``cap = min(4 K, n_db)`` accepted items (12 bytes each) and its
    K ranked indices (8 bytes each); the chunks of all threads share half of
    ``memory_budget_mb`` (the other half is for the database's words and the per-chunk
    results). A chunk has at most ``_NUMBA_CHUNK_ROWS`` rows (each database tile then serves
    them all while it is in cache), at least one, and there is at least one chunk per thread."""
    _check_budget(memory_budget_mb)
    cap = min(4 * top, n_db)
    per_row = 12 * cap + 8 * top
    budget_rows = int(memory_budget_mb * 2**20 / 2 / threads // per_row)
    rows = min(_NUMBA_CHUNK_ROWS, budget_rows, -(-n_query // threads))
    return max(1, rows), cap


def _numba_ranking(q_bytes, db_bytes, code_length, top, *, memory_budget_mb, device, threads=1,
                   per_chunk=_identity):
    """The compiled one-pass exact stable top-K (:func:`brcd_lib.hamming_topk.topk_rows`) on
    ``threads`` threads, a chunk of query rows per call (the kernel releases the GIL).

    A systematic sample of ``min(_NUMBA_SAMPLE, n // 16)`` database items (every stride-th
    item from half a stride; none below 16 items) gives each query a first threshold; a query with fewer than K items within it is scanned again without it,
    so the ranking never depends on the sample."""
    kernel = _import_numba_kernel()
    n_query, n_db = q_bytes.shape[0], db_bytes.shape[0]
    q_words = _le_words(q_bytes)
    db_words_t = np.ascontiguousarray(_le_words(db_bytes).T)
    size = min(_NUMBA_SAMPLE, n_db // 16)
    if size:
        stride = n_db // size
        sample = np.ascontiguousarray(db_words_t[:, stride // 2::stride][:, :size])
    else:
        sample = db_words_t[:, :0]
    step, cap = _numba_chunk_rows(n_query, n_db, top, memory_budget_mb, threads)

    def work(start: int) -> tuple[slice, object]:
        rows = slice(start, min(start + step, n_query))
        ranked = np.empty((rows.stop - rows.start, top), np.int64)
        kernel.topk_rows(np.ascontiguousarray(q_words[rows]), db_words_t, sample, top,
                         code_length, cap, ranked)
        return rows, per_chunk(rows, ranked)

    yield from _run_chunks(work, range(0, n_query, step), threads)


def _unpack_torch(b: np.ndarray, code_length: int, device):
    import torch

    t = torch.from_numpy(b).to(device)
    shifts = torch.arange(7, -1, -1, device=device, dtype=torch.uint8)
    bits = ((t[:, :, None] >> shifts) & 1).reshape(t.shape[0], -1)[:, :code_length]
    return bits.to(torch.float32) * 2 - 1


def _torch_ranking(q_bytes, db_bytes, code_length, top, *, memory_budget_mb, device, threads=1,
                   per_chunk=_identity):
    """Matrix product of +-1 codes on ``device`` + ``torch.topk`` on distance * n_db + index.

    Materialises both code sets as float32 +-1 on the device (4 * L bytes per item). ``threads``
    is not used (torch's own intra-op threads apply).
    """
    import torch

    device = torch.device("cpu") if device is None else device
    n_db = db_bytes.shape[0]
    q = _unpack_torch(q_bytes, code_length, device)
    d = _unpack_torch(db_bytes, code_length, device)
    index = torch.arange(n_db, device=device, dtype=torch.int64)
    step = max(1, min(1024, int(memory_budget_mb * 2**20 // (24 * n_db))))
    for start in range(0, q.shape[0], step):
        rows = slice(start, min(start + step, q.shape[0]))
        inner = q[rows] @ d.T  # exact integers for +-1 codes
        dist = torch.round((code_length - inner) * 0.5).to(torch.int64)
        key = dist * n_db + index
        if top < n_db:
            key = torch.topk(key, top, dim=1, largest=False, sorted=True).values
        else:
            key = torch.sort(key, dim=1).values
        yield rows, per_chunk(rows, (key % n_db).cpu().numpy())


def _import_faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError("backend='faiss' needs the faiss package (pip install faiss-cpu, or "
                          "faiss-gpu); backend='numpy' gives the same values without it") from None
    return faiss


def _faiss_plan(n_bytes: int, top: int, memory_budget_mb: float,
                query_batch_size: int) -> tuple[bool, int]:
    """(use the heap?, queries per search) for ``_faiss_ranking`` within ``memory_budget_mb``.

    The counting mode keeps ``query_batch_size`` x (8 ``n_bytes`` + 1) x ``top`` 8-byte ids per
    batch; it is used when that fits in half the budget. Each search returns ``top`` distances
    and ids (4 + 8 bytes) per query, twice over with the copies: at most half the budget too,
    between 1 and 4096 queries.
    """
    counting_bytes = query_batch_size * (8 * n_bytes + 1) * top * 8
    use_heap = bool(counting_bytes > memory_budget_mb * 2**20 / 2)
    step = max(1, min(4096, int(memory_budget_mb * 2**20 // (2 * 12 * top))))
    return use_heap, step


def _faiss_ranking(q_bytes, db_bytes, code_length, top, *, memory_budget_mb, device, threads=1,
                   per_chunk=_identity):
    """Exhaustive binary search with ``faiss.IndexBinaryFlat`` on ``threads`` OpenMP threads.

    faiss (1.7.3 and later; tested in ``tests/test_metrics_fast.py``) already returns the
    stable order: both of its exact search modes scan the database in index order for each
    query, the heap breaks equal distances by id and the counting mode keeps, per distance, the
    first ids it meets; so the K returned ids are ranked by (distance, index) as in the other
    backends, the K-th distance included. The counting mode (``use_heap = False``, measured
    faster for K = 1000 in ``benchmarks/bench_retrieval.py``) is used when its per-batch buffer
    (``query_batch_size`` x (L + 1) x K ids) fits in half of ``memory_budget_mb``, the heap
    otherwise. Padding bits of the packed codes are zero in both sets, so the index can use whole
    bytes.
    """
    faiss = _import_faiss()
    n_db, n_bytes = db_bytes.shape
    index = faiss.IndexBinaryFlat(8 * n_bytes)
    index.use_heap, step = _faiss_plan(n_bytes, top, memory_budget_mb, index.query_batch_size)
    index.add(np.ascontiguousarray(db_bytes))
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        for start in range(0, q_bytes.shape[0], step):
            rows = slice(start, min(start + step, q_bytes.shape[0]))
            _, ids = index.search(np.ascontiguousarray(q_bytes[rows]), top)
            yield rows, per_chunk(rows, ids)
    finally:
        faiss.omp_set_num_threads(before)


BACKENDS: dict[str, Callable[..., Iterator[tuple[slice, object]]]] = {
    "numba": _numba_ranking,
    "numpy": _numpy_ranking,
    "torch": _torch_ranking,
    "faiss": _faiss_ranking,
}
"""Ranking backends (all exact, same values). ``auto`` picks ``torch`` when a code tensor lives on
an accelerator, otherwise ``numba`` when numba is installed and ``numpy`` when it is not;
``faiss`` (``IndexBinaryFlat``, CPU) is chosen by name only (``benchmarks/bench_retrieval.py``
times them all)."""


def _ranking(query_codes, db_codes, top: int | None, *, packed, code_length, memory_budget_mb,
             backend, ties, threads=None, per_chunk=_identity):
    _lookup(TIE_RULES, ties, "tie rule")
    _check_budget(memory_budget_mb)
    device = _accelerator_of(query_codes, db_codes)
    if backend == "auto":
        backend = "torch" if device is not None else "numba" if _numba_available() else "numpy"
    rank = _lookup(BACKENDS, backend, "backend (or 'auto')")
    threads = _resolve_threads(threads)
    q_bytes, db_bytes, length = _prepare_codes(query_codes, db_codes, packed=packed,
                                               code_length=code_length, threads=threads)
    n_db = db_bytes.shape[0]
    if top is None:
        top = n_db
    elif isinstance(top, (bool, np.bool_)) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"k must be a positive integer or None (whole database), got {top!r}")
    top = min(int(top), n_db)
    chunks = rank(q_bytes, db_bytes, length, top, memory_budget_mb=memory_budget_mb,
                  device=device, threads=threads, per_chunk=per_chunk)
    return chunks, q_bytes.shape[0], n_db, length


# ---------------------------------------------------------------------------------------------
# AP and public metrics
# ---------------------------------------------------------------------------------------------


def _average_precision(rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP per row of a ranked relevance matrix (c, K) and the number of hits R per row.

    AP = (1/R) * sum over relevant ranks i of hits(i) / i; rows with R = 0 get 0."""
    hits = np.cumsum(rel, axis=1, dtype=np.int32)
    total = np.einsum("ij,ij,j->i", rel, hits, _inverse_ranks(rel.shape[1]),
                      dtype=np.float64, casting="unsafe")
    n_hits = hits[:, -1].astype(np.int64)
    ap = np.divide(total, n_hits, out=np.zeros_like(total), where=n_hits > 0)
    return ap, n_hits


_INVERSE_RANKS: dict[int, np.ndarray] = {}


def _inverse_ranks(k: int) -> np.ndarray:
    """1 / (1, 2, ..., k) as float64 (cached per k)."""
    inv = _INVERSE_RANKS.get(k)
    if inv is None:
        inv = _INVERSE_RANKS[k] = 1.0 / np.arange(1, k + 1, dtype=np.float64)
    return inv


def average_precision_from_ranking(ranking, query_labels, db_labels) -> np.ndarray:
    """AP@K of every query (float64, n_query) for a given ranking: ``ranking`` (n_query, K) holds
    database indices, best first (e.g. the ids returned by a faiss search); relevance and AP as in
    :data:`metric_convention` (zero-hit queries carry 0)."""
    top = _to_numpy(ranking, "ranking")
    if top.ndim != 2 or not np.issubdtype(top.dtype, np.integer):
        raise ValueError(f"ranking must be an integer array (n_query, K), got dtype {top.dtype} "
                         f"shape {top.shape}")
    q = _to_numpy(query_labels, "query_labels")
    d = _to_numpy(db_labels, "db_labels")
    if top.size and (top.min() < 0 or top.max() >= d.shape[0]):
        raise ValueError("ranking holds indices outside the database (faiss pads with -1 when K "
                         "exceeds the database size)")
    labels = _prepare_labels(q, d, top.shape[0], d.shape[0])
    return _average_precision(labels.relevance(slice(None), top))[0]


def _ap_and_hits(query_codes, db_codes, query_labels, db_labels, k, *, packed, code_length,
                 memory_budget_mb, backend, ties, threads=None):
    def per_chunk(rows: slice, top: np.ndarray):
        return _average_precision(labels.relevance(rows, top))

    chunks, n_query, n_db, _ = _ranking(query_codes, db_codes, k, packed=packed,
                                        code_length=code_length,
                                        memory_budget_mb=memory_budget_mb, backend=backend,
                                        ties=ties, threads=threads, per_chunk=per_chunk)
    labels = _prepare_labels(query_labels, db_labels, n_query, n_db)
    ap = np.empty(n_query, np.float64)
    n_hits = np.empty(n_query, np.int64)
    for rows, (ap_rows, hits_rows) in chunks:
        ap[rows], n_hits[rows] = ap_rows, hits_rows
    return ap, n_hits


def mean_average_precision_per_query(query_codes, db_codes, query_labels, db_labels,
                                     k: int | None = None, *, packed: bool = False,
                                     code_length: int | None = None,
                                     memory_budget_mb: float = _DEFAULT_MEMORY_BUDGET_MB,
                                     backend: str = "auto", ties: str = "index",
                                     threads: int | None = None) -> np.ndarray:
    """AP@K of every query (float64 vector, n_query); zero-hit queries carry 0.

    Arguments as in :func:`map_at_k`.
    """
    return _ap_and_hits(query_codes, db_codes, query_labels, db_labels, k, packed=packed,
                        code_length=code_length, memory_budget_mb=memory_budget_mb,
                        backend=backend, ties=ties, threads=threads)[0]


def map_at_k(query_codes, db_codes, query_labels, db_labels, k: int | None = None, *,
             zero_hit: str = "count", ties: str = "index", packed: bool = False,
             code_length: int | None = None,
             memory_budget_mb: float = _DEFAULT_MEMORY_BUDGET_MB,
             backend: str = "auto", threads: int | None = None) -> float:
    """mAP@K over Hamming ranking (:data:`metric_convention`).

    query_codes, db_codes: +-1 or 0/1 codes (n, L), numpy or torch; with ``packed=True`` the
        database (and optionally the queries) as ``uint8`` from :func:`pack_codes`.
    query_labels, db_labels: multi-hot (n, C), C >= 2, or class ids (n,).
    k: cut-off K; None = whole database; K > database size is clipped.
    zero_hit: ``count`` (BRCD convention: queries with no relevant item in the top K score 0 and
        stay in the mean) or ``skip`` (HashNet/TBH: mean over queries with a hit; NaN if none).
    ties: ``index`` only -- equal distances are ranked by database index.
    code_length: L for packed codes (default 8 * bytes per code).
    memory_budget_mb: bounds the working memory of the ranking, all threads together (at least
        one query row per thread is always held).
    backend: ``auto``, ``numpy``, ``torch`` or ``faiss`` (see :data:`BACKENDS`); all give the
        same value.
    threads: CPU threads of the ``numpy`` backend (query chunks in parallel, and the check of
        large unpacked code arrays) and of ``faiss``; None = ``torch.get_num_threads()`` when
        torch is already imported, else the CPUs this process may use. The value does not
        depend on it.
    """
    reduce = _lookup(ZERO_HIT_CONVENTIONS, zero_hit, "zero_hit convention")
    ap, n_hits = _ap_and_hits(query_codes, db_codes, query_labels, db_labels, k, packed=packed,
                              code_length=code_length, memory_budget_mb=memory_budget_mb,
                              backend=backend, ties=ties, threads=threads)
    return reduce(ap, n_hits > 0)


def precision_at_k_curve(query_codes, db_codes, query_labels, db_labels, ks: Sequence[int], *,
                         packed: bool = False, code_length: int | None = None,
                         memory_budget_mb: float = _DEFAULT_MEMORY_BUDGET_MB,
                         backend: str = "auto", ties: str = "index",
                         threads: int | None = None) -> np.ndarray:
    """Mean precision@K over queries for each K in ``ks`` (float64, len(ks)).

    precision@K = (relevant items among the first K ranked) / K, same ranking as :func:`map_at_k`;
    a K above the database size is clipped to it.
    """
    raw = np.asarray(list(ks))
    if raw.ndim != 1 or raw.size == 0 or raw.dtype.kind not in "iuf" or not np.all(
            np.isfinite(raw) & (raw == np.round(raw)) & (raw >= 1)):
        # 2.5 or NaN would be cut to an integer silently: refused like 0 or -1
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}")
    ks_arr = raw.astype(np.int64)

    def per_chunk(rows: slice, top: np.ndarray) -> np.ndarray:
        hits = np.cumsum(labels.relevance(rows, top), axis=1)
        return hits[:, ks_clip - 1] / ks_clip

    chunks, n_query, n_db, _ = _ranking(query_codes, db_codes, int(ks_arr.max()), packed=packed,
                                        code_length=code_length,
                                        memory_budget_mb=memory_budget_mb, backend=backend,
                                        ties=ties, threads=threads, per_chunk=per_chunk)
    labels = _prepare_labels(query_labels, db_labels, n_query, n_db)
    ks_clip = np.minimum(ks_arr, n_db)
    per_query = np.empty((n_query, ks_arr.size), np.float64)  # one mean at the end: the value
    for rows, precision in chunks:                            # does not depend on the chunking
        per_query[rows] = precision
    return per_query.mean(axis=0)


def _radius_counts(query_codes, db_codes, query_labels, db_labels, *, packed, code_length,
                   memory_budget_mb):
    """Per query and distance d = 0..L: (# items at d, # relevant items at d)."""
    q_bytes, db_bytes, length = _prepare_codes(query_codes, db_codes, packed=packed,
                                               code_length=code_length)
    n_query, n_db = q_bytes.shape[0], db_bytes.shape[0]
    labels = _prepare_labels(query_labels, db_labels, n_query, n_db)
    engine = _PopcountHamming(q_bytes, db_bytes, length)
    bins = length + 1
    items = np.empty((n_query, bins), np.int64)
    relevant = np.empty((n_query, bins), np.int64)
    step = _chunk_rows(n_db, memory_budget_mb)
    for start in range(0, n_query, step):
        rows = slice(start, min(start + step, n_query))
        dist = engine.distances(rows).astype(np.int64)
        c = dist.shape[0]
        flat = (dist + (np.arange(c, dtype=np.int64) * bins)[:, None]).ravel()
        items[rows] = np.bincount(flat, minlength=c * bins).reshape(c, bins)
        rel = labels.relevance(rows, None).ravel()
        relevant[rows] = np.bincount(flat[rel], minlength=c * bins).reshape(c, bins)
    return items, relevant, length


def pr_curve(query_codes, db_codes, query_labels, db_labels, *, zero_hit: str = "count",
             packed: bool = False, code_length: int | None = None,
             memory_budget_mb: float = _DEFAULT_MEMORY_BUDGET_MB) -> dict[str, np.ndarray]:
    """Precision and recall of Hamming-ball retrieval at every radius r = 0..L.

    For each query, the items within distance r are retrieved; precision = relevant retrieved /
    retrieved and recall = relevant retrieved / relevant in the database, each averaged over
    queries. With ``zero_hit="count"`` a query retrieving nothing has precision 0 and a query with
    no relevant item in the database has recall 0; ``"skip"`` leaves such queries out of that mean
    (NaN when none is left). Returns ``{"radius", "precision", "recall"}`` arrays of length L + 1.
    """
    reduce = _lookup(ZERO_HIT_CONVENTIONS, zero_hit, "zero_hit convention")
    items, relevant, length = _radius_counts(query_codes, db_codes, query_labels, db_labels,
                                             packed=packed, code_length=code_length,
                                             memory_budget_mb=memory_budget_mb)
    retrieved = np.cumsum(items, axis=1)
    hits = np.cumsum(relevant, axis=1)
    n_relevant = hits[:, -1:]
    prec = np.divide(hits, retrieved, out=np.zeros(hits.shape), where=retrieved > 0)
    rec = np.divide(hits, n_relevant, out=np.zeros(hits.shape), where=n_relevant > 0)
    precision = np.array([reduce(prec[:, r], retrieved[:, r] > 0) for r in range(length + 1)])
    has_relevant = n_relevant[:, 0] > 0
    recall = np.array([reduce(rec[:, r], has_relevant) for r in range(length + 1)])
    return {"radius": np.arange(length + 1), "precision": precision, "recall": recall}


def precision_within_radius(query_codes, db_codes, query_labels, db_labels, radius: int = 2, *,
                            zero_hit: str = "count", packed: bool = False,
                            code_length: int | None = None,
                            memory_budget_mb: float = _DEFAULT_MEMORY_BUDGET_MB) -> float:
    """Mean precision of the items within Hamming distance ``radius`` of each query.

    A query with no database item within the radius counts as precision 0 (``zero_hit="count"``,
    the usual "precision within Hamming radius 2" convention) or is left out (``"skip"``).
    """
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
    reduce = _lookup(ZERO_HIT_CONVENTIONS, zero_hit, "zero_hit convention")
    items, relevant, length = _radius_counts(query_codes, db_codes, query_labels, db_labels,
                                             packed=packed, code_length=code_length,
                                             memory_budget_mb=memory_budget_mb)
    r = min(int(radius), length)
    retrieved = items[:, : r + 1].sum(axis=1)
    hits = relevant[:, : r + 1].sum(axis=1)
    prec = np.divide(hits, retrieved, out=np.zeros(hits.shape), where=retrieved > 0)
    return reduce(prec, retrieved > 0)


def evaluate_paradigms(*, student_query, student_db, teacher_db, query_labels, db_labels,
                       k: int | None, zero_hit: str = "count", packed: bool = False,
                       code_length: int | None = None,
                       memory_budget_mb: float = _DEFAULT_MEMORY_BUDGET_MB,
                       backend: str = "auto", threads: int | None = None) -> dict[str, float]:
    """mAP@K in both search paradigms of the paper.

    ``symmetric``: student query codes against the student-encoded database;
    ``asymmetric``: student query codes against the teacher-encoded database.
    """
    kw = dict(zero_hit=zero_hit, packed=packed, code_length=code_length,
              memory_budget_mb=memory_budget_mb, backend=backend, threads=threads)
    return {
        "symmetric": map_at_k(student_query, student_db, query_labels, db_labels, k, **kw),
        "asymmetric": map_at_k(student_query, teacher_db, query_labels, db_labels, k, **kw),
    }

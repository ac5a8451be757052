"""The compiled core of the ``numba`` ranking backend of :mod:`brcd_lib.metrics`: the exact,
stable Hamming top-K of packed binary codes in one pass over the database.

Imported only when that backend runs (it needs numba; :mod:`brcd_lib.metrics` itself imports
neither numba nor torch). :func:`topk_rows` ranks a chunk of queries; the caller runs chunks on
its own threads (the kernel releases the GIL), so numba's threading layer is never used.

For each query the kernel keeps

* ``thr``: the K-th smallest distance seen so far (``code_length + 1`` until K items are seen).
  An item at that distance or farther can never enter the top K: the K items already seen are
  at most that far and come first in index order, which breaks equal distances;
* the accepted items (distance, index), in index order, in a buffer of ``cap`` entries that is
  compacted (items farther than ``thr`` dropped) when it is full. After a compaction it holds at
  most ``2 K - 1`` items (the count at ``thr`` is frozen when ``thr`` drops to it, and at most K
  then), so ``cap = 4 K`` leaves room; when ``cap`` covers the whole database no compaction is
  ever needed;
* ``hist[d]``: how many accepted items are at distance ``d``, and ``cum``, how many are at
  ``thr`` or nearer.

The database is read in tiles of ``tile`` items that stay in L1 cache while every query of the
chunk scans them: the distances of a tile are computed with vector popcounts, and only a tile
whose nearest item is nearer than ``thr`` is scanned item by item. At the end a stable counting
sort by distance of the accepted items gives the ranking: by (distance, index), as
:func:`numpy.argsort` with ``kind="stable"`` ranks a row of distances (the golden tests compare
the two).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["popcount64", "topk_rows", "TILE"]

TILE = 256
"""Database items per tile: ``TILE`` x (words per code) x 8 bytes stay in L1 cache."""


@intrinsic
def popcount64(typingctx, x):
    """The number of set bits of a uint64, as int64 (LLVM's ``ctpop``: the CPU's popcount)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, signature, args):
        ctpop = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(ctpop, args)

    return types.int64(types.uint64), codegen


@njit(cache=True, nogil=True, inline="always")
def _accept(r, d, j, top, hist, thr, cum, count, dist, index):
    """Add item ``j`` at distance ``d`` (nearer than ``thr[r]``) to query ``r``'s buffer."""
    th = thr[r]
    c = count[r]
    if c == dist.shape[1]:  # full: keep the items that can still enter the top K
        kept = 0
        for s in range(c):
            if dist[r, s] <= th:
                dist[r, kept] = dist[r, s]
                index[r, kept] = index[r, s]
                kept += 1
        c = kept
    dist[r, c] = d
    index[r, c] = j
    count[r] = c + 1
    hist[r, d] += 1
    cu = cum[r] + 1
    while cu - hist[r, th] >= top:  # at least K items are nearer than th: lower it
        cu -= hist[r, th]
        th -= 1
    cum[r] = cu
    thr[r] = th


@njit(cache=True, nogil=True)
def _ranked(r, top, thr, count, dist, index, out):
    """Query ``r``'s accepted items ranked by (distance, index): its first K into ``out[r]``."""
    th = thr[r]
    n_dist = th + 2
    start = np.zeros(n_dist, np.int64)
    for s in range(count[r]):
        if dist[r, s] <= th:
            start[dist[r, s] + 1] += 1
    for d in range(1, n_dist):
        start[d] += start[d - 1]
    for s in range(count[r]):
        d = dist[r, s]
        if d <= th:
            p = start[d]
            if p < top:
                out[r, p] = index[r, s]
            start[d] = p + 1


@njit(cache=True, nogil=True)
def _distances(q_words, r, db_words_t, t0, t1, buf):
    """The distances of query ``r`` to database items ``t0:t1`` into ``buf``; their minimum."""
    width = t1 - t0
    first = db_words_t[0, t0:t1]
    qw = q_words[r, 0]
    for j in range(width):
        buf[j] = popcount64(qw ^ first[j])
    for w in range(1, q_words.shape[1]):
        col = db_words_t[w, t0:t1]
        qw = q_words[r, w]
        for j in range(width):
            buf[j] += popcount64(qw ^ col[j])
    nearest = buf[0]
    for j in range(1, width):
        nearest = min(nearest, buf[j])
    return nearest


@njit(cache=True, nogil=True)
def _first_threshold(q_words, r, db_sample_t, top, n, code_length, buf):
    """A threshold for query ``r`` from a systematic sample of the database: the smallest
    distance ``t`` within which the sample predicts at least ``K`` items with a margin (1.25 K
    plus three standard deviations of the sampled count). Items farther than ``t`` are not
    accepted; when fewer than K items turn out to be within it, the query is scanned again
    without it (:func:`topk_rows`), so a wrong guess costs time, never exactness."""
    s = db_sample_t.shape[1]  # s = 0: need = 1 is never met, every distance is admitted
    counts = np.zeros(code_length + 1, np.int64)
    for t0 in range(0, s, TILE):
        t1 = min(t0 + TILE, s)
        _distances(q_words, r, db_sample_t, t0, t1, buf)
        for j in range(t1 - t0):
            counts[buf[j]] += 1
    expected = top * s / n
    need = 1.25 * expected + 3.0 * np.sqrt(expected) + 1.0
    within = 0
    for t in range(code_length + 1):
        within += counts[t]
        if within >= need:
            return t
    return code_length


@njit(cache=True, nogil=True)
def _scan(q_words, rows, db_words_t, top, hist, thr, cum, count, dist, index, buf, near):
    """One pass over the database for the query rows ``rows``, tile by tile."""
    n = db_words_t.shape[1]
    for t0 in range(0, n, TILE):
        t1 = min(t0 + TILE, n)
        for r in rows:
            th = thr[r]
            if _distances(q_words, r, db_words_t, t0, t1, buf) >= th:
                continue
            hits = 0
            for j in range(t1 - t0):  # the tile's items nearer than th, without branches
                near[hits] = j
                hits += buf[j] < th
            for h in range(hits):
                j = near[h]
                if buf[j] < thr[r]:  # thr falls as items are accepted
                    _accept(r, buf[j], t0 + j, top, hist, thr, cum, count, dist, index)


@njit("void(uint64[:, ::1], uint64[:, ::1], uint64[:, ::1], int64, int64, int64, int64[:, ::1])",
      cache=True, nogil=True)
def topk_rows(q_words, db_words_t, db_sample_t, top, code_length, cap, out):
    """The top-``top`` database indices of each query row, by (distance, index), into ``out``.

    ``q_words`` (m, W) and ``db_words_t`` (W, n, C-contiguous) are the codes as uint64 words
    (padding bits zero in both); ``db_sample_t`` (W, s) a systematic sample of the database
    for the first thresholds (s = 0: none); ``cap`` (at least ``min(4 top, n)``) is the buffer
    length per query; ``out`` is (m, top) int64.
    """
    m = q_words.shape[0]
    n = db_words_t.shape[1]
    hist = np.zeros((m, code_length + 2), np.int64)
    thr = np.empty(m, np.int64)
    cum = np.zeros(m, np.int64)
    count = np.zeros(m, np.int64)
    dist = np.empty((m, cap), np.int32)
    index = np.empty((m, cap), np.int64)
    buf = np.empty(TILE, np.int64)
    near = np.empty(TILE, np.int64)
    for r in range(m):
        thr[r] = _first_threshold(q_words, r, db_sample_t, top, n, code_length, buf) + 1
    _scan(q_words, np.arange(m), db_words_t, top, hist, thr, cum, count, dist, index, buf, near)
    missed = np.flatnonzero(cum < top)  # fewer than K items within the sampled threshold
    if missed.size:
        for r in missed:
            hist[r, :] = 0
            thr[r] = code_length + 1
            cum[r] = 0
            count[r] = 0
        _scan(q_words, missed, db_words_t, top, hist, thr, cum, count, dist, index, buf, near)
    for r in range(m):
        _ranked(r, top, thr, count, dist, index, out)

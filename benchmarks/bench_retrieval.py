"""Retrieval benchmark: exact mAP@K of ``brcd_lib.metrics.map_at_k`` against a per-query NumPy loop
and against faiss ``IndexBinaryFlat``, on random codes and labels of the CIFAR-10 shape.

For each code length (default 16, 32, 64 bits; 5,000 queries, 50,000 database items, 10 classes,
K = 1000) it times
  (a) ``reference_loop``: one query at a time, float distances, ``np.argsort(kind="stable")``, AP;
      at 64 bits only the first ``--ref-queries-64`` queries are timed and the time is extrapolated
      linearly to all queries (the CSV notes say so);
  (b) ``faiss_binary_flat``: faiss IndexBinaryFlat top-K search on packed codes + vectorised AP
      (``--threads`` OpenMP threads, and again on one thread for comparison);
  (c) ``map_at_k`` (default numpy backend) and ``map_at_k[torch]`` (the torch backend on CPU);
checks that every method gives the reference's per-query AP (to 1e-12), then measures a
1,000,000-item packed database with 1,000 queries in a fresh process (wall time, RSS before the
call, peak RSS during the call (VmHWM reset just before it) and the tracemalloc peak of the call),
with faiss on the same data for comparison.

Writes ``results/benchmarks/retrieval.csv`` (bits, method, seconds, ratio_vs_faiss, map,
equal_to_reference, notes) and ``results/benchmarks/retrieval.md``, each atomically.
Run: ``PYTHONPATH=. python benchmarks/bench_retrieval.py`` (about four minutes on 2 shared cores).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import csv
import io
import multiprocessing
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FIELDS = ["bits", "method", "seconds", "ratio_vs_faiss", "map", "equal_to_reference", "notes"]
TARGET_RATIO = 1.5
EXACT_TOL = 1e-12


# ---------------------------------------------------------------------------------------------
# the three methods
# ---------------------------------------------------------------------------------------------


def ap_from_relevance(rel: np.ndarray) -> np.ndarray:
    """AP@K per row of a ranked relevance matrix (BRCD convention: zero-hit rows score 0)."""
    hits = np.cumsum(rel, axis=1)
    prec = hits / np.arange(1, rel.shape[1] + 1)
    n_hits = hits[:, -1]
    total = (prec * rel).sum(axis=1)
    return np.where(n_hits > 0, total / np.maximum(n_hits, 1), 0.0)


def reference_loop(q: np.ndarray, d: np.ndarray, ql: np.ndarray, dl: np.ndarray,
                   k: int) -> np.ndarray:
    """Per-query AP: float Hamming distances, stable argsort, AP of the first k."""
    length = q.shape[1]
    out = np.empty(q.shape[0])
    for i in range(q.shape[0]):
        dist = (length - d @ q[i]) / 2
        order = np.argsort(dist, kind="stable")[:k]
        out[i] = ap_from_relevance((dl[order] == ql[i])[None, :])[0]
    return out


def faiss_map(q_packed: np.ndarray, d_packed: np.ndarray, ql: np.ndarray, dl: np.ndarray,
              k: int, bits: int) -> tuple[np.ndarray, float, float]:
    """faiss IndexBinaryFlat top-k + AP; returns (AP per query, search seconds, AP seconds)."""
    import faiss

    t0 = time.perf_counter()
    index = faiss.IndexBinaryFlat(bits)
    index.add(d_packed)
    _, ids = index.search(q_packed, k)
    t1 = time.perf_counter()
    ap = ap_from_relevance(dl[ids] == ql[:, None])
    return ap, t1 - t0, time.perf_counter() - t1


def _best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """(fastest wall time, result of that fastest run) over ``repeats`` calls."""
    best, best_result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
        if seconds < best:
            best, best_result = seconds, result
    return best, best_result


def random_case(n_query: int, n_db: int, bits: int, n_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    q = np.where(rng.random((n_query, bits)) < 0.5, 1.0, -1.0).astype(np.float32)
    d = np.where(rng.random((n_db, bits)) < 0.5, 1.0, -1.0).astype(np.float32)
    return q, d, rng.integers(0, n_classes, n_query), rng.integers(0, n_classes, n_db)


def bench_cifar_shape(bits: int, args) -> list[dict]:
    """Rows for one code length on the CIFAR-10 shape."""
    from brcd_lib.metrics import mean_average_precision_per_query, pack_codes

    q, d, ql, dl = random_case(args.n_query, args.n_db, bits, args.n_classes, args.seed + bits)
    k = args.k
    n_ref = args.n_query if bits < 64 or args.ref_queries_64 <= 0 else min(args.ref_queries_64,
                                                                          args.n_query)
    t0 = time.perf_counter()
    ref = reference_loop(q[:n_ref], d, ql[:n_ref], dl, k)
    ref_seconds = (time.perf_counter() - t0) * args.n_query / n_ref
    qp, dp = pack_codes(q), pack_codes(d)
    faiss_seconds, (faiss_ap, search_s, ap_s) = _best_of(
        lambda: faiss_map(qp, dp, ql, dl, k, bits), args.repeats)
    ours_seconds, ours_ap = _best_of(
        lambda: mean_average_precision_per_query(q, d, ql, dl, k, backend="numpy"), args.repeats)
    import faiss

    faiss.omp_set_num_threads(1)
    faiss1_seconds, (faiss1_ap, _, _) = _best_of(
        lambda: faiss_map(qp, dp, ql, dl, k, bits), args.repeats)
    faiss.omp_set_num_threads(args.threads)
    torch_seconds, torch_ap = _best_of(
        lambda: mean_average_precision_per_query(q, d, ql, dl, k, backend="torch"), 1)

    def same(ap: np.ndarray) -> tuple[bool, float]:
        diff = float(np.max(np.abs(ap[:n_ref] - ref)))
        return diff <= EXACT_TOL, diff

    ref_note = (f"timed on the first {n_ref} of {args.n_query} queries, extrapolated linearly; "
                f"map over those {n_ref} queries") if n_ref < args.n_query else "all queries"
    rows = [dict(bits=bits, method="reference_loop", seconds=ref_seconds, map=float(ref.mean()),
                 equal_to_reference=True, notes=ref_note)]
    for method, seconds, ap, note in (
            ("faiss_binary_flat", faiss_seconds, faiss_ap,
             f"search {search_s:.3f} s + AP {ap_s:.3f} s; best of {args.repeats}"),
            ("faiss_binary_flat[1 thread]", faiss1_seconds, faiss1_ap,
             f"faiss on one OpenMP thread; best of {args.repeats}"),
            ("map_at_k", ours_seconds, ours_ap, f"numpy backend; best of {args.repeats}"),
            ("map_at_k[torch]", torch_seconds, torch_ap, "torch backend on CPU; one run")):
        ok, diff = same(ap)
        full = float(np.max(np.abs(ap - ours_ap)))
        rows.append(dict(bits=bits, method=method, seconds=seconds, map=float(ap.mean()),
                         equal_to_reference=ok,
                         notes=f"{note}; max |AP - ref| {diff:.1e} on {n_ref} queries; "
                               f"max |AP - map_at_k| {full:.1e} on all queries"))
    for row in rows:
        row["ratio_vs_faiss"] = row["seconds"] / faiss_seconds
    return rows


# ---------------------------------------------------------------------------------------------
# large packed database, measured in a fresh process
# ---------------------------------------------------------------------------------------------


def _large_case(n_query: int, n_db: int, bits: int, n_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    n_bytes = bits // 8
    qp = rng.integers(0, 256, (n_query, n_bytes), dtype=np.uint8)
    dp = rng.integers(0, 256, (n_db, n_bytes), dtype=np.uint8)
    return qp, dp, rng.integers(0, n_classes, n_query), rng.integers(0, n_classes, n_db)


def _large_child(method: str, n_query: int, n_db: int, bits: int, n_classes: int, k: int,
                 seed: int, threads: int) -> dict:
    """Runs in a fresh process: one method on the packed database; returns time and memory."""
    import faiss
    import torch

    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    from brcd_lib.metrics import mean_average_precision_per_query

    qp, dp, ql, dl = _large_case(n_query, n_db, bits, n_classes, seed)
    rss_before = _rss_mib("VmRSS")
    _reset_peak_rss()
    tracemalloc.start()
    t0 = time.perf_counter()
    if method == "map_at_k":
        ap = mean_average_precision_per_query(qp, dp, ql, dl, k, packed=True, code_length=bits)
    else:
        ap = faiss_map(qp, dp, ql, dl, k, bits)[0]
    seconds = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return dict(seconds=seconds, ap=ap, rss_before_mb=rss_before, rss_peak_mb=_rss_mib("VmHWM"),
                traced_peak_mb=traced_peak / 2**20)


def _rss_mib(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process in MiB; ru_maxrss if no /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux); no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def bench_large(args) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    results = {}
    for method in ("faiss_binary_flat", "map_at_k"):
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            results[method] = pool.submit(_large_child, method, args.large_queries, args.large_db,
                                          64, args.n_classes, args.k, args.seed,
                                          args.threads).result()
    ref = results["faiss_binary_flat"]["ap"]
    rows = []
    for method, res in results.items():
        diff = float(np.max(np.abs(res["ap"] - ref)))
        rows.append(dict(
            bits=64, method=f"{method}@{args.large_db}db", seconds=res["seconds"],
            ratio_vs_faiss=res["seconds"] / results["faiss_binary_flat"]["seconds"],
            map=float(res["ap"].mean()), equal_to_reference=diff <= EXACT_TOL,
            notes=(f"{args.large_queries} queries x {args.large_db} packed 64-bit codes, "
                   f"k={args.k}, fresh process; RSS {res['rss_before_mb']:.0f} MiB before the call "
                   f"(interpreter + torch + faiss + data), peak RSS during the call "
                   f"{res['rss_peak_mb']:.0f} MiB; tracemalloc peak of the call "
                   f"{res['traced_peak_mb']:.1f} MiB; reference = faiss "
                   f"(max |AP diff| {diff:.1e})")))
    return rows


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "seconds": f"{row['seconds']:.4f}",
                         "ratio_vs_faiss": f"{row['ratio_vs_faiss']:.3f}",
                         "map": f"{row['map']:.6f}"})
    return buf.getvalue()


def _markdown(rows: list[dict], args, env: dict) -> str:
    from brcd_lib.metrics import metric_convention

    at64 = {r["method"]: r for r in rows if r["bits"] == 64}
    lines = ["# Retrieval metric benchmark", "",
             f"Generated by `benchmarks/bench_retrieval.py` on {env['machine']}.",
             f"Versions: {env['versions']}. Threads: torch {args.threads}, faiss {args.threads}; "
             "the numpy backend of `map_at_k` runs on one thread.", "",
             f"Data: random +-1 codes and {args.n_classes} random class ids; "
             f"{args.n_query} queries "
             f"x {args.n_db} database items, K = {args.k}; large case {args.large_queries} queries "
             f"x {args.large_db} packed 64-bit codes.", "",
             f"Convention: {metric_convention}", ""]
    if "map_at_k" in at64 and "faiss_binary_flat" in at64:
        ratio = at64["map_at_k"]["ratio_vs_faiss"]
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        lines += [f"Target `map_at_k` time <= {TARGET_RATIO} x faiss time at 64 bits: ratio "
                  f"{ratio:.3f} -> {verdict}.", ""]
    lines += ["| bits | method | seconds | ratio vs faiss | mAP | equal to reference | notes |",
              "|---:|---|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['bits']} | {r['method']} | {r['seconds']:.3f} | "
                     f"{r['ratio_vs_faiss']:.3f} | {r['map']:.6f} | {r['equal_to_reference']} | "
                     f"{r['notes']} |")
    return "\n".join(lines) + "\n"


def _environment() -> dict:
    import faiss
    import torch

    return dict(machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                versions=f"python {platform.python_version()}, numpy {np.__version__}, "
                         f"torch {torch.__version__}, faiss {faiss.__version__}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--n-query", type=int, default=5000)
    p.add_argument("--n-db", type=int, default=50000)
    p.add_argument("--n-classes", type=int, default=10)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--ref-queries-64", type=int, default=1000,
                   help="queries timed by the reference loop at 64 bits (0 = all)")
    p.add_argument("--repeats", type=int, default=3, help="best-of repeats for faiss and map_at_k")
    p.add_argument("--large-db", type=int, default=1_000_000)
    p.add_argument("--large-queries", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=REPO / "results" / "benchmarks")
    args = p.parse_args(argv)
    if any(b % 8 for b in args.bits):
        p.error("--bits must be multiples of 8 (faiss IndexBinaryFlat works on bytes)")
    return args


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rows: list[dict] = []
    for bits in args.bits:
        rows += bench_cifar_shape(bits, args)
        print(f"{bits} bits done", flush=True)
    if args.large_db > 0:
        rows += bench_large(args)
    _atomic_write_text(args.out_dir / "retrieval.csv", _csv_text(rows))
    _atomic_write_text(args.out_dir / "retrieval.md", _markdown(rows, args, _environment()))
    print(_markdown(rows, args, _environment()))
    return rows


if __name__ == "__main__":
    main()

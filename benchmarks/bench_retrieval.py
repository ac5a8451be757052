"""Retrieval benchmark: exact mAP@K of ``brcd_lib.metrics.map_at_k`` against faiss in its best
configuration and against a naive per-query loop, on random packed codes.

Cases (defaults): 5,000 queries x 50,000 database items at 16, 32 and 64 bits, each with
single-label (10 classes) and multi-label (24 classes, each label on with probability 0.1,
relevant = at least one shared label) data, and 1,000 queries x 1,000,000 items at 64 bits
(single-label); K = 1000. Every method receives the same packed ``uint8`` codes and returns the AP
of every query:

* ``faiss``: ``faiss.IndexBinaryFlat`` (index + add + search for the top K) followed by the kit's AP
  of the returned ids (:func:`brcd_lib.metrics.average_precision_from_ranking`), for every thread
  count 1..``os.cpu_count()`` and both exact search modes (``heap``: ``use_heap=True``;
  ``counting``: ``use_heap=False``). The fastest configuration (median wall time, search + AP) is
  the case's baseline and is named in the tables; the search time alone is reported next to it;
* ``map_at_k``: ``mean_average_precision_per_query(..., packed=True, backend="numpy",
  threads=t)`` for every t in 1..``os.cpu_count()`` (the numpy backend, the default on CPU);
* ``map_at_k[faiss]``: the same call with ``backend="faiss"`` (faiss counting mode, all threads);
* ``naive``: one query at a time: XOR + popcount of the packed codes, a stable ``uint8`` argsort of
  the whole database, AP of the first K; on the first ``--naive-queries`` queries of the 1M case
  (its time is then extrapolated linearly to all queries, and marked so).

Timing: one untimed warm-up round, then ``--repeats`` rounds; each round runs every method once,
in an order rotated from round to round (interleaved), so a change of machine load hits all
methods alike. Reported: median wall time, its spread (min and max over the rounds), median CPU
time of the process during the call. Every method's per-query AP is compared with the naive loop
(1e-12). Memory of one call is measured afterwards, for the default configuration of each method,
in a fresh process per method (spawned): ``tracemalloc`` peak of the call (NumPy and Python
allocations; faiss's C++ buffers are invisible to it), and the peak RSS during the call minus the
RSS just before it (``VmHWM`` reset before the call; Linux), reported apart from the process RSS
(interpreter, torch, faiss and the data), with the minor page faults and system CPU time of the
process during the call. The load average is recorded before and after each case.

Writes ``retrieval.csv`` (one row per case and method), ``retrieval.memory.csv`` and
``retrieval.md`` into ``--out-dir`` (default ``results/benchmarks``).

    PYTHONPATH=. python benchmarks/bench_retrieval.py             # everything (tens of minutes)
    PYTHONPATH=. python benchmarks/bench_retrieval.py --bits 64 --n-query 500 --n-db 5000 \
        --k 100 --repeats 1 --large-db 0                          # a smoke run
"""
from __future__ import annotations

import argparse
import concurrent.futures
import csv
import io
import multiprocessing
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

EXACT_TOL = 1e-12
MULTI_CLASSES, MULTI_P = 24, 0.1
FIELDS = ["case", "bits", "labels", "n_query", "n_db", "k", "method", "config", "median_s",
          "min_s", "max_s", "cpu_median_s", "search_median_s", "ratio_vs_best_faiss", "map",
          "max_abs_diff_vs_naive", "equal_to_naive", "rounds", "baseline", "notes"]
MEMORY_FIELDS = ["case", "method", "config", "wall_s_cold", "tracemalloc_peak_mib",
                 "rss_peak_delta_mib", "rss_before_mib", "minor_page_faults", "system_cpu_s",
                 "notes"]


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    n_query: int
    n_db: int
    bits: int
    labels: str  # "single" or "multi"
    k: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.n_query}x{self.n_db}x{self.bits}b-{self.labels}"


def make_data(case: Case):
    """Random packed codes (uint8, n x bits/8) and labels: class ids (10 classes) or multi-hot."""
    rng = np.random.default_rng(case.seed)
    n_bytes = case.bits // 8
    qp = rng.integers(0, 256, (case.n_query, n_bytes), dtype=np.uint8)
    dp = rng.integers(0, 256, (case.n_db, n_bytes), dtype=np.uint8)
    if case.labels == "single":
        ql, dl = rng.integers(0, 10, case.n_query), rng.integers(0, 10, case.n_db)
    else:
        ql = (rng.random((case.n_query, MULTI_CLASSES)) < MULTI_P).astype(np.uint8)
        dl = (rng.random((case.n_db, MULTI_CLASSES)) < MULTI_P).astype(np.uint8)
    return qp, dp, ql, dl


# ---------------------------------------------------------------------------------------------
# methods: each returns (AP per query, search seconds or None)
# ---------------------------------------------------------------------------------------------


def faiss_ap(qp, dp, ql, dl, k: int, *, threads: int, mode: str):
    """IndexBinaryFlat top-k (index + add + search) + the kit's AP of the returned ids."""
    import faiss

    from brcd_lib.metrics import average_precision_from_ranking

    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    index = faiss.IndexBinaryFlat(8 * dp.shape[1])
    index.use_heap = mode == "heap"
    index.add(dp)
    _, ids = index.search(qp, k)
    search = time.perf_counter() - t0
    return average_precision_from_ranking(ids, ql, dl), search


def ours_ap(qp, dp, ql, dl, k: int, *, threads: int, backend: str = "numpy"):
    from brcd_lib.metrics import mean_average_precision_per_query

    return mean_average_precision_per_query(qp, dp, ql, dl, k, packed=True,
                                            code_length=8 * dp.shape[1], backend=backend,
                                            threads=threads), None


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _popcount_bytes(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x) if hasattr(np, "bitwise_count") else _BYTE_BITS[x]


def naive_ap(qp, dp, ql, dl, k: int, *, n_queries: int | None = None):
    """One query at a time: XOR + popcount, stable uint8 argsort of the whole database, AP@k."""
    n = qp.shape[0] if n_queries is None else min(n_queries, qp.shape[0])
    multi = dl.ndim == 2
    ranks = np.arange(1, k + 1)
    out = np.empty(n)
    for i in range(n):
        dist = _popcount_bytes(np.bitwise_xor(dp, qp[i])).sum(axis=1, dtype=np.uint8)
        top = np.argsort(dist, kind="stable")[:k]
        rel = (dl[top] & ql[i]).any(axis=1) if multi else dl[top] == ql[i]
        hits = np.cumsum(rel)
        out[i] = (hits / ranks)[rel].sum() / hits[-1] if hits[-1] else 0.0
    return out, None


@dataclass(frozen=True)
class Method:
    method: str
    config: str
    run: Callable

    @property
    def label(self) -> str:
        return f"{self.method}[{self.config}]"


def methods_for(case: Case, args) -> list[Method]:
    cpus = os.cpu_count() or 1
    out = []
    for threads in range(1, cpus + 1):
        for mode in ("heap", "counting"):
            out.append(Method("faiss", f"{mode}, {threads} thread{'s' * (threads > 1)}",
                              lambda d, t=threads, m=mode: faiss_ap(*d, case.k, threads=t,
                                                                    mode=m)))
    for threads in range(1, cpus + 1):
        out.append(Method("map_at_k", f"numpy, threads={threads}",
                          lambda d, t=threads: ours_ap(*d, case.k, threads=t)))
    out.append(Method("map_at_k", f"backend=faiss, threads={cpus}",
                      lambda d: ours_ap(*d, case.k, threads=cpus, backend="faiss")))
    n_naive = args.naive_queries if case.n_db > args.n_db else None
    out.append(Method("naive", "per-query popcount + stable uint8 argsort",
                      lambda d: naive_ap(*d, case.k, n_queries=n_naive)))
    return out


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------


def load_average() -> str:
    try:
        return "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def time_case(case: Case, args) -> tuple[list[dict], dict]:
    data = make_data(case)
    methods = methods_for(case, args)
    load_before = load_average()
    walls = {m.label: [] for m in methods}
    cpus = {m.label: [] for m in methods}
    searches = {m.label: [] for m in methods}
    aps = {}
    for rnd in range(args.repeats + 1):  # round 0: warm-up, not timed
        shift = rnd % len(methods)
        for m in methods[shift:] + methods[:shift]:
            c0, t0 = time.process_time(), time.perf_counter()
            ap, search = m.run(data)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if rnd == 0:
                aps[m.label] = ap
                continue
            walls[m.label].append(wall)
            cpus[m.label].append(cpu)
            if search is not None:
                searches[m.label].append(search)
        print(f"  {case.name}: round {rnd}/{args.repeats} done (load {load_average()})",
              flush=True)
    load_after = load_average()
    naive = methods[-1]
    n_ref = aps[naive.label].shape[0]
    scale = case.n_query / n_ref
    rows = []
    for m in methods:
        w = walls[m.label]
        factor = scale if m is naive else 1.0
        diff = float(np.max(np.abs(aps[m.label][:n_ref] - aps[naive.label])))
        notes = []
        if m is naive and scale != 1.0:
            notes.append(f"timed on the first {n_ref} of {case.n_query} queries and extrapolated "
                         f"linearly (x {scale:g}); its mAP is over those {n_ref} queries")
        rows.append(dict(
            case=case.name, bits=case.bits, labels=case.labels, n_query=case.n_query,
            n_db=case.n_db, k=case.k, method=m.method, config=m.config,
            median_s=statistics.median(w) * factor, min_s=min(w) * factor,
            max_s=max(w) * factor, cpu_median_s=statistics.median(cpus[m.label]) * factor,
            search_median_s=statistics.median(searches[m.label]) if searches[m.label] else None,
            map=float(np.mean(aps[m.label])), max_abs_diff_vs_naive=diff,
            equal_to_naive=diff <= EXACT_TOL, rounds=len(w), baseline=False,
            notes="; ".join(notes)))
    faiss_rows = [r for r in rows if r["method"] == "faiss"]
    best = min(faiss_rows, key=lambda r: r["median_s"])
    best["baseline"] = True
    for r in rows:
        r["ratio_vs_best_faiss"] = r["median_s"] / best["median_s"]
    info = dict(load_before=load_before, load_after=load_after, best=best)
    return rows, info


# ---------------------------------------------------------------------------------------------
# memory of one call, in a fresh process
# ---------------------------------------------------------------------------------------------


def _rss_mib(field: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process in MiB (Linux); NaN elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _reset_peak_rss() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux); no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def _memory_child(case: Case, label: str, args_dict: dict) -> dict:
    """Runs in a fresh process: one call of one method; wall time and memory of that call."""
    import faiss  # noqa: F401  (imported before the measurement, like torch and the kit)
    import torch  # noqa: F401

    import brcd_lib.metrics  # noqa: F401

    args = argparse.Namespace(**args_dict)
    data = make_data(case)
    method = next(m for m in methods_for(case, args) if m.label == label)
    import resource

    rss_before = _rss_mib("VmRSS")
    _reset_peak_rss()
    tracemalloc.start()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    method.run(data)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return dict(wall_s_cold=wall, tracemalloc_peak_mib=peak / 2**20,
                rss_peak_delta_mib=_rss_mib("VmHWM") - rss_before, rss_before_mib=rss_before,
                minor_page_faults=after.ru_minflt - usage.ru_minflt,
                system_cpu_s=after.ru_stime - usage.ru_stime)


def memory_rows(case: Case, best_faiss_config: str, args) -> list[dict]:
    cpus = os.cpu_count() or 1
    wanted = [("map_at_k", f"numpy, threads={cpus}"), ("faiss", best_faiss_config)]
    if case.n_db > args.n_db:  # the large case: every configuration that matters for memory
        wanted += [("map_at_k", "numpy, threads=1"), ("map_at_k", f"backend=faiss, threads={cpus}")]
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for method, config in wanted:
        label = f"{method}[{config}]"
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            res = pool.submit(_memory_child, case, label, vars(args)).result()
        note = ("faiss's own C++ buffers are not seen by tracemalloc (the RSS delta sees them)"
                if "faiss" in label else "")
        rows.append(dict(case=case.name, method=method, config=config, notes=note, **res))
    return rows


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def csv_text(rows: list[dict], fields: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({f: _fmt(row.get(f)) for f in fields})
    return buf.getvalue()


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _s(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def markdown(rows: list[dict], memory: list[dict], infos: dict, args, env: dict) -> str:
    from brcd_lib.metrics import metric_convention

    cpus = os.cpu_count() or 1
    lines = [
        "# Retrieval metric benchmark", "",
        f"Generated by `benchmarks/bench_retrieval.py` ({env['command']}) at commit "
        f"{env['commit']} on {env['machine']}; "
        f"{env['versions']}. Started {env['started']}, {env['elapsed']:.0f} s in all; load "
        f"average (1/5/15 min) {env['load_start']} at the start and {env['load_end']} at the end "
        "(the machine is shared with other jobs).", "",
        f"Method: per case, one untimed warm-up round, then {args.repeats} interleaved rounds "
        "(every method once per round, order rotated); median wall time (min-max over the "
        "rounds) and median process CPU time. All methods get the same packed uint8 codes. "
        "faiss = `IndexBinaryFlat` index + add + search + the kit's AP of the returned ids "
        f"(`average_precision_from_ranking`), swept over threads 1..{cpus} and both exact modes "
        "(heap = `use_heap=True`, counting = `use_heap=False`); its fastest configuration is the "
        "baseline (ratio 1). `map_at_k` = `mean_average_precision_per_query(packed=True)`, "
        "numpy backend at each thread count, and the `backend=\"faiss\"` path. naive = one query "
        "at a time, XOR + popcount, stable uint8 argsort of the whole database, AP of the "
        "first K; it is the reference every method's per-query AP is checked against "
        f"(|diff| <= {EXACT_TOL:g}).", "",
        f"Data: random packed codes; single-label = 10 random class ids; multi-label = "
        f"{MULTI_CLASSES} classes, each label on with probability {MULTI_P} (relevant = at least "
        f"one shared label). K = {args.k}.", "",
        f"Convention: {metric_convention}", "",
        "## Summary", "",
        "| case | best faiss (baseline) | faiss s (min-max) | faiss search s | map_at_k best "
        "| map_at_k s (min-max) | ratio | map_at_k 1 thread: s, ratio | backend=faiss: s, ratio "
        "| naive: s, ratio | equal to naive | load before -> after |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|"]
    by_case: dict[str, list[dict]] = {}
    for r in rows:
        by_case.setdefault(r["case"], []).append(r)
    for name, rs in by_case.items():
        best = next(r for r in rs if r["baseline"])
        ours = [r for r in rs if r["method"] == "map_at_k" and r["config"].startswith("numpy")]
        ours_best = min(ours, key=lambda r: r["median_s"])
        ours_1 = next(r for r in ours if r["config"] == "numpy, threads=1")
        fb = next(r for r in rs if r["config"].startswith("backend=faiss"))
        naive = next(r for r in rs if r["method"] == "naive")
        info = infos[name]
        lines.append(
            f"| {name} | {best['config']} | {best['median_s']:.3f} ({best['min_s']:.3f}-"
            f"{best['max_s']:.3f}) | {_s(best['search_median_s'])} | {ours_best['config']} | "
            f"{ours_best['median_s']:.3f} ({ours_best['min_s']:.3f}-{ours_best['max_s']:.3f}) | "
            f"**{ours_best['ratio_vs_best_faiss']:.3f}** | {ours_1['median_s']:.3f}, "
            f"{ours_1['ratio_vs_best_faiss']:.3f} | {fb['median_s']:.3f}, "
            f"{fb['ratio_vs_best_faiss']:.3f} | {naive['median_s']:.3f}, "
            f"{naive['ratio_vs_best_faiss']:.3f} | {all(r['equal_to_naive'] for r in rs)} | "
            f"{info['load_before']} -> {info['load_after']} |")
    lines += ["", "ratio = median wall time / median wall time of the best faiss configuration "
              "of the same case (below 1: faster than faiss).", "",
              "## All configurations", "",
              "| case | method | config | median s | min s | max s | CPU s (median) | "
              "faiss search s | ratio vs best faiss | mAP | max abs diff vs naive | notes |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        mark = " (baseline)" if r["baseline"] else ""
        lines.append(
            f"| {r['case']} | {r['method']} | {r['config']}{mark} | {r['median_s']:.3f} | "
            f"{r['min_s']:.3f} | {r['max_s']:.3f} | {r['cpu_median_s']:.3f} | "
            f"{_s(r['search_median_s'])} | {r['ratio_vs_best_faiss']:.3f} | {r['map']:.6f} | "
            f"{r['max_abs_diff_vs_naive']:.1e} | {r['notes']} |")
    if memory:
        lines += ["", "## Memory of one call (fresh process per row)", "",
                  "tracemalloc peak = NumPy/Python allocations during the call; RSS delta = peak "
                  "RSS during the call (VmHWM reset just before it) minus the RSS before it; RSS "
                  "before = the process (interpreter, torch, faiss, the data); minor page faults "
                  "and system CPU time of the process during the call (getrusage). Wall time of "
                  "that single cold call is shown for reference (not used for the ratios).", "",
                  "| case | method | config | tracemalloc peak MiB | RSS delta MiB | "
                  "RSS before MiB | minor page faults | system CPU s | cold call s | notes |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for m in memory:
            lines.append(f"| {m['case']} | {m['method']} | {m['config']} | "
                         f"{m['tracemalloc_peak_mib']:.1f} | {m['rss_peak_delta_mib']:.1f} | "
                         f"{m['rss_before_mib']:.0f} | {m['minor_page_faults']} | "
                         f"{m['system_cpu_s']:.2f} | {m['wall_s_cold']:.3f} | {m['notes']} |")
    return "\n".join(lines) + "\n"


def git_commit() -> str:
    """HEAD of the repository this script lives in, with ``+dirty`` when tracked files differ."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, check=True, capture_output=True, text=True).stdout
        return head + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def environment() -> dict:
    import faiss
    import torch

    return dict(machine=f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()})",
                versions=f"python {platform.python_version()}, numpy {np.__version__}, "
                         f"torch {torch.__version__}, faiss {faiss.__version__}",
                commit=git_commit())


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--labels", nargs="+", default=["single", "multi"],
                   choices=["single", "multi"])
    p.add_argument("--n-query", type=int, default=5000)
    p.add_argument("--n-db", type=int, default=50000)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5, help="timed interleaved rounds per case")
    p.add_argument("--large-db", type=int, default=1_000_000,
                   help="database size of the large 64-bit single-label case (0: skip it)")
    p.add_argument("--large-queries", type=int, default=1000)
    p.add_argument("--naive-queries", type=int, default=100,
                   help="queries timed by the naive loop in the large case (extrapolated)")
    p.add_argument("--ref-queries-64", type=int, default=0,
                   help="kept for benchmarks/run.py; no effect (the naive loop times every "
                        "query of the 50k cases)")
    p.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory runs")
    p.add_argument("--large-only", action="store_true", help="run only the large case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=REPO / "results" / "benchmarks")
    args = p.parse_args(argv)
    if any(b % 8 for b in args.bits):
        p.error("--bits must be multiples of 8 (faiss IndexBinaryFlat works on bytes)")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def cases_of(args) -> list[Case]:
    cases = [] if args.large_only else [
        Case(args.n_query, args.n_db, bits, labels, args.k, args.seed + bits)
        for bits in args.bits for labels in args.labels]
    if args.large_db > 0:
        cases.append(Case(args.large_queries, args.large_db, 64, "single", args.k, args.seed + 1))
    return cases


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    t_start = time.perf_counter()
    env = dict(environment(), started=time.strftime("%Y-%m-%d %H:%M:%S"),
               load_start=load_average(),
               command="python benchmarks/bench_retrieval.py " + " ".join(
                   argv if argv is not None else sys.argv[1:]))
    rows, memory, infos = [], [], {}
    for case in cases_of(args):
        print(f"== {case.name}", flush=True)
        case_rows, info = time_case(case, args)
        rows += case_rows
        ours = min((r for r in case_rows if r["method"] == "map_at_k"
                    and r["config"].startswith("numpy")), key=lambda r: r["median_s"])
        print(f"  {case.name}: best faiss {info['best']['config']} "
              f"{info['best']['median_s']:.3f} s; map_at_k {ours['config']} "
              f"{ours['median_s']:.3f} s; ratio {ours['ratio_vs_best_faiss']:.3f}", flush=True)
        infos[case.name] = info
        if not args.no_memory:
            memory += memory_rows(case, info["best"]["config"], args)
    env.update(load_end=load_average(), elapsed=time.perf_counter() - t_start)
    text = markdown(rows, memory, infos, args, env)
    atomic_write_text(args.out_dir / "retrieval.csv", csv_text(rows, FIELDS))
    if memory:
        atomic_write_text(args.out_dir / "retrieval.memory.csv", csv_text(memory, MEMORY_FIELDS))
    atomic_write_text(args.out_dir / "retrieval.md", text)
    print(text)
    return rows


if __name__ == "__main__":
    main()

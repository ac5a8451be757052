"""Retrieval benchmark: exact mAP@K of ``brcd_lib.metrics.map_at_k`` through the call users make
(float codes in) and through the packed path, against faiss in every exact configuration.

Cases (defaults; K = 1000 unless named): 5,000 queries x 50,000 database items at 16, 32 and 64
bits, each with single-label (10 classes) and multi-label (24 classes, each label on with
probability 0.1) data; 5,000 x 50,000 x 64 bits with 80 labels (each on with probability 0.05)
and K = 5000; 5,000 x 50,000 x 32 bits drawn from only 64 distinct codes (many exact ties); and
1,000 x 1,000,000 x 64 bits, single-label. Relevant = at least one shared label.

Arms, each timed end to end (everything the call does, checks and packing included):

* ``faiss`` (the baseline): ``faiss.IndexBinaryFlat`` index + add + search for the top K, then
  the kit's AP of the returned ids (``average_precision_from_ranking``), on 1 and 2 OpenMP
  threads (and ``os.cpu_count()`` when larger) in both exact modes (``heap``: ``use_heap=True``;
  ``counting``: ``use_heap=False``). faiss gets the codes already packed (its packing is not
  timed). The fastest configuration by median is the case's baseline; every kit arm is also
  compared with the fastest faiss configuration *of the same round* (the per-round ratio range);
* ``map_at_k`` default call: ``map_at_k(q, d, q_labels, d_labels, k)`` with float32 +-1 codes as
  NumPy arrays, as torch CPU tensors (when torch is installed), and float32 0/1 NumPy codes;
* ``map_at_k`` packed: ``map_at_k(..., packed=True)`` on the ``uint8`` codes, with the default
  threads and with ``threads=1``, and ``backend="faiss"``.

Timing: one untimed warm-up round, then ``--repeats`` rounds; each round runs every arm once, in
an order rotated from round to round (interleaved), and records the load average before it.
Reported: median wall time, min and max over the rounds, median process CPU time, the ratio of
medians to the best faiss configuration, and the range of the per-round ratios.

Exactness: a reference written here (per query: XOR + popcount of the packed codes, a stable
argsort, AP of the first K) gives the AP of every query; each faiss arm's per-query AP, each
``map_at_k`` arm's mean, and (untimed, once per case) the per-query AP of the default call and of
the packed call (``mean_average_precision_per_query``) are compared with it (1e-12).

Memory of one call, in a fresh process per row (spawned) that imports only what the arm needs
(the NumPy arms do not import torch): RSS just before the call (interpreter, imports, inputs),
peak RSS during the call minus that (``VmHWM`` reset just before the call; Linux), the process's
peak RSS over its whole life, ``tracemalloc`` peak, and whether torch was imported. Import time of
the metric (``import brcd_lib.metrics``, ``from brcd_lib import map_at_k``) and of torch, each in
fresh processes, interleaved.

Writes ``retrieval.csv`` (one row per case and arm), ``retrieval.memory.csv`` (memory rows and the
import times) and ``retrieval.md`` into ``--out-dir`` (default ``results/benchmarks``). With
``--before <earlier retrieval.csv>`` the Markdown also sets both runs' ratios side by side
(``--compare-only`` adds that section to an existing ``retrieval.md`` without timing anything).

    PYTHONPATH=. python benchmarks/bench_retrieval.py --repeats 7   # everything (~30 min)
    PYTHONPATH=. python benchmarks/bench_retrieval.py --bits 64 --n-query 500 --n-db 5000 \
        --k 100 --repeats 1 --large-db 0                          # a smoke run
"""
from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.paths import command_line, shown  # noqa: E402

EXACT_TOL = 1e-12
LABEL_SETS = {  # name -> (classes, probability of each label; 0 = one class id per item)
    "single": (10, 0.0),
    "multi": (24, 0.1),
    "multi80": (80, 0.05),
}
TIES_DISTINCT = 64
FIELDS = ["case", "bits", "labels", "n_query", "n_db", "k", "distinct_codes", "method", "config",
          "median_s", "min_s", "max_s", "cpu_median_s", "search_median_s", "ratio_vs_best_faiss",
          "ratio_round_min", "ratio_round_max", "map", "max_abs_diff_vs_reference",
          "equal_to_reference", "rounds", "baseline", "walls_s", "load_1min_rounds", "notes"]
MEMORY_FIELDS = ["case", "method", "config", "inputs_mib", "rss_before_mib",
                 "rss_peak_delta_mib", "process_peak_rss_mib", "tracemalloc_peak_mib",
                 "torch_imported", "wall_s_cold", "minor_page_faults", "notes"]
IMPORT_STATEMENTS = {
    "import brcd_lib.metrics": "import brcd_lib.metrics",
    "from brcd_lib import map_at_k": "from brcd_lib import map_at_k",
    "from brcd_lib import hamming_topk (numba + the compiled kernel)":
        "from brcd_lib import hamming_topk",
    "import torch (for comparison)": "import torch",
}


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    n_query: int
    n_db: int
    bits: int
    labels: str  # a key of LABEL_SETS
    k: int
    seed: int
    distinct: int = 0  # > 0: codes drawn from this many distinct codes (exact ties)

    @property
    def name(self) -> str:
        ties = f"-ties{self.distinct}" if self.distinct else ""
        return f"{self.n_query}x{self.n_db}x{self.bits}b-{self.labels}{ties}-k{self.k}"


def packed_codes(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """Random packed codes (uint8, n x bits/8), or draws from ``case.distinct`` codes."""
    rng = np.random.default_rng(case.seed)
    n_bytes = case.bits // 8
    if case.distinct:
        base = rng.integers(0, 256, (case.distinct, n_bytes), dtype=np.uint8)
        return (base[rng.integers(0, case.distinct, case.n_query)],
                base[rng.integers(0, case.distinct, case.n_db)])
    return (rng.integers(0, 256, (case.n_query, n_bytes), dtype=np.uint8),
            rng.integers(0, 256, (case.n_db, n_bytes), dtype=np.uint8))


def labels_of(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """Class ids (n,) for ``single``; multi-hot uint8 (n, C) otherwise."""
    rng = np.random.default_rng(case.seed + 1)
    classes, p = LABEL_SETS[case.labels]
    if not p:
        return rng.integers(0, classes, case.n_query), rng.integers(0, classes, case.n_db)
    return ((rng.random((case.n_query, classes)) < p).astype(np.uint8),
            (rng.random((case.n_db, classes)) < p).astype(np.uint8))


def float_codes(packed: np.ndarray, bits: int, unset: float) -> np.ndarray:
    """float32 codes (n, bits): 1 for a set bit, ``unset`` (-1 or 0) otherwise; built in row
    blocks so that no temporary of the full size is made."""
    out = np.empty((packed.shape[0], bits), np.float32)
    step = max(1, (1 << 20) // bits)
    for start in range(0, packed.shape[0], step):
        rows = slice(start, start + step)
        bits_rows = np.unpackbits(packed[rows], axis=1, count=bits)
        np.multiply(bits_rows, 1.0 - unset, out=out[rows])
        out[rows] += unset
    return out


@dataclass
class Data:
    case: Case
    qp: np.ndarray
    dp: np.ndarray
    ql: np.ndarray
    dl: np.ndarray
    _float: dict = field(default_factory=dict)

    def codes(self, form: str):
        """``packed``, ``pm1`` (float32 +-1), ``zero_one`` (float32 0/1) or ``torch_pm1`` (the
        +-1 codes as torch CPU tensors, sharing memory with ``pm1``)."""
        if form == "packed":
            return self.qp, self.dp
        if form not in self._float:
            if form == "torch_pm1":
                import torch

                q, d = self.codes("pm1")
                self._float[form] = torch.from_numpy(q), torch.from_numpy(d)
            else:
                unset = {"pm1": -1.0, "zero_one": 0.0}[form]
                self._float[form] = (float_codes(self.qp, self.case.bits, unset),
                                     float_codes(self.dp, self.case.bits, unset))
        return self._float[form]


def make_data(case: Case) -> Data:
    qp, dp = packed_codes(case)
    ql, dl = labels_of(case)
    return Data(case, qp, dp, ql, dl)


# ---------------------------------------------------------------------------------------------
# the reference: per query XOR + popcount, stable argsort, AP of the first K (no kit code)
# ---------------------------------------------------------------------------------------------


def _words(packed: np.ndarray) -> np.ndarray:
    """(n, B) bytes -> (n, ceil(B/8)) uint64 words (zero padded)."""
    n, b = packed.shape
    padded = np.zeros((n, -(-b // 8) * 8), np.uint8)
    padded[:, :b] = packed
    return padded.view(np.uint64)


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _BYTE_BITS[x.view(np.uint8)].reshape(x.shape + (8,)).sum(axis=-1, dtype=np.uint8)


def reference_ap(data: Data) -> np.ndarray:
    """AP@K of every query by the definition: stable argsort of the Hamming distances."""
    case = data.case
    qw, dw = _words(data.qp), _words(data.dp)
    k = min(case.k, case.n_db)
    multi = data.dl.ndim == 2
    inv_rank = 1.0 / np.arange(1, k + 1)
    out = np.empty(case.n_query)
    for i in range(case.n_query):
        dist = np.zeros(case.n_db, np.uint16)
        for w in range(qw.shape[1]):
            dist += _popcount(dw[:, w] ^ qw[i, w])
        top = np.argsort(dist, kind="stable")[:k]
        rel = (data.dl[top] & data.ql[i]).any(axis=1) if multi else data.dl[top] == data.ql[i]
        hits = np.cumsum(rel)
        out[i] = (hits * inv_rank)[rel].sum() / hits[-1] if hits[-1] else 0.0
    return out


# ---------------------------------------------------------------------------------------------
# arms: each returns (per-query AP or the mean AP, faiss search seconds or None)
# ---------------------------------------------------------------------------------------------


def faiss_ap(data: Data, *, threads: int, mode: str):
    """IndexBinaryFlat top-k (index + add + search) + the kit's AP of the returned ids."""
    import faiss

    from brcd_lib.metrics import average_precision_from_ranking

    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    index = faiss.IndexBinaryFlat(8 * data.dp.shape[1])
    index.use_heap = mode == "heap"
    index.add(data.dp)
    _, ids = index.search(data.qp, data.case.k)
    search = time.perf_counter() - t0
    return average_precision_from_ranking(ids, data.ql, data.dl), search


def kit_map(data: Data, *, form: str, **kwargs):
    """The user's call: ``map_at_k(q, d, q_labels, d_labels, k, **kwargs)``."""
    from brcd_lib.metrics import map_at_k

    q, d = data.codes(form)
    if form == "packed":
        kwargs = dict(packed=True, code_length=data.case.bits, **kwargs)
    return map_at_k(q, d, data.ql, data.dl, data.case.k, **kwargs), None


def kit_per_query(data: Data, *, form: str, **kwargs) -> np.ndarray:
    """The same call's per-query AP (``mean_average_precision_per_query``; the exactness check)."""
    from brcd_lib.metrics import mean_average_precision_per_query

    q, d = data.codes(form)
    if form == "packed":
        kwargs = dict(packed=True, code_length=data.case.bits, **kwargs)
    return mean_average_precision_per_query(q, d, data.ql, data.dl, data.case.k, **kwargs)


@dataclass(frozen=True)
class Arm:
    method: str
    config: str
    run: Callable
    form: str = "packed"        # the codes it takes
    kwargs: tuple = ()          # map_at_k keyword arguments (kit arms)

    @property
    def label(self) -> str:
        return f"{self.method}[{self.config}]"


DEFAULT_CALL = "default call, float32 +-1 numpy"


def faiss_threads() -> list[int]:
    return sorted({1, 2, os.cpu_count() or 1})


def arms_for(case: Case, *, with_torch: bool = True) -> list[Arm]:
    out = []
    for threads in faiss_threads():
        for mode in ("heap", "counting"):
            out.append(Arm("faiss", f"{mode}, {threads} thread{'s' * (threads > 1)}",
                           lambda data, t=threads, m=mode: faiss_ap(data, threads=t, mode=m)))
    kit = [(DEFAULT_CALL, "pm1", ()),
           ("default call, float32 +-1 torch", "torch_pm1", ()),
           ("default call, float32 0/1 numpy", "zero_one", ()),
           ("packed=True", "packed", ()),
           ("packed=True, threads=1", "packed", (("threads", 1),)),
           ("packed=True, backend=faiss", "packed", (("backend", "faiss"),)),
           ("packed=True, backend=numpy", "packed", (("backend", "numpy"),))]
    for config, form, kwargs in kit:
        if form == "torch_pm1" and not with_torch:
            continue
        out.append(Arm("map_at_k", config,
                       lambda data, f=form, kw=kwargs: kit_map(data, form=f, **dict(kw)),
                       form, kwargs))
    return out


def uses_numba(arm: Arm) -> bool:
    """Whether a kit arm runs the default CPU backend (numba) rather than a named one."""
    return arm.method == "map_at_k" and "backend" not in dict(arm.kwargs)


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------


def load_1min() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def load_average() -> str:
    try:
        return "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def _semicolons(values) -> str:
    return ";".join(f"{v:.4g}" for v in values)


def time_case(case: Case, args) -> tuple[list[dict], dict]:
    data = make_data(case)
    arms = arms_for(case, with_torch=torch_available())
    t0 = time.perf_counter()
    ref = reference_ap(data)
    ref_s = time.perf_counter() - t0
    ref_mean = float(np.mean(ref))
    # untimed, once: the per-query AP of the default call and of the packed call
    per_query_diff = {
        form: float(np.max(np.abs(kit_per_query(data, form=form) - ref)))
        for form in ("pm1", "packed")}
    for arm in arms:  # build every input before the clock starts
        data.codes(arm.form)
    walls = {a.label: [] for a in arms}
    cpus = {a.label: [] for a in arms}
    searches = {a.label: [] for a in arms}
    loads: list[float] = []
    results = {}
    load_before = load_average()
    for rnd in range(args.repeats + 1):  # round 0: warm-up, not timed
        shift = rnd % len(arms)
        load = load_1min()
        for arm in arms[shift:] + arms[:shift]:
            c0, t0 = time.process_time(), time.perf_counter()
            value, search = arm.run(data)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if rnd == 0:
                results[arm.label] = value
                continue
            walls[arm.label].append(wall)
            cpus[arm.label].append(cpu)
            if search is not None:
                searches[arm.label].append(search)
        if rnd:
            loads.append(load)
        print(f"  {case.name}: round {rnd}/{args.repeats} done (load before {load:.2f})",
              flush=True)
    faiss_arms = [a for a in arms if a.method == "faiss"]
    best = min(faiss_arms, key=lambda a: statistics.median(walls[a.label]))
    best_median = statistics.median(walls[best.label])
    best_per_round = np.min([walls[a.label] for a in faiss_arms], axis=0)
    rows = []
    for arm in arms:
        w = np.array(walls[arm.label])
        value = results[arm.label]
        if np.ndim(value):  # per-query AP (faiss arms)
            diff, mean = float(np.max(np.abs(value - ref))), float(np.mean(value))
        else:
            diff, mean = abs(float(value) - ref_mean), float(value)
        notes = []
        if arm.method == "map_at_k" and arm.form in ("pm1", "packed") and not arm.kwargs:
            form_diff = per_query_diff[arm.form]
            notes.append(f"per-query AP of the same call vs reference: max |diff| {form_diff:.1e}")
            diff = max(diff, form_diff)
        round_ratio = w / best_per_round
        rows.append(dict(
            case=case.name, bits=case.bits, labels=case.labels, n_query=case.n_query,
            n_db=case.n_db, k=case.k, distinct_codes=case.distinct or "", method=arm.method,
            config=arm.config, median_s=float(np.median(w)), min_s=float(w.min()),
            max_s=float(w.max()), cpu_median_s=statistics.median(cpus[arm.label]),
            search_median_s=(statistics.median(searches[arm.label]) if searches[arm.label]
                             else None),
            ratio_vs_best_faiss=float(np.median(w)) / best_median,
            ratio_round_min=float(round_ratio.min()), ratio_round_max=float(round_ratio.max()),
            map=mean, max_abs_diff_vs_reference=diff, equal_to_reference=diff <= EXACT_TOL,
            rounds=len(w), baseline=arm is best, walls_s=_semicolons(w),
            load_1min_rounds=_semicolons(loads), notes="; ".join(notes)))
    info = dict(load_before=load_before, load_after=load_average(), loads=loads,
                best=best.config, best_median=best_median, reference_s=ref_s)
    return rows, info


# ---------------------------------------------------------------------------------------------
# memory of one call, in a fresh process that imports only what the arm needs
# ---------------------------------------------------------------------------------------------


def _proc_status_mib(field_name: str) -> float:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process in MiB (Linux); NaN elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
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


def _memory_child(case: Case, label: str) -> dict:
    """Runs in a fresh process: one call of one arm; wall time and memory of that call."""
    import resource

    arm = next(a for a in arms_for(case) if a.label == label)
    if arm.method == "faiss" or "faiss" in arm.config:
        import faiss  # noqa: F401  (imported before the measurement, like the kit)
    elif uses_numba(arm):  # the compiled kernel, like faiss (its cost: the import rows)
        import brcd_lib.hamming_topk  # noqa: F401
    import brcd_lib.metrics  # noqa: F401

    data = make_data(case)
    q, d = data.codes(arm.form)
    inputs = sum(int(np.asarray(x).nbytes) for x in (q, d, data.ql, data.dl))
    peak_before = _proc_status_mib("VmHWM")
    rss_before = _proc_status_mib("VmRSS")
    _reset_peak_rss()
    tracemalloc.start()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    arm.run(data)
    wall = time.perf_counter() - t0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak_call = _proc_status_mib("VmHWM")
    return dict(inputs_mib=inputs / 2**20, rss_before_mib=rss_before,
                rss_peak_delta_mib=peak_call - rss_before,
                process_peak_rss_mib=max(peak_before, peak_call),
                tracemalloc_peak_mib=traced / 2**20, torch_imported="torch" in sys.modules,
                wall_s_cold=wall, minor_page_faults=faults)


def memory_rows(case: Case, best_faiss_config: str, large: bool) -> list[dict]:
    wanted = [("map_at_k", DEFAULT_CALL), ("faiss", best_faiss_config)]
    if large:  # the large case: every kit path
        wanted += [("map_at_k", "default call, float32 +-1 torch"), ("map_at_k", "packed=True"),
                   ("map_at_k", "packed=True, backend=faiss"),
                   ("map_at_k", "packed=True, backend=numpy")]
    arms = {a.label: a for a in arms_for(case, with_torch=torch_available())}
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for method, config in wanted:
        label = f"{method}[{config}]"
        arm = arms.get(label)
        if arm is None:
            continue
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            res = pool.submit(_memory_child, case, label).result()
        note = ("faiss's own C++ buffers are not seen by tracemalloc (the RSS delta sees them)"
                if "faiss" in label else
                "numba and the compiled kernel imported before the call (see the import rows)"
                if uses_numba(arm) else "")
        rows.append(dict(case=case.name, method=method, config=config, notes=note, **res))
    return rows


_IMPORT_PROBE = """
import sys, time
t0 = time.perf_counter()
{statement}
wall = time.perf_counter() - t0
rss = anon = 0.0
with open("/proc/self/status") as fh:
    for line in fh:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("RssAnon:"):
            anon = int(line.split()[1]) / 1024
print(wall, "torch" in sys.modules, rss, anon)
"""


def import_rows(repeats: int) -> list[dict]:
    """Import time of the metric (and of torch) in fresh processes, statements interleaved."""
    times = {name: [] for name in IMPORT_STATEMENTS}
    seen = {}
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for rnd in range(repeats + 1):  # the first run of each warms the file cache: not counted
        for name, statement in IMPORT_STATEMENTS.items():
            out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE.format(statement=statement)],
                                 check=True, capture_output=True, text=True, env=env, cwd=REPO)
            wall, torch_imported, rss, anon = out.stdout.split()
            if rnd:
                times[name].append(float(wall))
            seen[name] = (torch_imported == "True", float(rss), float(anon))
    rows = []
    for name, walls in times.items():
        rows.append(dict(case="import", method=name, config=f"{repeats} fresh processes",
                         wall_s_cold=statistics.median(walls), torch_imported=seen[name][0],
                         rss_before_mib=seen[name][1],
                         notes=f"median of {repeats}; min {min(walls):.3f} s, max "
                               f"{max(walls):.3f} s; RSS after the import, "
                               f"{seen[name][2]:.0f} MiB of it anonymous (the rest: mapped "
                               "files, shared libraries)"))
    return rows


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _s(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _ratio(r: dict) -> str:
    return (f"{r['ratio_vs_best_faiss']:.3f} ({r['ratio_round_min']:.2f}-"
            f"{r['ratio_round_max']:.2f})")


def markdown(rows: list[dict], memory: list[dict], infos: dict, args, env: dict) -> str:
    from brcd_lib.metrics import metric_convention

    threads = ", ".join(str(t) for t in faiss_threads())
    lines = [
        "# Retrieval metric benchmark", "",
        f"Generated by `benchmarks/bench_retrieval.py` ({env['command']}) at commit "
        f"{env['commit']} on {env['machine']}; {env['versions']}. Started {env['started']}, "
        f"{env['elapsed']:.0f} s in all; load average (1/5/15 min) {env['load_start']} at the "
        f"start and {env['load_end']} at the end. The machine is shared with other jobs: the "
        "1-minute load before every round is in the tables (and per round in `retrieval.csv`).",
        "",
        f"Method: per case, one untimed warm-up round, then {args.repeats} interleaved rounds "
        "(every arm once per round, order rotated). Each arm is timed end to end. faiss = "
        "`IndexBinaryFlat` index + add + search + the kit's AP of the returned ids, on "
        f"{threads} OpenMP threads in both exact modes (heap = `use_heap=True`, counting = "
        "`use_heap=False`), given the codes already packed; its fastest configuration by median "
        "is the baseline. `map_at_k` default call = `map_at_k(q, d, q_labels, d_labels, k)` on "
        "float32 codes (checks and packing included); packed = `map_at_k(..., packed=True)` on "
        "the uint8 codes. ratio = median / median of the best faiss configuration; in brackets "
        "the range over the rounds of (arm's time / fastest faiss configuration of that round). "
        "Exactness: every arm against a per-query stable-argsort reference written in the "
        f"benchmark (|diff| <= {EXACT_TOL:g}; faiss arms and the per-query AP of the default and "
        "packed calls query by query, the other arms by their mean).", "",
        f"Data: random codes (the ties case: drawn from {TIES_DISTINCT} distinct codes); labels "
        + "; ".join(f"{name} = " + (f"{c} class ids" if not p else
                                    f"{c} classes, each on with probability {p}")
                    for name, (c, p) in LABEL_SETS.items()) + ".", "",
        f"Convention: {metric_convention}", "",
        "## Summary", "",
        "| case | best faiss (baseline) | faiss s | default call +-1 numpy: s, ratio (rounds) "
        "| +-1 torch: ratio (rounds) | 0/1 numpy: ratio (rounds) | packed: s, ratio (rounds) "
        "| packed, 1 thread: ratio | backend=faiss: ratio | backend=numpy: ratio | exact "
        "| 1-min load over the rounds |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    by_case: dict[str, list[dict]] = {}
    for r in rows:
        by_case.setdefault(r["case"], []).append(r)
    for name, rs in by_case.items():
        arm = {r["config"]: r for r in rs}
        best = next(r for r in rs if r["baseline"])
        loads = infos[name]["loads"]
        default = arm[DEFAULT_CALL]
        torch_arm = arm.get("default call, float32 +-1 torch")
        lines.append(
            f"| {name} | {best['config']} | {best['median_s']:.3f} | "
            f"{default['median_s']:.3f}, **{_ratio(default)}** | "
            f"{_ratio(torch_arm) if torch_arm else 'n/a'} | "
            f"{_ratio(arm['default call, float32 0/1 numpy'])} | "
            f"{arm['packed=True']['median_s']:.3f}, {_ratio(arm['packed=True'])} | "
            f"{arm['packed=True, threads=1']['ratio_vs_best_faiss']:.3f} | "
            f"{arm['packed=True, backend=faiss']['ratio_vs_best_faiss']:.3f} | "
            f"{arm['packed=True, backend=numpy']['ratio_vs_best_faiss']:.3f} | "
            f"{all(r['equal_to_reference'] for r in rs)} | {min(loads):.2f}-{max(loads):.2f} |")
    lines += ["", "ratio below 1: faster than the best faiss configuration. The reference's own "
              "time (one run, not interleaved): " + ", ".join(
                  f"{n} {infos[n]['reference_s']:.1f} s" for n in by_case) + ".", "",
              "## All arms", "",
              "| case | method | config | median s | min s | max s | CPU s (median) | "
              "faiss search s | ratio vs best faiss | per-round ratio min-max | mAP | "
              "max abs diff vs reference |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        mark = " (baseline)" if r["baseline"] else ""
        lines.append(
            f"| {r['case']} | {r['method']} | {r['config']}{mark} | {r['median_s']:.3f} | "
            f"{r['min_s']:.3f} | {r['max_s']:.3f} | {r['cpu_median_s']:.3f} | "
            f"{_s(r['search_median_s'])} | {r['ratio_vs_best_faiss']:.3f} | "
            f"{r['ratio_round_min']:.2f}-{r['ratio_round_max']:.2f} | {r['map']:.6f} | "
            f"{r['max_abs_diff_vs_reference']:.1e} |")
    calls = [m for m in memory if m["case"] != "import"]
    if calls:
        lines += ["", "## Memory of one call (fresh process per row)", "",
                  "RSS before = the process just before the call (interpreter, the imports the "
                  "arm needs, the inputs); call peak = peak RSS during the call (VmHWM reset just "
                  "before it) minus RSS before; process peak = the process's peak RSS over its "
                  "life; tracemalloc = NumPy/Python allocations during the call; torch = whether "
                  "torch was imported at the end. The cold call's wall time is for reference "
                  "only.", "",
                  "| case | method | config | inputs MiB | RSS before MiB | call peak MiB | "
                  "process peak MiB | tracemalloc MiB | torch imported | cold call s | notes |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|---:|---|"]
        for m in calls:
            lines.append(f"| {m['case']} | {m['method']} | {m['config']} | "
                         f"{m['inputs_mib']:.1f} | {m['rss_before_mib']:.0f} | "
                         f"**{m['rss_peak_delta_mib']:.1f}** | {m['process_peak_rss_mib']:.0f} | "
                         f"{m['tracemalloc_peak_mib']:.1f} | {m['torch_imported']} | "
                         f"{m['wall_s_cold']:.3f} | {m['notes']} |")
    imports = [m for m in memory if m["case"] == "import"]
    if imports:
        lines += ["", "## Import time (fresh processes, interleaved)", "",
                  "| statement | median s | torch imported | RSS after MiB | notes |",
                  "|---|---:|---|---:|---|"]
        for m in imports:
            lines.append(f"| `{m['method']}` | {m['wall_s_cold']:.3f} | {m['torch_imported']} | "
                         f"{m['rss_before_mib']:.0f} | {m['notes']} |")
    return "\n".join(lines) + "\n"


def git_commit() -> str:
    """HEAD of the repository this script lives in, with ``+dirty`` when tracked files differ."""
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

    versions = f"python {platform.python_version()}, numpy {np.__version__}"
    if torch_available():
        import torch

        versions += f", torch {torch.__version__}"
    return dict(machine=f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()})",
                versions=versions + f", faiss {faiss.__version__}", commit=git_commit())


# ---------------------------------------------------------------------------------------------
# an earlier run next to this one
# ---------------------------------------------------------------------------------------------


BEFORE_HEADING = "## Against an earlier run"


def read_csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def before_after(rows: list[dict], before: list[dict], before_path: str) -> str:
    """Markdown: both call paths' ratios in an earlier run (``--before``) and in this one."""
    def index(rs):
        return {(r["case"], r["config"]): r for r in rs}

    def ratio(r):
        return (f"{float(r['ratio_vs_best_faiss']):.3f} ({float(r['ratio_round_min']):.2f}-"
                f"{float(r['ratio_round_max']):.2f})")

    def load(r):
        vals = [float(v) for v in str(r["load_1min_rounds"]).split(";") if v]
        return f"{min(vals):.1f}-{max(vals):.1f}" if vals else "n/a"

    now, old = index(rows), index(before)
    lines = [BEFORE_HEADING, "",
             f"The same cases in `{before_path}` (the run before this one) and here. ratio = "
             "median / median of that run's best faiss configuration, in brackets the range of "
             "the per-round ratios. CPU s = median process CPU time of the 1-thread arms: the "
             "work of one call, which the machine's load moves less than the wall time.", "",
             "| case | default call: before | default call: now | packed: before | packed: now "
             "| CPU s, packed 1 thread: before -> now | CPU s, faiss counting 1 thread: before "
             "-> now | 1-min load: before / now |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for case in dict.fromkeys(r["case"] for r in rows):
        keys = [(case, DEFAULT_CALL), (case, "packed=True"), (case, "packed=True, threads=1"),
                (case, "counting, 1 thread")]
        if not all(k in old and k in now for k in keys):
            continue
        cpu = [f"{float(old[k]['cpu_median_s']):.3f} -> {float(now[k]['cpu_median_s']):.3f}"
               for k in keys[2:]]
        lines.append(f"| {case} | {ratio(old[keys[0]])} | **{ratio(now[keys[0]])}** | "
                     f"{ratio(old[keys[1]])} | {ratio(now[keys[1]])} | {cpu[0]} | {cpu[1]} | "
                     f"{load(old[keys[0]])} / {load(now[keys[0]])} |")
    return "\n".join(lines) + "\n"


def with_section(text: str, section: str) -> str:
    """``text`` (retrieval.md) with its before/after section replaced by ``section``, or
    ``section`` put before "## All arms" (at the end when there is none)."""
    head, sep, tail = text.partition(BEFORE_HEADING)
    if sep:  # drop the old section up to the next heading
        rest = tail.split("\n## ", 1)
        return head + section + (("\n## " + rest[1]) if len(rest) > 1 else "")
    anchor = text.find("\n## All arms")
    if anchor < 0:
        return text.rstrip("\n") + "\n\n" + section
    return text[:anchor].rstrip("\n") + "\n\n" + section + text[anchor:]


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    p.add_argument("--labels", nargs="+", default=["single", "multi"],
                   choices=["single", "multi"])
    p.add_argument("--n-query", type=int, default=5000)
    p.add_argument("--n-db", type=int, default=50000)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--no-extra", action="store_true",
                   help="leave out the 80-label (K = 5 x --k) and the exact-ties cases")
    p.add_argument("--repeats", type=int, default=5, help="timed interleaved rounds per case")
    p.add_argument("--large-db", type=int, default=1_000_000,
                   help="database size of the large 64-bit single-label case (0: skip it)")
    p.add_argument("--large-queries", type=int, default=1000)
    p.add_argument("--ref-queries-64", type=int, default=0,
                   help="kept for benchmarks/run.py; no effect (the reference checks every query)")
    p.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory runs")
    p.add_argument("--import-repeats", type=int, default=5,
                   help="fresh processes per import statement (0: skip)")
    p.add_argument("--large-only", action="store_true", help="run only the large case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=REPO / "results" / "benchmarks")
    p.add_argument("--before", type=Path, default=None,
                   help="retrieval.csv of an earlier run: retrieval.md then sets both runs' "
                        "ratios side by side")
    p.add_argument("--compare-only", action="store_true",
                   help="time nothing: add the --before section to <out-dir>/retrieval.md from "
                        "<out-dir>/retrieval.csv")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    p = get_args_parser()
    args = p.parse_args(argv)
    if any(b % 8 for b in args.bits):
        p.error("--bits must be multiples of 8 (faiss IndexBinaryFlat works on bytes)")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.compare_only and args.before is None:
        p.error("--compare-only needs --before <earlier retrieval.csv>")
    if args.before is not None and not args.before.is_file():
        p.error(f"--before {args.before}: no such file (give the retrieval.csv of an earlier "
                "run)")
    return args


def cases_of(args) -> list[Case]:
    cases = []
    if not args.large_only:
        cases = [Case(args.n_query, args.n_db, bits, labels, args.k, args.seed + bits)
                 for bits in args.bits for labels in args.labels]
        if not args.no_extra:
            cases += [Case(args.n_query, args.n_db, 64, "multi80", 5 * args.k, args.seed + 80),
                      Case(args.n_query, args.n_db, 32, "single", args.k, args.seed + 33,
                           distinct=TIES_DISTINCT)]
    if args.large_db > 0:
        cases.append(Case(args.large_queries, args.large_db, 64, "single", args.k, args.seed + 1))
    return cases


def main(argv=None) -> list[dict]:
    from benchmarks.run import csv_text
    from brcd_lib.io import atomic_write_text

    args = parse_args(argv)
    if args.compare_only:
        return compare_only(args)
    t_start = time.perf_counter()
    env = dict(environment(), started=time.strftime("%Y-%m-%d %H:%M:%S"),
               load_start=load_average(),
               command=command_line("benchmarks/bench_retrieval.py",
                                            list(argv if argv is not None else sys.argv[1:]),
                                            ("--out-dir", "--before")))
    rows, memory, infos = [], [], {}
    for case in cases_of(args):
        print(f"== {case.name}", flush=True)
        case_rows, info = time_case(case, args)
        rows += case_rows
        default = next(r for r in case_rows if r["config"] == DEFAULT_CALL)
        print(f"  {case.name}: best faiss {info['best']} {info['best_median']:.3f} s; default "
              f"call {default['median_s']:.3f} s; ratio {_ratio(default)}", flush=True)
        infos[case.name] = info
        if not args.no_memory:
            memory += memory_rows(case, info["best"], large=case.n_db > args.n_db)
    if args.import_repeats > 0:
        memory += import_rows(args.import_repeats)
    env.update(load_end=load_average(), elapsed=time.perf_counter() - t_start)
    text = markdown(rows, memory, infos, args, env)
    cell_rows = [{f: _cell(r.get(f)) for f in FIELDS} for r in rows]
    if args.before is not None:
        text = with_section(text, before_after(cell_rows, read_csv_rows(args.before),
                                               shown(args.before)))
    atomic_write_text(args.out_dir / "retrieval.csv", csv_text(cell_rows, FIELDS))
    if memory:
        mem_rows = [{f: _cell(r.get(f)) for f in MEMORY_FIELDS} for r in memory]
        atomic_write_text(args.out_dir / "retrieval.memory.csv", csv_text(mem_rows, MEMORY_FIELDS))
    atomic_write_text(args.out_dir / "retrieval.md", text)
    print(text)
    return rows


def compare_only(args) -> list[dict]:
    """``--compare-only``: the before/after section of an existing retrieval.md."""
    from brcd_lib.io import atomic_write_text

    md_path = args.out_dir / "retrieval.md"
    rows = read_csv_rows(args.out_dir / "retrieval.csv")
    section = before_after(rows, read_csv_rows(args.before), shown(args.before))
    atomic_write_text(md_path, with_section(md_path.read_text(encoding="utf-8"), section))
    print(section)
    return rows


if __name__ == "__main__":
    main()

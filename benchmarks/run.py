"""Regenerate every benchmark table in ``results/benchmarks/`` (CSV + Markdown, written atomically).

    python -m benchmarks.run                     # all benchmarks, full settings
    python -m benchmarks.run --quick             # a fast subset, written to results/benchmarks/quick/
    python -m benchmarks.run --only latency      # one benchmark (repeat --only for several)

Benchmarks (name -> module, each with ``get_args_parser()`` / ``main(argv)``):

* ``profiles``  wall time of each profile's notebooks vs its budget (reads ``results/*/run_log.json``)
* ``latency``   parameters, FLOPs, query latency and throughput of teachers vs students
* ``gpu_check`` the paper profile's GPU path measured (backbones, online banks, augmentation,
  head steps alone and in aggregate) and the grid's time; a CPU dry run without CUDA
* ``gpu_estimate`` the paper grid's time: forward passes x seconds per image (CPU measured, GPU
  measured on CUDA, read from gpu_check.json, or issue #29's H200 figures)
* ``cache``     cached vs uncached student training: per epoch and end to end, and mAP
* ``retrieval`` exact mAP@K vs a NumPy loop and faiss (``bench_retrieval.py``)
* ``executors`` a grid's wall time in one process, through ``local`` worker processes and
  through a Dask ``LocalCluster`` (``bench_executors.py``)
* ``first_output`` seconds from each notebook cell's start to its first output (smoke, fresh
  kernels, cold cache): no cell may stay silent longer than 2 s

Every number is measured against a baseline of the same run (ratios), never against a constant:
the CPU is shared, so absolute times move with the machine's load, which each CSV records.
This module also holds the small helpers the benchmark scripts share (output, machine notes).
"""
from __future__ import annotations

import argparse
import csv
import importlib
import io
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_OUT = REPO / "results" / "benchmarks"

# name -> (module, extra argv for --quick). Order = the order ``run`` executes them in.
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "profiles": ("benchmarks.bench_profiles", []),
    "latency": ("benchmarks.bench_latency", ["--quick"]),
    "gpu_check": ("benchmarks.gpu_check", ["--backbones", "resnet18"]),
    "gpu_estimate": ("benchmarks.bench_gpu_estimate", ["--quick"]),  # reads latency.csv, gpu_check
    "cache": ("benchmarks.bench_cache", ["--quick"]),
    "retrieval": ("benchmarks.bench_retrieval",
                  ["--bits", "64", "--n-query", "500", "--n-db", "5000", "--k", "100",
                   "--ref-queries-64", "0", "--repeats", "1", "--large-db", "0"]),
    "executors": ("benchmarks.bench_executors", ["--repeats", "1"]),
    "first_output": ("benchmarks.bench_first_output", ["--only", "01", "02"]),
}


# ---------------------------------------------------------------------------------------------
# helpers shared by the benchmark scripts
# ---------------------------------------------------------------------------------------------
def machine_notes(threads: int | None = None) -> str:
    """CPU, thread count and load average now (the benchmarks share the CPU with other jobs)."""
    import torch

    try:
        load = "load average {:.2f} / {:.2f} / {:.2f} (1/5/15 min)".format(*os.getloadavg())
    except OSError:
        load = "load average unavailable"
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} on "
            f"{threads or torch.get_num_threads()} threads, {load}")


def csv_text(rows: Sequence[dict], fields: Sequence[str]) -> str:
    """CSV of ``rows`` with the columns ``fields`` (floats with 6 significant digits)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n",
                            extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                         for k, v in ((f, row.get(f, "")) for f in fields)})
    return buf.getvalue()


def markdown_table(rows: Sequence[dict], fields: Sequence[str],
                   formats: dict[str, str] | None = None) -> str:
    """A Markdown table of ``rows`` (``formats`` maps a column to a format spec such as ``.3f``)."""
    formats = formats or {}

    def cell(field: str, value: Any) -> str:
        if value is None or value == "":
            return "n/a"
        if isinstance(value, float):
            return format(value, formats.get(field, ".4g"))
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    lines += ["| " + " | ".join(cell(f, r.get(f)) for f in fields) + " |" for r in rows]
    return "\n".join(lines)


def write_outputs(out_dir: str | os.PathLike, stem: str, rows: Sequence[dict],
                  fields: Sequence[str], markdown: str) -> tuple[Path, Path]:
    """Write ``<out_dir>/<stem>.csv`` and ``<stem>.md`` atomically; returns both paths."""
    from brcd_lib.io import atomic_write_text

    out = Path(out_dir)
    csv_path = atomic_write_text(out / f"{stem}.csv", csv_text(rows, fields))
    md_path = atomic_write_text(out / f"{stem}.md", markdown if markdown.endswith("\n")
                                else markdown + "\n")
    return csv_path, md_path


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------
def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Regenerate results/benchmarks (all benchmarks).")
    p.add_argument("--quick", action="store_true",
                   help="a fast subset of each benchmark, written to <out-dir>/quick/ so the full "
                        "tables are not overwritten")
    p.add_argument("--only", action="append", choices=list(BENCHMARKS), default=None,
                   metavar="NAME", help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    p.add_argument("--skip", action="append", choices=list(BENCHMARKS), default=[], metavar="NAME",
                   help="leave this benchmark out (repeatable)")
    p.add_argument("--out-dir", type=Path, default=None,
                   help=f"output folder (default {DEFAULT_OUT.relative_to(REPO)}, "
                        "or its quick/ subfolder with --quick)")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Run the selected benchmarks in order; returns {name: wall seconds}."""
    args = get_args_parser().parse_args(argv)
    out_dir = args.out_dir or (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)
    names = [n for n in (args.only or BENCHMARKS) if n not in args.skip]
    if not names:
        raise SystemExit("nothing to run: every benchmark was excluded by --skip; "
                         "drop a --skip or pass --only NAME")
    walls: dict[str, float] = {}
    for name in names:
        module_name, quick_argv = BENCHMARKS[name]
        module = importlib.import_module(module_name)
        sub_argv = (list(quick_argv) if args.quick else []) + ["--out-dir", str(out_dir)]
        print(f"== {name}: {module_name} {' '.join(sub_argv)}", flush=True)
        t0 = time.perf_counter()
        module.main(sub_argv)
        walls[name] = time.perf_counter() - t0
        print(f"== {name} done in {walls[name]:.1f} s", flush=True)
    print("wall seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in walls.items()))
    return walls


if __name__ == "__main__":
    main()

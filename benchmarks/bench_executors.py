"""A grid's wall time through each executor: the main grid of a profile (default smoke) trained by
one process, by ``local`` worker processes and by a Dask ``LocalCluster`` (real scheduler and
worker processes), with the same number of workers.

    python -m benchmarks.bench_executors                      # smoke, 2 workers, 2 repeats
    python -m benchmarks.bench_executors --repeats 3 --workers 2
    python -m benchmarks.bench_executors --set student_train.epochs=300 --stem executors_long

What is timed: ``studies.main_grid(exp)`` in a fresh Python process (so each arm pays its own
start: the process pool's spawned workers, or the Dask scheduler and workers), from
``Experiment(...)`` to the returned rows, with the grid's shared inputs (SimCLR backbones,
teachers, features, view banks) already in the cache and its student runs removed before every
arm: the students are trained, everything else is loaded. Arms are interleaved (serial, local,
dask, serial, local, dask, ...) and each is reported as a ratio to the one-process grid of the
same repeat, since the CPU is shared and absolute times move with its load (recorded per row).
Writes ``executors.csv`` / ``executors.md`` to ``--out-dir`` (default ``results/benchmarks``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.run import DEFAULT_OUT, machine_notes, markdown_table, write_outputs  # noqa: E402

# arm -> (executor, workers: None = --workers)
ARMS = {"one process": ("local", 1), "local": ("local", None), "dask": ("dask", None)}
FIELDS = ("repeat", "arm", "executor", "workers", "wall_s", "ratio_to_one_process",
          "student_rows", "load_1min")


def time_grid(profile: str, cache_dir: str, workers: int, executor: str,
              sets: Sequence[str] = ()) -> dict:
    """Wall seconds of ``main_grid`` of ``profile`` (changed by the ``--set`` assignments
    ``sets``) in this process, and its student rows."""
    from brcd_lib.experiments import studies
    from brcd_lib.experiments.experiment import Experiment
    from brcd_lib.experiments.profiles import get_profile
    from brcd_lib.experiments.train import override_profile
    from brcd_lib.training import executors

    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    exp = Experiment(override_profile(get_profile(profile), list(sets)), cache_dir=cache_dir,
                     progress=False, workers=workers, executor=executor)
    rows = studies.main_grid(exp)
    wall = time.perf_counter() - t0
    executors.close_clients()
    students = rows[~rows["method"].isin(studies.non_students())]
    return {"wall_s": wall, "student_rows": int((students["status"] == "ok").sum()),
            "workers": exp.workers}


def _arm(profile: str, cache_dir: str, workers: int, executor: str, sets: Sequence[str]) -> dict:
    """:func:`time_grid` in a fresh Python process."""
    env = {**os.environ, "BRCD_THREADS": "1"}
    env.pop("BRCD_WORKERS", None)
    env.pop("BRCD_EXECUTOR", None)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_executors", "--one", profile,
                           cache_dir, str(workers), executor, json.dumps(list(sets))],
                          cwd=REPO, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the {executor} arm failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _clear_students(cache_dir: str, profile: str) -> None:
    runs = Path(cache_dir) / "runs" / profile
    for d in runs.glob("student-*"):
        shutil.rmtree(d)
    shutil.rmtree(runs / "logs", ignore_errors=True)


def measure(args) -> list[dict]:
    cache = args.cache_dir or tempfile.mkdtemp(prefix="bench-executors-")
    print(f"warming the shared inputs in {cache} (one process)", flush=True)
    _arm(args.profile, cache, 1, "local", args.set)
    rows = []
    for repeat in range(1, args.repeats + 1):
        base = None
        for arm, (executor, workers) in ARMS.items():
            _clear_students(cache, args.profile)
            load = os.getloadavg()[0]
            got = _arm(args.profile, cache, workers or args.workers, executor, args.set)
            base = got["wall_s"] if arm == "one process" else base
            rows.append({"repeat": repeat, "arm": arm, "executor": executor,
                         "workers": got["workers"], "wall_s": got["wall_s"],
                         "ratio_to_one_process": got["wall_s"] / base,
                         "student_rows": got["student_rows"], "load_1min": load})
            print(f"repeat {repeat} {arm}: {got['wall_s']:.1f} s ({got['student_rows']} student "
                  f"rows ok), load {load:.1f}", flush=True)
    if not args.cache_dir:
        shutil.rmtree(cache, ignore_errors=True)
    return rows


def markdown(rows: list[dict], args, elapsed: float) -> str:
    summary = []
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        summary.append({"arm": arm, "executor": mine[0]["executor"], "workers": mine[0]["workers"],
                        "median wall s": statistics.median(r["wall_s"] for r in mine),
                        "median ratio to one process": statistics.median(
                            r["ratio_to_one_process"] for r in mine)})
    return "\n".join([
        f"# A grid through each executor (profile {args.profile})", "",
        f"`python -m benchmarks.bench_executors --profile {args.profile} --workers {args.workers} "
        f"--repeats {args.repeats}{''.join(' --set ' + a for a in args.set)}` on "
        f"{machine_notes(1)} (the CPU is shared with other jobs: "
        "compare the ratios, not the seconds); total {:.0f} s.".format(elapsed), "",
        "`studies.main_grid` in a fresh process per arm, shared inputs cached, student runs "
        "trained; arms interleaved per repeat.", "",
        markdown_table(summary, list(summary[0]), {"median wall s": ".1f",
                                                   "median ratio to one process": ".2f"}), "",
        "Every arm:", "", markdown_table(rows, FIELDS, {"wall_s": ".1f",
                                                        "ratio_to_one_process": ".2f",
                                                        "load_1min": ".1f"}), ""])


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="smoke")
    p.add_argument("--workers", type=int, default=2, help="workers of the local and dask arms")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="change the profile as `python -m brcd_lib.train --set` does, e.g. "
                        "student_train.epochs=300 (longer runs)")
    p.add_argument("--stem", default="executors", help="output file names (default executors)")
    p.add_argument("--cache-dir", default=None, help="default: a temporary folder, removed after")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    p.add_argument("--one", nargs=5, metavar=("PROFILE", "CACHE", "WORKERS", "EXECUTOR", "SETS"),
                   help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = get_args_parser().parse_args(argv)
    if args.one:
        profile, cache, workers, executor, sets = args.one
        print(json.dumps(time_grid(profile, cache, int(workers), executor, json.loads(sets))))
        return []
    t0 = time.perf_counter()
    rows = measure(args)
    paths = write_outputs(args.out_dir, args.stem, rows, FIELDS,
                          markdown(rows, args, time.perf_counter() - t0))
    print("wrote " + ", ".join(str(p) for p in paths))
    return rows


if __name__ == "__main__":
    main()

"""Mutation-testing gate (`make mutation`): mutmut over the modules that decide the kit's numbers.

mutmut (``[tool.mutmut]`` in pyproject.toml) copies ``brcd_lib`` into ``mutants/``, mutates the
files named in ``only_mutate`` (operators, comparisons, constants, arguments, strings), records
which fast tests (``-m "not slow"``) call each function, and runs every mutant against only those
tests, stopping at the first failure. docs/testing.md says why mutmut and what its verdicts mean.

This script runs ``mutmut run`` (unless ``--no-run``), reads the verdicts mutmut stores next to the
mutated files (``mutants/**/*.py.meta``), and writes ``results/benchmarks/mutation.md`` and
``mutation.csv``: per module, the mutants made, killed, survived, timed out and with no covering
test; the survivors, each with its diff and, where the mutant was judged equivalent (it changes no
output), the reason from ``benchmarks/mutation_equivalents.toml``. The gate: at least 90 % of the
non-equivalent mutants killed in every module, 100 % in the modules named in ``STRICT``; the exit
status is 1 when a module misses its target (``--no-gate`` reports only).

    make mutation                                   # run + report + gate (about an hour, 2 cores)
    python -m benchmarks.mutation --no-run          # report the last run again
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from brcd_lib.provenance import commit_of

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - the kit requires 3.11
    tomllib = None

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "benchmarks" / "mutation_equivalents.toml"
# Modules whose target is every non-equivalent mutant killed (issue #30).
STRICT = ("brcd_lib.metrics", "brcd_lib.distill.brcd", "brcd_lib.reporting.stats")
TARGET = 0.90

# mutmut's exit codes -> verdicts (mutmut.stats.status_by_exit_code, restated so that the report
# can be read without mutmut installed; anything else is "suspicious").
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          35: "suspicious", 36: "timeout", 37: "killed", -24: "timeout", 24: "timeout",
          152: "timeout", 255: "timeout", -11: "segfault", -9: "segfault", None: "not checked"}
COLUMNS = ("killed", "survived", "no tests", "timeout", "segfault", "suspicious", "skipped",
           "not checked")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-run", action="store_true", help="report the verdicts of the last run")
    p.add_argument("--max-children", type=int, default=os.cpu_count() or 1,
                   help="parallel mutant workers (default: the CPU count)")
    p.add_argument("--mutants", default=str(ROOT / "mutants"), help="mutmut's working folder")
    p.add_argument("--out-dir", default=str(ROOT / "results" / "benchmarks"))
    p.add_argument("--keep", action="store_true",
                   help="keep mutants/ and mutmut's stored verdicts (default: a fresh run)")
    p.add_argument("--rerun", nargs="+", metavar="PATTERN",
                   help="run again only the mutants matching these names or fnmatch patterns "
                        "(e.g. 'brcd_lib.reporting.stats.*'), keeping every other stored verdict; "
                        "recorded in mutation.run.json under 'reruns'")
    p.add_argument("--no-gate", action="store_true", help="exit 0 whatever the kill rates")
    p.add_argument("--diffs", action="store_true",
                   help="include each survivor's diff (calls `mutmut show`, a second per mutant)")
    return p


def module_of(mutant: str) -> str:
    """``brcd_lib.reporting.claims.x_fn__mutmut_3`` -> ``brcd_lib.reporting.claims``."""
    head = mutant.split("__mutmut_")[0]
    parts = head.split(".")
    for i, part in enumerate(parts):
        if part.startswith("x_") or part.startswith("xǁ"):
            return ".".join(parts[:i])
    return ".".join(parts[:-1])


def read_verdicts(mutants_dir: str | Path) -> dict[str, tuple[str, float | None]]:
    """Mutant name -> (verdict, seconds) from mutmut's ``*.py.meta`` files."""
    out: dict[str, tuple[str, float | None]] = {}
    metas = sorted(Path(mutants_dir).rglob("*.py.meta"))
    if not metas:
        raise SystemExit(f"error: no mutmut results under {mutants_dir} "
                         "(run `make mutation`, or drop --no-run)")
    for meta in metas:
        data = json.loads(meta.read_text())
        durations = data.get("durations_by_key", {})
        for name, code in data.get("exit_code_by_key", {}).items():
            out[name] = (STATUS.get(code, "suspicious"), durations.get(name))
    return out


def read_equivalents(path: str | Path | None = None) -> dict[str, str]:
    """Mutant name -> why it changes no output (``[equivalent]`` table of the TOML file,
    default :data:`EQUIVALENTS`)."""
    path = Path(path or EQUIVALENTS)
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text())
    table = data.get("equivalent", {})
    bad = [k for k, v in table.items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise SystemExit(f"error: {path}: equivalent mutants need a reason (a non-empty string): "
                         f"{', '.join(sorted(bad))}")
    return dict(table)


def tally(verdicts: dict[str, tuple[str, float | None]],
          equivalents: dict[str, str]) -> list[dict]:
    """One row per module: counts per verdict, equivalents, kill rate and the gate."""
    by_module: dict[str, Counter] = {}
    for name, (verdict, _) in verdicts.items():
        c = by_module.setdefault(module_of(name), Counter())
        if verdict == "survived" and name in equivalents:
            c["equivalent"] += 1
        else:
            c[verdict] += 1
        c["mutants"] += 1
    rows = []
    for module in sorted(by_module):
        c = by_module[module]
        judged = c["mutants"] - c["equivalent"] - c["not checked"] - c["skipped"]
        rate = c["killed"] / judged if judged else None
        target = 1.0 if module in STRICT else TARGET
        rows.append({"module": module, "mutants": c["mutants"],
                     **{k: c[k] for k in COLUMNS}, "equivalent": c["equivalent"],
                     "killed of non-equivalent": rate, "target": target,
                     "met": rate is not None and rate >= target - 1e-12})
    return rows


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def render(rows: list[dict], verdicts, equivalents, *, header: dict, diffs: dict[str, str]) -> str:
    lines = ["# Mutation testing", ""]
    for k, v in header.items():
        lines += [f"- {k}:", *(f"  - {x}" for x in v)] if isinstance(v, list) else [f"- {k}: {v}"]
    lines += ["", "Generated by `make mutation` (`python -m benchmarks.mutation`); what the verdicts "
              "mean and how the gate is set: [docs/testing.md](../../docs/testing.md#mutation-testing).",
              "", "## Per module", ""]
    cols = ["module", "mutants", *COLUMNS, "equivalent", "killed of non-equivalent", "target", "met"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" if c == "module" else "--:" for c in cols) + "|")
    for r in rows:
        cells = [r["module"], *(str(r[c]) for c in ["mutants", *COLUMNS, "equivalent"]),
                 _pct(r["killed of non-equivalent"]), _pct(r["target"]),
                 "yes" if r["met"] else "**no**"]
        lines.append("| " + " | ".join(cells) + " |")
    total = Counter()
    for r in rows:
        for c in ["mutants", *COLUMNS, "equivalent"]:
            total[c] += r[c]
    lines += ["", f"All modules: {total['mutants']} mutants, {total['killed']} killed, "
              f"{total['survived']} survived, {total['no tests']} with no covering fast test, "
              f"{total['timeout']} timed out, {total['equivalent']} judged equivalent.", ""]
    left = sorted(n for n, (v, _) in verdicts.items()
                  if v in ("survived", "no tests", "suspicious", "timeout", "segfault"))
    lines += ["## Survivors", "",
              "Every mutant not killed, by module: judged equivalent (with the reason) or still "
              "open (a test is missing). `mutmut show <name>` prints a mutant's diff.", ""]
    for module in sorted({module_of(n) for n in left}):
        names = [n for n in left if module_of(n) == module]
        lines += [f"### {module} ({len(names)})", ""]
        for n in names:
            verdict = verdicts[n][0]
            why = equivalents.get(n)
            status = f"equivalent: {why}" if why else f"{verdict}, open"
            lines.append(f"- `{n.split('.')[-1]}`: {status}")
            if n in diffs:
                lines += ["  ```diff", *("  " + d for d in diffs[n].splitlines()), "  ```"]
        lines.append("")
    stale = sorted(set(equivalents) - set(verdicts))
    if stale:
        lines += ["## Equivalents that no longer exist", "",
                  *(f"- `{n}`" for n in stale), ""]
    killed = sorted(n for n in set(equivalents) & set(verdicts) if verdicts[n][0] == "killed")
    if killed:
        lines += ["## Declared equivalent but killed", "",
                  "A test kills these, so the declaration is wrong or names another mutant since "
                  "its function was edited (mutmut numbers mutants per function): remove or "
                  "correct it in benchmarks/mutation_equivalents.toml.", "",
                  *(f"- `{n}`" for n in killed), ""]
    return "\n".join(lines)


def _patterns(patterns: list[str]) -> str:
    """A rerun's patterns for the header: all of them when few, else the first three and a count
    (mutation.run.json keeps the full list)."""
    shown = [f"`{p}`" for p in patterns[:3]]
    if len(patterns) > 3:
        shown.append(f"... {len(patterns)} names and patterns in all (mutation.run.json)")
    return ", ".join(shown)


def _diff(name: str, mutants_dir: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=mutants_dir.parent,
                         capture_output=True, text=True)
    return out.stdout.strip()


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("mutmut")
    except Exception:  # noqa: BLE001 - mutmut not installed: report the last run anyway
        return "not installed"


def _stopped(entry: dict) -> str:
    """The suffix saying that a run recorded in mutation.run.json was stopped by hand."""
    return f"; stopped by hand before the end: {entry['stopped']}" if entry.get("stopped") else ""


def _mutmut_run(max_children: int, patterns: list[str]) -> tuple[int, float]:
    """``mutmut run`` (only ``patterns`` when given): its exit status and wall time (s)."""
    t0 = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children",
                         str(max_children), *patterns], cwd=ROOT).returncode
    return rc, round(time.perf_counter() - t0, 1)


def _failed(rc: int) -> int:
    """``mutmut run`` did not finish (e.g. a fast test fails before any mutant runs, "failed to
    collect stats"): no verdict is known, so no report is written and the committed one stays."""
    print(f"error: `mutmut run` exited with status {rc} before it finished (its output above "
          "names the cause, e.g. a fast test that fails on the unmutated code: run `make "
          "test-fast`); results/benchmarks/mutation.* are left as they were", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    mutants_dir = Path(args.mutants)
    header = {"report written at commit": commit_of(str(ROOT)), "tool": f"mutmut {_version()}",
              "Python": platform.python_version(), "CPUs": os.cpu_count()}
    run_log = Path(args.out_dir) / "mutation.run.json"
    if args.rerun:
        if not mutants_dir.exists() or not run_log.exists():
            raise SystemExit("error: --rerun needs a previous run (mutants/ and mutation.run.json); "
                             "run `make mutation` first")
        rc, wall = _mutmut_run(args.max_children, args.rerun)
        if rc != 0:
            return _failed(rc)
        last = json.loads(run_log.read_text())
        last.setdefault("reruns", []).append(
            {"patterns": args.rerun, "wall_s": wall, "mutmut_exit": rc, "commit": header["report written at commit"],
             "load_after": os.getloadavg()[0]})
        run_log.write_text(json.dumps(last, indent=1))
    elif not args.no_run:
        if not args.keep and mutants_dir.exists():
            shutil.rmtree(mutants_dir)
        rc, wall = _mutmut_run(args.max_children, [])
        if rc != 0:
            return _failed(rc)
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
        run_log.write_text(json.dumps({"wall_s": wall, "mutmut_exit": rc,
                                       "max_children": args.max_children,
                                       "load_after": os.getloadavg()[0],
                                       "commit": header["report written at commit"],
                                       **{k: v for k, v in header.items() if k != "report written at commit"}},
                                      indent=1))
    if run_log.exists():
        last = json.loads(run_log.read_text())
        header["wall time of `mutmut run`"] = (
            f"{last['wall_s']:.0f} s with {last['max_children']} workers (commit {last['commit']})"
            + _stopped(last))
        for r in last.get("reruns", []):
            header.setdefault("reruns (`--rerun`: only these mutants again, every other verdict "
                              "kept)", [])
            header["reruns (`--rerun`: only these mutants again, every other verdict kept)"].append(
                f"{_patterns(r['patterns'])}: {r['wall_s']:.0f} s (commit {r['commit']})"
                + _stopped(r))
    verdicts = read_verdicts(mutants_dir)
    checked = sum(v != "not checked" for v, _ in verdicts.values())
    header["mutants checked"] = (f"{checked} of {len(verdicts)}" + (
        "" if checked == len(verdicts) else " (the run was stopped before the end: the rest are "
        "'not checked' and count in no rate)"))
    equivalents = read_equivalents()
    rows = tally(verdicts, equivalents)
    diffs = {}
    if args.diffs:
        diffs = {n: _diff(n, mutants_dir) for n, (v, _) in verdicts.items()
                 if v != "killed" and n not in equivalents}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = render(rows, verdicts, equivalents, header=header, diffs=diffs)
    tmp = out / "mutation.md.tmp"
    tmp.write_text(text + "\n")
    os.replace(tmp, out / "mutation.md")
    import csv
    with open(out / "mutation.csv.tmp", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(out / "mutation.csv.tmp", out / "mutation.csv")
    missed = [r["module"] for r in rows if not r["met"]]
    print(f"wrote {out / 'mutation.md'}: {len(verdicts)} mutants, "
          f"{sum(r['killed'] for r in rows)} killed; below target: {', '.join(missed) or 'none'}")
    return 0 if args.no_gate or not missed else 1


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

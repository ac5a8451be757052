"""Mutation testing of the compiled ranking kernel, ``brcd_lib/hamming_topk.py`` (part of
``make mutation``).

mutmut cannot mutate it: its functions are compiled by numba from their source, and mutmut's
trampolines (a mutated function is reached through a dispatcher written in Python) cannot be
compiled. This script does the same job the plain way: it makes every mutant of the file from its
syntax tree (each comparison operator replaced by its neighbours, ``+`` <-> ``-``, ``*`` -> ``+``,
``//`` -> ``*``, augmented ``+=`` <-> ``-=``, each integer constant c -> c + 1 and, when c is not
zero, c - 1, ``min`` <-> ``max``, ``and`` <-> ``or``), writes it into a copy of the repository,
and runs the kernel's tests there (``tests/test_hamming_topk.py`` and the metric tests that rank
with it) in a fresh process, so numba compiles the mutant. A mutant is *killed* when the tests
fail (numba's bounds checks are on in those processes, so an index past an array is an
``IndexError``), *timeout* when they run past ``--timeout`` seconds (a loop that never ends),
*crashed* when the test process dies of a signal, *error* when pytest cannot run them (a mutant
that does not compile), *equivalent* when they pass and the mutant is declared in
:data:`EQUIVALENT` with the reason it changes no output, *survived* otherwise. Writes
``results/benchmarks/mutation_kernel.md`` and ``.csv``; exit status 1 when a mutant survives
(``--no-gate`` reports only).

    python -m benchmarks.mutation_kernel                 # every mutant (about 12 min, 2 cores)
    python -m benchmarks.mutation_kernel --list          # the mutants, without running them
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import csv
import difflib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from brcd_lib.provenance import commit_of

ROOT = Path(__file__).resolve().parent.parent
KERNEL = Path("brcd_lib") / "hamming_topk.py"
TESTS = ("tests/test_hamming_topk.py", "tests/test_metrics_fast.py", "tests/test_metrics.py")
COPY = ("brcd_lib", "tests", "pyproject.toml")

_COMPARE_SWAPS = {ast.Lt: (ast.LtE, ast.Gt), ast.LtE: (ast.Lt, ast.GtE), ast.Gt: (ast.GtE, ast.Lt),
                  ast.GtE: (ast.Gt, ast.LtE), ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,)}
_BINOP_SWAPS = {ast.Add: (ast.Sub,), ast.Sub: (ast.Add,), ast.Mult: (ast.Add,),
                ast.FloorDiv: (ast.Mult,), ast.BitXor: (ast.BitOr,)}
_NAME_SWAPS = {"min": "max", "max": "min"}

_SPEED_ONLY = ("changes only how many items are examined, never which are ranked: the first "
               "threshold is a guess that a second scan corrects")
# Mutants that change no output, by (function, original line, mutated line) -> why. Each is
# checked against the mutants made (tests/test_mutation_kernel.py), so a stale entry fails.
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("_ranked", "n_dist = th + 2", "n_dist = th + 3"):
        "one more counter than distances, never read",
    ("_ranked", "if dist[r, s] <= th:", "if dist[r, s] < th:"):
        "the items at the threshold need no counter: the start of a distance d counts only the "
        "items nearer than d, and d <= th",
    ("_ranked", "for d in range(1, n_dist):", "for d in range(2, n_dist):"):
        "start[1] already is the count of distance 0 (start[0] = 0 adds nothing)",
    ("_distances", "for j in range(1, width):", "for j in range(0, width):"):
        "the minimum taken over buf[0] once more",
    ("_first_threshold", "counts = np.zeros(code_length + 1, np.int64)",
     "counts = np.zeros(code_length + 2, np.int64)"):
        "one more counter than distances, never read",
    ("_first_threshold", "for t in range(code_length + 1):", "for t in range(code_length + 0):"):
        "the loop's last step returns code_length, and so does the line after the loop",
    ("_scan", "if _distances(q_words, r, db_words_t, t0, t1, buf) >= th:",
     "if _distances(q_words, r, db_words_t, t0, t1, buf) > th:"):
        "a tile whose nearest item is at the threshold is scanned, and nothing in it accepted",
    ("_scan", "hits += buf[j] < th", "hits += buf[j] <= th"):
        "the items at the threshold collected as hits are refused by the check before "
        "_accept",
    ("topk_rows", "n = db_words_t.shape[1]", "n = db_words_t.shape[0]"):
        "n is read only by the first threshold (a smaller n admits more items); " + _SPEED_ONLY,
    ("topk_rows", "hist = np.zeros((m, code_length + 2), np.int64)",
     "hist = np.zeros((m, code_length + 3), np.int64)"):
        "one more counter than thresholds, never read",
    ("topk_rows", "thr[r] = _first_threshold(q_words, r, db_sample_t, top, n, code_length, buf) "
     "+ 1", "thr[r] = _first_threshold(q_words, r, db_sample_t, top, n, code_length, buf) - 1"):
        _SPEED_ONLY,
    ("topk_rows", "thr[r] = _first_threshold(q_words, r, db_sample_t, top, n, code_length, buf) "
     "+ 1", "thr[r] = _first_threshold(q_words, r, db_sample_t, top, n, code_length, buf) + 0"):
        _SPEED_ONLY,
    ("topk_rows", "missed = np.flatnonzero(cum < top)", "missed = np.flatnonzero(cum <= top)"):
        "a query with exactly K items within its threshold is scanned again, to the same "
        "ranking; " + _SPEED_ONLY,
}


@dataclass(frozen=True)
class Mutant:
    number: int
    function: str
    line: int
    description: str
    source: str
    before: str = ""   # the changed line, stripped, as the original reads
    after: str = ""    # ... and as the mutant reads

    @property
    def equivalent(self) -> str | None:
        """Why this mutant changes no output, when it is declared in :data:`EQUIVALENT`."""
        return EQUIVALENT.get((self.function, self.before, self.after))


def _functions(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    return [(node.name, node) for node in tree.body if isinstance(node, ast.FunctionDef)]


def _changes(node: ast.AST) -> list[tuple[str, callable]]:
    """(description, apply) for each way of mutating ``node`` itself; apply() mutates in place
    and returns a function that undoes it."""
    out = []

    def setter(obj, attr, value, index=None):
        def apply():
            if index is None:
                old = getattr(obj, attr)
                setattr(obj, attr, value)
                return lambda: setattr(obj, attr, old)
            seq = getattr(obj, attr)
            old = seq[index]
            seq[index] = value
            return lambda: seq.__setitem__(index, old)
        return apply

    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for new in _COMPARE_SWAPS.get(type(op), ()):
                out.append((f"{type(op).__name__} -> {new.__name__}",
                            setter(node, "ops", new(), i)))
    elif isinstance(node, (ast.BinOp, ast.AugAssign)):
        for new in _BINOP_SWAPS.get(type(node.op), ()):
            out.append((f"{type(node.op).__name__} -> {new.__name__}",
                        setter(node, "op", new())))
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        out.append((f"{type(node.op).__name__} -> {new.__name__}", setter(node, "op", new())))
    elif (isinstance(node, ast.Constant) and isinstance(node.value, int)
          and not isinstance(node.value, bool)):
        out.append((f"{node.value} -> {node.value + 1}", setter(node, "value", node.value + 1)))
        if node.value != 0:
            out.append((f"{node.value} -> {node.value - 1}",
                        setter(node, "value", node.value - 1)))
    elif isinstance(node, ast.Name) and node.id in _NAME_SWAPS:
        out.append((f"{node.id} -> {_NAME_SWAPS[node.id]}",
                    setter(node, "id", _NAME_SWAPS[node.id])))
    return out


def mutants(source: str) -> list[Mutant]:
    """Every mutant of the module's function bodies (decorators and docstrings left alone)."""
    tree = ast.parse(source)
    original = ast.unparse(tree).splitlines()
    out = []
    for name, fn in _functions(tree):
        body = fn.body[1:] if (fn.body and isinstance(fn.body[0], ast.Expr)
                               and isinstance(fn.body[0].value, ast.Constant)) else fn.body
        for stmt in body:
            for node in ast.walk(stmt):
                for description, apply in _changes(node):
                    undo = apply()
                    text = ast.unparse(tree) + "\n"
                    undo()
                    changed = [(a.strip(), b.strip()) for a, b in zip(original, text.splitlines())
                               if a != b]
                    before, after = changed[0] if len(changed) == 1 else ("", "")
                    out.append(Mutant(len(out) + 1, name, getattr(node, "lineno", fn.lineno),
                                      description, text, before, after))
    return out


def _diff(original: str, mutant: str) -> str:
    lines = difflib.unified_diff(original.splitlines(), mutant.splitlines(), lineterm="", n=0)
    return "\n".join(line for line in lines if line[:1] in "+-" and line[:3] not in ("---",
                                                                                     "+++"))


def _workspace() -> Path:
    """A copy of what the kernel's tests need, in a temporary folder."""
    work = Path(tempfile.mkdtemp(prefix="brcd-kernel-mutants-"))
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, work / name)
    return work


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(res: subprocess.CompletedProcess) -> str:
    lines = (res.stdout + res.stderr).strip().splitlines()
    return lines[-1][:120].replace("|", "/") if lines else "no output"


def detected(verdict: str) -> bool:
    """A mutant is detected when its tests fail, time out, crash, or it does not compile (pytest
    exits 2 when the kernel cannot be imported). A clean pass is a survivor, or *equivalent*
    when the mutant is declared in :data:`EQUIVALENT`."""
    return verdict not in ("survived", "equivalent")


def run_one(mutant: Mutant | None, timeout: float) -> tuple[str, float]:
    """(verdict, seconds) of the tests on the mutant (None: on the original file)."""
    work = _workspace()
    try:
        plain = ast.unparse(ast.parse((ROOT / KERNEL).read_text())) + "\n"
        (work / KERNEL).write_text(plain if mutant is None else mutant.source)
        # bounds checks on: a mutant that indexes past an array fails with IndexError instead
        # of corrupting memory silently (or crashing, or not, by chance)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(work / ".numba"), NUMBA_BOUNDSCHECK="1",
                   PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", "-p",
               "no:cacheprovider", "-m", "not slow", *TESTS]
        t0 = time.perf_counter()
        try:
            res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.perf_counter() - t0
        wall = time.perf_counter() - t0
        if res.returncode == 0:
            return "survived", wall
        if res.returncode == 1:
            return "killed", wall
        if res.returncode < 0:  # no bounds checks in compiled code: a wrong index can crash
            return f"crashed ({_signal_name(-res.returncode)})", wall
        return f"error (exit {res.returncode}: {_last_line(res)})", wall
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(rows: list[dict], original: str, args, wall: float, baseline: tuple) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    found = sum(n for v, n in counts.items() if detected(v))
    lines = [
        "# Mutation testing of the compiled kernel (`brcd_lib/hamming_topk.py`)", "",
        f"Generated by `python -m benchmarks.mutation_kernel` at commit {commit_of(ROOT)} on "
        f"{platform.machine()} ({os.cpu_count()} CPUs), Python {platform.python_version()}; "
        f"{wall:.0f} s, {args.jobs} mutants at a time. Tests: {', '.join(TESTS)} (`-m 'not "
        f"slow' -x`), in a fresh process per mutant; timeout {args.timeout:g} s. The original "
        f"file passes them ({baseline[0]}, {baseline[1]:.1f} s).", "",
        f"**{len(rows)} mutants: {found} detected, {counts.get('equivalent', 0)} equivalent, "
        f"{counts.get('survived', 0)} survived.** "
        "Detected: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()) if detected(v))
        + ". A crash or an error is a detection: the mutant's tests could not pass (compiled "
        "code has no bounds checks, and a mutant that does not compile stops the test "
        "collection).", "",
        "| # | function | line | mutation | verdict | s |", "|---:|---|---:|---|---|---:|"]
    for r in rows:
        lines.append(f"| {r['number']} | `{r['function']}` | {r['line']} | {r['mutation']} | "
                     f"{r['verdict']} | {r['seconds']:.1f} |")
    for title, verdict in (("Survivors", "survived"), ("Equivalent (declared in "
                                                        "`EQUIVALENT`, with the reason)",
                                                        "equivalent")):
        chosen = [r for r in rows if r["verdict"] == verdict]
        if chosen:
            lines += ["", f"## {title}", ""]
        for r in chosen:
            lines += [f"### #{r['number']} `{r['function']}` line {r['line']}: {r['mutation']}",
                      ""] + ([r["reason"], ""] if r["reason"] else []) + [
                      "```diff", r["diff"], "```", ""]
    return "\n".join(lines) + "\n"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants at a time")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    p.add_argument("--list", action="store_true", help="print the mutants and stop")
    p.add_argument("--only", type=int, nargs="*", default=None, help="run these mutant numbers")
    p.add_argument("--out-dir", type=Path, default=ROOT / "results" / "benchmarks")
    p.add_argument("--no-gate", action="store_true", help="exit 0 even when a mutant survives")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    original = ast.unparse(ast.parse((ROOT / KERNEL).read_text())) + "\n"
    todo = mutants((ROOT / KERNEL).read_text())
    if args.only is not None:
        todo = [m for m in todo if m.number in set(args.only)]
    if args.list:
        for m in todo:
            print(f"{m.number:4d} {m.function}:{m.line} {m.description}")
        return 0
    t0 = time.perf_counter()
    baseline = run_one(None, args.timeout)
    if baseline[0] != "survived":
        print(f"error: the tests fail on the original {KERNEL} ({baseline[0]}); fix them first",
              file=sys.stderr)
        return 2
    rows = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_one, m, args.timeout): m for m in todo}
        for fut in concurrent.futures.as_completed(futures):
            m = futures[fut]
            verdict, seconds = fut.result()
            if verdict == "survived" and m.equivalent:
                verdict = "equivalent"
            print(f"{m.number:4d} {m.function}:{m.line} {m.description}: {verdict}", flush=True)
            rows.append(dict(number=m.number, function=m.function, line=m.line,
                             mutation=m.description, verdict=verdict, seconds=seconds,
                             diff=_diff(original, m.source), reason=m.equivalent or ""))
    rows.sort(key=lambda r: r["number"])
    wall = time.perf_counter() - t0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    text = report(rows, original, args, wall, ("passed", baseline[1]))
    md, table = args.out_dir / "mutation_kernel.md", args.out_dir / "mutation_kernel.csv"
    tmp_md, tmp_csv = md.with_suffix(".md.tmp"), table.with_suffix(".csv.tmp")
    tmp_md.write_text(text)
    with open(tmp_csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["number", "function", "line", "mutation", "verdict",
                                           "seconds"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp_md, md)
    os.replace(tmp_csv, table)
    print(f"wrote {md.name} and {table.name} into {args.out_dir}")
    survived = sum(r["verdict"] == "survived" for r in rows)
    return 1 if survived and not args.no_gate else 0


if __name__ == "__main__":
    sys.exit(main())

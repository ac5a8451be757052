"""How long each notebook cell stays silent: seconds from a cell's start to its first output.

    python -m benchmarks.bench_first_output                 # every notebook, smoke profile
    python -m benchmarks.bench_first_output --only 01 04    # some notebooks

Each notebook runs in a fresh kernel as JupyterLab runs it (the notebook's kernel, working
directory ``notebooks/``, ``progress = True``: live widget bars), on a cache folder of its own
that starts empty (``--cache``; default a new temporary folder: a first hour's cold cache) and a
scratch results root. For every code cell the client records when it sent the cell, when the
first output of that cell arrived (text, a display, a widget, an error) and when the cell
finished. A cell that runs longer than ``--limit`` seconds (2) and shows nothing for longer than
that is *silent*. Writes ``first_output.csv`` (one row per cell) and ``first_output.md`` (the
slowest first outputs and every silent cell) to ``results/benchmarks/``.

The CPU is shared: the times move with the machine's load, which the Markdown file records.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import DEFAULT_OUT, machine_notes, write_outputs

OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error", "update_display_data"}


def time_notebook(path: Path, *, profile: str, results_root: str, kernel: str | None = None,
                  timeout: int = 1800) -> list[dict]:
    """Execute ``path`` (``profile``, progress bars on) and return one row per code cell:
    ``cell``, ``first_line``, ``wall_s``, ``first_output_s`` (None: no output)."""
    from nbclient import NotebookClient
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = parameterize_notebook(load_notebook_node(str(path)),
                               {"profile": profile, "results_root": results_root,
                                "progress": True})
    times: dict[int, dict] = {}

    class Client(NotebookClient):
        def process_message(self, msg, cell, cell_index):
            if msg.get("msg_type") in OUTPUT_TYPES:
                times.setdefault(cell_index, {}).setdefault("first", time.perf_counter())
            return super().process_message(msg, cell, cell_index)

    def started(cell, cell_index, **_):
        times.setdefault(cell_index, {})["start"] = time.perf_counter()

    def finished(cell, cell_index, **_):
        times.setdefault(cell_index, {})["end"] = time.perf_counter()

    from brcd_lib.experiments.reproduce import _kernel_for

    client = Client(nb, timeout=timeout, kernel_name=kernel or _kernel_for(str(path), None),
                    resources={"metadata": {"path": str(path.parent)}},
                    on_cell_execute=started, on_cell_executed=finished)
    client.execute()
    rows = []
    for index, cell in enumerate(nb.cells):
        t = times.get(index, {})
        if cell.cell_type != "code" or "start" not in t:
            continue
        first = t.get("first")
        rows.append({"notebook": path.stem, "cell": index,
                     "first_line": next((ln for ln in cell.source.splitlines()
                                         if ln.strip() and not ln.startswith("#")), "")[:60],
                     "wall_s": round(t["end"] - t["start"], 2),
                     "first_output_s": None if first is None else round(first - t["start"], 2)})
    return rows


def silent(row: dict, limit: float) -> bool:
    """A cell longer than ``limit`` seconds whose first output came later than ``limit``."""
    if row["wall_s"] <= limit:
        return False
    return row["first_output_s"] is None or row["first_output_s"] > limit


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="smoke")
    p.add_argument("--only", nargs="*", action="extend", help="notebook numbers or names")
    p.add_argument("--limit", type=float, default=2.0, help="seconds a cell may stay silent")
    p.add_argument("--cache", default=None, help="cache folder (default: a new, empty one)")
    p.add_argument("--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    p.add_argument("--out-dir", default=str(DEFAULT_OUT))
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    from brcd_lib.experiments.reproduce import list_notebooks, select

    notebooks = select(list_notebooks(), args.only)
    scratch = tempfile.mkdtemp(prefix="first-output-")
    os.environ["BRCD_CACHE"] = args.cache or os.path.join(scratch, "cache")
    os.environ.pop("BRCD_PROGRESS_TO", None)  # bars in the kernel, as in JupyterLab
    rows = []
    for nb in notebooks:
        t0 = time.perf_counter()
        rows += time_notebook(Path(nb), profile=args.profile,
                              results_root=os.path.join(scratch, "results"), kernel=args.kernel)
        print(f"{Path(nb).name}: {time.perf_counter() - t0:.1f} s", flush=True)
    bad = [r for r in rows if silent(r, args.limit)]
    slow = sorted(rows, key=lambda r: -(r["first_output_s"] or r["wall_s"]))[:10]
    out = Path(args.out_dir)
    lines = [f"# Seconds from a cell's start to its first output ({args.profile}, cold cache)", "",
             f"`python -m benchmarks.bench_first_output --profile {args.profile}` on "
             f"{machine_notes()}. A cell is silent when it runs longer than {args.limit:g} s "
             f"and shows nothing for longer than {args.limit:g} s.", "",
             f"Code cells: {len(rows)}; silent: {len(bad)}.", "",
             "| notebook | cell | starts with | wall (s) | first output (s) | silent |",
             "|---|--:|---|--:|--:|---|"]
    for r in sorted({id(r): r for r in bad + slow}.values(),
                    key=lambda r: (r["notebook"], r["cell"])):
        first = "none" if r["first_output_s"] is None else f"{r['first_output_s']:.2f}"
        lines.append(f"| {r['notebook']} | {r['cell']} | `{r['first_line']}` | {r['wall_s']:.2f} "
                     f"| {first} | {'yes' if silent(r, args.limit) else ''} |")
    write_outputs(out, "first_output", rows,
                  ["notebook", "cell", "first_line", "wall_s", "first_output_s"], "\n".join(lines))
    print(f"{len(bad)} silent cell(s) of {len(rows)}; written {out / 'first_output.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

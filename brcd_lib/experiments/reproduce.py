"""Run the ordered notebooks with papermill: ``python -m brcd_lib.reproduce --profile digits``.

Executed copies go to ``results/<profile>/notebooks/``; the notebooks themselves write tables to
``results/<profile>/tables/`` and figures to ``results/<profile>/figures/``. The runner is
resumable at two levels: a notebook that finished without error *on this machine* is skipped
while its code cells are unchanged (``--force`` reruns it), and every training run inside a
notebook is cached by a hash of its config (``.cache/runs``), so an interrupted job continues
where it stopped.

Which notebooks finished is kept in the cache folder (``<cache>/reproduce/``), not in the
committed ``run_log.json``: that file is the provenance of the committed results (wall times,
commit, versions), so a fresh clone, which has the committed results but no cache, reruns every
notebook and regenerates them. Editing a notebook's markdown does not make it stale; editing a
code cell does.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import time

from ..io import atomic_write_text
from ..paths import cache_root, notebooks_dir, results_root as default_results_root
from ..provenance import provenance
from .profiles import list_profiles

NOTEBOOK_DIR = str(notebooks_dir())


def list_notebooks(notebook_dir: str = NOTEBOOK_DIR) -> list[str]:
    return sorted(glob.glob(os.path.join(notebook_dir, "[0-9][0-9]_*.ipynb")))


def results_dir(profile: str, root: str | None = None) -> str:
    return os.path.join(os.path.abspath(root) if root else str(default_results_root()), profile)


def _sha(path: str) -> str:
    """Fingerprint of a notebook's code: the sources of its code cells, in order."""
    with open(path, encoding="utf-8") as fh:
        cells = json.load(fh).get("cells", [])
    h = hashlib.sha256()
    for cell in cells:
        if cell.get("cell_type") == "code":
            src = cell.get("source", "")
            h.update(("".join(src) if isinstance(src, list) else src).encode())
            h.update(b"\0")
    return h.hexdigest()[:16]


def _marker_path(profile: str, out_dir: str, cache_dir: str | None) -> str:
    """This machine's record of the notebooks that finished for ``profile`` into ``out_dir``."""
    tag = hashlib.sha256(os.path.abspath(out_dir).encode()).hexdigest()[:8]
    return os.path.join(cache_dir or str(cache_root()), "reproduce", f"{profile}-{tag}.json")


def select(notebooks: list[str], only: list[str] | None) -> list[str]:
    if not only:
        return notebooks
    chosen = [nb for nb in notebooks
              if any(os.path.basename(nb).startswith(o) or o in os.path.basename(nb) for o in only)]
    if not chosen:
        names = ", ".join(os.path.basename(n) for n in notebooks)
        raise SystemExit(f"--only {only} matches no notebook; available: {names}")
    return chosen


def run(profile: str, *, only: list[str] | None = None, force: bool = False,
        results_root: str | None = None, notebook_dir: str = NOTEBOOK_DIR,
        kernel: str | None = None, log_output: bool = False,
        cache_dir: str | None = None) -> dict:
    """Execute the (selected) notebooks for ``profile``; returns the run log."""
    import papermill as pm

    if profile not in list_profiles():
        raise SystemExit(f"unknown profile {profile!r}; valid profiles: {', '.join(list_profiles())}")
    out_dir = results_dir(profile, results_root)
    nb_out = os.path.join(out_dir, "notebooks")
    os.makedirs(nb_out, exist_ok=True)
    log_path = os.path.join(out_dir, "run_log.json")
    run_log = json.load(open(log_path)) if os.path.exists(log_path) else {"notebooks": {}}
    marker_path = _marker_path(profile, out_dir, cache_dir)
    finished = json.load(open(marker_path)) if os.path.exists(marker_path) else {}
    os.makedirs(os.path.dirname(marker_path), exist_ok=True)
    notebooks = select(list_notebooks(notebook_dir), only)
    if not notebooks:
        raise SystemExit(f"no notebooks found in {notebook_dir}")
    for nb in notebooks:
        name = os.path.basename(nb)
        target = os.path.join(nb_out, name)
        entry = run_log["notebooks"].get(name, {})
        sha = _sha(nb)
        if (not force and os.path.exists(target) and entry.get("status") == "ok"
                and finished.get(name) == sha):
            print(f"[skip] {name} (finished; --force reruns it)")
            continue
        print(f"[run ] {name} (profile {profile})", flush=True)
        t0 = time.time()
        tmp = target + ".tmp.ipynb"
        status = "ok"
        if finished.pop(name, None) is not None:
            atomic_write_text(marker_path, json.dumps(finished, indent=1))
        try:
            pm.execute_notebook(nb, tmp, parameters={"profile": profile,
                                                    "results_root": os.path.dirname(out_dir)},
                                cwd=os.path.dirname(nb), kernel_name=kernel,
                                progress_bar=False, log_output=log_output)
            os.replace(tmp, target)
            stale = target.replace(".ipynb", ".failed.ipynb")
            if os.path.exists(stale):
                os.remove(stale)
        except Exception as exc:  # keep the failed copy for inspection, never as the result
            status = f"failed: {type(exc).__name__}"
            if os.path.exists(tmp):
                os.replace(tmp, target.replace(".ipynb", ".failed.ipynb"))
            run_log["notebooks"][name] = {"status": status, "wall_s": round(time.time() - t0, 1)}
            atomic_write_text(log_path, json.dumps(run_log, indent=1))
            raise
        prov = provenance()
        run_log["notebooks"][name] = {"status": status, "wall_s": round(time.time() - t0, 1),
                                      "source_sha": sha, "commit": prov["commit"],
                                      "timestamp": prov["timestamp"]}
        run_log.update(profile=profile, **prov)
        atomic_write_text(log_path, json.dumps(run_log, indent=1))
        finished[name] = sha
        atomic_write_text(marker_path, json.dumps(finished, indent=1))
        print(f"[done] {name} in {time.time() - t0:.1f} s", flush=True)
    return run_log


WALL_TIME_PREFIX = "Wall time per profile:"


def _finished_run_logs(results_root: str) -> dict[str, dict]:
    """``profile -> run_log.json`` for the profiles under ``results_root`` that have one."""
    logs = {}
    for profile in list_profiles():
        path = os.path.join(results_root, profile, "run_log.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                logs[profile] = json.load(fh)
    return logs


def wall_time_line(name: str, run_logs: dict[str, dict]) -> str:
    """``Wall time per profile: smoke 9 s, digits 25 s, ...`` for notebook ``name`` from the run
    logs of :func:`_finished_run_logs` (profiles where it did not finish are left out)."""
    parts = []
    for profile, log in run_logs.items():
        entry = log.get("notebooks", {}).get(name, {})
        if entry.get("status") == "ok" and "wall_s" in entry:
            parts.append(f"{profile} {entry['wall_s']:.0f} s")
    where = "`results/<profile>/run_log.json`"
    if not parts:
        return f"{WALL_TIME_PREFIX} recorded in {where} once a profile has run."
    return (f"{WALL_TIME_PREFIX} {', '.join(parts)} (2-core CPU, from a cold cache; recorded in "
            f"{where}; cached training runs make a rerun faster).")


def stamp_wall_times(results_root: str | None = None, notebook_dir: str = NOTEBOOK_DIR) -> list[str]:
    """Rewrite the ``Wall time per profile:`` line of every notebook's first (markdown) cell
    from the run logs under ``results_root``; returns the notebooks changed. Only markdown
    changes, so finished notebooks stay finished (:func:`_sha` reads code cells only)."""
    run_logs = _finished_run_logs(results_root or str(default_results_root()))
    changed = []
    for nb in list_notebooks(notebook_dir):
        with open(nb, encoding="utf-8") as fh:
            doc = json.load(fh)
        cell = doc["cells"][0] if doc.get("cells") else None
        if cell is None or cell.get("cell_type") != "markdown":
            raise ValueError(f"{nb}: the first cell must be the markdown header")
        src = cell["source"]
        lines = ("".join(src) if isinstance(src, list) else src).split("\n")
        line = wall_time_line(os.path.basename(nb), run_logs)
        idx = [i for i, text in enumerate(lines) if text.startswith(WALL_TIME_PREFIX)]
        new = list(lines)
        if idx:
            new[idx[0]] = line
        else:
            new.append(line)
        if new != lines:
            text = "\n".join(new)
            cell["source"] = [t + "\n" for t in text.split("\n")[:-1]] + [text.split("\n")[-1]]
            atomic_write_text(nb, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
            changed.append(nb)
    return changed


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default=os.environ.get("PROFILE", "digits"),
                   help=f"one of {', '.join(list_profiles())} (default: $PROFILE or digits)")
    p.add_argument("--only", nargs="*", help="run only notebooks whose name starts with / contains these")
    p.add_argument("--force", action="store_true", help="rerun notebooks that already finished")
    p.add_argument("--list", action="store_true", help="list the notebooks and exit")
    p.add_argument("--stamp-wall-times", action="store_true",
                   help="write the measured wall times of results/*/run_log.json into each "
                        "notebook's header cell and exit")
    p.add_argument("--results-root", default=None, help="default: $BRCD_RESULTS or <repo>/results")
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    p.add_argument("--log-output", action="store_true", help="stream notebook output")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.list:
        for nb in list_notebooks():
            print(os.path.basename(nb))
        return 0
    if args.stamp_wall_times:
        for nb in stamp_wall_times(args.results_root):
            print(f"stamped {os.path.basename(nb)}")
        return 0
    t0 = time.time()
    run(args.profile, only=args.only, force=args.force, results_root=args.results_root,
        kernel=args.kernel, log_output=args.log_output)
    print(f"profile {args.profile}: {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

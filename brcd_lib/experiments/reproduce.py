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

Before any kernel starts, the profile's requirements are checked
(:mod:`brcd_lib.experiments.preflight`: GPU, data; one message and exit status 2), and the path
variables are made absolute (:func:`brcd_lib.paths.anchor_environment`); the results root reaches
the kernels as an absolute ``$BRCD_RESULTS``, never as a parameter, so executed notebooks carry
no machine path. Each notebook runs in its own kernel (``kernelspec`` of the notebook, the
``brcd-kit`` kernel that ``make install`` registers; ``python3`` where it is not registered).
Progress bars of a notebook go to the runner's terminal (``$BRCD_PROGRESS_TO``), not into the
executed notebook; without a terminal (CI) there are none.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import time

from .. import paths
from ..io import atomic_write_text
from ..paths import cache_root, notebooks_dir, results_root as default_results_root
from ..provenance import provenance
from .preflight import ENV_DOWNLOAD, ProfileNotReady, require_profile
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


def _kernel_for(nb: str, requested: str | None) -> str:
    """The kernel a notebook runs in: ``requested``, else the notebook's ``kernelspec`` when it is
    registered, else ``python3`` (the notebook's setup cell imports this repository's brcd_lib
    either way)."""
    if requested:
        return requested
    with open(nb, encoding="utf-8") as fh:
        name = json.load(fh).get("metadata", {}).get("kernelspec", {}).get("name") or "python3"
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
        return name
    except NoSuchKernel:
        if name not in _WARNED:
            _WARNED.add(name)
            print(f"[note] kernel {name!r} is not registered here (`make install` registers it); "
                  "using python3", flush=True)
        return "python3"


_WARNED: set[str] = set()


def _rewrite_links(text: str, source_dir: str, target_dir: str) -> str:
    """Markdown links relative to ``source_dir`` made relative to ``target_dir`` (links inside
    the same folder, absolute ones and URLs are left alone; nothing changes when ``target_dir``
    is outside the repository, where a relative link would spell out machine paths)."""
    import re

    if paths.repo_name(target_dir) is None:
        return text

    def fix(match):
        label, target = match.group(1), match.group(2)
        if "://" in target or target.startswith(("#", "/")) or "/" not in target:
            return match.group(0)
        path, _, frag = target.partition("#")
        new = os.path.relpath(os.path.normpath(os.path.join(source_dir, path)), target_dir)
        return f"[{label}]({new.replace(os.sep, '/')}{'#' + frag if frag else ''})"

    return re.sub(r"\[([^\]]*)\]\(([^)\s]+)\)", fix, text)


def finish_executed(path: str, *, source: str, profile: str, wall_s: float) -> None:
    """Make an executed notebook portable and current: papermill's input and output paths
    written relative to the repository, markdown links valid from where the copy lives, the
    header's per-profile wall times replaced by this run's measured time, and a
    ``metadata.brcd`` record (profile, notebook) marking the copy as made by this runner."""
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    meta = doc.setdefault("metadata", {})
    pm_meta = meta.get("papermill", {})
    final = path[:-len(".tmp.ipynb")] if path.endswith(".tmp.ipynb") else path
    pm_meta["input_path"] = paths.portable(os.path.abspath(source))
    pm_meta["output_path"] = paths.portable(os.path.abspath(final))
    meta["brcd"] = {"profile": profile, "notebook": os.path.basename(source)}
    for i, cell in enumerate(doc.get("cells", [])):
        if cell.get("cell_type") != "markdown":
            continue
        src = cell.get("source", "")
        text = "".join(src) if isinstance(src, list) else src
        text = _rewrite_links(text, os.path.dirname(os.path.abspath(source)),
                              os.path.dirname(os.path.abspath(final)))
        if i == 0:
            text = "\n".join(
                f"Wall time of this run: {wall_s:.0f} s (profile {profile}; every run's: "
                "`run_log.json` of the profile)." if line.startswith(WALL_TIME_PREFIX) else line
                for line in text.split("\n"))
        lines = text.split("\n")
        cell["source"] = [t + "\n" for t in lines[:-1]] + [lines[-1]]
    atomic_write_text(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def run(profile: str, *, only: list[str] | None = None, force: bool = False,
        results_root: str | None = None, notebook_dir: str = NOTEBOOK_DIR,
        kernel: str | None = None, log_output: bool = False,
        cache_dir: str | None = None, download: bool = False) -> dict:
    """Execute the (selected) notebooks for ``profile``; returns the run log. Raises
    :class:`~brcd_lib.experiments.preflight.ProfileNotReady` before anything runs (or is created)
    when the profile's GPU or data is missing."""
    import papermill as pm

    if profile not in list_profiles():
        raise SystemExit(f"unknown profile {profile!r}; valid profiles: {', '.join(list_profiles())}")
    paths.anchor_environment()
    if download:
        os.environ[ENV_DOWNLOAD] = "1"
    require_profile(profile)
    out_dir = results_dir(profile, results_root)
    # the kernels (and their workers) read the results root from the environment, absolute
    env = {paths.ENV_RESULTS: os.path.dirname(out_dir)}
    progress = sys.stderr.isatty()
    if progress:  # the notebooks' progress bars go to this terminal, not into the notebooks
        from ..training.progress import ENV_PROGRESS_TO

        env[ENV_PROGRESS_TO] = os.ttyname(sys.stderr.fileno())
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return _run(profile, out_dir=out_dir, only=only, force=force, notebook_dir=notebook_dir,
                    kernel=kernel, log_output=log_output, cache_dir=cache_dir, progress=progress,
                    pm=pm)
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(profile: str, *, out_dir: str, only, force, notebook_dir, kernel, log_output, cache_dir,
         progress, pm) -> dict:
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
    for number, nb in enumerate(notebooks, 1):
        name = os.path.basename(nb)
        target = os.path.join(nb_out, name)
        entry = run_log["notebooks"].get(name, {})
        sha = _sha(nb)
        if (not force and os.path.exists(target) and entry.get("status") == "ok"
                and finished.get(name) == sha):
            print(f"[skip] {name} (finished; --force reruns it)")
            continue
        print(f"[run ] {name} ({number}/{len(notebooks)}, profile {profile})", flush=True)
        t0 = time.time()
        tmp = target + ".tmp.ipynb"
        status = "ok"
        if finished.pop(name, None) is not None:
            atomic_write_text(marker_path, json.dumps(finished, indent=1))
        try:
            pm.execute_notebook(nb, tmp, parameters={"profile": profile, "progress": progress},
                                cwd=os.path.dirname(nb), kernel_name=_kernel_for(nb, kernel),
                                progress_bar=False, log_output=log_output)
            finish_executed(tmp, source=nb, profile=profile, wall_s=time.time() - t0)
            os.replace(tmp, target)
            stale = target.replace(".ipynb", ".failed.ipynb")
            if os.path.exists(stale):
                os.remove(stale)
        except Exception as exc:  # keep the failed copy for inspection, never as the result
            status = f"failed: {type(exc).__name__}"
            if os.path.exists(tmp):
                finish_executed(tmp, source=nb, profile=profile, wall_s=time.time() - t0)
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
    p.add_argument("--download", action="store_true",
                   help=f"let the data layer download a dataset it cannot find (sets ${ENV_DOWNLOAD}=1; "
                        "by default a missing dataset stops the run with the fix)")
    return p


def failure_summary(exc: BaseException, out_dir: str | None = None) -> str:
    """One paragraph for the console: which notebook failed, where, with which error, and
    where its executed copy is (no Python traceback)."""
    cell = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    lines = [f"[fail] {ename}: {evalue}".rstrip()]
    if cell is not None:
        lines.append(f"       in cell [{cell}] of the notebook")
    if out_dir:
        failed = sorted(glob.glob(os.path.join(out_dir, "notebooks", "*.failed.ipynb")),
                        key=os.path.getmtime)
        if failed:
            lines.append(f"       executed copy with the error: {paths.portable(failed[-1])}")
    return "\n".join(lines)


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
    try:
        run(args.profile, only=args.only, force=args.force, results_root=args.results_root,
            kernel=args.kernel, log_output=args.log_output, download=args.download)
    except ProfileNotReady as err:
        print(str(err), file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - a notebook failed: say which and where, briefly
        from papermill.exceptions import PapermillExecutionError

        if not isinstance(err, PapermillExecutionError):
            raise
        print(failure_summary(err, results_dir(args.profile, args.results_root)), file=sys.stderr)
        return 1
    print(f"profile {args.profile}: {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

Several runners may share a results root (e.g. two ``--only`` lists at once): ``run_log.json`` and
the "finished" markers are updated entry by entry under a file lock (:func:`brcd_lib.io.update_json`),
and a notebook is executed by one runner at a time (a lock per executed copy; the second runner
waits, then finds it finished). Leftovers of a killed runner (``*.tmp.ipynb``, temporary files
of the atomic writers) are removed when the next run starts. A damaged marker is a cache miss
(warning, the notebooks rerun); a damaged ``run_log.json`` stops the run with an error naming it.

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
import contextlib
import glob
import hashlib
import json
import os
import re
import sys
import time
import warnings

from .. import paths
from ..io import (StorageError, atomic_write_text, ensure_writable_dir, file_lock, is_temp_name,
                  read_json, remove_stale_temp_files, update_json)
from ..paths import cache_root, notebooks_dir, results_root as default_results_root
from ..provenance import provenance
from ..training.parallel import resolve_threads, resolve_workers
from ..training.progress import ENV_PROGRESS_TO
from .preflight import ENV_DOWNLOAD, ProfileNotReady, require_profile
from .profiles import get_profile, list_profiles

NOTEBOOK_DIR = str(notebooks_dir())


def list_notebooks(notebook_dir: str = NOTEBOOK_DIR) -> list[str]:
    return sorted(glob.glob(os.path.join(notebook_dir, "[0-9][0-9]_*.ipynb")))


def results_dir(profile: str, root: str | None = None) -> str:
    return os.path.join(os.path.abspath(root) if root else str(default_results_root()), profile)


def _sha(path: str) -> str:
    """Fingerprint of a notebook's code: the sources of its code cells, in order."""
    cells = read_json(path).get("cells", [])  # a damaged notebook: ValueError naming it
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
    """The notebooks named by ``only`` (None = all), in their order. A number selects the notebook
    with that prefix exactly (``1`` and ``01`` select ``01_*``, not ``10_*``); any other text
    selects the notebooks whose name starts with or contains it. An empty list, an empty name or
    a name that matches nothing raises ``ValueError`` listing the notebooks."""
    if only is None:
        return notebooks
    names = ", ".join(os.path.basename(n) for n in notebooks)
    if isinstance(only, str) or not only or any(not str(o).strip() for o in only):
        raise ValueError(f"--only needs notebook numbers or names (e.g. --only 04 05), got "
                         f"{list(only) if not isinstance(only, str) else only!r}; available: {names}")
    chosen = set()
    for o in (str(o).strip() for o in only):
        if o.isdigit():
            hits = [nb for nb in notebooks if _prefix(nb) == int(o)]
        else:
            hits = [nb for nb in notebooks if os.path.basename(nb).startswith(o)
                    or o in os.path.basename(nb)]
        if not hits:
            raise ValueError(f"--only {o!r} matches no notebook; available: {names}")
        chosen.update(hits)
    return [nb for nb in notebooks if nb in chosen]


def _prefix(nb: str) -> int | None:
    m = re.match(r"(\d+)_", os.path.basename(nb))
    return int(m.group(1)) if m else None


class NotebookFailed(RuntimeError):
    """A notebook raised (or its kernel died); the message names the notebook, the error and the
    executed copy that holds the traceback."""


def _read_run_log(path: str) -> dict:
    """The run log at ``path`` ({"notebooks": {}} when missing); a damaged one raises ValueError."""
    if not os.path.exists(path):
        return {"notebooks": {}}
    fix = ("restore it (git checkout -- <file>) or delete it (it records wall times and "
           "provenance; the notebooks' results are elsewhere)")
    try:
        log = read_json(path)
    except ValueError as err:
        raise ValueError(f"run log {path} is damaged ({err.__cause__}); {fix}") from None
    if not isinstance(log, dict) or not isinstance(log.get("notebooks", {}), dict):
        raise ValueError(f"run log {path} is damaged (not an object with a 'notebooks' "
                         f"object); {fix}")
    log.setdefault("notebooks", {})
    return log


def _damaged_marker(path: str):
    def handler(err: ValueError) -> dict:
        warnings.warn(f"finished-notebook marker {path} is damaged ({err.__cause__}); treating "
                      "every notebook as unfinished", RuntimeWarning, stacklevel=3)
        return {}
    return handler


def _read_marker(path: str) -> dict:
    """Notebook -> code fingerprint of the notebooks that finished; a damaged file counts as
    empty (with a warning): it is a cache, the notebooks rerun."""
    if not os.path.exists(path):
        return {}
    try:
        value = read_json(path)
    except ValueError as err:
        return _damaged_marker(path)(err)
    if not isinstance(value, dict):
        return _damaged_marker(path)(ValueError(path, ValueError("not an object")))
    return value


def _update_marker(path: str, name: str, sha: str | None) -> None:
    def change(done):
        if not isinstance(done, dict):
            done = {}
        if sha is None:
            done.pop(name, None)
        else:
            done[name] = sha
        return done
    update_json(path, change, on_damaged=_damaged_marker(path))


def _update_log(path: str, name: str, entry: dict, top: dict | None = None) -> dict:
    def change(log):
        log = _checked_log(log, path)
        log["notebooks"][name] = entry
        log.update(top or {})
        return log
    if os.path.exists(path):
        _read_run_log(path)  # a damaged log stops here, with its message
    return update_json(path, change, default=lambda: {"notebooks": {}})


def _checked_log(log, path: str) -> dict:
    if not isinstance(log, dict) or not isinstance(log.get("notebooks", {}), dict):
        raise ValueError(f"run log {path} is damaged (not an object with a 'notebooks' object)")
    log.setdefault("notebooks", {})
    return log


@contextlib.contextmanager
def _executing(target: str, name: str):
    """Hold the lock of one executed notebook copy (one runner executes it at a time)."""
    with file_lock(target, blocking=False) as free:
        if free:
            yield
            return
    print(f"[wait] {name} (another runner is executing it into this folder)", flush=True)
    with file_lock(target):
        yield


def remove_leftovers(out_dir: str) -> list[str]:
    """Delete what killed runs left in ``out_dir``: executing copies (``*.tmp.ipynb``) that no
    runner holds, and the atomic writers' temporary files of killed processes."""
    removed = []
    nb_out = os.path.join(out_dir, "notebooks")
    if os.path.isdir(nb_out):
        for name in os.listdir(nb_out):
            if name.endswith(".tmp.ipynb"):
                target = os.path.join(nb_out, name[: -len(".tmp.ipynb")])
                with file_lock(target, blocking=False) as free:
                    if free:
                        with contextlib.suppress(OSError):
                            os.remove(os.path.join(nb_out, name))
                            removed.append(os.path.join(nb_out, name))
    removed += [str(p) for p in remove_stale_temp_files(
        [out_dir], names=lambda n: is_temp_name(n) and not n.endswith(".tmp.ipynb"))]
    return removed


# How the runner ends a notebook's kernel once every cell has run (nbclient's option): a graceful
# shutdown waits 1.5-3 s per notebook for the interpreter to finalise torch and the loaded data
# (measured on the 2-core machine, 11 notebooks); nothing is left to save by then (every output
# was written by atomic rename inside a cell, and the grid workers die with the kernel:
# training.parallel), so the kernel is stopped at once.
KERNEL_SHUTDOWN = "immediate"


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

    if profile not in list_profiles(include_rehearsals=True):
        raise SystemExit(f"unknown profile {profile!r}; valid profiles: {', '.join(list_profiles())}")
    notebooks = select(list_notebooks(notebook_dir), only)
    if not notebooks:
        raise SystemExit(f"no notebooks found in {notebook_dir}")
    resolve_threads()  # the kernels read BRCD_THREADS / BRCD_WORKERS: a bad value stops here
    resolve_workers(profile_workers=1)
    paths.anchor_environment()
    if download:
        os.environ[ENV_DOWNLOAD] = "1"
    require_profile(profile)
    out_dir = results_dir(profile, results_root)
    # the kernels (and their workers) read the results root from the environment, absolute
    env = {paths.ENV_RESULTS: os.path.dirname(out_dir)}
    progress = sys.stderr.isatty()
    if progress:  # the notebooks' progress bars go to this terminal, not into the notebooks
        env[ENV_PROGRESS_TO] = os.ttyname(sys.stderr.fileno())
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        if get_profile(profile).train_together:
            _train_plan(profile, cache_dir=cache_dir, progress=progress)
        return _run(profile, notebooks=notebooks, out_dir=out_dir, force=force, kernel=kernel,
                    log_output=log_output, cache_dir=cache_dir, progress=progress, pm=pm)
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _train_plan(profile: str, *, cache_dir: str | None, progress: bool) -> None:
    """Profiles with ``train_together``: every run of the notebooks' grids, trained together
    (:func:`brcd_lib.experiments.together.train_plan`) before the notebooks, which then load
    them from the run cache."""
    from .experiment import Experiment
    from .together import train_plan

    t0 = time.time()
    print(f"[runs] training the runs of profile {profile} together", flush=True)
    train_plan(Experiment(profile, cache_dir=cache_dir, progress=progress))
    print(f"[runs] done in {time.time() - t0:.1f} s", flush=True)


def _run(profile: str, *, notebooks: list[str], out_dir: str, force: bool, kernel: str | None,
         log_output: bool, cache_dir: str | None, progress: bool, pm) -> dict:
    nb_out = str(ensure_writable_dir(os.path.join(out_dir, "notebooks"), what="results folder"))
    log_path = os.path.join(out_dir, "run_log.json")
    _read_run_log(log_path)  # a damaged log stops the run before anything executes
    marker_path = _marker_path(profile, out_dir, cache_dir)
    ensure_writable_dir(os.path.dirname(marker_path), what="cache folder")
    for path in remove_leftovers(out_dir):
        print(f"[gone] {os.path.relpath(path, out_dir)} (left by a killed run)")
    for number, nb in enumerate(notebooks, 1):
        name = os.path.basename(nb)
        target = os.path.join(nb_out, name)
        sha = _sha(nb)
        with _executing(target, name):
            entry = _read_run_log(log_path)["notebooks"].get(name, {})
            if (not force and os.path.exists(target) and entry.get("status") == "ok"
                    and _read_marker(marker_path).get(name) == sha):
                print(f"[skip] {name} (finished; --force reruns it)")
                continue
            print(f"[run ] {name} ({number}/{len(notebooks)}, profile {profile})", flush=True)
            t0 = time.time()
            tmp = target + ".tmp.ipynb"
            if name in _read_marker(marker_path):
                _update_marker(marker_path, name, None)
            try:
                pm.execute_notebook(nb, tmp, parameters={"profile": profile, "progress": progress},
                                    cwd=os.path.dirname(nb), kernel_name=_kernel_for(nb, kernel),
                                    progress_bar=False, log_output=log_output,
                                    shutdown_kernel=KERNEL_SHUTDOWN)
                finish_executed(tmp, source=nb, profile=profile, wall_s=time.time() - t0)
                os.replace(tmp, target)
                stale = target.replace(".ipynb", ".failed.ipynb")
                if os.path.exists(stale):
                    os.remove(stale)
            except Exception as exc:  # keep the failed copy for inspection, never as the result
                failed = target.replace(".ipynb", ".failed.ipynb")
                if os.path.exists(tmp):
                    finish_executed(tmp, source=nb, profile=profile, wall_s=time.time() - t0)
                    os.replace(tmp, failed)
                _update_log(log_path, name, {"status": f"failed: {type(exc).__name__}",
                                             "wall_s": round(time.time() - t0, 1)})
                raise NotebookFailed(_failure_line(name, exc, failed)) from exc
            prov = provenance()
            _update_log(log_path, name, {"status": "ok", "wall_s": round(time.time() - t0, 1),
                                         "source_sha": sha, "commit": prov["commit"],
                                         "timestamp": prov["timestamp"]},
                        top={"profile": profile, **prov})
            _update_marker(marker_path, name, sha)
            print(f"[done] {name} in {time.time() - t0:.1f} s", flush=True)
    return _read_run_log(log_path)


def _failure_line(name: str, exc: Exception, failed: str) -> str:
    """One line: the notebook, the error it raised (papermill's ename/evalue), the saved copy."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    what = f"{ename}: {evalue}" if ename else f"{type(exc).__name__}: {exc}"
    what = " ".join(str(what).split())
    where = (f"; the executed copy with the traceback is {failed}" if os.path.exists(failed)
             else "")
    return f"notebook {name} failed: {what}{where}"


WALL_TIME_PREFIX = "Wall time per profile:"


def _finished_run_logs(results_root: str) -> dict[str, dict]:
    """``profile -> run_log.json`` for the profiles under ``results_root`` that have one."""
    logs = {}
    for profile in list_profiles():
        path = os.path.join(results_root, profile, "run_log.json")
        if os.path.exists(path):
            logs[profile] = _read_run_log(path)
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
        doc = read_json(nb)
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


def compare(profile: str, *, results_root: str | None = None, committed_root: str | None = None,
            **run_kwargs) -> int:
    """Rerun ``profile`` into ``results_root`` (default ``$BRCD_CACHE/rerun``; finished notebooks
    are skipped, so a second call only compares), compare its rows with the committed tables
    under ``committed_root`` (:mod:`brcd_lib.experiments.compare`), print one PASS / FAIL line per
    table and write ``compare.md`` / ``compare_cells.csv`` next to the fresh results. Returns 0
    when every table passes, 1 otherwise."""
    from .compare import compare_results, format_summary

    committed = results_dir(profile, committed_root)
    if not glob.glob(os.path.join(committed, "tables", "*_rows.csv")):
        raise FileNotFoundError(
            f"no committed rows to compare with in {paths.portable(committed)}/tables; commit the "
            f"results of profile {profile!r} first or point --committed-root at a results root")
    fresh_root = results_root or str(cache_root() / "rerun")
    if os.path.abspath(results_dir(profile, fresh_root)) == os.path.abspath(committed):
        raise ValueError("--compare needs a scratch --results-root other than the committed "
                         f"results ({paths.portable(committed)}): a rerun would overwrite them")
    run(profile, results_root=fresh_root, **run_kwargs)
    fresh = results_dir(profile, fresh_root)
    cells, summary = compare_results(committed, fresh)
    text = format_summary(summary, cells)
    print(text)
    atomic_write_text(os.path.join(fresh, "compare.md"), "```\n" + text + "\n```\n")
    if not cells.empty:
        atomic_write_text(os.path.join(fresh, "compare_cells.csv"), cells.to_csv(index=False))
    ok = not summary.empty and (summary["result"] == "PASS").all()
    print(f"{'PASS' if ok else 'FAIL'}: profile {profile}, {len(summary)} tables, fresh results in "
          f"{paths.portable(fresh)}")
    return 0 if ok else 1


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
    p.add_argument("--compare", action="store_true",
                   help="rerun the profile into a scratch results root (--results-root, default "
                        "$BRCD_CACHE/rerun) and compare it cell by cell with the committed tables "
                        "(--committed-root): one PASS / FAIL line per table, exit status 1 on FAIL")
    p.add_argument("--committed-root", default=None,
                   help="--compare: the results root to compare against (default <repo>/results)")
    p.add_argument("--download", action="store_true",
                   help=f"let the data layer download a dataset it cannot find (sets ${ENV_DOWNLOAD}=1; "
                        "by default a missing dataset stops the run with the fix)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.list:
        for nb in list_notebooks():
            print(os.path.basename(nb))
        return 0
    prog = "python -m brcd_lib.reproduce"
    try:
        if args.stamp_wall_times:
            for nb in stamp_wall_times(args.results_root):
                print(f"stamped {os.path.basename(nb)}")
            return 0
        t0 = time.time()
        if args.compare:
            return compare(args.profile, results_root=args.results_root,
                           committed_root=args.committed_root, force=args.force,
                           kernel=args.kernel, log_output=args.log_output, download=args.download)
        run(args.profile, only=args.only, force=args.force, results_root=args.results_root,
            kernel=args.kernel, log_output=args.log_output, download=args.download)
    except ProfileNotReady as err:
        print(str(err), file=sys.stderr)
        return 2
    except NotebookFailed as exc:  # the notebook's own error: one line, the copy holds the rest
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except (ValueError, StorageError, FileNotFoundError) as exc:  # inputs and storage
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"profile {args.profile}: {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

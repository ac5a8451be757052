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
from ..training.executors import ENV_EXECUTOR, executor_workers, resolve_executor, start_cluster
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


# fields of a profile that change no result: how many processes train, the blurb, whether a
# grid calls collapsed codes expected
_NOT_RESULTS = ("workers", "description", "collapse_expected")


def profile_settings(profile: str) -> dict:
    """The profile's settings as plain JSON values (every field but :data:`_NOT_RESULTS`), the
    record the run log keeps and ``--compare`` checks."""
    from ..config import canonical_json
    from .profiles import get_profile

    settings = json.loads(canonical_json(get_profile(profile)))
    for key in _NOT_RESULTS:
        settings.pop(key, None)
    return settings


def _state(nb_sha: str, library: str, settings: dict) -> dict:
    """What a finished notebook's outputs depend on: its code cells, the library and the profile's
    settings (a marker entry; a notebook is finished while all three are unchanged)."""
    from ..config import config_hash

    return {"notebook": nb_sha, "library": library, "settings": config_hash(settings)}


_STALE = {"notebook": "its code cells changed", "library": "the library code (brcd_lib) changed",
          "settings": "the profile's settings changed"}


def _why_stale(done, state: dict) -> str:
    """Why a notebook that finished before must run again (``done``: its marker entry)."""
    if not isinstance(done, dict):
        return "no record of the code it ran with"
    return "; ".join(text for key, text in _STALE.items() if done.get(key) != state[key]) \
        or "its record is incomplete"


def _marker_path(profile: str, out_dir: str, cache_dir: str | None) -> str:
    """This machine's record of the notebooks that finished for ``profile`` into ``out_dir``."""
    tag = hashlib.sha256(os.path.abspath(out_dir).encode()).hexdigest()[:8]
    return os.path.join(cache_dir or str(cache_root()), "reproduce", f"{profile}-{tag}.json")


def cached_runs(profile: str, cache_dir: str | None) -> int:
    """How many run folders of ``profile`` the run cache holds (``<cache>/runs/<profile>``, the
    folders of :class:`~brcd_lib.experiments.runstore.RunStore`, finished or not). The runner logs
    it before each notebook (``runs_cached_before`` in ``run_log.json``), so a result regenerated
    from an empty cache shows 0 before its first notebook, and one that reused a shared
    ``$BRCD_CACHE`` shows how many runs it could have read."""
    from .runstore import RunStore, store_root

    return len(RunStore(root=store_root(cache_dir or str(cache_root()), profile)).run_folders())


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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) while a notebook ran: its partial executed copy is removed; the notebooks
    that finished before stay finished."""


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
    """Notebook -> :func:`_state` of the notebooks that finished; a damaged file counts as empty
    (with a warning): it is a cache, the notebooks rerun."""
    if not os.path.exists(path):
        return {}
    try:
        value = read_json(path)
    except ValueError as err:
        return _damaged_marker(path)(err)
    if not isinstance(value, dict):
        return _damaged_marker(path)(ValueError(path, ValueError("not an object")))
    return value


def _update_marker(path: str, name: str, state: dict | None) -> None:
    def change(done):
        if not isinstance(done, dict):
            done = {}
        if state is None:
            done.pop(name, None)
        else:
            done[name] = state
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


_ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)(\s*=\s*)(.*?)(\s*#.*)?$")


def _cell_lines(cell: dict) -> list[str]:
    src = cell.get("source", "")
    return ("".join(src) if isinstance(src, list) else src).split("\n")


def _tagged(cells: list[dict], tag: str) -> list[int]:
    return [i for i, c in enumerate(cells) if tag in (c.get("metadata", {}).get("tags") or [])]


def merge_injected_parameters(cells: list[dict]) -> list[dict]:
    """One parameters cell in an executed copy: the values of papermill's ``injected-parameters``
    cell written into the notebook's ``parameters`` cell (each assignment keeps its comment; a
    name the parameters cell lacks is added at its end), and the injected cell removed. A copy
    with no injected cell, or more than one of either cell, is returned unchanged."""
    injected, params = _tagged(cells, "injected-parameters"), _tagged(cells, "parameters")
    if len(injected) != 1 or len(params) != 1:
        return cells
    values = {}
    for line in _cell_lines(cells[injected[0]]):
        m = _ASSIGNMENT.match(line)
        if m and not line.startswith("#"):
            values[m.group(1)] = m.group(3)
    lines = []
    for line in _cell_lines(cells[params[0]]):
        m = _ASSIGNMENT.match(line)
        if m and m.group(1) in values:
            head = f"{m.group(1)}{m.group(2)}{values.pop(m.group(1))}"
            comment = (m.group(4) or "").lstrip()
            width = len(line) - len(comment) if comment else 0
            line = f"{head.ljust(width - 1)} {comment}" if comment else head
        lines.append(line)
    lines += [f"{name} = {value}" for name, value in values.items()]
    merged = dict(cells[params[0]])
    merged["source"] = [t + "\n" for t in lines[:-1]] + [lines[-1]]
    merged["outputs"] = (cells[params[0]].get("outputs") or []) + \
        (cells[injected[0]].get("outputs") or [])
    merged["execution_count"] = cells[injected[0]].get("execution_count")
    return [merged if i == params[0] else c for i, c in enumerate(cells) if i != injected[0]]


def finish_executed(path: str, *, source: str, profile: str, wall_s: float) -> None:
    """Make an executed notebook portable and current: one parameters cell holding the values
    the run used (:func:`merge_injected_parameters`), papermill's input and output paths
    written relative to the repository, markdown links valid from where the copy lives, the
    header's per-profile wall times replaced by this run's measured time, and a
    ``metadata.brcd`` record (profile, notebook) marking the copy as made by this runner."""
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    doc["cells"] = merge_injected_parameters(doc.get("cells", []))
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
        cache_dir: str | None = None, download: bool = False,
        executor: str | None = None) -> dict:
    """Execute the (selected) notebooks for ``profile``; returns the run log. Raises
    :class:`~brcd_lib.experiments.preflight.ProfileNotReady` before anything runs (or is created)
    when the profile's GPU or data is missing. ``executor``: where the notebooks' grids train
    their runs (:mod:`brcd_lib.training.executors`; default ``$BRCD_EXECUTOR`` or ``local``); a
    Dask cluster it names (``dask``, ``slurm:N``, ``pbs:N``) is started here once and shared by
    every notebook's kernel."""
    import papermill as pm

    if profile not in list_profiles(include_rehearsals=True):
        raise SystemExit(f"unknown profile {profile!r}; valid profiles: {', '.join(list_profiles())}")
    notebooks = select(list_notebooks(notebook_dir), only)
    if not notebooks:
        raise SystemExit(f"no notebooks found in {notebook_dir}")
    resolve_threads()  # the kernels read BRCD_THREADS / BRCD_WORKERS: a bad value stops here
    resolve_workers(profile_workers=1)
    spec = resolve_executor(executor)  # a bad choice (or 'gpus' without a GPU) stops here
    executor_workers(spec, 1)
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
    env[ENV_EXECUTOR] = str(spec)
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with _shared_cluster(spec, profile) as address:
            if address:  # the kernels connect to the cluster started here
                os.environ[ENV_EXECUTOR] = f"dask:{address}"
                print(f"[dask] executor {spec}: scheduler {address}", flush=True)
            if get_profile(profile).train_together:
                _train_plan(profile, cache_dir=cache_dir, progress=progress)
            return _run(profile, notebooks=notebooks, out_dir=out_dir, force=force,
                        kernel=kernel, log_output=log_output, cache_dir=cache_dir,
                        progress=progress, pm=pm)
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _shared_cluster(spec, profile: str):
    """The address of a Dask cluster started for ``spec`` (``dask`` without a scheduler,
    ``slurm:N``, ``pbs:N``) for the length of the run; None for the other executors."""
    if not spec.uses_dask or (spec.kind == "dask" and spec.target):
        yield None
        return
    from .profiles import get_profile

    cluster = start_cluster(spec, resolve_workers(profile_workers=get_profile(profile).workers))
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


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
    from .runstore import library_fingerprint

    library, settings = library_fingerprint(), profile_settings(profile)
    for number, nb in enumerate(notebooks, 1):
        name = os.path.basename(nb)
        target = os.path.join(nb_out, name)
        sha = _sha(nb)
        state = _state(sha, library, settings)
        with _executing(target, name):
            entry = _read_run_log(log_path)["notebooks"].get(name, {})
            done = _read_marker(marker_path).get(name)
            if not force and os.path.exists(target) and entry.get("status") == "ok" \
                    and done == state:
                print(f"[skip] {name} (finished; --force reruns it)")
                continue
            why = (f"; {_why_stale(done, state)} since it finished"
                   if not force and done is not None and os.path.exists(target) else "")
            print(f"[run ] {name} ({number}/{len(notebooks)}, profile {profile}{why})", flush=True)
            t0 = time.time()
            before = cached_runs(profile, cache_dir)
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
            except KeyboardInterrupt:  # Ctrl-C: no half-executed copy is left behind
                _discard(tmp)
                raise Interrupted(name) from None
            except Exception as exc:  # keep the failed copy for inspection, never as the result
                if getattr(exc, "ename", None) == "KeyboardInterrupt":  # the kernel got Ctrl-C first
                    _discard(tmp)
                    raise Interrupted(name) from None
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
                                         "timestamp": prov["timestamp"],
                                         "runs_cached_before": before},
                        top={"profile": profile, **prov, "library": library,
                             "settings": settings})
            _update_marker(marker_path, name, state)
            print(f"[done] {name} in {time.time() - t0:.1f} s", flush=True)
    return _read_run_log(log_path)


def _discard(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


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
            # sorted keys, as nbformat and the nbstripout filter write a notebook
            atomic_write_text(nb, json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False)
                              + "\n")
            changed.append(nb)
    return changed


def compare(profile: str, *, results_root: str | None = None, committed_root: str | None = None,
            **run_kwargs) -> int:
    """Rerun ``profile`` into ``results_root`` (default ``$BRCD_CACHE/rerun``; finished notebooks
    are skipped, so a second call only compares), compare its rows with the committed tables
    under ``committed_root`` (:mod:`brcd_lib.experiments.compare`), print one PASS / FAIL line per
    table and write ``compare.md`` / ``compare_cells.csv`` next to the fresh results. Returns 0
    when every table passes, 1 otherwise."""
    from .compare import compare_results, format_summary, settings_differences

    committed = results_dir(profile, committed_root)
    if not glob.glob(os.path.join(committed, "tables", "*_rows.csv")):
        raise FileNotFoundError(
            f"no committed rows to compare with in {paths.portable(committed)}/tables; commit the "
            f"results of profile {profile!r} first or point --committed-root at a results root")
    fresh_root = results_root or str(cache_root() / "rerun")
    fresh = results_dir(profile, fresh_root)
    _refuse_same_folder(fresh, committed)
    committed_settings = _read_run_log(os.path.join(committed, "run_log.json")).get("settings")
    changed = (settings_differences(committed_settings, profile_settings(profile))
               if isinstance(committed_settings, dict) else [])
    if changed:
        print(f"note: profile {profile}'s settings differ from those of the committed results "
              f"({'; '.join(changed)}): the rerun cannot reproduce them", flush=True)
    run(profile, results_root=fresh_root, **run_kwargs)
    cells, summary = compare_results(committed, fresh)
    text = format_summary(summary, cells)
    if changed:
        text += ("\nsettings differ from the committed results' (their run_log.json): "
                 + "; ".join(changed))
    print(text)
    atomic_write_text(os.path.join(fresh, "compare.md"), "```\n" + text + "\n```\n")
    if not cells.empty:
        atomic_write_text(os.path.join(fresh, "compare_cells.csv"), cells.to_csv(index=False))
    ok = not summary.empty and (summary["result"] == "PASS").all() and not changed
    print(f"{'PASS' if ok else 'FAIL'}: profile {profile}, {len(summary)} tables, fresh results in "
          f"{paths.portable(fresh)}")
    return 0 if ok else 1


def _refuse_same_folder(fresh: str, committed: str) -> None:
    """``ValueError`` when the rerun's folder is the committed one (also through a symbolic link
    or ``..``), or lies inside it or around it: the rerun would overwrite the committed results."""
    a, b = os.path.realpath(fresh), os.path.realpath(committed)
    if a == b or (os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)):
        relation = "is"
    elif os.path.commonpath([a, b]) == b:
        relation = "lies inside"
    elif os.path.commonpath([a, b]) == a:
        relation = "contains"
    else:
        return
    real = f" (real path {a})" if a != os.path.abspath(fresh) else ""
    raise ValueError(f"--compare needs a scratch --results-root: the rerun folder {fresh}{real} "
                     f"{relation} the committed results {b}, which a rerun would overwrite; pass "
                     "another folder, e.g. --results-root /tmp/rerun")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default=os.environ.get("PROFILE", "digits"),
                   help=f"one of {', '.join(list_profiles())} (default: $PROFILE or digits)")
    p.add_argument("--only", nargs="*", action="extend",
                   help="run only notebooks whose name starts with / contains these (repeatable: "
                        "--only 01 --only 03 runs both)")
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
    p.add_argument("--executor", default=None,
                   help="where the notebooks' grids train their runs: local (worker processes, "
                        "the default), gpus (one run per visible GPU), dask (a local Dask "
                        "cluster), dask:<scheduler address or file>, slurm[:N] or pbs[:N] "
                        "(Dask workers as batch jobs through dask-jobqueue); default "
                        f"${ENV_EXECUTOR} or local (docs/reliability.md)")
    p.add_argument("--download", action="store_true",
                   help=f"let the data layer download a dataset it cannot find (sets ${ENV_DOWNLOAD}=1; "
                        "by default a missing dataset stops the run with the fix)")
    return p


def main(argv: list[str] | None = None, *, after_run=None) -> int:
    """The command line. ``after_run(results_dir)``: called after a run (not ``--compare``) whose
    notebooks all finished; ``python -m brcd_lib.reproduce`` passes the report's provenance
    refresh (:func:`brcd_lib.reporting.report.refresh_provenance`, a layer above this one)."""
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
                           kernel=args.kernel, log_output=args.log_output, download=args.download,
                           executor=args.executor)
        run(args.profile, only=args.only, force=args.force, results_root=args.results_root,
            kernel=args.kernel, log_output=args.log_output, download=args.download,
            executor=args.executor)
        if after_run is not None:
            after_run(results_dir(args.profile, args.results_root))
    except ProfileNotReady as err:
        print(str(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, not papermill's and asyncio's traceback
        where = (f" during {exc} (its partial executed copy was removed)"
                 if isinstance(exc, Interrupted) else "")
        print(f"\n{prog}: interrupted{where}; the notebooks that finished are kept: run the same "
              "command again to continue", file=sys.stderr)
        return 130
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

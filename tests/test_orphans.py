"""Worker processes die with their parent: SIGKILL of the process that runs the pool (a
notebook kernel), or of the notebook runner above it, leaves no worker and no resource tracker
behind within 10 s (``brcd_lib.training.parallel.die_with_parent``).

Linux only (reads ``/proc``). The workers run a job that sleeps for minutes, so a survivor would
still be there when the test looks; every process the test starts is killed at the end whatever
happens.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")]

ROOT = Path(__file__).resolve().parents[1]
GRACE_S = 10.0

JOBS = '''
import os, time
def sleep_job(i):
    open(os.path.join(os.environ["ORPHAN_DIR"], f"worker-{i}-{os.getpid()}.pid"), "w").close()
    time.sleep(600)
    open(os.path.join(os.environ["ORPHAN_DIR"], f"survivor-{i}-{os.getpid()}"), "w").close()
'''

POOL = '''
import sys
sys.path.insert(0, {folder!r})
{before}
from brcd_lib.training.executors import run_in_workers
import orphan_jobs
if __name__ == "__main__":
    run_in_workers(orphan_jobs.sleep_job, [0, 1], workers=2, progress=False)
'''


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead (waiting to be reaped)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _ppid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _env(folder: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(folder), env.get("PYTHONPATH", "")])
    env["ORPHAN_DIR"] = str(folder)
    env["OMP_NUM_THREADS"] = "1"
    # the killed process cannot remove its temporary folders (the pool's brcd-pool-*): keep
    # them inside the test's folder, not in the machine's /tmp
    env["TMPDIR"] = str(folder)
    return env


def _wait_for_workers(folder: Path, proc: subprocess.Popen, timeout: float = 240) -> list[int]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        pids = [int(p.name.split("-")[2].split(".")[0]) for p in folder.glob("worker-*.pid")]
        if len(pids) == 2:
            return pids
        if proc.poll() is not None:
            raise AssertionError(f"the pool's process ended early: {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError("the workers did not start")


def _gone_within(pids: set[int], seconds: float) -> set[int]:
    deadline = time.time() + seconds
    while time.time() < deadline:
        alive = {p for p in pids if _alive(p)}
        if not alive:
            return set()
        time.sleep(0.1)
    return {p for p in pids if _alive(p)}


def _kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _tracker(pool_pid: int) -> set[int]:
    return {p for p in _descendants(pool_pid) if "resource_tracker" in _cmdline(p)}


@pytest.mark.parametrize("mechanism", ["pdeathsig+watchdog", "watchdog"])
def test_sigkill_of_the_pool_process_leaves_no_worker(tmp_path, mechanism):
    """The pool runs in a process like a notebook kernel; it is killed with SIGKILL. With
    ``watchdog`` the workers run as on a system without prctl (the portable fallback)."""
    (tmp_path / "orphan_jobs.py").write_text(JOBS)
    before = "" if mechanism == "pdeathsig+watchdog" else textwrap.dedent('''
        import brcd_lib.training.parallel as par
        _orig = par.die_with_parent
        def _watchdog_only(parent_pid=None, **kw):
            import sys
            sys.platform = "portable"      # no prctl: the watchdog thread alone
            try:
                return _orig(parent_pid, **kw)
            finally:
                sys.platform = "linux"
        par.die_with_parent = _watchdog_only
    ''')
    script = tmp_path / "pool.py"
    script.write_text(POOL.format(folder=str(tmp_path), before=before))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started: set[int] = set()
    try:
        workers = set(_wait_for_workers(tmp_path, proc))
        started = workers | _descendants(proc.pid)
        assert workers <= _descendants(proc.pid)
        tracker = _tracker(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        survivors = _gone_within(started, GRACE_S)
        assert not survivors, {p: _cmdline(p) for p in survivors}
        assert not tracker or not (tracker & survivors)
        assert not list(tmp_path.glob("survivor-*"))
    finally:
        _kill_all(started | {proc.pid})


NOTEBOOK_CELLS = [
    ("code", ["profile = 'smoke'\n", "results_root = '.'"], {"tags": ["parameters"]}),
    ("code", ["import sys\n", "sys.path.insert(0, {folder!r})\n",
              "from brcd_lib.training.executors import run_in_workers\n",
              "import orphan_jobs\n",
              "run_in_workers(orphan_jobs.sleep_job, [0, 1], workers=2, progress=False)"], {}),
]

RUNNER = '''
from brcd_lib.experiments import reproduce
reproduce.run("smoke", results_root={results!r}, notebook_dir={nbdir!r}, cache_dir={cache!r},
              force=True)
'''


def _write_notebook(path: Path, folder: Path) -> None:
    cells = [{"cell_type": kind, "metadata": meta, "execution_count": None, "outputs": [],
              "source": [line.format(folder=str(folder)) for line in src]}
             for kind, src, meta in NOTEBOOK_CELLS]
    path.write_text(json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}))


@pytest.mark.parametrize("killed", ["runner", "kernel"])
def test_sigkill_of_the_notebook_runner_or_its_kernel_leaves_no_worker(tmp_path, killed):
    """``reproduce.run`` executes a notebook whose cell runs two pool workers; the runner (or the
    kernel) is killed with SIGKILL. The kernel, the workers and the resource tracker are gone
    within 10 s, and nothing writes after the kill."""
    (tmp_path / "orphan_jobs.py").write_text(JOBS)
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    _write_notebook(nbdir / "01_orphans.ipynb", tmp_path)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER.format(results=str(tmp_path / "results"), nbdir=str(nbdir),
                                    cache=str(tmp_path / "cache")))
    proc = subprocess.Popen([sys.executable, str(runner)], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started: set[int] = set()
    try:
        workers = set(_wait_for_workers(tmp_path, proc))
        started = _descendants(proc.pid)
        assert workers <= started
        kernels = {p for p in started if "ipykernel" in _cmdline(p)}
        assert kernels, {p: _cmdline(p) for p in started}
        victim = proc.pid if killed == "runner" else next(iter(kernels))
        os.kill(victim, signal.SIGKILL)
        if killed == "kernel":  # the runner notices the dead kernel and stops with an error
            proc.wait(timeout=120)
            assert proc.returncode != 0
        else:
            proc.wait(timeout=30)
        survivors = _gone_within(started, GRACE_S)
        assert not survivors, {p: _cmdline(p) for p in survivors}
        assert not list(tmp_path.glob("survivor-*"))
    finally:
        _kill_all(started | {proc.pid})

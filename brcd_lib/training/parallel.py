"""Use every CPU core: worker processes for the student grids, threads for the serial phases.

The CPU profiles train small heads on cached features. One such run keeps one core busy and
gains nothing from a second intra-op thread (small matrix products; on a loaded 2-core machine
two threads ran 10-30x slower), so a grid uses the cores as *processes*:
:func:`brcd_lib.experiments.studies.prefetch_students` trains the grid's unfinished runs on the
grid's executor (:mod:`brcd_lib.training.executors`; ``local``: ``workers`` spawned processes, one
thread each, started with :func:`_init_worker`) and the study's serial loop then finds every run
in the run cache and only loads it. The serial phases that feed the
grid (SimCLR pretraining, backbone features over the database) are large convolutions and use
``workers`` intra-op threads instead (:func:`torch_threads`).

The number of workers is ``Profile.workers`` (1 = everything in the calling process, as
before), overridden by the environment variable ``BRCD_WORKERS`` and capped at the number of
CPUs. A worker builds its own :class:`~brcd_lib.experiments.experiment.Experiment` on the same
cache folder; the caches are content-keyed and written by atomic rename, and the teachers every
job needs are trained in the calling process first, so two workers never train the same run. A run's result
does not depend on which process trained it (same seeds, one thread: see
``tests/test_parallel.py``).

Workers die with the process that started them: each worker asks the kernel (Linux
``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to be killed when its parent dies and, as the portable
fallback, runs a watchdog thread that exits the worker when its parent process is gone (its
parent pid changed). Killing the notebook kernel or the runner with ``SIGKILL`` (the runner's
kernel then exits by itself: ipykernel polls its parent) therefore leaves no worker behind, and
multiprocessing's resource tracker exits when the last process holding its pipe is gone
(``tests/test_orphans.py``). A killed worker leaves at most a temporary file, which the next
run removes (:func:`brcd_lib.io.remove_stale_temp_files`).
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterator

import torch

from ..paths import PortableFormatter

log = logging.getLogger(__name__)

ENV_WORKERS = "BRCD_WORKERS"
ENV_THREADS = "BRCD_THREADS"


def resolve_threads(default: int = 1) -> int:
    """Intra-op threads of a CPU-profile process: ``$BRCD_THREADS`` or ``default``. A value that
    is not a positive integer raises ``ValueError`` naming the variable."""
    raw = os.environ.get(ENV_THREADS, "").strip()
    if not raw:
        return default
    try:
        n = int(raw, 10)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{ENV_THREADS} must be a positive integer (intra-op threads per "
                         f"process, e.g. 1), got {raw!r}; unset it or fix its value")
    return n


def resolve_workers(requested: int | None = None, *, profile_workers: int | None = None) -> int:
    """Workers to use: ``requested`` if given, else ``$BRCD_WORKERS``, else the profile's value
    (``None`` = every CPU); at least 1 and at most the number of CPUs. A malformed value raises
    ``ValueError``."""
    source, value = "workers", requested
    if value is None and os.environ.get(ENV_WORKERS, "").strip():
        source, value = ENV_WORKERS, os.environ[ENV_WORKERS].strip()
    if value is None:
        source, value = "Profile.workers", (os.cpu_count() or 1) if profile_workers is None \
            else profile_workers
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be a positive integer (number of worker processes), "
                         f"got {value!r}") from None
    if n < 1:
        raise ValueError(f"{source} must be a positive integer (number of worker processes), got {n}")
    return min(n, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` intra-op threads, then restore the previous setting."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- pool workers
def _init_worker(initializer: Callable[..., None] | None, initargs: tuple,
                 parent_pid: int | None = None) -> None:
    die_with_parent(parent_pid)
    torch.set_num_threads(1)
    # stdout, as the notebooks log (reporting.notebook.setup): a worker inherits the kernel's
    # stderr, which JupyterLab and executed notebooks show as a red error block
    handler = logging.StreamHandler(sys.stdout)
    handler.setLevel(logging.WARNING)  # a job's INFO lines go to its log file (executors)
    handler.setFormatter(PortableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    if initializer is not None:
        initializer(*initargs)


# --------------------------------------------------------------------------- dying with the parent
PR_SET_PDEATHSIG = 1
WATCHDOG_INTERVAL_S = 0.5


def die_with_parent(parent_pid: int | None = None, *, interval: float = WATCHDOG_INTERVAL_S) -> str:
    """Make this process exit when ``parent_pid`` (default: the current parent) dies.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (the kernel kills this process when the thread
    that started it exits; the pool starts its workers from the thread that submits, which waits
    for them). Everywhere: a daemon thread that checks every ``interval`` seconds whether the
    parent pid changed (re-parented to init or a subreaper) and then calls ``os._exit``. If the
    parent is already gone, exits at once. Returns the mechanisms installed ("pdeathsig+watchdog"
    or "watchdog")."""
    parent = os.getppid() if parent_pid is None else int(parent_pid)
    how = "watchdog"
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
                how = "pdeathsig+watchdog"
        except (OSError, AttributeError):  # no libc / no prctl: the watchdog still runs
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="brcd-parent-watchdog", daemon=True).start()
    return how

"""Where a grid's runs are trained: one option, ``executor``, with the same meaning everywhere.

============================  ===========================================================
``local``                     worker processes of this machine (:mod:`.parallel`), one
                              intra-op thread each: today's CPU grids
``gpus``                      one worker process per visible GPU of this machine, pinned
                              with ``CUDA_VISIBLE_DEVICES`` (``$BRCD_GPUS`` picks the GPUs)
``dask``                      a Dask scheduler with worker processes on this machine
                              (``distributed.LocalCluster``, ``workers`` of them)
``dask:<address or file>``    the workers of a running Dask scheduler
                              (``tcp://host:8786``, or the ``--scheduler-file`` it wrote)
``slurm[:N]``, ``pbs[:N]``    Dask workers submitted as batch jobs by dask-jobqueue (up to
                              N workers, default 8; queue, cores, memory, GPUs and
                              walltime from the jobqueue section of the Dask config)
============================  ===========================================================

The choice comes from the caller (notebooks' ``executor`` parameter, ``Experiment(executor=)``,
``--executor`` of ``python -m brcd_lib.reproduce`` and ``python -m brcd_lib.train``), else
``$BRCD_EXECUTOR``, else ``local``. The Dask backends need the ``cluster`` extra
(``pip install -e '.[cluster]'``; ``make install`` includes it).

Nothing here schedules: the process pool or the Dask scheduler does. Runs coordinate through
the run store on a file system every worker sees (content-keyed run folders, a lock per run:
:mod:`brcd_lib.experiments.runlock`), so a worker that dies mid-run leaves ``last.pt`` and the run
resumes on whichever worker gets it next.

:func:`run_jobs` calls ``fn(job)`` for every job on the chosen executor and returns an
:class:`Outcome` per job in completion order: its result, or the error it ended with, always with
the job's name and its log file. Each job writes its log (the kit's log lines at INFO and the
traceback of a failure) to ``<log_dir>/<name>.log``. A worker process that dies (killed, out of
memory, a crash) is named with the run it was training: ``local`` / ``gpus`` start a fresh pool
and resubmit the unfinished runs (the one whose worker died ``retries`` times at most; other runs
stopped with the broken pool are not charged); Dask reschedules the run on another worker by
itself (``distributed.scheduler.allowed-failures`` times). A run that still fails comes back as
an :class:`Outcome` with its error and log, never as an exception that hides which run it was.
"""
from __future__ import annotations

import atexit
import hashlib
import logging
import multiprocessing
import os
import pickle
import re
import shutil
import signal
import socket
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

from ..registry import Registry
from .parallel import _init_worker, resolve_threads
from .progress import tqdm

log = logging.getLogger(__name__)

ENV_EXECUTOR = "BRCD_EXECUTOR"
ENV_GPUS = "BRCD_GPUS"
DEFAULT_CLUSTER_WORKERS = 8
RETRIES = 1

EXECUTORS: Registry = Registry("executor")
EXECUTORS.add("local", "local", form="local", engine="concurrent.futures (spawned processes)",
              help="worker processes of this machine")
EXECUTORS.add("gpus", "gpus", form="gpus", engine="concurrent.futures (spawned processes)",
              help="one worker process per visible GPU, pinned with CUDA_VISIBLE_DEVICES")
EXECUTORS.add("dask", "dask", form="dask or dask:<scheduler address or file>",
              engine="Dask distributed", help="a local Dask cluster, or a running scheduler")
EXECUTORS.add("slurm", "slurm", form="slurm[:N]", engine="Dask + dask-jobqueue SLURMCluster",
              help="Dask workers submitted as Slurm jobs")
EXECUTORS.add("pbs", "pbs", form="pbs[:N]", engine="Dask + dask-jobqueue PBSCluster",
              help="Dask workers submitted as PBS jobs")


# --------------------------------------------------------------------------- the choice
class ExecutorUnavailable(ValueError):
    """The executor needs a package that is not installed (Dask, dask-jobqueue)."""


@dataclass(frozen=True)
class ExecutorSpec:
    """A parsed executor choice: ``kind`` (a name of :data:`EXECUTORS`) and ``target`` (the
    scheduler of ``dask:<target>``, the worker count of ``slurm:<N>``; "" when absent)."""

    kind: str
    target: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}" if self.target else self.kind

    @property
    def uses_dask(self) -> bool:
        return self.kind in ("dask", "slurm", "pbs")


def _forms() -> str:
    return ", ".join(e.meta["form"] for e in EXECUTORS.entries())


def parse_executor(value: str | ExecutorSpec, *, source: str = "executor") -> ExecutorSpec:
    """``value`` as an :class:`ExecutorSpec`; anything else raises ``ValueError`` naming
    ``source``, the value and the valid forms."""
    if isinstance(value, ExecutorSpec):
        return value
    text = str(value).strip() if isinstance(value, str) else None
    kind, _, target = (text or "").partition(":")
    kind, target = kind.strip().lower(), target.strip()
    problem = None
    if text is None:
        problem = f"must be a string, got {type(value).__name__} {value!r}"
    elif kind not in EXECUTORS:
        problem = f"got {value!r}"
    elif kind in ("local", "gpus") and target:
        problem = f"takes no ':...' part, got {value!r}"
    elif kind in ("slurm", "pbs") and target and not (target.isdigit() and int(target) > 0):
        problem = f"takes a positive worker count after ':', got {value!r}"
    elif kind == "dask" and _ and not target:
        problem = f"needs a scheduler address or file after ':', got {value!r}"
    if problem:
        raise ValueError(f"{source} must be one of {_forms()}; {problem} (docs/reliability.md, "
                         "'Grids on several GPUs or cluster nodes')")
    return ExecutorSpec(kind, target)


def resolve_executor(requested: str | ExecutorSpec | None = None) -> ExecutorSpec:
    """The executor to use: ``requested`` if given, else ``$BRCD_EXECUTOR``, else ``local``."""
    if requested is not None:
        return parse_executor(requested)
    raw = os.environ.get(ENV_EXECUTOR, "").strip()
    if raw:
        return parse_executor(raw, source=ENV_EXECUTOR)
    return ExecutorSpec("local")


def visible_gpus() -> list[str]:
    """The GPUs the ``gpus`` executor gives one worker each: ``$BRCD_GPUS`` (comma-separated
    ids, e.g. ``0,2``), else the entries of ``CUDA_VISIBLE_DEVICES``, else every device torch
    sees. Raises ``ValueError`` when there is none."""
    raw = os.environ.get(ENV_GPUS, "").strip()
    if raw:
        ids = [g.strip() for g in raw.split(",")]
        if any(not g for g in ids) or len(set(ids)) != len(ids):
            raise ValueError(f"{ENV_GPUS} must list distinct GPU ids separated by commas "
                             f"(e.g. 0,1), got {raw!r}")
        return ids
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if count and visible:
        return [g.strip() for g in visible.split(",") if g.strip()][:count]
    if count:
        return [str(i) for i in range(count)]
    raise ValueError("executor 'gpus' found no GPU (torch.cuda.device_count() is 0); use "
                     f"executor 'local' on this machine, or set {ENV_GPUS} to the GPU ids")


def executor_workers(spec: ExecutorSpec, workers: int) -> int:
    """How many runs go at once: ``workers`` (local, a local Dask cluster), the number of GPUs
    (gpus), the N of ``slurm:N`` / ``pbs:N``; a running scheduler: its workers' count, known only
    once connected (``workers`` is returned)."""
    if spec.kind == "gpus":
        return len(visible_gpus())
    if spec.kind in ("slurm", "pbs"):
        return int(spec.target or DEFAULT_CLUSTER_WORKERS)
    return workers


# --------------------------------------------------------------------------- one job
@dataclass
class Outcome:
    """What became of one job: ``result`` (``fn``'s return value) or ``error`` (one line), its
    ``name``, its ``log`` file, its ``attempts`` and where it ran (``host``/``pid`` of the last
    attempt)."""

    job: Any
    name: str
    index: int = 0                 # the job's position in the list given to run_jobs
    result: Any = None
    error: str | None = None
    log: str | None = None
    attempts: int = 1
    where: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


_READY: set[str] = set()  # initialisers already run in this worker process


def _ensure_initialised(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    """Run ``initializer(*initargs)`` once per worker process and argument set (a Dask worker
    serves many jobs and, under one scheduler, several grids)."""
    if initializer is None:
        return
    token = hashlib.sha256(pickle.dumps((initializer, initargs))).hexdigest()
    if token not in _READY:
        torch.set_num_threads(resolve_threads())  # one per process unless $BRCD_THREADS says
        initializer(*initargs)
        _READY.add(token)


def call_job(fn: Callable[[Any], Any], job: Any, name: str, log_path: str | None,
             initializer: Callable[..., None] | None = None, initargs: tuple = (),
             marker: str | None = None) -> tuple[str, Any, dict]:
    """Run one job in a worker: ``("ok", result, where)`` or ``("error", message, where)``; the
    kit's log lines (INFO and up) and a failure's traceback go to ``log_path`` (appended: a
    resubmitted run's attempts follow each other). ``marker`` (a file) says the job started."""
    where = {"host": socket.gethostname(), "pid": os.getpid()}
    if marker:
        with open(marker, "w") as fh:
            fh.write(str(os.getpid()))
    handler, kit, level = None, logging.getLogger("brcd_lib"), None
    if log_path:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        handler = logging.FileHandler(log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        kit.addHandler(handler)
        level = kit.level
        kit.setLevel(logging.INFO)
        kit.info("run %s started on host %s, pid %d", name, where["host"], where["pid"])
    try:
        _ensure_initialised(initializer, initargs)
        result = fn(job)
        kit.info("run %s finished", name)
        return "ok", result, where
    except Exception as err:  # the caller reports it by name; the traceback is in the log
        kit.error("run %s failed:\n%s", name, traceback.format_exc())
        return "error", f"{type(err).__name__}: {err}", where
    finally:
        if handler is not None:
            kit.removeHandler(handler)
            handler.close()
            kit.setLevel(level)


def job_file_name(name: str, job: Any) -> str:
    """A file name for a job's log: its name in safe characters plus a digest of the job."""
    try:
        digest = hashlib.sha256(pickle.dumps(job)).hexdigest()[:8]
    except Exception:  # an unpicklable job cannot reach a worker anyway
        digest = hashlib.sha256(repr(job).encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', name).strip('_') or 'job'}-{digest}"


# --------------------------------------------------------------------------- running a batch
def run_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], *, executor: str | ExecutorSpec,
             workers: int, names: Sequence[str] | None = None,
             initializer: Callable[..., None] | None = None, initargs: tuple = (),
             log_dir: str | None = None, desc: str = "runs", progress: bool = True,
             retries: int = RETRIES) -> list[Outcome]:
    """Call ``fn(job)`` for every job on ``executor``; one :class:`Outcome` per job, in
    completion order. ``fn`` and ``initializer`` (run once per worker process before its first
    job) must be importable module-level functions. ``names`` label the jobs in progress, logs
    and errors (default ``job 0``, ``job 1``, ...). ``log_dir``: where each job's log goes (a
    temporary folder when None, removed again when every job succeeded and kept when one
    failed, since the failure's message names its log; on a cluster it must be on the shared
    file system)."""
    spec = resolve_executor(executor)
    jobs = list(jobs)
    names = list(names) if names is not None else [f"job {i}" for i in range(len(jobs))]
    if len(names) != len(jobs):
        raise ValueError(f"{len(names)} names for {len(jobs)} jobs")
    if not jobs:
        return []
    temporary_logs = log_dir is None
    if temporary_logs:
        log_dir = tempfile.mkdtemp(prefix="brcd-jobs-")
    logs = [os.path.join(log_dir, job_file_name(n, j) + ".log") for n, j in zip(names, jobs)]
    n_workers = executor_workers(spec, workers)
    run = _run_dask if spec.uses_dask else _run_pool
    bar = tqdm(total=len(jobs), desc=f"{desc} ({spec.kind}, {n_workers} workers)",
               disable=not progress)
    out = []
    try:
        for outcome in run(spec, fn, jobs, names, logs, workers=n_workers,
                           initializer=initializer, initargs=initargs, retries=retries):
            out.append(outcome)
            if outcome.ok:
                result = outcome.result
                summary = result.get("summary") if isinstance(result, dict) else None
                bar.set_postfix_str(f"{outcome.name}{': ' + summary if summary else ''}",
                                    refresh=False)
            else:
                log.warning("run %s failed on the %s executor: %s (log: %s)", outcome.name,
                            spec, outcome.error, outcome.log)
            bar.update(1)
    finally:
        bar.close()
    if temporary_logs and len(out) == len(jobs) and all(o.ok for o in out):
        shutil.rmtree(log_dir, ignore_errors=True)  # nothing failed: no log is worth keeping
    return out


def run_in_workers(fn: Callable[[Any], Any], jobs: Sequence[Any], *, workers: int,
                   initializer: Callable[..., None] | None = None, initargs: tuple = (),
                   desc: str = "runs", progress: bool = True) -> list[tuple[Any, Any]]:
    """``fn(job)`` for every job in ``workers`` local worker processes: ``(job, result)`` pairs
    in completion order; a job that failed raises ``RuntimeError`` naming it and its log."""
    out = []
    for o in run_jobs(fn, jobs, executor="local", workers=workers, initializer=initializer,
                      initargs=initargs, desc=desc, progress=progress):
        if not o.ok:
            raise RuntimeError(f"{o.name} failed: {o.error} (log: {o.log})")
        out.append((o.job, o.result))
    return out


# --------------------------------------------------------------------------- local and gpus
def _init_pool_worker(parent_pid: int, gpu_queue) -> None:
    """A pool worker: dies with its parent, one thread, logs to stdout; pinned to the GPU it
    takes from ``gpu_queue`` (``gpus``) before anything starts CUDA."""
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get(timeout=60))
    _init_worker(None, (), parent_pid)


def _signal_name(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def _run_pool(spec: ExecutorSpec, fn, jobs, names, logs, *, workers: int, initializer,
              initargs, retries: int) -> Iterator[Outcome]:
    """Jobs on spawned worker processes; a pool broken by a dying worker is replaced and the
    unfinished jobs resubmitted (the dead worker's job counts one failure)."""
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe with torch's thread pools
    gpus = visible_gpus() if spec.kind == "gpus" else None
    pending = list(range(len(jobs)))
    deaths = {i: 0 for i in pending}
    breaks = 0
    with tempfile.TemporaryDirectory(prefix="brcd-pool-") as markers:
        while pending:
            for name in os.listdir(markers):
                os.remove(os.path.join(markers, name))
            queue = None
            if gpus is not None:
                queue = ctx.Queue()
                for g in gpus:
                    queue.put(g)
            size = min(workers, len(pending))
            broken = False
            pool = ProcessPoolExecutor(max_workers=size, mp_context=ctx,
                                       initializer=_init_pool_worker,
                                       initargs=(os.getpid(), queue))
            try:
                futures = {pool.submit(call_job, fn, jobs[i], names[i], logs[i], initializer,
                                       initargs, os.path.join(markers, str(i))): i
                           for i in pending}
                processes = dict(getattr(pool, "_processes", None) or {})
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        status, payload, where = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    pending.remove(i)
                    ok = status == "ok"
                    yield Outcome(jobs[i], names[i], index=i, result=payload if ok else None,
                                  error=None if ok else payload, log=logs[i],
                                  attempts=deaths[i] + 1, where=where)
                processes.update(getattr(pool, "_processes", None) or {})
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            if not broken:
                continue
            breaks += 1
            for outcome in _after_break(pending, markers, processes, deaths, jobs, names, logs,
                                        retries=retries):
                pending.remove(outcome.job_index)
                yield outcome.outcome
            if breaks > (retries + 1) * len(jobs):  # workers die with no run to blame
                for i in list(pending):
                    pending.remove(i)
                    yield Outcome(jobs[i], names[i], index=i, log=logs[i],
                                  error=f"worker processes kept dying (the pool broke {breaks} "
                                  "times); not resubmitted", attempts=deaths[i] + 1)


@dataclass
class _Lost:
    job_index: int
    outcome: Outcome


def _after_break(pending, markers, processes, deaths, jobs, names, logs, *,
                 retries: int) -> list[_Lost]:
    """Name the runs whose worker died when the pool broke; charge them one failure; give up
    (an Outcome with the error) on a run that has used its retries."""
    started = {}
    for i in pending:
        try:
            with open(os.path.join(markers, str(i))) as fh:
                started[i] = int(fh.read().strip() or 0)
        except (OSError, ValueError):
            pass
    codes = {pid: p.exitcode for pid, p in processes.items()}
    # the pool stops the other workers with SIGTERM once one died: the workers that ended
    # otherwise died on their own, and a run is to blame when its worker is one of them
    dead = {pid: code for pid, code in codes.items() if code not in (None, -signal.SIGTERM)}
    culprits = [i for i, pid in started.items() if pid in dead]
    if not culprits and dead:  # a worker died before it took a run: nobody is charged
        log.warning("worker process %s died (%s) before it started a run; resubmitting the %d "
                    "unfinished run(s) to a fresh pool", ", ".join(map(str, dead)),
                    ", ".join(_signal_name(c) for c in dead.values()), len(pending))
    elif not culprits:  # which worker died cannot be told: every run in flight is charged
        culprits = list(started)
    given_up = []
    for i in culprits:
        deaths[i] += 1
        how = _signal_name(codes.get(started[i]))
        if deaths[i] > retries:
            error = (f"its worker process (pid {started[i]}) died ({how}) while training it, "
                     f"{deaths[i]} times")
            given_up.append(_Lost(i, Outcome(jobs[i], names[i], index=i, error=error, log=logs[i],
                                             attempts=deaths[i],
                                             where={"pid": started[i]})))
        else:
            others = len(pending) - 1
            log.warning("worker process %d died (%s) while training run %s (log: %s); "
                        "resubmitting it to a fresh pool (attempt %d of %d)%s; a run resumes "
                        "from its last checkpoint", started[i], how, names[i], logs[i],
                        deaths[i] + 1, retries + 1,
                        f" with the {others} other unfinished run(s)" if others else "")
    return given_up


# --------------------------------------------------------------------------- dask
_CLIENTS: dict[tuple, Any] = {}
# Dask's statistical profiler samples every worker thread's stack every 10 ms for the dashboard;
# a run of many small tensor operations is Python-bound and pays for it: the kit's workers run
# without it (a single-run check on the shared 2-core machine, too noisy to quote, pointed there)
NO_PROFILER = "distributed.worker.profile.enabled"
NO_PROFILER_ENV = "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED"


def _package(name: str, spec: ExecutorSpec):
    """The module ``name`` that executor ``spec`` needs, or :class:`ExecutorUnavailable`."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise ExecutorUnavailable(f"executor {str(spec)!r} needs the package {name!r}: pip "
                                  "install -e '.[cluster]' (make install includes it)") from None


def dask_client(spec: ExecutorSpec, workers: int):
    """The Dask client of ``spec`` (one per process and spec, closed at exit): connected to the
    scheduler of ``dask:<address or file>``, or to a cluster started here (``dask``: a
    ``LocalCluster`` of ``workers`` single-threaded worker processes; ``slurm:N`` / ``pbs:N``:
    dask-jobqueue, scaled to N workers)."""
    key = (str(spec), workers if spec.kind == "dask" and not spec.target else None)
    if key in _CLIENTS:
        return _CLIENTS[key]
    Client = _package("distributed", spec).Client
    if spec.kind == "dask" and spec.target:
        try:
            client = (Client(scheduler_file=spec.target, timeout="60s")
                      if os.path.isfile(spec.target) else Client(spec.target, timeout="60s"))
        except (OSError, TimeoutError, ValueError) as err:
            raise ValueError(f"executor {str(spec)!r}: cannot reach the Dask scheduler "
                             f"{spec.target} ({type(err).__name__}: {err}); start it (`dask "
                             "scheduler --scheduler-file FILE`) or fix the address or file") \
                from None
    else:
        cluster = start_cluster(spec, workers)
        client = Client(cluster)
        client._brcd_cluster = cluster
    _CLIENTS[key] = client
    return client


def start_cluster(spec: ExecutorSpec, workers: int):
    """A Dask cluster for ``spec``: ``LocalCluster`` (``dask``) or dask-jobqueue's
    ``SLURMCluster`` / ``PBSCluster`` configured from the Dask config (``jobqueue.slurm`` /
    ``jobqueue.pbs``: queue, cores, memory, job_extra_directives, walltime, ...)."""
    distributed = _package("distributed", spec)
    import dask

    if spec.kind == "dask":
        with dask.config.set({NO_PROFILER: False}):  # the workers' nannies keep this config
            return distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                            processes=True, dashboard_address=None)
    dask_jobqueue = _package("dask_jobqueue", spec)
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[spec.kind]
    prologue = list(dask.config.get(f"jobqueue.{spec.kind}.job-script-prologue", None) or [])
    cluster = cls(job_script_prologue=prologue + [f"export {NO_PROFILER_ENV}=False"])
    cluster.scale(n=executor_workers(spec, workers))
    return cluster


@atexit.register
def close_clients() -> None:
    """Close the clients (and the clusters this process started)."""
    for client in list(_CLIENTS.values()):
        cluster = getattr(client, "_brcd_cluster", None)
        try:
            client.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # at exit: nothing left to report to
            pass
    _CLIENTS.clear()


def _run_dask(spec: ExecutorSpec, fn, jobs, names, logs, *, workers: int, initializer,
              initargs, retries: int) -> Iterator[Outcome]:
    """Jobs as Dask tasks (one per run, keyed by its name); the scheduler reschedules the run of
    a worker that died, up to ``distributed.scheduler.allowed-failures`` times."""
    from distributed import as_completed as dask_completed

    client = dask_client(spec, workers)
    futures = {}
    for i, job in enumerate(jobs):
        key = f"brcd-{os.path.basename(logs[i])[:-4]}-{os.urandom(4).hex()}"
        fut = client.submit(call_job, fn, job, names[i], logs[i], initializer, initargs,
                            key=key, pure=False)
        futures[fut] = i
    for fut in dask_completed(list(futures)):
        i = futures.pop(fut)
        try:
            status, payload, where = fut.result()
        except Exception as err:  # KilledWorker (its workers kept dying), a lost scheduler
            fut.release()
            kind = type(err).__name__
            if kind == "KilledWorker":
                import dask

                allowed = dask.config.get("distributed.scheduler.allowed-failures")
                message = (f"its Dask worker died while training it, {allowed + 1} times "
                           f"(KilledWorker; distributed.scheduler.allowed-failures = {allowed})")
            else:
                message = f"{kind}: {err}"
            yield Outcome(jobs[i], names[i], index=i, error=message, log=logs[i])
            continue
        fut.release()  # the result is here: the cluster need not keep (or recompute) it
        yield Outcome(jobs[i], names[i], index=i, result=payload if status == "ok" else None,
                      error=None if status == "ok" else payload, log=logs[i], where=where)

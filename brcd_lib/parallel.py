"""Use every CPU core: worker processes for the student grids, threads for the serial phases.

The CPU profiles train small heads on cached features. One such run keeps one core busy and
gains nothing from a second intra-op thread (small matrix products; on a loaded 2-core machine
two threads ran 10-30x slower), so a grid uses the cores as *processes*:
:func:`prefetch_students` trains the grid's unfinished runs in ``workers`` spawned processes
(one thread each) and the study's serial loop then finds every run in the run cache and only
loads it. The serial phases that feed the grid (SimCLR pretraining, backbone features over the
database) are large convolutions and use ``workers`` intra-op threads instead
(:func:`torch_threads`).

The number of workers is ``Profile.workers`` (1 = everything in the calling process, as
before), overridden by the environment variable ``BRCD_WORKERS`` and capped at the number of
CPUs. A worker builds its own :class:`~brcd_lib.pipeline.Experiment` on the same cache folder;
the caches are content-keyed and written by atomic rename, and the teachers every job needs are
trained in the calling process first, so two workers never train the same run. A run's result
does not depend on which process trained it (same seeds, one thread: see
``tests/test_parallel.py``).
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Iterator

import torch
from tqdm.auto import tqdm

from .distill import distiller_class

log = logging.getLogger(__name__)

ENV_WORKERS = "BRCD_WORKERS"


def resolve_workers(requested: int | None = None, *, profile_workers: int = 1) -> int:
    """Workers to use: ``requested`` if given, else ``$BRCD_WORKERS``, else the profile's value;
    at least 1 and at most the number of CPUs. A malformed value raises ``ValueError``."""
    source, value = "workers", requested
    if value is None and os.environ.get(ENV_WORKERS, "").strip():
        source, value = ENV_WORKERS, os.environ[ENV_WORKERS].strip()
    if value is None:
        source, value = "Profile.workers", profile_workers
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


# --------------------------------------------------------------------------- worker side
_WORKER_EXP = None


def _init_worker(profile, cache_dir: str, device: str) -> None:
    global _WORKER_EXP
    from .pipeline import Experiment

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _WORKER_EXP = Experiment(profile, cache_dir=cache_dir, device=device, progress=False,
                             workers=1)


def _run_student(job: dict) -> str | None:
    """Train (or load) one student run; returns ``None`` or the error it ended with."""
    from .studies import student_rows

    try:
        rows = student_rows(_WORKER_EXP, **job)
    except Exception as err:  # reported to the caller; the serial pass raises it in context
        return f"{type(err).__name__}: {err}"
    bad = [r["status"] for r in rows if r.get("status") != "ok"]
    return bad[0] if bad else None


# --------------------------------------------------------------------------- caller side
def prefetch_students(exp, jobs: list[dict], *, workers: int | None = None,
                      desc: str = "runs") -> int:
    """Train the student runs ``jobs`` (keyword dicts of :func:`studies.student_rows`) in
    ``workers`` processes (default ``exp.workers``) so that a serial pass over the same jobs
    only loads them. Does nothing with one worker or fewer than two jobs. The inputs the jobs
    share (teachers, their codes, the students' features and view banks) are built here first
    (:meth:`Experiment.prepare_inputs`). Returns the number of jobs sent to workers; a job that
    failed is logged and left to the serial pass (which records or raises it)."""
    workers = exp.workers if workers is None else resolve_workers(workers)
    if workers <= 1 or len(jobs) < 2:
        return 0
    # shared inputs (teachers, features, view banks) are built here, once, not by racing workers
    prepared = set()
    for job in jobs:
        exp.teacher(job["bits"], model=job.get("teacher_model"))
        needs = (repr(job.get("model")), repr(job.get("teacher_model")), repr(job.get("train")),
                 distiller_class(job.get("method", "none")).needs_rotations)
        if needs not in prepared:
            exp.prepare_inputs(**job)
            prepared.add(needs)
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe with torch's thread pools
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                             initializer=_init_worker,
                             initargs=(exp.profile, exp.cache_dir, exp.device)) as pool:
        futures = {pool.submit(_run_student, job): job for job in jobs}
        for fut in tqdm(as_completed(futures), total=len(futures),
                        desc=f"{desc} ({workers} workers)", disable=not exp.progress):
            error = fut.result()
            if error is not None:
                log.warning("worker run %s ended with %s (the serial pass decides)",
                            futures[fut], error)
    return len(jobs)

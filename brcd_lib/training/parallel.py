"""Use every CPU core: worker processes for the student grids, threads for the serial phases.

The CPU profiles train small heads on cached features. One such run keeps one core busy and
gains nothing from a second intra-op thread (small matrix products; on a loaded 2-core machine
two threads ran 10-30x slower), so a grid uses the cores as *processes*:
:func:`brcd_lib.experiments.studies.prefetch_students` trains the grid's unfinished runs with
:func:`run_in_workers` in ``workers`` spawned processes (one thread each) and the study's serial
loop then finds every run in the run cache and only loads it. The serial phases that feed the
grid (SimCLR pretraining, backbone features over the database) are large convolutions and use
``workers`` intra-op threads instead (:func:`torch_threads`).

The number of workers is ``Profile.workers`` (1 = everything in the calling process, as
before), overridden by the environment variable ``BRCD_WORKERS`` and capped at the number of
CPUs. A worker builds its own :class:`~brcd_lib.experiments.experiment.Experiment` on the same
cache folder; the caches are content-keyed and written by atomic rename, and the teachers every
job needs are trained in the calling process first, so two workers never train the same run. A run's result
does not depend on which process trained it (same seeds, one thread: see
``tests/test_parallel.py``).
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Iterator, Sequence

import torch
from .progress import tqdm

log = logging.getLogger(__name__)

ENV_WORKERS = "BRCD_WORKERS"


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


# --------------------------------------------------------------------------- process pool
def run_in_workers(fn: Callable[[Any], Any], jobs: Sequence[Any], *, workers: int,
                   initializer: Callable[..., None] | None = None, initargs: tuple = (),
                   desc: str = "runs", progress: bool = True) -> list[tuple[Any, Any]]:
    """Call ``fn(job)`` for every job in ``workers`` spawned processes (one intra-op thread
    each, set before ``initializer(*initargs)`` runs); returns ``(job, result)`` pairs in
    completion order. ``fn`` and ``initializer`` must be importable module-level functions."""
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe with torch's thread pools
    out = []
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                             initializer=_init_worker, initargs=(initializer, initargs)) as pool:
        futures = {pool.submit(fn, job): job for job in jobs}
        for fut in tqdm(as_completed(futures), total=len(futures),
                        desc=f"{desc} ({workers} workers)", disable=not progress):
            out.append((futures[fut], fut.result()))
    return out


def _init_worker(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    torch.set_num_threads(1)
    # stdout, as the notebooks log (reporting.notebook.setup): a worker inherits the kernel's
    # stderr, which JupyterLab and executed notebooks show as a red error block
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    if initializer is not None:
        initializer(*initargs)

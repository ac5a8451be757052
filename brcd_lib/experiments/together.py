"""Training the runs of a grid together: the teachers first, then the students, each phase in
step so that every epoch's online views go through each frozen backbone once.

:func:`train_together` trains given jobs, :func:`train_plan` every run of a profile's notebooks
(``python -m brcd_lib.reproduce`` calls it first for profiles with ``train_together``). In one
process the runs of a phase form one :class:`~brcd_lib.training.together.Lockstep` inside
:meth:`FeatureStore.sharing() <brcd_lib.training.features.FeatureStore.sharing>`: the first run
to reach an epoch builds the online banks of every backbone of the phase, the others read them.
With ``workers > 1`` the students are spread over worker processes (each a Lockstep of its share),
and this process builds each epoch's banks for all of them, writes them to the feature cache and
deletes them when every worker is past that epoch (:func:`_feed_workers`); the workers wait for
the files instead of building them. Every run goes through the one-run path
(:meth:`Experiment.teacher`, :meth:`Experiment.student`) and the run cache, so its result is the
one it gets alone, and a finished run is loaded, not trained again.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from typing import Any, Sequence

from ..config import config_hash
from ..distill import get_distiller
from ..io import atomic_write_json
from ..training import executors
from ..training.features import _tag, module_fingerprint, online_key, online_views_id
from ..training.together import AHEAD, Lockstep
from .experiment import Experiment

log = logging.getLogger(__name__)

__all__ = ["train_together", "train_plan", "plan_jobs", "unique_jobs", "teacher_specs", "AHEAD"]

def _student_kwargs(job: dict) -> dict:
    """A grid job (``studies.student_rows`` keywords) as keywords of :meth:`Experiment.student`."""
    kw = {k: v for k, v in job.items() if k != "variant"}
    if job.get("variant") is not None:
        kw["label"] = job["variant"]
    return kw


def unique_jobs(jobs: Sequence[dict], profile=None) -> list[dict]:
    """``jobs`` without repeats: jobs that train the same run (same settings once the profile's
    defaults are filled in; the ``variant`` label aside) are kept once, the first."""
    seen, out = set(), []
    for job in jobs:
        key = _run_identity(job, profile)
        if key not in seen:
            seen.add(key)
            out.append(job)
    return out


def _run_identity(job: dict, profile) -> str:
    """What makes a student run (as :meth:`Experiment.student` keys it), defaults filled in."""
    from . import plan

    kw = _student_kwargs(job)
    kw.pop("label", None)
    if profile is not None:
        method = kw.get("method", "none")
        kw = {"bits": kw["bits"], "method": method, "seed": kw.get("seed", 0),
              "settings": plan.distill_kwargs(profile, method, kw.get("distill_kwargs")),
              "model": kw.get("model") or profile.student,
              "teacher_model": kw.get("teacher_model") or profile.teacher,
              "train": kw.get("train") or profile.student_train,
              "teacher_seed": profile.teacher_seed if kw.get("teacher_seed") is None
              else kw["teacher_seed"], "weight": kw.get("distill_weight", 1.0)}
    return config_hash(sorted((k, repr(v)) for k, v in kw.items()))


def teacher_specs(exp, jobs: Sequence[dict], teachers: Sequence[dict] = ()) -> list[dict]:
    """Keywords of :meth:`Experiment.teacher` for every teacher the jobs read, and ``teachers``."""
    specs = [dict(t) for t in teachers] + [
        {"bits": j["bits"], "model": j.get("teacher_model"), "seed": j.get("teacher_seed")}
        for j in jobs]
    seen, out = set(), []
    for spec in specs:
        key = config_hash(spec["bits"], repr(spec.get("model") or exp.profile.teacher),
                          exp.profile.teacher_seed if spec.get("seed") is None else spec["seed"])
        if key not in seen:
            seen.add(key)
            out.append(spec)
    return out


def _in_step(exp, calls: Sequence) -> list[tuple[Any, BaseException | None]]:
    with exp.store.sharing():
        return Lockstep().run(list(calls))


def train_together(exp, jobs: Sequence[dict], *, teachers: Sequence[dict] = (),
                   workers: int = 1) -> list[tuple[dict, BaseException | None]]:
    """Train (or load) the teachers of ``jobs`` and ``teachers`` together, then the student runs
    ``jobs`` together; returns ``(job, error)`` for every unique job (``error`` None when it
    finished). A teacher that fails raises; a student that fails is returned."""
    jobs = unique_jobs(jobs, exp.profile)
    specs = teacher_specs(exp, jobs, teachers)
    for spec, (_, error) in zip(specs, _in_step(exp, [
            (lambda s=s: exp.teacher(**s)) for s in specs])):
        if error is not None:
            raise error
    if workers > 1 and len(jobs) > 1:
        return _train_in_workers(exp, jobs, workers)
    results = _in_step(exp, [(lambda j=j: exp.student(**_student_kwargs(j))) for j in jobs])
    return [(job, error) for job, (_, error) in zip(jobs, results)]


def plan_jobs(profile) -> tuple[list[dict], list[dict]]:
    """(student jobs, teachers) of every grid of ``profile``'s notebooks
    (:func:`brcd_lib.experiments.plan.all_jobs`; the teachers of notebook 02 besides the jobs')."""
    from . import plan

    jobs = [job.kwargs for grid in plan.all_jobs(profile).values() for job in grid]
    return unique_jobs(jobs, profile), [{"bits": b} for b in profile.bits]


def train_plan(exp, *, workers: int | None = None) -> list[tuple[dict, BaseException | None]]:
    """Train (or load) every run the notebooks of ``exp``'s profile train, together
    (:func:`train_together`; ``workers``: default the Experiment's). A student that fails is
    logged and left to its notebook, which records it."""
    jobs, teachers = plan_jobs(exp.profile)
    results = train_together(exp, jobs, teachers=teachers,
                             workers=exp.workers if workers is None else workers)
    for job, error in results:
        if error is not None:
            log.warning("run %s ended with %s (its notebook records it)", job, error)
    return results


# ------------------------------------------------------------------------------------------------
# worker processes fed by this one
# ------------------------------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(profile, cache_dir: str, device: str, coord: str, wait_s: float,
                 online: str, bank_batch: int | None) -> None:
    exp = Experiment(profile, cache_dir=cache_dir, device=device, progress=False, workers=1,
                     online=online, bank_batch=bank_batch)
    exp.store.online_wait = wait_s  # the feeding process builds the banks
    _WORKER.update(exp=exp, coord=coord)


def _train_group(group: tuple[int, tuple[dict, ...]]) -> list[str | None]:
    """A worker's share of the students, in step; reports its lowest epoch to the feeder."""
    index, jobs = group
    exp, coord = _WORKER["exp"], _WORKER["coord"]
    progress = os.path.join(coord, f"progress-{index}.json")

    def report(epoch):
        atomic_write_json(progress, {"epoch": -1 if epoch is None else epoch,
                                     "done": epoch is None})

    report(0)
    results = Lockstep(on_advance=report).run(
        [(lambda j=j: exp.student(**_student_kwargs(j))) for j in jobs])
    report(None)
    return [None if e is None else f"{type(e).__name__}: {e}" for _, e in results]


def _bank_users(exp, jobs: Sequence[dict]) -> dict[str, dict]:
    """views id -> {"views": drawer, "options": ..., "users": {fingerprint: (net, rotations)}}:
    every backbone the jobs' runs read, with the most rotated copies any of them needs."""
    out: dict[str, dict] = {}
    for job in jobs:
        kw = _student_kwargs(job)
        model = kw.get("model") or exp.profile.student
        train = kw.get("train") or exp.profile.student_train
        if train.feature_views > 0 or not model.freeze_backbone:
            continue
        teacher = exp.teacher(kw["bits"], model=kw.get("teacher_model"), seed=kw.get("teacher_seed"))
        net = exp.build_network(model, kw["bits"], role="student", seed=kw.get("seed", 0))
        settings = exp.distill_config(kw.get("method", "none"), kw.get("distill_kwargs")).kwargs
        rotations = get_distiller(kw.get("method", "none"), **settings).rotations
        views = exp.train_views(train)
        options = dict(seed=exp.bank_seed(train, kw.get("seed", 0)),
                       split_hash=exp.splits.split_hash, transform_desc=exp._transform_desc(True),
                       batch=exp.bank_batch or train.batch_size)
        vid = online_views_id(kind=views.kind, **options)
        entry = out.setdefault(vid, {"views": views, "options": options, "users": {},
                                     "epochs": 0})
        entry["epochs"] = max(entry["epochs"], train.epochs)
        for n in (net, teacher.net):
            fp = module_fingerprint(n.backbone) + _tag(n)
            old = entry["users"].get(fp)
            entry["users"][fp] = (n, max(rotations, old[1] if old else 0))
    return out


def _feed_workers(exp, groups: dict[str, dict], coord: str, n_workers: int,
                  stop: threading.Event) -> None:
    """Build every epoch's banks for the workers (at most :data:`AHEAD` epochs ahead of the
    slowest), and delete an epoch's files once every worker is past it."""
    store = exp.store
    store.online_persist = True
    epochs = max((g["epochs"] for g in groups.values()), default=0)
    built: list[tuple[int, list[str]]] = []

    def lowest() -> float:
        low = float("inf")
        for i in range(n_workers):
            path = os.path.join(coord, f"progress-{i}.json")
            try:
                with open(path, encoding="utf-8") as fh:
                    state = json.load(fh)
            except (OSError, ValueError):
                return 0.0  # not started yet
            if not state.get("done"):
                low = min(low, state["epoch"])
        return low

    def release(low: float) -> None:
        while built and built[0][0] < low:
            store.drop_online(built.pop(0)[1])

    try:
        for epoch in range(epochs):
            while not stop.is_set() and epoch > lowest() + AHEAD:
                time.sleep(0.05)
            if stop.is_set() or lowest() == float("inf"):
                break
            keys = []
            for group in groups.values():
                users = [(net, rot) for net, rot in group["users"].values()]
                store.online_bank(users, group["views"], epoch=epoch, device=exp.device,
                                  progress=exp.progress, **group["options"])
                vid = online_views_id(kind=group["views"].kind, **group["options"])
                keys += [online_key(net, views_id=vid, epoch=epoch, rotation=r)
                         for net, rot in users for r in range(max(rot, 1))]
            built.append((epoch, keys))
            release(lowest())
        while built and not stop.is_set() and lowest() != float("inf"):  # the last epochs
            release(lowest())
            time.sleep(0.05)
    finally:
        store.online_persist = False
        release(float("inf"))


def _check_free_space(exp, groups: dict[str, dict]) -> None:
    """Stop before any training when the feature cache cannot hold the online banks the workers
    read (:data:`AHEAD` + 2 epochs at a time)."""
    from ..io import StorageError
    from ..training.features import bank_dtype

    per_epoch = 0
    for group in groups.values():
        n = len(group["views"])
        for net, rotations in group["users"].values():
            copies = 2 + max(rotations - 1, 0)
            per_epoch += copies * n * int(net.backbone.out_dim) * bank_dtype(net).itemsize
    need = (AHEAD + 2) * per_epoch
    folder = os.path.join(exp.cache_dir, "features")
    os.makedirs(folder, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise StorageError(f"the online banks the worker processes read need about "
                           f"{need / 2**30:.2f} GiB in {folder} ({AHEAD + 2} epochs of "
                           f"{per_epoch / 2**20:.0f} MiB); it has {free / 2**30:.2f} GiB free: "
                           "free space, point BRCD_CACHE elsewhere, or train in one process "
                           "(workers=1: the banks stay in memory)")


def _train_in_workers(exp, jobs: list[dict], workers: int) -> list[tuple[dict, BaseException | None]]:
    """The students in ``workers`` processes, fed their online banks by this process."""
    for job in jobs:  # teachers' codes, clean features, clusters: built once, here
        exp.prepare_inputs(**{k: v for k, v in job.items() if k != "variant"})
    groups = _bank_users(exp, jobs)
    _check_free_space(exp, groups)
    n = min(workers, len(jobs))
    shares = [(i, tuple(jobs[i::n])) for i in range(n)]
    coord = tempfile.mkdtemp(prefix="together-", dir=os.path.join(exp.cache_dir, "features"))
    stop = threading.Event()
    feeder = threading.Thread(target=_feed_workers, args=(exp, groups, coord, n, stop),
                              daemon=True, name="online-bank-feeder")
    feeder.start()
    try:
        done = {share[0]: errors for share, errors in executors.run_in_workers(
            _train_group, shares, workers=n, initializer=_init_worker,
            initargs=(exp.profile, exp.cache_dir, exp.device, coord, WAIT_S, exp.online,
                      exp.bank_batch), desc="students together", progress=exp.progress)}
    finally:
        stop.set()
        feeder.join()
        shutil.rmtree(coord, ignore_errors=True)
    out = []
    for share in shares:
        for job, err in zip(share[1], done[share[0]]):
            out.append((job, None if err is None else RuntimeError(err)))
    return out


WAIT_S = 6 * 3600.0
"""Seconds a worker waits for an epoch's banks before it gives up."""

"""Runs trained together (issue #29): :class:`brcd_lib.training.together.Lockstep` takes turns
epoch by epoch with each task's random state its own, and
:func:`brcd_lib.experiments.together.train_together` (one process, and worker processes fed their
online banks) gives every run the result of the one-run path."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from brcd_lib.experiments.experiment import Experiment
from brcd_lib.experiments.profiles import get_profile
from brcd_lib.experiments.together import plan_jobs, train_together, unique_jobs
from brcd_lib.experiments.preflight import run_plan
from brcd_lib.training.together import Lockstep, current_epoch, gate
from fakes import online_cpu_profile

JOBS = [dict(bits=16, method=m, seed=s) for m in ("kd", "brcd", "sskd") for s in (0, 1)]


def test_lockstep_takes_turns_by_epoch_and_keeps_each_task_random_state():
    order = []

    def task(name, epochs, seed):
        def run():
            torch.manual_seed(seed)
            np.random.seed(seed)
            random.seed(seed)
            draws = []
            for epoch in range(epochs):
                gate(epoch)
                order.append((name, epoch, current_epoch()))
                draws.append((float(torch.rand(())), float(np.random.rand()), random.random()))
            return draws
        return run

    tasks = [task("a", 3, 1), task("b", 2, 2), task("c", 3, 3)]
    alone = []
    for t in tasks:
        order.clear()
        alone.append(t())
    order.clear()
    torch.manual_seed(99)
    before = torch.get_rng_state()
    results = Lockstep().run(tasks)
    assert [(n, e) for n, e, _ in order] == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1),
                                             ("c", 1), ("a", 2), ("c", 2)]
    assert all(e == current for _, e, current in order)
    assert [r for r, _ in results] == alone  # each task's draws are the ones it makes alone
    assert all(e is None for _, e in results)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's state is restored
    assert current_epoch() is None and gate(3) is None  # outside a Lockstep: no-ops


def test_lockstep_reports_errors_and_goes_on():
    seen = []

    def bad():
        gate(0)
        raise ValueError("run 1 broke")

    def good():
        for e in range(3):
            gate(e)
        return "ok"

    results = Lockstep(on_advance=seen.append).run([bad, good])
    assert results[1] == ("ok", None)
    assert isinstance(results[0][1], ValueError) and "run 1 broke" in str(results[0][1])
    assert seen == [0, 1, 2, None]
    nested = Lockstep().run([lambda: Lockstep().run([lambda: 1])])
    assert isinstance(nested[0][1], RuntimeError)
    assert "inside another Lockstep" in str(nested[0][1])


def test_plan_jobs_are_the_runs_the_preflight_counts():
    for name in ("paper", "paper_rehearsal", "digits"):
        profile = get_profile(name)
        jobs, teachers = plan_jobs(profile)
        assert len(jobs) == len(run_plan(profile)["students"]), name
        assert teachers == [{"bits": b} for b in profile.bits]
    assert unique_jobs([dict(bits=16, method="kd", seed=0),
                        dict(bits=16, method="kd", seed=0, variant="x")]) == \
        [dict(bits=16, method="kd", seed=0)]


def _records(exp: Experiment) -> list:
    teacher = exp.teacher(16)
    out = [(teacher.metrics, teacher.record["history"])]
    for job in JOBS:
        run = exp.student(**job)
        out.append((run.metrics, run.record["history"]))
    return out


def _together_equals_alone(tmp_path, workers: int) -> None:
    import dataclasses

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        profile = online_cpu_profile()
        alone = Experiment(dataclasses.replace(profile, name="alone"), cache_dir=str(tmp_path),
                           device="cpu", progress=False)
        want = _records(alone)
        together = Experiment(profile, cache_dir=str(tmp_path), device="cpu", progress=False)
        results = train_together(together, JOBS, workers=workers)
        assert [e for _, e in results] == [None] * len(JOBS)
        passes = dict(together.store.built_passes)
        got = _records(together)  # loaded from the run cache: nothing is trained again
        assert together.store.built_passes == passes
        assert got == want
    finally:
        torch.set_num_threads(threads)


def test_runs_trained_together_equal_the_one_run_path(tmp_path):
    _together_equals_alone(tmp_path, workers=1)


@pytest.mark.slow
def test_runs_trained_in_fed_worker_processes_equal_the_one_run_path(tmp_path):
    _together_equals_alone(tmp_path, workers=2)
    leftovers = [p for p in (tmp_path / "features").iterdir() if p.name.startswith("together-")]
    assert leftovers == []  # the feeder removed its folder and the banks it wrote

"""Worker processes for the grids (brcd_lib.training.parallel): the number of workers, thread restoring,
and a run trained by a spawned worker equal to the same run trained in the calling process."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from brcd_lib.training import parallel
from brcd_lib.experiments.studies import prefetch_students
from brcd_lib.training.parallel import resolve_workers, torch_threads
from brcd_lib.experiments.profiles import get_profile
from brcd_lib.experiments.train import override_profile

from fakes import tiny_settings

SETTINGS = tiny_settings()


def test_resolve_workers_sources_and_cap(monkeypatch):
    monkeypatch.delenv(parallel.ENV_WORKERS, raising=False)
    assert resolve_workers(profile_workers=1) == 1
    assert resolve_workers(profile_workers=10_000) == (os.cpu_count() or 1)  # capped
    monkeypatch.setenv(parallel.ENV_WORKERS, "1")
    assert resolve_workers(profile_workers=2) == 1  # the environment beats the profile
    assert resolve_workers(1, profile_workers=2) == 1  # an explicit value beats both
    monkeypatch.setenv(parallel.ENV_WORKERS, "two")
    with pytest.raises(ValueError, match="BRCD_WORKERS must be a positive integer"):
        resolve_workers(profile_workers=1)
    monkeypatch.delenv(parallel.ENV_WORKERS)
    with pytest.raises(ValueError, match="positive integer"):
        resolve_workers(0)


def test_cpu_profiles_use_every_core_by_default(monkeypatch):
    monkeypatch.delenv(parallel.ENV_WORKERS, raising=False)
    for name in ("digits", "fashion"):
        assert get_profile(name).workers is None
        assert resolve_workers(profile_workers=get_profile(name).workers) == (os.cpu_count() or 1)


def test_torch_threads_restores_the_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_prefetch_with_one_worker_does_nothing(tmp_path):
    from brcd_lib.experiments.experiment import Experiment

    ex = Experiment(override_profile(get_profile("smoke"), SETTINGS), cache_dir=str(tmp_path),
                    progress=False, workers=1)
    assert prefetch_students(ex, [dict(bits=16, method="none", seed=0)] * 2) == []
    assert not (tmp_path / "runs").exists()  # not even the teacher was trained


@pytest.mark.slow
def test_prepare_inputs_builds_the_shared_caches_once(tmp_path):
    """Everything a run reads besides its own training is built before the workers start: a
    second preparation and the runs themselves add no feature cache (SSKD: rotated banks too)."""
    from brcd_lib.experiments.experiment import Experiment

    ex = Experiment(override_profile(get_profile("smoke"), SETTINGS), cache_dir=str(tmp_path),
                    progress=False, workers=1)
    files = lambda: sorted((tmp_path / "features").glob("*.pt"))  # noqa: E731
    ex.prepare_inputs(16, method="kd", seed=0)
    plain = files()
    ex.prepare_inputs(16, method="sskd", seed=0, variant="ignored")
    rotated = files()
    assert len(rotated) == len(plain) + 6  # rotations 1..3 of the student and the teacher bank
    # smoke draws a bank per run seed (bank_seed="run"): another seed prepares its own banks
    assert ex.profile.student_train.bank_seed == "run"
    ex.prepare_inputs(16, method="kd", seed=1)
    rotated = files()
    assert len(rotated) > len(plain) + 6
    ex.prepare_inputs(16, method="sskd", seed=0)
    ex.student(16, method="sskd", seed=0)
    ex.student(16, method="kd", seed=0)
    assert files() == rotated


@pytest.mark.slow
def test_worker_runs_equal_serial_runs(tmp_path):
    """Two runs trained by two spawned workers are found in the run cache by the serial pass and
    have the metrics, history and checkpoints of the same runs trained in this process."""
    from brcd_lib.experiments.experiment import Experiment

    profile = override_profile(get_profile("smoke"), SETTINGS)
    jobs = [dict(bits=16, method="kd", seed=0), dict(bits=16, method="brcd", seed=1)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        par = Experiment(profile, cache_dir=str(tmp_path), progress=False, workers=2)
        assert par.workers == min(2, os.cpu_count() or 1)
        if par.workers < 2:
            pytest.skip("one CPU: no worker processes")
        outcomes = prefetch_students(par, jobs)
        assert len(outcomes) == 2 and all(o.ok for o in outcomes)
        run_dirs = sorted((tmp_path / "runs" / profile.name).glob("student-*"))
        assert len(run_dirs) == 2 and all((d / "result.json").exists() for d in run_dirs)
        from_workers = {d.name: json.loads((d / "result.json").read_text()) for d in run_dirs}
        loaded = [par.student(j["bits"], method=j["method"], seed=j["seed"]) for j in jobs]
        assert {os.path.basename(r.run_dir) for r in loaded} == set(from_workers)
        for d in run_dirs:  # train the same runs again, here, with one process
            shutil.rmtree(d)
        ser = Experiment(profile, cache_dir=str(tmp_path), progress=False, workers=1)
        for job, run in zip(jobs, loaded):
            again = ser.student(job["bits"], method=job["method"], seed=job["seed"])
            assert again.run_dir == run.run_dir
            assert again.metrics == run.metrics
            assert again.record["history"] == from_workers[os.path.basename(run.run_dir)]["history"]
            for p in ("symmetric", "asymmetric"):
                for a, b in zip(again.nets[p].head.parameters(), run.nets[p].head.parameters()):
                    assert torch.equal(a, b)
    finally:
        torch.set_num_threads(threads)

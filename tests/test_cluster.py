"""Grids beyond one process pool (brcd_lib.training.executors) and the run store as the
coordination between workers and nodes (brcd_lib.experiments.runlock).

* the executor choice: its forms, its errors, ``$BRCD_EXECUTOR``; the GPU list of ``gpus``;
* ``gpus`` on the CPU with a faked device list: one worker per listed GPU, each pinned to its own;
* the run lock: two processes asking for the same run train it once; a lock whose holder died on
  this host is taken over at once, one that stopped changing after ``stale_after_s``, a live one
  never;
* Dask for real: a ``distributed.LocalCluster`` (a scheduler and two worker processes started
  here) trains a grid of the shrunken smoke profile while the test SIGKILLs the worker training a
  run; the scheduler resubmits that run, it resumes from its ``last.pt`` and the grid completes;
  a job whose worker always dies comes back by name with its log (KilledWorker).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from brcd_lib.experiments.runlock import LockTimeout, RunLock
from brcd_lib.training import executors
from brcd_lib.training.executors import (ExecutorSpec, parse_executor, resolve_executor,
                                         run_jobs, visible_gpus)

import cluster_jobs
from fakes import tiny_settings

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------- the choice
def test_executor_forms_and_errors(monkeypatch):
    monkeypatch.delenv(executors.ENV_EXECUTOR, raising=False)
    assert resolve_executor() == ExecutorSpec("local")
    assert parse_executor("gpus") == ExecutorSpec("gpus")
    assert parse_executor(" Dask ") == ExecutorSpec("dask")
    assert parse_executor("dask:tcp://10.0.0.1:8786") == ExecutorSpec("dask", "tcp://10.0.0.1:8786")
    assert str(parse_executor("slurm:16")) == "slurm:16"
    assert executors.executor_workers(parse_executor("slurm:16"), 2) == 16
    assert executors.executor_workers(parse_executor("pbs"), 2) == executors.DEFAULT_CLUSTER_WORKERS
    for bad, fragment in [("ray", "got 'ray'"), ("local:4", "takes no ':...' part"),
                          ("slurm:x", "positive worker count"), ("dask:", "scheduler address"),
                          (3, "must be a string")]:
        with pytest.raises(ValueError, match="executor must be one of local, gpus, dask") as err:
            parse_executor(bad)
        assert fragment in str(err.value)
    monkeypatch.setenv(executors.ENV_EXECUTOR, "dask:sched.json")
    assert resolve_executor() == ExecutorSpec("dask", "sched.json")
    assert resolve_executor("local") == ExecutorSpec("local")  # the caller's choice wins
    monkeypatch.setenv(executors.ENV_EXECUTOR, "slurmm")
    with pytest.raises(ValueError, match="BRCD_EXECUTOR must be one of"):
        resolve_executor()


def test_gpu_list(monkeypatch):
    monkeypatch.setenv(executors.ENV_GPUS, "0, 2")
    assert visible_gpus() == ["0", "2"]
    monkeypatch.setenv(executors.ENV_GPUS, "1,1")
    with pytest.raises(ValueError, match="distinct GPU ids"):
        visible_gpus()
    monkeypatch.delenv(executors.ENV_GPUS)
    monkeypatch.setattr(executors.torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="found no GPU.*use executor 'local'"):
        visible_gpus()


def test_experiment_and_reproduce_take_the_choice(monkeypatch, tmp_path, capsys):
    from brcd_lib.experiments.experiment import Experiment
    from brcd_lib.experiments.reproduce import main

    monkeypatch.delenv(executors.ENV_EXECUTOR, raising=False)
    assert Experiment("smoke", cache_dir=str(tmp_path), executor="dask").executor.kind == "dask"
    assert main(["--profile", "smoke", "--executor", "spark"]) == 2
    err = capsys.readouterr().err
    assert "error: executor must be one of" in err and "Traceback" not in err


def test_train_cli_rejects_a_bad_executor_in_one_line(tmp_path, capsys):
    from brcd_lib.experiments.train import main

    rc = main(["--profile", "smoke", "--cache-dir", str(tmp_path), "--executor", "dask:"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "error: executor must be one of local, gpus, dask" in err and "'dask:'" in err


@pytest.mark.slow
def test_train_cli_sends_one_run_to_a_gpu_worker(tmp_path, capsys, monkeypatch):
    """``python -m brcd_lib.train --executor gpus``: the run trains in a worker pinned to the
    (faked) GPU, the CLI prints its record and the run's log names the worker."""
    from brcd_lib.experiments.train import main

    monkeypatch.setenv(executors.ENV_GPUS, "7")
    sets = [a for s in tiny_settings() for a in ("--set", s)]
    rc = main(["--profile", "smoke", "--role", "teacher", "--bits", "16", "--device", "cpu",
               "--no-progress", "--cache-dir", str(tmp_path), "--executor", "gpus", *sets])
    out = capsys.readouterr().out
    assert rc == 0, out
    record = json.loads(out[out.index("{"):])
    assert record["role"] == "teacher" and Path(record["run_dir"], "result.json").exists()
    (log,) = (tmp_path / "runs" / "smoke" / "logs").glob("teacher_16_bits-*.log")
    started = [ln for ln in log.read_text().splitlines() if "run teacher 16 bits started" in ln]
    assert len(started) == 1 and f"pid {os.getpid()}" not in started[0]


# ---------------------------------------------------------------------------- gpus
def test_gpus_executor_pins_one_gpu_per_worker(monkeypatch, tmp_path):
    """Two faked GPUs: two workers, each with its own CUDA_VISIBLE_DEVICES for every job."""
    monkeypatch.setenv(executors.ENV_GPUS, "3,5")
    jobs = [dict(i=i, sleep=0.3) for i in range(6)]
    outcomes = run_jobs(cluster_jobs.echo, jobs, executor="gpus", workers=1,
                        log_dir=str(tmp_path), progress=False)
    assert sorted(o.index for o in outcomes) == list(range(6)) and all(o.ok for o in outcomes)
    gpu_of = {}
    for o in outcomes:
        assert gpu_of.setdefault(o.result["pid"], o.result["gpu"]) == o.result["gpu"]
    assert sorted(gpu_of.values()) == ["3", "5"]  # one worker per GPU, each pinned to its own


def test_local_pool_resubmits_a_dead_workers_run_and_names_one_that_keeps_dying(tmp_path, caplog):
    """A worker killed once: its run is resubmitted to a fresh pool and finishes; a run whose
    worker always dies comes back by name with its log after its retry; a run that raises comes
    back with its error and traceback; the others are unaffected."""
    jobs = [dict(i=0, sleep=0.5), dict(i=1, sleep=0.5, once=str(tmp_path / "once")),
            dict(i=2, always=True), dict(i=3, fail=True)]
    names = ["fine", "dies once", "doomed", "raises"]
    outcomes = {o.index: o for o in run_jobs(cluster_jobs.die, jobs, executor="local", workers=2,
                                             names=names, log_dir=str(tmp_path / "logs"),
                                             progress=False)}
    assert sorted(outcomes) == [0, 1, 2, 3]
    assert outcomes[0].ok and outcomes[1].ok and outcomes[1].attempts == 2
    assert "died (SIGKILL) while training run dies once" in caplog.text
    doomed = outcomes[2]
    assert not doomed.ok and doomed.name == "doomed" and doomed.attempts == 2
    assert "died (SIGKILL) while training it, 2 times" in doomed.error
    assert Path(doomed.log).read_text().count("run doomed started") == 2
    assert outcomes[3].error == "ValueError: job 3 failed on purpose"
    assert "Traceback" in Path(outcomes[3].log).read_text()


def test_a_temporary_log_folder_is_removed_when_every_job_succeeded(tmp_path, monkeypatch):
    """Without log_dir the job logs go to a temporary folder: gone after a batch that succeeded
    (grids would otherwise leave one folder in /tmp per batch), kept after one with a failure,
    whose outcome names its log."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ok = run_jobs(cluster_jobs.echo, [dict(i=0), dict(i=1)], executor="local", workers=1,
                  progress=False)
    assert [o.ok for o in ok] == [True, True]
    assert list(tmp_path.iterdir()) == []
    failed = run_jobs(cluster_jobs.die, [dict(i=0), dict(i=1, fail=True)], executor="local",
                      workers=1, progress=False)
    bad = [o for o in failed if not o.ok]
    assert len(bad) == 1 and bad[0].error == "ValueError: job 1 failed on purpose"
    kept = [p.name for p in tmp_path.iterdir()]
    assert len(kept) == 1 and kept[0].startswith("brcd-jobs-")
    assert Path(bad[0].log).parent == tmp_path / kept[0]
    assert "Traceback" in Path(bad[0].log).read_text()


# ---------------------------------------------------------------------------- the run lock
def _tiny_run_in_process(root: Path, calls: Path, hold_s: float) -> subprocess.Popen:
    code = (f"import sys, json; sys.path.insert(0, {str(TESTS)!r}); import cluster_jobs; "
            f"print(json.dumps(cluster_jobs.tiny_store_run({str(root)!r}, {str(calls)!r}, "
            f"hold_s={hold_s})))")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ,
                                                                    "PYTHONPATH": str(ROOT)})


def test_two_processes_train_one_run_once(tmp_path):
    """Two processes ask the store for the same unfinished run at once: one trains it (holding
    the lock), the other waits, then loads the finished run."""
    calls = tmp_path / "calls.txt"
    procs = [_tiny_run_in_process(tmp_path / "runs", calls, hold_s=3.0) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(calls.read_text().split()) == 1  # trained once
    assert json.loads(outs[0][0]) == json.loads(outs[1][0])  # both got the same run
    assert "is being trained by host" in outs[0][1] + outs[1][1]  # the waiter said so
    assert not list((tmp_path / "runs").glob("*/train.lock"))  # released


def _write_lock(folder: Path, **holder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.lock").write_text(json.dumps({"token": "old", "started": "then", **holder}))


def test_stale_locks_are_taken_over_and_live_ones_are_not(tmp_path, caplog):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    # a holder that died on this host: taken over at once
    _write_lock(tmp_path / "a", host=socket.gethostname(), pid=int(gone))
    lock = RunLock(tmp_path / "a", heartbeat_s=0.1, stale_after_s=30)
    assert lock.try_acquire()
    assert f"pid {gone} on this host, is gone" in caplog.text
    assert json.loads((tmp_path / "a" / "train.lock").read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / "a" / "train.lock").exists()
    # a holder on another node that stopped refreshing: taken over once unchanged long enough
    _write_lock(tmp_path / "b", host="node-that-died", pid=1)
    lock = RunLock(tmp_path / "b", heartbeat_s=0.1, stale_after_s=0.6, poll_s=0.05)
    assert not lock.try_acquire()
    t0 = time.monotonic()
    lock.acquire(timeout=10)
    assert time.monotonic() - t0 >= 0.5
    assert "has not been refreshed" in caplog.text
    lock.release()
    # a live holder in another process, refreshing its lock: never taken over
    (tmp_path / "c").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from brcd_lib.experiments.runlock import "
         "RunLock; l = RunLock(sys.argv[1], heartbeat_s=0.1, stale_after_s=0.6); "
         "l.acquire(); print('held', flush=True); time.sleep(60)", str(tmp_path / "c")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        waiter = RunLock(tmp_path / "c", heartbeat_s=0.1, stale_after_s=0.6, poll_s=0.05)
        with pytest.raises(LockTimeout, match=f"pid {holder.pid} .*after 2 s"):
            waiter.acquire(timeout=2)
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------- Dask for real
@pytest.fixture
def dask_config():
    import dask  # the `cluster` extra, which `make install` installs: never skipped
    import distributed  # noqa: F401

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        yield
    executors.close_clients()


def _profiler_enabled() -> bool:
    import dask

    return dask.config.get(executors.NO_PROFILER)


def test_slurm_workers_get_the_users_prologue_and_no_profiler(monkeypatch):
    """``slurm:3``: dask-jobqueue's SLURMCluster from the Dask config, the kit's line appended to
    the job script, scaled to 3 workers (``scale`` is recorded, not sent to sbatch)."""
    import dask
    import dask_jobqueue

    scaled = []
    monkeypatch.setattr(dask_jobqueue.SLURMCluster, "scale", lambda self, n: scaled.append(n))
    with dask.config.set({"jobqueue.slurm.cores": 1, "jobqueue.slurm.memory": "4GB",
                          "jobqueue.slurm.job-script-prologue": ["export BRCD_CACHE=/shared/c"]}):
        cluster = executors.start_cluster(parse_executor("slurm:3"), 1)
        try:
            script = cluster.job_script()  # reads the config again
        finally:
            cluster.close()
    assert scaled[0] == 3  # (close() scales to 0)
    assert "export BRCD_CACHE=/shared/c" in script
    assert f"export {executors.NO_PROFILER_ENV}=False" in script
    assert "distributed.cli.dask_worker" in script and "--nthreads 1" in script


@pytest.mark.slow
def test_dask_grid_completes_after_a_worker_is_killed_mid_run(tmp_path, dask_config):
    """A grid on a real Dask LocalCluster (scheduler + 2 worker processes): SIGKILL of the
    worker training a run; Dask restarts the worker and resubmits the run, which takes the dead
    worker's lock over, resumes from last.pt and finishes; every row of the grid is ok."""
    from brcd_lib.experiments.experiment import Experiment

    profile = cluster_jobs.killed_grid_profile()
    exp = Experiment(profile, cache_dir=str(tmp_path), progress=False, workers=2,
                     executor="dask")
    client = executors.dask_client(exp.executor, 2)
    workers = client.run(os.getpid)  # worker address -> pid: real processes, not this one
    assert len(workers) == 2 and os.getpid() not in workers.values()
    assert set(client.run(_profiler_enabled).values()) == {False}  # the kit's workers run without
    killed = cluster_jobs.grid_with_a_killed_worker(exp)
    assert killed["pid"] in workers.values()  # a Dask worker process
    log = cluster_jobs.log_of_pid(tmp_path / "runs" / profile.name / "logs", killed["pid"])
    text = log.read_text()
    assert text.count(" started on host ") == 2  # the first attempt, then the resubmitted one
    assert f"resumed from {killed['run_dir']}/last.pt at epoch" in text
    assert "taking over the lock" in text and "finished" in text
    record = json.loads((Path(killed["run_dir"]) / "result.json").read_text())
    assert record["epochs_run"] == 150
    assert not list((tmp_path / "runs").glob("*/*/train.lock"))
    print(f"\ndask workers {sorted(workers.values())}; killed pid {killed['pid']} "
          f"training {Path(killed['run_dir']).name}; its log:\n{text}")


@pytest.mark.slow
def test_dask_reports_a_run_whose_worker_always_dies_by_name(tmp_path, dask_config):
    jobs = [dict(i=0), dict(i=1, always=True), dict(i=2, fail=True)]
    outcomes = {o.index: o for o in run_jobs(
        cluster_jobs.die, jobs, executor="dask", workers=2, names=["fine", "doomed", "raises"],
        log_dir=str(tmp_path), progress=False)}
    assert outcomes[0].ok and outcomes[0].result["i"] == 0
    assert not outcomes[1].ok and outcomes[1].name == "doomed"
    assert "died while training it, 2 times (KilledWorker" in outcomes[1].error
    assert Path(outcomes[1].log).read_text().count("run doomed started") == 2
    assert outcomes[2].error == "ValueError: job 2 failed on purpose"
    assert "Traceback" in Path(outcomes[2].log).read_text()

"""Helpers of tests/test_cluster.py and the killed-worker case of tests/test_faults.py: toy jobs
that worker processes import (by module name), a killer thread that SIGKILLs the worker training
a run, and a tiny run of the run store for the lock tests."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path


# ---------------------------------------------------------------------------- toy jobs
def echo(job: dict) -> dict:
    """Where the job ran: its pid and the GPU it was pinned to."""
    time.sleep(job.get("sleep", 0))
    return {"pid": os.getpid(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "i": job["i"]}


def die(job: dict) -> dict:
    """Kill the worker running it (always, or the first time only: ``once`` names a marker file);
    ``fail`` raises instead."""
    time.sleep(job.get("sleep", 0))
    once = job.get("once")
    if job.get("always") or (once and not os.path.exists(once)):
        if once:
            Path(once).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    if job.get("fail"):
        raise ValueError(f"job {job['i']} failed on purpose")
    return {"pid": os.getpid(), "i": job["i"]}


# ---------------------------------------------------------------------------- killing a worker
class Killer(threading.Thread):
    """Watch ``runs_root`` for a student run that is being trained (its ``train.lock`` and its
    first ``last.pt`` exist, its ``result.json`` does not) and SIGKILL the lock's holder, once.
    ``killed`` holds ``{"pid", "run_dir"}`` afterwards."""

    def __init__(self, runs_root: Path, *, timeout: float = 300.0):
        super().__init__(daemon=True)
        self.runs_root, self.timeout = Path(runs_root), timeout
        self.killed: dict | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        end = time.monotonic() + self.timeout
        while not self.stop.is_set() and time.monotonic() < end:
            for run_dir in sorted(self.runs_root.glob("student-*")):
                lock, last = run_dir / "train.lock", run_dir / "last.pt"
                if lock.exists() and last.exists() and not (run_dir / "result.json").exists():
                    try:
                        pid = json.loads(lock.read_text())["pid"]
                    except (OSError, ValueError, KeyError):
                        continue
                    os.kill(pid, signal.SIGKILL)
                    self.killed = {"pid": pid, "run_dir": str(run_dir)}
                    return
            time.sleep(0.02)


def killed_grid_profile():
    """The shrunken smoke profile with 150-epoch students checkpointed at every epoch (a run
    lasts long enough to be caught mid-training)."""
    from brcd_lib.experiments.profiles import get_profile
    from brcd_lib.experiments.train import override_profile
    from fakes import tiny_settings

    return override_profile(get_profile("smoke"), tiny_settings(student_epochs=150) + [
        "student_train.eval_every=1", "student_train.patience=1000"])


def grid_with_a_killed_worker(exp):
    """The main grid of ``exp`` (three student runs at 16 bits) while a :class:`Killer` SIGKILLs
    the worker training one of them; checks every student row is ok and returns the killer's
    ``killed``."""
    from brcd_lib.experiments import studies

    killer = Killer(Path(exp.runs.root))
    killer.start()
    try:
        rows = studies.main_grid(exp, methods=["none", "kd", "brcd"], seeds=[0], bits_list=[16])
    finally:
        killer.stop.set()
    assert killer.killed, "no run was caught mid-training"
    students = rows[rows["method"].isin(["none", "kd", "brcd"])]
    assert len(students) == 6 and (students["status"] == "ok").all(), students
    return killer.killed


def log_of_pid(log_dir: Path, pid: int) -> Path:
    """The log of the student run that worker ``pid`` started (the same worker may have loaded
    a teacher before)."""
    hits = [p for p in Path(log_dir).glob("*.log") if not p.name.startswith("teacher_")
            and f", pid {pid}\n" in p.read_text(encoding="utf-8", errors="replace")]
    assert len(hits) == 1, (pid, sorted(Path(log_dir).glob("*.log")))
    return hits[0]


# ---------------------------------------------------------------------------- a tiny stored run
def tiny_store_run(root: str, calls: str, *, hold_s: float = 0.0) -> dict:
    """A run of a :class:`RunStore` at ``root`` (a linear head on a fixed bank); its training
    appends this pid to the file ``calls`` and takes ``hold_s`` seconds more. Returns its
    metrics."""
    import torch

    from brcd_lib.config import TrainConfig
    from brcd_lib.experiments.runstore import RunStore, TrainOutcome
    from brcd_lib.models import get_objective
    from brcd_lib.training import engine, sources
    from fakes import TinyNet

    bank = torch.randn(2, 24, 6, generator=torch.Generator().manual_seed(0))

    def train(run_dir):
        with open(calls, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(hold_s)
        net = TinyNet(d=6)
        loop = engine.fit(name="tiny", net=net, objective=get_objective("cibhash"),
                          source=sources.BankPairSource(student_bank=bank),
                          train_cfg=TrainConfig(epochs=2, batch_size=8, eval_every=1), seed=0,
                          validate=lambda: {"symmetric": 0.5},
                          checkpoint_path=os.path.join(run_dir, "last.pt"), progress=False)
        head = loop.best_state["symmetric"]["head"]
        value = float(head["head.weight"].abs().sum())
        return TrainOutcome(heads={"symmetric": head}, best_epoch=dict(loop.best_epoch),
                            record={"key": "k" * 16, "metrics": {"symmetric": value,
                                                                 "asymmetric": value}})

    run = RunStore(root=root).load_or_train(role="teacher", key="k" * 16, net=TinyNet(d=6),
                                            train=train, model_config={}, bits=8)
    return run.metrics

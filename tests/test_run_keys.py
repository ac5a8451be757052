"""Run keys and caches by behaviour (fast, no training): the in-memory teacher memo of an
Experiment keeps one teacher per seed; the k-means cache key holds every k-means argument; the
run store refuses a finished run whose record names another key."""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fakes import KeyedExperiment, TinyNet  # noqa: E402

torch.set_num_threads(1)


# ------------------------------------------------------------------ the teacher memo
def test_the_teacher_memo_keeps_one_teacher_per_seed(tmp_path):
    fake = KeyedExperiment(tmp_path)
    exp = fake.exp
    t0 = exp.teacher(16, seed=0)
    t1 = exp.teacher(16, seed=1)
    assert t1 is not t0
    assert t1.record["key"] != t0.record["key"]
    assert [role for role, _ in fake.calls] == ["teacher", "teacher"]
    # asked again: the memo answers, the store is not asked
    assert exp.teacher(16, seed=1) is t1 and exp.teacher(16, seed=0) is t0
    assert len(fake.calls) == 2
    assert exp.has_teacher(16, seed=0) and exp.has_teacher(16, seed=1)
    assert not exp.has_teacher(16, seed=2) and not exp.has_teacher(32, seed=0)
    # a student of teacher seed 1 is distilled from teacher 1 (its key names teacher 1's key)
    s0 = exp.student(16, method="kd", seed=0, teacher_seed=0)
    s1 = exp.student(16, method="kd", seed=0, teacher_seed=1)
    assert s0.record["key"] != s1.record["key"]
    assert len(fake.calls) == 4  # two students, no teacher trained again


def test_the_teacher_memo_keeps_one_teacher_per_code_length(tmp_path):
    fake = KeyedExperiment(tmp_path)
    t16, t32 = fake.exp.teacher(16, seed=0), fake.exp.teacher(32, seed=0)
    assert t16 is not t32 and t16.net.code_length == 16 and t32.net.code_length == 32


# ------------------------------------------------------------------ the run store's key check
def _finished_run(store, key, calls, *, value):
    """A teacher run of ``store`` under ``key`` whose head and metric are ``value`` (no
    training: the head is set by hand)."""
    from fakes import head_outcome

    def train(run_dir):
        calls.append(key)
        return head_outcome(key, value)

    return store.load_or_train(role="teacher", key=key, net=TinyNet(d=4, bits=4), train=train,
                               model_config={}, bits=4)


def test_a_finished_run_recorded_under_another_key_is_refused(tmp_path, caplog):
    """A run folder holding a finished, sealed run of key A (e.g. copied or renamed by hand)
    where key B is asked for: the record is not used, B is trained."""
    from brcd_lib.experiments.runstore import RunStore

    store = RunStore(root=str(tmp_path / "runs"))
    calls = []
    a = _finished_run(store, "a" * 16, calls, value=0.25)
    assert calls == ["a" * 16] and a.record["key"] == "a" * 16
    # the same key again: loaded, not trained
    assert _finished_run(store, "a" * 16, calls, value=0.75).metrics["symmetric"] == 0.25
    assert len(calls) == 1
    # A's folder copied into B's place
    b_dir = store.run_dir("teacher", "b" * 16)
    shutil.rmtree(b_dir)
    shutil.copytree(a.run_dir, b_dir)
    assert json.loads(Path(b_dir, "result.json").read_text())["key"] == "a" * 16
    # the check itself: the record names another run
    fresh = RunStore(root=str(tmp_path / "runs"))
    with caplog.at_level(logging.WARNING):
        assert fresh.check_finished(b_dir, role="teacher", key="b" * 16) is None
    assert any("belongs to run" in r.getMessage() for r in caplog.records)
    assert not os.path.exists(os.path.join(b_dir, "result.json"))
    # the store: B is trained, with B's own result
    shutil.rmtree(b_dir)
    shutil.copytree(a.run_dir, b_dir)
    b = _finished_run(RunStore(root=str(tmp_path / "runs")), "b" * 16, calls, value=0.75)
    assert calls == ["a" * 16, "b" * 16]
    assert b.record["key"] == "b" * 16 and b.metrics["symmetric"] == 0.75
    assert float(b.net.head.weight[0, 0].detach()) == 0.75
    # and A is still A
    assert _finished_run(store, "a" * 16, calls, value=0.5).metrics["symmetric"] == 0.25
    assert len(calls) == 2


@pytest.mark.parametrize("lost", ["last.pt", "code.json"])
def test_a_damaged_record_is_retrained_whatever_else_the_folder_lost(tmp_path, caplog, lost):
    """A finished run whose result.json is damaged and whose last.pt is gone (only the head
    checkpoints left), or whose code.json is gone (a folder older than code fingerprints):
    retrained with a warning. Before the fix, check_finished cleared the folder (result.json
    included) and then removed result.json again: FileNotFoundError."""
    from brcd_lib.experiments.runstore import RunStore

    store = RunStore(root=str(tmp_path / "runs"))
    calls = []
    a = _finished_run(store, "a" * 16, calls, value=0.25)
    assert not os.path.exists(os.path.join(a.run_dir, "last.pt"))  # the fake trains no loop
    if lost == "code.json":
        os.remove(os.path.join(a.run_dir, "code.json"))
    Path(a.run_dir, "result.json").write_text('{"key": "aaaa')  # truncated
    with caplog.at_level(logging.WARNING):
        again = _finished_run(RunStore(root=str(tmp_path / "runs")), "a" * 16, calls, value=0.5)
    assert calls == ["a" * 16, "a" * 16] and again.metrics["symmetric"] == 0.5
    assert any("is damaged" in r.getMessage() for r in caplog.records)

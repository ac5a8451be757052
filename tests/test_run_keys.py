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

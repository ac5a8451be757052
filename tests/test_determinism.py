"""The same seed gives the same splits, backbones, codes and mAP, run after run, on the CPU;
data-loader workers are seeded, so ``ImagePairSource`` with workers repeats its batches.

The end-to-end test runs a shrunken smoke profile (as tests/test_resume_kill.py) twice in one
process, with two fresh :class:`Experiment` objects on two separate temporary caches, so nothing
is shared between the two runs except the code.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from brcd_lib.training import engine, sources
from brcd_lib.data import get_dataset
from brcd_lib.data.transforms import TwoViews, get_transforms
from brcd_lib.experiments.profiles import get_profile
from brcd_lib.experiments.train import override_profile

from fakes import tiny_settings

SETTINGS = tiny_settings(student_ssl_epochs=5, student_epochs=10)
SETS = ("train", "val", "query", "database")


def _one_run(cache_dir: str) -> dict:
    from brcd_lib.experiments.experiment import Experiment

    profile = override_profile(get_profile("smoke"), SETTINGS)
    ex = Experiment(profile, cache_dir=cache_dir, device="cpu", progress=False)
    teacher = ex.teacher(16)
    student = ex.student(16, method="brcd", seed=0)
    return {
        "split_hash": ex.splits.split_hash,
        "split_labels": {s: getattr(ex.splits, s).labels.copy() for s in SETS},
        "teacher_key": teacher.record["key"], "student_key": student.record["key"],
        "teacher_codes": {s: ex.codes(teacher.net, s) for s in ("query", "database", "train")},
        "student_codes": {p: {s: ex.codes(net, s) for s in ("query", "database")}
                          for p, net in student.nets.items()},
        "teacher_map": teacher.metrics, "student_map": student.metrics,
        "history": student.record["history"],
    }


@pytest.mark.slow
def test_same_seed_same_splits_codes_and_map_twice(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 busy cores: one thread is faster (the results do not depend on it)
    try:
        first = _one_run(str(tmp_path / "first"))
        second = _one_run(str(tmp_path / "second"))
    finally:
        torch.set_num_threads(threads)
    assert first["split_hash"] == second["split_hash"]
    for s in SETS:
        assert np.array_equal(first["split_labels"][s], second["split_labels"][s])
    # the keys hash the pretrained backbones' weights: equal keys = equal backbones
    assert first["teacher_key"] == second["teacher_key"]
    assert first["student_key"] == second["student_key"]
    for s, codes in first["teacher_codes"].items():
        assert torch.equal(codes, second["teacher_codes"][s]), s
    for p, sets in first["student_codes"].items():
        for s, codes in sets.items():
            assert torch.equal(codes, second["student_codes"][p][s]), (p, s)
    assert first["teacher_map"] == second["teacher_map"]  # exact float equality
    assert first["student_map"] == second["student_map"]
    assert first["history"] == second["history"]
    # and the runs are not trivially constant: the codes carry information
    assert len(torch.unique(first["teacher_codes"]["train"], dim=0)) >= 4
    assert len(torch.unique(first["student_codes"]["symmetric"]["database"], dim=0)) >= 3


def _image_source(tmp_path, num_workers: int) -> sources.ImagePairSource:
    splits = get_dataset("digits", split_dir=tmp_path, seed=0, subset=60, n_query=10, n_val=10,
                         n_train_per_class=30, top_k=50)
    ds = splits.train.with_transform(TwoViews(get_transforms("small", size=16, train=True)))
    return sources.ImagePairSource(dataset=Subset(ds, range(48)), student_features=lambda x: x,
                                  teacher_features=None, num_workers=num_workers)


def _batches(source, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    return [(pb.index.clone(), pb.student[0].clone(), pb.student[1].clone())
            for pb in source.epoch(epoch=epoch, seed=3, batch_size=16)]


def test_loader_workers_are_seeded(tmp_path):
    torch.manual_seed(123)  # the global state before the epoch must not matter
    a = _batches(_image_source(tmp_path, 2), epoch=0)
    torch.manual_seed(456)
    b = _batches(_image_source(tmp_path, 2), epoch=0)
    assert len(a) == len(b) == 3
    for (ia, xa, ya), (ib, xb, yb) in zip(a, b):
        assert torch.equal(ia, ib) and torch.equal(xa, xb) and torch.equal(ya, yb)
    # augmentations are on (two views differ) and change with the epoch
    assert not torch.equal(a[0][1], a[0][2])
    c = _batches(_image_source(tmp_path, 2), epoch=1)
    assert not torch.equal(torch.cat([x for _, x, _ in a]), torch.cat([x for _, x, _ in c]))
    # the batch composition does not depend on the number of workers
    d = _batches(_image_source(tmp_path, 0), epoch=0)
    for (ia, _, _), (id_, _, _) in zip(a, d):
        assert torch.equal(ia, id_)

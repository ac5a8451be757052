"""Shared online banks (issue #29): with fresh augmentations (``feature_views=0``) each epoch's
views go through each frozen backbone once and every run reads them. Equivalence with the per-run
online pipeline: the same features, bitwise on the CPU, and the same codes and mAP, for a teacher,
a KD and a BRCD student (and SSKD's rotated copies), on a CPU-sized configuration and (slow) on
``paper_rehearsal``; the views are a function of (seed, epoch, image) only."""
from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from brcd_lib.experiments.experiment import Experiment
from brcd_lib.experiments.profiles import REHEARSAL_DATA, get_profile
from brcd_lib.training.sources import ImagePairSource, OnlineBankPairSource
from brcd_lib.training.views import epoch_batches, epoch_seed
from fakes import online_cpu_profile, write_fake_dataset

METHODS = ("kd", "brcd")


def _batches(source, epoch: int, seed: int, batch_size: int) -> list:
    return [pb for pb in source.epoch(epoch=epoch, seed=seed, batch_size=batch_size)]


def _same_batches(a: list, b: list) -> None:
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert torch.equal(x.index, y.index)
        for name in ("student", "teacher"):
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None) == (v is None)
            if u is not None:
                assert torch.equal(u[0], v[0]) and torch.equal(u[1], v[1]), name
        for name in ("student_rot", "teacher_rot"):
            u, v = getattr(x, name), getattr(y, name)
            assert (u is None) == (v is None)
            if u is not None:
                assert torch.equal(u, v), name


def _runs(exp: Experiment, bits: int, seed: int = 0) -> dict:
    teacher = exp.teacher(bits)
    out = {"teacher": (teacher.metrics, teacher.record["history"],
                       exp.codes(teacher.net, "database"))}
    for method in METHODS:
        run = exp.student(bits, method=method, seed=seed)
        out[method] = (run.metrics, run.record["history"],
                       exp.codes(run.nets["symmetric"], "database"))
    return out


def _check_equivalence(profile, cache: str, bits: int, seed: int, rotations_method="sskd"):
    # one cache (pretrained backbones, clean features), two run folders (profile names)
    shared = Experiment(profile, cache_dir=cache, device="cpu", progress=False)
    per_run = Experiment(dataclasses.replace(profile, name=f"{profile.name}_per_run"),
                         cache_dir=cache, device="cpu", progress=False, online="per_run")
    # 1. the features of one epoch, with SSKD's rotated copies: bitwise
    teacher = shared.teacher(bits).net
    net = shared.build_network(profile.student, bits, role="student", seed=seed)
    train = profile.student_train
    a = shared.source(net, train, teacher, 4, seed=seed)
    b = per_run.source(net, train, teacher, 4, seed=seed)
    assert isinstance(a, OnlineBankPairSource) and isinstance(b, ImagePairSource)
    for epoch in (0, 1):
        _same_batches(_batches(a, epoch, seed, train.batch_size),
                      _batches(b, epoch, seed, train.batch_size))
    # 2. teacher, KD and BRCD students: the same codes, mAP and validation history
    got, want = _runs(shared, bits, seed), _runs(per_run, bits, seed)
    for name in want:
        assert got[name][0] == want[name][0], name          # test mAP, exactly
        assert got[name][1] == want[name][1], name          # validation history
        assert torch.equal(got[name][2], want[name][2]), name  # database codes
    return got, shared


def test_views_depend_on_seed_epoch_and_image_only():
    assert epoch_seed(0, 1, 2) == epoch_seed(0, 1, 2)
    assert len({epoch_seed(s, e, i) for s in (0, 1) for e in (0, 1) for i in (0, 1)}) == 8
    whole = epoch_batches(30, seed=5, epoch=2, batch_size=8)
    assert [len(b) for b in whole] == [8, 8, 8]  # the last partial batch dropped
    assert len(set(torch.cat(whole).tolist())) == 24
    assert [len(b) for b in epoch_batches(5, seed=5, epoch=2, batch_size=8)] == [5]
    assert not torch.equal(torch.cat(whole), torch.cat(epoch_batches(30, seed=5, epoch=3,
                                                                     batch_size=8)))


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 busy cores: one thread is faster (the results do not depend on it)
    yield
    torch.set_num_threads(threads)


def test_shared_online_banks_equal_the_per_run_pipeline_cpu(tmp_path, one_thread):
    got, shared = _check_equivalence(online_cpu_profile(), str(tmp_path), bits=16, seed=0)
    assert got["teacher"][0]["symmetric"] > 0.2  # the runs learn something (not collapsed codes)
    # the shared path pushed each epoch's views through each backbone once for all runs: the
    # teacher's 4 epochs (its students read them from memory) and the students' 2 more, the
    # students' 6, and the 3 rotated copies of the 2 epochs the source comparison read
    n = 100
    assert shared.store.built_passes["resnet_teacher"] == 6 * 2 * n + 2 * 3 * n
    assert shared.store.built_passes["small_cnn_s"] == 6 * 2 * n + 2 * 3 * n


def test_bf16_banks_round_both_paths_alike():
    from brcd_lib.training.features import as_stored, bank_dtype

    class Net:
        backbone_precision = "bf16"

    x = torch.randn(5, 7)
    assert bank_dtype(Net()) == torch.bfloat16
    assert torch.equal(as_stored(Net(), x), x.to(torch.bfloat16).float())
    assert as_stored(object(), x) is x  # float32 backbones: unchanged


@pytest.mark.slow
def test_shared_online_banks_equal_the_per_run_pipeline_paper_rehearsal(tmp_path, monkeypatch,
                                                                         one_thread):
    spec = dict(REHEARSAL_DATA["paper_rehearsal"])
    dataset = spec.pop("dataset")
    write_fake_dataset(tmp_path / "data" / dataset, name=dataset, **spec)
    monkeypatch.setenv("BRCD_DATA", str(tmp_path / "data"))
    base = get_profile("paper_rehearsal")
    # one epoch of the paper's online pipeline (its 8 loader workers cost more than they save on
    # a 2-core machine: 0 here, which changes no value)
    profile = dataclasses.replace(
        base, teacher_train=dataclasses.replace(base.teacher_train, epochs=1, feature_views=0,
                                                num_workers=0),
        student_train=dataclasses.replace(base.student_train, epochs=1, feature_views=0,
                                          num_workers=0))
    _check_equivalence(profile, str(tmp_path / "cache"), bits=16, seed=profile.seeds[0])

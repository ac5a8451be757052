"""Bad inputs give errors that name the problem and the valid names or the fix.

One test per kind of bad input (docs/reliability.md lists the messages). Every cache lives in
``tmp_path``; nothing is downloaded.
"""
from __future__ import annotations

import dataclasses
import math
import re
import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

from brcd_lib.training import engine, sources
from brcd_lib.config import TrainConfig
from brcd_lib.data import DatasetNotAvailableError, get_dataset, list_datasets
from brcd_lib.data import cifar10 as cifar_mod
from brcd_lib.data import fashion_mnist as fm_mod
from brcd_lib.data.listfile import read_list_file
from brcd_lib.distill import get_distiller, list_distillers
from brcd_lib.distill.brcd import bit_masks
from brcd_lib.distill.clustering import cached_kmeans
from brcd_lib.metrics import map_at_k
from brcd_lib.models import build_hashing_network, create_backbone, get_objective, list_objectives
from brcd_lib.models.backbones import list_backbones
from brcd_lib.experiments.profiles import get_profile, list_profiles
from brcd_lib.experiments.train import get_args_parser
from fakes import TinyNet


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BRCD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BRCD_DATA", str(tmp_path / "data"))


def _lists_all(message: str, names) -> bool:
    return all(n in message for n in names)


# ---------------------------------------------------------------------------------------------
# unknown names: the message lists the valid ones
# ---------------------------------------------------------------------------------------------
def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'mnist'") as err:
        get_dataset("mnist", split_dir=tmp_path)
    assert _lists_all(str(err.value), list_datasets())


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError, match="unknown backbone 'resnet9'") as err:
        create_backbone("resnet9")
    assert _lists_all(str(err.value), list_backbones())


def test_unknown_hashing_objective_lists_valid_names():
    with pytest.raises(ValueError, match="unknown hashing objective 'hashnet'") as err:
        get_objective("hashnet")
    assert _lists_all(str(err.value), list_objectives())


def test_unknown_distiller_lists_valid_names():
    with pytest.raises(ValueError, match="unknown distiller 'fitnet'") as err:
        get_distiller("fitnet")
    assert _lists_all(str(err.value), list_distillers())


def test_unknown_profile_lists_valid_names(capsys):
    with pytest.raises(ValueError, match="unknown profile 'cifar'") as err:
        get_profile("cifar")
    assert _lists_all(str(err.value), list_profiles())
    with pytest.raises(SystemExit) as exit_:  # the command line says the same
        get_args_parser().parse_args(["--profile", "cifar"])
    assert exit_.value.code == 2
    assert "invalid choice: 'cifar'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# code length
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [0, -1, 1.5, "16"])
def test_code_length_must_be_a_positive_int(bits):
    with pytest.raises(ValueError, match=r"code_length must be a positive int \(e\.g\. 16, 32, "
                                         r"64\)") as err:
        build_hashing_network(role="student", backbone="small_cnn_s", code_length=bits)
    assert f"got {bits!r}" in str(err.value)


@pytest.mark.parametrize("bits", ["0", "-1", "1.5", "sixteen"])
def test_cli_code_length_must_be_a_positive_int(bits, capsys):
    with pytest.raises(SystemExit) as exit_:
        get_args_parser().parse_args(["--bits", bits])
    assert exit_.value.code == 2
    assert f"argument --bits: {bits!r} is not a positive integer" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# missing data
# ---------------------------------------------------------------------------------------------
def _no_network(target):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def test_missing_fashion_mnist_root(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(fm_mod, "_torchvision_download", _no_network)
    with pytest.raises(DatasetNotAvailableError) as err:
        get_dataset("fashion_mnist", root=empty, split_dir=tmp_path / "splits")
    msg = str(err.value)
    assert f"searched: {empty}" in msg and "train-images-idx3-ubyte" in msg
    assert "download" in msg and "failed" in msg and "name resolution" in msg
    assert "dataset-fashion-mnist" in msg  # the fix
    with pytest.raises(DatasetNotAvailableError, match="or pass download=True"):
        get_dataset("fashion_mnist", root=empty, split_dir=tmp_path / "splits", download=False)


def test_missing_cifar10_root(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(cifar_mod, "_torchvision_download", _no_network)
    with pytest.raises(DatasetNotAvailableError) as err:
        get_dataset("cifar10", root=empty, split_dir=tmp_path / "splits")
    msg = str(err.value)
    assert f"searched: {empty}" in msg and "data_batch_1" in msg
    assert "failed" in msg and "cifar-10-python.tar.gz" in msg  # the fix
    with pytest.raises(DatasetNotAvailableError, match="pass download=True"):
        get_dataset("cifar10", root=empty, split_dir=tmp_path / "splits", download=False)


def test_missing_coco_root(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotAvailableError) as err:
        get_dataset("coco", root=empty, split_dir=tmp_path / "splits")
    msg = str(err.value)
    assert str(empty) in msg and "lacks train.txt, test.txt, database.txt" in msg
    assert "DeepHash-pytorch" in msg  # where to get the lists
    assert isinstance(err.value, FileNotFoundError)


def test_malformed_list_file_line_names_file_and_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("a.jpg 0 1 0\nb.jpg 1 0 0\n\nc.jpg 0 1\n")
    with pytest.raises(ValueError) as err:
        read_list_file(path)
    assert f"{path}, line 4: 2 label values, but line 1 has 3" in str(err.value)
    path.write_text("a.jpg 0 1 0\nb.jpg 0 2 0\n")
    with pytest.raises(ValueError, match=r"line 2: label value '2' is not 0 or 1"):
        read_list_file(path)


# ---------------------------------------------------------------------------------------------
# metrics, checkpoints, pipeline, clustering
# ---------------------------------------------------------------------------------------------
def test_label_dimensions_that_disagree():
    rng = np.random.default_rng(0)
    q, db = np.sign(rng.standard_normal((4, 16))), np.sign(rng.standard_normal((7, 16)))
    q_labels = np.eye(10, dtype=np.uint8)[rng.integers(0, 10, 4)]
    db_labels = np.eye(5, dtype=np.uint8)[rng.integers(0, 5, 7)]
    with pytest.raises(ValueError) as err:
        map_at_k(q, db, q_labels, db_labels, 5)
    msg = str(err.value)
    assert "query_labels have 10 classes" in msg and "db_labels have 5" in msg
    assert "same C classes" in msg


def test_truncated_or_foreign_checkpoint(tmp_path):
    good = tmp_path / "good.pt"
    engine.save_checkpoint(str(good), format=engine.CHECKPOINT_FORMAT, head={"w": torch.ones(2)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(RuntimeError, match=r"truncated\.pt is truncated or not a brcd-kit "
                                           r"checkpoint .*delete it to retrain"):
        engine.load_checkpoint(str(truncated))
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, foreign)  # e.g. a torchvision checkpoint
    with pytest.raises(RuntimeError, match=r"foreign\.pt is not a brcd-kit checkpoint \(no format "
                                           r"tag 'brcd-kit/1'\); delete it to retrain"):
        engine.load_checkpoint(str(foreign))
    with pytest.raises(FileNotFoundError, match=r"missing\.pt does not exist"):
        engine.load_checkpoint(str(tmp_path / "missing.pt"))


def test_teacher_and_student_of_different_code_lengths(tmp_path, monkeypatch):
    from brcd_lib.experiments.experiment import Experiment, TrainedRun

    profile = get_profile("smoke")
    profile = dataclasses.replace(profile, student=dataclasses.replace(
        profile.student, backbone=dataclasses.replace(profile.student.backbone, ssl_epochs=0)))
    ex = Experiment(profile, cache_dir=str(tmp_path / "cache"), device="cpu", progress=False)
    teacher_net = build_hashing_network(role="teacher", backbone="small_cnn_s", code_length=32)
    stub = TrainedRun("teacher", teacher_net, {"symmetric": teacher_net}, {}, {"key": "t32"},
                      str(tmp_path))
    monkeypatch.setattr(ex, "teacher", lambda bits, **kw: stub)
    with pytest.raises(ValueError, match=r"teacher \(32 bits\) and student \(16 bits\) must have "
                                         r"the same code length"):
        ex.student(16, method="kd")


def _codes(n, bits=8, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.where(rng.random((n, bits)) < 0.5, -1.0, 1.0))


def test_more_clusters_than_training_codes(tmp_path):
    codes = _codes(6)
    with pytest.raises(ValueError, match=r"n_clusters=10 is larger than the number of codes n=6; "
                                         r"use at most 6 clusters"):
        cached_kmeans(codes, n_clusters=10, seed=0, cache_dir=tmp_path, cache_key="k")
    labels = torch.arange(6) % 3
    with pytest.raises(ValueError, match=r"n_clusters=10 is larger than the number of training "
                                         r"codes n=6.*Use at most 6 clusters"):
        bit_masks(codes, labels, n_clusters=10, margin=0.5)


def test_empty_cluster(tmp_path):
    codes = _codes(6)
    labels = torch.tensor([0, 0, 1, 1, 3, 3])  # cluster 2 has no member
    with pytest.raises(ValueError, match=r"cluster 2 is empty \(empty clusters: \[2\]\); its bit "
                                         r"mask is undefined\. Use a smaller number of clusters"):
        bit_masks(codes, labels, n_clusters=4, margin=0.5)


# ---------------------------------------------------------------------------------------------
# papermill parameters: the notebooks' `profile`
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [5, None, ["smoke"], {"name": "smoke"}])
def test_profile_parameter_of_the_wrong_type(value, tmp_path):
    from brcd_lib.experiments import reproduce
    from brcd_lib.experiments.experiment import Experiment

    with pytest.raises(TypeError, match=r"profile must be a profile name \(str\), one of "
                                        + re.escape(", ".join(list_profiles())) + "; got " + type(value).__name__):
        get_profile(value)
    # what a notebook does with its injected parameter: notebook.setup -> Experiment(profile)
    with pytest.raises(TypeError, match="profile must be a profile name"):
        Experiment(value, cache_dir=str(tmp_path))
    with pytest.raises(SystemExit, match="valid profiles: " + re.escape(", ".join(list_profiles()))):
        reproduce.run(value, results_root=str(tmp_path / "results"))


def test_unknown_profile_parameter_in_reproduce(tmp_path):
    from brcd_lib.experiments import reproduce

    with pytest.raises(SystemExit, match="unknown profile 'tiny'; valid profiles: digits, smoke"):
        reproduce.run("tiny", results_root=str(tmp_path / "results"))


def test_cli_setting_errors_name_the_valid_fields():
    from brcd_lib.experiments.train import build_profile

    def args(*extra):
        return get_args_parser().parse_args(["--profile", "smoke", *extra])

    with pytest.raises(ValueError, match=r"unknown setting 'teacher_train\.epoch': TrainConfig "
                                         r"has no field 'epoch'; valid fields: epochs, batch_size"):
        build_profile(args("--set", "teacher_train.epoch=3"))
    with pytest.raises(ValueError, match=r"teacher_train\.epochs takes int values like 40, got "
                                         r"str 'ten'"):
        build_profile(args("--set", "teacher_train.epochs=ten"))
    with pytest.raises(ValueError, match="--set expects PATH=VALUE"):
        build_profile(args("--set", "teacher_train.epochs"))


# ---------------------------------------------------------------------------------------------
# NaN / inf loss
# ---------------------------------------------------------------------------------------------
class _BreaksAt(nn.Module):
    """The CIBHash objective, whose loss turns ``value`` at global step ``at`` (1-based)."""

    def __init__(self, at: int, value: float):
        super().__init__()
        self.inner, self.at, self.value, self.steps = get_objective("cibhash"), at, value, 0

    def forward(self, *args):
        out = self.inner(*args)
        self.steps += 1
        if self.steps == self.at:
            return out._replace(loss=out.loss * self.value)
        return out


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nan_or_inf_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, value):
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(3, 40, 6, generator=g)
    source = sources.BankPairSource(student_bank=bank)
    cfg = TrainConfig(epochs=6, batch_size=8, lr=1e-2, eval_every=1, patience=10)
    ckpt = tmp_path / "last.pt"
    # 5 steps per epoch: step 13 is epoch 3, step 3
    with pytest.raises(engine.TrainingDiverged) as err:
        engine.fit(name="tiny teacher", net=TinyNet(d=6), objective=_BreaksAt(13, value),
                   source=source, train_cfg=cfg, seed=0, validate=lambda: {"symmetric": 0.5},
                   checkpoint_path=str(ckpt), progress=False)
    msg = str(err.value)
    assert f"tiny teacher: loss is {value} at epoch 3, step 3" in msg
    assert "lower the learning rate" in msg and f"checkpoint is kept at {ckpt}" in msg
    state = engine.load_checkpoint(str(ckpt))  # the last good checkpoint stays loadable
    assert state["epoch"] == 2 and not state["done"]
    assert all(torch.isfinite(t).all() for t in state["head"].values())
    net = TinyNet(d=6)
    engine.load_head_state(net, state["head"])

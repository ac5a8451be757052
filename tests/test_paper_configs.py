"""The ``paper`` profile, every configuration, end to end on tiny fake data (CPU, no network).

For every ``(dataset, teacher, student)`` of :func:`brcd_lib.experiments.profiles.paper_configurations` the
test builds the profile exactly as the paper profile does (``dataclasses.replace`` of
``get_profile("paper")``), changing only what a CPU test must change:

* data: the dataset's real on-disk format (CIFAR-10 pickle batches; list files + JPEGs for
  MS-COCO, NUS-WIDE, ImageNet-100), written by ``tests/fakes.py`` with as few images as the
  protocols allow, at the paper's 224 px ``paper`` transform;
* backbones: ``pretrained=False`` (no download);
* budgets: 1 epoch, batch 4, seed 0, 16 bits (the Experiment runs on the CPU);
* BRCD: ``n_clusters=2`` (k-means needs K <= distinct teacher codes; margin and alpha stay);
* ``feature_views=2``, so the students of one dataset share the teacher's cached view bank;
  the ViT-B/32 configuration keeps the paper's ``feature_views=0`` (fresh augmentations of the
  image files every step), so that path is covered too.

Each configuration then runs through :class:`brcd_lib.experiments.experiment.Experiment`: one teacher training
(shared by the configurations of a dataset through the run cache), one BRCD student training and
one evaluation in both search paradigms, checked against the metrics the run recorded.

The generality study's other teachers (ViT-B/32, ViT-L/16) run once each on NUS-WIDE instead of
the profile's CIFAR-10: CIFAR-10's protocol needs at least 10 training images (one per class) and
a database of the whole training pool, which costs ViT-L/16 about 40 forward passes at 224 px.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from brcd_lib.config import DataConfig, ModelConfig
from brcd_lib.data import get_dataset, list_datasets
from brcd_lib.data.listfile import LIST_DATASETS
from brcd_lib.metrics import evaluate_paradigms
from brcd_lib.models import list_backbones
from brcd_lib.models.backbones import backbone_info
from brcd_lib.experiments.experiment import Experiment
from brcd_lib.experiments.rows import run_rows
from brcd_lib.experiments.profiles import Profile, get_profile, paper_configurations
from fakes import CIFAR10_CLASSES, LIST_LAYOUTS, write_fake_dataset

torch.set_num_threads(1)  # on 2 shared cores one thread is faster than two (ViT-B/16 forwards)

BITS = 16
PAPER = get_profile("paper")
GENERALITY_DATASET = "nuswide"  # see the module docstring
CONFIGS = paper_configurations(generality_dataset=GENERALITY_DATASET)
PAPER_TEACHER = PAPER.teacher.backbone.name
PAPER_STUDENT = PAPER.student.backbone.name

# the smallest files each protocol accepts
FAKE_SIZES = {
    "cifar10": {"n_per_class": 1, "n_test": 2},  # train = database = 10 images, 1 val + 1 query
    **{name: {"n_train": 3, "n_test": 1, "n_database": 2} for name in LIST_DATASETS},
}
PROTOCOLS = {
    "cifar10": {"n_train_per_class": 1, "n_val": 1, "n_query": 1, "download": False},
    **{name: {"n_val": 1} for name in LIST_DATASETS},  # hold-out validation: 1 of the 3 images
}
PAPER_TOP_K = {"cifar10": 1000, "coco": 5000, "nuswide": 5000, "imagenet100": 1000}
FEATURE_VIEWS = {"vit_b_32": 0}  # default 2
PROVENANCE = ("config_hash", "split_hash", "commit", "versions", "device", "timestamp")


def _with_backbone(model: ModelConfig, name: str) -> ModelConfig:
    return dataclasses.replace(model, backbone=dataclasses.replace(model.backbone, name=name,
                                                                   pretrained=False))


def paper_test_profile(*, dataset: str, teacher: str, student: str, root: Path) -> Profile:
    """The paper profile for one configuration, with the CPU-test changes of the module doc."""
    views = FEATURE_VIEWS.get(teacher, 2)
    return dataclasses.replace(
        PAPER,
        data=DataConfig(name=dataset, root=os.fspath(root), image_size=224, transform="paper",
                        protocol=dict(PROTOCOLS[dataset])),
        teacher=_with_backbone(PAPER.teacher, teacher),
        student=_with_backbone(PAPER.student, student),
        teacher_train=dataclasses.replace(PAPER.teacher_train, epochs=1, batch_size=4,
                                          feature_views=views),
        student_train=dataclasses.replace(PAPER.student_train, epochs=1, batch_size=4,
                                          feature_views=views),
        bits=(BITS,), seeds=(0,), teacher_seed=0,
        brcd={**PAPER.brcd, "n_clusters": 2},
    )


@dataclasses.dataclass
class SharedTeacher:
    """A teacher trained once per (dataset, teacher backbone) and what the tests need of it."""

    record: dict
    run_dir: str
    db_codes: torch.Tensor
    rows: list[dict]


class Workspace:
    """Fake data roots and teachers shared by the tests of this module (built lazily, so any
    subset of the configurations can run alone)."""

    def __init__(self, base: Path):
        self.base = base
        self.cache_dir = os.fspath(base / "cache")
        self._roots: dict[str, Path] = {}
        self._teachers: dict[tuple[str, str], SharedTeacher] = {}

    def root(self, dataset: str) -> Path:
        if dataset not in self._roots:
            root = self.base / "data" / dataset
            write_fake_dataset(root, name=dataset, **FAKE_SIZES[dataset])
            self._roots[dataset] = root
        return self._roots[dataset]

    def experiment(self, dataset: str, teacher: str, student: str) -> Experiment:
        profile = paper_test_profile(dataset=dataset, teacher=teacher, student=student,
                                     root=self.root(dataset))
        return Experiment(profile, cache_dir=self.cache_dir, device="cpu", progress=False)

    def teacher(self, exp: Experiment) -> SharedTeacher:
        """Train the teacher of ``exp``'s configuration on first use. Later configurations with
        the same (dataset, teacher) get it from the run cache inside ``exp.student``; asking
        ``exp.teacher`` again would only rebuild the ViT, so the codes are kept here."""
        key = (exp.profile.data.name, exp.profile.teacher.backbone.name)
        if key not in self._teachers:
            run = exp.teacher(BITS)
            self._teachers[key] = SharedTeacher(
                record=run.record, run_dir=run.run_dir,
                db_codes=exp.codes(run.net, "database"), rows=run_rows(run.record, method="teacher"))
        return self._teachers[key]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("paper_configs")
    mp.setenv("BRCD_CACHE", os.fspath(base / "env_cache"))  # nothing may fall back to .cache
    mp.setenv("BRCD_DATA", os.fspath(base / "no_data"))
    yield Workspace(base)
    mp.undo()


# ----------------------------------------------------------------------------------------------
# fast checks: the configuration list and the fake files
# ----------------------------------------------------------------------------------------------
def test_paper_configurations_cover_the_grid():
    configs = paper_configurations()
    datasets = ("cifar10", "coco", "nuswide", "imagenet100")
    main = [(d, PAPER_TEACHER, s) for d in datasets for s in PAPER.student_backbones]
    others = [(PAPER.data.name, t, PAPER_STUDENT) for t in PAPER.teacher_backbones
              if t != PAPER_TEACHER]
    assert configs == main + others
    assert PAPER_TEACHER == "vit_b_16" and PAPER_STUDENT == "efficientnet_b0"
    assert set(PAPER.student_backbones) == {"efficientnet_b0", "mobilenet_v2", "resnet18"}
    assert {t for _, t, _ in others} == {"vit_b_32", "vit_l_16"}
    assert len(set(configs)) == len(configs)
    for dataset, teacher, student in configs:
        assert dataset in list_datasets()
        assert teacher in list_backbones() and student in list_backbones()
        assert backbone_info(teacher)["family"] == "vit"
    assert paper_configurations(generality_dataset="nuswide")[-2:] == [
        ("nuswide", t, PAPER_STUDENT) for t in ("vit_b_32", "vit_l_16")]
    with pytest.raises(ValueError, match="unknown dataset.*'mnist'.*valid names: cifar10"):
        paper_configurations(datasets=("mnist",))


def test_paper_test_profile_changes_only_the_cpu_settings(tmp_path):
    prof = paper_test_profile(dataset="coco", teacher="vit_l_16", student="resnet18", root=tmp_path)
    assert PAPER.teacher.backbone.pretrained and PAPER.student.backbone.pretrained
    assert not prof.teacher.backbone.pretrained and not prof.student.backbone.pretrained
    assert (prof.teacher.backbone.name, prof.student.backbone.name) == ("vit_l_16", "resnet18")
    for role in ("teacher", "student"):
        ours, paper = getattr(prof, role), getattr(PAPER, role)
        assert dataclasses.replace(ours, backbone=paper.backbone) == paper
        ours_t, paper_t = getattr(prof, f"{role}_train"), getattr(PAPER, f"{role}_train")
        assert (ours_t.lr, ours_t.eval_every, ours_t.patience) == (paper_t.lr, paper_t.eval_every,
                                                                   paper_t.patience)
    assert prof.data.image_size == PAPER.data.image_size == 224
    assert prof.data.transform == PAPER.data.transform == "paper"
    assert {k: v for k, v in prof.brcd.items() if k != "n_clusters"} == {
        k: v for k, v in PAPER.brcd.items() if k != "n_clusters"}
    assert prof.name == "paper" and not prof.runs_on_cpu


def test_fake_cifar10_reads_back_exactly(tmp_path):
    fake = write_fake_dataset(tmp_path / "c", name="cifar10", n_per_class=2, n_test=6, seed=3)
    assert sorted(os.listdir(fake.folder)) == sorted(
        ["batches.meta", "test_batch", *(f"data_batch_{i}" for i in range(1, 6))])
    ds = get_dataset("cifar10", root=tmp_path / "c", split_dir=tmp_path / "s", n_train_per_class=1,
                     n_val=2, n_query=3, download=False)
    assert (len(ds.train), len(ds.val), len(ds.query), len(ds.database)) == (10, 2, 3, 20)
    assert ds.n_classes == len(CIFAR10_CLASSES) == 10
    np.testing.assert_array_equal(ds.database.labels.argmax(1), fake.train_labels)
    np.testing.assert_array_equal(ds.database.images.reshape(20, -1).numpy(), fake.train_data)
    np.testing.assert_array_equal(ds.query.images.reshape(3, -1).numpy(),
                                  fake.test_data[ds.query.source_index])


@pytest.mark.parametrize("name", sorted(LIST_DATASETS))
def test_fake_list_dataset_reads_back_exactly(tmp_path, name):
    fake = write_fake_dataset(tmp_path / name, name=name, n_train=5, n_test=2, n_database=4)
    assert LIST_LAYOUTS[name].n_classes == LIST_DATASETS[name].n_classes
    ds = get_dataset(name, root=tmp_path / name, split_dir=tmp_path / "s", n_val=2)
    assert (len(ds.train), len(ds.val), len(ds.query), len(ds.database)) == (3, 2, 2, 4)
    assert ds.n_classes == LIST_DATASETS[name].n_classes
    assert list(ds.database.paths) == [os.fspath(tmp_path / name / p)
                                       for p in fake.paths["database"]]
    np.testing.assert_array_equal(ds.database.labels, fake.labels["database"])
    assert (ds.query.labels.sum(1) >= 1).all()
    img, _ = ds.query[0]
    assert img.mode == "RGB" and img.size == (32, 32)
    with open(ds.query.paths[0], "rb") as f:
        assert f.read(3) == b"\xff\xd8\xff"  # a JPEG file


# ----------------------------------------------------------------------------------------------
# every paper configuration, end to end
# ----------------------------------------------------------------------------------------------
def _config_id(config) -> str:
    return "-".join(config)


def _check_rows(rows: list[dict], *, dataset: str, method: str) -> None:
    assert {r["paradigm"] for r in rows} == {"symmetric", "asymmetric"}
    for r in rows:
        assert r["profile"] == "paper" and r["dataset"] == dataset and r["method"] == method
        assert r["metric"] == f"mAP@{PAPER_TOP_K[dataset]}"
        assert math.isfinite(r["value"]) and 0.0 <= r["value"] <= 1.0, r
        for key in PROVENANCE:
            assert isinstance(r[key], str) and r[key], (key, r)
        assert "torch=" in r["versions"] and r["device"].startswith("cpu")


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_paper_configuration_end_to_end(workspace, config):
    dataset, teacher_name, student_name = config
    exp = workspace.experiment(dataset, teacher_name, student_name)
    assert exp.device == "cpu"
    assert len(exp.splits.train) == (10 if dataset == "cifar10" else 2)
    assert exp.splits.top_k == PAPER_TOP_K[dataset]

    # teacher: trained by the first configuration of (dataset, teacher), reused by the others
    teacher = workspace.teacher(exp)
    assert teacher.record["model"]["backbone"]["name"] == teacher_name
    assert not teacher.record["model"]["backbone"]["pretrained"]
    assert teacher.record["epochs_run"] == 1 and len(teacher.record["history"]) == 1
    _check_rows(teacher.rows, dataset=dataset, method="teacher")

    # student: one BRCD training
    student = exp.student(BITS, method="brcd", seed=exp.profile.seeds[0])
    rec = student.record
    assert rec["teacher_key"] == teacher.record["key"]  # loaded from the run cache, not retrained
    with open(os.path.join(teacher.run_dir, "result.json")) as f:
        assert json.load(f) == teacher.record
    assert rec["model"]["backbone"] == {**dataclasses.asdict(PAPER.student.backbone),
                                        "name": student_name, "pretrained": False}
    assert rec["distill"]["method"] == "brcd"
    assert rec["distill"]["kwargs"] == {**PAPER.brcd, "n_clusters": 2}
    assert rec["epochs_run"] == 1 and rec["best_epoch"] == {"symmetric": 1, "asymmetric": 1}
    assert math.isfinite(rec["history"][0]["loss"])
    assert 0.0 <= rec["extra"]["kept_bit_fraction"] <= 1.0
    with open(os.path.join(student.run_dir, "result.json")) as f:
        assert json.load(f)["metrics"] == rec["metrics"]

    # evaluation in both paradigms, recomputed from the codes
    q = exp.codes(student.nets["asymmetric"], "query")
    assert torch.equal(q, exp.codes(student.nets["symmetric"], "query"))  # one validation
    assert q.shape == (len(exp.splits.query), BITS) and set(q.unique().tolist()) <= {-1.0, 1.0}
    scores = evaluate_paradigms(
        student_query=q, student_db=exp.codes(student.nets["symmetric"], "database"),
        teacher_db=teacher.db_codes, query_labels=exp.labels("query"),
        db_labels=exp.labels("database"), k=exp.splits.top_k)
    assert scores == pytest.approx(rec["metrics"], abs=1e-12)
    _check_rows(run_rows(student.record, method="brcd"), dataset=dataset, method="brcd")

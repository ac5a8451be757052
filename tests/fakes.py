"""Tiny fake datasets written in each real dataset's on-disk format (test helpers).

* :func:`write_cifar10` -- the CIFAR-10 python version: ``cifar-10-batches-py/data_batch_1..5``,
  ``test_batch`` and ``batches.meta``, pickled dicts with the real keys (``data`` as a
  ``(n, 3072)`` uint8 array in channel-major order, ``labels`` as a list of ints, ``batch_label``,
  ``filenames``; ``label_names`` in the meta file).
* :func:`write_list_dataset` -- the DeepHash-pytorch / HashNet list-file layout used for MS-COCO,
  NUS-WIDE and ImageNet-100: ``train.txt``, ``test.txt``, ``database.txt`` with one
  ``relative/path.jpg 0 1 0 ...`` line per image, and the JPEG files under the root.

Images are small (default 32 x 32) but carry per-image structure (a colour, a gradient and noise),
so that even randomly initialised backbones map different images to different features. Every
writer is seeded and returns what it wrote, so tests can compare the loader's output to the truth.
Used by ``tests/test_paper_configs.py``; ``tests/test_data.py`` keeps its own variants (which
exercise format quirks such as bytes keys and PNG files).
"""
from __future__ import annotations

import functools
import gzip
import struct
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
CIFAR_BATCH_DIR = "cifar-10-batches-py"
N_CIFAR_TRAIN_BATCHES = 5


# ----------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------
def structured_images(rng: np.random.Generator, *, n: int, size: int) -> np.ndarray:
    """``(n, size, size, 3)`` uint8 images: a random colour, a random-direction gradient and noise."""
    if n < 0 or size < 1:
        raise ValueError(f"need n >= 0 and size >= 1, got n={n}, size={size}")
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        base = rng.uniform(0, 255, 3)
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None] * rng.uniform(-160, 160, 3)
        noise = rng.normal(0, 30, (size, size, 3))
        out[i] = np.clip(base + ramp + noise, 0, 255).astype(np.uint8)
    return out


# ----------------------------------------------------------------------------------------------
# CIFAR-10 (python pickle batches)
# ----------------------------------------------------------------------------------------------
@dataclass
class FakeCifar:
    """What :func:`write_cifar10` wrote: the batch folder, training pool and test pool."""

    folder: Path
    train_data: np.ndarray   # (n_train, 3072) uint8, rows in data_batch_1..5 order
    train_labels: np.ndarray  # (n_train,) int64 class ids
    test_data: np.ndarray
    test_labels: np.ndarray


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the official files are protocol-2 (Python 2) pickles


def write_cifar10(root: str | Path, *, n_per_class: int = 1, n_test: int = 2,
                  image_size: int = 32, seed: int = 0) -> FakeCifar:
    """Write a CIFAR-10 python-version folder under ``root``.

    The training pool holds ``n_per_class`` images of each of the 10 classes, shuffled and spread
    over the five training batches (``np.array_split``; 10 images give two per batch);
    ``test_batch`` holds ``n_test`` images with cycling class ids. ``batches.meta`` names the 10
    real classes. ``image_size`` must be 32 for the real format (the loader checks 3072 columns);
    it is a parameter so that a test can write a malformed folder.
    """
    if n_per_class < 1 or n_test < 1:
        raise ValueError(f"need n_per_class >= 1 and n_test >= 1, got {n_per_class}, {n_test}")
    folder = Path(root) / CIFAR_BATCH_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_classes = len(CIFAR10_CLASSES)

    def rows(n: int) -> np.ndarray:  # HWC images -> channel-major rows, as in the real files
        imgs = structured_images(rng, n=n, size=image_size)
        return imgs.transpose(0, 3, 1, 2).reshape(n, -1).copy()

    train_y = np.repeat(np.arange(n_classes), n_per_class)
    rng.shuffle(train_y)
    train_x = rows(len(train_y))
    parts = np.array_split(np.arange(len(train_y)), N_CIFAR_TRAIN_BATCHES)
    for b, idx in enumerate(parts, start=1):
        _dump(folder / f"data_batch_{b}", {
            "batch_label": f"training batch {b} of {N_CIFAR_TRAIN_BATCHES}",
            "labels": [int(v) for v in train_y[idx]],
            "data": train_x[idx],
            "filenames": [f"fake_train_{i:05d}.png" for i in idx],
        })
    test_y = np.arange(n_test) % n_classes
    test_x = rows(n_test)
    _dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1",
                                  "labels": [int(v) for v in test_y], "data": test_x,
                                  "filenames": [f"fake_test_{i:05d}.png" for i in range(n_test)]})
    _dump(folder / "batches.meta", {"num_cases_per_batch": len(parts[0]),
                                    "label_names": list(CIFAR10_CLASSES),
                                    "num_vis": 3 * image_size * image_size})
    return FakeCifar(folder=folder, train_data=train_x, train_labels=train_y.astype(np.int64),
                     test_data=test_x, test_labels=test_y.astype(np.int64))


# ----------------------------------------------------------------------------------------------
# list-file datasets (MS-COCO, NUS-WIDE, ImageNet-100)
# ----------------------------------------------------------------------------------------------
LabelDraw = Callable[[np.random.Generator, int, int], np.ndarray]


def multi_label(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    """Multi-hot rows with one or two labels among the first few classes (so that queries and
    database items share labels), as in MS-COCO and NUS-WIDE."""
    pool = min(n_classes, 4)
    out = np.zeros((n, n_classes), dtype=np.uint8)
    out[np.arange(n), rng.integers(0, pool, n)] = 1
    extra = rng.random(n) < 0.5
    out[np.flatnonzero(extra), rng.integers(0, pool, int(extra.sum()))] = 1
    return out


def single_label(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    """One-hot rows (ImageNet-100's lists carry one class per image)."""
    out = np.zeros((n, n_classes), dtype=np.uint8)
    out[np.arange(n), rng.integers(0, min(n_classes, 3), n)] = 1
    return out


@dataclass(frozen=True)
class ListLayout:
    """How one list dataset's fake files look: label width, label kind, folder per list."""

    n_classes: int
    labels: LabelDraw
    folders: dict[str, str]  # list stem (train / test / database) -> image folder


LIST_LAYOUTS: dict[str, ListLayout] = {
    "coco": ListLayout(n_classes=80, labels=multi_label,
                       folders={"train": "train2014", "test": "val2014", "database": "train2014"}),
    "nuswide": ListLayout(n_classes=21, labels=multi_label,
                          folders={"train": "images", "test": "images", "database": "images"}),
    "imagenet100": ListLayout(n_classes=100, labels=single_label,
                              folders={"train": "train", "test": "val", "database": "train"}),
}


def list_layouts() -> list[str]:
    return sorted(LIST_LAYOUTS)


@dataclass
class FakeList:
    """What :func:`write_list_dataset` wrote: per list stem, the relative paths and labels."""

    root: Path
    paths: dict[str, list[str]]
    labels: dict[str, np.ndarray]


def write_list_dataset(root: str | Path, *, name: str, n_train: int = 3, n_test: int = 2,
                       n_database: int = 2, image_size: int = 32, seed: int = 0) -> FakeList:
    """Write ``train.txt``, ``test.txt``, ``database.txt`` and their JPEG images under ``root``
    in the layout of list dataset ``name`` (``coco``, ``nuswide`` or ``imagenet100``)."""
    if name not in LIST_LAYOUTS:
        raise ValueError(f"no fake layout for {name!r}; valid names: {', '.join(list_layouts())}")
    layout = LIST_LAYOUTS[name]
    root = Path(root)
    rng = np.random.default_rng(seed)
    paths, labels = {}, {}
    for stem, n in (("train", n_train), ("test", n_test), ("database", n_database)):
        if n < 1:
            raise ValueError(f"{stem}.txt needs at least one image, got {n}")
        folder = root / layout.folders[stem]
        folder.mkdir(parents=True, exist_ok=True)
        rel = [f"{layout.folders[stem]}/{stem}_{i:05d}.jpg" for i in range(n)]
        for r, img in zip(rel, structured_images(rng, n=n, size=image_size)):
            Image.fromarray(img, mode="RGB").save(root / r, format="JPEG", quality=90)
        lab = layout.labels(rng, n, layout.n_classes)
        (root / f"{stem}.txt").write_text(
            "".join(f"{r} {' '.join(str(int(v)) for v in row)}\n" for r, row in zip(rel, lab)))
        paths[stem], labels[stem] = rel, lab
    return FakeList(root=root, paths=paths, labels=labels)


FAKE_WRITERS: dict[str, Callable[..., object]] = {
    "cifar10": write_cifar10,
    **{name: functools.partial(write_list_dataset, name=name) for name in LIST_LAYOUTS},
}


def write_fake_dataset(root: str | Path, *, name: str, seed: int = 0, **sizes: int):
    """Write fake dataset ``name`` under ``root`` with the writer registered for it."""
    if name not in FAKE_WRITERS:
        raise ValueError(f"no fake writer for {name!r}; valid names: {', '.join(sorted(FAKE_WRITERS))}")
    return FAKE_WRITERS[name](root, seed=seed, **sizes)


class TinyNet(nn.Module):
    """A HashingNetwork stand-in on precomputed features: identity 'backbone', linear head
    (``d`` features -> ``bits``), initialised from ``seed``."""

    def __init__(self, d: int = 8, bits: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.backbone = nn.Identity()
        self.head = nn.Linear(d, bits)
        self.code_length = bits

    def features(self, x):
        return x

    def head_forward(self, f):
        return self.head(f)


def head_outcome(key, value: float):
    """A run store ``TrainOutcome`` without training: a 4-feature, 4-bit :class:`TinyNet` whose
    head weights are all ``value`` (bias 0), recorded under ``key`` with both metrics ``value``."""
    from brcd_lib.experiments.runstore import TrainOutcome
    from brcd_lib.training import engine

    net = TinyNet(d=4, bits=4)
    with torch.no_grad():
        net.head.weight.fill_(value)
        net.head.bias.zero_()
    return TrainOutcome(heads={"symmetric": engine.head_state(net)}, best_epoch={"symmetric": 0},
                        record={"key": key, "metrics": {"symmetric": value, "asymmetric": value}})


def tiny_settings(*, student_ssl_epochs: int = 2, student_epochs: int = 4) -> list[str]:
    """``--set`` overrides that shrink the smoke profile to seconds per run, with a teacher whose
    codes BRCD can cluster (BiHalf codes are balanced by construction)."""
    return [
        "teacher.backbone.ssl_epochs=5", f"student.backbone.ssl_epochs={student_ssl_epochs}",
        "teacher.objective=bihalf", "teacher_train.epochs=10", "teacher_train.feature_views=2",
        f"student_train.epochs={student_epochs}", "student_train.eval_every=2",
        "student_train.batch_size=32", "student_train.feature_views=2", "brcd.n_clusters=4",
        "data.protocol.n_train_per_class=10",
    ]


ONLINE_SETTINGS = ["teacher_train.feature_views=0", "student_train.feature_views=0",
                   "teacher_train.epochs=4", "teacher_train.eval_every=2",
                   "teacher_train.batch_size=32", "student_train.epochs=6",
                   "student_train.eval_every=3", "student_train.lr=0.01"]


def online_cpu_profile():
    """The smoke profile shrunk to seconds per run (:func:`tiny_settings`) on the online pipeline
    (``feature_views=0``): teacher and students at batch 32 (3 steps per epoch), 100 training
    images."""
    from brcd_lib.experiments.profiles import get_profile
    from brcd_lib.experiments.train import override_profile

    return override_profile(get_profile("smoke"),
                            tiny_settings(student_ssl_epochs=5, student_epochs=4) + ONLINE_SETTINGS)


def write_idx(path: Path, array: np.ndarray, *, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def write_fake_fashion(folder: Path, *, gz: bool, n_train_per_class=3, n_test=20):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    train_y = np.repeat(np.arange(10), n_train_per_class)
    rng.shuffle(train_y)
    test_y = rng.integers(0, 10, n_test)
    train_x = rng.integers(0, 256, (len(train_y), 28, 28))
    test_x = rng.integers(0, 256, (n_test, 28, 28))
    write_idx(folder / "train-images-idx3-ubyte", train_x, gz=gz)
    write_idx(folder / "train-labels-idx1-ubyte", train_y, gz=gz)
    write_idx(folder / "t10k-images-idx3-ubyte", test_x, gz=gz)
    write_idx(folder / "t10k-labels-idx1-ubyte", test_y, gz=gz)
    return train_x, train_y, test_x, test_y


class KeyedExperiment:
    """An :class:`~brcd_lib.experiments.experiment.Experiment` of ``profile`` whose splits,
    networks and run store are fakes, so that ``teacher()`` and ``student()`` return at once:
    the splits have the split hash ``split_hash``, every network is a :class:`TinyNet` (an
    identity backbone, so the backbone fingerprint is fixed), and the run store trains nothing:
    it records each requested ``(role, key)`` in ``calls`` and returns a run whose record holds
    the key. Used to check run keys and the in-memory teacher memo by behaviour."""

    def __init__(self, cache_dir, profile: str = "smoke", split_hash: str = "split-hash",
                 **kwargs):
        from types import SimpleNamespace

        from brcd_lib.experiments.experiment import Experiment

        self.exp = Experiment(profile, cache_dir=str(cache_dir), device="cpu", progress=False,
                              **kwargs)
        self.calls: list[tuple[str, str]] = []
        self.exp._splits = SimpleNamespace(split_hash=split_hash)
        self.exp.build_network = lambda model, bits, *, role, seed=0: TinyNet(d=4, bits=bits,
                                                                              seed=seed)

        def load_or_train(*, role, key, net, train, model_config, bits):
            self.calls.append((role, key))
            return SimpleNamespace(role=role, net=net, nets={}, metrics={}, record={"key": key},
                                   run_dir=None)

        self.exp.runs.load_or_train = load_or_train

"""Tests of the data layer: registry, saved splits, digits, Fashion-MNIST, CIFAR-10, list files."""
from __future__ import annotations

import gzip
import os
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from brcd_lib.data import (
    ArrayImageSet,
    DatasetNotAvailableError,
    FileImageSet,
    HashingSplits,
    SplitIntegrityWarning,
    dataset_parameters,
    default_split_dir,
    get_dataset,
    list_datasets,
    load_or_create_split,
    small_test_transform,
    split_file_name,
)
from brcd_lib.data import cifar10 as cifar_mod
from brcd_lib.data import fashion_mnist as fm_mod
from brcd_lib.data.splits import partition_per_class
from brcd_lib.io import sha256_file

from fakes import write_fake_fashion, write_idx

torch.set_num_threads(1)
SPLITS = ("train", "val", "query", "database")


def _split_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npz"))


def _class_of(labels: np.ndarray) -> np.ndarray:
    assert (labels.sum(1) == 1).all()
    return labels.argmax(1)


# =============================================================================================
# registry
# =============================================================================================
def test_registry_lists_all_datasets():
    assert list_datasets() == ["cifar10", "coco", "digits", "fashion_mnist", "fashion_mosaic",
                             "imagenet100", "nuswide"]


def test_unknown_dataset_and_option_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="valid names: cifar10, coco, digits"):
        get_dataset("mnist")
    with pytest.raises(ValueError, match=r"unknown option.*n_quer.*valid options:.*n_query"):
        get_dataset("digits", split_dir=tmp_path, n_quer=3)
    with pytest.raises(ValueError, match="seed"):
        get_dataset("digits", split_dir=tmp_path, seed=-1)
    assert dataset_parameters("digits")["n_query"] == 30


# =============================================================================================
# digits
# =============================================================================================
def _sk_digits():
    from sklearn.datasets import load_digits

    b = load_digits()
    return b.images, b.target


def test_digits_sizes_disjointness_and_labels(tmp_path):
    _, target = _sk_digits()
    n_total = len(target)
    ds = get_dataset("digits", split_dir=tmp_path)
    assert isinstance(ds, HashingSplits)
    assert ds.n_classes == 10 and ds.top_k == 100
    assert len(ds.query) == 30 * 10 and len(ds.val) == 20 * 10 and len(ds.train) == 100 * 10
    assert len(ds.database) == n_total - (30 + 20) * 10

    q, v, d, t = (set(getattr(ds, s).source_index.tolist()) for s in ("query", "val", "database", "train"))
    assert not (q & v) and not (q & d) and not (v & d)
    assert q | v | d == set(range(n_total))
    assert t <= d

    for split in SPLITS:
        s = getattr(ds, split)
        assert s.labels.dtype == np.uint8 and s.labels.shape == (len(s), 10)
        np.testing.assert_array_equal(_class_of(s.labels), target[s.source_index])
    for split, per_class in (("query", 30), ("val", 20), ("train", 100)):
        counts = np.bincount(_class_of(getattr(ds, split).labels), minlength=10)
        assert (counts == per_class).all(), split

    summary = ds.summary()
    assert isinstance(summary, pd.DataFrame)
    assert list(summary.columns) == ["split", "expected", "observed"]
    assert summary["split"].tolist() == list(SPLITS)
    assert (summary["expected"].astype(int) == summary["observed"]).all()


def test_digits_images_are_scaled_originals(tmp_path):
    raw, _ = _sk_digits()
    ds = get_dataset("digits", split_dir=tmp_path, image_size=8)
    imgs = ds.query.images
    assert imgs.dtype == torch.uint8 and imgs.shape == (len(ds.query), 1, 8, 8)
    for row in (0, 7, len(ds.query) - 1):
        src = raw[ds.query.source_index[row]]
        expected = np.array([[round(float(p) * 255 / 16) for p in line] for line in src], dtype=np.uint8)
        np.testing.assert_array_equal(imgs[row, 0].numpy(), expected)
    big = get_dataset("digits", split_dir=tmp_path)  # default 16x16, same split file
    assert big.train.images.shape[1:] == (1, 16, 16)
    assert big.split_hash == ds.split_hash
    assert len(_split_files(tmp_path)) == 1  # image size does not change the split


def test_imageset_items_transform_subset(tmp_path):
    ds = get_dataset("digits", split_dir=tmp_path)
    img, idx = ds.train[5]
    assert idx == 5 and img.dtype == torch.uint8 and img.shape == (1, 16, 16)
    assert torch.equal(img, ds.train.images[5])
    assert ds.train[-1][1] == len(ds.train) - 1
    with pytest.raises(IndexError):
        ds.train[len(ds.train)]
    with pytest.raises(TypeError):
        ds.train[1.5]

    t = small_test_transform(16)
    tt = ds.train.with_transform(t)
    assert tt.images.data_ptr() == ds.train.images.data_ptr()  # storage shared
    assert tt.labels is ds.train.labels
    assert ds.train.transform is None
    out, j = tt[3]
    assert j == 3 and out.shape == (3, 16, 16) and out.dtype == torch.float32

    sub = ds.train.subset([4, 2, 9])
    assert isinstance(sub, ArrayImageSet) and len(sub) == 3
    assert torch.equal(sub.images[1], ds.train.images[2])
    np.testing.assert_array_equal(sub.source_index, ds.train.source_index[[4, 2, 9]])
    np.testing.assert_array_equal(sub.labels, ds.train.labels[[4, 2, 9]])
    with pytest.raises(IndexError):
        ds.train.subset([len(ds.train)])
    with pytest.raises(TypeError, match="boolean"):
        ds.train.subset(np.ones(len(ds.train), dtype=bool))

    both = ds.with_transforms(train=t, test=t)
    assert both.database.transform is t and ds.database.transform is None


def test_saved_split_is_reloaded_identically(tmp_path):
    first = get_dataset("digits", split_dir=tmp_path)
    files = _split_files(tmp_path)
    assert len(files) == 1
    sidecar = files[0].with_name(files[0].name + ".sha256")
    assert sidecar.read_text().split()[0] == first.split_hash == sha256_file(files[0])
    mtime = files[0].stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = get_dataset("digits", split_dir=tmp_path)
    assert files[0].stat().st_mtime_ns == mtime  # reloaded, not rewritten
    assert second.split_hash == first.split_hash
    for split in SPLITS:
        np.testing.assert_array_equal(getattr(first, split).source_index, getattr(second, split).source_index)
    assert first.protocol["split_file"] == str(files[0])


def test_reload_uses_saved_file_not_a_new_draw(tmp_path):
    calls = []

    def draw(rng):
        calls.append(1)
        return {s: np.arange(3) + i for i, s in enumerate(SPLITS)}

    a = load_or_create_split(dataset="toy", params={"p": 1}, seed=0, split_dir=tmp_path, draw=draw)
    b = load_or_create_split(dataset="toy", params={"p": 1}, seed=0, split_dir=tmp_path, draw=draw)
    assert len(calls) == 1 and not a.reused and b.reused
    assert all(b.indices[s].dtype == np.int64 for s in SPLITS)
    np.testing.assert_array_equal(b.indices["val"], [1, 2, 3])


def test_corrupted_split_file_is_detected_and_redrawn(tmp_path):
    good = get_dataset("digits", split_dir=tmp_path)
    path = _split_files(tmp_path)[0]
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.warns(SplitIntegrityWarning, match="SHA-256"):
        again = get_dataset("digits", split_dir=tmp_path)
    assert again.split_hash == good.split_hash == sha256_file(path)
    np.testing.assert_array_equal(again.train.source_index, good.train.source_index)


def test_missing_sidecar_and_tampered_indices_are_rejected(tmp_path):
    good = get_dataset("digits", split_dir=tmp_path)
    path = _split_files(tmp_path)[0]
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.unlink()
    with pytest.warns(SplitIntegrityWarning, match="missing"):
        get_dataset("digits", split_dir=tmp_path)
    assert sidecar.exists()

    # a well-formed file with a matching hash but indices outside the pool is still rejected
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data["train"] = data["train"].copy()
    data["train"][0] = 10 ** 6
    np.savez(path, **data)
    sidecar.write_text(sha256_file(path) + "  " + path.name + "\n")
    with pytest.warns(SplitIntegrityWarning, match="outside the pool"):
        again = get_dataset("digits", split_dir=tmp_path)
    np.testing.assert_array_equal(again.train.source_index, good.train.source_index)


def test_same_seed_same_split_other_seed_different(tmp_path):
    a = get_dataset("digits", split_dir=tmp_path / "a", seed=3)
    b = get_dataset("digits", split_dir=tmp_path / "b", seed=3)
    c = get_dataset("digits", split_dir=tmp_path / "a", seed=4)
    assert a.split_hash == b.split_hash  # byte-identical files in independent folders
    for split in SPLITS:
        np.testing.assert_array_equal(getattr(a, split).source_index, getattr(b, split).source_index)
    assert a.split_hash != c.split_hash
    assert not np.array_equal(a.train.source_index, c.train.source_index)
    assert len(_split_files(tmp_path / "a")) == 2


def test_digits_subset_option(tmp_path):
    ds = get_dataset("digits", split_dir=tmp_path, subset=12, n_query=2, n_val=1, n_train_per_class=5)
    assert (len(ds.query), len(ds.val), len(ds.train)) == (20, 10, 50)
    assert len(ds.database) == (12 - 2 - 1) * 10
    counts = np.bincount(_class_of(ds.database.labels), minlength=10)
    assert (counts == 9).all()
    with pytest.raises(ValueError, match="subset"):
        get_dataset("digits", split_dir=tmp_path, subset=10, n_query=5, n_val=5, n_train_per_class=5)
    with pytest.raises(ValueError, match="root"):
        get_dataset("digits", root=tmp_path, split_dir=tmp_path)


def test_split_file_name_and_default_dir(tmp_path, monkeypatch):
    name = split_file_name("digits", {"n_val": 20, "subset": None, "a": "x/y"}, 7)
    assert name == "digits__a=x-y__n_val=20__subset=None__seed=7.npz"
    long = split_file_name("d", {"k": "v" * 500}, 0)
    assert long.endswith(".npz") and len(long) < 200
    assert long != split_file_name("d", {"k": "v" * 499 + "w"}, 0)
    monkeypatch.setenv("BRCD_CACHE", str(tmp_path / "cache"))
    assert default_split_dir() == tmp_path / "cache" / "splits"
    monkeypatch.delenv("BRCD_CACHE")
    assert default_split_dir().parts[-2:] == (".cache", "splits")


@settings(max_examples=25, deadline=None)
@given(ids=st.lists(st.integers(0, 3), min_size=1, max_size=60), a=st.integers(0, 3),
       b=st.integers(0, 3), seed=st.integers(0, 2 ** 16))
def test_partition_per_class_property(ids, a, b, seed):
    ids = np.array(ids)
    rng = np.random.default_rng(seed)
    if np.bincount(ids)[np.unique(ids)].min() < a + b:
        with pytest.raises(ValueError, match="per class"):
            partition_per_class(rng, ids, {"x": a, "y": b}, rest="r")
        return
    parts = partition_per_class(rng, ids, {"x": a, "y": b}, rest="r")
    allidx = np.concatenate([parts["x"], parts["y"], parts["r"]])
    assert sorted(allidx.tolist()) == list(range(len(ids)))
    for c in np.unique(ids):
        assert (ids[parts["x"]] == c).sum() == a
        assert (ids[parts["y"]] == c).sum() == b


# =============================================================================================
# Fashion-MNIST
# =============================================================================================


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_fake_idx_root(tmp_path, gz):
    train_x, train_y, test_x, test_y = write_fake_fashion(tmp_path / "fm", gz=gz)
    ds = get_dataset("fashion_mnist", root=tmp_path / "fm", split_dir=tmp_path / "s",
                     n_train_per_class=2, n_val=8, n_query=10, download=False)
    assert (len(ds.train), len(ds.val), len(ds.query), len(ds.database)) == (20, 8, 10, len(train_y))
    assert ds.top_k == 1000 and ds.n_classes == 10
    np.testing.assert_array_equal(ds.database.source_index, np.arange(len(train_y)))
    np.testing.assert_array_equal(ds.database.images[:, 0].numpy(), train_x)
    np.testing.assert_array_equal(_class_of(ds.database.labels), train_y)
    assert set(ds.train.source_index) <= set(ds.database.source_index.tolist())
    assert not set(ds.val.source_index.tolist()) & set(ds.query.source_index.tolist())
    np.testing.assert_array_equal(ds.query.images[:, 0].numpy(), test_x[ds.query.source_index])
    np.testing.assert_array_equal(_class_of(ds.val.labels), test_y[ds.val.source_index])
    assert (np.bincount(_class_of(ds.train.labels), minlength=10) == 2).all()
    exp = ds.summary().set_index("split")["expected"]
    assert exp["train"] == 20 and exp["val"] == 8 and exp["query"] == 10

    small = get_dataset("fashion_mnist", root=tmp_path / "fm", split_dir=tmp_path / "s",
                        n_train_per_class=2, n_val=8, n_query=10, image_size=14, download=False)
    assert small.train.images.shape[1:] == (1, 14, 14)
    assert small.split_hash == ds.split_hash


def test_fashion_mnist_torchvision_layout_and_errors(tmp_path, monkeypatch):
    write_fake_fashion(tmp_path / "tv" / "FashionMNIST" / "raw", gz=False)
    ds = get_dataset("fashion_mnist", root=tmp_path / "tv", split_dir=tmp_path / "s",
                     n_train_per_class=1, n_val=5, n_query=5, download=False)
    assert len(ds.train) == 10
    with pytest.raises(ValueError, match="n_val \\+ n_query"):
        get_dataset("fashion_mnist", root=tmp_path / "tv", split_dir=tmp_path / "s",
                    n_train_per_class=1, n_val=15, n_query=15, download=False)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetNotAvailableError, match="dataset-fashion-mnist") as info:
        get_dataset("fashion_mnist", root=empty, split_dir=tmp_path / "s", download=False)
    assert isinstance(info.value, FileNotFoundError) and str(empty) in str(info.value)

    def offline(target):
        raise OSError("network unreachable")

    monkeypatch.setattr(fm_mod, "_torchvision_download", offline)
    with pytest.raises(DatasetNotAvailableError, match="download into .*network unreachable"):
        get_dataset("fashion_mnist", root=empty, split_dir=tmp_path / "s")


def test_read_idx_errors(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "ok", arr, gz=False)
    np.testing.assert_array_equal(fm_mod.read_idx(tmp_path / "ok"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        fm_mod.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        fm_mod.read_idx(tmp_path / "short")


@pytest.mark.skipif(not fm_mod.SYSTEM_ROOT.is_dir(),
                    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_real_protocol_sizes(tmp_path, monkeypatch):
    monkeypatch.delenv("BRCD_DATA", raising=False)
    ds = get_dataset("fashion_mnist", split_dir=tmp_path, download=False)
    train_labels = fm_mod.read_idx(fm_mod._file(fm_mod.SYSTEM_ROOT, fm_mod.FILES["train_labels"]))
    test_labels = fm_mod.read_idx(fm_mod._file(fm_mod.SYSTEM_ROOT, fm_mod.FILES["test_labels"]))
    assert len(ds.train) == 500 * 10
    assert len(ds.val) == 5000 and len(ds.query) == 5000
    assert len(ds.val) + len(ds.query) == len(test_labels)
    assert len(ds.database) == len(train_labels)
    assert (ds.summary()["expected"].astype(int) == ds.summary()["observed"]).all()
    assert ds.database.images.shape[1:] == (1, 28, 28)
    assert (np.bincount(_class_of(ds.train.labels), minlength=10) == 500).all()


# =============================================================================================
# CIFAR-10
# =============================================================================================
def _fake_cifar(root: Path, *, per_class_per_batch=2, n_test=30, bytes_keys_batch=3):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    xs, ys = [], []
    for b in range(1, 6):
        y = np.repeat(np.arange(10), per_class_per_batch)
        rng.shuffle(y)
        x = rng.integers(0, 256, (len(y), 3072), dtype=np.uint8)
        entry = {"data": x, "labels": y.tolist(), "batch_label": f"training batch {b} of 5"}
        if b == bytes_keys_batch:
            entry = {k.encode(): v for k, v in entry.items()}
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump(entry, f, protocol=2 if b % 2 else 5)
        xs.append(x)
        ys.append(y)
    tx = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    ty = rng.integers(0, 10, n_test)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": tx, "labels": ty.tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}, f)
    return np.concatenate(xs), np.concatenate(ys), tx, ty


def test_cifar10_fake_pickle_root(tmp_path):
    train_x, train_y, test_x, test_y = _fake_cifar(tmp_path / "c")
    ds = get_dataset("cifar10", root=tmp_path / "c", split_dir=tmp_path / "s",
                     n_train_per_class=3, n_val=10, n_query=15, download=False)
    assert (len(ds.train), len(ds.val), len(ds.query), len(ds.database)) == (30, 10, 15, len(train_y))
    assert ds.top_k == 1000 and ds.n_classes == 10
    db = ds.database.images
    assert db.dtype == torch.uint8 and db.shape == (len(train_y), 3, 32, 32)
    # CIFAR rows are channel-major: value (c, y, x) sits at column c*1024 + y*32 + x
    for i, c, yy, xx in [(0, 0, 0, 0), (17, 1, 5, 30), (len(train_y) - 1, 2, 31, 31)]:
        assert int(db[i, c, yy, xx]) == int(train_x[i, c * 1024 + yy * 32 + xx])
    np.testing.assert_array_equal(_class_of(ds.database.labels), train_y)
    np.testing.assert_array_equal(_class_of(ds.query.labels), test_y[ds.query.source_index])
    assert not set(ds.val.source_index.tolist()) & set(ds.query.source_index.tolist())
    assert (np.bincount(_class_of(ds.train.labels), minlength=10) == 3).all()
    exp = ds.summary().set_index("split")["expected"]
    assert exp["database"] == 50_000  # the real protocol's database, shown next to the fake's
    assert ds.protocol["pools"] == {"train": "train", "val": "test", "query": "test", "database": "train"}


def test_cifar10_refuses_non_data_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        cifar_mod.read_cifar_batch(path)


def test_cifar10_missing_root_errors(tmp_path, monkeypatch):
    empty = tmp_path / "nothing"
    with pytest.raises(DatasetNotAvailableError, match="CIFAR-10 not found") as info:
        get_dataset("cifar10", root=empty, split_dir=tmp_path, download=False)
    assert str(empty) in str(info.value)

    def offline(target):
        raise OSError("no route to host")

    monkeypatch.setattr(cifar_mod, "_torchvision_download", offline)
    with pytest.raises(DatasetNotAvailableError, match="download .*no route to host"):
        get_dataset("cifar10", root=empty, split_dir=tmp_path)


# =============================================================================================
# list-file datasets
# =============================================================================================
def _write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    for i, name in enumerate(names):
        arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        mode = "RGB" if i % 2 else "L"
        img = Image.fromarray(arr if mode == "RGB" else arr[..., 0], mode=mode)
        img.save(folder / name)


def _label_line(path: str, labels) -> str:
    return path + " " + " ".join(str(int(v)) for v in labels) + "\n"


def _fake_list_dataset(root: Path, *, n_labels=21, sizes=(20, 6, 25)) -> dict[str, tuple[list, np.ndarray]]:
    rng = np.random.default_rng(3)
    out = {}
    for list_name, n in zip(("train.txt", "test.txt", "database.txt"), sizes):
        stem = list_name.split(".")[0]
        names = [f"{stem}_{i}.{'png' if i % 2 else 'jpg'}" for i in range(n)]
        _write_images(root / "images", names)
        labels = (rng.random((n, n_labels)) < 0.2).astype(np.uint8)
        labels[np.arange(n), rng.integers(0, n_labels, n)] = 1
        text = "".join(_label_line(f"images/{nm}", lab) for nm, lab in zip(names, labels))
        (root / list_name).write_text(text + "\n")  # a trailing blank line is allowed
        out[stem] = (names, labels)
    return out


def test_list_dataset_holdout(tmp_path):
    truth = _fake_list_dataset(tmp_path / "nus")
    ds = get_dataset("nuswide", root=tmp_path / "nus", split_dir=tmp_path / "s")
    n_val = max(1, min(1000, int(20 * 0.1)))
    assert (len(ds.train), len(ds.val), len(ds.query), len(ds.database)) == (20 - n_val, n_val, 6, 25)
    assert ds.top_k == 5000 and ds.n_classes == 21
    assert isinstance(ds.train, FileImageSet)
    tr = set(ds.train.source_index.tolist())
    va = set(ds.val.source_index.tolist())
    assert not tr & va and tr | va == set(range(20))
    names, labels = truth["train"]
    for row, src in enumerate(ds.val.source_index):
        assert ds.val.paths[row] == str(tmp_path / "nus" / "images" / names[src])
        np.testing.assert_array_equal(ds.val.labels[row], labels[src])
    np.testing.assert_array_equal(ds.database.labels, truth["database"][1])
    assert ds.database.labels.dtype == np.uint8

    img, i = ds.query[1]
    assert i == 1 and isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (8, 8)
    out, _ = ds.query.with_transform(small_test_transform(8))[0]  # a greyscale JPEG, converted
    assert out.shape == (3, 8, 8)

    summary = ds.summary().set_index("split")
    assert summary.loc["train", "expected"] == 10_500 - n_val
    assert summary.loc["val", "expected"] == n_val
    assert summary.loc["query", "expected"] == 2_100
    assert summary.loc["database", "expected"] == 195_834 - 2_100


def test_list_dataset_upstream_validation(tmp_path):
    _fake_list_dataset(tmp_path / "nus")
    ds = get_dataset("nuswide", root=tmp_path / "nus", split_dir=tmp_path / "s", validation="upstream")
    assert len(ds.train) == 20
    assert list(ds.val.paths) == list(ds.query.paths)
    np.testing.assert_array_equal(ds.val.labels, ds.query.labels)
    with pytest.raises(ValueError, match="holdout"):
        get_dataset("nuswide", root=tmp_path / "nus", split_dir=tmp_path / "s",
                    validation="upstream", n_val=3)
    with pytest.raises(ValueError, match="holdout, upstream"):
        get_dataset("nuswide", root=tmp_path / "nus", split_dir=tmp_path / "s", validation="test")
    held = get_dataset("nuswide", root=tmp_path / "nus", split_dir=tmp_path / "s", n_val=5)
    assert len(held.val) == 5 and len(held.train) == 15
    with pytest.raises(ValueError, match="no training images"):
        get_dataset("nuswide", root=tmp_path / "nus", split_dir=tmp_path / "s", n_val=20)


def test_coco_unknown_sizes_print_unknown(tmp_path, capsys):
    _fake_list_dataset(tmp_path / "coco", n_labels=80, sizes=(10, 4, 12))
    ds = get_dataset("coco", root=tmp_path / "coco", split_dir=tmp_path / "s")
    assert ds.top_k == 5000 and ds.n_classes == 80
    assert ds.summary()["expected"].tolist() == [None, 1, None, None]
    ds.print_summary()
    printed = capsys.readouterr().out
    assert "unknown" in printed and ds.split_hash in printed


def test_imagenet100_label_width_warning_and_top_k(tmp_path):
    _fake_list_dataset(tmp_path / "inet", n_labels=5, sizes=(10, 3, 8))
    with pytest.warns(UserWarning, match="5 label columns"):
        ds = get_dataset("imagenet100", root=tmp_path / "inet", split_dir=tmp_path / "s")
    assert ds.top_k == 1000 and ds.n_classes == 5


@pytest.mark.parametrize("bad_line, lineno, message", [
    ("images/x.jpg", 3, "no label"),
    ("images/x.jpg " + " ".join(["0"] * 20) + " 2", 3, "not 0 or 1"),
    ("images/x.jpg " + " ".join(["0"] * 20), 3, "20 label values, but line 1 has 21"),
])
def test_malformed_lines_name_file_and_line(tmp_path, bad_line, lineno, message):
    _fake_list_dataset(tmp_path / "nus")
    path = tmp_path / "nus" / "test.txt"
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(lineno - 1, bad_line + "\n")
    path.write_text("".join(lines))
    with pytest.raises(ValueError) as info:
        get_dataset("nuswide", root=tmp_path / "nus", split_dir=tmp_path / "s")
    text = str(info.value)
    assert "test.txt" in text and f"line {lineno}" in text and message in text
    assert "each line must read" in text  # the fix


def test_missing_root_and_missing_list(tmp_path):
    root = tmp_path / "not_there"
    with pytest.raises(FileNotFoundError) as info:
        get_dataset("coco", root=root, split_dir=tmp_path / "s")
    text = str(info.value)
    assert str(root) in text and "train.txt" in text and "database.txt" in text
    assert "DeepHash-pytorch" in text
    _fake_list_dataset(tmp_path / "nus")
    (tmp_path / "nus" / "database.txt").unlink()
    with pytest.raises(DatasetNotAvailableError, match="lacks database.txt"):
        get_dataset("nuswide", root=tmp_path / "nus", split_dir=tmp_path / "s")


def test_missing_image_reported_lazily_with_path(tmp_path):
    _fake_list_dataset(tmp_path / "nus")
    ds = get_dataset("nuswide", root=tmp_path / "nus", split_dir=tmp_path / "s")
    gone = Path(ds.database.paths[2])
    gone.unlink()
    ds.database[1]  # other images still open
    with pytest.raises(FileNotFoundError, match=str(gone)):
        ds.database[2]


def test_strip_prefix_image_root_and_list_names(tmp_path):
    _write_images(tmp_path / "pics", ["a.png", "b.png", "c.png"])
    root = tmp_path / "lists"
    root.mkdir()
    lab = [1, 0, 0]
    (root / "tr.txt").write_text("".join(_label_line(f"/old/box/{n}", lab) for n in ("a.png", "b.png")))
    (root / "te.txt").write_text(_label_line("/old/box/c.png", [0, 1, 0]))
    (root / "db.txt").write_text("".join(_label_line(f"/old/box/{n}", lab) for n in ("a.png", "b.png", "c.png")))
    with pytest.warns(UserWarning, match="label columns"):
        ds = get_dataset("nuswide", root=root, split_dir=tmp_path / "s", train_list="tr.txt",
                         test_list="te.txt", database_list="db.txt", image_root=tmp_path / "pics",
                         strip_prefix="/old/box", n_val=1)
    assert ds.query.paths[0] == str(tmp_path / "pics" / "c.png")
    assert ds.database[2][0].size == (8, 8)


def test_changed_list_file_gives_a_new_split(tmp_path):
    _fake_list_dataset(tmp_path / "nus")
    a = get_dataset("nuswide", root=tmp_path / "nus", split_dir=tmp_path / "s")
    with open(tmp_path / "nus" / "train.txt", "a") as f:
        f.write(_label_line("images/train_0.jpg", [1] + [0] * 20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a new file, not a rejected old one
        b = get_dataset("nuswide", root=tmp_path / "nus", split_dir=tmp_path / "s")
    assert len(_split_files(tmp_path / "s")) == 2
    assert a.split_hash != b.split_hash and len(b.train) + len(b.val) == 21

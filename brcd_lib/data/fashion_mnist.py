"""``fashion_mnist``: Fashion-MNIST under the CIFAR-10 protocol of the released code.

train = ``n_train_per_class`` (500) per class from the 60,000 training images; the 10,000 test
images are shuffled and cut into ``n_val`` (5,000) validation and ``n_query`` (5,000) test queries;
database = the 60,000 training images; mAP@1000. One channel, stored at ``image_size`` (28 = the
original; other sizes are bilinear resizes).

The raw IDX files (``train-images-idx3-ubyte`` etc., optionally ``.gz``) are read with NumPy.
Root search order: the explicit ``root``; ``$BRCD_DATA/fashion-mnist``; ``$BRCD_DATA``;
``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu package ``dataset-fashion-mnist``);
``<repo>/.cache/data``; then ``torchvision.datasets.FashionMNIST(download=True)`` into the explicit
root, else ``$BRCD_DATA`` or ``<repo>/.cache/data``. Inside each folder the files may also sit in
``FashionMNIST/raw`` (torchvision's layout) or ``fashion-mnist``.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..paths import data_root
from .base import HashingSplits, candidate_folders, check_count, check_top_k, locate_dataset
from .cifar10 import check_protocol_counts, two_pool_splits
from .registry import register_dataset
from .transforms import resize_uint8_images

__all__ = ["fashion_mnist", "find_fashion_mnist", "load_fashion_mnist_pools", "read_idx"]

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SYSTEM_ROOT = Path("/usr/share/datasets/fashion-mnist")
#: Size of the Fashion-MNIST training set = the protocol's database.
FASHION_TRAIN_SIZE = 60_000
N_CLASSES = 10

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format; gzip-compressed when the name ends in ``.gz``)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r}); expected the "
                         "raw Fashion-MNIST files such as train-images-idx3-ubyte.gz")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = math.prod(dims)
    if len(data) - header != count * dtype.itemsize:
        raise ValueError(f"{path} is truncated or padded: header says {dims} values of {dtype} "
                         f"({count * dtype.itemsize} bytes), the file holds {len(data) - header}")
    return np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims).astype(
        dtype.newbyteorder("="))


def _file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _data_folder(candidate: Path) -> Path | None:
    for folder in (candidate, candidate / "FashionMNIST" / "raw", candidate / "fashion-mnist"):
        if all(_file(folder, stem) is not None for stem in FILES.values()):
            return folder
    return None


def _download_target(root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root)
    return data_root()


def _candidates(root: str | os.PathLike | None) -> list[Path]:
    return candidate_folders(root, env_subfolder="fashion-mnist",
                             defaults=[SYSTEM_ROOT, data_root()])


def _torchvision_download(target: Path) -> None:
    """Fetch Fashion-MNIST with torchvision into ``target/FashionMNIST/raw`` (raises on failure)."""
    from torchvision.datasets import FashionMNIST

    FashionMNIST(root=os.fspath(target), train=True, download=True)
    FashionMNIST(root=os.fspath(target), train=False, download=True)


def find_fashion_mnist(root: str | os.PathLike | None, *, download: bool) -> Path:
    """The folder holding the four IDX files; downloads when allowed and nothing is found."""
    return locate_dataset(
        title="Fashion-MNIST", candidates=_candidates(root), probe=_data_folder,
        expected=", ".join(f"{stem}[.gz]" for stem in FILES.values()),
        how=("install the Debian/Ubuntu package dataset-fashion-mnist (apt-get install "
             "dataset-fashion-mnist, files in /usr/share/datasets/fashion-mnist), or put the files "
             "from https://github.com/zalandoresearch/fashion-mnist into $BRCD_DATA/fashion-mnist"),
        download=download, download_target=_download_target(root), fetch=_torchvision_download)


def load_fashion_mnist_pools(folder: str | os.PathLike, *, image_size: int = 28
                             ) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    """``{"train": (images, class ids), "test": (...)}``; images ``uint8`` ``(n, 1, s, s)``."""
    folder = Path(folder)
    pools = {}
    for part in ("train", "test"):
        images = read_idx(_file(folder, FILES[f"{part}_images"]))
        labels = read_idx(_file(folder, FILES[f"{part}_labels"]))
        if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1 \
                or labels.shape[0] != images.shape[0]:
            raise ValueError(f"{folder}: {part} images {images.shape}/{images.dtype} and labels "
                             f"{labels.shape} do not form an (n, H, W) uint8 set with n labels")
        if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
            raise ValueError(f"{folder}: {part} labels must lie in 0..{N_CLASSES - 1}")
        tensor = resize_uint8_images(torch.from_numpy(np.ascontiguousarray(images[:, None])),
                                     image_size)
        pools[part] = (tensor, labels.astype(np.int64))
    return pools


def _locate(root: str | os.PathLike | None = None) -> Path:
    """Where the files are, without downloading (raises ``DatasetNotAvailableError``)."""
    return find_fashion_mnist(root, download=False)


@register_dataset("fashion_mnist", locate=_locate, class_names=(
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
    "Ankle boot"),
)
def fashion_mnist(*, root: Any = None, split_dir: Any = None, seed: int = 0,
                  n_train_per_class: int = 500, n_val: int = 5000, n_query: int = 5000,
                  image_size: int = 28, top_k: int | None = 1000,
                  download: bool = True) -> HashingSplits:
    """Build Fashion-MNIST under the CIFAR-10 protocol.

    Args:
        root: folder with the IDX files (see the module docstring for the default search).
        n_train_per_class: training images per class (from the training set).
        n_val / n_query: validation / test queries cut from the shuffled test set.
        image_size: side of the stored images.
        top_k: K of mAP@K.
        download: let torchvision fetch the data when no copy is found.
    """
    n_train_per_class, n_val, n_query = check_protocol_counts(n_train_per_class, n_val, n_query)
    image_size = check_count("image_size", image_size, minimum=1)
    top_k = check_top_k(top_k)
    folder = find_fashion_mnist(root, download=download)
    pools = load_fashion_mnist_pools(folder, image_size=image_size)
    description = (
        f"Fashion-MNIST (CIFAR-10 protocol): train = {n_train_per_class} per class from the "
        f"training set; the test set is shuffled into {n_val} validation and {n_query} test "
        f"queries; database = the whole training set; 1x{image_size}x{image_size} uint8"
    )
    return two_pool_splits(
        name="fashion_mnist", pools=pools, n_classes=N_CLASSES, seed=seed, split_dir=split_dir,
        n_train_per_class=n_train_per_class, n_val=n_val, n_query=n_query, top_k=top_k,
        description=description, expected_database=FASHION_TRAIN_SIZE,
        extra_parameters={"image_size": image_size}, notes={"data_folder": os.fspath(folder)},
    )

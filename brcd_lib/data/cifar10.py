"""``cifar10``: CIFAR-10 under the released BRCD protocol (method.md section 5).

train = ``n_train_per_class`` (500) images per class drawn from the 50,000 training images; the
10,000 test images are shuffled and cut into ``n_val`` (5,000) validation and ``n_query`` (5,000)
test queries; the database is the whole training set; mAP@1000. Images are kept as ``uint8``
``(n, 3, 32, 32)`` arrays.

The files are read from the official python-pickle layout (``cifar-10-batches-py/data_batch_1..5``,
``test_batch``, ``batches.meta``) with an unpickler that only accepts NumPy arrays and plain
containers. When no copy is found, ``torchvision.datasets.CIFAR10(download=True)`` fetches one
(``download=False`` turns that off); a failed download raises
:class:`~brcd_lib.data.base.DatasetNotAvailableError` with the places searched and the fix.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .base import (
    HashingSplits,
    assemble_splits,
    candidate_folders,
    check_count,
    check_n_val,
    check_top_k,
    locate_dataset,
    one_hot,
)
from ..paths import data_root
from .registry import register_dataset
from .splits import draw_per_class, load_or_create_split, random_partition

__all__ = ["cifar10", "load_cifar10_pools", "read_cifar_batch", "two_pool_splits"]

BATCH_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
#: Size of the CIFAR-10 training set = the released protocol's database (method.md section 5).
CIFAR10_TRAIN_SIZE = 50_000


# -- safe reading of the pickle batches ---------------------------------------------------------
def _allowed_globals() -> dict[tuple[str, str], Any]:
    import codecs

    from numpy._core import multiarray, numeric

    allowed = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
        ("builtins", "bytearray"): bytearray,
        ("__builtin__", "bytearray"): bytearray,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = numeric._frombuffer
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler for data files: NumPy arrays, dicts, lists, str and bytes -- nothing executable."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if _ArrayUnpickler._allowed is None:
            _ArrayUnpickler._allowed = _allowed_globals()
        try:
            return _ArrayUnpickler._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from a CIFAR batch file: only NumPy arrays and "
                "plain containers are allowed (is this really a CIFAR-10 python batch?)"
            ) from None


def read_cifar_batch(path: str | os.PathLike) -> dict[str, Any]:
    """Read one CIFAR python batch; keys are returned as ``str`` (``data``, ``labels``, ...)."""
    with open(path, "rb") as f:
        entry = _ArrayUnpickler(f, encoding="latin1").load()
    if not isinstance(entry, dict):
        raise ValueError(f"{path} does not hold a CIFAR batch dict (got {type(entry).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _images_and_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    entry = read_cifar_batch(path)
    if "data" not in entry or "labels" not in entry:
        raise ValueError(f"{path} lacks the 'data'/'labels' entries of a CIFAR-10 batch "
                         f"(found {sorted(entry)})")
    data = np.asarray(entry["data"], dtype=np.uint8)
    labels = np.asarray(entry["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise ValueError(f"{path}: expected data of shape (n, 3072) and n labels, got "
                         f"{data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def _batch_folder(candidate: Path) -> Path | None:
    for folder in (candidate / BATCH_DIR, candidate):
        if all((folder / f).is_file() for f in (*TRAIN_FILES, TEST_FILE)):
            return folder
    return None


def _candidates(root: str | os.PathLike | None) -> list[Path]:
    return candidate_folders(root, env_subfolder="cifar10",
                             defaults=[data_root() / "cifar10"])


def _torchvision_download(target: Path) -> None:
    """Fetch CIFAR-10 with torchvision into ``target`` (raises on failure)."""
    from torchvision.datasets import CIFAR10

    CIFAR10(root=os.fspath(target), train=True, download=True)


def find_cifar10(root: str | os.PathLike | None, *, download: bool) -> Path:
    """The folder holding the CIFAR-10 batch files; downloads when allowed and nothing is found."""
    candidates = _candidates(root)
    return locate_dataset(
        title="CIFAR-10", candidates=candidates, probe=_batch_folder,
        expected=f"{BATCH_DIR}/{{{', '.join(TRAIN_FILES)}, {TEST_FILE}, {META_FILE}}}",
        how=("unpack cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
             f"into one of these folders or into $BRCD_DATA/cifar10 (a folder holding {BATCH_DIR})"),
        download=download, download_target=candidates[0], fetch=_torchvision_download)


def load_cifar10_pools(folder: str | os.PathLike) -> dict[str, tuple[torch.Tensor, np.ndarray]]:
    """``{"train": (images, class ids), "test": (images, class ids)}`` from a batch folder."""
    folder = Path(folder)
    parts = [_images_and_labels(folder / f) for f in TRAIN_FILES]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _images_and_labels(folder / TEST_FILE)
    return {"train": (torch.from_numpy(train_x), train_y), "test": (torch.from_numpy(test_x), test_y)}


def _n_classes(folder: Path, pools: Mapping[str, tuple[torch.Tensor, np.ndarray]]) -> int:
    """Number of classes: ``len(label_names)`` of batches.meta, else the largest class id + 1."""
    meta = folder / META_FILE
    if meta.is_file():
        names = read_cifar_batch(meta).get("label_names")
        if names is not None:
            return len(names)
    return int(max(int(y.max()) for _, y in pools.values())) + 1


# -- the protocol shared by CIFAR-10 and Fashion-MNIST -----------------------------------------
def two_pool_splits(*, name: str, pools: Mapping[str, tuple[torch.Tensor, np.ndarray]],
                    n_classes: int, seed: int, split_dir: Any, n_train_per_class: int, n_val: int,
                    n_query: int, top_k: int | None, description: str,
                    expected_database: int | None, extra_parameters: Mapping[str, Any] | None = None,
                    notes: Mapping[str, Any] | None = None) -> HashingSplits:
    """CIFAR-10-style splits over a ``train`` pool and a ``test`` pool of class-labelled images.

    train = ``n_train_per_class`` per class from the train pool; the test pool is shuffled and cut
    into ``n_val`` validation then ``n_query`` test queries; database = the whole train pool.
    """
    train_ids = pools["train"][1]
    test_n = len(pools["test"][1])
    train_n = len(train_ids)

    def draw(rng: np.random.Generator) -> dict[str, np.ndarray]:
        train = draw_per_class(rng, train_ids, n_train_per_class)
        cut = random_partition(rng, test_n, {"val": n_val, "query": n_query})
        return {"train": train, "val": cut["val"], "query": cut["query"],
                "database": np.arange(train_n, dtype=np.int64)}

    if n_val + n_query > test_n:
        raise ValueError(f"n_val + n_query = {n_val + n_query} exceeds the {test_n} test images; "
                         "lower n_val or n_query")
    split_params = {"n_train_per_class": n_train_per_class, "n_val": n_val, "n_query": n_query}
    pool_of = {"train": "train", "val": "test", "query": "test", "database": "train"}
    loaded = load_or_create_split(dataset=name, params=split_params, seed=seed, split_dir=split_dir,
                                  draw=draw, pool_sizes={"train": train_n, "test": test_n},
                                  pools=pool_of)
    expected = {"train": n_train_per_class * n_classes, "val": n_val, "query": n_query,
                "database": expected_database}
    return assemble_splits(
        name=name, pools={k: (x, one_hot(y, n_classes)) for k, (x, y) in pools.items()},
        pool_of=pool_of, indices=loaded.indices, split_hash=loaded.split_hash,
        split_path=loaded.path, top_k=top_k, description=description,
        parameters={**split_params, **(extra_parameters or {}), "top_k": top_k},
        expected=expected, notes=dict(notes or {}), seed=seed,
    )


def check_protocol_counts(n_train_per_class: Any, n_val: Any, n_query: Any) -> tuple[int, int, int]:
    """Validate the three counts of :func:`two_pool_splits`."""
    return (check_count("n_train_per_class", n_train_per_class, minimum=1),
            check_n_val(n_val), check_count("n_query", n_query, minimum=1))


def _locate(root: str | os.PathLike | None = None) -> Path:
    """Where the files are, without downloading (raises ``DatasetNotAvailableError``)."""
    return find_cifar10(root, download=False)


@register_dataset("cifar10", locate=_locate, class_names=(
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
)
def cifar10(*, root: Any = None, split_dir: Any = None, seed: int = 0, n_train_per_class: int = 500,
            n_val: int = 5000, n_query: int = 5000, top_k: int | None = 1000,
            download: bool = True) -> HashingSplits:
    """Build the released CIFAR-10 protocol.

    Args:
        root: folder holding ``cifar-10-batches-py`` (or the batch files themselves); ``None``
            searches ``$BRCD_DATA/cifar10``, ``$BRCD_DATA`` and ``<repo>/.cache/data/cifar10``.
        n_train_per_class: training images per class (from the training set).
        n_val / n_query: validation / test queries cut from the shuffled test set.
        top_k: K of mAP@K.
        download: let torchvision fetch the data when no copy is found.
    """
    n_train_per_class, n_val, n_query = check_protocol_counts(n_train_per_class, n_val, n_query)
    top_k = check_top_k(top_k)
    folder = find_cifar10(root, download=download)
    pools = load_cifar10_pools(folder)
    n_classes = _n_classes(folder, pools)
    description = (
        f"CIFAR-10 (released BRCD protocol): train = {n_train_per_class} per class from the "
        f"training set; the test set is shuffled into {n_val} validation and {n_query} test "
        "queries; database = the whole training set; 3x32x32 uint8"
    )
    return two_pool_splits(
        name="cifar10", pools=pools, n_classes=n_classes, seed=seed, split_dir=split_dir,
        n_train_per_class=n_train_per_class, n_val=n_val, n_query=n_query, top_k=top_k,
        description=description, expected_database=CIFAR10_TRAIN_SIZE,
        notes={"data_folder": os.fspath(folder)},
    )


"""The two containers of the data layer: :class:`ImageSet` (one split) and :class:`HashingSplits`.

An :class:`ImageSet` is a ``torch.utils.data.Dataset`` whose item ``i`` is ``(transform(image_i), i)``
-- the index, not the label, because unsupervised hashing never trains on labels and the
distillers (CRD, PACKD, BRCD's cluster lookup) need the position of each image in its split.
Labels are kept next to the images as a multi-hot ``(n, C)`` ``uint8`` NumPy array for evaluation.

Two storage back-ends share that interface:

- :class:`ArrayImageSet`: the images are one ``uint8`` tensor ``(n, C, H, W)`` held in memory
  (digits, Fashion-MNIST, CIFAR-10). Without a transform an item is the raw ``(C, H, W)`` tensor.
- :class:`FileImageSet`: the images are files opened with PIL and converted to RGB when read
  (MS-COCO, NUS-WIDE, ImageNet-100 list files). Without a transform an item is the PIL image.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..paths import data_candidates, portable

__all__ = [
    "ArrayImageSet",
    "assemble_splits",
    "DatasetNotAvailableError",
    "FileImageSet",
    "HashingSplits",
    "ImageSet",
    "SPLIT_NAMES",
    "one_hot",
]

#: The four splits of every hashing protocol, in display order.
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "query", "database")

Transform = Callable[[Any], Any]


class DatasetNotAvailableError(FileNotFoundError):
    """The files of a dataset are not on disk and could not be downloaded.

    The message names every place that was searched, the expected file layout and how to get
    the data.
    """


def _as_multi_hot(labels: Any, n: int) -> np.ndarray:
    """Validate ``labels`` as an ``(n, C)`` 0/1 array and return it as ``uint8``."""
    arr = np.asarray(labels)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(
            f"labels must be a multi-hot array of shape (n_images={n}, n_classes), got shape "
            f"{arr.shape}; convert class ids with np.eye(n_classes, dtype=np.uint8)[ids]"
        )
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError("labels must contain only 0 and 1 (multi-hot); got other values")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _as_index_array(indices: Any, n: int) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.dtype == bool:
        raise TypeError("subset() takes integer indices, not a boolean mask; use np.flatnonzero(mask)")
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise TypeError(f"subset() takes a 1-D sequence of integer indices, got dtype {idx.dtype} "
                        f"and shape {idx.shape}")
    idx = idx.astype(np.int64, copy=False)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"subset() index out of range for a set of {n} images "
                         f"(min {idx.min()}, max {idx.max()})")
    return idx


class ImageSet(Dataset):
    """One split of a hashing dataset: images, multi-hot labels and an optional transform.

    ``set[i]`` returns ``(transform(image_i), i)``; with ``transform=None`` the image is returned
    raw (a ``uint8`` ``(C, H, W)`` tensor for array sets, a PIL RGB image for file sets).

    Attributes:
        labels: ``(n, C)`` ``uint8`` multi-hot NumPy array.
        transform: callable applied to each image, or ``None``.
        name: a human-readable tag such as ``"cifar10/query"`` (used in error messages).
        source_index: ``(n,)`` ``int64`` positions of the images in the dataset's source pool
            (the arrays saved in the split file), for provenance and cache alignment.
    """

    def __init__(self, *, labels: Any, n: int, transform: Transform | None = None, name: str = "",
                 source_index: Any = None) -> None:
        self.labels = _as_multi_hot(labels, n)
        self.transform = transform
        self.name = name
        if source_index is None:
            source_index = np.arange(n, dtype=np.int64)
        src = np.asarray(source_index, dtype=np.int64)
        if src.shape != (n,):
            raise ValueError(f"source_index must have shape ({n},), got {src.shape}")
        self.source_index = src

    # -- interface every back-end implements ------------------------------------------------------
    def get_image(self, i: int) -> Any:  # pragma: no cover - abstract
        """The raw image ``i`` (no transform)."""
        raise NotImplementedError

    def _take(self, idx: np.ndarray) -> dict[str, Any]:  # pragma: no cover - abstract
        """Constructor arguments of the storage for the rows ``idx``."""
        raise NotImplementedError

    # -- shared behaviour -------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        """Number of label columns ``C``."""
        return int(self.labels.shape[1])

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _check_index(self, i: Any) -> int:
        if isinstance(i, torch.Tensor):
            if i.numel() != 1:
                raise TypeError("ImageSet takes one integer index at a time; use subset() for many")
            i = i.item()
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"ImageSet index must be an integer, got {type(i).__name__}")
        n = len(self)
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"index {i} out of range for {self.name or 'ImageSet'} of {n} images")
        return j

    def __getitem__(self, i: int) -> tuple[Any, int]:
        j = self._check_index(i)
        image = self.get_image(j)
        if self.transform is not None:
            image = self.transform(image)
        return image, j

    def with_transform(self, transform: Transform | None) -> "ImageSet":
        """A shallow copy with another transform; images, paths and labels are shared, not copied."""
        other = copy.copy(self)
        other.transform = transform
        return other

    def subset(self, indices: Sequence[int] | np.ndarray, *, name: str | None = None) -> "ImageSet":
        """A new set holding the rows ``indices`` (in that order), with the same transform."""
        idx = _as_index_array(indices, len(self))
        return type(self)(**self._take(idx), labels=self.labels[idx], transform=self.transform,
                          name=self.name if name is None else name,
                          source_index=self.source_index[idx])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
                f"n_classes={self.n_classes}, transform={self.transform!r})")


class ArrayImageSet(ImageSet):
    """An :class:`ImageSet` backed by one in-memory ``uint8`` tensor ``images`` of shape (n, C, H, W)."""

    def __init__(self, *, images: torch.Tensor | np.ndarray, labels: Any,
                 transform: Transform | None = None, name: str = "", source_index: Any = None) -> None:
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(np.ascontiguousarray(images))
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a uint8 tensor (n, C, H, W), got {type(images).__name__}")
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                "images must be a uint8 tensor of shape (n, C, H, W) with C = 1 or 3, got dtype "
                f"{images.dtype} and shape {tuple(images.shape)}; convert with "
                "(x * 255).round().clamp(0, 255).to(torch.uint8) and permute channels first"
            )
        super().__init__(labels=labels, n=int(images.shape[0]), transform=transform, name=name,
                         source_index=source_index)
        self.images = images

    def get_image(self, i: int) -> torch.Tensor:
        return self.images[i]

    def _take(self, idx: np.ndarray) -> dict[str, Any]:
        return {"images": self.images[torch.from_numpy(idx)]}


class FileImageSet(ImageSet):
    """An :class:`ImageSet` of image files, opened with PIL and converted to RGB on access.

    A listed file that does not exist is reported when it is opened (not at construction, so
    building the sets of a 200k-image database stays cheap), with its path.
    """

    def __init__(self, *, paths: Sequence[str | os.PathLike], labels: Any,
                 transform: Transform | None = None, name: str = "", source_index: Any = None) -> None:
        arr = np.asarray([os.fspath(p) for p in paths], dtype=object)
        super().__init__(labels=labels, n=len(arr), transform=transform, name=name,
                         source_index=source_index)
        self.paths = arr

    def get_image(self, i: int) -> Any:
        from PIL import Image

        path = self.paths[i]
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"image file {path} (item {i} of {self.name or 'a file-backed ImageSet'}) does not "
                "exist; check the dataset root / image_root and the paths in the list file "
                "(option strip_prefix removes a machine-specific prefix)"
            )
        with Image.open(path) as img:
            return img.convert("RGB")

    def _take(self, idx: np.ndarray) -> dict[str, Any]:
        return {"paths": list(self.paths[idx])}


@dataclass
class HashingSplits:
    """The four splits of a retrieval protocol plus what is needed to evaluate and audit it.

    Attributes:
        name: dataset name (registry key).
        train: training images (no labels used in training).
        val: validation queries (searched against ``database`` for early stopping).
        query: test queries.
        database: the retrieval set.
        top_k: K of mAP@K, or ``None`` for the whole database.
        n_classes: number of label columns.
        split_hash: SHA-256 hex digest of the saved split index file.
        protocol: ``description`` (str), ``parameters`` (dict), ``expected`` and ``observed``
            (dict split -> size; expected ``None`` = not known), ``split_file`` (path) and any
            dataset-specific notes.
    """

    name: str
    train: ImageSet
    val: ImageSet
    query: ImageSet
    database: ImageSet
    top_k: int | None
    n_classes: int
    split_hash: str
    protocol: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in SPLIT_NAMES:
            s = getattr(self, split)
            if not isinstance(s, ImageSet):
                raise TypeError(f"HashingSplits.{split} must be an ImageSet, got {type(s).__name__}")
            if s.n_classes != self.n_classes:
                raise ValueError(f"HashingSplits.{split} has {s.n_classes} label columns, "
                                 f"expected n_classes={self.n_classes}")
        if self.top_k is not None and self.top_k <= 0:
            raise ValueError(f"top_k must be a positive int or None, got {self.top_k}")
        self.protocol.setdefault("observed", self.observed_sizes())

    def sets(self) -> dict[str, ImageSet]:
        """``{split name: ImageSet}`` in the order train, val, query, database."""
        return {split: getattr(self, split) for split in SPLIT_NAMES}

    def observed_sizes(self) -> dict[str, int]:
        """Number of images in each split."""
        return {split: len(s) for split, s in self.sets().items()}

    def with_transforms(self, *, train: Transform | None, test: Transform | None) -> "HashingSplits":
        """A copy whose training set uses ``train`` and whose val/query/database use ``test``.

        The image storage is shared with ``self``.
        """
        return replace(self, train=self.train.with_transform(train),
                       val=self.val.with_transform(test), query=self.query.with_transform(test),
                       database=self.database.with_transform(test),
                       protocol=dict(self.protocol))

    def summary(self):
        """A ``pandas.DataFrame`` with columns ``split``, ``expected`` and ``observed``.

        ``expected`` is the protocol's size (``None`` where no reliable number is known);
        ``observed`` is what was built here.
        """
        import pandas as pd

        expected = self.protocol.get("expected", {})
        observed = self.observed_sizes()
        return pd.DataFrame({
            "split": list(SPLIT_NAMES),
            # object dtype keeps ints as ints and unknown sizes as None (not NaN floats)
            "expected": pd.Series([expected.get(s) for s in SPLIT_NAMES], dtype=object),
            "observed": [observed[s] for s in SPLIT_NAMES],
        })

    def print_summary(self) -> None:
        """Print the protocol description, top-K, split hash and the size table."""
        print(f"dataset {self.name}: {self.protocol.get('description', '')}")
        print(f"n_classes={self.n_classes}  top_k={self.top_k}  split_hash={self.split_hash}")
        split_file = self.protocol.get("split_file")
        if split_file:
            print(f"split file: {portable(split_file)}")
        frame = self.summary()
        frame["expected"] = frame["expected"].map(lambda v: "unknown" if v is None else v)
        print(frame.to_string(index=False))


def candidate_folders(root: str | os.PathLike | None, *, env_subfolder: str,
                      defaults: Sequence[Path]) -> list[Path]:
    """Folders to search for a dataset's files: ``root`` alone when given; otherwise
    ``$BRCD_DATA/<env_subfolder>`` and ``$BRCD_DATA`` (when set), then ``defaults``."""
    if root is not None:
        return [Path(root)]
    return data_candidates(env_subfolder) + list(defaults)


def locate_dataset(*, title: str, candidates: Sequence[Path], probe: Callable[[Path], Path | None],
                   expected: str, how: str, download: bool, download_target: Path,
                   fetch: Callable[[Path], None]) -> Path:
    """The data folder of a downloadable dataset: the first of ``candidates`` that ``probe``
    accepts (``probe`` returns the folder holding the files, or ``None``); otherwise, when
    ``download`` is allowed, ``fetch(download_target)`` and probe it. Every failure raises
    :class:`DatasetNotAvailableError` naming the folders searched, the files expected (``expected``)
    and what to do (``how``)."""
    for candidate in candidates:
        found = probe(candidate)
        if found is not None:
            return found
    missing = (f"{title} not found (searched: {', '.join(str(c) for c in candidates)}; "
               f"expected {expected})")
    if not download:
        raise DatasetNotAvailableError(f"{missing}; {how}, or pass download=True")
    try:
        fetch(download_target)
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same explanation
        raise DatasetNotAvailableError(
            f"{missing} and the torchvision download into {download_target} failed "
            f"({type(exc).__name__}: {exc}); {how}") from exc
    found = probe(download_target)
    if found is None:
        raise DatasetNotAvailableError(
            f"torchvision reported success but {download_target} lacks {expected}")
    return found


def one_hot(class_ids: Any, n_classes: int) -> np.ndarray:
    """``(n, n_classes)`` ``uint8`` one-hot rows of integer class ids."""
    ids = np.asarray(class_ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= n_classes):
        raise ValueError(f"class ids must lie in [0, {n_classes}), got range [{ids.min()}, {ids.max()}]")
    return np.eye(n_classes, dtype=np.uint8)[ids]


def _is_identity(idx: np.ndarray, n: int) -> bool:
    return idx.size == n and bool(np.array_equal(idx, np.arange(n)))


def assemble_splits(*, name: str, pools: dict[str, tuple[Any, np.ndarray]], pool_of: dict[str, str],
                    indices: dict[str, np.ndarray], split_hash: str, split_path: str | os.PathLike,
                    top_k: int | None, description: str, parameters: dict[str, Any],
                    expected: dict[str, int | None], notes: dict[str, Any] | None = None,
                    seed: int | None = None) -> HashingSplits:
    """Build a :class:`HashingSplits` from source pools and split indices.

    ``pools`` maps a pool name to ``(storage, labels)`` where storage is a ``uint8`` image tensor
    ``(n, C, H, W)`` (array sets) or a sequence of file paths (file sets); ``pool_of`` maps each
    split to its pool. A split that covers its whole pool in order shares the pool's storage.
    """
    sets: dict[str, ImageSet] = {}
    for split in SPLIT_NAMES:
        storage, labels = pools[pool_of[split]]
        idx = np.asarray(indices[split], dtype=np.int64)
        common = dict(labels=labels[idx], name=f"{name}/{split}", source_index=idx)
        if isinstance(storage, torch.Tensor):
            images = storage if _is_identity(idx, storage.shape[0]) else storage[torch.from_numpy(idx)]
            sets[split] = ArrayImageSet(images=images, **common)
        else:
            paths = np.asarray(storage, dtype=object)
            sets[split] = FileImageSet(paths=paths[idx], **common)
    n_classes = int(next(iter(pools.values()))[1].shape[1])
    protocol: dict[str, Any] = {
        "description": description,
        "parameters": dict(parameters),
        "expected": {s: expected.get(s) for s in SPLIT_NAMES},
        "observed": {s: len(sets[s]) for s in SPLIT_NAMES},
        "pools": dict(pool_of),
        "split_file": os.fspath(split_path),
    }
    if seed is not None:
        protocol["seed"] = int(seed)
    if notes:
        protocol.update(notes)
    return HashingSplits(name=name, **sets, top_k=top_k, n_classes=n_classes,
                         split_hash=split_hash, protocol=protocol)


def check_count(name: str, value: Any, *, minimum: int = 0) -> int:
    """Validate an integer protocol option (``value >= minimum``) and return it as ``int``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_n_val(value: Any, *, what: str = "n_val") -> int:
    """Validate the number of validation queries: at least 1, since validation selects the
    checkpoint and stops training early (0 would train and then fail at the first validation)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) \
            and value == 0:
        raise ValueError(f"{what}=0 leaves no validation queries, but training validates every "
                         f"eval_every epochs (checkpoint selection, early stopping); set {what} "
                         "to 1 or more (e.g. --set data.protocol.n_val=10)")
    return check_count(what, value, minimum=1)


def check_top_k(top_k: Any) -> int | None:
    """Validate ``top_k`` (a positive int, or None for the whole database)."""
    return None if top_k is None else check_count("top_k", top_k, minimum=1)

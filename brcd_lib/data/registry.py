"""Name -> dataset factory registry (``get_dataset("cifar10")``, ``list_datasets()``).

A factory is a callable ``factory(*, root, split_dir, seed, **protocol) -> HashingSplits`` whose
keyword-only parameters after ``seed`` are the dataset's protocol options (with the paper's
defaults). :func:`get_dataset` rejects an unknown dataset name or protocol option with a
``ValueError`` that lists the valid ones.
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Callable

import numpy as np

from ..registry import Registry
from .base import HashingSplits

__all__ = ["DATASETS", "class_names", "dataset_parameters", "get_dataset", "list_datasets",
           "locate_files",
           "register_dataset"]

DatasetFactory = Callable[..., HashingSplits]
DATASETS: Registry = Registry("dataset")
_COMMON = ("root", "split_dir", "seed")


def register_dataset(name: str, **meta: Any) -> Callable[[DatasetFactory], DatasetFactory]:
    """Decorator registering ``factory`` under ``name`` (``meta``: free-form metadata; ``locate``,
    a callable ``locate(root, **protocol) -> folder``, finds a dataset's files on disk without
    downloading and raises :class:`~brcd_lib.data.base.DatasetNotAvailableError` when they are
    absent: see :func:`locate_files`)."""

    def deco(factory: DatasetFactory) -> DatasetFactory:
        params = inspect.signature(factory).parameters
        missing = [p for p in _COMMON if p not in params]
        if missing:
            raise TypeError(f"dataset factory {name!r} must accept keyword arguments {missing}")
        return DATASETS.register(name, **meta)(factory)

    return deco


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return DATASETS.names()


def class_names(name: str, n_classes: int | None = None) -> list[str]:
    """Readable class names of dataset ``name`` (its registered ``class_names``), else
    ``class 0``, ``class 1``, ... for ``n_classes`` classes."""
    names = DATASETS.meta(name).get("class_names")
    if names:
        return list(names)
    return [f"class {i}" for i in range(n_classes or 0)]


def _factory(name: str) -> DatasetFactory:
    return DATASETS.get(name)


def dataset_parameters(name: str) -> dict[str, Any]:
    """The protocol options of dataset ``name`` with their defaults."""
    params = inspect.signature(_factory(name)).parameters
    return {k: p.default for k, p in params.items() if k not in _COMMON}


def get_dataset(name: str, *, root: str | os.PathLike | None = None,
                split_dir: str | os.PathLike | None = None, seed: int = 0,
                **protocol: Any) -> HashingSplits:
    """Build the four splits of dataset ``name``.

    Args:
        name: a registered name (see :func:`list_datasets`).
        root: where the dataset's files are; ``None`` = the dataset's default search order.
        split_dir: folder of saved split files; ``None`` = ``$BRCD_CACHE/splits`` or
            ``<repo>/.cache/splits``.
        seed: seed of the split draw.
        **protocol: dataset-specific options (see :func:`dataset_parameters`).
    """
    factory = _factory(name)
    valid = dataset_parameters(name)
    unknown = sorted(set(protocol) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for dataset {name!r}; valid options: "
                         f"{', '.join(sorted(valid)) or '(none)'}")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return factory(root=root, split_dir=split_dir, seed=int(seed), **protocol)


def locate_files(name: str, *, root: str | os.PathLike | None = None, **protocol: Any):
    """The folder holding dataset ``name``'s files, found without downloading anything; ``None``
    for a dataset that ships with the kit (nothing to find). Raises
    :class:`~brcd_lib.data.base.DatasetNotAvailableError` naming the folders searched and the fix
    when the files are absent. Cheap: nothing is read or split."""
    _factory(name)  # unknown names raise ValueError listing the valid ones
    locate = DATASETS.meta(name).get("locate")
    if locate is None:
        return None
    accepted = inspect.signature(locate).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        protocol = {k: v for k, v in protocol.items() if k in accepted}
    return locate(root, **protocol)

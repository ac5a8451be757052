"""Data layer: datasets behind one registry, seeded saved splits, transforms.

``get_dataset(name, *, root=None, split_dir=None, seed=0, **protocol) -> HashingSplits``; the
protocols of every dataset are documented in docs/datasets.md.
"""
from .base import (
    SPLIT_NAMES,
    ArrayImageSet,
    DatasetNotAvailableError,
    FileImageSet,
    HashingSplits,
    ImageSet,
)
from .registry import (class_names, dataset_parameters, get_dataset, list_datasets, locate_files,
                       register_dataset)
from .splits import (
    LoadedSplit,
    SplitIntegrityWarning,
    default_split_dir,
    load_or_create_split,
    split_file_name,
)
from .transforms import (
    TwoViews,
    get_transforms,
    list_transforms,
    paper_test_transform,
    paper_train_transform,
    register_transforms,
    small_test_transform,
    small_train_transform,
)

# Importing the dataset modules registers them: every module of this package is imported, so a
# new dataset is one file with a @register_dataset factory.
from ..registry import import_submodules  # noqa: E402

import_submodules(__name__)

__all__ = [
    "SPLIT_NAMES",
    "ArrayImageSet",
    "DatasetNotAvailableError",
    "FileImageSet",
    "HashingSplits",
    "ImageSet",
    "LoadedSplit",
    "SplitIntegrityWarning",
    "TwoViews",
    "class_names",
    "dataset_parameters",
    "default_split_dir",
    "get_dataset",
    "get_transforms",
    "list_datasets",
    "locate_files",
    "list_transforms",
    "load_or_create_split",
    "paper_test_transform",
    "paper_train_transform",
    "register_dataset",
    "register_transforms",
    "small_test_transform",
    "small_train_transform",
    "split_file_name",
]

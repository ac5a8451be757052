"""``digits``: scikit-learn's embedded 8x8 handwritten digits, the kit's no-download dataset.

Images (16 grey levels, 0-16) are scaled to ``uint8`` 0-255 and stored bilinearly upsampled to
``image_size`` (default 16), one channel. Protocol, shaped like CIFAR-10's (see docs/datasets.md):
per class ``n_query`` test queries and ``n_val`` validation queries are drawn, the rest is the
database, and the training set is a per-class draw of ``n_train_per_class`` from the database.
``subset`` (N per class, kept after a seeded shuffle) shrinks the pool first, for smoke runs.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from .base import HashingSplits, assemble_splits, check_count, check_n_val, check_top_k, one_hot
from .registry import register_dataset
from .splits import draw_per_class, load_or_create_split, partition_per_class
from .transforms import resize_uint8_images

__all__ = ["digits", "load_digits_pool"]

_SOURCE_LEVELS = 16  # load_digits pixel values are integers 0..16


@functools.lru_cache(maxsize=4)
def load_digits_pool(image_size: int) -> tuple[torch.Tensor, np.ndarray]:
    """All digits as ``uint8`` images ``(n, 1, image_size, image_size)`` and class ids ``(n,)``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw = np.asarray(bunch.images, dtype=np.float64)  # (n, 8, 8), values 0..16
    scaled = np.clip(np.rint(raw * (255.0 / _SOURCE_LEVELS)), 0, 255).astype(np.uint8)
    images = resize_uint8_images(torch.from_numpy(scaled[:, None]), image_size)
    return images, np.asarray(bunch.target, dtype=np.int64)


@register_dataset("digits", class_names=tuple(str(d) for d in range(10)))
def digits(*, root: Any = None, split_dir: Any = None, seed: int = 0, n_query: int = 30,
           n_val: int = 20, n_train_per_class: int = 100, subset: int | None = None,
           image_size: int = 16, top_k: int | None = 100) -> HashingSplits:
    """Build the digits protocol (all counts are per class).

    Args:
        root: must be None (the data ships with scikit-learn).
        n_query: test queries per class.
        n_val: validation queries per class.
        n_train_per_class: training images per class, drawn from the database.
        subset: keep only this many images per class (after a seeded shuffle) before splitting.
        image_size: side of the stored images (bilinear upsampling of the 8x8 originals).
        top_k: K of mAP@K (``None`` = whole database).
    """
    if root is not None:
        raise ValueError("digits ships with scikit-learn and takes no root; pass root=None")
    n_query = check_count("n_query", n_query, minimum=1)
    n_val = check_n_val(n_val)
    n_train_per_class = check_count("n_train_per_class", n_train_per_class, minimum=1)
    if subset is not None:
        subset = check_count("subset", subset, minimum=1)
        if subset < n_query + n_val + n_train_per_class:
            raise ValueError(
                f"subset={subset} per class is too small for n_query + n_val = {n_query + n_val} "
                f"queries plus a database holding n_train_per_class={n_train_per_class} training "
                f"images; use subset >= {n_query + n_val + n_train_per_class} or lower the counts"
            )
    image_size = check_count("image_size", image_size, minimum=1)
    top_k = check_top_k(top_k)

    images, ids = load_digits_pool(image_size)
    n_classes = int(ids.max()) + 1

    def draw(rng: np.random.Generator) -> dict[str, np.ndarray]:
        keep = None if subset is None else partition_per_class(rng, ids, {"keep": subset})["keep"]
        parts = partition_per_class(rng, ids, {"query": n_query, "val": n_val}, rest="database",
                                    candidates=keep)
        parts["train"] = draw_per_class(rng, ids, n_train_per_class, candidates=parts["database"])
        return parts

    split_params = {"n_query": n_query, "n_val": n_val, "n_train_per_class": n_train_per_class,
                    "subset": subset}
    pool_of = {s: "digits" for s in ("train", "val", "query", "database")}
    loaded = load_or_create_split(dataset="digits", params=split_params, seed=seed,
                                  split_dir=split_dir, draw=draw, pool_sizes={"digits": len(ids)},
                                  pools=pool_of)
    pool_n = len(ids) if subset is None else subset * n_classes
    expected = {"train": n_train_per_class * n_classes, "val": n_val * n_classes,
                "query": n_query * n_classes,
                "database": pool_n - (n_query + n_val) * n_classes}
    description = (
        f"scikit-learn digits ({len(ids)} images, {n_classes} classes, stored at "
        f"{image_size}x{image_size}, 1 channel); per class {n_query} test + {n_val} validation "
        f"queries, the rest is the database; train = {n_train_per_class} per class drawn from the "
        f"database" + ("" if subset is None else f"; pool reduced to {subset} per class")
    )
    return assemble_splits(
        name="digits", pools={"digits": (images, one_hot(ids, n_classes))}, pool_of=pool_of,
        indices=loaded.indices, split_hash=loaded.split_hash, split_path=loaded.path, top_k=top_k,
        description=description, parameters={**split_params, "image_size": image_size, "top_k": top_k},
        expected=expected, seed=seed,
    )

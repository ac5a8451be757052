"""``fashion_mosaic``: a multi-label stand-in for MS-COCO / NUS-WIDE built from Fashion-MNIST.

Each image is a ``tiles`` x ``tiles`` mosaic (default 2 x 2) of Fashion-MNIST items shrunk to
``image_size / tiles`` pixels; each tile holds an item with probability ``1 - empty_p`` (at least
one tile is always filled), so an image carries 1 to ``tiles**2`` items and its multi-hot label is
the set of their classes (10 classes). Relevance is the MS-COCO rule: a database image is relevant
to a query when they share at least one class.

Protocol (the MS-COCO shape of the released code, scaled down): the database is ``n_database``
mosaics composed of Fashion-MNIST *training* images; the training set is ``n_train`` mosaics drawn
from the database (as in the DeepHash-pytorch COCO lists); the validation (``n_val``) and query
(``n_query``) mosaics are composed of Fashion-MNIST *test* images only, so no query shares an item
with the database or the backbones' pretraining pool (the 60,000 training images). mAP@``top_k``
(5,000, the MS-COCO K).

The composition (which item fills which tile of which mosaic) is drawn with ``seed`` and saved
with a SHA-256 sidecar next to the split files, so a rerun on any machine rebuilds the same
images; the split indices are saved like every other dataset's.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write_bytes, sha256_bytes
from .base import HashingSplits, assemble_splits, check_count, check_n_val, check_top_k
from .fashion_mnist import N_CLASSES, find_fashion_mnist, load_fashion_mnist_pools
from .registry import DATASETS, register_dataset
from .splits import default_split_dir, load_or_create_split, random_partition
from .transforms import resize_uint8_images

__all__ = ["fashion_mosaic", "compose_mosaics", "draw_composition"]


def draw_composition(rng: np.random.Generator, *, n: int, n_items: int, tiles: int,
                     empty_p: float) -> np.ndarray:
    """``(n, tiles * tiles)`` item indices into a pool of ``n_items`` images, ``-1`` = empty tile;
    every mosaic has at least one item."""
    k = tiles * tiles
    comp = rng.integers(0, n_items, size=(n, k), dtype=np.int64)
    empty = rng.random((n, k)) < empty_p
    keep = rng.integers(0, k, size=n)  # one tile that is never empty
    empty[np.arange(n), keep] = False
    comp[empty] = -1
    return comp


def compose_mosaics(items: torch.Tensor, labels: np.ndarray, composition: np.ndarray, *,
                    tiles: int, n_classes: int) -> tuple[torch.Tensor, np.ndarray]:
    """Mosaic images ``(n, C, tiles * s, tiles * s)`` (uint8, empty tiles black) of the item images
    ``items (m, C, s, s)`` and their multi-hot labels ``(n, n_classes)`` (uint8)."""
    n, k = composition.shape
    c, s = items.shape[1], items.shape[-1]
    out = torch.zeros((n, c, tiles * s, tiles * s), dtype=torch.uint8)
    multi = np.zeros((n, n_classes), dtype=np.uint8)
    for t in range(k):
        r, q = divmod(t, tiles)
        filled = composition[:, t] >= 0
        idx = composition[filled, t]
        out[torch.from_numpy(np.flatnonzero(filled)), :, r * s:(r + 1) * s, q * s:(q + 1) * s] = \
            items[torch.from_numpy(idx)]
        multi[np.flatnonzero(filled), labels[idx]] = 1
    return out, multi


def _load_or_draw(path: Path, draw) -> tuple[dict[str, np.ndarray], str]:
    """The saved compositions at ``path`` (checked against the SHA-256 sidecar), or new ones."""
    sidecar = path.with_name(path.name + ".sha256")
    if path.exists() and sidecar.exists():
        data = path.read_bytes()
        if sha256_bytes(data) == sidecar.read_text().strip():
            with np.load(io.BytesIO(data)) as z:
                return {k: z[k] for k in z.files}, sidecar.read_text().strip()
    comps = draw()
    buf = io.BytesIO()
    np.savez(buf, **comps)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    digest = sha256_bytes(data)
    atomic_write_bytes(sidecar, (digest + "\n").encode())
    return comps, digest


@register_dataset("fashion_mosaic", multi_label=True,
                  class_names=DATASETS.meta("fashion_mnist")["class_names"],
                  locate=DATASETS.meta("fashion_mnist")["locate"])
def fashion_mosaic(*, root: Any = None, split_dir: Any = None, seed: int = 0,
                   n_database: int = 20_000, n_train: int = 5_000, n_val: int = 1_000,
                   n_query: int = 2_000, tiles: int = 2, empty_p: float = 0.35,
                   image_size: int = 28, top_k: int | None = 5_000,
                   download: bool = False) -> HashingSplits:
    """Build the Fashion-MNIST mosaic protocol (see the module docstring).

    Args:
        root: folder with the Fashion-MNIST IDX files (the ``fashion_mnist`` search order).
        n_database / n_train / n_val / n_query: split sizes; train is drawn from the database.
        tiles: mosaic side in tiles (2 = 2 x 2 items at most).
        empty_p: probability that a tile stays empty (one tile is always filled).
        image_size: side of the stored mosaics (each tile is ``image_size // tiles``).
        top_k: K of mAP@K.
        download: let torchvision fetch Fashion-MNIST when no copy is found.
    """
    n_database = check_count("n_database", n_database, minimum=1)
    n_train = check_count("n_train", n_train, minimum=1)
    n_val, n_query = check_n_val(n_val), check_count("n_query", n_query, minimum=1)
    tiles = check_count("tiles", tiles, minimum=1)
    image_size = check_count("image_size", image_size, minimum=tiles)
    if image_size % tiles:
        raise ValueError(f"image_size ({image_size}) must be a multiple of tiles ({tiles})")
    if not 0.0 <= float(empty_p) < 1.0:
        raise ValueError(f"empty_p must lie in [0, 1), got {empty_p!r}")
    if n_train > n_database:
        raise ValueError(f"n_train ({n_train}) cannot exceed n_database ({n_database}): the "
                         "training mosaics are drawn from the database")
    top_k = check_top_k(top_k)
    folder = find_fashion_mnist(root, download=download)
    sources = load_fashion_mnist_pools(folder, image_size=image_size // tiles)
    params = {"n_database": n_database, "n_train": n_train, "n_val": n_val, "n_query": n_query,
              "tiles": tiles, "empty_p": float(empty_p)}
    split_folder = Path(split_dir) if split_dir is not None else default_split_dir()
    tag = sha256_bytes(repr(sorted(params.items())).encode())[:12]
    comp_path = split_folder / f"fashion_mosaic_composition_{tag}_seed{seed}.npz"

    def draw_comps() -> dict[str, np.ndarray]:
        rng = np.random.default_rng([seed, 1])
        return {
            "train": draw_composition(rng, n=n_database, n_items=len(sources["train"][1]),
                                      tiles=tiles, empty_p=float(empty_p)),
            "test": draw_composition(rng, n=n_val + n_query, n_items=len(sources["test"][1]),
                                     tiles=tiles, empty_p=float(empty_p)),
        }

    comps, comp_hash = _load_or_draw(comp_path, draw_comps)
    pools = {}
    for part in ("train", "test"):
        items, ids = sources[part]
        pools[part] = compose_mosaics(items, ids, comps[part], tiles=tiles, n_classes=N_CLASSES)

    def draw(rng: np.random.Generator) -> dict[str, np.ndarray]:
        train = np.sort(rng.choice(n_database, size=n_train, replace=False)).astype(np.int64)
        cut = random_partition(rng, n_val + n_query, {"val": n_val, "query": n_query})
        return {"train": train, "val": cut["val"], "query": cut["query"],
                "database": np.arange(n_database, dtype=np.int64)}

    pool_of = {"train": "train", "val": "test", "query": "test", "database": "train"}
    loaded = load_or_create_split(dataset="fashion_mosaic", params={**params, "composition": comp_hash},
                                  seed=seed, split_dir=split_dir, draw=draw,
                                  pool_sizes={"train": n_database, "test": n_val + n_query},
                                  pools=pool_of)
    counts = pools["train"][1].sum(1)
    description = (
        f"Fashion-MNIST {tiles}x{tiles} mosaics ({N_CLASSES} classes, multi-hot labels, "
        f"relevance = at least one shared class): database {n_database} mosaics of training "
        f"items, train {n_train} drawn from the database, {n_val} validation and {n_query} query "
        f"mosaics of test items; 1x{image_size}x{image_size} uint8"
    )
    label_counts = {int(c): int((counts == c).sum()) for c in range(1, tiles * tiles + 1)}
    return assemble_splits(
        name="fashion_mosaic", pools=pools, pool_of=pool_of, indices=loaded.indices,
        split_hash=loaded.split_hash, split_path=loaded.path, top_k=top_k,
        description=description, parameters={**params, "image_size": image_size, "top_k": top_k},
        expected={"train": n_train, "val": n_val, "query": n_query, "database": n_database},
        notes={"data_folder": os.fspath(folder), "composition_file": os.fspath(comp_path),
               "composition_sha256": comp_hash, "labels_per_image_database": label_counts},
        seed=seed)

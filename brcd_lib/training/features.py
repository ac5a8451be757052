"""Frozen-backbone outputs, computed once and reused.

In the paper's configuration both backbones are frozen, so a backbone's output for an image is a
constant. Two caches follow from that:

* **clean features** of every evaluation set (train, validation and test queries, database) under
  the deterministic test transform -- exact, nothing changes;
* a **bank of augmented views**: ``n_views`` random augmentations of every training image, whose
  backbone outputs are computed once; training then draws two different views of the bank per
  image and step. This changes the method slightly: the student sees a finite set of
  augmentations instead of a fresh one every step (``TrainConfig.feature_views = 0`` keeps the
  online pipeline). Each augmented image is drawn once, with its own seed (bank seed, view,
  image index: independent of batch size, loader workers and order), and is shared by every
  backbone and every rotation that reads the bank (:meth:`FeatureStore.augmented`).

Entries live in memory and on disk (``<cache>/features/<key>.pt``); the key hashes the backbone's
weights, the split, the set, the transform and the number of views, so a changed input is a miss,
never a silent reuse. Files are written atomically and verified on load.
"""
from __future__ import annotations

import hashlib
import logging
import os
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from ..io import atomic_save
from ..models.pretrain import state_fingerprint, tensor_fingerprint
from ..paths import cache_root
from .distributed import encode_sharded
from .encode import compute_features

log = logging.getLogger(__name__)


def module_fingerprint(module: nn.Module) -> str:
    """Short SHA-256 of a module's architecture (its ``repr``, which shows options that add no
    parameters, such as a pooling grid) and its state_dict (``models.pretrain.state_fingerprint``).

    Hashing a ViT's weights takes about a second, so the value is memoised on the module; the memo
    is keyed by the tensors' version counters, so any in-place change of a weight is a miss."""
    versions = tuple(t._version for t in module.state_dict(keep_vars=True).values())
    memo = getattr(module, "_brcd_fingerprint", None)
    if memo is not None and memo[0] == versions:
        return memo[1]
    value = hashlib.sha256((repr(module) + state_fingerprint(module)).encode()).hexdigest()[:20]
    object.__setattr__(module, "_brcd_fingerprint", (versions, value))
    return value


class FeatureStore:
    """Memory + disk cache of frozen-backbone outputs keyed by content."""

    def __init__(self, *, cache_dir: str | None = None, enabled: bool = True,
                 num_workers: int = 0):
        self.cache_dir = os.path.join(cache_dir or cache_root(), "features")
        self.enabled = enabled
        self.num_workers = num_workers  # data-loader workers that draw the augmented images
        self._memory: dict[str, torch.Tensor] = {}
        self._augmented: tuple[str, torch.Tensor] | None = None  # the last augmented images

    def get(self, key: str, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key in self._memory:
            return self._memory[key]
        path = os.path.join(self.cache_dir, f"{key}.pt")
        value = None
        if self.enabled and os.path.exists(path):
            try:
                blob = torch.load(path, map_location="cpu", weights_only=True)
                if blob.get("key") == key and blob["sha256"] == _tensor_sha(blob["value"]):
                    value = blob["value"]
                else:
                    log.warning("feature cache %s does not match its key or hash; rebuilding", path)
            except Exception as exc:  # truncated or foreign file
                log.warning("feature cache %s is unreadable (%s); rebuilding", path, exc)
        if value is None:
            value = build()
            if self.enabled:
                os.makedirs(self.cache_dir, exist_ok=True)
                atomic_save({"key": key, "sha256": _tensor_sha(value), "value": value}, path)
        self._memory[key] = value
        return value

    def clean(self, net, dataset, *, set_name: str, split_hash: str, transform_desc: str,
              device: str = "cpu", progress: bool = True) -> torch.Tensor:
        """Backbone features (n, d) of ``dataset`` under its (deterministic) transform."""
        key = _key("clean", module_fingerprint(net.backbone) + _tag(net), split_hash, set_name,
                   transform_desc)
        return self.get(key, lambda: encode_sharded(
            net.features, dataset, device=device, desc=f"features {set_name}", progress=progress))

    def augmented(self, dataset, *, n_views: int, seed: int, split_hash: str,
                  transform_desc: str, progress: bool = True) -> torch.Tensor:
        """(n_views, n, C, H, W) augmented images of ``dataset`` (its transform is the random
        training transform): view ``v`` of image ``i`` is drawn with the seed of
        (``seed``, ``v``, ``i``), so the images do not depend on how they are batched or on the
        number of loader workers. Kept in memory for the banks of the next backbone or rotation
        (the last set only), never on disk."""
        key = _key("augmented", BANK_VERSION, split_hash, transform_desc, n_views, seed)
        if self._augmented is not None and self._augmented[0] == key:
            return self._augmented[1]
        self._augmented = None  # free the previous set before drawing the next
        views = [compute_features(lambda x: x, SeededView(dataset, seed=seed, view=v),
                                  num_workers=self.num_workers, progress=progress,
                                  desc=f"augmenting view {v + 1}/{n_views}")
                 for v in range(n_views)]
        images = torch.stack(views)
        self._augmented = (key, images)
        return images

    def views(self, net, dataset, *, n_views: int, seed: int, split_hash: str,
              transform_desc: str, rotation: int = 0, device: str = "cpu",
              progress: bool = True) -> torch.Tensor:
        """(n_views, n, d) backbone features of ``n_views`` seeded augmentations of each image,
        each optionally rotated by ``rotation`` x 90 degrees (SSKD). View ``v`` of an image is the
        same augmented image for every backbone and rotation (:meth:`augmented`)."""
        key = _key("views", BANK_VERSION, module_fingerprint(net.backbone) + _tag(net), split_hash,
                   transform_desc, n_views, seed, rotation)

        def fn(x):
            return net.features(torch.rot90(x, rotation, dims=(2, 3)) if rotation else x)

        def build() -> torch.Tensor:
            if n_views * _image_bytes(dataset) > AUGMENTED_MEMORY_BUDGET:  # e.g. 224 px images
                return torch.stack([
                    compute_features(fn, SeededView(dataset, seed=seed, view=v), device=device,
                                     num_workers=self.num_workers, progress=progress,
                                     desc=f"view bank {v + 1}/{n_views}")
                    for v in range(n_views)])
            images = self.augmented(dataset, n_views=n_views, seed=seed, split_hash=split_hash,
                                    transform_desc=transform_desc, progress=progress)
            return torch.stack([
                compute_features(fn, TensorDataset(images[v], torch.arange(images.shape[1])),
                                 device=device, desc=f"view bank {v + 1}/{n_views}",
                                 progress=progress)
                for v in range(n_views)])

        return self.get(key, build)


AUGMENTED_MEMORY_BUDGET = 2 << 30
"""Bytes of augmented images :meth:`FeatureStore.views` keeps in memory to share them between
backbones and rotations; larger banks (224 px images) are drawn again per backbone, with the same
per-image seeds, so the values are the same either way."""


def _image_bytes(dataset) -> int:
    """Bytes of one float32 copy of every transformed image of ``dataset``."""
    return len(dataset) * int(dataset[0][0].numel()) * 4 if len(dataset) else 0


BANK_VERSION = 2
"""Version of the view-bank construction, part of every bank key (2: per-image seeded
augmentations shared by backbones and rotations; 1 drew a view's images in sequence from one
seed)."""


def item_seed(seed: int, view: int, index: int) -> int:
    """The augmentation seed of view ``view`` of image ``index`` in a bank seeded ``seed``."""
    digest = hashlib.sha256(f"{int(seed)}:{int(view)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class SeededView(Dataset):
    """View ``view`` of every item of ``dataset``: item ``i`` is transformed right after
    ``torch.manual_seed(item_seed(seed, view, i))``."""

    def __init__(self, dataset, *, seed: int, view: int):
        self.dataset, self.seed, self.view = dataset, int(seed), int(view)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        torch.manual_seed(item_seed(self.seed, self.view, i))
        return self.dataset[i]


def _tag(net) -> str:
    """"" for a float32 backbone in the default layout (keys unchanged), else "|bf16" etc."""
    tag = getattr(net, "feature_tag", "")
    return f"|{tag}" if tag else ""


def _key(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]


def _tensor_sha(t: torch.Tensor) -> str:
    return tensor_fingerprint(t)

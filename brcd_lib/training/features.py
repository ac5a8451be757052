"""Frozen-backbone outputs, computed once and reused.

In the paper's configuration both backbones are frozen, so a backbone's output for an image is a
constant. Two caches follow from that:

* **clean features** of every evaluation set (train, validation and test queries, database) under
  the deterministic test transform -- exact, nothing changes;
* a **bank of augmented views**: ``n_views`` random augmentations of every training image, whose
  backbone outputs are computed once; training then draws two different views of the bank per
  image and step. This changes the method slightly: the student sees a finite set of
  augmentations instead of a fresh one every step (``TrainConfig.feature_views = 0`` keeps the
  online pipeline).

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

    def __init__(self, *, cache_dir: str | None = None, enabled: bool = True):
        self.cache_dir = os.path.join(cache_dir or cache_root(), "features")
        self.enabled = enabled
        self._memory: dict[str, torch.Tensor] = {}

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
        key = _key("clean", module_fingerprint(net.backbone), split_hash, set_name, transform_desc)
        return self.get(key, lambda: encode_sharded(
            net.features, dataset, device=device, desc=f"features {set_name}", progress=progress))

    def views(self, net, dataset, *, n_views: int, seed: int, split_hash: str,
              transform_desc: str, rotation: int = 0, device: str = "cpu",
              progress: bool = True) -> torch.Tensor:
        """(n_views, n, d) backbone features of ``n_views`` seeded augmentations of each image,
        each optionally rotated by ``rotation`` x 90 degrees (SSKD). View ``v`` is the same
        augmentation for every backbone and rotation (the augmentation seed depends on v only)."""
        key = _key("views", module_fingerprint(net.backbone), split_hash, transform_desc,
                   n_views, seed, rotation)

        def build() -> torch.Tensor:
            banks = []
            for v in range(n_views):
                torch.manual_seed(seed * 7919 + v)

                def fn(x, _r=rotation):
                    return net.features(torch.rot90(x, _r, dims=(2, 3)) if _r else x)

                banks.append(compute_features(fn, dataset, device=device,
                                              desc=f"view bank {v + 1}/{n_views}",
                                              progress=progress))
            return torch.stack(banks)

        return self.get(key, build)


def _key(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]


def _tensor_sha(t: torch.Tensor) -> str:
    return tensor_fingerprint(t)

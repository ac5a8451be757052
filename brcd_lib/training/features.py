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

* **online banks** (``TrainConfig.feature_views = 0``, the paper's fresh augmentations): the
  features of the two views every training image gets at each epoch
  (:mod:`brcd_lib.training.views`: a function of the augmentation seed, the epoch and the image
  only), built epoch by epoch when the first run asks for them and read by every run with that
  augmentation seed (:meth:`FeatureStore.online_bank`). Exact: each run still sees fresh views at
  every epoch, the very views its per-run online pipeline would draw. The images of an epoch are
  augmented once for every backbone that shares them (:meth:`FeatureStore.sharing`), and pushed
  through each backbone in batches of the runs' batch size (padded), so that on the CPU the
  features are bitwise those of the per-run pipeline.

Entries live in memory and on disk (``<cache>/features/<key>.pt``); the key hashes the backbone's
weights, the split, the set, the transform and the number of views, so a changed input is a miss,
never a silent reuse. Files are written atomically and verified on load. Online banks are kept in
memory (a byte-bounded LRU, on the training device), and on disk only when asked
(``persist``).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections import OrderedDict
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from ..io import atomic_save
from ..models.pretrain import state_fingerprint, tensor_fingerprint
from ..paths import cache_root
from .distributed import encode_sharded
from .encode import compute_features
from .progress import tqdm
from .views import SeededView, item_seed, seed_of  # noqa: F401  (re-exported: bank seeds)

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
        self._online: OrderedDict[str, torch.Tensor] = OrderedDict()  # online banks (LRU)
        self._sharing: list[dict] | None = None  # backbones that augment together (sharing())
        self.online_memory = ONLINE_MEMORY_BUDGET
        self.online_wait: float | None = None  # seconds to wait for another process's bank files
        self.online_persist = False  # write online banks to disk
        self.built_passes: dict[str, int] = {}  # online-bank forward passes made, per backbone

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


    # ------------------------------------------------------------------ online banks
    @contextlib.contextmanager
    def sharing(self) -> Iterator[None]:
        """Within the block, every backbone a run asks :meth:`online_bank` for (or
        :meth:`share` names) is built together with the others of the same views: the images of
        an epoch are augmented once for all of them."""
        outer, self._sharing = self._sharing, []
        try:
            yield
        finally:
            self._sharing = outer

    def share(self, net, rotations: int, views_id: str) -> None:
        """Note that ``net`` (with ``rotations`` rotated copies) reads the views ``views_id``
        (inside :meth:`sharing` only; elsewhere a no-op)."""
        if self._sharing is None:
            return
        fp = module_fingerprint(net.backbone) + _tag(net)
        for user in self._sharing:
            if user["id"] == views_id and user["fp"] == fp:
                user["rotations"] = max(user["rotations"], rotations)
                return
        self._sharing.append({"id": views_id, "fp": fp, "net": net, "rotations": rotations})

    def online_bank(self, users: Sequence[tuple[object, int]], views, *, seed: int, epoch: int,
                    split_hash: str, transform_desc: str, batch: int, device: str = "cpu",
                    progress: bool = True) -> list[dict]:
        """Features of the two views of every training image at ``epoch`` for each
        ``(net, rotations)`` of ``users``: ``{"views": (2, n, d), "rot": (R, n, d) or None}``
        (``rot[0]`` = ``views[0]``; ``rot[r]`` = view 1 rotated by r x 90 degrees). Built (or
        loaded) once per backbone, augmentation seed and epoch; backbones noted by :meth:`share`
        for the same views are built in the same pass. Stored as :func:`bank_dtype` of the net."""
        views_id = online_views_id(seed=seed, split_hash=split_hash,
                                   transform_desc=transform_desc, kind=views.kind, batch=batch)
        for net, rotations in users:
            self.share(net, rotations, views_id)
        wanted = [(net, max(int(rotations), 1)) for net, rotations in users]
        group = list(wanted)
        if self._sharing is not None:
            group += [(u["net"], max(u["rotations"], 1)) for u in self._sharing
                      if u["id"] == views_id]
        missing, present = {}, []
        for net, rotations in group:
            for r in range(rotations):
                key = online_key(net, views_id=views_id, epoch=epoch, rotation=r)
                if key in missing:
                    continue
                if self._online_lookup(key) is None:
                    missing[key] = (net, r)
                else:
                    present.append(key)
        if missing:
            if self.online_wait is not None:
                self._wait_for(missing, epoch)
            else:
                self._build_online(missing, views, seed=seed, epoch=epoch, batch=batch,
                                   device=device, progress=progress)
        if self.online_persist:  # banks already in memory go to disk too (other processes read)
            for key in present:
                self._persist(key, self._online[key])
        out = []
        for net, rotations in wanted:
            parts = [self._online_lookup(online_key(net, views_id=views_id, epoch=epoch,
                                                    rotation=r)) for r in range(rotations)]
            first = parts[0]
            out.append({"views": first,
                        "rot": None if rotations < 2 else
                        torch.stack([first[0], *[p[0] for p in parts[1:]]])})
        return out

    def _online_lookup(self, key: str) -> torch.Tensor | None:
        if key in self._online:
            self._online.move_to_end(key)
            return self._online[key]
        path = os.path.join(self.cache_dir, f"{key}.pt")
        if not os.path.exists(path):
            return None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a file being replaced, or a damaged one: treated as missing
            log.debug("online bank %s unreadable (%s)", path, exc)
            return None
        if blob.get("key") != key or blob["sha256"] != _tensor_sha(blob["value"]):
            log.warning("online bank %s does not match its key or hash; ignored", path)
            return None
        self._remember(key, blob["value"].to(blob.get("device", "cpu")))
        return self._online[key]

    def _remember(self, key: str, value: torch.Tensor) -> None:
        self._online[key] = value
        self._online.move_to_end(key)
        total = sum(t.numel() * t.element_size() for t in self._online.values())
        while total > self.online_memory and len(self._online) > 1:
            _, old = self._online.popitem(last=False)
            total -= old.numel() * old.element_size()

    def _wait_for(self, missing: dict, epoch: int) -> None:
        """Wait for another process to write the banks ``missing`` (``online_wait`` seconds)."""
        deadline = time.monotonic() + float(self.online_wait)
        pending = dict(missing)
        while pending:
            pending = {k: v for k, v in pending.items() if self._online_lookup(k) is None}
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {self.online_wait:.0f} s for the online banks of "
                                   f"epoch {epoch + 1} ({len(pending)} missing in "
                                   f"{self.cache_dir}); the process that builds them stopped")
            time.sleep(0.05)

    @torch.inference_mode()
    def _build_online(self, missing: dict, views, *, seed: int, epoch: int, batch: int,
                      device: str, progress: bool) -> None:
        """Draw the epoch's views once and push them through every backbone of ``missing``
        in batches of exactly ``batch`` images (the last one padded with copies of its last
        image): the batch shapes of the per-run pipeline, hence its kernels and its bits."""
        n = len(views)
        batch = max(1, min(int(batch), n))
        nets: dict[str, tuple[object, list[tuple[str, int]]]] = {}
        for key, (net, r) in missing.items():
            fp = module_fingerprint(net.backbone) + _tag(net)
            nets.setdefault(fp, (net, []))[1].append((key, r))
        chunks = []
        for start in range(0, n, batch):
            chunk = list(range(start, min(start + batch, n)))
            chunks.append(chunk + [chunk[-1]] * (batch - len(chunk)))
        out: dict[str, list[torch.Tensor]] = {key: [] for key in missing}
        for (x1, x2), idx in tqdm(views.draw(seed=seed, epoch=epoch, batches=chunks, device=device),
                                  total=len(chunks), desc=f"online views, epoch {epoch + 1}",
                                  disable=not progress, leave=False):
            keep = len(set(idx.tolist()))  # the padded copies at the end are dropped
            for fp, (net, wanted) in nets.items():
                dtype = bank_dtype(net)
                for key, r in wanted:
                    if r == 0:
                        f = torch.stack([net.features(x1), net.features(x2)])[:, :keep]
                    else:
                        f = net.features(torch.rot90(x1, r, dims=(2, 3)))[:keep].unsqueeze(0)
                    name = getattr(net.backbone, "name", type(net.backbone).__name__)
                    self.built_passes[name] = self.built_passes.get(name, 0) + f.shape[0] * keep
                    out[key].append(f.to(dtype))
        for key, parts in out.items():
            value = torch.cat(parts, dim=1)
            if self.online_persist:
                self._persist(key, value)
            self._remember(key, value)

    def _persist(self, key: str, value: torch.Tensor) -> None:
        """Write an online bank to ``<cache>/features/<key>.pt`` unless the file exists."""
        path = os.path.join(self.cache_dir, f"{key}.pt")
        if os.path.exists(path):
            return
        os.makedirs(self.cache_dir, exist_ok=True)
        cpu = value.cpu()
        atomic_save({"key": key, "sha256": _tensor_sha(cpu), "value": cpu,
                     "device": str(value.device)}, path)

    def drop_online(self, keys: Sequence[str]) -> int:
        """Delete the online banks ``keys`` (their files and memory copies); returns how many
        files were removed. The process that feeds worker processes calls it once every worker
        is past their epoch."""
        removed = 0
        for key in keys:
            self._online.pop(key, None)
            path = os.path.join(self.cache_dir, f"{key}.pt")
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed += 1
        return removed


ONLINE_MEMORY_BUDGET = 4 << 30
"""Bytes of online banks :meth:`FeatureStore.online_bank` keeps in memory (on the device the
banks were built on); a run holds the banks of its current epoch, runs trained together share
them."""

ONLINE_VERSION = 1
"""Version of the online-bank construction, part of every online key."""


def online_views_id(*, seed: int, split_hash: str, transform_desc: str, kind: str, batch: int) -> str:
    """What determines an epoch's views and their forward batches (without the backbone)."""
    return _key("online-views", ONLINE_VERSION, split_hash, transform_desc, kind, batch, seed)


def online_key(net, *, views_id: str, epoch: int, rotation: int) -> str:
    """Content key of the online bank of ``net``'s backbone for one epoch and rotation."""
    return _key("online", views_id, module_fingerprint(net.backbone) + _tag(net), int(epoch),
                int(rotation))


def bank_dtype(net) -> torch.dtype:
    """The dtype online banks of ``net`` are stored in: bfloat16 when its backbone runs under
    bf16 autocast (the GPU path), float32 otherwise (exact on the CPU)."""
    return torch.bfloat16 if getattr(net, "backbone_precision", "fp32") == "bf16" else torch.float32


def as_stored(net, feats: torch.Tensor) -> torch.Tensor:
    """``feats`` rounded as an online bank stores them (:func:`bank_dtype`), back in float32: the
    per-run online pipeline feeds its heads these values, so both paths see the same numbers."""
    dtype = bank_dtype(net)
    return feats if dtype == torch.float32 else feats.to(dtype).float()


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


def _tag(net) -> str:
    """"" for a float32 backbone in the default layout (keys unchanged), else "|bf16" etc."""
    tag = getattr(net, "feature_tag", "")
    return f"|{tag}" if tag else ""


def _key(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]


def _tensor_sha(t: torch.Tensor) -> str:
    return tensor_fingerprint(t)

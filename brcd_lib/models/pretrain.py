"""SimCLR pretraining: the CPU profiles' stand-in for ImageNet pretraining, cached on disk.

:func:`ssl_pretrain` trains a backbone with SimCLR (Chen et al., 2020): two views of every image
from :class:`~brcd_lib.models.augment.BatchAugment` (batched, on tensors), a 2-layer projection
MLP ``Linear(out_dim, proj_hidden) - ReLU - Linear(proj_hidden, proj_dim)``, NT-Xent with
``temperature``, Adam. The projection head is discarded afterwards.

The trained backbone's state_dict is cached under ``cache_dir`` with a key that is the SHA-256 of
everything that determines it: the backbone's ``spec`` (name + keyword arguments, set by
``create_backbone``) and ``repr`` (the architecture), a fingerprint of its initial weights, a fingerprint of the image bytes,
every hyper-parameter (augmentation included) and the seed. A second call with the same inputs
reloads the file instead of training. Files are written to a temporary file and renamed.

After the call ``backbone.ssl_pretrain_info`` holds ``key``, ``cache_hit``, ``epoch_losses``,
``seconds`` and ``path``.

Named defaults for the digits CPU profile (measured by ``benchmarks/explore_cpu_backbones.py``,
see docs/models.md): :data:`TEACHER_SSL` and :data:`STUDENT_SSL`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .augment import BatchAugment, images_to_float
from .cibhash import nt_xent

CACHE_VERSION = 1

log = logging.getLogger(__name__)

DIGITS_AUGMENT: dict[str, Any] = {"hflip_p": 0.0}
"""BatchAugment overrides for digit images: no horizontal flip (mirrored digits are other
shapes; with flips the digits student lost about 0.1 mAP@100, docs/models.md)."""
TEACHER_SSL: dict[str, Any] = {"epochs": 60, "batch_size": 256, "lr": 1e-3, "temperature": 0.5,
                               "augment": DIGITS_AUGMENT}
"""SimCLR settings of the digits teacher backbone (``cnn_teacher``): ``ssl_pretrain(backbone,
images=..., image_size=16, seed=..., **TEACHER_SSL)``."""
STUDENT_SSL: dict[str, Any] = {"epochs": 30, "batch_size": 256, "lr": 1e-3, "temperature": 0.5,
                               "augment": DIGITS_AUGMENT}
"""SimCLR settings of the digits student backbone (``small_cnn_s``)."""


def tensor_fingerprint(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def state_fingerprint(module: nn.Module) -> str:
    """SHA-256 over a module's state_dict (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256(type(module).__name__.encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor_fingerprint(tensor).encode())
    return h.hexdigest()


def _spec(backbone: nn.Module) -> Any:
    return getattr(backbone, "spec", {"class": type(backbone).__name__})


def cache_key(backbone: nn.Module, images: torch.Tensor, hparams: dict[str, Any]) -> str:
    """SHA-256 of (backbone spec, architecture ``repr``, initial-weight fingerprint, image
    fingerprint, hparams)."""
    payload = {"version": CACHE_VERSION, "spec": _spec(backbone), "arch": repr(backbone),
               "out_dim": int(getattr(backbone, "out_dim", -1)),
               "init": state_fingerprint(backbone), "images": tensor_fingerprint(images),
               "hparams": hparams}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def projection_head(in_dim: int, *, hidden: int, out_dim: int) -> nn.Module:
    """SimCLR's 2-layer projection MLP."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


def _atomic_torch_save(obj: Any, path: str) -> None:
    from ..io import atomic_save  # same folder, mode 0644, renamed into place

    atomic_save(obj, path)


def _load_cached(path: str, key: str) -> dict | None:
    """The cached pretraining result at ``path`` if it is readable and holds ``key``; otherwise
    ``None`` after a warning (the caller retrains and overwrites the file)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("key") == key and {"state_dict", "epoch_losses", "seconds"} <= set(blob):
            return blob
        log.warning("SimCLR cache %s holds another key or misses fields; retraining", path)
    except Exception as exc:  # truncated or foreign file
        log.warning("SimCLR cache %s is unreadable (%s); retraining", path, exc)
    return None


def train_simclr(backbone: nn.Module, base: torch.Tensor, *, augment: BatchAugment, epochs: int,
                 batch_size: int, lr: float, temperature: float, weight_decay: float,
                 proj_hidden: int, proj_dim: int, seed: int, device: torch.device,
                 progress: bool) -> list[float]:
    """The SimCLR loop on float images ``base`` (N, 3, S, S) in [0, 1]; returns per-epoch mean
    losses. Trains ``backbone`` in place."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    proj = projection_head(int(backbone.out_dim), hidden=proj_hidden, out_dim=proj_dim).to(device)
    params = list(backbone.parameters()) + list(proj.parameters())
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    backbone.train()
    proj.train()
    n = base.shape[0]
    losses: list[float] = []
    bar = tqdm(range(epochs), desc="simclr", disable=not progress, leave=False)
    for _ in bar:
        perm = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            if len(idx) < 2:
                continue
            x = base[idx.to(base.device)]
            v1, v2 = augment(x, gen), augment(x, gen)
            z = proj(backbone(torch.cat([v1, v2])))
            loss = nt_xent(z[:len(idx)], z[len(idx):], temperature=temperature)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"SimCLR loss became {loss.item()}; lower lr={lr}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        losses.append(total / max(count, 1))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    backbone.eval()
    return losses


def ssl_pretrain(backbone: nn.Module, *, images: torch.Tensor, image_size: int, epochs: int,
                 batch_size: int, lr: float, temperature: float, seed: int,
                 device: str | torch.device = "cpu", cache_dir: str | None = None,
                 progress: bool = True, augment: BatchAugment | dict[str, Any] | None = None,
                 weight_decay: float = 1e-6, proj_hidden: int = 256,
                 proj_dim: int = 64) -> nn.Module:
    """Pretrain ``backbone`` in place with SimCLR on uint8 ``images`` (N, C, H, W) resized to
    ``image_size``, or reload the cached result; returns the backbone on ``device`` in eval mode.

    ``augment`` is a :class:`BatchAugment` or a dict of its keyword arguments; ``None`` means
    ``BatchAugment()`` (paper-like augmentation, normalisation mean = std = 0.5). Use the
    normalisation of the data pipeline the backbone will see later.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("image_size", image_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "epochs" else 1):
            raise ValueError(f"{name} must be a {'non-negative' if name == 'epochs' else 'positive'} "
                             f"int, got {value!r}")
    if batch_size < 2:
        raise ValueError("batch_size must be >= 2 (NT-Xent needs negatives)")
    if not hasattr(backbone, "out_dim"):
        raise ValueError("backbone needs an 'out_dim' attribute (use create_backbone)")
    base = images_to_float(images, image_size)  # validates images
    if augment is None or isinstance(augment, dict):
        augment = BatchAugment(**(augment or {}))
    device = torch.device(device)
    hparams = {"image_size": image_size, "epochs": epochs, "batch_size": batch_size, "lr": lr,
               "temperature": temperature, "seed": seed, "weight_decay": weight_decay,
               "proj_hidden": proj_hidden, "proj_dim": proj_dim, "augment": augment.params()}
    backbone.cpu()
    key = cache_key(backbone, images, hparams)
    path = os.path.join(cache_dir, f"ssl_{key[:32]}.pt") if cache_dir is not None else None
    backbone.to(device)
    blob = _load_cached(path, key) if path is not None and os.path.exists(path) else None
    if blob is not None:
        backbone.load_state_dict(blob["state_dict"], strict=True)
        backbone.to(device).eval()
        backbone.ssl_pretrain_info = {"key": key, "cache_hit": True, "path": path,
                                      "epoch_losses": list(blob["epoch_losses"]),
                                      "seconds": float(blob["seconds"])}
        return backbone
    t0 = time.perf_counter()
    losses = train_simclr(backbone, base.to(device), augment=augment, epochs=epochs,
                          batch_size=batch_size, lr=lr, temperature=temperature,
                          weight_decay=weight_decay, proj_hidden=proj_hidden, proj_dim=proj_dim,
                          seed=seed, device=device, progress=progress)
    seconds = time.perf_counter() - t0
    if path is not None:
        state = {k: v.detach().cpu() for k, v in backbone.state_dict().items()}
        _atomic_torch_save({"key": key, "state_dict": state, "epoch_losses": losses,
                            "seconds": seconds, "hparams": json.dumps(hparams, default=str)}, path)
    backbone.ssl_pretrain_info = {"key": key, "cache_hit": False, "path": path,
                                  "epoch_losses": losses, "seconds": seconds}
    return backbone

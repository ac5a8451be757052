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
import math
import os
import platform
import time
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .augment import BatchAugment, images_to_float
from .cibhash import nt_xent

CACHE_VERSION = 1
CHECKPOINT_FORMAT = "brcd-simclr-checkpoint-1"
WEIGHTS_FORMAT = "brcd-pretrained-backbone-1"

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


LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("fp32", "bf16")


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base learning rate before optimiser step ``step`` (0-based): a linear
    warm-up from ``1 / warmup_steps`` to 1 over ``warmup_steps`` steps, then 1 (``constant``) or
    a half cosine from 1 to 0 at ``total_steps`` (``cosine``)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def _load_checkpoint(path: str, key: str | None) -> dict | None:
    """A training checkpoint written by :func:`train_simclr` for ``key``, or ``None`` (after a
    warning) when it is unreadable or belongs to other inputs."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file
        log.warning("SimCLR checkpoint %s is unreadable (%s); starting from epoch 0", path, exc)
        return None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT or ck.get("key") != key:
        log.warning("SimCLR checkpoint %s belongs to other inputs; starting from epoch 0", path)
        return None
    return ck


def train_simclr(backbone: nn.Module, base: torch.Tensor, *, augment: BatchAugment, epochs: int,
                 batch_size: int, lr: float, temperature: float, weight_decay: float,
                 proj_hidden: int, proj_dim: int, seed: int, device: torch.device,
                 progress: bool, lr_schedule: str = "constant", warmup_epochs: int = 0,
                 checkpoint_path: str | None = None, checkpoint_key: str | None = None,
                 info: dict[str, Any] | None = None, precision: str = "fp32") -> list[float]:
    """The SimCLR loop on float images ``base`` (N, 3, S, S) in [0, 1]; returns per-epoch mean
    losses. Trains ``backbone`` in place.

    With ``checkpoint_path``, the whole training state (backbone, projection head, optimiser,
    learning-rate schedule position, the augmentation/permutation generator, torch's global RNG,
    epoch, losses, seconds spent) is written atomically after every epoch; a later call with the
    same ``checkpoint_key`` resumes after the last finished epoch and ends with exactly the
    weights an uninterrupted run gives (same thread count). ``info`` (a dict) receives
    ``seconds`` (wall time of the epochs, summed over all sessions), ``cpu_seconds`` (this
    process's CPU time over the same epochs: on a shared machine, what the wall time would be
    on an idle one, times the threads used) and ``resumed_from`` (epoch).

    ``precision="bf16"`` runs the backbone and projection forward under
    ``torch.autocast(bfloat16)`` (weights, optimiser and loss stay float32): about half the CPU
    time on processors with AVX512-BF16.
    """
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    proj = projection_head(int(backbone.out_dim), hidden=proj_hidden, out_dim=proj_dim).to(device)
    # the backbone learns here even when it comes out of a network that freezes it (an
    # Experiment builds the backbone inside a HashingNetwork, whose frozen parameters do not
    # require gradients: before this line such a pretraining trained the projection head only);
    # the caller's flags are restored at the end
    frozen = [p for p in backbone.parameters() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    params = list(backbone.parameters()) + list(proj.parameters())
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    n = base.shape[0]
    steps_per_epoch = sum(1 for s in range(0, n, batch_size) if min(batch_size, n - s) >= 2)
    total_steps = steps_per_epoch * epochs
    warmup_steps = steps_per_epoch * warmup_epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(
        step, total_steps=total_steps, warmup_steps=warmup_steps, schedule=lr_schedule))
    losses: list[float] = []
    start_epoch, seconds, cpu_seconds = 0, 0.0, 0.0
    ck = (_load_checkpoint(checkpoint_path, checkpoint_key)
          if checkpoint_path is not None and os.path.exists(checkpoint_path) else None)
    if ck is not None:
        backbone.load_state_dict(ck["backbone"], strict=True)
        proj.load_state_dict(ck["proj"], strict=True)
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        start_epoch, losses, seconds = int(ck["epoch"]), list(ck["losses"]), float(ck["seconds"])
        cpu_seconds = float(ck.get("cpu_seconds", 0.0))
        log.info("SimCLR: resumed from %s after epoch %d of %d", checkpoint_path, start_epoch, epochs)
    if info is not None:
        info["resumed_from"] = start_epoch
    backbone.train()
    proj.train()
    bar = tqdm(range(start_epoch, epochs), desc="simclr", disable=not progress, leave=False,
               initial=start_epoch, total=epochs)
    for epoch in bar:
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            if len(idx) < 2:
                continue
            x = base[idx.to(base.device)]
            v1, v2 = augment(x, gen), augment(x, gen)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                z = proj(backbone(torch.cat([v1, v2])))
            z = z.float()
            loss = nt_xent(z[:len(idx)], z[len(idx):], temperature=temperature)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"SimCLR loss became {loss.item()} at epoch {epoch + 1}; "
                                         f"lower lr={lr}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            count += len(idx)
        losses.append(total / max(count, 1))
        seconds += time.perf_counter() - t0
        cpu_seconds += time.process_time() - c0
        if checkpoint_path is not None:
            _atomic_torch_save({
                "format": CHECKPOINT_FORMAT, "key": checkpoint_key, "epoch": epoch + 1,
                "epochs": epochs, "backbone": _cpu_state(backbone), "proj": _cpu_state(proj),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "losses": losses, "seconds": seconds, "cpu_seconds": cpu_seconds}, checkpoint_path)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        log.info("SimCLR epoch %d/%d: loss %.4f, %.0f s so far", epoch + 1, epochs, losses[-1], seconds)
    backbone.eval()
    for p in frozen:
        p.requires_grad_(False)
    if info is not None:
        info["seconds"], info["cpu_seconds"] = seconds, cpu_seconds
    return losses


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def ssl_pretrain(backbone: nn.Module, *, images: torch.Tensor, image_size: int, epochs: int,
                 batch_size: int, lr: float, temperature: float, seed: int,
                 device: str | torch.device = "cpu", cache_dir: str | None = None,
                 progress: bool = True, augment: BatchAugment | dict[str, Any] | None = None,
                 weight_decay: float = 1e-6, proj_hidden: int = 256,
                 proj_dim: int = 64, lr_schedule: str = "constant", warmup_epochs: int = 0,
                 precision: str = "fp32", checkpoint: bool = True,
                 weights_dirs: tuple[str, ...] | list[str] = ()) -> nn.Module:
    """Pretrain ``backbone`` in place with SimCLR on uint8 ``images`` (N, C, H, W) resized to
    ``image_size``, or reload the cached result; returns the backbone on ``device`` in eval mode.

    ``weights_dirs``: folders of committed weight files (:func:`export_pretrained`; the kit's
    ``brcd_lib/weights``). A file whose sidecar holds this call's cache key and whose SHA-256
    matches is loaded instead of training (``ssl_pretrain_info["cache_hit"] == "committed"``);
    a file with the key but another SHA-256 is ignored with a warning, and training starts
    with a message naming what it costs.

    ``augment`` is a :class:`BatchAugment` or a dict of its keyword arguments; ``None`` means
    ``BatchAugment()`` (paper-like augmentation, normalisation mean = std = 0.5). Use the
    normalisation of the data pipeline the backbone will see later.

    ``lr_schedule`` ("constant" or "cosine", per optimiser step), ``warmup_epochs`` (linear
    warm-up) and ``precision`` ("fp32" or "bf16" autocast, see :func:`train_simclr`) enter the
    cache key only when they differ from the defaults, so keys of earlier runs stay valid. With a ``cache_dir`` and ``checkpoint`` (default), the training state is
    written to ``<cache_dir>/ssl_<key>.ckpt`` after every epoch and a later call with the same
    inputs resumes from it (a killed run loses at most one epoch and ends bit-identical to an
    uninterrupted one); the checkpoint is removed once the final file is written.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("image_size", image_size),
                        ("warmup_epochs", warmup_epochs)):
        lowest = 0 if name in ("epochs", "warmup_epochs") else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
            raise ValueError(f"{name} must be a {'non-negative' if lowest == 0 else 'positive'} "
                             f"int, got {value!r}")
    if batch_size < 2:
        raise ValueError("batch_size must be >= 2 (NT-Xent needs negatives)")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not hasattr(backbone, "out_dim"):
        raise ValueError("backbone needs an 'out_dim' attribute (use create_backbone)")
    base = images_to_float(images, image_size)  # validates images
    if augment is None or isinstance(augment, dict):
        augment = BatchAugment(**(augment or {}))
    device = torch.device(device)
    hparams = recipe_hparams(image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr,
                             temperature=temperature, seed=seed, weight_decay=weight_decay,
                             proj_hidden=proj_hidden, proj_dim=proj_dim, augment=augment,
                             lr_schedule=lr_schedule, warmup_epochs=warmup_epochs,
                             precision=precision)
    backbone.cpu()
    key = cache_key(backbone, images, hparams)
    # "ssl2_": local caches written before pretraining trained the backbone of a frozen network
    # (see train_simclr) are never read again; committed files are matched by their sidecars
    path = os.path.join(cache_dir, f"ssl2_{key[:32]}.pt") if cache_dir is not None else None
    ckpt = os.path.join(cache_dir, f"ssl2_{key[:32]}.ckpt") if cache_dir is not None and checkpoint else None
    backbone.to(device)
    # committed weights first: the same file on every machine (a local pretraining with the
    # same key may differ in the last bits on another CPU)
    committed = find_committed(key, weights_dirs)
    blob = None
    if committed is None and path is not None and os.path.exists(path):
        blob = _load_cached(path, key)
    if committed is not None:
        wpath, side = committed
        _load_committed(backbone, wpath, side, key=key, hparams=hparams)
        backbone.to(device).eval()
        log.info("SimCLR: committed weights %s (SHA-256 %s) match the recipe; not pretraining",
                 os.path.basename(wpath), str(side.get("sha256"))[:12])
        return backbone
    if blob is None and weights_dirs:
        log.warning("SimCLR: no committed weights in %s match %s (recipe, initial weights and "
                    "images); pretraining it now: %d epochs of %d images at batch %d%s",
                    ", ".join(os.path.basename(os.path.normpath(d)) for d in weights_dirs),
                    _spec(backbone), epochs, len(images), batch_size,
                    _estimate_note(backbone, base, batch_size, epochs, augment=augment,
                                   precision=precision, proj_hidden=proj_hidden,
                                   proj_dim=proj_dim, temperature=temperature))
    if blob is not None:
        backbone.load_state_dict(blob["state_dict"], strict=True)
        backbone.to(device).eval()
        backbone.ssl_pretrain_info = {"key": key, "cache_hit": True, "path": path,
                                      "epoch_losses": list(blob["epoch_losses"]),
                                      "seconds": float(blob["seconds"]),
                                      "cpu_seconds": blob.get("cpu_seconds"), "hparams": hparams}
        return backbone
    info: dict[str, Any] = {}
    losses = train_simclr(backbone, base.to(device), augment=augment, epochs=epochs,
                          batch_size=batch_size, lr=lr, temperature=temperature,
                          weight_decay=weight_decay, proj_hidden=proj_hidden, proj_dim=proj_dim,
                          seed=seed, device=device, progress=progress, lr_schedule=lr_schedule,
                          warmup_epochs=warmup_epochs, checkpoint_path=ckpt, checkpoint_key=key,
                          info=info, precision=precision)
    seconds = float(info.get("seconds", 0.0))
    if path is not None:
        state = {k: v.detach().cpu() for k, v in backbone.state_dict().items()}
        _atomic_torch_save({"key": key, "state_dict": state, "epoch_losses": losses,
                            "seconds": seconds, "cpu_seconds": info.get("cpu_seconds"),
                            "hparams": json.dumps(hparams, default=str)}, path)
        if ckpt is not None and os.path.exists(ckpt):
            os.remove(ckpt)
    backbone.ssl_pretrain_info = {"key": key, "cache_hit": False, "path": path,
                                  "epoch_losses": losses, "seconds": seconds,
                                  "cpu_seconds": info.get("cpu_seconds"),
                                  "resumed_from": info.get("resumed_from", 0), "hparams": hparams}
    return backbone


def recipe_hparams(*, image_size: int, epochs: int, batch_size: int, lr: float, temperature: float,
                   seed: int, weight_decay: float, proj_hidden: int, proj_dim: int,
                   augment: BatchAugment, lr_schedule: str = "constant",
                   warmup_epochs: int = 0, precision: str = "fp32") -> dict[str, Any]:
    """The hyper-parameters that enter the cache key (and a weight file's sidecar). The newer
    ones (``lr_schedule``, ``warmup_epochs``, ``precision``) appear only when they differ from
    their defaults, so the keys of runs made before they existed do not change."""
    hparams = {"image_size": image_size, "epochs": epochs, "batch_size": batch_size, "lr": lr,
               "temperature": temperature, "seed": seed, "weight_decay": weight_decay,
               "proj_hidden": proj_hidden, "proj_dim": proj_dim, "augment": augment.params()}
    if lr_schedule != "constant":
        hparams["lr_schedule"] = lr_schedule
    if warmup_epochs:
        hparams["warmup_epochs"] = warmup_epochs
    if precision != "fp32":
        hparams["precision"] = precision
    return hparams


# --------------------------------------------------------------------------------------------
# committed weight files: a weights_only state dict + a JSON sidecar with provenance
# --------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sidecar_path(weights_path: str) -> str:
    """``weights.pt`` -> ``weights.json``."""
    root, _ = os.path.splitext(weights_path)
    return root + ".json"


def export_pretrained(backbone: nn.Module, path: str, *, data: dict[str, Any],
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``backbone``'s state dict to ``path`` (plain tensors: ``torch.load(path,
    weights_only=True)`` and ``create_backbone(name, weights_path=path, **kwargs)`` read it) and
    a JSON sidecar next to it (:func:`sidecar_path`) with the file's SHA-256 and the provenance:
    backbone name / keyword arguments / parameters, the SimCLR recipe and its cache key, epochs,
    per-epoch losses, training seconds, commit, torch and library versions, CPU model, threads,
    and ``data`` (dataset, pool description, number of images, image fingerprint, split hash).
    Returns the sidecar as a dict. Both files are written atomically (weights first)."""
    from ..io import atomic_write_text, sha256_file
    from ..provenance import git_commit, library_versions

    state = {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items()}
    _atomic_torch_save(state, path)
    info = dict(getattr(backbone, "ssl_pretrain_info", {}) or {})
    hparams = info.get("hparams")
    spec = _spec(backbone)
    versions = library_versions()
    sidecar = {
        "format": WEIGHTS_FORMAT,
        "file": os.path.basename(path), "sha256": sha256_file(path), "bytes": os.path.getsize(path),
        "backbone": spec, "out_dim": int(getattr(backbone, "out_dim", -1)),
        "parameters": int(sum(p.numel() for p in backbone.parameters())),
        "recipe": {"method": "SimCLR (brcd_lib.models.pretrain.ssl_pretrain)", **(hparams or {})},
        "cache_key": info.get("key"),
        "epochs": (hparams or {}).get("epochs"), "epoch_losses": info.get("epoch_losses"),
        "train_seconds": info.get("seconds"), "train_cpu_seconds": info.get("cpu_seconds"),
        "cache_hit": info.get("cache_hit"),
        "data": data,
        "commit": git_commit(), "torch": versions.get("torch"), "versions": versions,
        "cpu_model": cpu_model(), "torch_threads": torch.get_num_threads(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=1, default=str) + "\n")
    return sidecar


def _file_digest(path: str) -> str | None:
    """SHA-256 of the file at ``path``; ``None`` when there is no such file."""
    from ..io import sha256_file

    return sha256_file(path) if os.path.isfile(path) else None


def _load_committed(backbone: nn.Module, wpath: str, side: dict[str, Any], *, key: str | None,
                    **extra: Any) -> None:
    """Load the checked committed file ``wpath`` (sidecar ``side``) into ``backbone`` and record
    where its weights came from in ``backbone.ssl_pretrain_info`` (plus ``extra``)."""
    state = torch.load(wpath, map_location="cpu", weights_only=True)
    backbone.load_state_dict(state, strict=True)
    backbone.ssl_pretrain_info = {"key": key, "cache_hit": "committed", "path": wpath,
                                  "sha256": side.get("sha256"),
                                  "epoch_losses": list(side.get("epoch_losses") or []),
                                  "seconds": float(side.get("train_seconds") or 0.0),
                                  "cpu_seconds": side.get("train_cpu_seconds"), **extra}


def find_committed(key: str, folders) -> tuple[str, dict[str, Any]] | None:
    """The committed weight file (path, sidecar) in ``folders`` whose sidecar holds cache key
    ``key`` and whose bytes match the sidecar's SHA-256; ``None`` when there is none. A file
    with the key but other bytes (edited, truncated, a Git LFS pointer) is skipped with a
    warning naming it."""
    for folder in folders:
        if not folder or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(folder, name)) as f:
                    side = json.load(f)
            except (OSError, ValueError):
                log.warning("committed weights: sidecar %s is unreadable; skipped", name)
                continue
            if not isinstance(side, dict) or side.get("format") != WEIGHTS_FORMAT \
                    or side.get("cache_key") != key:
                continue
            wpath = os.path.join(folder, str(side.get("file")))
            digest = _file_digest(wpath)
            if digest != side.get("sha256"):
                log.warning("committed weights %s: SHA-256 %s does not match its sidecar (%s); "
                            "not used (restore it with `git checkout -- %s`)", wpath,
                            digest or "(file missing)", side.get("sha256"),
                            os.path.relpath(wpath))
                continue
            return wpath, side
    return None


def load_committed_file(backbone: nn.Module, name: str, folders) -> dict[str, Any]:
    """Load the committed weight file ``name`` (e.g. ``"fashion_teacher_resnet_teacher"``, with or
    without ``.pt``) from the first of ``folders`` that holds it into ``backbone``: weights made by
    another profile's pretraining, transferred like the paper's ImageNet weights. The file's bytes
    must match its sidecar's SHA-256 and the sidecar's backbone (name and keyword arguments) must
    be ``backbone``'s (up to the options that add no parameters, such as the CPU backbones'
    ``pool_grid``); anything else is a clear error naming the file and the fix. Returns the
    sidecar (``backbone.ssl_pretrain_info`` records it)."""
    stem = name[:-3] if name.endswith(".pt") else name
    tried = []
    for folder in folders:
        if not folder:
            continue
        side_path = os.path.join(folder, stem + ".json")
        tried.append(os.path.basename(os.path.normpath(folder)) or str(folder))
        if not os.path.isfile(side_path):
            continue
        try:
            with open(side_path) as f:
                side = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"committed weights {stem}: sidecar {side_path} is unreadable "
                             f"({exc}); restore it with `git checkout -- {side_path}`") from None
        wpath = os.path.join(folder, str(side.get("file") or stem + ".pt"))
        digest = _file_digest(wpath)
        if digest is None or digest != side.get("sha256"):
            raise ValueError(f"committed weights {wpath}: SHA-256 {digest or '(file missing)'} "
                             f"does not match its sidecar ({side.get('sha256')}); restore it "
                             f"with `git checkout -- {wpath}` or remake it with "
                             f"`python -m brcd_lib.pretrain`")
        want = {"name": getattr(backbone, "name", None),
                "kwargs": dict(getattr(backbone, "spec", {}).get("kwargs", {}))}
        have = side.get("backbone") or {}
        # options that add no parameters (a pooling grid) may differ: the weights are the same
        free = tuple(getattr(backbone, "parameter_free_options", ()))

        def structural(kwargs: dict) -> dict:
            return {k: v for k, v in kwargs.items() if k not in free}

        if have.get("name") != want["name"] or \
                structural(dict(have.get("kwargs") or {})) != structural(want["kwargs"]):
            raise ValueError(f"committed weights {stem} hold backbone {have.get('name')} "
                             f"{have.get('kwargs') or {}}, not {want['name']} {want['kwargs']}: "
                             "name a weight file of this backbone (BackboneConfig.committed_weights)")
        _load_committed(backbone, wpath, side, key=side.get("cache_key"), transferred_from=stem)
        return side
    raise FileNotFoundError(f"committed weights {stem!r} not found in {', '.join(tried) or '(no folder)'}"
                            f"; the files there are made by `python -m brcd_lib.pretrain --profile "
                            f"<profile>` (see brcd_lib/weights/README or docs/models.md)")


def about(seconds: float) -> str:
    """A rough duration in words: ``under 10 s``, ``about 40 s``, ``about 3 min``,
    ``about 1.5 h``."""
    if seconds < 10:
        return "under 10 s"
    if seconds < 55:
        return f"about {5 * round(seconds / 5):.0f} s"
    if seconds < 90 * 60:
        return f"about {max(1, round(seconds / 60)):.0f} min"
    return f"about {seconds / 3600:.1f} h"


def _estimate_note(backbone: nn.Module, base: torch.Tensor, batch_size: int, epochs: int, *,
                   augment: BatchAugment | None = None, precision: str = "fp32",
                   proj_hidden: int = 256, proj_dim: int = 64, temperature: float = 0.5) -> str:
    """``"; about N min on this machine (S steps)"``: the SimCLR steps times one timed step of
    what :func:`train_simclr` computes per batch (two augmented views, the backbone and a
    projection head under the same precision, the NT-Xent loss, its backward; parameters that
    do not require a gradient stay so): the faster of two steps timed after an untimed first
    one that pays the one-off costs; empty when it cannot be timed."""
    import copy

    try:  # on copies, with the random state restored: the estimate changes nothing
        n = min(batch_size, len(base))
        probe = copy.deepcopy(backbone).train()
        device = next(probe.parameters()).device
        x = base[:n].to(device)
        with torch.random.fork_rng(devices=[]):
            proj = projection_head(int(probe.out_dim), hidden=proj_hidden,
                                   out_dim=proj_dim).to(device)
            gen = torch.Generator().manual_seed(0)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                views = (torch.cat([augment(x, gen), augment(x, gen)]) if augment is not None
                         else x.repeat(2, 1, 1, 1))
                with torch.autocast(device.type, dtype=torch.bfloat16,
                                    enabled=precision == "bf16"):
                    z = proj(probe(views))
                z = z.float()
                nt_xent(z[:n], z[n:], temperature=temperature).backward()
                times.append(time.perf_counter() - t0)
        steps = epochs * max(1, math.ceil(len(base) / batch_size))
        return f"; {about(min(times[1:]) * steps)} on this machine ({steps} steps)"
    except Exception:  # the estimate is a courtesy, never a failure
        return ""


def load_pretrained(path: str, *, verify: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict at ``path`` (``weights_only``) and its sidecar; with ``verify`` the file's
    SHA-256 must match the sidecar's (``ValueError`` otherwise)."""
    from ..io import sha256_file

    with open(sidecar_path(path)) as f:
        sidecar = json.load(f)
    if verify:
        digest = sha256_file(path)
        if digest != sidecar.get("sha256"):
            raise ValueError(f"{path}: SHA-256 {digest} does not match its sidecar "
                             f"({sidecar.get('sha256')}); the file changed after it was written")
    return torch.load(path, map_location="cpu", weights_only=True), sidecar

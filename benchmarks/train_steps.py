"""Timed head-training steps and timed bank views, shared by ``bench_cache`` and
``bench_gpu_estimate``: generated images, a distiller prepared on random teacher codes, the
training loop of ``engine.fit`` without validation, and the per-image cost of one bank view."""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def random_images(n: int, size: int, seed: int):
    """An ArrayImageSet of ``n`` random uint8 RGB images of ``size`` px (one dummy class)."""
    import torch

    from brcd_lib.data.base import ArrayImageSet

    if n < 1 or size < 1:
        raise ValueError(f"need n >= 1 images of size >= 1 px, got n={n}, size={size}")
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    return ArrayImageSet(images=images, labels=np.ones((n, 1), dtype=np.uint8), name="random")


def prepared_distiller(name: str, *, n_train: int, code_length: int, seed: int,
                       kwargs: dict | None = None, device: str = "cpu"):
    """The distiller ``name`` (``kwargs``), prepared on random +-1 teacher codes of ``n_train``
    images (the dataset indices of the training batches must be below ``n_train``)."""
    import torch

    from brcd_lib.distill import get_distiller
    from brcd_lib.training.engine import make_context

    g = torch.Generator().manual_seed(seed)
    codes = torch.where(torch.rand(n_train, code_length, generator=g) < 0.5, 1.0, -1.0)
    distiller = get_distiller(name, **(kwargs or {})).to(device)
    distiller.prepare(make_context(teacher_train_codes=codes.to(device), seed=seed,
                                   cache_dir=None, cache_key="bench"))
    return distiller


def timed_epochs(source, *, net, objective, teacher, distiller, batch_size: int, epochs: int,
                 seed: int, lr: float = 1e-3, max_steps: int | None = None,
                 device: str = "cpu") -> tuple[list[float], list[float]]:
    """Train like ``engine.fit`` (Adam, ``loss.item()`` every step; no validation); returns
    (seconds per step, seconds per epoch). A step's time includes producing its batch
    (augmentation and backbones when uncached); on CUDA every step ends with a synchronize."""
    import torch

    from brcd_lib.training import engine

    cuda = str(device).startswith("cuda")
    params = [p for p in net.parameters() if p.requires_grad]
    params += [p for p in distiller.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    use_rot = getattr(distiller, "needs_rotations", False)
    net.train()
    distiller.train()
    steps, epoch_times = [], []
    for epoch in range(epochs):
        t_epoch = t = time.perf_counter()
        for i, pb in enumerate(source.epoch(epoch=epoch, seed=seed, batch_size=batch_size)):
            loss = engine._step_loss(net, objective, pb, teacher, distiller, 1.0, use_rot)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
            if cuda:
                torch.cuda.synchronize()
            now = time.perf_counter()
            steps.append(now - t)
            t = now
            if max_steps is not None and i + 1 >= max_steps:
                break
        epoch_times.append(time.perf_counter() - t_epoch)
    return steps, epoch_times


def bank_seconds_per_view_image(net, dataset, *, transform, seed: int,
                                device: str = "cpu") -> float:
    """Seconds per image of one bank view (augmentation + backbone forward), through
    ``FeatureStore.views`` in a fresh memory-only store (so the augmentation is paid here, as it
    is for every backbone of a 224 px bank). One untimed call on 2 images first (warm-up)."""
    from brcd_lib.training.features import FeatureStore

    ds = dataset.with_transform(transform)
    warm = FeatureStore(cache_dir=tempfile.gettempdir(), enabled=False)
    warm.views(net, ds.subset(np.arange(min(2, len(ds)))), n_views=1, seed=seed + 1,
               split_hash="warm-up", transform_desc="bench", device=device, progress=False)
    store = FeatureStore(cache_dir=tempfile.gettempdir(), enabled=False)  # memory only
    t0 = time.perf_counter()
    store.views(net, ds, n_views=1, seed=seed, split_hash="bench", transform_desc="bench",
                device=device, progress=False)
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / len(ds)

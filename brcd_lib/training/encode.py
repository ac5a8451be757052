"""Apply a function (a frozen backbone) to every item of a dataset, in order, in batches."""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import DataLoader
from .progress import tqdm

__all__ = ["compute_features"]


@torch.inference_mode()
def compute_features(fn: Callable[[torch.Tensor], torch.Tensor], dataset, *, batch_size: int = 256,
                     device: str = "cpu", num_workers: int = 0, desc: str = "features",
                     progress: bool = True) -> torch.Tensor:
    """Apply ``fn`` to every item of ``dataset`` (which yields ``(image, index)``) in order."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    out = []
    for x, _ in tqdm(loader, desc=desc, disable=not progress, leave=False):
        out.append(fn(x.to(device)).float().cpu())
    return torch.cat(out) if out else torch.empty(0)

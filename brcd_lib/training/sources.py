"""Training inputs of the head-training loop: pairs of augmented views of a batch of images.

A :class:`PairSource` yields :class:`PairBatch` es (backbone features of two views of B training
images, their dataset indices, and the rotated copies a distiller may need) for one epoch,
deterministically given (seed, epoch):

* :class:`BankPairSource` draws two different views per image from cached banks of augmented
  views' backbone features (``TrainConfig.feature_views > 0``; fast, frozen backbones);
* :class:`ImagePairSource` augments the images afresh every step and runs the backbones.

Both accept ``shard=(rank, world_size)`` (:class:`brcd_lib.training.distributed.ShardedPairSource`)
to produce one rank's contiguous share of every global batch.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

__all__ = ["PairBatch", "PairSource", "BankPairSource", "ImagePairSource", "mix_seed"]


@dataclass
class PairBatch:
    """Backbone features of two views of B training images (and their dataset indices)."""

    index: torch.Tensor
    student: tuple[torch.Tensor, torch.Tensor]
    teacher: tuple[torch.Tensor, torch.Tensor] | None = None
    student_rot: torch.Tensor | None = None  # (R, B, d) features of rotated view 1
    teacher_rot: torch.Tensor | None = None


class PairSource:
    """Yields :class:`PairBatch` es for one epoch; deterministic given (seed, epoch).

    ``shard=(rank, world_size)`` (used by
    :class:`brcd_lib.training.distributed.ShardedPairSource`) asks for rank's contiguous share
    (``tensor_split``) of every global batch of ``batch_size`` items, the global batches being
    those of the unsharded call.
    """

    n: int

    def epoch(self, *, epoch: int, seed: int, batch_size: int,
              shard: tuple[int, int] | None = None) -> Any:  # pragma: no cover
        raise NotImplementedError


class BankPairSource(PairSource):
    """Two different views per image drawn from cached feature banks (V, n, d)."""

    def __init__(self, *, student_bank: torch.Tensor, teacher_bank: torch.Tensor | None = None,
                 student_rot: torch.Tensor | None = None, teacher_rot: torch.Tensor | None = None):
        if student_bank.shape[0] < 2:
            raise ValueError("a feature bank needs at least 2 views per image; "
                             "set TrainConfig.feature_views >= 2")
        self.student_bank, self.teacher_bank = student_bank, teacher_bank
        self.student_rot, self.teacher_rot = student_rot, teacher_rot  # (R, V, n, d)
        self.n = student_bank.shape[1]

    def epoch(self, *, epoch: int, seed: int, batch_size: int,
              shard: tuple[int, int] | None = None):
        g = torch.Generator().manual_seed(mix_seed(seed, epoch))
        perm = torch.randperm(self.n, generator=g)
        n_views = self.student_bank.shape[0]
        v1 = torch.randint(n_views, (self.n,), generator=g)
        v2 = (v1 + torch.randint(1, n_views, (self.n,), generator=g)) % n_views
        for start in range(0, self.n - batch_size + 1 if self.n >= batch_size else 1, batch_size):
            idx = perm[start:start + batch_size]
            if shard is not None:
                idx = idx.tensor_split(shard[1])[shard[0]]
            a, b = v1[idx], v2[idx]
            yield PairBatch(
                index=idx,
                student=(self.student_bank[a, idx], self.student_bank[b, idx]),
                teacher=None if self.teacher_bank is None else
                (self.teacher_bank[a, idx], self.teacher_bank[b, idx]),
                student_rot=None if self.student_rot is None else self.student_rot[:, a, idx],
                teacher_rot=None if self.teacher_rot is None else self.teacher_rot[:, a, idx],
            )


class ImagePairSource(PairSource):
    """Fresh augmentations every step: images -> backbones (the uncached path)."""

    def __init__(self, *, dataset, student_features: Callable, teacher_features: Callable | None,
                 rotations: int = 0, device: str = "cpu", num_workers: int = 0,
                 pin_memory: bool = False):
        self.dataset, self.n = dataset, len(dataset)
        self.student_features, self.teacher_features = student_features, teacher_features
        self.rotations, self.device, self.num_workers = rotations, device, num_workers
        self.pin_memory = pin_memory and str(device).startswith("cuda")

    def epoch(self, *, epoch: int, seed: int, batch_size: int,
              shard: tuple[int, int] | None = None):
        g = torch.Generator().manual_seed(mix_seed(seed, epoch))
        if shard is None:
            torch.manual_seed(mix_seed(seed, epoch) + 1)  # the augmentations' randomness
            loader = DataLoader(self.dataset, batch_size=batch_size, shuffle=True, generator=g,
                                drop_last=self.n >= batch_size, num_workers=self.num_workers,
                                worker_init_fn=_seed_worker, pin_memory=self.pin_memory,
                                persistent_workers=False)
        else:
            loader = self._shard_loader(g, seed=seed, epoch=epoch, batch_size=batch_size,
                                        shard=shard)
        for (x1, x2), idx in loader:
            x1 = x1.to(self.device, non_blocking=self.pin_memory)
            x2 = x2.to(self.device, non_blocking=self.pin_memory)
            rots = None
            if self.rotations:
                rots = [torch.rot90(x1, r, dims=(2, 3)) for r in range(self.rotations)]
            s_rot = None if rots is None else torch.stack([self.student_features(r) for r in rots])
            t_rot = None
            if rots is not None and self.teacher_features is not None:
                with torch.no_grad():
                    t_rot = torch.stack([self.teacher_features(r) for r in rots])
            teacher = None
            if self.teacher_features is not None:
                with torch.no_grad():
                    teacher = (self.teacher_features(x1), self.teacher_features(x2))
            yield PairBatch(index=idx, student=(self.student_features(x1), self.student_features(x2)),
                            teacher=teacher, student_rot=s_rot, teacher_rot=t_rot)

    def _shard_loader(self, g: torch.Generator, *, seed: int, epoch: int, batch_size: int,
                      shard: tuple[int, int]) -> DataLoader:
        """A loader over rank's share of each global batch. The permutation is the one of the
        unsharded loader (which draws its workers' base seed from ``g``, then the permutation);
        the augmentations are seeded per (seed, epoch, rank)."""
        rank, world = shard
        torch.empty((), dtype=torch.int64).random_(generator=g)  # as DataLoader's base seed draw
        perm = torch.randperm(self.n, generator=g)
        stop = self.n - batch_size + 1 if self.n >= batch_size else 1
        batches = [perm[s:s + batch_size].tensor_split(world)[rank].tolist()
                   for s in range(0, stop, batch_size)]
        mixed = mix_seed(seed, epoch) + 1 + 7_907 * rank
        torch.manual_seed(mixed)
        return DataLoader(self.dataset, batch_sampler=batches, num_workers=self.num_workers,
                          worker_init_fn=_seed_worker,
                          generator=torch.Generator().manual_seed(mixed))


def mix_seed(seed: int, epoch: int) -> int:
    """The seed of (run seed, epoch): batch order, view pairing and augmentations of an epoch."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919) % (2**62)


def _seed_worker(worker_id: int) -> None:
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)

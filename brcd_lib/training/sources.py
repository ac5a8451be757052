"""Training inputs of the head-training loop: pairs of augmented views of a batch of images.

A :class:`PairSource` yields :class:`PairBatch` es (backbone features of two views of B training
images, their dataset indices, and the rotated copies a distiller may need) for one epoch,
deterministically given (seed, epoch):

* :class:`BankPairSource` draws two different views per image from cached banks of augmented
  views' backbone features (``TrainConfig.feature_views > 0``; fast, frozen backbones);
* :class:`ImagePairSource` augments the images afresh every step and runs the backbones;
* :class:`OnlineBankPairSource` reads the same fresh views' features from banks computed once
  per frozen backbone and epoch for every run with the same augmentation seed.

Both accept ``shard=(rank, world_size)`` (:class:`brcd_lib.training.distributed.ShardedPairSource`)
to produce one rank's contiguous share of every global batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .views import CpuViews, epoch_batches, mix_seed

__all__ = ["PairBatch", "PairSource", "BankPairSource", "ImagePairSource", "OnlineBankPairSource",
           "mix_seed"]


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
    """Fresh augmentations every step: images -> backbones (the per-run online path).

    ``dataset`` yields ``((view1, view2), index)``; or ``views`` draws them
    (:mod:`brcd_lib.training.views`: per image on the CPU, or batched on the device). The views
    of image ``i`` at epoch ``e`` are drawn from ``epoch_seed(aug_seed, e, i)`` (``aug_seed``:
    default the run's seed), so they depend neither on the batch order nor on the loader
    workers, and equal the views :class:`OnlineBankPairSource` reads from a shared bank."""

    def __init__(self, *, student_features: Callable, teacher_features: Callable | None,
                 dataset=None, views=None, aug_seed: int | None = None, rotations: int = 0,
                 device: str = "cpu", num_workers: int = 0, pin_memory: bool = False):
        if (dataset is None) == (views is None):
            raise ValueError("ImagePairSource takes one of dataset= and views=")
        self.views = views if views is not None else CpuViews(
            dataset, num_workers=num_workers, pin_memory=pin_memory)
        self.n = len(self.views)
        self.aug_seed = aug_seed
        self.student_features, self.teacher_features = student_features, teacher_features
        self.rotations, self.device = rotations, device

    def epoch(self, *, epoch: int, seed: int, batch_size: int,
              shard: tuple[int, int] | None = None):
        batches = epoch_batches(self.n, seed=seed, epoch=epoch, batch_size=batch_size, shard=shard)
        aug_seed = seed if self.aug_seed is None else self.aug_seed
        for (x1, x2), idx in self.views.draw(seed=aug_seed, epoch=epoch, batches=batches,
                                             device=self.device):
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


class OnlineBankPairSource(PairSource):
    """The online path read from shared banks: ``fetch(epoch)`` returns the backbone features of
    that epoch's two views of every training image (``{"student": (2, n, d), "teacher": (2, n, d)
    or None, "student_rot" / "teacher_rot": (R, n, d) or None}``, copy 0 of the rotations = view
    1), computed once per backbone for every run with the same augmentation seed
    (:meth:`brcd_lib.training.features.FeatureStore.online_bank`); the batches are the run's own
    (:func:`~brcd_lib.training.views.epoch_batches`, as :class:`ImagePairSource`)."""

    def __init__(self, *, n: int, fetch: Callable[[int], dict]):
        self.n, self.fetch = int(n), fetch

    def epoch(self, *, epoch: int, seed: int, batch_size: int,
              shard: tuple[int, int] | None = None):
        bank = self.fetch(epoch)
        s, t = bank["student"], bank.get("teacher")
        s_rot, t_rot = bank.get("student_rot"), bank.get("teacher_rot")
        for idx in epoch_batches(self.n, seed=seed, epoch=epoch, batch_size=batch_size,
                                 shard=shard):
            dev = idx.to(s.device)
            yield PairBatch(
                index=idx, student=(s[0, dev].float(), s[1, dev].float()),
                teacher=None if t is None else (t[0, dev].float(), t[1, dev].float()),
                student_rot=None if s_rot is None else s_rot[:, dev].float(),
                teacher_rot=None if t_rot is None else t_rot[:, dev].float())

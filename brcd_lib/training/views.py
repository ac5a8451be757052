"""Seeded augmented views: those of the cached view banks (:class:`SeededView`, per bank seed,
view and image) and the two views of each training image at each epoch of the online pipeline
(``TrainConfig.feature_views = 0``, :class:`SeededEpoch`), and the order of an epoch's batches.

Both are functions of seeds only:

* the views of image ``i`` at epoch ``e`` are drawn right after
  ``torch.manual_seed(epoch_seed(seed, e, i))`` (view 1, then view 2, as
  :class:`~brcd_lib.data.transforms.TwoViews` draws them), where ``seed`` is the augmentation
  seed (``Experiment.bank_seed``: the split seed, or the run's seed). They do not depend on the
  batch an image falls in, on the loader workers or on the run, so every run with the same
  augmentation seed sees the same views, and a frozen backbone's features of them can be
  computed once and shared (:meth:`brcd_lib.training.features.FeatureStore.online_bank`);
* the batches of an epoch are those of ``DataLoader(shuffle=True, drop_last=n >= batch_size)``
  with a generator seeded ``mix_seed(run seed, epoch)`` (:func:`epoch_batches`), so every run keeps
  its own batch order.

Two ways to draw the views (``TrainConfig.augment``): ``"cpu"`` runs the dataset's training
transform per image in data-loader workers; ``"device"`` draws each image's parameters on the
CPU (:class:`~brcd_lib.data.batched_views.ParamRecorder`, the same draws) and applies them to
whole batches on the training device (:func:`~brcd_lib.data.batched_views.apply_params`: the
``paper`` transform on a GPU). ``"auto"`` takes ``"device"`` on CUDA when the images are an
in-memory array and the transform is supported, ``"cpu"`` otherwise.
"""
from __future__ import annotations

import hashlib
from typing import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from ..data.batched_views import ParamRecorder, apply_params, supports
from ..data.transforms import TwoViews

__all__ = ["AUGMENT_CHOICES", "seed_of", "item_seed", "SeededView", "epoch_seed", "SeededEpoch",
           "mix_seed", "epoch_batches", "loader_permutation", "CpuViews", "DeviceViews",
           "make_views"]

AUGMENT_CHOICES = ("auto", "cpu", "device")


def seed_of(*parts) -> int:
    """A 63-bit seed from the SHA-256 of ``parts`` joined by ":"."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def item_seed(seed: int, view: int, index: int) -> int:
    """The augmentation seed of view ``view`` of image ``index`` in a bank seeded ``seed``."""
    return seed_of(int(seed), int(view), int(index))


class SeededView(Dataset):
    """View ``view`` of every item of ``dataset``: item ``i`` is transformed right after
    ``torch.manual_seed(item_seed(seed, view, i))`` (subclasses choose another seed per item by
    overriding :meth:`item_seed`)."""

    def __init__(self, dataset, *, seed: int, view: int = 0):
        self.dataset, self.seed, self.view = dataset, int(seed), int(view)

    def __len__(self) -> int:
        return len(self.dataset)

    def item_seed(self, i: int) -> int:
        return item_seed(self.seed, self.view, i)

    def __getitem__(self, i: int):
        torch.manual_seed(self.item_seed(i))
        return self.dataset[i]


def epoch_seed(seed: int, epoch: int, index: int) -> int:
    """The seed image ``index`` draws its views of epoch ``epoch`` from (augmentation seed
    ``seed``)."""
    return seed_of("views", int(seed), int(epoch), int(index))


class SeededEpoch(SeededView):
    """Item ``i`` of ``dataset`` (whose transform draws the views) drawn right after
    ``torch.manual_seed(epoch_seed(seed, epoch, i))``."""

    def __init__(self, dataset, *, seed: int, epoch: int):
        super().__init__(dataset, seed=seed)
        self.epoch = int(epoch)

    def item_seed(self, i: int) -> int:
        return epoch_seed(self.seed, self.epoch, i)


def mix_seed(seed: int, epoch: int) -> int:
    """The seed of (run seed, epoch): batch order and view pairing of an epoch."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919) % (2**62)


def loader_permutation(g: torch.Generator, n: int) -> torch.Tensor:
    """The order ``DataLoader(shuffle=True, generator=g)`` visits ``n`` items in: the loader first
    draws its workers' base seed from ``g``, then its sampler the permutation."""
    torch.empty((), dtype=torch.int64).random_(generator=g)
    return torch.randperm(n, generator=g)


def epoch_batches(n: int, *, seed: int, epoch: int, batch_size: int,
                  shard: tuple[int, int] | None = None) -> list[torch.Tensor]:
    """The index batches of an epoch of run seed ``seed`` (the last partial batch dropped when
    there is at least one full batch); with ``shard=(rank, world)`` rank's contiguous share of
    each."""
    g = torch.Generator().manual_seed(mix_seed(seed, epoch))
    perm = loader_permutation(g, n)
    stop = n - batch_size + 1 if n >= batch_size else 1
    batches = [perm[s:s + batch_size] for s in range(0, stop, batch_size)] if n else []
    if shard is not None:
        batches = [b.tensor_split(shard[1])[shard[0]] for b in batches]
    return batches


class CpuViews:
    """Views drawn per image on the CPU: ``pairs`` yields ``((view1, view2), index)`` (a dataset
    whose transform is :class:`~brcd_lib.data.transforms.TwoViews` of the training transform)."""

    kind = "cpu"

    def __init__(self, pairs, *, num_workers: int = 0, pin_memory: bool = False):
        self.pairs, self.num_workers, self.pin_memory = pairs, int(num_workers), bool(pin_memory)

    def __len__(self) -> int:
        return len(self.pairs)

    def draw(self, *, seed: int, epoch: int, batches: Sequence[Sequence[int]],
             device: str = "cpu") -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]]:
        """``((view1, view2), index)`` of each batch of indices, on ``device``."""
        pin = self.pin_memory and str(device).startswith("cuda")
        loader = DataLoader(SeededEpoch(self.pairs, seed=seed, epoch=epoch),
                            batch_sampler=[list(map(int, b)) for b in batches],
                            num_workers=self.num_workers, pin_memory=pin)
        for (x1, x2), idx in loader:
            yield (x1.to(device, non_blocking=pin), x2.to(device, non_blocking=pin)), idx


class _EpochParams(Dataset):
    """Item ``i``: (uint8 image, (2, 17) view parameters of epoch ``epoch``, i)."""

    def __init__(self, images: torch.Tensor, recorder: ParamRecorder, *, seed: int, epoch: int):
        self.images, self.recorder, self.seed, self.epoch = images, recorder, seed, epoch

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int):
        image = self.images[i]
        params = self.recorder(epoch_seed(self.seed, self.epoch, i), image.shape[-2],
                               image.shape[-1], views=2, channels=3)
        return image, params, i


class DeviceViews:
    """Views applied to whole batches on the training device: each image's parameters are drawn
    on the CPU (in ``num_workers`` loader workers) exactly as the per-image transform draws them,
    then :func:`~brcd_lib.data.batched_views.apply_params` augments the uint8 batch."""

    kind = "device"

    def __init__(self, images: torch.Tensor, transform, *, num_workers: int = 0):
        if not supports(transform):
            raise ValueError(f"augment='device' supports the paper transform's steps only; "
                             f"{transform!r} is not: use augment='cpu'")
        self.images, self.transform = images, transform
        self.recorder = ParamRecorder(transform)
        self.num_workers = int(num_workers)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def draw(self, *, seed: int, epoch: int, batches: Sequence[Sequence[int]],
             device: str = "cpu") -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]]:
        loader = DataLoader(_EpochParams(self.images, self.recorder, seed=seed, epoch=epoch),
                            batch_sampler=[list(map(int, b)) for b in batches],
                            num_workers=self.num_workers,
                            pin_memory=str(device).startswith("cuda"))
        for images, params, idx in loader:
            images = images.to(device, non_blocking=True)
            params = params.to(device, non_blocking=True)
            yield (apply_params(images, params[:, 0], self.transform),
                   apply_params(images, params[:, 1], self.transform)), idx


def resolve_augment(augment: str, *, device: str, images, transform) -> str:
    """``"cpu"`` or ``"device"`` for ``TrainConfig.augment`` (see the module doc); a bad value or
    an impossible ``"device"`` raises ``ValueError`` naming the fix."""
    if augment not in AUGMENT_CHOICES:
        raise ValueError(f"TrainConfig.augment must be one of {', '.join(AUGMENT_CHOICES)}, "
                         f"got {augment!r}")
    possible = isinstance(images, torch.Tensor) and supports(transform)
    if augment == "auto":
        return "device" if possible and str(device).startswith("cuda") else "cpu"
    if augment == "device" and not possible:
        why = ("the training images are files, not an in-memory uint8 array"
               if not isinstance(images, torch.Tensor) else
               "its training transform has steps the batched views do not apply")
        raise ValueError(f"augment='device' cannot draw these views: {why}; use "
                         "augment='cpu' (or 'auto')")
    return augment


def make_views(dataset, transform, *, augment: str = "auto", device: str = "cpu",
               num_workers: int = 0, pin_memory: bool = False) -> CpuViews | DeviceViews:
    """The views of ``dataset`` (an ImageSet) under its training ``transform``."""
    images = getattr(dataset, "images", None)
    kind = resolve_augment(augment, device=device, images=images, transform=transform)
    if kind == "device":
        return DeviceViews(images, transform, num_workers=num_workers)
    return CpuViews(dataset.with_transform(TwoViews(transform)), num_workers=num_workers,
                    pin_memory=pin_memory)

"""Several processes (GPUs or CPU workers) under ``torchrun``: process group, sharding, gathering.

The kit trains hash heads on frozen backbones. What costs time is the backbones' forward passes
(augmented training images every step when ``TrainConfig.feature_views == 0``; the clean
evaluation sets once per backbone); the heads are small MLPs. The data-parallel scheme follows
from that:

* every rank draws the **same global permutation** of the training set for an epoch (seeded by
  (seed, epoch), exactly as one process does) and takes a **disjoint, contiguous share of each
  global batch** (``tensor_split`` of the batch into ``world_size`` parts: rank r gets part r);
* the rank computes the backbone features of its share only, then the features (and indices)
  are **all-gathered** into the global batch, in the order one process would have used;
* the head step (hashing objective + distiller) runs on that global batch on every rank, so a
  contrastive loss sees the same ``2B - 2`` negatives as on one device and the loss trajectory
  equals the one-process run with the same global batch (``tests/test_distributed.py``);
* gradients are averaged across ranks with one flat all-reduce after every backward
  (:func:`average_gradients`; the replicas hold identical gradients, the all-reduce keeps them in
  lock-step) and the trainable parameters are broadcast from rank 0 when training starts;
* only rank 0 writes checkpoints (:func:`brcd_lib.training.engine.save_checkpoint` is a no-op
  on the other ranks), followed by a barrier;
* the clean features of an evaluation set (the database) can be encoded with
  :func:`encode_sharded`: each rank encodes a contiguous shard and the shards are all-gathered.

``TrainConfig.batch_size`` stays the **global** batch, so a run on 4 GPUs optimises the same
objective as the paper's one-GPU run. With cached feature banks (``feature_views > 0``) the
multi-process run is numerically the one-process run; with online augmentation
(``feature_views == 0``) every rank draws its own augmentations, so the batches hold the same
images but different random views.

Use: ``torchrun --nproc_per_node=4 -m brcd_lib.train --profile paper --role teacher --bits 64``;
:func:`init_from_env` reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` / ``MASTER_ADDR`` /
``MASTER_PORT`` and picks ``nccl`` when CUDA is used, ``gloo`` otherwise.
:func:`brcd_lib.training.engine.fit` switches to this scheme by itself when a process group with
more than one rank is initialised.
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
import torch.distributed as tdist
from torch.utils.data import Subset

from .encode import compute_features
from .sources import PairBatch

__all__ = [
    "DistContext",
    "BACKENDS",
    "init_from_env",
    "current",
    "is_active",
    "is_main",
    "rank",
    "world_size",
    "barrier",
    "cleanup",
    "main_process_first",
    "shard_range",
    "all_gather_cat",
    "broadcast_tensors",
    "average_gradients",
    "ShardedPairSource",
    "encode_sharded",
]

BACKENDS: dict[str, str] = {
    "cuda": "nccl",  # GPUs
    "cpu": "gloo",   # CPU workers (and the tests)
}
"""Process-group backend per device type (``init_from_env(backend=...)`` overrides it)."""


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device  # where collective tensors must live (cuda:<local_rank> for nccl)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int | None = None) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer; "
                         "launch with torchrun, which sets RANK, WORLD_SIZE and LOCAL_RANK") from None


def init_from_env(*, device: str | None = None, backend: str | None = None,
                  timeout_s: float = 1800.0) -> DistContext | None:
    """Initialise the default process group from torchrun's environment variables.

    Returns None (and initialises nothing) for a single process (``WORLD_SIZE`` unset or 1).
    ``device``: "cuda" / "cuda:<i>" / "cpu" / None (= CUDA when available). On CUDA each process
    uses ``cuda:<LOCAL_RANK>``. ``backend``: default :data:`BACKENDS` of the device type.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world is None or world <= 1:
        return None
    rank_, local = _env_int("RANK"), _env_int("LOCAL_RANK", 0)
    if rank_ is None:
        raise ValueError("WORLD_SIZE is set but RANK is not; launch with torchrun "
                         "(torchrun --nproc_per_node=N -m brcd_lib.train ...)")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was requested but CUDA is not available; "
                               "pass --device cpu (gloo backend)")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if backend is None:
        try:
            backend = BACKENDS[dev.type]
        except KeyError:
            raise ValueError(f"no default process-group backend for device type {dev.type!r}; "
                             f"known: {', '.join(BACKENDS)}; pass backend=...") from None
    if not tdist.is_initialized():
        tdist.init_process_group(backend=backend, init_method="env://", rank=rank_,
                                 world_size=world,
                                 timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(rank=rank_, world_size=world, local_rank=local, backend=backend, device=dev)


def current() -> DistContext | None:
    """The context of the initialised process group, or None (not initialised, or one rank)."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return None
    world = tdist.get_world_size()
    if world <= 1:
        return None
    backend = str(tdist.get_backend())
    local = _env_int("LOCAL_RANK", 0) or 0
    if backend == "nccl":
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    return DistContext(rank=tdist.get_rank(), world_size=world, local_rank=local,
                       backend=backend, device=dev)


def is_active() -> bool:
    """True when a process group with more than one rank is initialised."""
    return current() is not None


def rank() -> int:
    ctx = current()
    return 0 if ctx is None else ctx.rank


def world_size() -> int:
    ctx = current()
    return 1 if ctx is None else ctx.world_size


def is_main() -> bool:
    """True on rank 0, and in a single process."""
    return rank() == 0


def barrier(ctx: DistContext | None = None) -> None:
    ctx = ctx or current()
    if ctx is not None:
        if ctx.backend == "nccl":
            tdist.barrier(device_ids=[ctx.device.index])
        else:
            tdist.barrier()


def cleanup() -> None:
    """Destroy the default process group if one is initialised."""
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


@contextlib.contextmanager
def main_process_first(ctx: DistContext | None = None) -> Iterator[None]:
    """Rank 0 runs the block first (downloads, cache building); the others run it afterwards and
    find the caches. A no-op in a single process."""
    ctx = ctx or current()
    if ctx is not None and not ctx.is_main:
        barrier(ctx)
    yield
    if ctx is not None and ctx.is_main:
        barrier(ctx)


# ----------------------------------------------------------------------------------------------
# sharding and collectives
# ----------------------------------------------------------------------------------------------
def shard_range(n: int, rank_: int, world: int) -> range:
    """Contiguous share of ``range(n)`` for ``rank_`` of ``world`` (sizes differ by at most one,
    the first ``n % world`` ranks get one more: the split of ``torch.tensor_split``)."""
    if world < 1 or not 0 <= rank_ < world:
        raise ValueError(f"rank {rank_} is not in 0..{world - 1}")
    base, extra = divmod(int(n), world)
    start = rank_ * base + min(rank_, extra)
    return range(start, start + base + (rank_ < extra))


def all_gather_cat(t: torch.Tensor, ctx: DistContext | None = None) -> torch.Tensor:
    """Concatenate every rank's ``t`` along dim 0, in rank order (shares may differ in size).

    The result lives on ``t``'s device; the collective runs on ``ctx.device``.
    """
    ctx = ctx or current()
    if ctx is None:
        return t
    home = t.device
    x = t.detach().to(ctx.device).contiguous()
    sizes = torch.tensor([x.shape[0]], device=ctx.device, dtype=torch.int64)
    all_sizes = [torch.zeros_like(sizes) for _ in range(ctx.world_size)]
    tdist.all_gather(all_sizes, sizes)
    counts = [int(s.item()) for s in all_sizes]
    longest = max(counts)
    if x.shape[0] < longest:
        pad = torch.zeros((longest - x.shape[0],) + tuple(x.shape[1:]), dtype=x.dtype,
                          device=x.device)
        x = torch.cat([x, pad])
    parts = [torch.empty_like(x) for _ in range(ctx.world_size)]
    tdist.all_gather(parts, x)
    return torch.cat([p[:c] for p, c in zip(parts, counts)]).to(home)


def broadcast_tensors(tensors: Iterable[torch.Tensor], ctx: DistContext | None = None, *,
                      src: int = 0) -> None:
    """Copy rank ``src``'s values of ``tensors`` (in place) to every rank."""
    ctx = ctx or current()
    if ctx is None:
        return
    with torch.no_grad():
        for t in tensors:
            buf = t.detach().to(ctx.device)
            tdist.broadcast(buf, src=src)
            if buf.data_ptr() != t.data_ptr():
                t.data.copy_(buf.to(t.device))


def average_gradients(params: Iterable[torch.Tensor], ctx: DistContext | None = None) -> None:
    """All-reduce (mean) the gradients of ``params`` in one flat buffer. Parameters without a
    gradient on this step take part with zeros, so every rank calls the same collective."""
    ctx = ctx or current()
    if ctx is None:
        return
    params = [p for p in params]
    if not params:
        return
    dtype = functools.reduce(torch.promote_types, (p.dtype for p in params))
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach()
                      .reshape(-1).to(ctx.device, dtype) for p in params])
    tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
    flat /= ctx.world_size
    offset = 0
    for p in params:
        n = p.numel()
        grad = flat[offset:offset + n].view_as(p).to(p.device, p.dtype)
        offset += n
        if p.grad is None:
            p.grad = grad.clone()
        else:
            p.grad.copy_(grad)


# ----------------------------------------------------------------------------------------------
# training inputs
# ----------------------------------------------------------------------------------------------
def _gather_opt(t: torch.Tensor | None, ctx: DistContext, dim: int = 0) -> torch.Tensor | None:
    if t is None:
        return None
    if dim == 0:
        return all_gather_cat(t, ctx)
    # rotation stacks (R, B, d): gather along the batch dimension
    return all_gather_cat(t.transpose(0, dim).contiguous(), ctx).transpose(0, dim).contiguous()


class ShardedPairSource:
    """Wraps a :class:`brcd_lib.training.sources.PairSource` for several ranks: each rank produces its
    share of every global batch (``source.epoch(..., shard=(rank, world_size))``), and the
    shares are all-gathered into the global batch in one-process order."""

    def __init__(self, source: Any, ctx: DistContext):
        self.source, self.ctx = source, ctx
        self.n = source.n

    def epoch(self, *, epoch: int, seed: int, batch_size: int):
        try:
            local = self.source.epoch(epoch=epoch, seed=seed, batch_size=batch_size,
                                      shard=(self.ctx.rank, self.ctx.world_size))
        except TypeError as exc:
            if "shard" not in str(exc):
                raise
            raise TypeError(
                f"{type(self.source).__name__}.epoch() takes no 'shard' argument, so it cannot "
                "be split across ranks; add 'shard: tuple[int, int] | None = None' to it (see "
                "sources.BankPairSource) or train in a single process") from None
        for pb in local:
            yield PairBatch(
                index=_gather_opt(pb.index, self.ctx),
                student=(_gather_opt(pb.student[0], self.ctx), _gather_opt(pb.student[1], self.ctx)),
                teacher=None if pb.teacher is None else
                (_gather_opt(pb.teacher[0], self.ctx), _gather_opt(pb.teacher[1], self.ctx)),
                student_rot=_gather_opt(pb.student_rot, self.ctx, dim=1),
                teacher_rot=_gather_opt(pb.teacher_rot, self.ctx, dim=1),
            )


def encode_sharded(fn, dataset, ctx: DistContext | None = None, *, batch_size: int = 256,
                   device: str = "cpu", num_workers: int = 0, progress: bool = False,
                   desc: str = "features") -> torch.Tensor:
    """``fn`` applied to every item of ``dataset`` (which yields ``(image, index)``), in dataset
    order: each rank encodes a contiguous shard (:func:`shard_range`), the shards are
    all-gathered. Use it for deterministic transforms only (clean evaluation sets): with random
    augmentations the result would depend on the number of ranks."""
    ctx = ctx or current()
    if ctx is None:
        return compute_features(fn, dataset, batch_size=batch_size, device=device,
                                num_workers=num_workers, desc=desc, progress=progress)
    part = shard_range(len(dataset), ctx.rank, ctx.world_size)
    local = compute_features(fn, Subset(dataset, list(part)), batch_size=batch_size,
                             device=device, num_workers=num_workers, desc=desc,
                             progress=progress and ctx.is_main)
    if local.numel() == 0:  # an empty shard: gather needs the feature shape
        probe = compute_features(fn, Subset(dataset, [0]), batch_size=1, device=device)
        local = probe[:0]
    return all_gather_cat(local, ctx)

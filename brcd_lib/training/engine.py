"""Teacher and student training loops (heads on frozen backbones), validation in both search
paradigms, best checkpoint per paradigm, early stopping, resumable checkpoints.

The loops follow the released code (method.md section 5): validate every ``eval_every`` epochs,
keep the best checkpoint (per paradigm for the student), stop when neither paradigm improved for
``patience`` validations. One step:

    student logits of two views -> hashing objective (CIBHash by default) -> + distiller(batch)

Training inputs come from a :class:`~brcd_lib.training.sources.PairSource`: either a cached bank
of augmented views' backbone features (fast; ``TrainConfig.feature_views > 0``) or augmented images
pushed through the backbones on every step (``feature_views = 0``). Both give the heads the same
kind of input.
"""
from __future__ import annotations

import copy
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from .progress import tqdm

from ..distill.base import DistillBatch, DistillContext, Distiller
from ..io import atomic_save
from ..models.hash_layers import sign_pm1
from . import distributed, together
from .sources import PairBatch, PairSource

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the run, epoch and step."""


# --------------------------------------------------------------------------------------------
# Codes
# --------------------------------------------------------------------------------------------
@torch.inference_mode()
def codes_from_features(net, feats: torch.Tensor, *, batch_size: int = 4096) -> torch.Tensor:
    """+-1 float codes of the head on precomputed backbone features (sign(0) = +1)."""
    was_training = net.training
    net.eval()
    out = [sign_pm1(net.head_forward(f).float()) for f in feats.split(batch_size)]
    net.train(was_training)
    return torch.cat(out)


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------
def save_checkpoint(path: str, **state: Any) -> None:
    """A checkpoint of plain tensors/containers (loadable with ``torch.load(weights_only=True)``),
    written atomically. Under an initialised process group only rank 0 writes (call it on every
    rank; it returns at once on the others)."""
    if not distributed.is_main():
        return
    atomic_save(state, path)


def load_checkpoint(path: str) -> dict:
    """Load a kit checkpoint; a missing, truncated or foreign file raises a clear error."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist; train the run first (its "
                                "result.json without best*.pt means the cache folder was edited: "
                                "delete the run folder to retrain)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(f"checkpoint {path} is truncated or not a brcd-kit checkpoint ({exc}); "
                           "delete it to retrain, or pass the right file") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(f"{path} is not a brcd-kit checkpoint (no format tag "
                           f"{CHECKPOINT_FORMAT!r}); delete it to retrain")
    return state


CHECKPOINT_FORMAT = "brcd-kit/1"


def head_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the trainable part of a hashing network's state (everything but the backbone)."""
    return {k: v.detach().clone() for k, v in net.state_dict().items() if not k.startswith("backbone.")}


def load_head_state(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a :func:`head_state` into ``net`` (in place); a state that does not fit raises."""
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("backbone.")]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint does not fit this network: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
@dataclass
class LoopResult:
    best: dict[str, float]                     # paradigm -> best validation mAP
    best_epoch: dict[str, int]
    best_state: dict[str, dict]                # paradigm -> head (+ distiller) state
    history: list[dict] = field(default_factory=list)
    epochs_run: int = 0
    stopped_early: bool = False


def fit(*, name: str, net: nn.Module, objective: nn.Module, source: PairSource, train_cfg,
        seed: int, validate: Callable[[], dict[str, float]],
        teacher: nn.Module | None = None, distiller: Distiller | None = None,
        distill_weight: float = 1.0, checkpoint_path: str | None = None, resume: bool = True,
        progress: bool = True, dist: "distributed.DistContext | None" = None) -> LoopResult:
    """Train ``net``'s head (and ``distiller``'s parameters) with ``objective`` (+ distillation).

    ``validate()`` returns {paradigm: mAP}; it is called every ``eval_every`` epochs and after
    the last epoch. Early stopping when no paradigm improved for ``patience`` validations.
    Resumes from ``checkpoint_path`` when it exists and ``resume`` is true.

    Several ranks: ``dist`` (default: :func:`brcd_lib.training.distributed.current`, i.e. automatic when a
    process group of more than one rank is initialised) shards every global batch of
    ``train_cfg.batch_size`` across the ranks, gathers the features, averages the gradients and
    lets rank 0 alone write the checkpoint (see :mod:`brcd_lib.training.distributed`). Every rank must call
    ``fit`` with the same arguments.
    """
    torch.manual_seed(seed)
    params = [p for p in net.parameters() if p.requires_grad]
    if distiller is not None:
        params += [p for p in distiller.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{name}: nothing to train (every parameter is frozen)")
    opt = torch.optim.Adam(params, lr=train_cfg.lr)
    start_epoch, best, best_epoch, best_state, history, bad = 0, {}, {}, {}, [], 0

    dist = dist if dist is not None else distributed.current()
    if resume and checkpoint_path and os.path.exists(checkpoint_path):
        ck = load_checkpoint(checkpoint_path)
        load_head_state(net, ck["head"])
        if distiller is not None and ck.get("distiller"):
            distiller.load_state_dict(ck["distiller"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, best, best_epoch = ck["epoch"], dict(ck["best"]), dict(ck["best_epoch"])
        best_state, history, bad = ck["best_state"], list(ck["history"]), ck["bad"]
        log.info("%s: resumed from %s at epoch %d", name, checkpoint_path, start_epoch)
        if ck.get("done"):
            return LoopResult(best, best_epoch, best_state, history, start_epoch, ck["stopped_early"])

    if dist is not None:
        distributed.broadcast_tensors(params, dist)  # identical replicas from the first step
        source = distributed.ShardedPairSource(source, dist)
        progress = progress and dist.is_main
    use_rot = distiller is not None and getattr(distiller, "needs_rotations", False)
    epochs, stopped = train_cfg.epochs, False
    bar = tqdm(range(start_epoch, epochs), desc=name, disable=not progress, leave=False,
               initial=start_epoch, total=epochs)
    epoch = start_epoch
    for epoch in bar:
        together.gate(epoch)  # runs trained together hand over here (a no-op for one run)
        net.train()
        if distiller is not None:
            distiller.train()
        losses = []
        for step, pb in enumerate(source.epoch(epoch=epoch, seed=seed, batch_size=train_cfg.batch_size)):
            loss = _step_loss(net, objective, pb, teacher, distiller, distill_weight, use_rot)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"{name}: loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}"
                    + (f" (distiller {distiller.name!r})" if distiller is not None else "")
                    + "; lower the learning rate or the distillation weight. "
                    + _last_good(checkpoint_path, train_cfg.eval_every))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if dist is not None:
                distributed.average_gradients(params, dist)
            opt.step()
            losses.append(loss.item())
        mean_loss = sum(losses) / max(len(losses), 1)
        last = epoch + 1 == epochs
        if (epoch + 1) % train_cfg.eval_every == 0 or last:
            scores = validate()
            improved = False
            for paradigm, value in scores.items():
                if value > best.get(paradigm, -math.inf):
                    best[paradigm], best_epoch[paradigm] = value, epoch + 1
                    best_state[paradigm] = {"head": head_state(net),
                                            "distiller": _cpu_state(distiller)}
                    improved = True
            bad = 0 if improved else bad + 1
            history.append({"epoch": epoch + 1, "loss": mean_loss, **{f"val_{k}": v for k, v in scores.items()}})
            bar.set_postfix(loss=f"{mean_loss:.4f}", **{k[:4]: f"{v:.3f}" for k, v in scores.items()})
            # "exceeds" (the release) stops one validation later than "reaches" (TrainConfig)
            stopped = (bad > train_cfg.patience if getattr(train_cfg, "stop_when", "reaches") == "exceeds"
                       else bad >= train_cfg.patience)
            if checkpoint_path:
                save_checkpoint(checkpoint_path, format=CHECKPOINT_FORMAT, head=head_state(net),
                                distiller=_cpu_state(distiller), optimizer=opt.state_dict(),
                                epoch=epoch + 1, best=best, best_epoch=best_epoch,
                                best_state=best_state, history=history, bad=bad,
                                done=stopped or last, stopped_early=stopped)
                distributed.barrier(dist)
            if stopped:
                break
    return LoopResult(best, best_epoch, best_state, history, epoch + 1, stopped)


def _last_good(checkpoint_path: str | None, eval_every: int) -> str:
    """Where the last good state of a diverged run is (for its error message)."""
    if not checkpoint_path:
        return "The state was not checkpointed (no checkpoint_path)"
    if distributed.is_main() and not os.path.exists(checkpoint_path):
        return (f"No checkpoint was written yet (the first is written after epoch {eval_every} "
                f"to {checkpoint_path})")
    return f"The last good checkpoint is kept at {checkpoint_path}"


def _cpu_state(module: nn.Module | None) -> dict:
    """A detached CPU copy of a module's state_dict (nested containers kept as they are)."""
    return {} if module is None else _cpu_copy(dict(module.state_dict()))


def _cpu_copy(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


def _step_loss(net, objective, pb: PairBatch, teacher, distiller, distill_weight, use_rot):
    f1, f2 = pb.student
    s1, s2 = net.head_forward(f1), net.head_forward(f2)
    out = objective(s1, s2, f1, f2)
    loss = out.loss
    if distiller is None:
        return loss
    with torch.no_grad():
        t1, t2 = teacher.head_forward(pb.teacher[0]), teacher.head_forward(pb.teacher[1])
    s_rot = t_rot = None
    if use_rot:
        s_rot = _ste_codes(torch.stack([net.head_forward(f) for f in pb.student_rot]))
        with torch.no_grad():
            t_rot = sign_pm1(torch.stack([teacher.head_forward(f) for f in pb.teacher_rot]))
    batch = DistillBatch(student=out.codes1, student_other=out.codes2, teacher=sign_pm1(t1),
                         teacher_other=sign_pm1(t2), index=pb.index, student_logits=s1,
                         student_logits_other=s2, teacher_logits=t1, teacher_logits_other=t2,
                         student_rot=s_rot, teacher_rot=t_rot)
    return loss + distill_weight * distiller(batch)


def _ste_codes(x: torch.Tensor) -> torch.Tensor:
    """sign with a straight-through gradient (used for the rotated copies' codes)."""
    return x + (sign_pm1(x) - x).detach()


def restore(net: nn.Module, state: dict, distiller: Distiller | None = None) -> nn.Module:
    """Load a best-state dict (``{"head": ..., "distiller": ...}``) into a copy of ``net``."""
    net = copy.deepcopy(net)
    load_head_state(net, state["head"])
    if distiller is not None and state.get("distiller"):
        distiller.load_state_dict(state["distiller"])
    return net


def make_context(*, teacher_train_codes: torch.Tensor, seed: int, cache_dir: str | None,
                 cache_key: str, train_labels: torch.Tensor | None = None) -> DistillContext:
    """``train_labels`` (row i = training index i) only for distillers with ``reads_labels``."""
    return DistillContext(teacher_train_codes=teacher_train_codes,
                          n_train=teacher_train_codes.shape[0],
                          code_length=teacher_train_codes.shape[1], seed=seed,
                          cache_dir=cache_dir, cache_key=cache_key, train_labels=train_labels)

"""Hashing objectives: the registry, the output type and the shared base class.

An objective is an ``nn.Module`` whose ``forward(logits1, logits2, feats1=None, feats2=None)``
takes the head's logits of two augmented views (and, for objectives that need them, the backbone
features of the same views) and returns :class:`ObjectiveOutput` ``(loss, codes1, codes2)``;
``codes*`` are +-1 and carry the objective's straight-through gradient. ``encode(logits)`` gives
the evaluation codes (no gradient). After each forward, ``last_terms`` holds the loss components
as floats (for logging).

Registered: ``cibhash`` (cibhash.py), ``bihalf`` (bihalf.py), ``greedyhash`` (greedyhash.py).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry

OBJECTIVES: Registry = Registry("hashing objective")


class ObjectiveOutput(NamedTuple):
    """``loss``: scalar tensor; ``codes1`` / ``codes2``: (B, L) +-1 codes with gradient."""

    loss: torch.Tensor
    codes1: torch.Tensor
    codes2: torch.Tensor


def register_objective(name: str) -> Callable:
    """Class decorator registering a :class:`HashObjective` subclass under ``name``."""
    def deco(cls):
        cls.name = name
        return OBJECTIVES.register(name)(cls)

    return deco


def get_objective(name: str, **kwargs: Any) -> "HashObjective":
    """Build the objective ``name``; keyword arguments override its published defaults."""
    return OBJECTIVES.build(name, **kwargs)


def list_objectives() -> list[str]:
    """Registered objective names."""
    return OBJECTIVES.names()


class HashObjective(nn.Module):
    """Base class: subclasses implement ``forward`` and ``encode``."""

    name = "base"
    needs_features = False

    def __init__(self) -> None:
        super().__init__()
        self.last_terms: dict[str, float] = {}

    def encode(self, logits: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check(self, logits1: torch.Tensor, logits2: torch.Tensor, feats1: torch.Tensor | None,
               feats2: torch.Tensor | None) -> None:
        if logits1.dim() != 2 or logits1.shape != logits2.shape:
            raise ValueError(f"{self.name}: logits1 and logits2 must both be (B, L), got "
                             f"{tuple(logits1.shape)} and {tuple(logits2.shape)}")
        if logits1.shape[0] < 2:
            raise ValueError(f"{self.name}: needs a batch of at least 2 images, got {logits1.shape[0]}")
        if self.needs_features:
            if feats1 is None or feats2 is None:
                raise ValueError(f"{self.name} needs the backbone features of both views: pass "
                                 f"feats1= and feats2= (HashingNetwork.features(x))")
            for f in (feats1, feats2):
                if f.dim() != 2 or f.shape[0] != logits1.shape[0]:
                    raise ValueError(f"{self.name}: features must be (B, d) with B = "
                                     f"{logits1.shape[0]}, got {tuple(f.shape)}")


PAIRINGS = ("halves", "all")


def similarity_preservation(codes: torch.Tensor, feats: torch.Tensor, *, pairs: str) -> torch.Tensor:
    """Mean squared error between cosine similarities of codes and of features over image pairs.

    ``pairs="halves"`` (the released Bi-half / GreedyHash unsupervised code): pair row i of the
    first half of the batch with row i of the second half, ``n = B // 2`` pairs (an odd batch's
    last row is unused). ``pairs="all"``: every unordered pair i < j of the batch.
    """
    if pairs == "halves":
        n = codes.shape[0] // 2
        sim_b = F.cosine_similarity(codes[:n], codes[n:2 * n], dim=1)
        sim_x = F.cosine_similarity(feats[:n], feats[n:2 * n], dim=1)
        return F.mse_loss(sim_b, sim_x)
    if pairs == "all":
        b = F.normalize(codes, dim=1)
        x = F.normalize(feats, dim=1)
        iu = torch.triu_indices(len(codes), len(codes), offset=1, device=codes.device)
        return F.mse_loss((b @ b.T)[iu[0], iu[1]], (x @ x.T)[iu[0], iu[1]])
    raise ValueError(f"pairs must be one of {PAIRINGS}, got {pairs!r}")

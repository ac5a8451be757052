"""GreedyHash (Su et al., NeurIPS 2018), unsupervised variant of the authors' released
``unsupervised_vgg.py``.

Codes ``b = sign_ste(h)`` (forward sign, backward identity). Loss for one view:

    MSE(cos(b_i, b_j), cos(x_i, x_j)) over the B/2 pairs (first half, second half of the batch)
    + alpha * mean(| |h| - 1 |^3)                          (alpha = 0.1)

x = backbone features. The released code trains on one view; the kit computes the loss on each
of the two views and averages. Evaluation codes are ``sign(h)``. ``pairs="all"`` uses every
pair of the batch.
"""
from __future__ import annotations

import torch

from .hash_layers import sign_pm1, sign_ste
from .objectives import (PAIRINGS, HashObjective, ObjectiveOutput, register_objective,
                         similarity_preservation)


def greedy_penalty(logits: torch.Tensor, *, power: float = 3.0) -> torch.Tensor:
    """``mean(| |h| - 1 |^power)``: pulls the logits towards +-1."""
    return (logits.abs() - 1).abs().pow(power).mean()


@register_objective("greedyhash")
class GreedyHash(HashObjective):
    """Straight-through sign + similarity preservation + alpha * cubic penalty."""

    needs_features = True

    def __init__(self, *, alpha: float = 0.1, power: float = 3.0, pairs: str = "halves"):
        super().__init__()
        if pairs not in PAIRINGS:
            raise ValueError(f"pairs must be one of {PAIRINGS}, got {pairs!r}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.power = float(power)
        self.pairs = pairs

    def forward(self, logits1: torch.Tensor, logits2: torch.Tensor, feats1: torch.Tensor | None = None,
                feats2: torch.Tensor | None = None) -> ObjectiveOutput:
        """Average over the two views of the single-view GreedyHash loss."""
        self._check(logits1, logits2, feats1, feats2)
        b1, b2 = sign_ste(logits1), sign_ste(logits2)
        sim = (similarity_preservation(b1, feats1, pairs=self.pairs)
               + similarity_preservation(b2, feats2, pairs=self.pairs)) / 2
        penalty = (greedy_penalty(logits1, power=self.power)
                   + greedy_penalty(logits2, power=self.power)) / 2
        loss = sim + self.alpha * penalty
        self.last_terms = {"similarity": float(sim.detach()), "penalty": float(penalty.detach())}
        return ObjectiveOutput(loss, b1, b2)

    @torch.no_grad()
    def encode(self, logits: torch.Tensor) -> torch.Tensor:
        """Evaluation codes ``sign(h)`` (sign(0) = +1)."""
        return sign_pm1(logits)

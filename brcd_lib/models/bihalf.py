"""Bi-half (Li & van Gemert, AAAI 2021, "Deep Unsupervised Image Hashing by Maximizing Bit
Entropy"), following the authors' released unsupervised image code (``ImageHashing/Cifar10_I.py``).

Training codes come from the Bi-half layer (:func:`brcd_lib.models.hash_layers.bihalf`): per
bit, the half of the batch with the largest logits -> +1, the rest -> -1; backward
``g + gamma * (h - b) / numel(b)`` (gamma = 6). Evaluation codes are ``sign(h)``.

Loss (released code, one view): pair the first half of the batch with the second half and take
``MSE(cos(b_i, b_j), cos(x_i, x_j))`` over those B/2 pairs, x = backbone features. The released
code uses one (non-augmented) view per image; with the kit's two views the same loss is computed
on each view separately (the Bi-half assignment runs per view) and the two values are averaged.
``pairs="all"`` uses every pair of the batch instead of the B/2 disjoint ones.

Two views and gamma: the Bi-half layer adds ``gamma * (h - b) / numel(b)`` to whatever gradient
reaches it, independently of the loss scale. Averaging the two views halves each view's MSE
gradient but not that term, which would double its weight relative to the MSE (an effective
gamma of 12 against DeepHash-pytorch's 6). Each view's layer therefore gets ``gamma / 2``: every
view's gradient is exactly half of the one-view gradient with ``gamma``, so the ratio of the two
terms is DeepHash-pytorch's, and two identical views give exactly the one-view loss and gradient.
"""
from __future__ import annotations

import torch

from .hash_layers import bihalf, sign_pm1
from .objectives import (PAIRINGS, HashObjective, ObjectiveOutput, register_objective,
                         similarity_preservation)


@register_objective("bihalf")
class BiHalf(HashObjective):
    """Bi-half layer + similarity-preserving MSE between code and feature cosines."""

    needs_features = True

    def __init__(self, *, gamma: float = 6.0, pairs: str = "halves"):
        super().__init__()
        if pairs not in PAIRINGS:
            raise ValueError(f"pairs must be one of {PAIRINGS}, got {pairs!r}")
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.pairs = pairs

    def forward(self, logits1: torch.Tensor, logits2: torch.Tensor, feats1: torch.Tensor | None = None,
                feats2: torch.Tensor | None = None) -> ObjectiveOutput:
        """Average over the two views of the similarity-preservation loss of Bi-half codes."""
        self._check(logits1, logits2, feats1, feats2)
        # each view's loss enters with weight 1/2, so its Bi-half term does too (module docstring)
        b1, b2 = bihalf(logits1, gamma=self.gamma / 2), bihalf(logits2, gamma=self.gamma / 2)
        l1 = similarity_preservation(b1, feats1, pairs=self.pairs)
        l2 = similarity_preservation(b2, feats2, pairs=self.pairs)
        loss = (l1 + l2) / 2
        self.last_terms = {"similarity": float(loss.detach())}
        return ObjectiveOutput(loss, b1, b2)

    @torch.no_grad()
    def encode(self, logits: torch.Tensor) -> torch.Tensor:
        """Evaluation codes ``sign(h)`` (sign(0) = +1)."""
        return sign_pm1(logits)

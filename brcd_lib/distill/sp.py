"""SP, similarity-preserving KD (Tung & Mori, ICCV 2019), at the hash-code level.

``G = f f^T`` (B x B) for the student and the teacher codes, each row L2-normalised,
``loss = ||G_t - G_s||_F^2 / B^2`` (RepDistiller's ``Similarity``).

``variant="upstream"`` reproduces what the BRCD release computes instead: it passes the (B, L)
code matrices to a loss that iterates over *groups* of feature maps, so each sample's code is
taken as its own "batch" of L one-dimensional features. Per sample b the loss is then
``||N(t_b t_b^T) - N(s_b s_b^T)||_F^2 / L^2`` (N = row L2 normalisation of the L x L outer
product), summed (not averaged) over the batch. It is kept only for comparison.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .base import DistillBatch, Distiller
from .kd import check_inputs, student_teacher
from .registry import register_distiller


def sp_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Tung & Mori: row-normalised batch similarity matrices, squared Frobenius / B^2."""
    b = student.shape[0]
    g_s = F.normalize(student @ student.t(), dim=1)
    g_t = F.normalize(teacher @ teacher.t(), dim=1)
    return (g_t - g_s).pow(2).sum() / (b * b)


def sp_loss_upstream(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """The BRCD release's per-sample outer-product version (see the module docstring)."""
    l = student.shape[1]
    g_s = F.normalize(student.unsqueeze(2) * student.unsqueeze(1), dim=2)  # (B, L, L)
    g_t = F.normalize(teacher.unsqueeze(2) * teacher.unsqueeze(1), dim=2)
    return (g_t - g_s).pow(2).sum() / (l * l)


SP_VARIANTS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "paper": sp_loss,
    "upstream": sp_loss_upstream,
}


@register_distiller("sp")
class SPDistiller(Distiller):
    """Similarity-preserving KD.

    Args:
        variant: ``"paper"`` (default, Tung & Mori) or ``"upstream"`` (the BRCD release).
        inputs: ``"codes"`` (default) or ``"logits"``.
        weight: multiplier of the loss.
    """

    label = "SP"
    family = "relation"

    def __init__(self, *, variant: str = "paper", inputs: str = "codes", weight: float = 1.0):
        super().__init__()
        if variant not in SP_VARIANTS:
            raise ValueError(
                f"unknown SP variant {variant!r}; valid names: {', '.join(sorted(SP_VARIANTS))}"
            )
        self.variant = variant
        self.inputs = check_inputs(inputs)
        self.weight = float(weight)

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        s, t = student_teacher(batch, self.inputs)
        return self.weight * SP_VARIANTS[self.variant](s, t)

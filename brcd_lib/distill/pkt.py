"""PKT, probabilistic knowledge transfer (Passalis & Tefas, ECCV 2018), at the hash-code level.

Each row is L2-normalised; the cosine kernel is mapped to ``K = (cos + 1) / 2`` in [0, 1] and each
row of ``K`` is divided by its sum (conditional probabilities, diagonal included as in the
authors' code and RepDistiller's ``PKT``). The loss is the KL divergence of the teacher's
distribution from the student's, averaged over all B x B entries:
``mean_ij P_t[i, j] * log((P_t[i, j] + eps) / (P_s[i, j] + eps))``.
"""
from __future__ import annotations

import torch

from .base import DistillBatch, Distiller
from .kd import check_inputs, student_teacher
from .registry import register_distiller


def _conditional_probabilities(x: torch.Tensor, eps: float) -> torch.Tensor:
    x = x / (x.norm(dim=1, keepdim=True) + eps)
    sim = (x @ x.t() + 1.0) / 2.0
    return sim / sim.sum(dim=1, keepdim=True).clamp_min(eps)


def pkt_loss(student: torch.Tensor, teacher: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Passalis & Tefas' cosine-kernel KL divergence (mean over the B x B entries)."""
    p_s = _conditional_probabilities(student, eps)
    p_t = _conditional_probabilities(teacher, eps)
    return torch.mean(p_t * torch.log((p_t + eps) / (p_s + eps)))


@register_distiller("pkt")
class PKTDistiller(Distiller):
    """Probabilistic knowledge transfer.

    Args:
        eps: added to norms and inside the log (RepDistiller: 1e-7).
        inputs: ``"codes"`` (default) or ``"logits"``.
        weight: multiplier of the loss.
    """

    label = "PKT"
    family = "relation"

    def __init__(self, *, eps: float = 1e-7, inputs: str = "codes", weight: float = 1.0):
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be > 0; got {eps}.")
        self.eps = float(eps)
        self.inputs = check_inputs(inputs)
        self.weight = float(weight)

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        s, t = student_teacher(batch, self.inputs)
        return self.weight * pkt_loss(s, t, self.eps)

"""RKD, relational KD (Park et al., CVPR 2019), at the hash-code level.

Distance term: pairwise Euclidean distances, each matrix divided by the mean of its positive
entries, smooth-L1 (Huber, beta = 1) between student and teacher, averaged over the B x B pairs.
Angle term: for every triple (i, j, k) the cosine of the angle at vertex i,
``<e(x_j - x_i), e(x_k - x_i)>`` with ``e`` the unit vector (0 for a zero difference), smooth-L1
averaged over the B^3 triples. ``loss = distance_weight * L_d + angle_weight * L_a``
(paper / RepDistiller: 25 and 50).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import DistillBatch, Distiller
from .kd import check_inputs, student_teacher
from .registry import register_distiller


def pairwise_distances(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(B, B) Euclidean distances; squared distances below ``eps`` are clamped (no gradient) and
    the diagonal is 0."""
    sq = x.pow(2).sum(dim=1)
    d2 = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * (x @ x.t())).clamp(min=eps)
    d = d2.sqrt()
    return d * (1.0 - torch.eye(x.shape[0], dtype=x.dtype, device=x.device))


def _mean_normalised(d: torch.Tensor, eps: float) -> torch.Tensor:
    positive = d > 0
    if not bool(positive.any()):
        return d  # every item coincides: nothing to normalise (all zeros)
    return d / d[positive].mean().clamp_min(eps)


def angle_cosines(x: torch.Tensor) -> torch.Tensor:
    """(B, B, B): entry [i, j, k] = cosine of the angle at x_i between x_j and x_k."""
    diff = F.normalize(x.unsqueeze(0) - x.unsqueeze(1), p=2, dim=2)  # [i, j] = e(x_j - x_i)
    return torch.bmm(diff, diff.transpose(1, 2))


def rkd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    *,
    distance_weight: float,
    angle_weight: float,
    eps: float = 1e-12,
) -> torch.Tensor:
    with torch.no_grad():
        t_d = _mean_normalised(pairwise_distances(teacher, eps), eps)
        t_a = angle_cosines(teacher)
    s_d = _mean_normalised(pairwise_distances(student, eps), eps)
    loss_d = F.smooth_l1_loss(s_d, t_d)
    loss_a = F.smooth_l1_loss(angle_cosines(student), t_a)
    return distance_weight * loss_d + angle_weight * loss_a


@register_distiller("rkd")
class RKDDistiller(Distiller):
    """Relational KD (distance + angle).

    Args:
        distance_weight: weight of the distance term (paper: 25).
        angle_weight: weight of the angle term (paper: 50).
        inputs: ``"codes"`` (default) or ``"logits"``.
        weight: multiplier of the whole loss.
    """

    label = "RKD"
    family = "relation"

    def __init__(
        self,
        *,
        distance_weight: float = 25.0,
        angle_weight: float = 50.0,
        inputs: str = "codes",
        weight: float = 1.0,
    ):
        super().__init__()
        self.distance_weight = float(distance_weight)
        self.angle_weight = float(angle_weight)
        self.inputs = check_inputs(inputs)
        self.weight = float(weight)

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        s, t = student_teacher(batch, self.inputs)
        return self.weight * rkd_loss(
            s, t, distance_weight=self.distance_weight, angle_weight=self.angle_weight
        )

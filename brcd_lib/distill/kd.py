"""KD (Hinton et al., 2015) at the hash-code level, and the input selection every baseline uses.

KD: ``p_t = softmax(t / T)``, ``log p_s = log_softmax(s / T)`` over the L code dimensions,
``loss = T^2 * sum_b KL(p_t[b] || p_s[b]) / B`` (RepDistiller's ``DistillKL``; the BRCD release
applies it to the +-1 codes with T = 4).

``inputs`` (shared by the baselines): ``"codes"`` (default) uses the +-1 codes with the
straight-through gradient (``batch.student`` / ``batch.teacher``), as the BRCD release does;
``"logits"`` uses the heads' real-valued outputs (``batch.student_logits`` / ``teacher_logits``).
Teacher tensors are always detached.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import DistillBatch, Distiller
from .registry import register_distiller

# inputs name -> attribute names of (student, teacher) for view 1 and view 2.
INPUT_FIELDS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "codes": (("student", "teacher"), ("student_other", "teacher_other")),
    "logits": (
        ("student_logits", "teacher_logits"),
        ("student_logits_other", "teacher_logits_other"),
    ),
}


def check_inputs(inputs: str) -> str:
    """Validate an ``inputs`` name; raises ValueError listing the valid names."""
    if inputs not in INPUT_FIELDS:
        raise ValueError(f"unknown inputs {inputs!r}; valid names: {', '.join(sorted(INPUT_FIELDS))}")
    return inputs


def student_teacher(
    batch: DistillBatch, inputs: str, *, view: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """(student, teacher) tensors of one view for the given ``inputs``; the teacher is detached."""
    if view not in (1, 2):
        raise ValueError(f"view must be 1 or 2; got {view}.")
    s_name, t_name = INPUT_FIELDS[check_inputs(inputs)][view - 1]
    s, t = getattr(batch, s_name), getattr(batch, t_name)
    if s is None or t is None:
        raise ValueError(
            f"inputs={inputs!r} needs batch.{s_name} and batch.{t_name}, but "
            f"{s_name if s is None else t_name} is None; fill it in the training loop or use "
            f"inputs='codes'."
        )
    if s.dim() != 2 or s.shape != t.shape:
        raise ValueError(
            f"student and teacher must both be (B, L) with the same shape; got "
            f"{tuple(s.shape)} and {tuple(t.shape)}."
        )
    return s, t.detach()


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's KD between rows of ``student`` and ``teacher`` (softmax over the last dim)."""
    log_p_s = F.log_softmax(student / temperature, dim=1)
    p_t = F.softmax(teacher / temperature, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="sum") * temperature**2 / student.shape[0]


@register_distiller("kd")
class KDDistiller(Distiller):
    """Hinton KD over the L code dimensions.

    Args:
        temperature: softmax temperature T (paper: 4); the loss is scaled by T^2.
        inputs: ``"codes"`` (default, the BRCD release) or ``"logits"``.
        weight: multiplier of the loss.
    """

    label = "KD"
    family = "logit"

    def __init__(self, *, temperature: float = 4.0, inputs: str = "codes", weight: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}.")
        self.temperature = float(temperature)
        self.inputs = check_inputs(inputs)
        self.weight = float(weight)

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        s, t = student_teacher(batch, self.inputs)
        return self.weight * kd_loss(s, t, self.temperature)

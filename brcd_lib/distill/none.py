"""``none``: the student trained with its own hashing loss only (no distillation)."""
from __future__ import annotations

import torch

from .base import DistillBatch, Distiller
from .registry import register_distiller


@register_distiller("none")
class NoDistillation(Distiller):

    label = "Student (no KD)"
    family = "none"

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        return batch.student.new_zeros(())

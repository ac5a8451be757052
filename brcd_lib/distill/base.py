"""The call contract every distiller follows (BRCD, the eight KD baselines and ``none``).

The student training loop (``brcd_lib.training.engine``) builds one :class:`DistillBatch` per step and adds
``distiller(batch)`` to the student's own hashing loss. Before the first step it calls
``distiller.prepare(context)`` once with what the method may need from outside the batch (the
teacher's codes of the clean training images, the training-set size, the seed).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class DistillContext:
    """What a distiller may need before training starts.

    teacher_train_codes: (n_train, L) float tensor of +-1, the teacher's codes of the clean
        (non-augmented) training images, row i = dataset index i.
    n_train: number of training images (dataset indices are 0..n_train-1).
    code_length: L.
    seed: the run's seed (k-means, negative sampling).
    cache_dir: a folder where the distiller may cache artifacts (k-means), or None.
    cache_key: a string that identifies teacher checkpoint + split + code length; part of any
        cache key the distiller builds.
    train_labels: the training images' ground-truth labels, row i = dataset index i, as a
        (n_train, C) multi-hot 0/1 tensor (uint8 or bool) or (n_train,) integer class ids; ``None``
        (default) for unsupervised runs. Only a distiller whose ``reads_labels`` is True uses
        them (CRD, CRCD and PACKD with ``negatives="class"``, the released code's negatives).
    """

    teacher_train_codes: torch.Tensor
    n_train: int
    code_length: int
    seed: int = 0
    cache_dir: str | None = None
    cache_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    train_labels: torch.Tensor | None = None


@dataclass
class DistillBatch:
    """One training step's tensors. Codes are +-1 floats (student codes carry a straight-through
    gradient); logits are the heads' real-valued outputs before binarisation.

    student / student_other: (B, L) student codes of view 1 / view 2, with gradient.
    teacher / teacher_other: (B, L) teacher codes of view 1 / view 2, no gradient.
    student_logits / student_logits_other / teacher_logits / teacher_logits_other: (B, L).
    index: (B,) long, dataset indices of the batch's images.
    student_rot / teacher_rot: (R, B, L) codes of rotated copies of view 1 (rotation r * 90
        degrees, r = 0 is view 1 itself), only when the distiller sets ``needs_rotations``.
    """

    student: torch.Tensor
    student_other: torch.Tensor
    teacher: torch.Tensor
    teacher_other: torch.Tensor
    index: torch.Tensor
    student_logits: torch.Tensor | None = None
    student_logits_other: torch.Tensor | None = None
    teacher_logits: torch.Tensor | None = None
    teacher_logits_other: torch.Tensor | None = None
    student_rot: torch.Tensor | None = None
    teacher_rot: torch.Tensor | None = None


#: Families of distillers (``Distiller.family``): no distillation, logit matching, relation /
#: similarity matching, contrastive objectives with negatives, and the paper's own method.
FAMILIES: tuple[str, ...] = ("none", "logit", "relation", "contrastive", "ours")


class Distiller(nn.Module):
    """Base class. Subclasses set ``name`` and implement ``forward(batch) -> scalar tensor``.

    Trainable parameters of a distiller (CRD's embeddings, ...) are optimised together with the
    student's head. ``prepare`` is called once before training.

    Class attributes (metadata, set by every registered distiller):
        name: the registry name (set by ``register_distiller``).
        label: display name in tables and figures.
        family: one of :data:`FAMILIES`.
        needs_rotations: the training loop must fill ``batch.student_rot`` / ``teacher_rot``.
    Instance property ``reads_labels``: whether this configured instance reads the training
    set's ground-truth labels (``DistillContext.train_labels``), i.e. is *not* unsupervised.
    """

    name: str = "base"
    label: str = ""            # display name in tables (set by ``register_distiller``)
    family: str = ""           # none / logit / relation / contrastive / ours
    n_views: int = 2           # augmented views of each training image a step reads
    needs_rotations: bool = False  # True: the batch carries rotated copies (``n_rotations``)

    @property
    def rotations(self) -> int:
        """How many rotated copies of view 1 a step needs (0 = none)."""
        return int(getattr(self, "n_rotations", 0)) if self.needs_rotations else 0

    @property
    def reads_labels(self) -> bool:
        """True when this instance uses class labels; False for every unsupervised setting."""
        return False

    def prepare(self, context: DistillContext) -> None:  # noqa: D401 - hook
        """Called once before the first step; the default needs nothing."""

    def forward(self, batch: DistillBatch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

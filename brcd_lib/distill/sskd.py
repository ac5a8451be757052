"""SSKD, knowledge distillation meets self-supervision (Xu et al., ECCV 2020), at the code level.

SSKD transfers the teacher's answers to a self-supervised pretext task. Each image comes in
``n_rotations`` = 4 copies (0, 90, 180, 270 degrees; ``batch.student_rot`` / ``teacher_rot``,
shape (R, B, L), copy 0 = view 1). For every rotated copy (the (R - 1) B rows, ordered image by
image) the pretext "prediction" is its cosine similarity to each of the B unrotated codes
(a ((R - 1) B) x B matrix); the right answer for a copy of image b is column b. The loss is

    T^2 * KL(softmax(S_t / T) || softmax(S_s / T))   averaged over the kept rows   (T = 0.5)

Error-level ranking as in SSKD: a row is *wrong* when the teacher ranks some other column strictly
above the right one (ties with the right column count as right; +-1 codes tie often); every right
row is kept and, of the wrong rows, the ``keep_wrong_ratio`` share with the smallest rank of the
right column. The BRCD release keeps all wrong rows (1.0, the default here); SSKD's own default is
0.75.

Ties are decided exactly: for +-1 teacher codes (all of the same norm) the ranking compares the
integer dot products ``<rotated, unrotated>`` (computed in float64 and rounded: exact integers),
so that two columns with the same cosine always tie, whatever the CPU, BLAS or precision (float32
cosines of equal value can differ in their last bit, and a plain ``>`` on them flipped the kept
rows on some machines, issue #11). Other teacher inputs (real-valued rows) are ranked by cosine
with a tolerance of 1e-6.

What is kept from SSKD: only this self-supervision term (SSKD's ``loss4``). The classifier terms
(cross-entropy, KD on the class outputs of the normal and rotated images) have no counterpart at
the code level, and the teacher's pretext projection head is replaced by the codes themselves, as
in the BRCD release. The student's own hashing loss is added by the training loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import DistillBatch, Distiller
from .registry import register_distiller


def rotation_similarities(codes: torch.Tensor) -> torch.Tensor:
    """codes (R, B, L) -> (((R - 1) B), B) cosines of rotated copies (rows, image-major) to the
    unrotated codes (columns)."""
    r, b, l = codes.shape
    normal = F.normalize(codes[0], dim=1)
    rotated = F.normalize(codes[1:].transpose(0, 1).reshape(b * (r - 1), l), dim=1)
    return rotated @ normal.t()


def rotation_rank_scores(codes: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(scores, tol) to rank the columns of :func:`rotation_similarities` by: for +-1 codes the
    exact integer dot products (same order as the cosines, all norms being equal) with tolerance
    0.5 (distinct values differ by at least 2); otherwise the cosines themselves and ``1e-6``."""
    r, b, l = codes.shape
    if bool((codes.abs() == 1).all()):
        rotated = codes[1:].transpose(0, 1).reshape(b * (r - 1), l)
        return (rotated.double() @ codes[0].double().t()).round(), 0.5
    return rotation_similarities(codes), 1e-6


def kept_rows(teacher_sim: torch.Tensor, n_copies: int, keep_wrong_ratio: float,
              tol: float = 0.0) -> torch.Tensor:
    """Indices (sorted) of the rows SSKD's error-level ranking keeps. A column counts as ranked
    above the right one when its score exceeds the right column's by more than ``tol``."""
    rows, b = teacher_sim.shape
    target = torch.arange(b, device=teacher_sim.device).repeat_interleave(n_copies)
    right_value = teacher_sim.gather(1, target.unsqueeze(1))
    rank = (teacher_sim > right_value + tol).sum(dim=1)  # 0 = the right column is (one of) the best
    order = torch.sort(rank, stable=True).indices
    n_wrong = int((rank > 0).sum())
    n_keep = rows - n_wrong + int(n_wrong * keep_wrong_ratio)
    return torch.sort(order[:n_keep]).values


@register_distiller("sskd")
class SSKDDistiller(Distiller):
    """Self-supervision (rotation) KD term of SSKD.

    Args:
        n_rotations: number of rotated copies including the unrotated one (paper: 4).
        temperature: softmax temperature of the similarity rows (SSKD: 0.5); loss scaled by T^2.
        keep_wrong_ratio: share of wrongly answered rows kept (BRCD release: 1.0; SSKD: 0.75).
        weight: multiplier of the loss (BRCD release: 1; SSKD's ``ss_weight``: 10).
    """

    label = "SSKD"
    family = "relation"  # transfers the teacher's similarity rows of rotated copies
    needs_rotations = True

    def __init__(
        self,
        *,
        n_rotations: int = 4,
        temperature: float = 0.5,
        keep_wrong_ratio: float = 1.0,
        weight: float = 1.0,
    ):
        super().__init__()
        if n_rotations < 2:
            raise ValueError(f"n_rotations must be >= 2 (the unrotated copy plus others); got {n_rotations}.")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0; got {temperature}.")
        if not 0.0 <= keep_wrong_ratio <= 1.0:
            raise ValueError(f"keep_wrong_ratio must lie in [0, 1]; got {keep_wrong_ratio}.")
        self.n_rotations = int(n_rotations)
        self.temperature = float(temperature)
        self.keep_wrong_ratio = float(keep_wrong_ratio)
        self.weight = float(weight)

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        s_rot, t_rot = batch.student_rot, batch.teacher_rot
        if s_rot is None or t_rot is None:
            raise ValueError(
                "sskd needs batch.student_rot and batch.teacher_rot (R, B, L): the training loop "
                "must encode the rotated copies when distiller.needs_rotations is True."
            )
        expected = (self.n_rotations,) + tuple(batch.student.shape)
        if tuple(s_rot.shape) != expected or tuple(t_rot.shape) != expected:
            raise ValueError(
                f"student_rot / teacher_rot must have shape {expected} (n_rotations, B, L); got "
                f"{tuple(s_rot.shape)} and {tuple(t_rot.shape)}."
            )
        t_rot = t_rot.detach()
        s_sim = rotation_similarities(s_rot)
        with torch.no_grad():
            t_sim = rotation_similarities(t_rot)
            scores, tol = rotation_rank_scores(t_rot)
            keep = kept_rows(scores, self.n_rotations - 1, self.keep_wrong_ratio, tol)
        if keep.numel() == 0:
            return s_sim.sum() * 0.0
        log_p_s = F.log_softmax(s_sim[keep] / self.temperature, dim=1)
        p_t = F.softmax(t_sim[keep] / self.temperature, dim=1)
        kl = F.kl_div(log_p_s, p_t, reduction="batchmean")
        return self.weight * kl * self.temperature**2

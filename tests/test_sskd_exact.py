"""Exact-value tests of ``brcd_lib/distill/sskd.py`` (mutation-testing survivors of
`make mutation`): the rank scores and their tolerance, the kept rows (ties, the default tolerance,
the stable choice of wrong rows, the device), the ``sskd`` loss on hand-made codes, the empty and
one-row cases, the tolerance of real-valued teachers, no implicit-dimension softmax warnings, and
the error messages in full.

Expected values are literals worked by hand in comments, or come from the plain float64 NumPy
reference below with the kept rows given by hand; never from brcd_lib.
"""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch

from brcd_lib.distill.base import DistillBatch
from brcd_lib.distill.sskd import SSKDDistiller, kept_rows, rotation_rank_scores

torch.set_num_threads(1)


def _full(msg: str) -> str:
    """A regex that matches exactly ``msg``."""
    return "^" + re.escape(msg) + "$"


def _batch(s_rot, t_rot, *, requires_grad=False):
    s_rot = torch.tensor(s_rot, dtype=torch.float32, requires_grad=requires_grad)
    t_rot = torch.tensor(t_rot, dtype=torch.float32)
    z = torch.zeros(s_rot.shape[1:])
    return DistillBatch(student=z, student_other=z, teacher=z, teacher_other=z,
                        index=torch.arange(z.shape[0]), student_rot=s_rot, teacher_rot=t_rot)


def _ref_loss(s_rot, t_rot, keep, temperature, weight=1.0):
    """SSKD's term from the module docstring, in float64: cosines of rotated copies (rows, image
    by image) to the unrotated codes, T^2 KL(softmax(t / T) || softmax(s / T)) averaged over the
    given kept rows."""
    def sims(codes):
        c = np.asarray(codes, dtype=np.float64)
        r, b, l = c.shape
        normal = c[0] / np.linalg.norm(c[0], axis=1, keepdims=True)
        rot = np.concatenate([c[1:, i] for i in range(b)])  # image-major
        rot = rot / np.linalg.norm(rot, axis=1, keepdims=True)
        return rot @ normal.T

    def log_softmax(x):
        m = x.max(axis=1, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))

    s, t = sims(s_rot)[keep] / temperature, sims(t_rot)[keep] / temperature
    log_q, log_p = log_softmax(s), log_softmax(t)
    kl = (np.exp(log_p) * (log_p - log_q)).sum() / len(keep)
    return weight * kl * temperature**2


# Hand-made +-1 codes, n_rotations = 2, B = 2, L = 2.
#   teacher unrotated: u0 = (1, 1), u1 = (1, -1); rotated copies: image 0 (1, 1), image 1 (1, 1)
#   teacher cosines: row 0 = (1, 0) right (column 0 is the best); row 1 = (1, 0) wrong (right
#   column 1 is beaten by column 0).
#   student unrotated (1, 0), (0, 1); rotated copies: image 0 (0, 1), image 1 (1, 0)
#   student cosines: row 0 = (0, 1), row 1 = (1, 0).
# At T = 0.5 a row with teacher logits (2, 0) and student logits (0, 2) has
#   KL = sum p_t (log p_t - log p_s) = 2 p_t0 - 2 p_t1 = 2 tanh(1); with equal logits KL = 0.
T_PM = [[[1, 1], [1, -1]], [[1, 1], [1, 1]]]
S_PM = [[[1, 0], [0, 1]], [[0, 1], [1, 0]]]


# ------------------------------------------------------------------ rotation_rank_scores


def test_rank_scores_of_pm1_codes_are_exact_integer_dot_products_with_tolerance_half():
    # R = 3, B = 2, L = 4; rows image-major: (img 0, copy 1), (img 0, copy 2), (img 1, copy 1),
    # (img 1, copy 2); columns the unrotated codes u0 = (1, 1, 1, 1), u1 = (1, -1, 1, -1)
    codes = torch.tensor([
        [[1, 1, 1, 1], [1, -1, 1, -1]],          # unrotated
        [[1, 1, 1, -1], [-1, -1, -1, -1]],       # copy 1 of image 0, image 1
        [[-1, -1, 1, 1], [1, -1, -1, -1]],       # copy 2 of image 0, image 1
    ], dtype=torch.float32)
    scores, tol = rotation_rank_scores(codes)
    assert tol == 0.5
    assert scores.dtype == torch.float64
    # (1,1,1,-1): <u0> = 2, <u1> = 1 - 1 + 1 + 1 = 2;  (-1,-1,1,1): 0, -1 + 1 + 1 - 1 = 0
    # (-1,-1,-1,-1): -4, 0;                             (1,-1,-1,-1): -2, 1 + 1 - 1 + 1 = 2
    assert scores.tolist() == [[2.0, 2.0], [0.0, 0.0], [-4.0, 0.0], [-2.0, 2.0]]


def test_rank_scores_of_real_codes_are_the_cosines_with_tolerance_1e6():
    # R = 2, B = 2, L = 2; unrotated (2, 0), (0, 0.5); rotated copies (3, 0), (-1, 0)
    codes = torch.tensor([[[2.0, 0.0], [0.0, 0.5]], [[3.0, 0.0], [-1.0, 0.0]]])
    scores, tol = rotation_rank_scores(codes)
    assert tol == 1e-6
    assert scores.dtype == torch.float32
    assert scores.tolist() == [[1.0, 0.0], [-1.0, 0.0]]


# ------------------------------------------------------------------ kept_rows

# b = 2 images, 2 copies each: rows 0, 1 belong to column 0, rows 2, 3 to column 1.
#   row 0 (0.5, 0.25): right, rank 0        row 2 (0.5, 0.5): a tie with the right one, rank 0
#   row 1 (0.25, 0.75): wrong by 0.5, rank 1  row 3 (0.75, 0.5): wrong by 0.25, rank 1
SIM4 = [[0.5, 0.25], [0.25, 0.75], [0.5, 0.5], [0.75, 0.5]]


@pytest.mark.parametrize("ratio, want", [(0.0, [0, 2]), (0.5, [0, 1, 2]), (1.0, [0, 1, 2, 3])])
def test_kept_rows_default_tolerance_is_zero_and_ties_count_as_right(ratio, want):
    """Two rows are wrong (by less than 1), one ties: n_keep = 4 - 2 + int(2 * ratio); the wrong
    rows come in row order (stable sort of the ranks)."""
    got = kept_rows(torch.tensor(SIM4), 2, ratio)
    assert got.tolist() == want


def test_kept_rows_tolerance_counts_small_excesses_as_right():
    # tol = 0.3: row 3's excess 0.25 is within it, row 1's 0.5 is not
    got = kept_rows(torch.tensor(SIM4), 2, 0.0, 0.3)
    assert got.tolist() == [0, 2, 3]


def test_kept_rows_are_built_on_the_scores_device_not_the_default_one():
    """A default device (``torch.set_default_device``; here the meta device as a context) must not
    leak into the target columns: they are made on the scores' device."""
    with torch.device("meta"):
        got = kept_rows(torch.tensor(SIM4, device="cpu"), 2, 0.5)
    assert got.device.type == "cpu" and got.tolist() == [0, 1, 2]


# ------------------------------------------------------------------ SSKDDistiller.forward


@pytest.mark.parametrize("ratio, want", [
    (0.0, math.tanh(1.0) / 2),    # one kept row (row 0): 0.25 * 2 tanh(1) / 1
    (0.5, math.tanh(1.0) / 2),    # int(1 * 0.5) = 0 wrong rows kept
    (1.0, math.tanh(1.0) / 4),    # both rows: 0.25 * (2 tanh(1) + 0) / 2
])
def test_forward_on_pm1_codes(ratio, want):
    got = SSKDDistiller(n_rotations=2, keep_wrong_ratio=ratio)(_batch(S_PM, T_PM))
    assert abs(got.item() - want) < 1e-6
    assert abs(_ref_loss(S_PM, T_PM, [0] if ratio < 1 else [0, 1], 0.5) - want) < 1e-12


def test_forward_weight_and_temperature():
    # T = 1: logits (1, 0) vs (0, 1), KL = 1 * tanh(1 / 2); one kept row; times T^2 = 1, weight 3
    got = SSKDDistiller(n_rotations=2, temperature=1.0, keep_wrong_ratio=0.0, weight=3.0)(
        _batch(S_PM, T_PM))
    assert abs(got.item() - 3 * math.tanh(0.5)) < 1e-6


def test_forward_names_its_softmax_dimensions():
    """softmax / log_softmax without dim= pick dim 1 on these 2-D rows too, but warn (deprecated
    implicit dim): the loss must compute without any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = SSKDDistiller(n_rotations=2)(_batch(S_PM, T_PM))
    assert abs(got.item() - math.tanh(1.0) / 4) < 1e-6


def test_forward_with_no_kept_row_is_an_exact_zero_with_zero_gradient():
    # teacher rotated copies: image 0 (1, -1) -> cosines (0, 1), wrong; image 1 (1, 1) -> (1, 0),
    # wrong; keep_wrong_ratio 0 keeps nothing
    t_rot = [[[1, 1], [1, -1]], [[1, -1], [1, 1]]]
    batch = _batch(S_PM, t_rot, requires_grad=True)
    got = SSKDDistiller(n_rotations=2, keep_wrong_ratio=0.0)(batch)
    assert got.item() == 0.0
    got.backward()
    assert batch.student_rot.grad.tolist() == [[[0.0, 0.0], [0.0, 0.0]]] * 2


def test_forward_real_valued_teacher_ranks_by_cosine():
    """Teacher codes (2, 0), (0, 2) are not +-1: cosines rank. Copy of image 1 is (2, 0), cosines
    (1, 0): wrong by 1 (more than the 1e-6 tolerance), so keep_wrong_ratio 0 keeps only row 0."""
    t_rot = [[[2, 0], [0, 2]], [[2, 0], [2, 0]]]
    got = SSKDDistiller(n_rotations=2, keep_wrong_ratio=0.0)(_batch(S_PM, t_rot))
    assert abs(got.item() - math.tanh(1.0) / 2) < 1e-6


def test_forward_real_valued_teacher_uses_the_cosine_tolerance():
    """A column beating the right one by less than 1e-6 does not make a row wrong.

    Teacher unrotated u0 = (1, 2^-11), u1 = (1, 0); both rotated copies (1, 0). Row 0 (right
    column u0): cosines (1 / sqrt(1 + 2^-22), 1) = (1 - 1.19e-7, 1): u1 is ahead by ~1.2e-7,
    within the tolerance, so the row is right; row 1 (right column u1) is right. Both rows are
    kept even with keep_wrong_ratio 0 (a zero tolerance would drop row 0).
    Student unrotated (1, 0), (0, 1); rotated (0, 1), (1, 1): row 0 logits (0, 2) against about
    uniform teacher rows (KL ~ log(1 + e^2) - 1 - log 2), row 1 uniform (KL ~ 0).
    """
    d = 2.0 ** -11
    t_rot = [[[1, d], [1, 0]], [[1, 0], [1, 0]]]
    s_rot = [[[1, 0], [0, 1]], [[0, 1], [1, 1]]]
    got = SSKDDistiller(n_rotations=2, keep_wrong_ratio=0.0)(_batch(s_rot, t_rot))
    want = _ref_loss(s_rot, t_rot, [0, 1], 0.5)
    assert abs(want - 0.25 * (math.log(1 + math.e**2) - 1 - math.log(2)) / 2) < 1e-6
    assert abs(got.item() - want) < 1e-6


def test_forward_needs_the_rotated_codes():
    batch = _batch(S_PM, T_PM)
    batch.teacher_rot = None
    msg = ("sskd needs batch.student_rot and batch.teacher_rot (R, B, L): the training loop "
           "must encode the rotated copies when distiller.needs_rotations is True.")
    with pytest.raises(ValueError, match=_full(msg)):
        SSKDDistiller(n_rotations=2)(batch)


@pytest.mark.parametrize("s_shape, t_shape", [((3, 2, 2), (2, 2, 2)), ((2, 2, 2), (2, 2, 3))])
def test_forward_refuses_either_rotated_tensor_of_the_wrong_shape(s_shape, t_shape):
    z = torch.zeros(2, 2)
    batch = DistillBatch(student=z, student_other=z, teacher=z, teacher_other=z,
                         index=torch.arange(2), student_rot=torch.ones(s_shape),
                         teacher_rot=torch.ones(t_shape))
    msg = (f"student_rot / teacher_rot must have shape (2, 2, 2) (n_rotations, B, L); got "
           f"{s_shape} and {t_shape}.")
    with pytest.raises(ValueError, match=_full(msg)):
        SSKDDistiller(n_rotations=2)(batch)


def test_forward_with_no_kept_row_is_zero_even_when_the_student_similarities_are_not():
    # student copies all (1, 0): every student cosine is 1, so s_sim sums to 4 (2 x 2 ones); the
    # empty-keep loss must still be exactly 0, not a multiple of s_sim's sum.
    t_rot = [[[1, 1], [1, -1]], [[1, -1], [1, 1]]]  # both teacher rows wrong (see above)
    s_rot = [[[1, 0], [1, 0]], [[1, 0], [1, 0]]]
    got = SSKDDistiller(n_rotations=2, keep_wrong_ratio=0.0)(_batch(s_rot, t_rot))
    assert got.item() == 0.0

"""Exact-value tests of ``brcd_logits`` and its argument checks (``_check_loss_inputs``) in
``brcd_lib/distill/brcd.py``: the defaults (tau 0.3, alpha 0.8), the dtype every input is cast to
(the student's, float32 for an integer student), a 0-dim alpha tensor, one-bit codes, and every
error message in full.

Expected values are worked by hand in the comments (cosines of +-1 / one-hot vectors are exact,
and tau 0.5 divides exactly); never read back from brcd_lib.
"""
from __future__ import annotations

import math
import re

import pytest
import torch

import brcd_lib.distill.brcd as brcd_mod

torch.set_num_threads(1)
INF = math.inf


def brcd_logits(*args, **kwargs):
    """The module's function, looked up at call time."""
    return brcd_mod.brcd_logits(*args, **kwargs)


def _full(msg: str) -> str:
    """A regex that matches exactly ``msg``."""
    return "^" + re.escape(msg) + "$"


E0, E1 = [1.0, 0.0], [0.0, 1.0]


def _codes(dtype=torch.float32):
    """B = 2, L = 2: student (e0, e1), teacher view 1 (e0, e0), teacher view 2 (e1, e1)."""
    s = torch.tensor([E0, E1], dtype=dtype)
    t1 = torch.tensor([E0, E0], dtype=dtype)
    t2 = torch.tensor([E1, E1], dtype=dtype)
    return s, t1, t2


# Hand-worked logits of _codes() with tau = 0.5 and alpha = 0.5, no mask, no clusters:
# u = (e0, e1, e1, e1); I = cos(s_k, t1_k) / tau = (2, 0); S = cos(u_k, u_{2+k}) / tau = (0, 2);
# positive = 0.5 I + 0.5 S = (1, 1) for rows 0..3. Negatives cos(u_r, u_q) / tau, -inf at q = r
# and at the partner q = (r + 2) % 4: row 0 (e0): q1 e1 -> 0, q3 e1 -> 0; row 1 (e1): q0 -> 0,
# q2 -> 2; row 2 (e1): q1 -> 2, q3 -> 2; row 3 (e1): q0 -> 0, q2 -> 2.
WANT_HALF = [[1.0, -INF, 0.0, -INF, 0.0],
             [1.0, 0.0, -INF, 2.0, -INF],
             [1.0, -INF, 2.0, -INF, 2.0],
             [1.0, 0.0, -INF, 2.0, -INF]]


def test_brcd_logits_hand_worked_half_alpha():
    s, t1, t2 = _codes()
    got = brcd_logits(s, t1, t2, temperature=0.5, alpha=0.5)
    assert got.dtype == torch.float32
    assert got.tolist() == WANT_HALF


def test_brcd_logits_defaults_are_tau_03_and_alpha_08():
    # B = 1: s = t1 = e0, t2 = e1. I = 1 / 0.3, S = 0; positive = 0.8 / 0.3 = 8 / 3 for both rows;
    # the only other column of each row is itself or its partner: -inf.
    s = torch.tensor([E0])
    got = brcd_logits(s, torch.tensor([E0]), torch.tensor([E1]))
    assert got.shape == (2, 3)
    assert got[:, 0].tolist() == pytest.approx([8 / 3, 8 / 3], rel=1e-6)
    assert got[:, 1:].tolist() == [[-INF, -INF], [-INF, -INF]]


def test_brcd_logits_integer_student_is_computed_in_float32():
    # an int64 student (and int64 teachers) are cast to float32, alpha 0.5 kept (not truncated to 0)
    s, t1, t2 = _codes(torch.int64)
    got = brcd_logits(s, t1, t2, temperature=0.5, alpha=0.5)
    assert got.dtype == torch.float32
    assert got.tolist() == WANT_HALF


@pytest.mark.parametrize("which", ["teacher", "teacher_other", "alpha", "mask"])
def test_brcd_logits_float64_inputs_are_cast_to_the_student_dtype(which):
    s, t1, t2 = _codes()
    kw = dict(temperature=0.5, alpha=0.5)
    if which == "teacher":
        t1 = t1.double()
    elif which == "teacher_other":
        t2 = t2.double()
    elif which == "alpha":
        kw["alpha"] = torch.tensor([0.5, 0.5], dtype=torch.float64)
    else:
        kw["mask"] = torch.ones(2, 2, dtype=torch.float64)
    got = brcd_logits(s, t1, t2, **kw)
    assert got.dtype == torch.float32
    assert got.tolist() == WANT_HALF


def test_brcd_logits_zero_dim_alpha_tensor_is_broadcast():
    s, t1, t2 = _codes()
    got = brcd_logits(s, t1, t2, temperature=0.5, alpha=torch.tensor(0.5))
    assert got.tolist() == WANT_HALF
    # alpha 1 (individual only) as a 0-dim tensor: positives (2, 0) for rows (0, 2) and (1, 3)
    got = brcd_logits(s, t1, t2, temperature=0.5, alpha=torch.tensor(1.0))
    assert got[:, 0].tolist() == [2.0, 0.0, 2.0, 0.0]


def test_brcd_logits_one_bit_codes():
    # L = 1 is a valid code length. s = (1, -1), t1 = (1, 1), t2 = (1, -1), tau 0.5, alpha 0.5:
    # I = (2, -2), u = (1, -1, 1, -1), S = (2, 2), positive = (2, 0); every negative cos is +-1.
    s = torch.tensor([[1.0], [-1.0]])
    got = brcd_logits(s, torch.tensor([[1.0], [1.0]]), torch.tensor([[1.0], [-1.0]]),
                      temperature=0.5, alpha=0.5)
    assert got.tolist() == [[2.0, -INF, -2.0, -INF, -2.0],
                            [0.0, -2.0, -INF, -2.0, -INF],
                            [2.0, -INF, -2.0, -INF, -2.0],
                            [0.0, -2.0, -INF, -2.0, -INF]]


# ------------------------------------------------------------------------------ error messages


def test_brcd_logits_alpha_errors():
    s, t1, t2 = _codes()
    with pytest.raises(ValueError, match=_full("alpha must be a float or a (B,) = (2,) tensor; "
                                               "got (3,)")):
        brcd_logits(s, t1, t2, alpha=torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match=_full("alpha must lie in [0, 1] (1 = individual term "
                                               "only, 0 = structural only)")):
        brcd_logits(s, t1, t2, alpha=1.5)


def test_brcd_logits_shape_mismatch_message():
    s, t1, t2 = _codes()
    with pytest.raises(ValueError, match=_full(
            "student, teacher and teacher_other must have the same (B, L) shape; got (2, 2), "
            "(2, 3), (2, 2)")):
        brcd_logits(s, torch.zeros(2, 3), t2)


@pytest.mark.parametrize("shape", [(0, 2), (2, 0), (0, 0)])
def test_brcd_logits_empty_batch_message(shape):
    z = torch.zeros(shape)
    with pytest.raises(ValueError, match=_full(f"the batch is empty: shape {shape}")):
        brcd_logits(z, z, z)


def test_brcd_logits_mask_messages():
    s, t1, t2 = _codes()
    head = ("mask must be None or a (B, L) = (2, 2) tensor (the mask row of each sample's cluster, "
            "masks[cluster]); got ")
    with pytest.raises(ValueError, match=_full(head + "torch.Size([2, 3])")):
        brcd_logits(s, t1, t2, mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match=_full(head + "<class 'list'>")):
        brcd_logits(s, t1, t2, mask=[[1.0, 1.0], [1.0, 1.0]])


def test_brcd_logits_cluster_messages():
    s, t1, t2 = _codes()
    ok = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=_full("pass both cluster and cluster_other "
                                               "(false-negative removal) or neither")):
        brcd_logits(s, t1, t2, cluster=ok)
    with pytest.raises(ValueError, match=_full(
            "cluster_other must hold integer cluster ids (e.g. a long tensor from k-means), got "
            "dtype torch.float32")):
        brcd_logits(s, t1, t2, cluster=ok, cluster_other=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=_full(
            "cluster must hold integer cluster ids (e.g. a long tensor from k-means), got "
            "dtype torch.bool")):
        brcd_logits(s, t1, t2, cluster=torch.tensor([True, False]), cluster_other=ok)
    with pytest.raises(ValueError, match=_full(
            "cluster and cluster_other must be (B,) = (2,); got (3,) and (2,)")):
        brcd_logits(s, t1, t2, cluster=torch.tensor([0, 1, 1]), cluster_other=ok)
    with pytest.raises(ValueError, match=_full(
            "cluster and cluster_other must be (B,) = (2,); got (2,) and (1,)")):
        brcd_logits(s, t1, t2, cluster=ok, cluster_other=torch.tensor([1]))

"""Exact checks of the KD helpers and the run-key dict conversion (mutation-testing survivors of
`make mutation`): messages in full, no implicit-dimension warnings, the dict path of to_dict."""
from __future__ import annotations

import re
import warnings

import pytest
import torch

from brcd_lib.config import to_dict
from brcd_lib.distill.base import DistillBatch
from brcd_lib.distill.kd import kd_loss, student_teacher


def _batch(**kw):
    z = torch.zeros(2, 3)
    base = dict(student=z, student_other=z, teacher=z, teacher_other=z, index=torch.arange(2))
    base.update(kw)
    return DistillBatch(**base)


def test_kd_loss_names_its_softmax_dimension():
    """softmax without dim= on a 2-D input picks dim 1 too, but warns (deprecated implicit dim):
    the loss must compute without any warning."""
    s, t = torch.tensor([[1.0, 2.0, 0.0]]), torch.tensor([[0.0, 1.0, 3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = kd_loss(s, t, 2.0)
    # by hand: T = 2, q = softmax(t / 2), p = softmax(s / 2), loss = T^2 * sum q (log q - log p)
    q, logp = torch.softmax(t / 2, 1), torch.log_softmax(s / 2, 1)
    want = 4.0 * (q * (q.log() - logp)).sum()
    assert torch.allclose(got, want, rtol=0, atol=1e-6)


def test_student_teacher_view_must_be_one_or_two():
    with pytest.raises(ValueError, match=r"^view must be 1 or 2; got 3\.$"):
        student_teacher(_batch(), "codes", view=3)


@pytest.mark.parametrize("missing, name", [("student_logits", "student_logits"),
                                           ("teacher_logits", "teacher_logits")])
def test_student_teacher_names_the_missing_tensor(missing, name):
    present = {"student_logits": torch.zeros(2, 3), "teacher_logits": torch.zeros(2, 3)}
    present[missing] = None
    message = (f"inputs='logits' needs batch.student_logits and batch.teacher_logits, but {name} "
               "is None; fill it in the training loop or use inputs='codes'.")
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        student_teacher(_batch(**present), "logits")


@pytest.mark.parametrize("s_shape, t_shape", [((2, 3), (2, 4)), ((2, 3, 1), (2, 3, 1))])
def test_student_teacher_needs_equal_two_dimensional_shapes(s_shape, t_shape):
    """A shape mismatch alone, or 3-D tensors of equal shape alone, is refused."""
    message = (f"student and teacher must both be (B, L) with the same shape; got {s_shape} and "
               f"{t_shape}.")
    batch = _batch(student=torch.zeros(s_shape), teacher=torch.zeros(t_shape))
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        student_teacher(batch, "codes")


def test_to_dict_of_a_plain_mapping_is_a_copy():
    src = {"bits": 32, "seed": 0}
    out = to_dict(src)
    assert out == {"bits": 32, "seed": 0} and out is not src

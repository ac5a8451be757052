"""One optimisation step on real data (sklearn's 8x8 digits) for every registered distiller.

Student: a Linear(64, L) head, trained; teacher: a frozen Linear(64, L). Codes are the
straight-through sign of the heads' outputs; two views are the pixels plus small Gaussian noise;
SSKD's rotated copies are ``torch.rot90`` of view 1's 8x8 images. The step's loss is
``distiller(batch)`` plus a cosine term between the two student views (so that ``none`` has a
gradient too). ``brcd`` is included automatically once it is registered.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import brcd_lib.distill.baselines  # noqa: F401  (registers the eight baselines)
from brcd_lib.distill import DistillBatch, DistillContext, get_distiller, list_distillers

torch.set_num_threads(1)

L, B, N_TRAIN, NOISE = 16, 16, 300, 0.05
NAMES = list_distillers()


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    images = load_digits().images[:N_TRAIN].astype(np.float32) / 16.0  # (n, 8, 8) in [0, 1]
    return torch.from_numpy(images)


def straight_through_sign(x: torch.Tensor) -> torch.Tensor:
    codes = torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))
    return x + (codes - x).detach()


def heads(seed: int) -> tuple[torch.nn.Linear, torch.nn.Linear]:
    torch.manual_seed(seed)
    student, teacher = torch.nn.Linear(64, L), torch.nn.Linear(64, L)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return student, teacher


def make_batch(images: torch.Tensor, student, teacher, index: torch.Tensor, rotations: bool) -> DistillBatch:
    g = torch.Generator().manual_seed(int(index[0]))
    clean = images[index]
    v1 = clean + NOISE * torch.randn(clean.shape, generator=g)
    v2 = clean + NOISE * torch.randn(clean.shape, generator=g)
    s_logits1, s_logits2 = student(v1.flatten(1)), student(v2.flatten(1))
    with torch.no_grad():
        t_logits1, t_logits2 = teacher(v1.flatten(1)), teacher(v2.flatten(1))
    batch = DistillBatch(
        student=straight_through_sign(s_logits1),
        student_other=straight_through_sign(s_logits2),
        teacher=straight_through_sign(t_logits1),
        teacher_other=straight_through_sign(t_logits2),
        index=index,
        student_logits=s_logits1,
        student_logits_other=s_logits2,
        teacher_logits=t_logits1,
        teacher_logits_other=t_logits2,
    )
    if rotations:
        rotated = torch.stack([torch.rot90(v1, k, dims=(1, 2)).flatten(1) for k in range(4)])  # (4, B, 64)
        batch.student_rot = straight_through_sign(student(rotated))
        with torch.no_grad():
            batch.teacher_rot = straight_through_sign(teacher(rotated))
    return batch


@pytest.mark.parametrize("name", NAMES)
def test_one_training_step(name, digits):
    student, teacher = heads(seed=0)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    with torch.no_grad():
        train_codes = straight_through_sign(teacher(digits.flatten(1)))
    distiller = get_distiller(name)
    distiller.prepare(
        DistillContext(teacher_train_codes=train_codes, n_train=N_TRAIN, code_length=L, seed=8888)
    )
    optimiser = torch.optim.Adam(list(student.parameters()) + list(distiller.parameters()), lr=1e-2)
    index = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(1))[:B]
    batch = make_batch(digits, student, teacher, index, distiller.needs_rotations)

    kd = distiller(batch)
    assert kd.dim() == 0 and torch.isfinite(kd)
    if name != "none":  # the distillation term alone moves the student head
        (grad,) = torch.autograd.grad(kd, student.weight, retain_graph=True)
        assert torch.isfinite(grad).all() and float(grad.abs().sum()) > 0
    cosine = 1.0 - torch.nn.functional.cosine_similarity(batch.student, batch.student_other).mean()
    optimiser.zero_grad()
    (kd + cosine).backward()
    optimiser.step()

    assert not torch.equal(student.weight, student_before["weight"])
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k
    assert all(p.grad is None for p in teacher.parameters())


def test_every_baseline_is_exercised():
    for name in ("kd", "sp", "pkt", "rkd", "crd", "sskd", "crcd", "packd", "none"):
        assert name in NAMES

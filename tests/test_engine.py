"""The training loop: learning, early stopping, resume, divergence, checkpoints."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from brcd_lib.training import engine, sources
from brcd_lib.config import TrainConfig
from brcd_lib.distill import get_distiller
from brcd_lib.models import get_objective
from fakes import TinyNet


def _bank(n=96, d=8, views=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, d, generator=g) * 3
    base = centers[torch.arange(n) % 4]
    return torch.stack([base + 0.3 * torch.randn(n, d, generator=g) for _ in range(views)])


def _fit(tmp_path, *, epochs=6, patience=10, resume=True, ckpt="last.pt", validate=None,
         distiller=None, teacher=None, seed=0, lr=1e-2, stop_when="reaches"):
    net = TinyNet()
    bank = _bank()
    source = sources.BankPairSource(student_bank=bank, teacher_bank=bank if teacher else None)
    cfg = TrainConfig(epochs=epochs, batch_size=32, lr=lr, eval_every=2, patience=patience,
                      stop_when=stop_when)
    calls = []

    def default_validate():
        calls.append(1)
        return {"symmetric": float(len(calls))}  # improves every time

    loop = engine.fit(name="t", net=net, objective=get_objective("cibhash"), source=source,
                      train_cfg=cfg, seed=seed, validate=validate or default_validate,
                      teacher=teacher, distiller=distiller,
                      checkpoint_path=str(tmp_path / ckpt) if ckpt else None, resume=resume,
                      progress=False)
    return net, loop


def test_fit_changes_head_and_keeps_best(tmp_path):
    net0 = TinyNet()
    net, loop = _fit(tmp_path)
    assert not torch.equal(net0.head.weight, net.head.weight)
    assert loop.best_epoch["symmetric"] == 6 and loop.epochs_run == 6
    assert [h["epoch"] for h in loop.history] == [2, 4, 6]


def test_early_stopping_after_patience(tmp_path):
    net, loop = _fit(tmp_path, epochs=20, patience=2, validate=lambda: {"symmetric": 0.5})
    # first validation improves (from -inf), the next two do not -> stop at epoch 6
    assert loop.stopped_early and loop.epochs_run == 6


@pytest.mark.parametrize("patience", [1, 2, 3])
@pytest.mark.parametrize("stop_when, extra", [("reaches", 0), ("exceeds", 1)])
def test_early_stopping_boundary(tmp_path, patience, stop_when, extra):
    """Patience p: "reaches" (kit) stops after exactly p non-improving validations, "exceeds"
    (the released code, ``bad_epochs > num_bad_epochs``) after p + 1."""
    net, loop = _fit(tmp_path, epochs=40, patience=patience, stop_when=stop_when,
                     validate=lambda: {"symmetric": 0.5})
    n_validations = 1 + patience + extra  # the first improves (from -inf), the rest do not
    assert loop.stopped_early
    assert [h["epoch"] for h in loop.history] == [2 * (i + 1) for i in range(n_validations)]
    assert loop.epochs_run == 2 * n_validations


def test_stop_when_is_a_schema_addition_and_is_checked():
    from brcd_lib.config import config_hash, hash_view

    assert "stop_when" not in hash_view(TrainConfig())  # cached runs keep their keys
    assert config_hash(TrainConfig(stop_when="exceeds")) != config_hash(TrainConfig())
    with pytest.raises(ValueError, match="stop_when"):
        TrainConfig(stop_when="never")


def test_resume_gives_identical_result(tmp_path):
    """An interrupted run (here: 4 of 6 epochs) resumed from its checkpoint ends with the same
    head as an uninterrupted run with the same seed."""
    full, _ = _fit(tmp_path, ckpt="full.pt")
    _fit(tmp_path, epochs=4, ckpt="part.pt")
    ck = engine.load_checkpoint(str(tmp_path / "part.pt"))
    ck["done"] = False  # it finished its 4-epoch budget; pretend it was killed
    engine.save_checkpoint(str(tmp_path / "part.pt"), **ck)
    resumed, loop = _fit(tmp_path, ckpt="part.pt")
    assert loop.epochs_run == 6
    torch.testing.assert_close(full.head.weight, resumed.head.weight, rtol=0, atol=0)


def test_checkpoint_loads_with_weights_only(tmp_path):
    _fit(tmp_path)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["format"] == engine.CHECKPOINT_FORMAT and "optimizer" in state


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="truncated or not a brcd-kit checkpoint"):
        engine.load_checkpoint(str(path))
    torch.save({"weights": torch.zeros(1)}, path)
    with pytest.raises(RuntimeError, match="not a brcd-kit checkpoint"):
        engine.load_checkpoint(str(path))


class _Exploding(nn.Module):
    name = "exploding"
    needs_rotations = False

    def forward(self, batch):
        return batch.student.sum() * float("nan")


def test_nan_loss_stops_with_step_and_method(tmp_path):
    teacher = TinyNet(seed=1)
    with pytest.raises(engine.TrainingDiverged, match=r"epoch 1, step 1.*'exploding'"):
        _fit(tmp_path, distiller=_Exploding(), teacher=teacher)


def test_distiller_step_leaves_teacher_untouched(tmp_path):
    teacher = TinyNet(seed=1)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    d = get_distiller("kd")
    _fit(tmp_path, distiller=d, teacher=teacher)
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k])


def test_bank_source_draws_two_different_views():
    bank = torch.arange(3 * 10, dtype=torch.float32).view(3, 10, 1)
    src = sources.BankPairSource(student_bank=bank)
    for pb in src.epoch(epoch=0, seed=0, batch_size=5):
        a, b = pb.student
        assert not torch.any(a == b)
        # the view index differs but the image is the same: values differ by multiples of 10
        assert torch.all((a - b) % 10 == 0)


def test_bank_source_needs_two_views():
    with pytest.raises(ValueError, match="at least 2 views"):
        sources.BankPairSource(student_bank=torch.zeros(1, 4, 2))

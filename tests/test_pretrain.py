"""SimCLR stand-in: caching, learning, batched augmentation."""
from __future__ import annotations

import json
import os

import pytest
import torch

import brcd_lib.models.pretrain as pretrain
from brcd_lib.models import BatchAugment, create_backbone, images_to_float, ssl_pretrain
from brcd_lib.models.pretrain import STUDENT_SSL, TEACHER_SSL

torch.set_num_threads(1)


def _images(n: int = 48, side: int = 8, seed: int = 0) -> torch.Tensor:
    """uint8 (n, 1, side, side): four bar/blob patterns with noise, so SimCLR has structure."""
    g = torch.Generator().manual_seed(seed)
    base = torch.zeros(4, side, side)
    base[0, :, side // 2] = 1
    base[1, side // 2, :] = 1
    base[2].fill_diagonal_(1)
    base[3, 2:-2, 2:-2] = 1
    x = base[torch.arange(n) % 4] * 200 + torch.rand(n, side, side, generator=g) * 55
    return x.clamp(0, 255).to(torch.uint8).unsqueeze(1)


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    return create_backbone("small_cnn_s", width=4, depth=2)


HP = dict(image_size=8, batch_size=16, lr=1e-2, temperature=0.5, device="cpu", progress=False)


def test_cache_hit_returns_identical_weights_without_training(tmp_path, monkeypatch):
    calls = []
    real = pretrain.train_simclr

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrain, "train_simclr", counting)
    images = _images()
    first = ssl_pretrain(_tiny(), images=images, epochs=2, seed=3, cache_dir=str(tmp_path), **HP)
    assert len(calls) == 1 and first.ssl_pretrain_info["cache_hit"] is False
    second = ssl_pretrain(_tiny(), images=images, epochs=2, seed=3, cache_dir=str(tmp_path), **HP)
    assert len(calls) == 1 and second.ssl_pretrain_info["cache_hit"] is True
    assert second.ssl_pretrain_info["key"] == first.ssl_pretrain_info["key"]
    s1, s2 = first.state_dict(), second.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not second.training
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []
    # anything that changes the result is a miss: seed, images, hyper-parameters, architecture
    ssl_pretrain(_tiny(), images=images, epochs=2, seed=4, cache_dir=str(tmp_path), **HP)
    ssl_pretrain(_tiny(), images=_images(seed=1), epochs=2, seed=3, cache_dir=str(tmp_path), **HP)
    ssl_pretrain(_tiny(), images=images, epochs=2, seed=3, cache_dir=str(tmp_path),
                 augment={"hflip_p": 0.0}, **HP)
    torch.manual_seed(0)
    other = create_backbone("small_cnn_s", width=4, depth=2, pool_grid=2)
    ssl_pretrain(other, images=images, epochs=2, seed=3, cache_dir=str(tmp_path), **HP)
    assert len(calls) == 5


@pytest.mark.parametrize("damage", ["truncate", "foreign_key"])
def test_damaged_cache_is_retrained_and_overwritten(tmp_path, damage, caplog):
    images = _images()
    first = ssl_pretrain(_tiny(), images=images, epochs=1, seed=3, cache_dir=str(tmp_path), **HP)
    path = first.ssl_pretrain_info["path"]
    if damage == "truncate":
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 3])
    else:
        blob = torch.load(path, weights_only=True)
        blob["key"] = "0" * 64
        torch.save(blob, path)
    with caplog.at_level("WARNING"):
        again = ssl_pretrain(_tiny(), images=images, epochs=1, seed=3, cache_dir=str(tmp_path), **HP)
    assert "SimCLR cache" in caplog.text and "retraining" in caplog.text
    assert again.ssl_pretrain_info["cache_hit"] is False
    s1, s2 = first.state_dict(), again.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)  # same inputs, same weights
    third = ssl_pretrain(_tiny(), images=images, epochs=1, seed=3, cache_dir=str(tmp_path), **HP)
    assert third.ssl_pretrain_info["cache_hit"] is True  # the file was repaired


def test_training_is_deterministic_and_changes_weights():
    images = _images()
    a = ssl_pretrain(_tiny(), images=images, epochs=1, seed=0, **HP)
    b = ssl_pretrain(_tiny(), images=images, epochs=1, seed=0, **HP)
    init = _tiny().state_dict()
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert any(not torch.equal(v, init[k]) for k, v in a.state_dict().items()
               if v.dtype.is_floating_point)


def test_a_frozen_backbone_is_trained_and_stays_frozen():
    """An Experiment pretrains the backbone of a HashingNetwork, which freezes it: every weight
    tensor must still learn (before the fix only the projection head and the BatchNorm statistics
    moved), and the network's flags come back as they were."""
    from brcd_lib.models import build_hashing_network

    images = _images()
    torch.manual_seed(0)
    net = build_hashing_network(role="student", backbone="small_cnn_s", code_length=8, width=4,
                                depth=2)
    init = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    assert not any(p.requires_grad for p in net.backbone.parameters())
    ssl_pretrain(net.backbone, images=images, epochs=1, seed=0, **HP)
    weights = [k for k, _ in net.backbone.named_parameters()]
    changed = [k for k in weights if not torch.equal(net.backbone.state_dict()[k], init[k])]
    assert changed == weights
    assert not any(p.requires_grad for p in net.backbone.parameters())
    # and the same weights as the pretraining of an unfrozen backbone of the same initialisation
    free = _tiny_like(init)
    ssl_pretrain(free, images=images, epochs=1, seed=0, **HP)
    for k, v in free.state_dict().items():
        assert torch.equal(v, net.backbone.state_dict()[k]), k


def _tiny_like(state):
    net = create_backbone("small_cnn_s", width=4, depth=2)
    net.load_state_dict(state)
    return net


def test_loss_decreases_over_a_few_epochs():
    model = ssl_pretrain(_tiny(), images=_images(64), epochs=8, seed=0, **HP)
    losses = model.ssl_pretrain_info["epoch_losses"]
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < losses[0] - 0.1


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="uint8"):
        ssl_pretrain(_tiny(), images=torch.rand(8, 1, 8, 8), epochs=1, seed=0, **HP)
    with pytest.raises(ValueError, match="batch_size"):
        ssl_pretrain(_tiny(), images=_images(), epochs=1, seed=0,
                     **{**HP, "batch_size": 1})
    with pytest.raises(ValueError, match="out_dim"):
        ssl_pretrain(torch.nn.Conv2d(3, 4, 3), images=_images(), epochs=1, seed=0, **HP)


def test_named_presets_are_valid_arguments(tmp_path):
    for preset in (TEACHER_SSL, STUDENT_SSL):
        kwargs = {**preset, "epochs": 1, "batch_size": 16}
        model = ssl_pretrain(_tiny(), images=_images(16), image_size=8, seed=0, device="cpu",
                             progress=False, **kwargs)
        assert model.ssl_pretrain_info["epoch_losses"]


# --------------------------------------------------------------------------------------------
# augmentation
# --------------------------------------------------------------------------------------------
def test_images_to_float_repeats_gray_and_resizes():
    x = images_to_float(torch.full((2, 1, 8, 8), 255, dtype=torch.uint8), 16)
    assert x.shape == (2, 3, 16, 16) and torch.allclose(x, torch.ones_like(x))
    with pytest.raises(ValueError, match="uint8"):
        images_to_float(torch.zeros(2, 2, 8, 8, dtype=torch.uint8), 8)


def _off(**kw):
    base = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip_p=0.0, jitter_p=0.0,
                grayscale_p=0.0, blur_p=0.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return BatchAugment(**{**base, **kw})


def test_augment_identity_flip_and_normalisation():
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    assert torch.allclose(_off()(x, g), x, atol=1e-5)
    assert torch.allclose(_off(hflip_p=1.0)(x, g), x.flip(-1), atol=1e-5)
    norm = _off(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))(x, g)
    assert torch.allclose(norm, (x - 0.5) / 0.25, atol=1e-4)
    gray = _off(grayscale_p=1.0)(x, g)
    expected = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert torch.allclose(gray[:, 1], expected, atol=1e-5)


def test_augment_is_random_per_image_and_reproducible():
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    aug = BatchAugment()
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.shape == x.shape and torch.isfinite(a).all()
    with pytest.raises(ValueError, match="probability"):
        BatchAugment(hflip_p=1.5)


# --------------------------------------------------------------------------------------------
# resumable training, learning-rate schedules, exported weight files
# --------------------------------------------------------------------------------------------
class _Killed(BaseException):
    """Stands in for SIGKILL: raised right after a checkpoint reached the disk."""


def _kill_after_checkpoints(monkeypatch, k: int) -> None:
    real = pretrain._atomic_torch_save
    written = []

    def save(obj, path):
        real(obj, path)
        if path.endswith(".ckpt"):
            written.append(obj["epoch"])
            if len(written) == k:
                raise _Killed

    monkeypatch.setattr(pretrain, "_atomic_torch_save", save)


@pytest.mark.parametrize("schedule,warmup,precision",
                         [("constant", 0, "fp32"), ("cosine", 1, "fp32"), ("cosine", 0, "bf16")])
def test_killed_run_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch, schedule, warmup,
                                                         precision):
    images = _images(40)
    kw = dict(epochs=4, seed=2, lr_schedule=schedule, warmup_epochs=warmup, precision=precision,
              **HP)
    whole = ssl_pretrain(_tiny(), images=images, cache_dir=str(tmp_path / "a"), **kw)
    with monkeypatch.context() as m:
        _kill_after_checkpoints(m, 2)
        with pytest.raises(_Killed):
            ssl_pretrain(_tiny(), images=images, cache_dir=str(tmp_path / "b"), **kw)
    ckpts = [f for f in os.listdir(tmp_path / "b") if f.endswith(".ckpt")]
    assert len(ckpts) == 1 and not [f for f in os.listdir(tmp_path / "b") if f.endswith(".pt")]
    assert torch.load(tmp_path / "b" / ckpts[0], weights_only=True)["epoch"] == 2
    resumed = ssl_pretrain(_tiny(), images=images, cache_dir=str(tmp_path / "b"), **kw)
    info = resumed.ssl_pretrain_info
    assert info["resumed_from"] == 2 and info["cache_hit"] is False
    assert info["epoch_losses"] == whole.ssl_pretrain_info["epoch_losses"]
    a, b = whole.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert os.listdir(tmp_path / "b") == [os.path.basename(info["path"])]  # checkpoint removed


def test_sigkill_mid_training_resumes_bit_identical(tmp_path):
    """A real ``kill -9`` of a training process after its first checkpoint."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = textwrap.dedent(f"""
        import time, torch
        torch.set_num_threads(1)
        import brcd_lib.models.pretrain as pretrain
        from brcd_lib.models import create_backbone, ssl_pretrain
        real = pretrain._atomic_torch_save
        def slow(obj, path):
            real(obj, path)
            time.sleep(0.5)  # leaves time to kill between epochs and during the next one
        pretrain._atomic_torch_save = slow
        torch.manual_seed(0)
        bb = create_backbone("small_cnn_s", width=4, depth=2)
        g = torch.Generator().manual_seed(0)
        images = (torch.rand(40, 1, 8, 8, generator=g) * 255).to(torch.uint8)
        ssl_pretrain(bb, images=images, epochs=6, seed=1, cache_dir={str(tmp_path)!r},
                     image_size=8, batch_size=16, lr=1e-2, temperature=0.5, progress=False,
                     lr_schedule="cosine")
    """)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any(f.endswith(".ckpt") for f in os.listdir(tmp_path)):
            assert proc.poll() is None, "the training process ended before its first checkpoint"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    ckpt = [f for f in os.listdir(tmp_path) if f.endswith(".ckpt")]
    assert len(ckpt) == 1 and not [f for f in os.listdir(tmp_path) if f.endswith(".pt")]
    done = torch.load(tmp_path / ckpt[0], weights_only=True)["epoch"]
    assert 1 <= done < 6

    def run(cache):
        torch.manual_seed(0)
        bb = create_backbone("small_cnn_s", width=4, depth=2)
        g = torch.Generator().manual_seed(0)
        images = (torch.rand(40, 1, 8, 8, generator=g) * 255).to(torch.uint8)
        return ssl_pretrain(bb, images=images, epochs=6, seed=1, cache_dir=cache, image_size=8,
                            batch_size=16, lr=1e-2, temperature=0.5, progress=False,
                            lr_schedule="cosine")

    resumed = run(str(tmp_path))
    assert resumed.ssl_pretrain_info["resumed_from"] == done
    whole = run(str(tmp_path / "fresh"))
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_foreign_checkpoint_is_ignored(tmp_path, caplog):
    images = _images()
    first = ssl_pretrain(_tiny(), images=images, epochs=1, seed=3, cache_dir=str(tmp_path), **HP)
    ckpt = first.ssl_pretrain_info["path"][:-3] + ".ckpt"
    os.remove(first.ssl_pretrain_info["path"])
    torch.save({"format": pretrain.CHECKPOINT_FORMAT, "key": "0" * 64, "epoch": 1}, ckpt)
    with caplog.at_level("WARNING"):
        again = ssl_pretrain(_tiny(), images=images, epochs=1, seed=3, cache_dir=str(tmp_path), **HP)
    assert "other inputs" in caplog.text and again.ssl_pretrain_info["resumed_from"] == 0
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in first.state_dict().items())


def test_cache_keys_of_default_recipes_are_unchanged():
    """lr_schedule / warmup_epochs enter the key only when not at their defaults, so the keys of
    pretraining caches written before they existed stay valid."""
    hp = dict(image_size=8, epochs=2, batch_size=16, lr=1e-2, temperature=0.5, seed=0,
              weight_decay=1e-6, proj_hidden=256, proj_dim=64, augment=BatchAugment())
    old_style = {**hp, "augment": BatchAugment().params()}
    assert pretrain.recipe_hparams(**hp) == old_style
    assert pretrain.recipe_hparams(**hp, lr_schedule="cosine")["lr_schedule"] == "cosine"
    assert pretrain.recipe_hparams(**hp, warmup_epochs=2)["warmup_epochs"] == 2
    assert pretrain.recipe_hparams(**hp, precision="bf16")["precision"] == "bf16"
    assert pretrain.recipe_hparams(**hp, precision="fp32") == old_style


def test_lr_schedules():
    f = lambda s, **kw: pretrain.lr_factor(s, total_steps=10, **kw)  # noqa: E731
    assert [f(s, warmup_steps=0, schedule="constant") for s in range(3)] == [1.0, 1.0, 1.0]
    assert [f(s, warmup_steps=2, schedule="constant") for s in range(3)] == [0.5, 1.0, 1.0]
    cos = [f(s, warmup_steps=0, schedule="cosine") for s in range(11)]
    assert cos[0] == 1.0 and abs(cos[5] - 0.5) < 1e-12 and abs(cos[10]) < 1e-12
    assert all(a >= b for a, b in zip(cos, cos[1:]))
    with pytest.raises(ValueError, match="lr_schedule"):
        ssl_pretrain(_tiny(), images=_images(), epochs=1, seed=0, lr_schedule="step", **HP)
    with pytest.raises(ValueError, match="precision"):
        ssl_pretrain(_tiny(), images=_images(), epochs=1, seed=0, precision="fp16", **HP)


def test_export_pretrained_writes_weights_and_sidecar(tmp_path):
    bb = ssl_pretrain(_tiny(), images=_images(), epochs=1, seed=0, cache_dir=str(tmp_path / "c"), **HP)
    path = str(tmp_path / "w" / "student.pt")
    data = {"dataset": "toy", "pool": "all 48 images", "n_images": 48}
    side = pretrain.export_pretrained(bb, path, data=data)
    state = torch.load(path, weights_only=True)
    assert set(state) == set(bb.state_dict())
    with open(pretrain.sidecar_path(path)) as f:
        on_disk = json.load(f)
    assert on_disk == json.loads(json.dumps(side, default=str))
    from brcd_lib.io import sha256_file

    assert on_disk["sha256"] == sha256_file(path) and on_disk["bytes"] == os.path.getsize(path)
    assert on_disk["backbone"] == {"name": "small_cnn_s", "kwargs": {"width": 4, "depth": 2}}
    assert on_disk["recipe"]["epochs"] == 1 and on_disk["recipe"]["seed"] == 0
    assert on_disk["cache_key"] == bb.ssl_pretrain_info["key"] and on_disk["data"] == data
    for field in ("commit", "torch", "cpu_model", "train_seconds", "epoch_losses", "parameters"):
        assert on_disk[field] not in (None, "")
    again = create_backbone("small_cnn_s", width=4, depth=2, weights_path=path)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in bb.state_dict().items())
    loaded, side2 = pretrain.load_pretrained(path)
    assert side2["sha256"] == on_disk["sha256"] and set(loaded) == set(state)
    with open(path, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(ValueError, match="SHA-256"):
        pretrain.load_pretrained(path)

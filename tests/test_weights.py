"""Issue #12: committed stand-in backbones. The files are intact and loadable, the CPU profiles'
recipes resolve to them (no pretraining on a fresh clone), a changed file is not used, and the
pretraining command exports files the lookup then finds."""
from __future__ import annotations

import json
import logging
import os

import pytest
import torch

import brcd_lib.models.pretrain as pretrain
from brcd_lib.io import sha256_file
from brcd_lib.models import create_backbone, ssl_pretrain
from brcd_lib.paths import weights_root

from test_pretrain import HP, _images, _tiny

SIDECARS = sorted(weights_root().glob("*.json"))


def test_committed_weights_fit_the_budget():
    assert SIDECARS, "brcd_lib/weights holds no weight files"
    total = sum(p.stat().st_size for p in weights_root().iterdir() if p.is_file())
    assert total <= 25 * 2 ** 20, total


@pytest.mark.parametrize("sidecar", SIDECARS, ids=lambda p: p.stem)
def test_committed_weights_are_intact_and_carry_provenance(sidecar):
    side = json.loads(sidecar.read_text())
    path = sidecar.with_name(side["file"])
    assert side["format"] == pretrain.WEIGHTS_FORMAT
    assert sha256_file(path) == side["sha256"] and path.stat().st_size == side["bytes"]
    for field in ("commit", "recipe", "epochs", "train_seconds", "train_cpu_seconds", "cpu_model",
                  "cache_key", "data", "versions"):
        assert side.get(field) not in (None, "", {}), field
    assert "validation and query" in side["data"]["excluded"]
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = create_backbone(side["backbone"]["name"], **side["backbone"]["kwargs"])
    net.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in net.parameters()) == side["parameters"]


@pytest.mark.parametrize("profile", ["digits", "fashion"])
def test_profiles_use_the_committed_weights(profile, tmp_path, monkeypatch):
    """A fresh clone pretrains nothing: the profile's recipe, initial weights and images give the
    cache key a committed file was made with."""
    from brcd_lib.experiments.experiment import Experiment

    if profile == "fashion" and not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("Fashion-MNIST not installed (Debian's dataset-fashion-mnist)")
    monkeypatch.setattr(pretrain, "train_simclr", lambda *a, **k: pytest.fail("pretrained"))
    exp = Experiment(profile, cache_dir=str(tmp_path), progress=False, workers=1)
    params = {}
    for role in ("teacher", "student"):
        model = getattr(exp.profile, role)
        info = exp.pretrained_backbone(model, role=role).ssl_pretrain_info
        assert info["cache_hit"] == "committed", role
        assert os.path.basename(info["path"]).startswith(f"{profile}_{role}_")
        net = exp.build_network(model, 32, role=role)
        params[role] = sum(p.numel() for p in net.parameters())
    assert params["teacher"] >= 10 * params["student"], params


def test_a_changed_committed_file_is_not_used(tmp_path, caplog):
    images = _images()
    made = ssl_pretrain(_tiny(), images=images, epochs=1, seed=0, cache_dir=str(tmp_path / "a"), **HP)
    folder = tmp_path / "weights"
    pretrain.export_pretrained(made, str(folder / "toy.pt"), data={"dataset": "toy"})
    hit = ssl_pretrain(_tiny(), images=images, epochs=1, seed=0, cache_dir=str(tmp_path / "b"),
                       weights_dirs=[str(folder)], **HP)
    assert hit.ssl_pretrain_info["cache_hit"] == "committed"
    assert all(torch.equal(v, hit.state_dict()[k]) for k, v in made.state_dict().items())
    with open(folder / "toy.pt", "ab") as f:
        f.write(b"edited")
    with caplog.at_level(logging.WARNING, logger="brcd_lib.models.pretrain"):
        again = ssl_pretrain(_tiny(), images=images, epochs=1, seed=0,
                             cache_dir=str(tmp_path / "c"), weights_dirs=[str(folder)], **HP)
    assert again.ssl_pretrain_info["cache_hit"] is False
    text = caplog.text
    assert "does not match its sidecar" in text and "git checkout" in text
    assert "pretraining it now" in text and "on this machine (3 steps)" in text
    # the estimate ran on a copy: the result equals a run without committed folders
    plain = ssl_pretrain(_tiny(), images=images, epochs=1, seed=0, cache_dir=str(tmp_path / "d"), **HP)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in plain.state_dict().items())


def test_pretrain_command_exports_files_that_the_profile_then_uses(tmp_path, capsys):
    from brcd_lib.experiments import pretrain_cmd

    out, cache = tmp_path / "w", tmp_path / "cache"
    argv = ["--profile", "smoke", "--out", str(out), "--cache-dir", str(cache)]
    assert pretrain_cmd.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("[done]") == 2
    files = sorted(p.name for p in out.glob("*.pt"))
    assert files == ["smoke_student_small_cnn_s_w8.pt", "smoke_teacher_resnet_teacher.pt"]
    for p in out.glob("*.json"):
        side = json.loads(p.read_text())
        assert side["profile"] == "smoke" and side["script"] == "python -m brcd_lib.pretrain"
        assert sha256_file(out / side["file"]) == side["sha256"]
    assert pretrain_cmd.main(argv) == 0  # the exported files match: nothing to do
    assert capsys.readouterr().out.count("[ok  ]") == 2
    assert pretrain_cmd.main(["--profile", "nope"]) == 2


def test_mosaic_profile_loads_the_fashion_weights(tmp_path, monkeypatch):
    """The multi-label profile transfers the fashion profile's committed backbones (like the
    paper's ImageNet weights): no pretraining, the same tensors as the committed files."""
    from brcd_lib.experiments.experiment import Experiment

    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("Fashion-MNIST not installed (Debian's dataset-fashion-mnist)")
    monkeypatch.setattr(pretrain, "train_simclr", lambda *a, **k: pytest.fail("pretrained"))
    exp = Experiment("mosaic", cache_dir=str(tmp_path), progress=False, workers=1)
    for role in ("teacher", "student"):
        model = getattr(exp.profile, role)
        net = exp.pretrained_backbone(model, role=role)
        info = net.ssl_pretrain_info
        assert info["cache_hit"] == "committed" and info["transferred_from"].startswith(f"fashion_{role}_")
        state = torch.load(info["path"], map_location="cpu", weights_only=True)
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())


def test_committed_weights_errors_name_the_file_and_the_fix(tmp_path):
    from brcd_lib.models.pretrain import load_committed_file

    folder = tmp_path / "weights"
    made = ssl_pretrain(_tiny(), images=_images(), epochs=1, seed=0, cache_dir=str(tmp_path / "a"), **HP)
    pretrain.export_pretrained(made, str(folder / "toy.pt"), data={"dataset": "toy"})
    net = _tiny()
    side = load_committed_file(net, "toy", [str(folder)])
    assert net.ssl_pretrain_info["transferred_from"] == "toy" and side["file"] == "toy.pt"
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in made.state_dict().items())
    with pytest.raises(FileNotFoundError, match="'nope' not found .*brcd_lib.pretrain"):
        load_committed_file(_tiny(), "nope", [str(folder)])
    other = create_backbone("small_cnn_s", width=4)
    with pytest.raises(ValueError, match="hold backbone .* not small_cnn_s"):
        load_committed_file(other, "toy.pt", [str(folder)])
    with open(folder / "toy.pt", "ab") as f:
        f.write(b"edited")
    with pytest.raises(ValueError, match="does not match its sidecar .*git checkout"):
        load_committed_file(_tiny(), "toy", [str(folder)])

"""benchmarks/bench_gpu_estimate.py: the paper grid's forward passes x seconds per image, CPU
throughput read from latency.csv, FLOP-based ESTIMATE rows, and the extrapolation of timed
training steps; fails when the arithmetic or the labels break."""
from __future__ import annotations

import csv

import pytest

from benchmarks import bench_gpu_estimate as ge
from benchmarks import paper_grid
from brcd_lib.experiments.preflight import run_plan

PLAN = run_plan("paper")
BACKBONES = tuple(paper_grid.grid_backbones("paper", PLAN))  # every backbone of the grid


def _latency_csv(path, batches=(1, 8, 64)):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["group", "backbone", "batch_size", "throughput_img_s",
                                           "image_size", "rounds", "device", "load_before"])
        w.writeheader()
        for i, b in enumerate(BACKBONES):
            for batch in batches:
                w.writerow(dict(group="paper", backbone=b, batch_size=batch,
                                throughput_img_s=(i + 1) * batch, image_size=224, rounds=7,
                                device="cpu", load_before="1"))


def test_parse_gpu():
    assert ge.parse_gpu("A100=312") == ("A100", 312.0)
    for bad in ("A100", "=3", "A100=x", "A100=-1", "A100=inf"):
        with pytest.raises(ValueError, match="NAME=TFLOPS"):
            ge.parse_gpu(bad)


def test_hours_rows_arithmetic():
    rows = ge.hours_rows("cpu", "d", {"a": 2.0, "b": 4.0}, {"a": 7200, "b": 3600},
                         label="MEASURED", ips_notes={"a": "", "b": ""})
    hours = {r["backbone"]: r["value"] for r in rows if r["quantity"] == "forward_hours"}
    assert hours == {"a": 1.0, "b": 0.25}
    total = [r for r in rows if r["quantity"] == "grid_forward_hours"]
    assert total[0]["value"] == 1.25 and total[0]["label"] == "EXTRAPOLATED"
    with pytest.raises(ValueError, match="no images/s"):
        ge.hours_rows("cpu", "d", {"a": 2.0}, {"a": 1, "b": 1}, label="M", ips_notes={"a": ""})


def test_read_latency_takes_the_largest_batch_not_above(tmp_path):
    path = tmp_path / "latency.csv"
    _latency_csv(path)
    got = ge.read_latency(path, BACKBONES, 16)
    assert {b: v[:2] for b, v in got.items()} == {b: ((i + 1) * 8.0, 8)
                                                  for i, b in enumerate(BACKBONES)}
    assert set(ge.read_latency(path, BACKBONES + ("vit_h_14",), 64)) == set(BACKBONES)
    assert ge.read_latency(tmp_path / "absent.csv", BACKBONES, 64) == {}
    assert ge.read_latency(path, BACKBONES, 0) == {}


def test_flops_estimate():
    from brcd_lib.experiments.profiles import get_profile

    est = ge.flops_estimate(get_profile("paper"), ["resnet18"], tflops=100.0, utilisation=0.5)
    ips, note = est["resnet18"]
    macs = 1.814e9  # torchvision's model card: 1.81 GFLOPS (multiply-adds) at 224 px
    assert ips == pytest.approx(100e12 * 0.5 / (2 * macs), rel=1e-3)
    assert "ESTIMATE" in note and "ASSUMED utilisation" in note
    with pytest.raises(ValueError, match="utilisation"):
        ge.flops_estimate(get_profile("paper"), ["resnet18"], tflops=1.0, utilisation=0.0)


def test_main_on_the_cpu_with_training_steps(tmp_path, monkeypatch):
    from benchmarks import train_steps

    prepare = train_steps.prepared_distiller  # k-means on 5,000 codes is untimed set-up: use 64
    monkeypatch.setattr(train_steps, "prepared_distiller", lambda name, *, n_train, **kw:
                        prepare(name, n_train=min(n_train, 64), **kw))
    _latency_csv(tmp_path / "latency.csv")
    rows = ge.main(["--out-dir", str(tmp_path), "--cpu-source", "latency", "--gpu", "X=100",
                    "--utilisation", "0.5", "--train-steps", "1", "--student-backbone",
                    "mobilenet_v2", "--teacher-backbone", "resnet18", "--image-size", "32",
                    "--train-batch-size", "2", "--num-workers", "0", "--augment-images", "4"])
    teachers, students = len(PLAN["teachers"]), len(PLAN["students"])
    passes = {r["backbone"]: r["value"] for r in rows if r["quantity"] == "forward_passes"}
    assert passes == paper_grid.forward_passes("paper")
    cpu = {r["backbone"]: r for r in rows if r["source"] == "cpu"
           and r["quantity"] == "forward_hours"}
    assert set(passes) == set(BACKBONES)
    for i, b in enumerate(BACKBONES):  # latency.csv: (i + 1) x 64 img/s at batch 64
        assert cpu[b]["value"] == pytest.approx(passes[b] / ((i + 1) * 64) / 3600)
    total = next(r for r in rows if r["source"] == "cpu" and r["backbone"] == "all")
    assert total["value"] == pytest.approx(sum(r["value"] for r in cpu.values()))
    est = [r for r in rows if r["source"] == "estimate:X"]
    assert est and all(r["label"] == "ESTIMATE" for r in est)
    train = {r["quantity"]: r for r in rows if r["source"] == "train"}
    step = train["step_s"]["value"]
    assert train["step_s"]["label"] == "MEASURED"
    assert train["epoch_s"]["value"] == pytest.approx(step * (5000 // 2))
    assert train["run_hours"]["value"] == pytest.approx(step * 2500 * 400 / 3600)
    assert train["student_grid_hours"]["value"] == pytest.approx(
        students * train["run_hours"]["value"])
    aug = {r["quantity"]: r for r in rows if r["source"] == "augmentation"}
    views = teachers * 200 * 5000 * 2 + students * 400 * 5000 * 2  # 2 views per image, epoch
    assert aug["augmented_views"]["value"] == views
    assert aug["cpu_hours"]["value"] == pytest.approx(
        views * aug["s_per_augmented_image"]["value"] / 3600)
    assert aug["loader_bound_hours"]["value"] == pytest.approx(aug["cpu_hours"]["value"] / 8)
    assert aug["loader_bound_hours"]["label"] == "ESTIMATE"
    text = (tmp_path / "gpu_estimate.md").read_text()
    assert "ESTIMATE" in text and "train 5,000" in text
    assert (tmp_path / "gpu_estimate.csv").exists()


def test_main_rejects_bad_input(tmp_path):
    with pytest.raises(SystemExit, match="unknown device"):
        ge.main(["--device", "nope", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="NAME=TFLOPS"):
        ge.main(["--gpu", "A100", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="utilisation"):
        ge.main(["--utilisation", "2", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="lacks the paper group"):
        ge.main(["--cpu-source", "latency", "--out-dir", str(tmp_path)])

"""benchmarks/bench_gpu_estimate.py: the paper grid's forward passes x seconds per image, CPU
throughput read from latency.csv, FLOP-based ESTIMATE rows, and the extrapolation of timed
training steps; fails when the arithmetic or the labels break."""
from __future__ import annotations

import csv
import json

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


def test_gpu_rates_fall_back_to_the_issue_figures_labelled_elsewhere(tmp_path):
    from benchmarks import gpu_check

    ips, label, note, other = ge.gpu_rates(tmp_path / "absent.json")
    assert label == "MEASURED ELSEWHERE" and "issue #29" in note
    assert ips == {b: v[64] for b, v in gpu_check.ELSEWHERE["images_per_s"].items()}
    assert set(ips) == set(BACKBONES)
    dry = tmp_path / "dry.json"  # a CPU dry run of gpu_check is not a GPU measurement
    dry.write_text('{"gpu": false, "rates": {}}')
    assert ge.gpu_rates(dry)[1] == "MEASURED ELSEWHERE"
    measured = tmp_path / "gpu.json"
    measured.write_text(json.dumps({"gpu": True, "device": "cuda (X)", "rates": {
        "images_per_s": {"vit_b_16": {"64": 10.0, "512": 12.0}},  # JSON keys are strings
        "augment_views_per_s": {"device": 5.0, "cpu": 1.0},
        "head_steps_per_s": {"brcd": {"alone": 2.0, "aggregate": 8.0}}}}))
    ips, label, _, other = ge.gpu_rates(measured)
    # the banks' forward batch (64, the runs' batch size), not the fastest batch
    assert (ips, label, other["heads_aggregate"]) == ({"vit_b_16": 10.0}, "MEASURED", 8.0)


def test_main_on_the_cpu_with_training_steps(tmp_path, monkeypatch):
    from benchmarks import train_steps

    prepare = train_steps.prepared_distiller  # k-means on 5,000 codes is untimed set-up: use 64
    monkeypatch.setattr(train_steps, "prepared_distiller", lambda name, *, n_train, **kw:
                        prepare(name, n_train=min(n_train, 64), **kw))
    _latency_csv(tmp_path / "latency.csv")
    rows = ge.main(["--out-dir", str(tmp_path), "--cpu-source", "latency", "--train-steps", "1",
                    "--student-backbone",
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
    assert not [r for r in rows if r["label"] == "ESTIMATE"]  # no FLOP estimates any more
    gpu = {(r["backbone"], r["quantity"]): r for r in rows if r["source"] == "gpu"}
    assert gpu[("vit_b_16", "images_per_s")]["label"] == "MEASURED ELSEWHERE"
    per_run = {r["backbone"]: r["value"] for r in rows if r["quantity"] == "forward_passes_per_run"}
    assert per_run == paper_grid.workload("paper")["forward_passes_per_run"]
    assert all(per_run[b] >= passes[b] for b in passes)
    train = {r["quantity"]: r for r in rows if r["source"] == "train"}
    step = train["step_s"]["value"]
    assert train["step_s"]["label"] == "MEASURED"
    assert train["epoch_s"]["value"] == pytest.approx(step * (5000 // 2))
    assert train["run_hours"]["value"] == pytest.approx(step * 2500 * 400 / 3600)
    assert train["student_grid_hours"]["value"] == pytest.approx(
        students * train["run_hours"]["value"])
    aug = {(r["backbone"], r["quantity"]): r for r in rows if r["source"] == "augmentation"}
    views = teachers * 200 * 5000 * 2 + students * 400 * 5000 * 2  # 2 views per image, epoch
    assert aug[("per_run", "augmented_views")]["value"] == views
    shared = 200 * 5000 * 2 + 400 * 5000 * 2  # one augmentation seed: a teachers' and a students' phase
    assert aug[("shared", "augmented_views")]["value"] == shared
    assert aug[("per_run", "cpu_hours")]["value"] == pytest.approx(
        views * aug[("-", "s_per_augmented_image")]["value"] / 3600)
    text = (tmp_path / "gpu_estimate.md").read_text()
    assert "MEASURED ELSEWHERE" in text and "train 5,000" in text
    assert (tmp_path / "gpu_estimate.csv").exists()


def test_main_rejects_bad_input(tmp_path):
    with pytest.raises(SystemExit, match="unknown device"):
        ge.main(["--device", "nope", "--out-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="lacks the paper group"):
        ge.main(["--cpu-source", "latency", "--out-dir", str(tmp_path)])

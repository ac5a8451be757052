"""The ``paper`` profile's code path rehearsed on the CPU: every notebook, end to end, on
generated CIFAR-10 files and generated NUS-WIDE list files (multi-label, JPEGs), with random
weights (profiles ``paper_rehearsal`` and ``paper_rehearsal_lists``); and the paper profile's
preflight (GPU, data, folders, the run's estimate).

The rehearsals change only what a CPU must change (``experiments.profiles._rehearsal``): the
backbones (ViT-B/16 teacher; EfficientNet-B0, MobileNetV2, ResNet-18 students), heads,
objectives, methods, generality axes, 224 px transforms and optimiser settings are the paper's.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from brcd_lib.experiments import preflight, reproduce
from brcd_lib.experiments.profiles import REHEARSAL_DATA, get_profile, list_profiles
from fakes import write_fake_dataset

REHEARSALS = sorted(REHEARSAL_DATA)
PAPER = get_profile("paper")


@pytest.mark.parametrize("name", REHEARSALS)
def test_rehearsal_is_the_paper_profile_with_cpu_settings(name):
    r = get_profile(name)
    assert name not in list_profiles() and name in list_profiles(include_rehearsals=True)
    for role in ("teacher", "student"):
        ours, paper = getattr(r, role), getattr(PAPER, role)
        assert dataclasses.replace(ours, backbone=dataclasses.replace(
            ours.backbone, pretrained=True)) == paper
        t, pt = getattr(r, f"{role}_train"), getattr(PAPER, f"{role}_train")
        assert (t.lr, t.batch_size, t.patience) == (pt.lr, pt.batch_size, pt.patience)
    for f in ("student_backbones", "objectives", "generality_methods", "pair_methods", "methods",
              "teacher_seed", "method_kwargs", "train_together"):
        assert getattr(r, f) == getattr(PAPER, f), f
    # the paper's five seeds (issue #29), of which the rehearsal runs the first two: enough for
    # the claims table's paired intervals
    assert len(PAPER.seeds) == 5 and PAPER.seeds[0] == PAPER.teacher_seed == 8888
    assert r.seeds == PAPER.seeds[:2]
    assert r.teacher_backbones == tuple(t for t in PAPER.teacher_backbones if t != "vit_l_16")
    assert (r.data.image_size, r.data.transform) == (224, "paper")
    assert {k: v for k, v in r.brcd.items() if k != "n_clusters"} == {
        k: v for k, v in PAPER.brcd.items() if k != "n_clusters"}


def _write_data(base: Path, name: str) -> Path:
    spec = dict(REHEARSAL_DATA[name])
    dataset = spec.pop("dataset")
    write_fake_dataset(base / "data" / dataset, name=dataset, **spec)
    return base / "data"


def test_paper_preflight_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("BRCD_DATA", str(tmp_path / "no-data"))
    report = preflight.check("paper", cache_dir=str(tmp_path / "cache"),
                             results=str(tmp_path / "results"), measure=False)
    text = str(report)
    assert not report.ok
    assert any("CIFAR-10 not found" in p for p in report.problems), report.problems
    if not preflight.torch.cuda.is_available():
        assert any("needs a CUDA GPU" in p for p in report.problems)
    plan = preflight.run_plan("paper")
    assert report.estimate["student_runs"] == len(plan["students"])
    assert report.estimate["teacher_runs"] == len(plan["teachers"])
    assert f"runs: {len(plan['teachers'])} teacher(s), {len(plan['students'])} student(s)" in text
    assert not (tmp_path / "no-data").exists()  # the check downloads nothing


def test_rehearsal_preflight_is_ready_with_an_estimate(tmp_path, monkeypatch):
    monkeypatch.setenv("BRCD_DATA", str(_write_data(tmp_path, "paper_rehearsal")))
    report = preflight.check("paper_rehearsal", cache_dir=str(tmp_path / "cache"),
                             results=str(tmp_path / "results"), measure=False)
    assert report.ok, report.problems
    est = report.estimate
    assert set(est["forward_passes"]) == {"vit_b_16", "efficientnet_b0", "mobilenet_v2",
                                          "resnet18", "vit_b_32"}  # pairs: ViT-B/32 teacher
    assert all(v > 0 for v in est["forward_passes"].values()) and est["disk_bytes"] > 0
    assert "backbone forward passes at 224 px" in str(report)


@pytest.mark.slow
@pytest.mark.parametrize("name", REHEARSALS)
def test_paper_rehearsal_runs_every_notebook(tmp_path, monkeypatch, name):
    monkeypatch.setenv("BRCD_DATA", str(_write_data(tmp_path, name)))
    monkeypatch.setenv("BRCD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BRCD_WORKERS", raising=False)
    results = tmp_path / "results"
    t0 = time.time()
    log = reproduce.run(name, results_root=str(results), force=True,
                        cache_dir=str(tmp_path / "cache"))
    wall = time.time() - t0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(json.dumps({"rehearsal": name, "wall_s": round(wall, 1), "load_1min": round(load, 2),
                      "cpus": os.cpu_count()}))
    names = [os.path.basename(n) for n in reproduce.list_notebooks()]
    assert sorted(log["notebooks"]) == sorted(names)
    assert all(e["status"] == "ok" for e in log["notebooks"].values()), log["notebooks"]

    # the runs are the paper's models, and exactly the runs the preflight plan counts
    runs = tmp_path / "cache" / "runs" / name
    records = [json.loads((d / "result.json").read_text()) for d in sorted(runs.iterdir())]
    teachers = [r for r in records if r["role"] == "teacher"]
    students = [r for r in records if r["role"] == "student"]
    plan = preflight.run_plan(name)
    assert (len(teachers), len(students)) == (len(plan["teachers"]), len(plan["students"]))
    assert {r["model"]["backbone"]["name"] for r in teachers} == {"vit_b_16",
                                                                 *get_profile(name).teacher_backbones}
    assert {r["model"]["backbone"]["name"] for r in students} == {
        "efficientnet_b0", "mobilenet_v2", "resnet18"}
    assert {r["model"]["objective"] for r in teachers} == set(PAPER.objectives)
    assert all(r["code_fingerprint"] and r["checksum"] for r in records)
    for table in ("main_table", "ablation_table", "generality_table", "sensitivity_table",
                  "efficiency_paper_backbones", "pr_curves"):
        assert (results / name / "tables" / f"{table}.csv").exists(), table
    report = (results / name / "README.md").read_text()
    assert "## Manifest" in report
    # the claims table, over the main grid's two seeds (pairs for its intervals)
    from brcd_lib.reporting.findings import CLAIMS_TITLE
    import pandas as pd

    assert CLAIMS_TITLE in report
    main = pd.read_csv(results / name / "tables" / "main_rows.csv")
    students = main[~main["method"].isin(["teacher", "LSH", "ITQ"])]
    assert set(students["seed"]) == set(get_profile(name).seeds)

    # the preflight's disk estimate bounds what the run wrote to its cache (and is not far off)
    estimate = preflight.check(name, cache_dir=str(tmp_path / "cache"), results=str(results),
                               measure=False).estimate["disk_bytes"]
    used = sum(f.stat().st_size for f in (tmp_path / "cache").rglob("*") if f.is_file())
    assert used <= estimate <= 2 * used, (used, estimate)

"""benchmarks/gpu_check.py: the grid estimate's arithmetic and labels, the dry-run banner, the
issue's H200 figures covering every backbone of the grid, and (slow) the head-step rates."""
from __future__ import annotations

import pytest

from benchmarks import gpu_check, paper_grid


def test_elsewhere_covers_every_grid_backbone():
    from brcd_lib.experiments.preflight import run_plan

    assert set(gpu_check.ELSEWHERE["images_per_s"]) == set(
        paper_grid.grid_backbones("paper", run_plan("paper")))
    assert "issue #29" in gpu_check.ELSEWHERE_SOURCE and "H200" in gpu_check.ELSEWHERE_SOURCE


def test_grid_rows_arithmetic_and_labels():
    w = paper_grid.workload("paper")
    ips = {b: 10_000.0 * (i + 1) for i, b in enumerate(w["forward_passes"])}
    rates = {"images_per_s": ips, "augment_images_per_s": 50_000.0,
             "head_steps_per_s": {"alone": 10.0, "aggregate": 40.0}}
    rows = {r["what"]: r for r in gpu_check.grid_rows(rates, rate_label="MEASURED",
                                                      rate_note="test")}
    steps = w["head_steps"]["teacher"] + w["head_steps"]["student"]
    forward = sum(k / ips[b] for b, k in w["forward_passes"].items()) / 3600
    augment = w["augmented_views"] / 50_000.0 / 3600
    assert rows["head steps"]["value"] == steps and rows["head steps"]["label"] == "COUNTED"
    assert rows["forward hours (shared banks)"]["value"] == pytest.approx(forward)
    assert rows["augmentation hours (on the device)"]["value"] == pytest.approx(augment)
    assert rows["grid hours, one run at a time"]["value"] == pytest.approx(
        forward + augment + steps / 10.0 / 3600)
    assert rows["grid hours, runs trained together"]["value"] == pytest.approx(
        forward + augment + steps / 40.0 / 3600)
    assert rows["aggregate head rate the 8-hour target needs"]["value"] == pytest.approx(
        steps / (8 * 3600 - (forward + augment) * 3600))
    assert {r["label"] for r in rows.values()} == {"COUNTED", "EXTRAPOLATED"}
    per_run = rows["forward hours (per-run pipeline)"]["value"]
    assert per_run > rows["forward hours (shared banks)"]["value"]


def test_dry_run_says_it_was_not_measured_on_a_gpu():
    rows = [dict(section="heads", what="x", value=1.0, unit="steps/s",
                 label="DRY RUN (CPU, NOT MEASURED ON A GPU)", notes="")]
    text = gpu_check.markdown({"dry_run": True, "elapsed_s": 1.0, "device": "cpu",
                               "machine": "m", "rows": rows})
    assert "CPU DRY RUN: NOT MEASURED ON A GPU" in text and "MEASURED ELSEWHERE" in text
    assert "CPU DRY RUN" not in gpu_check.markdown({"dry_run": False, "elapsed_s": 1.0,
                                                    "device": "cuda", "machine": "m",
                                                    "rows": rows})


@pytest.mark.slow
def test_head_rates_alone_and_in_aggregate_on_the_cpu():
    alone = gpu_check.head_rate_alone("brcd", device="cpu", n=128, epochs=1)
    agg = gpu_check.head_rate_aggregate("brcd", device="cpu", n=128, epochs=1, processes=2,
                                        runs=2)
    assert alone > 0 and agg["steps"] == 2 * 2 * 1 * (128 // 64) and agg["steps_per_s"] > 0

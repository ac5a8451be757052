"""benchmarks/bench_cache.py keeps each profile's cached-vs-uncached study: rerunning one profile
(or the speed part) does not drop another profile's rows."""
from __future__ import annotations

import argparse

from benchmarks import bench_cache


def test_rerun_parts_are_per_profile():
    args = argparse.Namespace(parts=["map"], profile="fashion")
    assert bench_cache._rerun_parts(args) == {"map/fashion"}
    args = argparse.Namespace(parts=["speed", "map"], profile="digits")
    assert bench_cache._rerun_parts(args) == {"speed", "map/digits"}


def test_legacy_map_rows_are_named_by_their_profile():
    row = {"part": "map", "notes": "mean of 3 seeds [0, 1, 2] (std 0.0052); profile digits, BRCD"}
    assert bench_cache._normalise_part(row)["part"] == "map/digits"
    assert bench_cache._normalise_part({"part": "map", "notes": ""})["part"] == "map/digits"
    assert bench_cache._normalise_part({"part": "speed", "notes": "x"})["part"] == "speed"
    assert bench_cache._normalise_part({"part": "map/fashion"})["part"] == "map/fashion"


# ---------------------------------------------------------------------------------------------
# end to end: the bank build is in every cached total
# ---------------------------------------------------------------------------------------------
import csv  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


def _by_quantity(rows):
    return {r["quantity"]: r for r in rows}


def test_end_to_end_rows_include_the_bank_build():
    rows = _by_quantity(bench_cache.end_to_end_rows(
        uncached_epoch_s=10.0, cached_epoch_s=0.4, run_bank_s=400.0, grid_banks_s=300.0,
        epochs=400, runs=64, u_label="EXTRAPOLATED: ", run_note="r", grid_note="g"))
    assert rows["run_uncached_end_to_end_s"]["value"] == 4000.0
    assert rows["run_cached_end_to_end_s"]["value"] == pytest.approx(400.0 + 160.0)
    assert rows["run_end_to_end_ratio"]["value"] == pytest.approx(4000.0 / 560.0)
    assert rows["run_end_to_end_ratio"]["met"] is False  # 7.1 < 20
    assert rows["grid_uncached_end_to_end_s"]["value"] == 64 * 4000.0
    assert rows["grid_cached_end_to_end_s"]["value"] == pytest.approx(300.0 + 64 * 160.0)
    assert rows["grid_end_to_end_ratio"]["value"] == pytest.approx(256000.0 / 10540.0)
    assert rows["grid_end_to_end_ratio"]["met"] is True  # 24.3 >= 20
    assert all("EXTRAPOLATED" in r["notes"] for q, r in rows.items() if q.endswith("_s"))


def test_map_end_to_end_adds_each_bank_seed_once():
    # one bank seed shared by three seeds ("split"): paid once in the grid, once per run
    e2e = bench_cache.map_end_to_end(cached_walls=[10.0, 12.0, 14.0],
                                     uncached_walls=[100.0, 110.0, 120.0],
                                     bank_build_s={0: 30.0}, bank_seed_of={0: 0, 1: 0, 2: 0})
    assert e2e["cached_run_s"] == pytest.approx(12.0 + 30.0)
    assert e2e["uncached_run_s"] == pytest.approx(110.0)
    assert e2e["cached_grid_s"] == pytest.approx(36.0 + 30.0)
    assert e2e["uncached_grid_s"] == pytest.approx(330.0)
    assert e2e["grid_ratio"] == pytest.approx(330.0 / 66.0)
    # a bank per run seed ("run"): every seed's banks in the grid
    e2e = bench_cache.map_end_to_end(cached_walls=[10.0, 12.0], uncached_walls=[100.0, 110.0],
                                     bank_build_s={0: 30.0, 1: 34.0}, bank_seed_of={0: 0, 1: 1})
    assert e2e["cached_run_s"] == pytest.approx(11.0 + 32.0)
    assert e2e["cached_grid_s"] == pytest.approx(22.0 + 64.0)
    with pytest.raises(ValueError, match="one cached and one uncached"):
        bench_cache.map_end_to_end(cached_walls=[1.0], uncached_walls=[], bank_build_s={0: 1.0},
                                   bank_seed_of={0: 0})


def test_map_study_refuses_the_kit_cache_and_clears_only_its_features(tmp_path):
    kit_cache = Path(os.environ["BRCD_CACHE"])  # the test session's kit cache (conftest)
    with pytest.raises(ValueError, match="kit's cache"):
        bench_cache.check_study_cache(kit_cache, None)
    with pytest.raises(ValueError, match="same folder"):
        bench_cache.check_study_cache(tmp_path, tmp_path)
    bench_cache.check_study_cache(tmp_path / "study", tmp_path / "other")
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "a.pt").write_bytes(b"x")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "keep.json").write_text("{}")
    assert bench_cache.clear_features(tmp_path) == 1
    assert not list((tmp_path / "features").iterdir())
    assert (tmp_path / "runs" / "keep.json").exists()
    assert bench_cache.clear_features(tmp_path / "absent") == 0


@pytest.mark.parametrize("argv, match", [
    (["--uncached-steps", "1"], "uncached-steps"),
    (["--n-images", "8", "--batch-size", "16"], "at least --batch-size"),
    (["--n-views", "1"], "n-views"),
    (["--run-epochs", "0"], "run-epochs"),
])
def test_speed_rejects_bad_settings(argv, match):
    args = bench_cache.get_args_parser().parse_args(["--parts", "speed", *argv])
    with pytest.raises(SystemExit, match=match):
        bench_cache.check_speed_args(args)


def test_speed_part_end_to_end_on_small_backbones(tmp_path, monkeypatch):
    """The speed part on two small torchvision backbones at 64 px (the grid's banks replaced by
    theirs): every end-to-end row is the arithmetic of the measured rows, and the map rows of the
    previous output are kept."""
    monkeypatch.setattr(bench_cache.paper_grid, "distinct_banks",
                        lambda p, plan, v: {("resnet18", v, 0), ("resnet18", v, 1),
                                            ("mobilenet_v2", v, 0)})
    old = [{"part": "map/digits", "quantity": "cached_symmetric_map_mean", "value": "0.5",
            "unit": "mAP", "target": "", "met": "", "notes": "profile digits, kept"}]
    with open(tmp_path / "cache.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=bench_cache.SUMMARY_FIELDS)
        w.writeheader()
        w.writerows(old)
    summary = bench_cache.main([
        "--parts", "speed", "--student", "mobilenet_v2", "--teacher", "resnet18",
        "--image-size", "64", "--source-size", "16", "--n-images", "24", "--batch-size", "8",
        "--n-views", "4", "--cached-epochs", "1", "--bank-probe-images", "2",
        "--uncached-steps", "2", "--run-epochs", "10", "--out-dir", str(tmp_path)])
    rows = _by_quantity(r for r in summary if r["part"] == "speed")
    u = rows["uncached_seconds_per_epoch"]["value"]
    c = rows["cached_seconds_per_epoch"]["value"]
    s, t = (rows[f"bank_s_per_view_image/{b}"]["value"] for b in ("mobilenet_v2", "resnet18"))
    bank = rows["bank_build_seconds"]["value"]
    assert bank == pytest.approx(4 * 24 * (s + t))
    assert rows["per_epoch_ratio"]["value"] == pytest.approx(u / c)
    assert rows["run_epochs"]["value"] == 10
    assert rows["run_uncached_end_to_end_s"]["value"] == pytest.approx(10 * u)
    assert rows["run_cached_end_to_end_s"]["value"] == pytest.approx(bank + 10 * c)
    n = rows["grid_student_runs"]["value"]
    from brcd_lib.experiments.preflight import run_plan

    assert n == len(run_plan("paper")["students"]) and rows["grid_distinct_banks"]["value"] == 3
    grid_banks = rows["grid_banks_build_s"]["value"]
    assert grid_banks == pytest.approx(4 * 24 * (2 * t + s))
    assert rows["grid_uncached_end_to_end_s"]["value"] == pytest.approx(n * 10 * u)
    assert rows["grid_cached_end_to_end_s"]["value"] == pytest.approx(grid_banks + n * 10 * c)
    assert "EXTRAPOLATED" in rows["uncached_seconds_per_epoch"]["notes"]
    assert "batch 8" in rows["uncached_seconds_per_epoch"]["notes"]
    with open(tmp_path / "cache.csv", newline="") as fh:
        parts = [r["part"] for r in csv.DictReader(fh)]
    assert "map/digits" in parts and parts.count("speed") == len(rows)
    assert "kept from the previous output" in (tmp_path / "cache.md").read_text()

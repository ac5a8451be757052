"""The rerun check: cells within two seed standard deviations pass, a moved cell fails."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brcd_lib.experiments.compare import Z_PASS, compare_results, compare_study, format_summary


def _rows(shift=0.0, moved=None, seeds=5):
    rng = np.random.default_rng(1)
    rows = [dict(method="teacher", variant="teacher", bits=32, paradigm="symmetric", seed=0,
                 value=0.8, status="ok")]
    for m in ("kd", "brcd"):
        for s in range(seeds):
            v = 0.6 + rng.normal(0, 0.01) + shift
            if moved == (m, s):
                v += 0.2
            rows.append(dict(method=m, variant=m, bits=32, paradigm="symmetric", seed=s, value=v,
                             status="ok"))
    return pd.DataFrame(rows)


def test_identical_rerun_passes_and_a_moved_cell_fails(tmp_path):
    for name, frame in (("committed", _rows()), ("same", _rows()), ("moved", _rows(moved=("kd", 0)))):
        (tmp_path / name / "tables").mkdir(parents=True)
        frame.to_csv(tmp_path / name / "tables" / "main_rows.csv", index=False)
    cells, summary = compare_results(str(tmp_path / "committed"), str(tmp_path / "same"))
    assert list(summary["result"]) == ["PASS"] and cells["z"].abs().max() == 0
    cells, summary = compare_results(str(tmp_path / "committed"), str(tmp_path / "moved"))
    assert list(summary["result"]) == ["FAIL"]
    kd = cells[cells["method"] == "kd"].iloc[0]
    assert kd["difference"] == pytest.approx(0.2 / 5)
    assert abs(kd["z"]) > Z_PASS
    text = format_summary(summary, cells)
    assert "FAIL main" in text and "kd" in text


def test_single_run_cells_use_the_table_median_spread():
    cells = compare_study(_rows(), _rows(shift=0.001))
    teacher = cells[cells["method"] == "teacher"].iloc[0]
    assert teacher["sigma_source"] == "table median"
    assert np.isfinite(teacher["z"])


def test_missing_cells_fail(tmp_path):
    committed = _rows()
    fresh = committed[committed["method"] != "brcd"]
    for name, frame in (("a", committed), ("b", fresh)):
        (tmp_path / name / "tables").mkdir(parents=True)
        frame.to_csv(tmp_path / name / "tables" / "main_rows.csv", index=False)
    _, summary = compare_results(str(tmp_path / "a"), str(tmp_path / "b"))
    assert summary.loc[0, "result"] == "FAIL" and summary.loc[0, "missing_cells"] == 1


def test_single_seed_tables_use_a_fixed_sigma():
    """Smoke has one seed per cell: no spread to measure, so the fixed sigma decides."""
    from brcd_lib.experiments.compare import SIGMA_NO_SPREAD

    one = _rows(seeds=1)
    same = compare_study(one, one)
    assert (same["z"] == 0).all() and (same["sigma"] == SIGMA_NO_SPREAD).all()
    moved = compare_study(one, _rows(seeds=1, shift=3 * SIGMA_NO_SPREAD))
    assert (moved.loc[moved["method"] != "teacher", "z"].abs() > Z_PASS).all()

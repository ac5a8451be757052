"""The rerun check: cells within two seed standard deviations pass, a moved cell fails."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brcd_lib.experiments.compare import compare_results, compare_study, format_summary

# the documented rule (docs and the module's docstring): a cell passes when |z| <= 2; a table
# without any seed spread uses sigma = 0.01 mAP. Literals, so that a changed constant fails here.
Z_THRESHOLD = 2.0
SIGMA_FIXED = 0.01


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
    assert abs(kd["z"]) > Z_THRESHOLD
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
    one = _rows(seeds=1)
    same = compare_study(one, one)
    assert (same["z"] == 0).all() and (same["sigma"] == SIGMA_FIXED).all()
    moved = compare_study(one, _rows(seeds=1, shift=3 * SIGMA_FIXED))
    assert (moved.loc[moved["method"] != "teacher", "z"].abs() > Z_THRESHOLD).all()


# ------------------------------------------------------------------ z values known by hand
def _cell_rows(cells: dict, *, single: dict | None = None, extra: dict | None = None) -> pd.DataFrame:
    """Rows of one study: ``cells`` maps a method to its per-seed values (32 bits, symmetric);
    ``single`` maps a method to the value of its one run (seed 0)."""
    rows = []
    for method, values in cells.items():
        for seed, v in enumerate(values):
            rows.append(dict(method=method, variant=method, bits=32, paradigm="symmetric",
                             seed=seed, value=v, status="ok", **(extra or {})))
    for method, v in (single or {}).items():
        rows.append(dict(method=method, variant=method, bits=32, paradigm="symmetric", seed=0,
                         value=v, status="ok", **(extra or {})))
    return pd.DataFrame(rows)


def _write(root, name, frame):
    (root / "tables").mkdir(parents=True, exist_ok=True)
    frame.to_csv(root / "tables" / name, index=False)


def _cell(cells, method):
    sel = cells[cells["method"] == method]
    assert len(sel) == 1
    return sel.iloc[0]


@pytest.mark.parametrize("shift, z, result", [(0.015, 1.5, "PASS"), (0.025, 2.5, "FAIL"),
                                              (-0.025, -2.5, "FAIL")])
def test_a_cell_moved_by_a_known_number_of_seed_sds(tmp_path, shift, z, result):
    """KD's committed seeds 0.60, 0.61, 0.62: mean 0.61, sample SD (ddof 1)
    sqrt((0.01^2 + 0 + 0.01^2) / 2) = 0.01 (the population SD, ddof 0, would be 0.00816).
    Every fresh seed moved by ``shift``: z = shift / 0.01. 2.5 SDs fail at the threshold 2
    (they would pass at 3); 1.5 SDs pass."""
    committed = _cell_rows({"kd": [0.60, 0.61, 0.62]})
    fresh = _cell_rows({"kd": [0.60 + shift, 0.61 + shift, 0.62 + shift]})
    _write(tmp_path / "a", "main_rows.csv", committed)
    _write(tmp_path / "b", "main_rows.csv", fresh)
    cells, summary = compare_results(str(tmp_path / "a"), str(tmp_path / "b"))
    kd = _cell(cells, "kd")
    assert kd["std_committed"] == pytest.approx(0.01)
    assert kd["sigma"] == pytest.approx(0.01) and kd["sigma_source"] == "cell"
    assert kd["difference"] == pytest.approx(shift)
    assert kd["z"] == pytest.approx(z)
    assert summary["result"].tolist() == [result]
    assert summary["max_abs_z"].iloc[0] == pytest.approx(abs(z))
    assert "within 2 committed seed standard deviations" in format_summary(summary, cells)


def test_a_single_run_cell_uses_the_median_of_the_table_s_seed_sds(tmp_path):
    """Three cells with seed SDs 0.01, 0.02 and 0.04 (values 0.6 +- d: SD d); the teacher has one
    run, so its sigma is the median, 0.02 (the maximum would be 0.04). The teacher moved by 0.05:
    z = 0.05 / 0.02 = 2.5, a FAIL (it would be 1.25, a PASS, with the maximum)."""
    spreads = {"kd": [0.59, 0.60, 0.61], "sp": [0.58, 0.60, 0.62], "brcd": [0.56, 0.60, 0.64]}
    committed = _cell_rows(spreads, single={"teacher": 0.80})
    fresh = _cell_rows(spreads, single={"teacher": 0.85})
    _write(tmp_path / "a", "main_rows.csv", committed)
    _write(tmp_path / "b", "main_rows.csv", fresh)
    cells, summary = compare_results(str(tmp_path / "a"), str(tmp_path / "b"))
    for method, sd in (("kd", 0.01), ("sp", 0.02), ("brcd", 0.04)):
        assert _cell(cells, method)["sigma"] == pytest.approx(sd)
        assert _cell(cells, method)["z"] == 0
    teacher = _cell(cells, "teacher")
    assert teacher["sigma_source"] == "table median"
    assert teacher["sigma"] == pytest.approx(0.02)
    assert teacher["z"] == pytest.approx(2.5)
    assert summary["result"].tolist() == ["FAIL"]


STUDIES = ("teachers", "main", "ablations", "sensitivity", "generality", "teacher_seeds", "pairs")


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_table_is_compared(tmp_path, study):
    """Each study's rows file is compared on its own: a cell moved by 2.5 seed SDs in that table
    alone fails it (``pairs`` included)."""
    extra = {"teacher_backbone": "small_cnn", "student_backbone": "tiny_cnn", "teacher_seed": 0}
    committed = _cell_rows({"kd": [0.60, 0.61, 0.62]}, extra=extra)
    fresh = _cell_rows({"kd": [0.625, 0.635, 0.645]}, extra=extra)
    _write(tmp_path / "a", f"{study}_rows.csv", committed)
    _write(tmp_path / "b", f"{study}_rows.csv", fresh)
    cells, summary = compare_results(str(tmp_path / "a"), str(tmp_path / "b"))
    assert summary["table"].tolist() == [study]
    assert summary["result"].tolist() == ["FAIL"]
    assert _cell(cells, "kd")["z"] == pytest.approx(2.5)

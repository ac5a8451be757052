"""The rerun check: cells within two seed standard deviations pass, a moved cell fails."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brcd_lib.experiments.compare import (compare_results, compare_study, format_summary,
                                          seed_differences, settings_differences)

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


# ------------------------------------------------------------------ exact outputs
# Values are multiples of 1/8, so means, seed SDs and z are exact in binary floats: a cell at
# |z| = 2.0 or 1.0 sits exactly on the boundary.
SUMMARY_COLUMNS = ["table", "cells", "max_abs_z", "within_1_sigma", "missing_cells", "result",
                   "note"]
CELL_COLUMNS = ["method", "variant", "bits", "paradigm", "mean_committed", "std_committed",
                "n_committed", "mean_fresh", "std_fresh", "n_fresh", "sigma", "sigma_source",
                "difference", "z"]
EIGHTHS = [0.375, 0.5, 0.625]  # mean 0.5, SD sqrt((0.125^2 + 0 + 0.125^2) / 2) = 0.125


def _shifted(values, shift):
    return [v + shift for v in values]


def _boundary_comparison(tmp_path):
    """Three cells with SD 0.125, committed vs a rerun where "two" moved by 0.25, "one" by 0.125
    and "same" not at all: ``compare_results``'s (cells, summary)."""
    committed = _cell_rows({"two": EIGHTHS, "one": EIGHTHS, "same": EIGHTHS})
    fresh = _cell_rows({"two": _shifted(EIGHTHS, 0.25), "one": _shifted(EIGHTHS, 0.125),
                        "same": EIGHTHS})
    _write(tmp_path / "a", "main_rows.csv", committed)
    _write(tmp_path / "b", "main_rows.csv", fresh)
    return compare_results(str(tmp_path / "a"), str(tmp_path / "b"))


def test_a_cell_exactly_two_sds_away_passes_and_one_sd_counts_as_within(tmp_path):
    """Three cells with SD 0.125: "two" moved by 0.25 (z = 0.25 / 0.125 = 2.0 exactly, which still
    passes: |z| <= 2), "one" by 0.125 (z = 1.0, within one sigma: |z| <= 1), "same" not at all.
    Within one sigma: "one" and "same", 2 of 3 cells."""
    cells, summary = _boundary_comparison(tmp_path)
    assert _cell(cells, "two")["z"] == 2.0 and _cell(cells, "one")["z"] == 1.0
    assert _cell(cells, "same")["z"] == 0.0
    assert list(summary.columns) == SUMMARY_COLUMNS
    row = summary.iloc[0].to_dict()
    assert row == {"table": "main", "cells": 3, "max_abs_z": 2.0,
                   "within_1_sigma": pytest.approx(2 / 3), "missing_cells": 0, "result": "PASS",
                   "note": ""}


def test_cells_table_columns_index_and_table_names_across_several_tables(tmp_path):
    """teachers: committed only (not rerun); main: both; ablations: rerun only (committed missing);
    sensitivity: both; the other studies: neither (skipped). A missing table on one side must not
    stop the tables after it from being compared."""
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a, "teachers_rows.csv", _cell_rows({"teacher": EIGHTHS}))
    for root in (a, b):
        _write(root, "main_rows.csv", _cell_rows({"kd": EIGHTHS, "brcd": EIGHTHS}))
        _write(root, "sensitivity_rows.csv", _cell_rows({"brcd": EIGHTHS}))
    _write(b, "ablations_rows.csv", _cell_rows({"kd": EIGHTHS}))
    cells, summary = compare_results(str(a), str(b))

    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary["table"].tolist() == ["teachers", "main", "ablations", "sensitivity"]
    assert summary["result"].tolist() == ["FAIL", "PASS", "FAIL", "PASS"]
    assert summary["cells"].tolist() == [0, 2, 0, 1]
    assert summary["note"].tolist() == [
        "not rerun: the rerun wrote no teachers_rows.csv",
        "",
        f"the committed table {a}/tables/ablations_rows.csv is missing (the rerun wrote one); "
        "restore it (git checkout -- <file>)",
        ""]
    for col in ("max_abs_z", "within_1_sigma", "missing_cells"):
        assert summary[col].isna().tolist() == [True, False, True, False]

    assert list(cells.columns) == ["table"] + CELL_COLUMNS
    assert cells["table"].tolist() == ["main", "main", "sensitivity"]
    assert cells.index.tolist() == [0, 1, 2]


def test_no_table_compared_gives_empty_cells(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cells, summary = compare_results(str(tmp_path / "a"), str(tmp_path / "b"))
    assert cells.empty and summary.empty
    _write(tmp_path / "a", "pairs_rows.csv", _cell_rows({"kd": EIGHTHS}))
    cells, summary = compare_results(str(tmp_path / "a"), str(tmp_path / "b"))
    assert cells.empty
    assert summary["table"].tolist() == ["pairs"] and summary["result"].tolist() == ["FAIL"]


def test_a_cell_only_in_the_rerun_is_kept_and_fails(tmp_path):
    """The join is outer: a cell the committed table lacks is a missing cell too."""
    committed = _cell_rows({"kd": EIGHTHS})
    fresh = _cell_rows({"kd": EIGHTHS, "new": EIGHTHS})
    _write(tmp_path / "a", "main_rows.csv", committed)
    _write(tmp_path / "b", "main_rows.csv", fresh)
    cells, summary = compare_results(str(tmp_path / "a"), str(tmp_path / "b"))
    new = _cell(cells, "new")
    assert np.isnan(new["mean_committed"]) and new["mean_fresh"] == 0.5 and new["n_fresh"] == 3
    assert np.isnan(new["difference"]) and np.isnan(new["z"])
    assert summary.loc[0, "missing_cells"] == 1 and summary.loc[0, "result"] == "FAIL"


def test_only_ok_rows_with_a_value_make_a_cell():
    """A failed run (status other than "ok") is left out even when it has a value; a row without
    a value is left out; without a status column every row with a value counts."""
    ok = _cell_rows({"kd": EIGHTHS})
    bad = pd.DataFrame([dict(method="kd", variant="kd", bits=32, paradigm="symmetric", seed=3,
                             value=0.9, status="failed"),
                        dict(method="kd", variant="kd", bits=32, paradigm="symmetric", seed=4,
                             value=np.nan, status="ok"),
                        dict(method="sp", variant="sp", bits=32, paradigm="symmetric", seed=0,
                             value=0.9, status="failed")])
    cells = compare_study(pd.concat([ok, bad], ignore_index=True), ok)
    assert list(cells.columns) == CELL_COLUMNS
    assert cells["method"].tolist() == ["kd"]
    kd = _cell(cells, "kd")
    assert (kd["mean_committed"], kd["std_committed"], kd["n_committed"]) == (0.5, 0.125, 3)
    assert kd["z"] == 0.0
    no_status = ok.drop(columns="status")
    cells = compare_study(no_status, no_status)
    assert cells["method"].tolist() == ["kd"]
    assert (_cell(cells, "kd")["n_committed"], _cell(cells, "kd")["n_fresh"]) == (3, 3)


def test_a_missing_key_value_is_a_cell_of_its_own():
    """A row whose variant is empty (NaN) forms its own cell rather than being dropped."""
    rows = _cell_rows({"kd": EIGHTHS, "sp": [0.5, 0.75]})
    rows.loc[rows["method"] == "sp", "variant"] = np.nan
    cells = compare_study(rows, rows)
    sp = _cell(cells, "sp")
    assert pd.isna(sp["variant"]) and sp["n_committed"] == 2 and sp["mean_committed"] == 0.625


def test_key_columns_are_those_both_sides_have():
    """"axis" only in the committed rows: the cells are keyed without it."""
    committed = _cell_rows({"kd": EIGHTHS}, extra={"axis": "lambda"})
    fresh = _cell_rows({"kd": _shifted(EIGHTHS, 0.125)})
    cells = compare_study(committed, fresh)
    assert list(cells.columns) == CELL_COLUMNS
    assert _cell(cells, "kd")["z"] == 1.0


def test_a_zero_seed_spread_falls_back_to_the_table_median():
    """"flat" has two identical runs: SD exactly 0, not a usable sigma, so it takes the median
    of the other cells' SDs (0.125 and 0.25 -> 0.1875); moved by 0.375: z = 0.375 / 0.1875 = 2."""
    spreads = {"a": EIGHTHS, "b": [0.25, 0.5, 0.75], "flat": [0.5, 0.5]}
    fresh = dict(spreads, flat=[0.875, 0.875])
    cells = compare_study(_cell_rows(spreads), _cell_rows(fresh))
    flat = _cell(cells, "flat")
    assert flat["std_committed"] == 0.0
    assert flat["sigma"] == 0.1875 and flat["sigma_source"] == "table median"
    assert flat["z"] == 2.0
    assert _cell(cells, "a")["sigma_source"] == "cell"


def test_a_table_without_seed_spread_names_the_fixed_sigma():
    """Every cell a single run or two identical runs: sigma 0.01; moved by 0.015: z = 1.5."""
    committed = _cell_rows({"flat": [0.5, 0.5]}, single={"teacher": 0.75})
    fresh = _cell_rows({"flat": [0.515, 0.515]}, single={"teacher": 0.75})
    cells = compare_study(committed, fresh)
    assert cells["sigma_source"].tolist() == ["fixed 0.01 (no seed spread)"] * 2
    assert cells["sigma"].tolist() == [0.01, 0.01]
    assert _cell(cells, "flat")["z"] == pytest.approx(1.5)
    assert _cell(cells, "teacher")["z"] == 0.0


# ------------------------------------------------------------------ seed and settings notes
def _seeded(seeds, teacher_seeds=None):
    frame = pd.DataFrame({"seed": seeds, "value": 0.5})
    if teacher_seeds is not None:
        frame["teacher_seed"] = teacher_seeds
    return frame


def test_seed_differences_text():
    assert seed_differences(_seeded([0, 1, 2], [0, 1, 1]), _seeded([0, 1, 2], [1, 0, 0])) == ""
    assert (seed_differences(_seeded([0, 1, 2], [0, 1, 1]), _seeded([1, 0, 0], [0, 0, 0]))
            == "seed lists differ: committed 0, 1, 2, rerun 0, 1; "
               "teacher seed lists differ: committed 0, 1, rerun 0")
    assert (seed_differences(_seeded([np.nan, np.nan]), _seeded([0, 0]))
            == "seed lists differ: committed none, rerun 0")
    # a seed column on one side only is not compared
    assert seed_differences(_seeded([0], [0]), _seeded([0])) == ""
    assert seed_differences(_seeded([0]), _seeded([0], [3])) == ""


def test_settings_differences_text():
    committed = {"train": {"epochs": 1, "lr": 0.1}, "seeds": [0, 1, 2], "gone": None, "same": {}}
    current = {"train": {"epochs": 2, "lr": 0.1}, "seeds": [0, 1], "new": None, "same": {}}
    assert settings_differences(committed, current) == [
        "gone: None -> (absent)",
        "new: (absent) -> None",
        "seeds: [0, 1, 2] -> [0, 1]",
        "train.epochs: 1 -> 2"]
    assert settings_differences(current, current) == []


def test_a_setting_one_side_lacks_differs_from_every_value():
    """A missing setting is "(absent)" in the text but is not a value: a setting whose value is
    the string "(absent)" on one side and that the other side lacks is still a difference."""
    assert settings_differences({"x": "(absent)"}, {}) == ["x: '(absent)' -> (absent)"]
    assert settings_differences({}, {"y": None}) == ["y: (absent) -> None"]
    assert settings_differences({"z": float("nan")}, {"z": 0.0}) == ["z: nan -> 0.0"]


@pytest.mark.parametrize("n, tail", [(8, []), (9, ["... and 1 more"]), (10, ["... and 2 more"])])
def test_settings_differences_are_cut_after_eight(n, tail):
    committed = {f"k{i}": 0 for i in range(n)}
    current = {f"k{i}": 1 for i in range(n)}
    first = [f"k{i}: 0 -> 1" for i in range(min(n, 8))]
    assert settings_differences(committed, current) == first + tail
    assert settings_differences(committed, current, limit=2) == ["k0: 0 -> 1", "k1: 0 -> 1",
                                                                 f"... and {n - 2} more"]


# ------------------------------------------------------------------ the report text
def test_format_summary_text_in_full():
    summary = pd.DataFrame([
        {"table": "main", "cells": 7, "max_abs_z": 3.0, "within_1_sigma": 1.0,
         "missing_cells": 0, "result": "FAIL", "note": ""},
        {"table": "ablations", "cells": 3, "max_abs_z": 0.5, "within_1_sigma": 0.5,
         "missing_cells": 1, "result": "FAIL",
         "note": "seed lists differ: committed 0, 1, rerun 0"},
        {"table": "pairs", "cells": 0, "max_abs_z": np.nan, "within_1_sigma": np.nan,
         "missing_cells": np.nan, "result": "FAIL",
         "note": "not rerun: the rerun wrote no pairs_rows.csv"}])
    # seven cells in an order unrelated to |z|; the five largest |z|: -3, 2.5, 1.5, 1, 0.5
    z = [0.5, -3.0, 1.0, 2.5, -0.25, 1.5, 0.0]
    fresh = [0.605, 0.57, 0.61, 0.625, 0.5975, 0.615, 0.6]
    cells = pd.DataFrame({"table": "main", "method": list("abcdefg"), "variant": "v",
                          "setting": [np.nan, "s1", np.nan, np.nan, np.nan, np.nan, np.nan],
                          "bits": 32, "paradigm": "symmetric", "mean_committed": 0.6,
                          "mean_fresh": fresh, "sigma": 0.01,
                          "sigma_source": ["cell", "table median"] + ["cell"] * 5, "z": z})
    assert format_summary(summary, cells) == "\n".join([
        "rerun vs committed results (a table passes when every cell is within 2 committed seed "
        "standard deviations)",
        "FAIL main              7 cells, max |z| 3.00, within 1 sigma 100 %",
        "FAIL ablations         3 cells, max |z| 0.50, within 1 sigma 50 %, 1 missing",
        "     seed lists differ: committed 0, 1, rerun 0",
        "FAIL pairs",
        "     not rerun: the rerun wrote no pairs_rows.csv",
        "largest differences:",
        "  main: b, v, s1, 32, symmetric: 0.6000 -> 0.5700 (z = -3.00, sigma 0.0100 from the "
        "table median)",
        "  main: d, v, 32, symmetric: 0.6000 -> 0.6250 (z = +2.50, sigma 0.0100 from the cell)",
        "  main: f, v, 32, symmetric: 0.6000 -> 0.6150 (z = +1.50, sigma 0.0100 from the cell)",
        "  main: c, v, 32, symmetric: 0.6000 -> 0.6100 (z = +1.00, sigma 0.0100 from the cell)",
        "  main: a, v, 32, symmetric: 0.6000 -> 0.6050 (z = +0.50, sigma 0.0100 from the cell)"])


def test_format_summary_of_a_passing_comparison(tmp_path):
    cells, summary = _boundary_comparison(tmp_path)
    # within one sigma 2 of 3 cells: 66.7 -> "67 %"
    assert format_summary(summary, cells, worst=2) == "\n".join([
        "rerun vs committed results (a table passes when every cell is within 2 committed seed "
        "standard deviations)",
        "PASS main              3 cells, max |z| 2.00, within 1 sigma 67 %",
        "largest differences:",
        "  main: two, two, 32, symmetric: 0.5000 -> 0.7500 (z = +2.00, sigma 0.1250 from the cell)",
        "  main: one, one, 32, symmetric: 0.5000 -> 0.6250 (z = +1.00, sigma 0.1250 from the "
        "cell)"])

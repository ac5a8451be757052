"""Compare a rerun of a profile with its committed results, cell by cell.

A *cell* is one entry of a results table: the mean over seeds of one method (or variant, or
setting) at one code length in one paradigm, computed from the study's rows
(``tables/<study>_rows.csv``). For each cell

    z = (fresh mean - committed mean) / sigma

where ``sigma`` is the committed cell's standard deviation over seeds; a cell with a single run
(the teacher, LSH, ITQ, single-seed grids) or a zero spread uses the table's median seed standard
deviation instead, and a table without any seed spread (single-seed profiles such as smoke)
uses the fixed :data:`SIGMA_NO_SPREAD` (0.01 mAP). A table **passes** when every cell has ``|z| <= Z_PASS`` (2): a rerun of the
same seeds on another machine may drift by float rounding (different CPUs, thread counts and
library builds round differently, and training amplifies the last bits), but not by more than
twice the spread between seeds.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

__all__ = ["Z_PASS", "SIGMA_NO_SPREAD", "KEY_COLUMNS", "compare_study", "compare_results",
           "format_summary", "seed_differences", "settings_differences"]

Z_PASS = 2.0
SIGMA_NO_SPREAD = 0.01
"""The sigma of a table whose cells all have a single run (no seed spread to measure)."""
KEY_COLUMNS = ("method", "variant", "axis", "setting", "parameter", "teacher_seed",
               "teacher_backbone", "student_backbone", "bits", "paradigm")
STUDY_FILES = ("teachers_rows.csv", "main_rows.csv", "ablations_rows.csv",
               "sensitivity_rows.csv", "generality_rows.csv", "teacher_seeds_rows.csv",
               "pairs_rows.csv")


def _cells(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    ok = rows[(rows.get("status", "ok") == "ok") & rows["value"].notna()]
    g = ok.groupby(keys, dropna=False)["value"]
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()})


def compare_study(committed: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """Cell-level comparison of two row frames of one study: keys, committed mean / std / n,
    fresh mean / n, difference, the sigma used and z. Cells present on one side only have a NaN
    difference (and fail)."""
    keys = [k for k in KEY_COLUMNS if k in committed.columns and k in fresh.columns]
    a, b = _cells(committed, keys), _cells(fresh, keys)
    cells = a.add_suffix("_committed").join(b.add_suffix("_fresh"), how="outer")
    spread = cells["std_committed"].where(cells["std_committed"] > 0)
    if spread.notna().any():
        fallback, source = float(spread.median()), "table median"
    else:
        fallback, source = SIGMA_NO_SPREAD, "fixed 0.01 (no seed spread)"
    cells["sigma"] = spread.fillna(fallback)
    cells["sigma_source"] = np.where(spread.notna(), "cell", source)
    cells["difference"] = cells["mean_fresh"] - cells["mean_committed"]
    cells["z"] = cells["difference"] / cells["sigma"]
    return cells.reset_index()


SEED_COLUMNS = ("seed", "teacher_seed")


def _seed_list(values: pd.Series) -> str:
    seeds = sorted({int(v) for v in values.dropna()})
    return ", ".join(map(str, seeds)) or "none"


def seed_differences(committed: pd.DataFrame, fresh: pd.DataFrame) -> str:
    """``"seed lists differ: committed 0, 1, 2, rerun 0, 1"`` (and the same for teacher seeds)
    when the two row frames of a study were run with other seeds; empty when they agree."""
    notes = []
    for col in SEED_COLUMNS:
        if col in committed.columns and col in fresh.columns:
            a, b = _seed_list(committed[col]), _seed_list(fresh[col])
            if a != b:
                what = col.replace("_", " ")
                notes.append(f"{what} lists differ: committed {a}, rerun {b}")
    return "; ".join(notes)


def _missing(table: str, note: str) -> dict:
    return {"table": table, "cells": 0, "max_abs_z": np.nan, "within_1_sigma": np.nan,
            "missing_cells": np.nan, "result": "FAIL", "note": note}


def compare_results(committed_root: str, fresh_root: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every study present in ``committed_root/tables`` or ``fresh_root/tables``: the cells (with
    a ``table`` column) and a summary per table (cells, max |z|, share of cells within one sigma,
    pass / fail, and a ``note``: a table on one side only, seed lists that differ). A table the
    rerun wrote that the committed results lack fails (a deleted committed table is not a pass)."""
    all_cells, summary = [], []
    for name in STUDY_FILES:
        old = os.path.join(committed_root, "tables", name)
        new = os.path.join(fresh_root, "tables", name)
        table = name.removesuffix("_rows.csv")
        if not os.path.exists(old) and not os.path.exists(new):
            continue
        if not os.path.exists(old):
            summary.append(_missing(table, f"the committed table {old} is missing (the rerun "
                                           f"wrote one); restore it (git checkout -- <file>)"))
            continue
        if not os.path.exists(new):
            summary.append(_missing(table, "not rerun: the rerun wrote no " + name))
            continue
        committed, fresh = pd.read_csv(old), pd.read_csv(new)
        cells = compare_study(committed, fresh)
        cells.insert(0, "table", table)
        all_cells.append(cells)
        az = cells["z"].abs()
        missing = int(cells["difference"].isna().sum())
        ok = missing == 0 and bool((az <= Z_PASS).all())
        summary.append({"table": table, "cells": len(cells), "max_abs_z": float(az.max()),
                        "within_1_sigma": float((az <= 1).mean()), "missing_cells": missing,
                        "result": "PASS" if ok else "FAIL",
                        "note": seed_differences(committed, fresh)})
    cells = pd.concat(all_cells, ignore_index=True) if all_cells else pd.DataFrame()
    return cells, pd.DataFrame(summary)


def settings_differences(committed: dict, current: dict, *, limit: int = 8) -> list[str]:
    """``["seeds: [0, 1, 2] -> [0, 1]", ...]``: the settings (dotted paths) whose committed value
    differs from the current one (at most ``limit``, then a count)."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v:
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    def shown(d, k):  # a setting one side lacks is "(absent)", never a value that equals a string
        return repr(d[k]) if k in d else "(absent)"

    a, b = flat(committed), flat(current)
    diffs = [f"{k}: {shown(a, k)} -> {shown(b, k)}" for k in sorted(set(a) | set(b))
             if (k in a) != (k in b) or (k in a and a[k] != b[k])]
    if len(diffs) > limit:
        diffs = diffs[:limit] + [f"... and {len(diffs) - limit} more"]
    return diffs


def format_summary(summary: pd.DataFrame, cells: pd.DataFrame, *, worst: int = 5) -> str:
    """Readable report: one PASS / FAIL line per table, then the cells with the largest |z|."""
    lines = [f"rerun vs committed results (a table passes when every cell is within {Z_PASS:g} "
             "committed seed standard deviations)"]
    for _, r in summary.iterrows():
        if r["cells"]:
            lines.append(f"{r['result']:<4} {r['table']:<14} {int(r['cells']):4d} cells, max |z| "
                         f"{r['max_abs_z']:.2f}, within 1 sigma {100 * r['within_1_sigma']:.0f} %"
                         + (f", {int(r['missing_cells'])} missing" if r["missing_cells"] else ""))
        else:
            lines.append(f"{r['result']} {r['table']}")
        if isinstance(r.get("note"), str) and r["note"]:
            lines.append(f"     {r['note']}")
    if not cells.empty:
        top = cells.assign(abs_z=cells["z"].abs()).sort_values("abs_z", ascending=False).head(worst)
        lines.append("largest differences:")
        for _, c in top.iterrows():
            what = ", ".join(str(c[k]) for k in KEY_COLUMNS if k in c and pd.notna(c[k]))
            lines.append(f"  {c['table']}: {what}: {c['mean_committed']:.4f} -> {c['mean_fresh']:.4f} "
                         f"(z = {c['z']:+.2f}, sigma {c['sigma']:.4f} from the {c['sigma_source']})")
    return "\n".join(lines)

"""The backbone-pairs table of notebook 06: test mAP of no KD / KD / BRCD for every teacher /
student pair, beside each backbone's parameter count and measured query latency."""
from __future__ import annotations

import pandas as pd

from .stats import paired_against
from .tables import flatten_columns, mean_std_table

__all__ = ["pairs_table", "pairs_paired_differences", "pair_references"]

INDEX = ["axis", "teacher_backbone", "student_backbone", "method"]


def pairs_table(rows: pd.DataFrame, cost: pd.DataFrame) -> pd.DataFrame:
    """One line per pair and method (mean ± std over seeds, n seeds, per paradigm) with the
    parameters (millions, hash head included) and the batch-1 query latency (ms) of the pair's
    teacher and student, from ``cost`` (:func:`brcd_lib.reporting.efficiency.efficiency_table`
    of the pair networks, ``model`` = backbone name)."""
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows
    _, display = mean_std_table(ok, index=INDEX, columns=["paradigm"], mark_best=False)
    table = flatten_columns(display)  # the index as columns, no positional 'index' column
    seeds = ok.groupby(INDEX, sort=False)["seed"].nunique().rename("seeds").reset_index()
    table = table.merge(seeds, on=INDEX, how="left")
    per = cost.set_index("model")
    for role in ("teacher", "student"):
        names = table[f"{role}_backbone"].where(table[f"{role}_backbone"] != "(teacher)",
                                                table["teacher_backbone"])
        table[f"{role} params (M)"] = names.map(per["params_M"]).round(4)
        table[f"{role} latency b1 (ms)"] = names.map(per["latency_ms_b1"]).round(3)
    return table


def pairs_paired_differences(rows: pd.DataFrame) -> pd.DataFrame:
    """BRCD minus KD and minus no KD for every pair and paradigm: paired over seeds, mean,
    95 % t-interval, p-value, wins."""
    ok = rows[rows["method"] != "teacher"]
    return paired_against(ok, column="method", reference="brcd", others=["kd", "none"],
                          pair_on=["seed"], by=("teacher_backbone", "student_backbone", "paradigm"),
                          label=lambda m: {"kd": "KD", "none": "Student (no KD)"}[m])


def pair_references(rows: pd.DataFrame, lsh: pd.DataFrame | None = None) -> pd.DataFrame:
    """Reference lines for the pairs figure: each pair's teacher (its own row of the figure,
    "teacher → student" as in the notebook's ``pair`` column) in both paradigms, and LSH on raw
    pixels (``lsh``: rows with ``method == "LSH"`` at the pairs' code length; symmetric only) across
    the whole panel. Columns: paradigm, label, value, category (None for LSH)."""
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows
    teachers = ok[ok["method"] == "teacher"].groupby(["teacher_backbone", "paradigm"])["value"].mean()
    students = ok[ok["method"] != "teacher"][["teacher_backbone", "student_backbone"]].drop_duplicates()
    out = []
    for _, pair in students.iterrows():
        for paradigm in ("symmetric", "asymmetric"):
            key = (pair["teacher_backbone"], paradigm)
            if key in teachers.index:
                out.append({"paradigm": paradigm, "label": f"teacher ({pair['teacher_backbone']})",
                            "value": float(teachers[key]),
                            "category": f"{pair['teacher_backbone']} → {pair['student_backbone']}"})
    if lsh is not None and len(lsh):
        bits = set(ok["bits"].dropna().astype(int))
        at = lsh[(lsh["method"] == "LSH") & lsh["bits"].astype(int).isin(bits)]
        if len(at):
            out.append({"paradigm": "symmetric", "label": "LSH on raw pixels",
                        "value": float(at["value"].mean()), "category": None})
    return pd.DataFrame(out, columns=["paradigm", "label", "value", "category"])

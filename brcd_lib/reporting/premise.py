"""The premise of every distillation claim: a teacher clearly above the student it distils into,
and a student worth distilling into.

The paper distils a ViT-B/16 teacher into an EfficientNet-B0 student because the teacher
retrieves better; a claim such as "BRCD beats KD" only tests distillation when there is a gap to
close. For one setting (a profile's teacher and student at one code length, or one backbone pair,
or one hashing model), in the **symmetric** paradigm (the asymmetric paradigm scores the
undistilled student against the teacher's codes, which it never saw):

* **teacher above the undistilled student**: the teacher's mean test mAP minus the undistilled
  student's (``method == "none"``) is at least ``sds`` (2) seed standard deviations of that
  difference, ``sqrt(sd_teacher**2 + sd_student**2)``, each over its seeds (a single teacher run
  contributes no spread; the student's seed spread is then the whole of it). The unit is the
  seed: where a setting holds the undistilled student once per teacher (the teacher-seed study
  trains it under each teacher, and only its stopping reads the teacher, through the asymmetric
  validation), its runs of one student seed are averaged first, so that n counts student seeds,
  not replicates of them (each teacher row is one teacher run: rows of different teacher
  backbones or hashing models may share a teacher seed, so teacher rows are never merged);
* **undistilled student above LSH on raw pixels**: its mean test mAP is above the LSH row's.

:func:`premise_check` gives one line per setting with both parts and a status: ``met``,
``not met`` (with the part that fails), or ``not measured`` (a part's rows are missing). Whether
the undistilled student has converged is a property of the training recipe, not of the rows;
this check reads only the rows.
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

__all__ = ["premise_check", "PREMISE_RULE", "SDS", "MET", "NOT_MET", "NOT_MEASURED"]

SDS = 2.0
MET, NOT_MET, NOT_MEASURED = "met", "not met", "not measured"
PREMISE_RULE = ("symmetric paradigm, per code length: the teacher's mean test mAP is above the "
                "undistilled student's by at least 2 seed standard deviations of the difference "
                "(sqrt(sd_teacher^2 + sd_student^2) over seeds; a seed that appears in several "
                "rows, e.g. one undistilled student per teacher seed, is averaged to one unit), "
                "and the undistilled student's mean is above LSH on raw pixels")


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    if "status" in rows:
        rows = rows[rows["status"] == "ok"]
    return rows[rows["value"].notna()]


def _per_unit(rows: pd.DataFrame, unit: str) -> pd.Series:
    """The rows' values, one per ``unit`` (the mean of the rows that share it), or every value
    when the rows have no such column."""
    if unit not in rows or not rows[unit].duplicated().any():
        return rows["value"]
    return rows.groupby(unit, dropna=False)["value"].mean()


def _stats(values: pd.Series) -> tuple[float, float, int]:
    n = int(values.count())
    mean = float(values.mean()) if n else math.nan
    sd = float(values.std(ddof=1)) if n > 1 else 0.0 if n == 1 else math.nan
    return mean, sd, n


def premise_check(rows: pd.DataFrame, *, lsh: pd.DataFrame | None = None,
                  by: Sequence[str] = (), teacher_by: Sequence[str] | None = None,
                  sds: float = SDS) -> pd.DataFrame:
    """One line per setting (``by`` columns, then ``bits``) of ``rows``, which hold the teacher
    (``method == "teacher"``) and the undistilled student (``"none"``).

    ``teacher_by``: the columns that identify a setting's teacher rows (default ``by``; e.g. the
    teacher backbone only, for backbone pairs whose teacher rows are shared by several students).
    ``lsh``: the rows holding ``method == "LSH"`` per code length (default: ``rows``).

    Columns: ``by``, ``bits``, teacher mean / sd / n, student (no KD) mean / sd / n, ``gap``,
    ``needed`` (``sds`` standard deviations of the difference), ``lsh``, ``teacher_above``,
    ``student_above_lsh``, ``status`` and ``reason`` (a sentence naming what fails)."""
    by = list(by)
    teacher_by = by if teacher_by is None else list(teacher_by)
    ok = _ok(rows)
    sym = ok[ok["paradigm"] == "symmetric"] if "paradigm" in ok else ok
    ref = _ok(lsh) if lsh is not None else ok
    ref = ref[(ref["method"] == "LSH")]
    if "paradigm" in ref:
        ref = ref[ref["paradigm"] == "symmetric"]
    lsh_by_bits = ref.groupby("bits")["value"].mean() if len(ref) else pd.Series(dtype=float)
    students = sym[sym["method"] == "none"]
    teachers = sym[sym["method"] == "teacher"]
    settings = students.groupby(by + ["bits"], sort=True) if len(students) else []
    out = []
    for key, sub in settings:
        key = key if isinstance(key, tuple) else (key,)
        fields = dict(zip(by + ["bits"], key))
        t_rows = teachers
        for col in teacher_by + ["bits"]:
            t_rows = t_rows[t_rows[col] == fields[col]]
        t_mean, t_sd, t_n = _stats(t_rows["value"])  # one row per teacher run
        s_mean, s_sd, s_n = _stats(_per_unit(sub, "seed"))
        gap = t_mean - s_mean
        needed = sds * math.sqrt((t_sd if t_n > 1 else 0.0) ** 2 + (s_sd if s_n > 1 else 0.0) ** 2)
        lsh_value = float(lsh_by_bits.get(fields["bits"], math.nan))
        teacher_above = bool(t_n and s_n and gap >= needed and gap > 0)
        above_lsh = bool(math.isfinite(lsh_value) and s_mean > lsh_value)
        reasons = []
        if not t_n:
            reasons.append("no teacher rows")
        elif not teacher_above:
            reasons.append(f"teacher {t_mean:.4f} vs undistilled student {s_mean:.4f}: gap "
                           f"{gap:+.4f} < {sds:g} SDs ({needed:.4f})")
        if not math.isfinite(lsh_value):
            reasons.append("no LSH row")
        elif not above_lsh:
            reasons.append(f"undistilled student {s_mean:.4f} <= LSH {lsh_value:.4f}")
        failed = (t_n and not teacher_above) or (math.isfinite(lsh_value) and not above_lsh)
        if failed:
            status = NOT_MET
        elif not t_n or not math.isfinite(lsh_value):
            status = NOT_MEASURED
        else:
            status = MET
        out.append({**fields, "teacher": t_mean, "teacher_sd": t_sd if t_n > 1 else math.nan,
                    "teacher_n": t_n, "student_no_kd": s_mean,
                    "student_sd": s_sd if s_n > 1 else math.nan, "student_n": s_n,
                    "gap": gap, "needed": needed, "lsh": lsh_value,
                    "teacher_above": teacher_above if t_n else None,
                    "student_above_lsh": above_lsh if math.isfinite(lsh_value) else None,
                    "status": status, "reason": "; ".join(reasons)})
    columns = by + ["bits", "teacher", "teacher_sd", "teacher_n", "student_no_kd", "student_sd",
                    "student_n", "gap", "needed", "lsh", "teacher_above", "student_above_lsh",
                    "status", "reason"]
    return pd.DataFrame(out, columns=columns)

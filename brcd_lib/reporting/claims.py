"""The paper's claims, checked against the result rows: lines with the seed as the unit, Holm's
family-wise adjustment within a profile, four verdicts, sanity checks apart, the premise, and one
overall verdict per claim.

What each claim compares is data (:mod:`brcd_lib.reporting.catalogue`); the statistics are in
:mod:`brcd_lib.reporting.stats`; the premise in :mod:`brcd_lib.reporting.premise`. This module
turns the rows the notebooks wrote (``results/<profile>/tables/<study>_rows.csv``) into

* :func:`claims_table`: one line per claim x comparison x paradigm x code length (and one
  ``pooled`` line per comparison whose units are the per-seed means over the lengths), with the
  raw and the Holm-adjusted interval, the smallest detectable effect, the premise, the verdict
  and the kind (``evidence`` or ``sanity``): the rows of ``tables/claims.csv``;
* :func:`overall_verdicts`: one verdict per claim by the rule its catalogue entry states;
* :func:`key_lines`: the smallest detectable effect of the key lines and the seeds that would
  bring it down to the margin.

Studies a claim reads: ``main`` (notebook 04), ``ablations`` (05), ``teacher_seeds`` (04),
``pairs`` and ``generality`` (06). A claim whose study is missing is "not run".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..distill import distiller_class, list_methods, method_label
from .catalogue import CATALOGUE, LIFT_SHARE_AT_CHANCE, MARGIN, ClaimSpec, spec
from .premise import MET, NOT_MEASURED, NOT_MET, premise_check
from .stats import (ALPHA, Paired, holm, interval, paired, paired_frame, seeds_needed,
                    smallest_detectable_effect, unit_differences, verdict4)

__all__ = ["Line", "claims_table", "overall_verdicts", "premise_tables", "key_lines",
           "CLAIMS_COLUMNS", "PREMISE_NOT_MET", "NOT_RUN", "OVERALL_RULE"]

PARADIGMS = ("symmetric", "asymmetric")
PREMISE_NOT_MET = "premise not met"
NOT_RUN = "not run"
CLAIMS_COLUMNS = ["claim", "comparison", "paradigm", "code_length", "unit", "n", "estimate",
                  "raw_low", "raw_high", "adjusted_low", "adjusted_high", "sde", "sde_adjusted",
                  "verdict", "kind", "premise", "measure", "threshold", "margin", "sd", "p_value",
                  "p_adjusted", "adjusted_level", "wins", "note"]
OVERALL_RULE = ("An overall verdict reads only the claim's evidence lines: supported when every "
                "one is supported after adjustment; contradicted when any is contradicted; "
                "premise not met when the premise fails for any of them and none is "
                "contradicted; equivalent when every one is equivalent; inconclusive otherwise.")


@dataclass
class Line:
    """One measured line of a claim (see :data:`CLAIMS_COLUMNS` for what :func:`claims_table`
    adds to it)."""

    claim: str
    comparison: str
    paradigm: str
    code_length: str              # "32", or "pooled"
    unit: str
    result: Paired
    lengths: tuple[int, ...]      # the code lengths behind the line
    premise_source: str | None    # which premise table applies ("main", "pairs", ...)
    premise_group: tuple = ()     # (column, value) pairs of the setting in that table
    alternative_means: dict = field(default_factory=dict)  # bits -> the alternative's mean
    note: str = ""


# --------------------------------------------------------------------------- builders
def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    if "status" in frame:
        frame = frame[frame["status"] == "ok"]
    return frame[frame["value"].notna()]


def _bits(frame: pd.DataFrame) -> list[int]:
    return sorted(int(b) for b in frame["bits"].dropna().unique())


def _difference_lines(entry: ClaimSpec, rows: pd.DataFrame, *, b: str, label: str,
                      source: str, group: tuple = (), unit_col: str = "seed") -> list[Line]:
    """``entry.a`` minus ``b``: one line per paradigm and code length (the unit's pairs), and a
    pooled line (per-unit mean over the lengths) when there are several lengths."""
    ok = _ok(rows)
    ok = ok[ok[entry.column].isin([entry.a, b])]
    lines = []
    for paradigm in PARADIGMS:
        sub = ok[ok["paradigm"] == paradigm]
        if sub.empty or not {entry.a, b} <= set(sub[entry.column]):
            continue
        alt = sub[sub[entry.column] == b].groupby("bits")["value"].mean()
        alt_means = {int(k): float(v) for k, v in alt.items()}
        per = paired_frame(sub, column=entry.column, a=entry.a, b=b, pair_on=[unit_col], by=["bits"])
        comparison = f"{method_label(entry.a) if entry.column == 'method' else 'BRCD'} vs {label}"
        for _, r in per.iterrows():
            d = _diffs(sub, entry.column, entry.a, b, unit_col, bits=int(r["bits"]))
            lines.append(Line(entry.name, comparison, paradigm, str(int(r["bits"])), entry.unit,
                              paired(d, null=entry.threshold), (int(r["bits"]),), source, group,
                              alt_means))
        lengths = _bits(sub)
        if len(lengths) > 1:
            d = unit_differences(sub, column=entry.column, a=entry.a, b=b, unit=[unit_col],
                                 over=["bits"]).tolist()
            lines.append(Line(entry.name, comparison, paradigm, "pooled",
                              f"{entry.unit} (mean over {len(lengths)} code lengths)",
                              paired(d, null=entry.threshold), tuple(lengths), source, group,
                              alt_means))
    return lines


def _diffs(rows: pd.DataFrame, column: str, a: str, b: str, unit_col: str, *, bits: int) -> list[float]:
    sub = rows[rows["bits"] == bits]
    wide = sub.pivot_table(index=unit_col, columns=column, values="value", aggfunc="mean")
    if a not in wide or b not in wide:
        return []
    return (wide[a] - wide[b]).dropna().tolist()


def _baselines(rows: pd.DataFrame) -> list[str]:
    present = set(rows["method"])
    return [m for m in list_methods()
            if distiller_class(m).family not in ("none", "ours") and m in present]


def _build_difference(entry: ClaimSpec, rows: dict[str, pd.DataFrame]) -> list[Line]:
    frame = rows[entry.study]
    others = _baselines(frame) if entry.baselines else list(entry.b)
    labels = ([method_label(m) for m in others] if entry.baselines
              else list(entry.labels) or list(others))
    out = []
    for b, label in zip(others, labels):
        out += _difference_lines(entry, frame, b=b, label=label, source="main")
    return out


def _build_gap_share(entry: ClaimSpec, rows: dict[str, pd.DataFrame]) -> list[Line]:
    """Per seed: (BRCD - no KD) / (teacher - no KD); pooled: per seed, the mean difference over
    the lengths over the mean gap. A seed whose gap is not positive has no share: it is counted
    in the line's note, never dropped silently."""
    main = _ok(rows[entry.study])
    out = []
    for paradigm in PARADIGMS:
        sub = main[main["paradigm"] == paradigm]
        teacher = sub[sub["method"] == "teacher"].groupby("bits")["value"].mean()
        wide = sub[sub["method"].isin([entry.a, "none"])].pivot_table(
            index=["bits", "seed"], columns="method", values="value", aggfunc="mean")
        if teacher.empty or not {entry.a, "none"} <= set(wide.columns):
            continue
        wide = wide.dropna()
        wide = wide[wide.index.get_level_values("bits").isin(teacher.index)]
        wide["gap"] = [teacher[b] - r["none"] for (b, _), r in wide.iterrows()]
        wide["gain"] = wide[entry.a] - wide["none"]
        lengths = sorted(int(b) for b in set(wide.index.get_level_values("bits")))
        groups = [(str(b), (b,), wide.xs(b, level="bits")) for b in lengths]
        if len(lengths) > 1:
            per_seed = wide.groupby(level="seed")[["gap", "gain"]].mean()
            complete = wide.groupby(level="seed").size() == len(lengths)
            groups.append(("pooled", tuple(lengths), per_seed[complete]))
        for code_length, lens, g in groups:
            good = g[g["gap"] > 0]
            shares = (good["gain"] / good["gap"]).tolist()
            bad = len(g) - len(good)
            note = (f"{bad} of {len(g)} seeds have a teacher - undistilled student gap <= 0 "
                    "(the teacher at or below the student): no share for them" if bad else "")
            unit = entry.unit if code_length != "pooled" else \
                f"{entry.unit} (mean gain over mean gap, {len(lens)} code lengths)"
            out.append(Line(entry.name, "BRCD: share of the teacher - no-KD gap closed", paradigm,
                            code_length, unit, paired(shares, null=entry.threshold), lens, "main",
                            (), {}, note))
    return out


def _build_teacher_unit(entry: ClaimSpec, rows: dict[str, pd.DataFrame]) -> list[Line]:
    """The teacher seed as the unit: per teacher seed, the mean over its student seeds of the
    paired differences."""
    frame = _ok(rows[entry.study])
    out = []
    for b, label in zip(entry.b, entry.labels or entry.b):
        for paradigm in PARADIGMS:
            sub = frame[(frame["paradigm"] == paradigm) & frame[entry.column].isin([entry.a, b])]
            if sub.empty:
                continue
            alt = sub[sub[entry.column] == b].groupby("bits")["value"].mean()
            for bits in _bits(sub):
                at = sub[sub["bits"] == bits]
                per_teacher = unit_differences(at, column=entry.column, a=entry.a, b=b,
                                               unit=["teacher_seed"], over=["seed"],
                                               complete=False)
                k = at["seed"].nunique()
                out.append(Line(entry.name, f"BRCD vs {label}", paradigm, str(bits),
                                f"{entry.unit} (mean over {k} student seeds)",
                                paired(per_teacher.tolist(), null=entry.threshold), (bits,),
                                "teacher_seeds", (), {int(x): float(v) for x, v in alt.items()}))
    return out


def _build_per_group(entry: ClaimSpec, rows: dict[str, pd.DataFrame], *, keys: list[str],
                     source: str, describe) -> list[Line]:
    frame = _ok(rows[entry.study])
    students = frame[frame["method"] != "teacher"]
    out = []
    for key, sub in students.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        group = tuple(zip(keys, key))
        for b, label in zip(entry.b, entry.labels or entry.b):
            if not {entry.a, b} <= set(sub[entry.column]):
                continue
            out += _difference_lines(entry, sub, b=b, label=f"{label} ({describe(dict(group))})",
                                     source=source, group=group)
    return out


BUILDERS = {
    "difference": _build_difference,
    "gap_share": _build_gap_share,
    "teacher_unit": _build_teacher_unit,
    "per_pair": lambda e, r: _build_per_group(
        e, r, keys=["teacher_backbone", "student_backbone"], source="pairs",
        describe=lambda g: f"{g['teacher_backbone']} -> {g['student_backbone']}"),
    "per_setting": lambda e, r: _build_per_group(
        e, r, keys=["setting"], source="generality", describe=lambda g: g["setting"]),
}


# --------------------------------------------------------------------------- premise
def premise_tables(rows: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The premise (:func:`brcd_lib.reporting.premise.premise_check`) of every setting the rows
    hold: ``main`` (the profile's teacher and student per code length; LSH from the main rows),
    ``teacher_seeds`` (the teachers of the teacher-seed study together), ``pairs`` (each backbone
    pair with its own teacher) and ``generality`` (each hashing model)."""
    main = rows.get("main")
    lsh = main if main is not None and not main.empty else None
    out = {}
    if lsh is not None:
        out["main"] = premise_check(main)
    specs = {"teacher_seeds": dict(by=[]),
             "pairs": dict(by=["teacher_backbone", "student_backbone"],
                           teacher_by=["teacher_backbone"]),
             "generality": dict(by=["setting"])}
    for study, kw in specs.items():
        frame = rows.get(study)
        if frame is not None and not frame.empty:
            out[study] = premise_check(frame, lsh=lsh if lsh is not None else frame.iloc[:0], **kw)
    return out


def _premise_of(line: Line, tables: dict[str, pd.DataFrame]) -> tuple[str, dict[int, float]]:
    """The premise status of a line (every length behind it must be met) and the teacher's mean
    per length (for the sanity rule)."""
    table = tables.get(line.premise_source) if line.premise_source else None
    if table is None or table.empty:
        return NOT_MEASURED, {}
    for col, value in line.premise_group:
        table = table[table[col] == value]
    statuses, teacher = [], {}
    for bits in line.lengths:
        at = table[table["bits"] == bits]
        statuses.append(at["status"].iloc[0] if len(at) else NOT_MEASURED)
        if len(at) and math.isfinite(at["teacher"].iloc[0]):
            teacher[bits] = float(at["teacher"].iloc[0])
    if NOT_MET in statuses:
        return NOT_MET, teacher
    if all(s == MET for s in statuses):
        return MET, teacher
    return NOT_MEASURED, teacher


def _lift_share(alt: dict[int, float], teacher: dict[int, float], chance: float | None) -> float:
    """Mean over the lengths of (alternative - chance) / (teacher - chance); NaN when unknown."""
    if chance is None or not alt:
        return math.nan
    shares = [(alt[b] - chance) / (teacher[b] - chance) for b in alt
              if b in teacher and teacher[b] - chance > 0]
    return float(np.mean(shares)) if shares else math.nan


# --------------------------------------------------------------------------- the table
def _lines(rows: dict[str, pd.DataFrame]) -> tuple[list[tuple[ClaimSpec, Line]], list[str]]:
    out, missing = [], []
    for entry in CATALOGUE:
        frame = rows.get(entry.study)
        if frame is None or frame.empty:
            missing.append(entry.name)
            continue
        out += [(entry, line) for line in BUILDERS[entry.builder](entry, rows)]
    return out, missing


def claims_table(rows: dict[str, pd.DataFrame], *, chance: float | None = None,
                 alpha: float = ALPHA) -> pd.DataFrame:
    """Every line of every claim whose study is in ``rows`` (columns :data:`CLAIMS_COLUMNS`).

    ``chance``: the mAP of a random ranking on the profile's data (``data_protocol.json``); with
    it, a line whose alternative recovers less than
    :data:`~brcd_lib.reporting.catalogue.LIFT_SHARE_AT_CHANCE` of the teacher's lift above chance
    (averaged over the comparison's code lengths) is a ``sanity`` line; without it no line is.
    Evidence lines whose premise holds (or is not measured) form one Holm family; sanity lines
    another; a line whose premise fails has the verdict "premise not met". ``alpha`` is the
    family-wise level: it sets the Holm levels, the adjusted intervals the verdicts read and the
    smallest detectable effects; ``raw_low`` / ``raw_high`` stay the raw 95 % interval that every
    table and figure labels as such, whatever ``alpha``."""
    pairs, _ = _lines(rows)
    tables = premise_tables(rows)
    records = []
    for entry, line in pairs:
        premise, teacher = _premise_of(line, tables) if entry.premise else (MET, {})
        kind = "evidence"
        if entry.sanity and _lift_share(line.alternative_means, teacher, chance) < LIFT_SHARE_AT_CHANCE:
            kind = "sanity"
        r = line.result
        records.append({
            "claim": line.claim, "comparison": line.comparison, "paradigm": line.paradigm,
            "code_length": line.code_length, "unit": line.unit, "n": r.n, "estimate": r.mean,
            "raw_low": r.low, "raw_high": r.high, "adjusted_low": math.nan,
            "adjusted_high": math.nan, "sde": smallest_detectable_effect(r.sd, r.n, alpha=alpha),
            "sde_adjusted": math.nan, "verdict": "", "kind": kind, "premise": premise,
            "measure": entry.measure, "threshold": entry.threshold,
            "margin": math.nan if entry.margin is None else entry.margin, "sd": r.sd,
            "p_value": r.p_value, "p_adjusted": math.nan, "adjusted_level": math.nan,
            "wins": r.wins, "note": line.note})
    table = pd.DataFrame(records, columns=CLAIMS_COLUMNS)
    if table.empty:
        return table
    testable = (table["premise"] != NOT_MET) & (table["n"] >= 2) & table["p_value"].notna()
    for kind in ("evidence", "sanity"):
        family = table.index[testable & (table["kind"] == kind)]
        adjusted, _, levels = holm(table.loc[family, "p_value"].to_numpy(), alpha=alpha)
        table.loc[family, "p_adjusted"] = adjusted
        table.loc[family, "adjusted_level"] = levels
    for i, r in table.iterrows():
        if r["premise"] == NOT_MET:
            table.at[i, "verdict"] = PREMISE_NOT_MET
            continue
        level = r["adjusted_level"]
        if math.isfinite(level):
            low, high = interval(r["estimate"], r["sd"], int(r["n"]), 1.0 - level)
            table.at[i, "adjusted_low"], table.at[i, "adjusted_high"] = low, high
            table.at[i, "sde_adjusted"] = smallest_detectable_effect(r["sd"], int(r["n"]),
                                                                     alpha=level)
        margin = None if not math.isfinite(r["margin"]) else float(r["margin"])
        table.at[i, "verdict"] = verdict4(table.at[i, "adjusted_low"], table.at[i, "adjusted_high"],
                                          threshold=float(r["threshold"]), margin=margin)
    return table


def overall_verdicts(table: pd.DataFrame, *, missing: list[str] | tuple = ()) -> pd.DataFrame:
    """One verdict per claim of the catalogue from its evidence lines in ``table`` (rule:
    :data:`OVERALL_RULE`, spelled out per claim in ``rule``); ``missing``: claims whose study
    did not run. Columns: claim, paper states, operationalisation, rule, evidence (counts per
    verdict), sanity (the count of sanity lines), overall."""
    out = []
    for entry in CATALOGUE:
        lines = table[table["claim"] == entry.name] if len(table) else table
        evidence = lines[lines["kind"] == "evidence"] if len(lines) else lines
        verdicts = list(evidence["verdict"]) if len(evidence) else []
        if entry.name in missing or (not len(lines)):
            overall = NOT_RUN
        elif not verdicts:
            overall = "no evidence line (sanity checks only)"
        elif all(v == PREMISE_NOT_MET for v in verdicts):
            overall = PREMISE_NOT_MET
        elif "contradicted" in verdicts:
            overall = "contradicted"
        elif PREMISE_NOT_MET in verdicts:
            overall = PREMISE_NOT_MET
        elif all(v == "supported" for v in verdicts):
            overall = "supported"
        elif all(v == "equivalent" for v in verdicts):
            overall = "equivalent"
        else:
            overall = "inconclusive"
        counts = pd.Series(verdicts).value_counts()
        tally = ", ".join(f"{v} {int(counts[v])}" for v in
                          ("supported", "contradicted", "equivalent", "inconclusive", PREMISE_NOT_MET)
                          if v in counts) or "—"
        n_sanity = int((lines["kind"] == "sanity").sum()) if len(lines) else 0
        out.append({"claim": entry.name, "paper states": entry.paper_text,
                    "operationalisation": entry.operationalisation, "rule": entry.rule,
                    "evidence lines": tally, "sanity lines": n_sanity, "overall": overall})
    return pd.DataFrame(out)


def missing_claims(rows: dict[str, pd.DataFrame]) -> list[str]:
    """Claims whose study has no rows."""
    return [e.name for e in CATALOGUE
            if rows.get(e.study) is None or rows[e.study].empty]


# --------------------------------------------------------------------------- planning
KEY_COMPARISONS = (("beats_baselines", "BRCD vs KD"), ("beats_no_kd", "BRCD vs Student (no KD)"))


def key_lines(table: pd.DataFrame, rows: dict[str, pd.DataFrame] | None = None, *,
              bits: int | None = None, margin: float = MARGIN, alpha: float = ALPHA) -> pd.DataFrame:
    """The key lines (BRCD vs KD and vs no KD, both paradigms, at ``bits``: default 32, or the
    longest code length of the table without 32): their n, the
    standard deviation ``sd`` of the per-seed differences, the smallest detectable effect
    reached (80 % power) at the raw level (``sde``) and at the Bonferroni level ``alpha / family``
    of the line's family (``family``: for an evidence line every evidence line with a p-value,
    premise met or not, i.e. the family once every premise holds; for a sanity line the sanity
    lines with a p-value), the strictest level Holm can test a line at
    (``sde_family``), and the seeds that would bring each down to ``margin``
    (``seeds_for_margin``, ``seeds_for_margin_family``); with ``rows``, ``extra_cpu_s``: the
    wall time of the extra seeds at the family level, from the rows' ``wall_s`` of one run of
    each of the two methods at that length."""
    if table.empty:
        return pd.DataFrame()
    if bits is None:  # 32 bits, the paper's middle length, or the longest the rows hold
        lengths = sorted(int(b) for b in table["code_length"] if str(b).isdigit())
        bits = 32 if 32 in lengths else (lengths[-1] if lengths else 32)
    # each kind's family as it is once every premise holds: every line of it with a p-value
    family = {kind: int(((table["kind"] == kind) & table["p_value"].notna()).sum()) or 1
              for kind in ("evidence", "sanity")}
    main = rows.get("main") if rows else None
    out = []
    for claim, comparison in KEY_COMPARISONS:
        sel = table[(table["claim"] == claim) & (table["comparison"] == comparison)
                    & (table["code_length"] == str(bits))]
        for _, r in sel.iterrows():
            n, sd = int(r["n"]), float(r["sd"])
            m = family[r["kind"]]
            need_raw = seeds_needed(sd, margin, alpha=alpha)
            need_family = seeds_needed(sd, margin, alpha=alpha / m)
            cost = math.nan
            if main is not None and "wall_s" in main and need_family is not None:
                b = "none" if "no KD" in comparison else "kd"
                ok = _ok(main)
                at = ok[(ok["bits"] == bits) & ok["method"].isin(["brcd", b])]
                per_seed = at.drop_duplicates(["method", "seed"]).groupby("method")["wall_s"].mean().sum()
                cost = max(0, need_family - n) * float(per_seed)
            out.append({"comparison": comparison, "paradigm": r["paradigm"], "bits": bits,
                        "kind": r["kind"], "n": n, "estimate": r["estimate"], "sd": sd,
                        "sde": smallest_detectable_effect(sd, n, alpha=alpha),
                        "family": m, "sde_family": smallest_detectable_effect(sd, n, alpha=alpha / m),
                        "margin": margin, "seeds_for_margin": need_raw,
                        "seeds_for_margin_family": need_family, "extra_cpu_s": cost,
                        "verdict": r["verdict"]})
    return pd.DataFrame(out)

"""The paper's claims, each checked against the result rows with a paired interval and a verdict.

A claim is registered with what the paper states (in the kit's words) and a function that
returns one :class:`Check` per search paradigm (or per compared method) from the rows the
notebooks wrote (``results/<profile>/tables/<study>_rows.csv``). :func:`claims_table` turns the
checks into the table at the top of each profile's report; :mod:`brcd_lib.reporting.stats` holds
the interval and the verdict rule.

Studies a claim reads (``rows[name]``): ``main`` (notebook 04), ``ablations`` (05),
``sensitivity`` (08), ``teacher_seeds`` (04, the BRCD / KD / no-KD comparison repeated under
several teachers). A claim whose study is missing is reported as "not run".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from ..distill import distiller_class, list_methods, method_label
from ..registry import Registry
from .stats import Paired, paired, paired_frame, verdict

__all__ = ["Check", "CLAIMS", "register_claim", "claims_table", "run_checks"]

PARADIGMS = ("symmetric", "asymmetric")


@dataclass(frozen=True)
class Check:
    """One measured line of a claim."""

    claim: str            # the claim's registered name
    subject: str          # what is compared, e.g. "BRCD vs KD, asymmetric"
    result: Paired        # the paired difference (or ratio) and its interval
    threshold: float = 0.0
    unit: str = "mAP"     # "mAP" (difference) or "fraction" (share of a gap)
    pairs: str = ""       # what a pair is, e.g. "seed x code length"

    @property
    def verdict(self) -> str:
        return verdict(self.result, self.threshold)


ClaimFn = Callable[[dict[str, pd.DataFrame]], list[Check]]
CLAIMS: Registry = Registry("claim")


def register_claim(name: str, *, statement: str, study: str) -> Callable[[ClaimFn], ClaimFn]:
    """Register ``fn(rows) -> list[Check]``: ``statement`` is what the paper claims, in the kit's
    words; ``study`` the rows it needs."""
    return CLAIMS.register(name, statement=statement, study=study)


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    if "status" in frame:
        frame = frame[frame["status"] == "ok"]
    return frame


def _pairs_label(pair_on: list[str]) -> str:
    names = {"seed": "seed", "bits": "code length", "teacher_seed": "teacher seed"}
    return " x ".join(names.get(p, p) for p in pair_on)


def _compare(rows: pd.DataFrame, *, claim: str, column: str, a: str, b: str, label_a: str,
             label_b: str, pair_on: list[str]) -> list[Check]:
    table = paired_frame(_ok(rows), column=column, a=a, b=b, pair_on=pair_on, by=["paradigm"])
    checks = []
    for paradigm in PARADIGMS:
        line = table[table["paradigm"] == paradigm]
        if line.empty:
            continue
        r = line.iloc[0]
        res = Paired(int(r["n"]), r["mean"], r["low"], r["high"], r["p_value"], int(r["wins"]))
        checks.append(Check(claim=claim, subject=f"{label_a} vs {label_b}, {paradigm}",
                            result=res, pairs=_pairs_label(pair_on)))
    return checks


def _baselines() -> list[str]:
    return [m for m in list_methods() if distiller_class(m).family not in ("none", "ours")]


@register_claim("beats_baselines", study="main",
                statement="BRCD retrieves better than every KD baseline, in both search paradigms")
def _beats_baselines(rows: dict[str, pd.DataFrame]) -> list[Check]:
    main = rows["main"]
    out = []
    for baseline in _baselines():
        if baseline in set(main["method"]):
            out += _compare(main, claim="beats_baselines", column="method", a="brcd", b=baseline,
                            label_a="BRCD", label_b=method_label(baseline),
                            pair_on=["bits", "seed"])
    return out


@register_claim("beats_no_kd", study="main",
                statement="distilling with BRCD improves on the student trained without a teacher")
def _beats_no_kd(rows: dict[str, pd.DataFrame]) -> list[Check]:
    return _compare(rows["main"], claim="beats_no_kd", column="method", a="brcd", b="none",
                    label_a="BRCD", label_b=method_label("none"), pair_on=["bits", "seed"])


@register_claim("approaches_teacher", study="main",
                statement="the BRCD student approaches the teacher: it closes most (more than "
                          "half) of the gap between the undistilled student and the teacher")
def _approaches_teacher(rows: dict[str, pd.DataFrame]) -> list[Check]:
    main = _ok(rows["main"])
    out = []
    for paradigm in PARADIGMS:
        sub = main[main["paradigm"] == paradigm]
        teacher = sub[sub["method"] == "teacher"].groupby("bits")["value"].mean()
        wide = sub[sub["method"].isin(["brcd", "none"])].pivot_table(
            index=["bits", "seed"], columns="method", values="value")
        if teacher.empty or not {"brcd", "none"} <= set(wide.columns):
            continue
        fractions = []
        for (bits, _seed), r in wide.iterrows():
            gap = teacher.get(bits, math.nan) - r["none"]
            if gap > 0 and math.isfinite(r["brcd"]):
                fractions.append((r["brcd"] - r["none"]) / gap)
        out.append(Check(claim="approaches_teacher", subject=f"share of the teacher - no-KD gap "
                         f"closed by BRCD, {paradigm}", result=paired(fractions), threshold=0.5,
                         unit="fraction", pairs="seed x code length"))
    return out


_ABLATIONS = {  # claim -> (variant compared with BRCD, statement)
    "mask_helps": ("no_mask", "the bit mask helps: BRCD beats BRCD without the bit mask"),
    "cluster_helps": ("no_cluster", "the cluster-based handling of false negatives and offset "
                                    "positives helps: BRCD beats BRCD without it"),
    "alpha_vs_1": ("alpha_1", "alpha = 0.8 beats alpha = 1 (the individual term alone)"),
    "alpha_vs_0": ("alpha_0", "alpha = 0.8 beats alpha = 0 (the structural term alone)"),
    "paper_mask_vs_released": ("upstream_mask", "the paper's mask rule beats the released "
                                                "code's all-zero mask"),
}


def _ablation_claim(name: str, variant: str) -> ClaimFn:
    def fn(rows: dict[str, pd.DataFrame]) -> list[Check]:
        return _compare(rows["ablations"], claim=name, column="variant", a="brcd", b=variant,
                        label_a="BRCD", label_b=variant, pair_on=["bits", "seed"])

    return fn


for _name, (_variant, _statement) in _ABLATIONS.items():
    register_claim(_name, study="ablations", statement=_statement)(_ablation_claim(_name, _variant))


@register_claim("robust_to_teacher", study="teacher_seeds",
                statement="BRCD's advantage over KD does not depend on the particular teacher "
                          "(teachers trained with other seeds)")
def _robust_to_teacher(rows: dict[str, pd.DataFrame]) -> list[Check]:
    return _compare(rows["teacher_seeds"], claim="robust_to_teacher", column="method", a="brcd",
                    b="kd", label_a="BRCD", label_b="KD", pair_on=["teacher_seed", "seed"])


@register_claim("across_backbones", study="pairs",
                statement="BRCD's advantage over KD holds for every student family and teacher "
                          "size (backbone pairs)")
def _across_backbones(rows: dict[str, pd.DataFrame]) -> list[Check]:
    pairs = _ok(rows["pairs"])
    out = []
    for (t, s), sub in pairs.groupby(["teacher_backbone", "student_backbone"], sort=False):
        if {"brcd", "kd"} <= set(sub["method"]):
            out += _compare(sub, claim="across_backbones", column="method", a="brcd", b="kd",
                            label_a=f"BRCD ({t} -> {s})", label_b="KD", pair_on=["seed"])
    return out


def run_checks(rows: dict[str, pd.DataFrame]) -> tuple[list[Check], list[str]]:
    """Every registered claim's checks on ``rows``; and the names of claims whose study is
    missing (not run)."""
    checks, missing = [], []
    for entry in CLAIMS.entries():
        study = entry.meta["study"]
        if study not in rows or rows[study] is None or rows[study].empty:
            missing.append(entry.name)
            continue
        checks += entry.factory(rows)
    return checks, missing


def claims_table(rows: dict[str, pd.DataFrame], *, digits: int = 4) -> pd.DataFrame:
    """The claims table: claim | what the paper states | compared | measured difference and 95 %
    interval | pairs | verdict. Claims whose rows are missing appear with verdict "not run"."""
    checks, missing = run_checks(rows)
    lines = []
    for c in checks:
        measured = c.result.format(digits)
        if c.threshold:
            measured += f"; threshold {c.threshold:g}"
        lines.append({"claim": c.claim, "paper states": CLAIMS.meta(c.claim)["statement"],
                      "compared": c.subject, "measured (95 % CI)": measured,
                      "pairs": c.pairs, "verdict": c.verdict})
    for name in missing:
        lines.append({"claim": name, "paper states": CLAIMS.meta(name)["statement"],
                      "compared": "—", "measured (95 % CI)": "—", "pairs": "—",
                      "verdict": "not run"})
    return pd.DataFrame(lines, columns=["claim", "paper states", "compared", "measured (95 % CI)",
                                        "pairs", "verdict"])

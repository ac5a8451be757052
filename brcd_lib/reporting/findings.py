"""The reading of a profile's results: the claims table and the findings under it.

Everything here reads the files the notebooks wrote into ``results/<profile>/`` (result rows,
the data protocol, the efficiency table) and writes Markdown; nothing is typed by hand except the
explanations, which name the numbers they rest on by computing them.
"""
from __future__ import annotations

import json
import math
import os

import pandas as pd

from ..distill import DISTILLERS, distiller_class, method_label
from .claims import claims_table
from .departures import render_markdown as departures_table
from .stats import VERDICT_RULE

CLAIMS_TITLE = "Claims of the paper, checked"
FINDINGS_TITLE = "Findings"


def _plain_heading(title: str) -> list[str]:
    return [f"## {title}"]

__all__ = ["load_rows", "claims_markdown", "findings_markdown", "STUDIES"]

# study name -> the rows file a notebook writes under tables/
STUDIES = {"main": "main_rows.csv", "ablations": "ablations_rows.csv",
           "sensitivity": "sensitivity_rows.csv", "generality": "generality_rows.csv",
           "teacher_seeds": "teacher_seeds_rows.csv", "teachers": "teachers_rows.csv",
           "pairs": "pairs_rows.csv"}


def load_rows(root: str) -> dict[str, pd.DataFrame]:
    """The result rows of every study that has a rows file under ``<root>/tables``."""
    out = {}
    for study, name in STUDIES.items():
        path = os.path.join(root, "tables", name)
        if os.path.exists(path):
            out[study] = pd.read_csv(path)
    return out


def _md(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False)


def _seed_counts(rows: dict[str, pd.DataFrame]) -> list[str]:
    lines = []
    main = rows.get("main")
    if main is not None:
        students = main[~main["method"].isin(["teacher", "LSH", "ITQ"])]
        per = students.groupby("method")["seed"].nunique()
        by_n: dict[int, list[str]] = {}
        for method, n in per.items():
            by_n.setdefault(int(n), []).append(method_label(method))
        parts = [f"{n} seed{'s' * (n != 1)}: {', '.join(sorted(ms))}" for n, ms in sorted(by_n.items(), reverse=True)]
        lines.append(f"- main table: {'; '.join(parts)}")
    for study in ("ablations", "sensitivity", "teacher_seeds", "generality", "pairs"):
        frame = rows.get(study)
        if frame is not None and not frame.empty:
            frame = frame[frame["method"] != "teacher"]
            bits = sorted(frame["bits"].dropna().astype(int).unique())
            extra = ""
            if study == "teacher_seeds" and "teacher_seed" in frame:
                extra = f", {frame['teacher_seed'].nunique()} teacher seeds"
            n = frame["seed"].nunique()
            lines.append(f"- {study.replace('_', ' ')}: {n} student seed{'s' * (n != 1)}"
                         f"{extra}, {', '.join(map(str, bits))} bits")
    return lines


def claims_markdown(root: str, *, rows: dict[str, pd.DataFrame] | None = None,
                    heading=_plain_heading) -> list[str]:
    """The "Claims" section: the claims table with the verdict rule stated once (``heading``
    turns the section title into Markdown lines)."""
    rows = load_rows(root) if rows is None else rows
    table = claims_table(rows)
    lines = [*heading(CLAIMS_TITLE), "",
             "Each line compares BRCD with one alternative as a paired difference over runs that "
             "share everything but the compared setting (same seed, same teacher, same code "
             "length), with the two-sided 95 % paired t-interval of the mean difference "
             "(intervals are not adjusted for the number of lines). Positive = BRCD better. "
             f"Verdict rule: {VERDICT_RULE}. The paper's own numbers are not shown: they are "
             "not available to this kit.", ""]
    lines += ["Seeds behind the table:", *_seed_counts(rows), ""]
    if table.empty:
        return lines + ["No result rows yet: run the notebooks 04, 05 and 08 first.", ""]
    counts = table["verdict"].value_counts()
    lines += [", ".join(f"{v}: {counts.get(v, 0)}" for v in
                        ("supported", "contradicted", "inconclusive", "not run")), "",
              _md(table), ""]
    return lines


def _chance(root: str) -> float | None:
    path = os.path.join(root, "data_protocol.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        value = json.load(fh).get("chance_map")
    return None if value is None else float(value)


def _asymmetric_paragraph(rows: dict[str, pd.DataFrame], chance: float | None) -> list[str]:
    main = rows.get("main")
    if main is None:
        return []
    asym = main[(main["paradigm"] == "asymmetric") & (main["status"] == "ok")]
    students = asym[~asym["method"].isin(["teacher", "LSH", "ITQ"])]
    if students.empty:
        return []
    means = students.groupby("method")["value"].mean()
    family = {m: distiller_class(m).family for m in means.index if m in DISTILLERS}
    high = [f"{method_label(m)} {means[m]:.3f}" for m in ("kd", "brcd") if m in means.index]
    none = [f"{method_label(m)} {means[m]:.3f}" for m, f in family.items() if f == "none"]
    low = [f"{method_label(m)} {means[m]:.3f}" for m, f in family.items()
           if f not in ("none",) and m not in ("kd", "brcd")]
    chance_txt = (f" A random ranking scores about {chance:.3f} here (the mean share of the "
                  "database relevant to a query)." if chance is not None else "")
    return ["### Why most baselines sit near chance in the asymmetric paradigm", "",
            "In the asymmetric paradigm the database is encoded by the teacher and only the query "
            "by the student, so the student's bit j must mean what the teacher's bit j means. "
            "Only a loss that ties each student bit to the same teacher bit can achieve that: KD "
            "(a softmax over the code dimensions, per position) and BRCD (cosine between the "
            "student's and the teacher's codes, per position). The relation- and "
            "contrastive-based baselines match similarities between samples, which are invariant "
            "to permuting or flipping the bits, and the undistilled student has no teacher at "
            "all; their codes live in another coordinate system, and their asymmetric mAP is "
            "that of an unrelated code." + chance_txt, "",
            f"Mean asymmetric mAP over code lengths and seeds: per-bit targets {', '.join(high)}; "
            f"sample-relation baselines {', '.join(low)}; no teacher: {', '.join(none)}.", ""]


def _failed_paragraph(rows: dict[str, pd.DataFrame], root: str) -> list[str]:
    lines = ["### Failed and collapsed runs", ""]
    failed = []
    for study, frame in rows.items():
        if "status" in frame:
            bad = frame[frame["status"] != "ok"]
            for _, r in bad.drop_duplicates(["method", "variant", "bits", "seed"]).iterrows():
                failed.append({"study": study, "method": method_label(r["method"]),
                               "variant": r.get("variant"), "bits": r["bits"], "seed": r["seed"],
                               "status": r["status"]})
        if "warnings" in frame:
            collapsed = frame[frame["warnings"].fillna("").str.contains("collapsed codes")]
            for _, r in collapsed.drop_duplicates(["method", "variant", "bits", "seed"]).iterrows():
                failed.append({"study": study, "method": method_label(r["method"]),
                               "variant": r.get("variant"), "bits": r["bits"],
                               "seed": r["seed"], "status": "collapsed codes (kept in the "
                               "tables, flagged): " + str(r["warnings"])})
    gen_failed = os.path.join(root, "tables", "generality_failed_runs.md")
    if not failed:
        lines.append("Every run of every study finished; no run diverged and no code collapsed "
                     "(collapse = at least half the bits constant on the database).")
    else:
        n_lost = sum(1 for f in failed if not f["status"].startswith("collapsed"))
        lines += [f"{n_lost} run(s) did not give a number; they are left out of every table and "
                  "of every paired comparison (their pair too). Runs whose codes collapsed keep "
                  "their number and are listed here:", "",
                  _md(pd.DataFrame(failed).drop_duplicates())]
    if os.path.exists(gen_failed):
        lines += ["", "Generality grid: see [generality_failed_runs](tables/generality_failed_runs.md)."]
    return lines + [""]


def _models_paragraph(root: str) -> list[str]:
    path = os.path.join(root, "tables", "efficiency_profile_models.csv")
    if not os.path.exists(path):
        return []
    eff = pd.read_csv(path)
    lines = ["### Stand-in models", ""]
    for _, r in eff.iterrows():
        lines.append(f"- {r['model']}: {r['params_M'] * 1e6:,.0f} parameters "
                     f"({r['trainable_params_M'] * 1e6:,.0f} trained: the hash head), "
                     f"{r['gflops_per_image'] * 1e3:.1f} M multiply-adds per image, "
                     f"{r['latency_ms_b1']:.2f} ms per query at batch 1 on this CPU")
    if len(eff) >= 2:
        ratio = eff["params_M"].iloc[0] / eff["params_M"].iloc[-1]
        lines.append(f"- teacher / student parameters: {ratio:.1f}x (the paper: ViT-B/16, 86M, "
                     "over EfficientNet-B0, 5.3M: about 16x)")
    return lines + [""]


def findings_markdown(root: str, *, profile, rows: dict[str, pd.DataFrame] | None = None,
                      heading=_plain_heading) -> list[str]:
    """The "Findings" section: stand-in data and models, why asymmetric baselines sit near
    chance, failed or collapsed runs, what "upstream" means, departures from the released code."""
    rows = load_rows(root) if rows is None else rows
    lines = [*heading(FINDINGS_TITLE), "",
             "### Stand-in data", "",
             f"- {profile.description}.",
             f"- the paper's datasets (CIFAR-10, MS-COCO, NUS-WIDE, ImageNet-100) and ImageNet-"
             "pretrained backbones need a GPU box and downloads; this profile keeps their "
             "protocol shape (train / validation / query / database splits, mAP@K) at CPU scale.",
             ""]
    lines += _models_paragraph(root)
    lines += _asymmetric_paragraph(rows, _chance(root))
    lines += _failed_paragraph(rows, root)
    lines += ["### What \"upstream\" means", "",
              "A row or option named *upstream* reproduces the released code's behaviour where the "
              "kit departs from it. `upstream_mask` is BRCD with the released mask script, whose two "
              "chained `where` calls zero every bit for any margin below 1: the structural term "
              "and every negative then compare masked all-zero vectors (cosine 0), so BRCD "
              "reduces to its individual term plus a constant. The kit's default is the rule the "
              "paper describes (keep bit j of cluster c when |mean| > delta).", ""]
    lines += ["### Departures from the released code", "",
              "Each line: what the released code does, what the kit does by default and why, the "
              "switch that restores the release, and its measured effect where measured "
              "(`docs/departures.md`).", "", departures_table(), ""]
    return lines

"""The reading of a profile's results: the claims section and the findings under it.

Everything here reads the files the notebooks wrote into ``results/<profile>/`` (result rows,
the data protocol, the efficiency tables) and writes Markdown; nothing is typed by hand except the
explanations, which name the numbers they rest on by computing them.
"""
from __future__ import annotations

import json
import math
import os

import pandas as pd

from ..distill import DISTILLERS, distiller_class, method_label
from .catalogue import CATALOGUE, LIFT_SHARE_AT_CHANCE, MARGIN
from .claims import (OVERALL_RULE, claims_table, key_lines, missing_claims, overall_verdicts,
                     premise_tables)
from .departures import DEPARTURES
from .display import fit_markdown
from .premise import PREMISE_RULE
from .stats import ALPHA, POWER, VERDICT_RULE, paired_against

CLAIMS_TITLE = "Claims of the paper, checked"
FINDINGS_TITLE = "Findings"


def _plain_heading(title: str) -> list[str]:
    return [f"## {title}"]


__all__ = ["load_rows", "claims_markdown", "findings_markdown", "claims_frames", "STUDIES",
           "chance_level"]

# study name -> the rows file a notebook writes under tables/
STUDIES = {"main": "main_rows.csv", "ablations": "ablations_rows.csv",
           "sensitivity": "sensitivity_rows.csv", "generality": "generality_rows.csv",
           "teacher_seeds": "teacher_seeds_rows.csv", "teachers": "teachers_rows.csv",
           "pairs": "pairs_rows.csv", "upstream_baselines": "upstream_baselines_rows.csv",
           "ladder": "ladder_rows.csv"}


def load_rows(root: str) -> dict[str, pd.DataFrame]:
    """The result rows of every study that has a rows file under ``<root>/tables``."""
    out = {}
    for study, name in STUDIES.items():
        path = os.path.join(root, "tables", name)
        if os.path.exists(path):
            out[study] = pd.read_csv(path)
    return out


def _md(frame: pd.DataFrame, keys: int = 1) -> str:
    return fit_markdown(frame, keys=keys)


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
    for study in ("ablations", "sensitivity", "teacher_seeds", "generality", "pairs", "ladder"):
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


def chance_level(root: str) -> float | None:
    """The mAP of a random ranking on the profile's data (``data_protocol.json``), or None."""
    path = os.path.join(root, "data_protocol.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        value = json.load(fh).get("chance_map")
    return None if value is None else float(value)


_chance = chance_level  # the name the findings used before


# --------------------------------------------------------------------------- claims
def claims_frames(root: str, *, rows: dict[str, pd.DataFrame] | None = None
                  ) -> dict[str, pd.DataFrame]:
    """The claims of a results folder as tables: ``claims`` (one row per line: the rows of
    ``tables/claims.csv``), ``overall`` (one verdict per claim), ``premise`` (every setting's
    premise) and ``key_lines`` (the smallest detectable effect of the key lines and the seeds
    that would bring it to the margin)."""
    rows = load_rows(root) if rows is None else rows
    table = claims_table(rows, chance=chance_level(root))
    overall = overall_verdicts(table, missing=missing_claims(rows))
    premise = []
    for source, frame in premise_tables(rows).items():
        if frame.empty:
            continue
        frame = frame.copy()
        keys = [c for c in ("teacher_backbone", "student_backbone", "setting") if c in frame]
        label = (frame[keys].astype(str).agg(" -> ".join, axis=1) if keys else
                 {"main": "the profile's teacher and student",
                  "teacher_seeds": "teacher-seed study (teachers pooled)"}[source])
        if source == "generality":
            label = "hashing model " + label
        frame = frame.drop(columns=keys)
        frame.insert(0, "setting", label)
        frame.insert(0, "study", source)
        premise.append(frame)
    premise = pd.concat(premise, ignore_index=True) if premise else pd.DataFrame()
    return {"claims": table, "overall": overall, "premise": premise,
            "key_lines": key_lines(table, rows)}


def _interval(low, high) -> str:
    if not (isinstance(low, float) and math.isfinite(low)):
        return "—"
    return f"[{low:+.4f}, {high:+.4f}]"


def _lines_display(lines: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "comparison": lines["comparison"], "paradigm": lines["paradigm"],
        "bits": lines["code_length"], "n": lines["n"],
        "estimate": [f"{v:+.4f}" if math.isfinite(v) else "—" for v in lines["estimate"]],
        "raw 95 % CI": [_interval(a, b) for a, b in zip(lines["raw_low"], lines["raw_high"])],
        "adjusted CI": [_interval(a, b) for a, b in
                                   zip(lines["adjusted_low"], lines["adjusted_high"])],
        "SDE": [f"{v:.4f}" if math.isfinite(v) else "—" for v in lines["sde"]],
        "verdict": lines["verdict"], "kind": lines["kind"]})


def _premise_display(premise: pd.DataFrame) -> pd.DataFrame:
    def pm(mean, sd, n):
        spread = f" ± {sd:.4f}" if isinstance(sd, float) and math.isfinite(sd) else ""
        return f"{mean:.4f}{spread} ({int(n)})"

    return pd.DataFrame({
        "setting": premise["setting"], "bits": premise["bits"].astype(int),
        "teacher (n)": [pm(m, s, n) for m, s, n in zip(premise["teacher"], premise["teacher_sd"],
                                                        premise["teacher_n"])],
        "no KD (n)": [pm(m, s, n) for m, s, n in zip(
            premise["student_no_kd"], premise["student_sd"], premise["student_n"])],
        "gap (2 SDs)": [f"{g:+.4f} ({need:.4f})" for g, need in zip(premise["gap"], premise["needed"])],
        "LSH": [f"{v:.4f}" if math.isfinite(v) else "—" for v in premise["lsh"]],
        "premise": premise["status"]})


def _key_families(keyl: pd.DataFrame) -> tuple[int, int | None, bool]:
    """(the family size the key lines' header names: the evidence family's, or the first
    line's when no key line is evidence; the sanity family's or None; whether any is evidence)."""
    evidence, sanity = keyl[keyl["kind"] == "evidence"], keyl[keyl["kind"] == "sanity"]
    m = int((evidence if len(evidence) else keyl)["family"].iloc[0])
    return m, (int(sanity["family"].iloc[0]) if len(sanity) else None), bool(len(evidence))


def _key_display(keyl: pd.DataFrame) -> pd.DataFrame:
    m = _key_families(keyl)[0]

    def level(f):  # a line of another family (a sanity line) names its own level
        return "" if int(f) == m else f" at a/{int(f)}"

    def seeds(v):
        return "—" if not isinstance(v, (int, float)) or not math.isfinite(v) else f"{int(v)}"

    def num(v, fmt=".4f"):
        return f"{v:{fmt}}" if isinstance(v, (int, float)) and math.isfinite(v) else "—"

    return pd.DataFrame({
        "comparison": keyl["comparison"],
        "paradigm": [p + (" (sanity)" if k == "sanity" else "")
                     for p, k in zip(keyl["paradigm"], keyl["kind"])],
        "n": keyl["n"], "estimate": [num(v, "+.4f") for v in keyl["estimate"]],
        "SD": [num(v) for v in keyl["sd"]],
        f"SDE (a/{m})": [f"{num(a)} ({num(b)}{level(f)})" for a, b, f in
                         zip(keyl["sde"], keyl["sde_family"], keyl["family"])],
        f"seeds (a/{m})": [f"{seeds(a)} ({seeds(b)}{level(f)})" for a, b, f in
                           zip(keyl["seeds_for_margin"], keyl["seeds_for_margin_family"],
                               keyl["family"])],
        "CPU s": [num(v, ".0f") for v in keyl["extra_cpu_s"]]})


def _bank_sentence(profile) -> str:
    if profile is None:
        return ""
    bank = profile.student_train.bank_seed
    what = ("each student seed draws its own augmented views (`bank_seed=\"run\"`)" if bank == "run"
            else "every student seed reads the same augmented views, drawn from the split seed "
                 "(`bank_seed=\"split\"`); the seed changes which two views form a pair")
    return (f"What a seed varies in this profile: the student seed sets the hash head's "
            f"initialisation, the batch order and view pairing, BRCD's k-means initialisation and "
            f"the contrastive baselines' negatives; {what}. Fixed across seeds: the data split, the "
            f"pretrained backbones and the teacher (teacher seed {profile.teacher_seed}; the "
            f"teacher-seed study varies it). See `docs/statistics.md`.")


def claims_markdown(root: str, *, rows: dict[str, pd.DataFrame] | None = None,
                    heading=_plain_heading, profile=None,
                    frames: dict[str, pd.DataFrame] | None = None) -> list[str]:
    """The "Claims" section: the premise per setting, one verdict per claim with its rule, the
    key lines' power, and every line (from ``frames``, :func:`claims_frames`; the report passes
    the tables it wrote to ``tables/claims*.csv``)."""
    rows = load_rows(root) if rows is None else rows
    frames = claims_frames(root, rows=rows) if frames is None else frames
    table, overall = frames["claims"], frames["overall"]
    lines = [*heading(CLAIMS_TITLE), "",
             "Each line compares BRCD with one alternative as a paired difference with the **seed "
             "as the unit** (the teacher seed for the teacher-seed study): one line per search "
             "paradigm and code length, and a **pooled** line per comparison whose units are the "
             "per-seed means over the code lengths (runs of one seed at 16, 32 and 64 bits share "
             "everything but the length, so they are not independent). Positive = BRCD better. "
             f"Every interval is a two-sided t-interval; the **raw** one at 95 %, the **adjusted** "
             f"one at the level Holm's step-down gives the line within this profile's table (all "
             f"evidence lines form one family, the sanity lines another). Verdicts: {VERDICT_RULE}; "
             f"the smallest effect of interest is {MARGIN:g} mAP. **SDE** is the smallest "
             f"detectable effect: the true difference the raw test (two-sided, alpha "
             f"{ALPHA:g}) finds with {POWER:.0%} power at the line's n and observed SD. A line "
             "whose alternative sits at chance in that paradigm (it recovers less than "
             f"{LIFT_SHARE_AT_CHANCE:g} of the teacher's lift above a random ranking, averaged over "
             "the comparison's code lengths) is a **sanity** check and does not count as "
             "evidence. Lines whose premise fails are reported as **premise not met**, without a "
             "verdict. `docs/statistics.md` says why each choice was made. The paper's own "
             "numbers are not shown: they are not available to this kit.", ""]
    bank = _bank_sentence(profile)
    if bank:
        lines += [bank, ""]
    lines += ["Seeds behind the table:", *_seed_counts(rows), ""]
    premise = frames["premise"]
    lines += ["### The premise: a teacher worth distilling, a student worth teaching", "",
              f"Rule: {PREMISE_RULE}. Every distillation claim needs it; where it fails, the "
              "claim's lines say \"premise not met\".", ""]
    if premise.empty:
        lines += ["No teacher and undistilled-student rows yet (notebook 04).", ""]
    else:
        lines += [_md(_premise_display(premise), keys=2), ""]
        failed = premise[premise["status"] == "not met"]
        for _, r in failed.iterrows():
            lines.append(f"- not met: {r['setting']}, {int(r['bits'])} bits: {r['reason']}")
        if len(failed):
            lines.append("")
    lines += ["### One verdict per claim", "", OVERALL_RULE + " *Paper* quotes the paper's "
              "abstract (`docs/method.md`); *kit* is the kit's operationalisation; *rule* the "
              "evidence lines the claim needs (the full table: "
              "[tables/claims_overall.csv](tables/claims_overall.csv)).", ""]
    for entry in CATALOGUE:
        row = overall[overall["claim"] == entry.name]
        if row.empty:
            continue
        r = row.iloc[0]
        lines += [f"- **`{entry.name}`: {r['overall']}** (evidence lines: {r['evidence lines']}; "
                  f"sanity lines: {int(r['sanity lines'])}). Paper: {entry.paper_text}. Kit: "
                  f"{entry.operationalisation}. Rule: every evidence line of {entry.scope} must be "
                  "supported."]
    lines += [""]
    keyl = frames["key_lines"]
    if keyl is not None and not keyl.empty:
        m, m_sanity, has_evidence = _key_families(keyl)
        if has_evidence:
            family = (f"the Bonferroni level of this profile's {m} evidence lines with a p-value, "
                      "those whose premise is not met included (the family once every premise "
                      "holds; the strictest level Holm tests a line at)."
                      + (f" A sanity line is costed at the level of its own family, a/{m_sanity}."
                         if m_sanity is not None else ""))
        else:
            family = (f"the Bonferroni level of this profile's {m} sanity lines with a p-value "
                      "(every key line here is a sanity line).")
        lines += ["### Key lines: the effect reached and what the margin would cost", "",
                  f"BRCD vs KD and vs the undistilled student at {int(keyl['bits'].iloc[0])} bits. "
                  f"*SDE*: the smallest detectable effect (80 % power) at the raw level alpha = "
                  f"{ALPHA:g}, and in brackets at a/{m}, {family}"
                  " *Seeds*: the seeds "
                  f"(at the same seed SD) for that effect to reach {MARGIN:g} mAP, at the two levels; "
                  f"*CPU s*: the "
                  f"seeds missing at a/{m} times the rows' own wall time of one run of each of the "
                  "two methods (measured on the machine that wrote the rows).", "",
                  _md(_key_display(keyl), keys=2), ""]
    if table.empty:
        return lines + ["No result rows yet: run the notebooks 04, 05 and 06 first.", ""]
    ev, sa = table[table["kind"] == "evidence"], table[table["kind"] == "sanity"]

    def tally(frame):
        counts = frame["verdict"].value_counts()
        return ", ".join(f"{v} {counts[v]}" for v in ("supported", "contradicted", "equivalent",
                                                      "inconclusive", "premise not met")
                         if v in counts) or "none"

    lines += ["### Every line", "",
              f"Evidence lines ({len(ev)}): {tally(ev)}. Sanity lines ({len(sa)}, not counted): "
              f"{tally(sa)}. The same lines with every column (unit, SD, p-values, levels) are in "
              "[tables/claims.csv](tables/claims.csv).", ""]
    for entry in CATALOGUE:
        sub = table[table["claim"] == entry.name]
        if sub.empty:
            continue
        verdict = overall.loc[overall["claim"] == entry.name, "overall"].iloc[0]
        units = sorted(set(sub["unit"]))
        notes = [n for n in sub["note"] if isinstance(n, str) and n]
        lines += [f"#### `{entry.name}`: {verdict}", "",
                  f"Unit: {'; '.join(units)}. Measure: "
                  f"{'difference in test mAP@K' if entry.measure == 'mAP' else 'share of a gap'}, "
                  f"threshold {entry.threshold:g}"
                  + (f", margin {entry.margin:g}" if entry.margin is not None else ", no margin "
                     "(no equivalence verdict)") + ".", ""]
        lines += [_md(_lines_display(sub)), ""]
        lines += [f"- {n}" for n in dict.fromkeys(notes)] + ([""] if notes else [])
    return lines


# --------------------------------------------------------------------------- findings
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
            "that of an unrelated code." + chance_txt + " The claims table lists those "
            "comparisons as sanity checks, not as support.", "",
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
            # as strings first: a column with no warning at all is read as float64 NaN, and
            # filling it with "" is an error from pandas 4 on
            collapsed = frame[frame["warnings"].astype("string").fillna("")
                              .str.contains("collapsed codes")]
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
                  "their number and are listed here:", ""]
        for f in pd.DataFrame(failed).drop_duplicates().to_dict("records"):
            variant = f" ({f['variant']})" if isinstance(f["variant"], str) and f["variant"] != f["method"].lower() else ""
            lines.append(f"- {f['study']}: {f['method']}{variant}, {int(f['bits'])} bits, seed "
                         f"{int(f['seed'])}: {f['status']}")
    if os.path.exists(gen_failed):
        lines += ["", "Generality grid: see [generality_failed_runs](tables/generality_failed_runs.md)."]
    return lines + [""]


def paper_parameter_ratio(root: str) -> tuple[float, float] | None:
    """Parameters (millions, hash head included) of ViT-B/16 and EfficientNet-B0 from the
    profile's ``efficiency_paper_backbones`` table (notebook 09), or None where not measured."""
    path = os.path.join(root, "tables", "efficiency_paper_backbones.csv")
    if not os.path.exists(path):
        return None
    table = pd.read_csv(path).set_index("model")
    if not {"vit_b_16", "efficientnet_b0"} <= set(table.index):
        return None
    return float(table.at["vit_b_16", "params_M"]), float(table.at["efficientnet_b0", "params_M"])


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
        paper = paper_parameter_ratio(root)
        if paper is None:
            ref = "the paper's ViT-B/16 and EfficientNet-B0 were not measured in this profile"
        else:
            ref = (f"the paper's ViT-B/16 over EfficientNet-B0, as this kit measures them with "
                   f"their hash heads (`efficiency_paper_backbones`): {paper[0]:.2f}M / "
                   f"{paper[1]:.2f}M = {paper[0] / paper[1]:.1f}x")
        lines.append(f"- teacher / student parameters: {ratio:.1f}x ({ref})")
    return lines + [""]


def _measured_effects(rows: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Departure key -> the effect measured on this profile's rows (replacing the registry's
    pointer in the report)."""
    out = {}
    up = rows.get("upstream_baselines")
    if up is not None and not up.empty and "negatives" in up:
        parts = []
        for method, sub in up.groupby("method", sort=True):
            diff = paired_against(sub, column="negatives", reference="class", others=["uniform"],
                                  pair_on=["seed"])
            for _, r in diff.iterrows():
                line = f"{method_label(method)} {r['paradigm']}"
                n = int(r["n"]) if math.isfinite(r["n"]) else 0
                if n == 0 or not math.isfinite(r["mean"]):  # e.g. every uniform run failed
                    parts.append(f"{line}: no pairs")
                    continue
                interval = (f" [{r['low']:+.4f}, {r['high']:+.4f}]"
                            if math.isfinite(r["low"]) else "")
                parts.append(f"{line} {r['mean']:+.4f}{interval} (n = {n})")
        if parts:  # n per line: the pairs of that method and paradigm, not every seed of the study
            out["contrastive_negatives"] = (
                f"measured here (upstream-baselines study, {int(up['bits'].iloc[0])} bits, class "
                f"minus uniform negatives, paired by seed, raw 95 % intervals): "
                + "; ".join(parts))
    return out


def departures_markdown(rows: dict[str, pd.DataFrame]) -> list[str]:
    """Every departure as a list item (a table of eight text columns is wider than the page),
    with this profile's measured effect where it has one."""
    measured = _measured_effects(rows)
    out = []
    for d in DEPARTURES:
        effect = measured.get(d.key, d.effect)
        out.append(f"- **`{d.key}`** ({d.area}). Released code: {d.release}. Kit: {d.kit} "
                   f"({d.why}). Switch: {d.switch}. Effect: {effect}. Details: {d.docs}.")
    return out


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
    lines += _asymmetric_paragraph(rows, chance_level(root))
    lines += _failed_paragraph(rows, root)
    lines += ["### What \"upstream\" means", "",
              "A row or option named *upstream* reproduces the released code's behaviour where the "
              "kit departs from it. `upstream_mask` is BRCD with the released mask script, whose two "
              "chained `where` calls zero every bit for any margin below 1: the structural term "
              "and every negative then compare masked all-zero vectors (cosine 0), so BRCD "
              "reduces to its individual term plus a constant. The kit's default is the rule the "
              "paper describes (keep bit j of cluster c when |mean| > delta).", ""]
    lines += ["### Departures from the released code", "",
              "Each item: what the released code does, what the kit does by default and why, the "
              "switch that restores the release, and its measured effect where measured "
              "(`docs/departures.md`).", "", *departures_markdown(rows), ""]
    return lines

"""The claims table on rows whose answers are known by construction: the seed as the unit, Holm
within the profile, the four verdicts, sanity lines, the premise, one verdict per claim, the key
lines' seed counts; the catalogue against the paper's abstract; and the committed results,
whatever seeds and lengths they hold."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from brcd_lib.paths import repo_root
from brcd_lib.reporting import catalogue
from brcd_lib.reporting.claims import (BUILDERS, CLAIMS_COLUMNS, NOT_RUN, PREMISE_NOT_MET,
                                       claims_table, key_lines, missing_claims, overall_verdicts)
from brcd_lib.reporting.findings import STUDIES, claims_frames, load_rows
from brcd_lib.reporting.premise import premise_check
from brcd_lib.reporting.stats import VERDICTS, seeds_needed, smallest_detectable_effect

REPO = repo_root()
CHANCE = 0.1


def _main_rows(*, seeds=range(5), bits=(16, 32), teacher=0.9, lsh=0.3, noise=0.001) -> pd.DataFrame:
    """BRCD 0.05 above the undistilled student (symmetric), KD within 0.0005 of BRCD, SP 0.04
    above BRCD; in the asymmetric paradigm the undistilled student and SP sit at chance (0.1),
    KD at 0.5, BRCD at 0.55. ``teacher``: a value or {bits: value}."""
    rng = np.random.default_rng(0)
    rows = []
    for b in bits:
        t = teacher[b] if isinstance(teacher, dict) else teacher
        rows.append({"method": "LSH", "variant": "lsh", "bits": b, "seed": 0,
                     "paradigm": "symmetric", "value": lsh, "status": "ok"})
        for p in ("symmetric", "asymmetric"):
            rows.append({"method": "teacher", "variant": "teacher", "bits": b, "seed": 0,
                         "paradigm": p, "value": t, "status": "ok"})
            for s in seeds:
                base = 0.5 + 0.01 * s + (0.02 if b == 32 else 0.0)
                values = ({"none": base, "brcd": base + 0.05, "kd": base + 0.0495, "sp": base + 0.09}
                          if p == "symmetric" else
                          {"none": CHANCE, "sp": CHANCE, "kd": 0.5, "brcd": 0.55})
                for m, v in values.items():
                    rows.append({"method": m, "variant": m, "bits": b, "seed": s, "paradigm": p,
                                 "value": v + rng.normal(0, noise), "status": "ok"})
    return pd.DataFrame(rows)


def _line(table, claim, comparison, paradigm, length):
    sel = table[(table["claim"] == claim) & (table["comparison"] == comparison)
                & (table["paradigm"] == paradigm) & (table["code_length"] == length)]
    assert len(sel) == 1, (claim, comparison, paradigm, length)
    return sel.iloc[0]


def test_lines_have_the_seed_as_the_unit_and_known_verdicts():
    table = claims_table({"main": _main_rows()}, chance=CHANCE)
    assert list(table.columns) == CLAIMS_COLUMNS
    none16 = _line(table, "beats_no_kd", "BRCD vs Student (no KD)", "symmetric", "16")
    pooled = _line(table, "beats_no_kd", "BRCD vs Student (no KD)", "symmetric", "pooled")
    assert none16["n"] == 5 and pooled["n"] == 5  # seeds, never seeds x lengths
    assert none16["verdict"] == "supported" and pooled["verdict"] == "supported"
    assert pooled["estimate"] == pytest.approx(0.05, abs=0.002)
    kd = _line(table, "beats_baselines", "BRCD vs KD", "symmetric", "32")
    assert kd["verdict"] == "equivalent" and kd["kind"] == "evidence"  # a tight null
    sp = _line(table, "beats_baselines", "BRCD vs SP", "symmetric", "pooled")
    assert sp["verdict"] == "contradicted"
    # the adjusted interval is wider than the raw one and the raw one is the 95 % t-interval
    assert kd["adjusted_low"] < kd["raw_low"] and kd["adjusted_high"] > kd["raw_high"]
    assert kd["adjusted_level"] < 0.05
    assert set(table["verdict"]) <= set(VERDICTS) | {PREMISE_NOT_MET}
    # the smallest detectable effect is the one of the line's n and SD
    assert kd["sde"] == pytest.approx(smallest_detectable_effect(kd["sd"], 5))


def test_comparisons_with_an_alternative_at_chance_are_sanity_lines():
    table = claims_table({"main": _main_rows()}, chance=CHANCE)
    sp = table[(table["comparison"] == "BRCD vs SP") & (table["paradigm"] == "asymmetric")]
    nokd = table[(table["comparison"] == "BRCD vs Student (no KD)") & (table["paradigm"] == "asymmetric")]
    kd = table[(table["comparison"] == "BRCD vs KD") & (table["paradigm"] == "asymmetric")]
    assert set(sp["kind"]) == {"sanity"} and set(nokd["kind"]) == {"sanity"}
    assert set(kd["kind"]) == {"evidence"}
    assert set(sp["verdict"]) == {"supported"}  # supported, but not counted
    overall = overall_verdicts(table).set_index("claim")
    assert overall.loc["beats_no_kd", "sanity lines"] == 3
    assert "supported 3" in overall.loc["beats_no_kd", "evidence lines"]  # symmetric only
    # without a chance level nothing is classified
    assert set(claims_table({"main": _main_rows()})["kind"]) == {"evidence"}


def test_holm_adjusts_within_the_evidence_family_only():
    table = claims_table({"main": _main_rows()}, chance=CHANCE)
    evidence = table[(table["kind"] == "evidence") & table["adjusted_level"].notna()]
    sanity = table[(table["kind"] == "sanity") & table["adjusted_level"].notna()]
    m_e, m_s = len(evidence), len(sanity)
    assert evidence["adjusted_level"].min() == pytest.approx(0.05 / m_e)
    assert sanity["adjusted_level"].min() == pytest.approx(0.05 / m_s)
    # the family is the profile's: adding a study adds lines to the same family
    ablations = _main_rows()[lambda f: (f["bits"] == 32) & f["method"].isin(["brcd", "kd"])]
    ablations = ablations.assign(variant=ablations["method"].map({"brcd": "brcd", "kd": "no_mask"}),
                                 method="brcd")
    more = claims_table({"main": _main_rows(), "ablations": ablations}, chance=CHANCE)
    ev_more = more[(more["kind"] == "evidence") & more["adjusted_level"].notna()]
    assert len(ev_more) == m_e + 2 and ev_more["adjusted_level"].min() == pytest.approx(0.05 / (m_e + 2))


def test_a_failed_premise_gives_no_verdict_and_leaves_the_family():
    rows = _main_rows(teacher={16: 0.45, 32: 0.9})  # the 16-bit teacher below the student
    table = claims_table({"main": rows}, chance=CHANCE)
    at16 = table[table["code_length"] == "16"]
    pooled = table[table["code_length"] == "pooled"]
    at32 = table[table["code_length"] == "32"]
    assert set(at16["verdict"]) == {PREMISE_NOT_MET} and set(at16["premise"]) == {"not met"}
    assert set(pooled["verdict"]) == {PREMISE_NOT_MET}  # a pooled line needs every length
    assert PREMISE_NOT_MET not in set(at32["verdict"]) and at16["adjusted_level"].isna().all()
    share = _line(table, "approaches_teacher", "BRCD: share of the teacher - no-KD gap closed",
                  "symmetric", "16")
    assert share["n"] == 0 and "5 of 5 seeds" in share["note"]  # reported, not dropped
    overall = overall_verdicts(table).set_index("claim")["overall"]
    assert overall["beats_no_kd"] == PREMISE_NOT_MET
    assert overall["beats_baselines"] == "contradicted"  # SP, symmetric, 32 bits: premise met
    lsh_above = claims_table({"main": _main_rows(lsh=0.95)}, chance=CHANCE)
    assert set(lsh_above["verdict"]) == {PREMISE_NOT_MET}


def test_premise_check_parts_and_spread():
    rows = _main_rows(seeds=range(4))
    table = premise_check(rows).set_index("bits")
    student = rows[(rows["method"] == "none") & (rows["paradigm"] == "symmetric") & (rows["bits"] == 16)]
    assert table.loc[16, "student_no_kd"] == pytest.approx(student["value"].mean())
    assert table.loc[16, "needed"] == pytest.approx(2 * student["value"].std(ddof=1))
    assert table.loc[16, "status"] == "met" and table.loc[16, "lsh"] == 0.3
    no_lsh = premise_check(rows[rows["method"] != "LSH"])
    assert set(no_lsh["status"]) == {"not measured"}
    close = premise_check(_main_rows(teacher=0.51, seeds=range(4)))  # gap below 2 SDs at 16 bits
    assert close.set_index("bits").loc[16, "status"] == "not met"
    assert "2 SDs" in close.set_index("bits").loc[16, "reason"]
    # teacher seeds add their spread: sqrt(sd_t^2 + sd_s^2)
    multi = pd.concat([rows, rows[rows["method"] == "teacher"].assign(seed=1, value=0.92)])
    t = multi[(multi["method"] == "teacher") & (multi["paradigm"] == "symmetric") & (multi["bits"] == 16)]
    line = premise_check(multi).set_index("bits").loc[16]
    assert line["needed"] == pytest.approx(2 * math.hypot(t["value"].std(ddof=1),
                                                          student["value"].std(ddof=1)))


def _verdict_table(verdicts: list[str], kinds=None) -> pd.DataFrame:
    kinds = kinds or ["evidence"] * len(verdicts)
    return pd.DataFrame({"claim": "mask_helps", "verdict": verdicts, "kind": kinds})


@pytest.mark.parametrize("verdicts,kinds,expected", [
    (["supported", "supported"], None, "supported"),
    (["supported", "inconclusive"], None, "inconclusive"),
    (["supported", "contradicted"], None, "contradicted"),
    (["equivalent", "equivalent"], None, "equivalent"),
    (["supported", PREMISE_NOT_MET], None, PREMISE_NOT_MET),
    ([PREMISE_NOT_MET, "contradicted"], None, "contradicted"),
    ([PREMISE_NOT_MET, PREMISE_NOT_MET], None, PREMISE_NOT_MET),
    (["supported", "contradicted"], ["evidence", "sanity"], "supported"),  # sanity does not count
])
def test_one_verdict_per_claim_by_the_written_rule(verdicts, kinds, expected):
    overall = overall_verdicts(_verdict_table(verdicts, kinds)).set_index("claim")["overall"]
    assert overall["mask_helps"] == expected
    assert overall["beats_baselines"] == NOT_RUN


def test_key_lines_give_the_seeds_for_the_margin():
    rows = {"main": _main_rows(noise=0.01).assign(wall_s=2.0)}
    table = claims_table(rows, chance=CHANCE)
    keys = key_lines(table, rows).set_index(["comparison", "paradigm"])
    line = keys.loc[("BRCD vs KD", "symmetric")]
    assert line["n"] == 5 and line["seeds_for_margin"] == seeds_needed(line["sd"], 0.01)
    m = int(line["family"])
    assert line["seeds_for_margin_family"] == seeds_needed(line["sd"], 0.01, alpha=0.05 / m)
    # two methods at 2 s a run, the seeds missing at the family level
    assert line["extra_cpu_s"] == pytest.approx(4.0 * max(0, line["seeds_for_margin_family"] - 5))
    assert len(keys) == 4


def test_catalogue_quotes_the_abstract_verbatim_and_names_what_exists():
    method = (REPO / "docs" / "method.md").read_text()
    section = method.split("## The paper's abstract", 1)[1].split("\n## ", 1)[0]
    abstract = " ".join(line.lstrip("> ").strip() for line in section.splitlines() if line.startswith(">"))
    abstract = re.sub(r"\s+", " ", abstract)
    names = [e.name for e in catalogue.CATALOGUE]
    assert len(names) == len(set(names))
    for entry in catalogue.CATALOGUE:
        for quote in entry.quotes:
            assert re.sub(r"\s+", " ", quote) in abstract, (entry.name, quote)
        assert entry.study in STUDIES and entry.builder in BUILDERS
        assert entry.operationalisation and entry.scope
        assert entry.paper_text.startswith("“") or entry.paper_text == catalogue.KIT_CHECK
    frame = catalogue.catalogue_frame()
    assert list(frame["name"]) == names and frame["rule"].str.contains("every evidence line").all()


def test_claims_csv_columns_hold_what_the_issue_names():
    required = {"claim", "comparison", "paradigm", "code_length", "unit", "n", "estimate",
                "raw_low", "raw_high", "adjusted_low", "adjusted_high", "sde", "verdict", "kind"}
    assert required <= set(CLAIMS_COLUMNS)


PROFILES = sorted(p.parent.parent.name for p in (REPO / "results").glob("*/tables/main_rows.csv"))


@pytest.mark.parametrize("profile", PROFILES)
def test_committed_results_whatever_seeds_and_lengths_they_hold(profile):
    """On the committed rows: no line counts more units than the study has seeds (or teacher
    seeds), the pooled lines exist where there are several lengths, premise failures carry no
    verdict, and every claim gets an overall verdict."""
    root = REPO / "results" / profile
    rows = load_rows(str(root))
    frames = claims_frames(str(root), rows=rows)
    table = frames["claims"]
    assert len(table) and set(table["verdict"]) <= set(VERDICTS) | {PREMISE_NOT_MET}
    for _, line in table.iterrows():
        study = rows[catalogue.spec(line["claim"]).study]
        units = study["teacher_seed"].nunique() if line["claim"] == "robust_to_teacher" \
            else study["seed"].nunique()
        assert line["n"] <= units, (line["claim"], line["comparison"])
        assert (line["verdict"] == PREMISE_NOT_MET) == (line["premise"] == "not met")
    if rows["main"]["bits"].nunique() > 1:
        assert "pooled" in set(table["code_length"])
    overall = frames["overall"]
    assert list(overall["claim"]) == [e.name for e in catalogue.CATALOGUE]
    assert set(overall.loc[overall["claim"].isin(missing_claims(rows)), "overall"]) <= {NOT_RUN}


def _git_show(commit: str, path: str) -> str | None:
    import subprocess

    proc = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:{path}"],
                          capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


@pytest.mark.parametrize("profile,commit,teacher,student,gap", [
    ("fashion", "80f8e7f", 0.7238, 0.6309, 0.0929), ("digits", "3282cf8", 0.9188, 0.8395, 0.0793)])
def test_the_gaps_docs_models_quotes_recompute_from_their_commits(profile, commit, teacher,
                                                                 student, gap):
    import io

    text = (REPO / "docs" / "models.md").read_text()
    quoted = f"teacher {teacher:.4f}"
    assert quoted in text and f"{gap:.4f}" in text and commit in text
    assert "0.0746" not in text and "0.0389" not in text  # superseded gaps are gone
    csv = _git_show(commit, f"results/{profile}/tables/main_rows.csv")
    if csv is None:
        pytest.skip(f"commit {commit} is not in this clone (shallow?)")
    line = premise_check(pd.read_csv(io.StringIO(csv))).set_index("bits").loc[32]
    assert round(line["teacher"], 4) == teacher and round(line["student_no_kd"], 4) == student
    assert round(line["gap"], 4) == gap


def test_the_digits_premise_docs_models_quotes_recomputes_from_its_commit():
    """docs/models.md quotes teacher vs converged no-KD student per code length from the digits
    results regenerated at 8d08ba9; each pair recomputes from that commit's rows."""
    import io

    text = " ".join((REPO / "docs" / "models.md").read_text().split())
    pairs = {16: (0.8880, 0.8836), 32: (0.9188, 0.9087), 64: (0.9291, 0.9255)}
    quoted = ", ".join(f"{b} bits {t:.4f} vs {s:.4f}" for b, (t, s) in pairs.items())
    assert quoted in text and "8d08ba9" in text
    csv = _git_show("8d08ba9", "results/digits/tables/main_rows.csv")
    if csv is None:
        pytest.skip("commit 8d08ba9 is not in this clone (shallow?)")
    table = premise_check(pd.read_csv(io.StringIO(csv))).set_index("bits")
    for bits, (teacher, student) in pairs.items():
        assert round(table.loc[bits, "teacher"], 4) == teacher
        assert round(table.loc[bits, "student_no_kd"], 4) == student
    assert [bool(table.loc[b, "teacher_above"]) for b in (16, 32, 64)] == [False, False, True]


def test_the_width4_digits_premise_docs_models_quotes_recompute_from_the_committed_rows():
    """docs/models.md quotes teacher vs no KD vs LSH per code length from the committed digits
    results (the width-4 student); each triple recomputes from results/digits/tables/main_rows.csv
    (a digits rerun that moves them must update the quote)."""
    text = " ".join((REPO / "docs" / "models.md").read_text().split())
    triples = {16: (0.8880, 0.8301, 0.5937), 32: (0.9188, 0.8574, 0.6843),
               64: (0.9291, 0.8659, 0.7770)}
    quoted = ", ".join(f"{b} bits {t:.4f} vs {s:.4f} vs {lsh:.4f}"
                       for b, (t, s, lsh) in triples.items())
    assert quoted in text
    rows = pd.read_csv(REPO / "results" / "digits" / "tables" / "main_rows.csv")
    table = premise_check(rows).set_index("bits")
    for bits, (teacher, student, lsh) in triples.items():
        assert round(table.loc[bits, "teacher"], 4) == teacher
        assert round(table.loc[bits, "student_no_kd"], 4) == student
        assert round(table.loc[bits, "lsh"], 4) == lsh
    assert table["teacher_above"].all() and table["student_above_lsh"].all()


# ------------------------------------------------------------------ verdicts computed by hand
def _t_interval(values, confidence=0.95):
    """Reference two-sided t-interval (scipy), independent of brcd_lib.reporting.stats."""
    from scipy import stats as st

    x = np.asarray(values, dtype=float)
    half = st.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean() - half, x.mean() + half


def test_approaches_teacher_is_read_against_one_half_of_the_gap():
    """BRCD closes 7-9 % of the teacher - no-KD gap: clearly above 0, clearly below one half.
    The claim's threshold is one half, so the line is 'contradicted' (with a threshold of 0 it
    would read 'supported')."""
    shares = [0.07, 0.075, 0.08, 0.085, 0.09]  # mean 0.08
    rows = [{"method": "LSH", "variant": "lsh", "bits": 32, "seed": 0, "paradigm": "symmetric",
             "value": 0.3, "status": "ok"}]
    for p in ("symmetric", "asymmetric"):
        rows.append({"method": "teacher", "variant": "teacher", "bits": 32, "seed": 0,
                     "paradigm": p, "value": 0.9, "status": "ok"})
        for s, share in enumerate(shares):
            # undistilled student 0.5 every seed: gap 0.9 - 0.5 = 0.4; BRCD = 0.5 + share * 0.4
            rows.append({"method": "none", "variant": "none", "bits": 32, "seed": s,
                         "paradigm": p, "value": 0.5, "status": "ok"})
            rows.append({"method": "brcd", "variant": "brcd", "bits": 32, "seed": s,
                         "paradigm": p, "value": 0.5 + share * 0.4, "status": "ok"})
    table = claims_table({"main": pd.DataFrame(rows)})
    from scipy import stats as st

    for p in ("symmetric", "asymmetric"):
        line = _line(table, "approaches_teacher", "BRCD: share of the teacher - no-KD gap closed",
                     p, "32")
        assert line["premise"] == "met" and line["n"] == 5
        assert line["threshold"] == 0.5
        assert line["estimate"] == pytest.approx(0.08)
        low, high = _t_interval(shares)
        assert (line["raw_low"], line["raw_high"]) == pytest.approx((low, high))
        assert line["p_value"] == pytest.approx(st.ttest_1samp(shares, 0.5).pvalue)
        assert line["wins"] == 0  # no seed above one half
        assert 0 < line["adjusted_low"] and line["adjusted_high"] < 0.5
        assert line["verdict"] == "contradicted"
    overall = overall_verdicts(table).set_index("claim")["overall"]
    assert overall["approaches_teacher"] == "contradicted"


def _teacher_seed_rows():
    """3 teacher seeds x 4 student seeds; BRCD - KD = a[t] + b[s] with a = 0.010, 0.012, 0.014
    and b = -0.03, -0.01, 0.01, 0.03 (mean 0). Per teacher seed (the claim's unit), the mean over
    its student seeds is a[t]: 0.010, 0.012, 0.014 (tight, above 0). Paired on the student seed
    instead, the units would be b[s] + 0.012: -0.018, 0.002, 0.022, 0.042 (wide)."""
    a, b = [0.010, 0.012, 0.014], [-0.03, -0.01, 0.01, 0.03]
    rows = []
    for p in ("symmetric", "asymmetric"):
        for t, at in enumerate(a):
            rows.append({"method": "teacher", "variant": "teacher", "bits": 32, "seed": t,
                         "teacher_seed": t, "paradigm": p, "value": 0.9 + 0.001 * t,
                         "status": "ok"})
            for s, bs in enumerate(b):
                kd = 0.6 + 0.005 * t + 0.002 * s  # KD moves with both seeds too
                rows.append({"method": "kd", "variant": "kd", "bits": 32, "seed": s,
                             "teacher_seed": t, "paradigm": p, "value": kd, "status": "ok"})
                rows.append({"method": "brcd", "variant": "brcd", "bits": 32, "seed": s,
                             "teacher_seed": t, "paradigm": p, "value": kd + at + bs,
                             "status": "ok"})
    return pd.DataFrame(rows)


def test_robust_to_teacher_pairs_on_teacher_and_student_seed_with_the_teacher_as_unit():
    table = claims_table({"teacher_seeds": _teacher_seed_rows()})
    per_teacher = [0.010, 0.012, 0.014]
    low, high = _t_interval(per_teacher)
    for p in ("symmetric", "asymmetric"):
        line = _line(table, "robust_to_teacher", "BRCD vs KD", p, "32")
        assert line["n"] == 3  # teacher seeds, not student seeds (4) nor pairs (12)
        assert line["estimate"] == pytest.approx(0.012)
        assert line["sd"] == pytest.approx(0.002)
        assert (line["raw_low"], line["raw_high"]) == pytest.approx((low, high))
        assert line["verdict"] == "supported"
    # shuffle the teacher seeds of the KD rows within each student seed: paired on the student
    # seed alone nothing changes, paired on (teacher seed, student seed) the units do
    rows = _teacher_seed_rows()
    kd = rows["method"] == "kd"
    rows.loc[kd, "teacher_seed"] = rows.loc[kd, "teacher_seed"].map({0: 1, 1: 2, 2: 0})
    # BRCD(t, s) now stands against the KD of teacher seed t - 1 (mod 3), whose offset 0.005 * t
    # is 0.005 lower for t = 1, 2 and 0.010 higher for t = 0, so the per-teacher means become
    # 0.010 - 0.010 = 0.000, 0.012 + 0.005 = 0.017, 0.014 + 0.005 = 0.019: mean 0.012 (the
    # shifts cancel), sd sqrt((0.012^2 + 0.005^2 + 0.007^2) / 2) = sqrt(0.000109)
    shuffled = claims_table({"teacher_seeds": rows})
    line = _line(shuffled, "robust_to_teacher", "BRCD vs KD", "symmetric", "32")
    assert line["n"] == 3
    assert line["estimate"] == pytest.approx(0.012)
    assert line["sd"] == pytest.approx(math.sqrt(0.000109))

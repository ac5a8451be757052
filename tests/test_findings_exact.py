"""Exact outputs of brcd_lib/reporting/findings.py on tiny inputs written by hand: every table the
claims section shows (whole frames, column names and order included), every sentence of the
claims and findings sections (whole strings and whole line lists), and the wiring of the claims
functions (through spies). The expectations are literals; where a number comes from statistics it
is recomputed here with numpy/scipy and the arithmetic is written in a comment."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from brcd_lib.reporting import findings as F

NAN = float("nan")


def _write(root, name, frame):
    (root / "tables").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(frame).to_csv(root / "tables" / name, index=False)


class _MdSpy:
    """Stands in for ``fit_markdown``: records each frame and its ``keys``; returns a marker."""

    def __init__(self):
        self.calls = []

    def __call__(self, frame, *, keys="not passed"):
        self.calls.append((frame, keys))
        return f"<table {len(self.calls)}>"


# --------------------------------------------------------------------------- small helpers
def test_plain_heading_is_a_level_two_heading():
    assert F._plain_heading("Some title") == ["## Some title"]


def test_md_passes_the_frame_and_the_key_count(monkeypatch):
    spy = _MdSpy()
    monkeypatch.setattr(F, "fit_markdown", spy)
    frame = pd.DataFrame({"a": ["x"], "b": [1]})
    assert F._md(frame) == "<table 1>"
    assert F._md(frame, keys=2) == "<table 2>"
    assert spy.calls[0][0] is frame and spy.calls[0][1] == 1
    assert spy.calls[1][0] is frame and spy.calls[1][1] == 2


def test_md_renders_through_fit_markdown():
    frame = pd.DataFrame({"a": ["x", "yy"], "b": [1, 20]})
    assert F._md(frame) == ("| a   |   b |\n"
                            "|:----|----:|\n"
                            "| x   |   1 |\n"
                            "| yy  |  20 |")


# --------------------------------------------------------------------------- load_rows
STUDY_FILES = [("main", "main_rows.csv"), ("ablations", "ablations_rows.csv"),
               ("sensitivity", "sensitivity_rows.csv"), ("generality", "generality_rows.csv"),
               ("teacher_seeds", "teacher_seeds_rows.csv"), ("teachers", "teachers_rows.csv"),
               ("pairs", "pairs_rows.csv"), ("upstream_baselines", "upstream_baselines_rows.csv"),
               ("ladder", "ladder_rows.csv")]


def test_studies_name_their_rows_files():
    assert list(F.STUDIES.items()) == STUDY_FILES


def test_load_rows_reads_every_rows_file_under_tables(tmp_path):
    for i, (_, name) in reversed(list(enumerate(STUDY_FILES))):
        _write(tmp_path, name, {"seed": [i, i + 1], "method": [f"m{i}", "kd"]})
    _write(tmp_path, "other_rows.csv", {"seed": [99]})
    (tmp_path / "main_rows.csv").write_text("seed\n5\n")  # not under tables/: not read
    out = F.load_rows(str(tmp_path))
    assert list(out) == [s for s, _ in STUDY_FILES]
    for i, (study, _) in enumerate(STUDY_FILES):
        pd.testing.assert_frame_equal(out[study], pd.DataFrame({"seed": [i, i + 1],
                                                                "method": [f"m{i}", "kd"]}))


def test_load_rows_leaves_out_studies_without_a_file(tmp_path):
    assert F.load_rows(str(tmp_path)) == {}
    _write(tmp_path, "ladder_rows.csv", {"seed": [3]})
    _write(tmp_path, "main_rows.csv", {"seed": [4]})
    out = F.load_rows(str(tmp_path))
    assert list(out) == ["main", "ladder"]
    pd.testing.assert_frame_equal(out["main"], pd.DataFrame({"seed": [4]}))
    pd.testing.assert_frame_equal(out["ladder"], pd.DataFrame({"seed": [3]}))


# --------------------------------------------------------------------------- chance_level
def test_chance_level_reads_the_protocol_file(tmp_path):
    assert F.chance_level(str(tmp_path)) is None  # no file
    path = tmp_path / "data_protocol.json"
    path.write_text(json.dumps({"chance_map": 0.125, "note": "—"}), encoding="utf-8")
    assert F.chance_level(str(tmp_path)) == 0.125
    path.write_text(json.dumps({"chance_map": 1}))
    value = F.chance_level(str(tmp_path))
    assert value == 1.0 and type(value) is float
    path.write_text(json.dumps({"chance_map": None}))
    assert F.chance_level(str(tmp_path)) is None
    path.write_text(json.dumps({"other": 0.5}))
    assert F.chance_level(str(tmp_path)) is None
    assert F._chance is F.chance_level


# --------------------------------------------------------------------------- _seed_counts
def _rows(spec, **const):
    """A frame from (method, seed, bits) triples plus constant columns."""
    frame = pd.DataFrame(spec, columns=["method", "seed", "bits"])
    for k, v in const.items():
        frame[k] = v
    return frame


def test_seed_counts_per_study():
    main = _rows([("kd", 2, 16), ("brcd", 0, 16), ("brcd", 0, 32), ("brcd", 1, 16),
                  ("brcd", 2, 16), ("kd", 1, 16), ("kd", 0, 16), ("sp", 0, 16), ("sp", 1, 16),
                  ("none", 0, 16), ("none", 1, 32), ("pkt", 5, 16)]
                 + [("teacher", s, 16) for s in range(4)] + [("LSH", s, 16) for s in range(5)]
                 + [("ITQ", s, 16) for s in range(6)])
    ablations = _rows([("brcd", 0, 64), ("brcd", 1, 16), ("brcd", 0, 32), ("brcd", 1, 16),
                       ("teacher", 7, 128)])
    sensitivity = _rows([("brcd", 3, 32.0), ("brcd", 3, NAN), ("teacher", 8, 16.0)])
    teacher_seeds = _rows([("brcd", 0, 16), ("brcd", 1, 16), ("kd", 2, 16), ("teacher", 5, 16)])
    teacher_seeds["teacher_seed"] = [10, 11, 10, 12]
    generality = _rows([("brcd", s, b) for s in range(5) for b in (32, 16)]
                       + [("teacher", 9, 64)])
    pairs = _rows([("brcd", 0, 16), ("none", 1, 8), ("teacher", 2, 16)])
    pairs["teacher_seed"] = [1, 2, 3]  # only the teacher-seed study names its teacher seeds
    ladder = _rows([("brcd", s, 12) for s in range(4)] + [("teacher", 4, 12)])
    rows = {"ladder": ladder, "pairs": pairs, "generality": generality, "main": main,
            "teacher_seeds": teacher_seeds, "sensitivity": sensitivity, "ablations": ablations,
            "teachers": _rows([("teacher", 0, 16)])}
    assert F._seed_counts(rows) == [
        "- main table: 3 seeds: BRCD, KD; 2 seeds: SP, Student (no KD); 1 seed: PKT",
        "- ablations: 2 student seeds, 16, 32, 64 bits",
        "- sensitivity: 1 student seed, 32 bits",
        "- teacher seeds: 3 student seeds, 2 teacher seeds, 16 bits",
        "- generality: 5 student seeds, 16, 32 bits",
        "- pairs: 2 student seeds, 8, 16 bits",
        "- ladder: 4 student seeds, 12 bits",
    ]


def test_seed_counts_skip_missing_and_empty_studies():
    empty = pd.DataFrame(columns=["method", "seed", "bits"])
    assert F._seed_counts({}) == []
    assert F._seed_counts({"generality": empty, "ablations": empty}) == []
    assert F._seed_counts({"main": _rows([("brcd", 0, 16), ("teacher", 1, 16)])}) == [
        "- main table: 1 seed: BRCD"]


# --------------------------------------------------------------------------- claims_frames
def _spies(monkeypatch, premise):
    calls, out = {}, {"table": pd.DataFrame({"claim": ["t"]}),
                      "overall": pd.DataFrame({"claim": ["o"]}),
                      "key": pd.DataFrame({"k": [1]})}

    def claims_table(rows, *, chance="not passed"):
        calls["claims_table"] = (rows, chance)
        return out["table"]

    def missing_claims(rows):
        calls["missing_claims"] = rows
        return ["mask_helps"]

    def overall_verdicts(table, *, missing="not passed"):
        calls["overall_verdicts"] = (table, missing)
        return out["overall"]

    def premise_tables(rows):
        calls["premise_tables"] = rows
        return premise

    def key_lines(table, rows="not passed"):
        calls["key_lines"] = (table, rows)
        return out["key"]

    for name, fn in [("claims_table", claims_table), ("missing_claims", missing_claims),
                     ("overall_verdicts", overall_verdicts), ("premise_tables", premise_tables),
                     ("key_lines", key_lines)]:
        monkeypatch.setattr(F, name, fn)
    return calls, out


def test_claims_frames_wires_the_claims_functions_and_labels_the_premise(tmp_path, monkeypatch):
    (tmp_path / "data_protocol.json").write_text(json.dumps({"chance_map": 0.125}))
    _write(tmp_path, "main_rows.csv", {"seed": [0]})  # rows are passed: this file is not read
    pairs = pd.DataFrame({"setting": [1, 2], "student_backbone": ["s1", "s2"], "bits": [16, 16],
                          "teacher_backbone": ["t1", "t1"], "teacher": [0.6, 0.5],
                          "status": ["met", "met"]})
    premise = {
        "ablations": pd.DataFrame(),  # empty: skipped, the later ones still read
        "main": pd.DataFrame({"bits": [16, 32], "teacher": [0.8, 0.81], "status": ["met", "not met"]}),
        "teacher_seeds": pd.DataFrame({"bits": [16], "teacher": [0.7], "status": ["met"]}),
        "pairs": pairs,
        "generality": pd.DataFrame({"setting": ["dpsh", "greedy"], "bits": [16, 32],
                                    "teacher": [0.4, 0.45], "status": ["met", "not measured"]}),
    }
    calls, out = _spies(monkeypatch, premise)
    rows = {"main": pd.DataFrame({"seed": [1]})}
    frames = F.claims_frames(str(tmp_path), rows=rows)
    assert list(frames) == ["claims", "overall", "premise", "key_lines"]
    assert frames["claims"] is out["table"] and frames["overall"] is out["overall"]
    assert frames["key_lines"] is out["key"]
    assert calls["claims_table"][0] is rows and calls["claims_table"][1] == 0.125
    assert calls["missing_claims"] is rows
    assert calls["overall_verdicts"][0] is out["table"]
    assert calls["overall_verdicts"][1] == ["mask_helps"]
    assert calls["premise_tables"] is rows
    assert calls["key_lines"][0] is out["table"] and calls["key_lines"][1] is rows
    expected = pd.DataFrame({
        "study": ["main", "main", "teacher_seeds", "pairs", "pairs", "generality", "generality"],
        "setting": ["the profile's teacher and student", "the profile's teacher and student",
                    "teacher-seed study (teachers pooled)", "t1 -> s1 -> 1", "t1 -> s2 -> 2",
                    "hashing model dpsh", "hashing model greedy"],
        "bits": [16, 32, 16, 16, 16, 16, 32],
        "teacher": [0.8, 0.81, 0.7, 0.6, 0.5, 0.4, 0.45],
        "status": ["met", "not met", "met", "met", "met", "met", "not measured"]})
    pd.testing.assert_frame_equal(frames["premise"], expected)
    # the study's own frame is left as it was
    assert list(pairs.columns) == ["setting", "student_backbone", "bits", "teacher_backbone",
                                   "teacher", "status"]


def test_claims_frames_reads_the_rows_when_none_are_passed(tmp_path, monkeypatch):
    _write(tmp_path, "main_rows.csv", {"seed": [0, 1]})
    calls, _ = _spies(monkeypatch, {"main": pd.DataFrame(), "pairs": pd.DataFrame()})
    frames = F.claims_frames(str(tmp_path))
    rows = calls["claims_table"][0]
    assert list(rows) == ["main"]
    pd.testing.assert_frame_equal(rows["main"], pd.DataFrame({"seed": [0, 1]}))
    assert calls["claims_table"][1] is None  # no protocol file: no chance level
    assert calls["missing_claims"] is rows and calls["premise_tables"] is rows
    assert calls["key_lines"][1] is rows
    pd.testing.assert_frame_equal(frames["premise"], pd.DataFrame())


# --------------------------------------------------------------------------- display frames
def test_interval_formats_finite_float_bounds_only():
    assert F._interval(0.01234, 0.5) == "[+0.0123, +0.5000]"
    assert F._interval(-0.25, -0.15) == "[-0.2500, -0.1500]"
    assert F._interval(np.float64(0.001), np.float64(0.02)) == "[+0.0010, +0.0200]"
    assert F._interval(NAN, 1.0) == "—"
    assert F._interval(float("inf"), 1.0) == "—"
    assert F._interval(1, 2) == "—"  # not a float
    assert F._interval(None, None) == "—"


LINES = pd.DataFrame({
    "claim": ["alpha", "alpha", "alpha"],
    "comparison": ["BRCD vs KD", "BRCD vs SP", "BRCD vs CRD"],
    "paradigm": ["symmetric", "asymmetric", "symmetric"],
    "code_length": ["16", "pooled", "32"],
    "unit": ["seed", "seed", "seed"],
    "n": [3, 5, 1],
    "estimate": [0.01234, -0.2, NAN],
    "raw_low": [0.001, -0.25, NAN],
    "raw_high": [0.02, -0.15, NAN],
    "adjusted_low": [-0.003, -0.3, NAN],
    "adjusted_high": [0.025, -0.1, NAN],
    "sde": [0.015, 0.04567, NAN],
    "verdict": ["inconclusive", "contradicted", "premise not met"],
    "kind": ["evidence", "sanity", "evidence"],
    "note": [NAN, NAN, NAN]})

LINES_SHOWN = pd.DataFrame({
    "comparison": ["BRCD vs KD", "BRCD vs SP", "BRCD vs CRD"],
    "paradigm": ["symmetric", "asymmetric", "symmetric"],
    "bits": ["16", "pooled", "32"],
    "n": [3, 5, 1],
    "estimate": ["+0.0123", "-0.2000", "—"],
    "raw 95 % CI": ["[+0.0010, +0.0200]", "[-0.2500, -0.1500]", "—"],
    "adjusted CI": ["[-0.0030, +0.0250]", "[-0.3000, -0.1000]", "—"],
    "SDE": ["0.0150", "0.0457", "—"],
    "verdict": ["inconclusive", "contradicted", "premise not met"],
    "kind": ["evidence", "sanity", "evidence"]})


def test_lines_display():
    pd.testing.assert_frame_equal(F._lines_display(LINES), LINES_SHOWN)


PREMISE = pd.DataFrame({
    "study": ["main", "pairs", "pairs"],
    "setting": ["the profile's teacher and student", "vit -> resnet", "vit -> mobilenet"],
    "bits": [16.0, 32.0, 64.0],
    "teacher": [0.81234, 0.7, 0.5], "teacher_sd": [0.01, NAN, NAN], "teacher_n": [3, 1, 1],
    "student_no_kd": [0.6, 0.75, 0.55], "student_sd": [NAN, 0.02346, NAN],
    "student_n": [1.0, 2.0, 1.0],
    "gap": [0.21234, -0.05, -0.05], "needed": [0.02, 0.0469, 0.0],
    "lsh": [0.4, NAN, 0.6], "teacher_above": [True, False, False],
    "student_above_lsh": [True, None, False],
    "status": ["met", "not met", "not met"],
    "reason": ["", "teacher 0.7000 vs undistilled student 0.7500: gap -0.0500 < 2 SDs (0.0469); "
                   "no LSH row", "undistilled student 0.5500 <= LSH 0.6000"]})

PREMISE_SHOWN = pd.DataFrame({
    "setting": ["the profile's teacher and student", "vit -> resnet", "vit -> mobilenet"],
    "bits": [16, 32, 64],
    "teacher (n)": ["0.8123 ± 0.0100 (3)", "0.7000 (1)", "0.5000 (1)"],
    "no KD (n)": ["0.6000 (1)", "0.7500 ± 0.0235 (2)", "0.5500 (1)"],
    "gap (2 SDs)": ["+0.2123 (0.0200)", "-0.0500 (0.0469)", "-0.0500 (0.0000)"],
    "LSH": ["0.4000", "—", "0.6000"],
    "premise": ["met", "not met", "not met"]})


def test_premise_display():
    pd.testing.assert_frame_equal(F._premise_display(PREMISE), PREMISE_SHOWN)


def test_premise_display_without_any_spread():
    premise = PREMISE.iloc[[1]].reset_index(drop=True).assign(student_sd=[None]).astype(
        {"student_sd": object})
    shown = pd.DataFrame({"setting": ["vit -> resnet"], "bits": [32],
                          "teacher (n)": ["0.7000 (1)"], "no KD (n)": ["0.7500 (2)"],
                          "gap (2 SDs)": ["-0.0500 (0.0469)"], "LSH": ["—"],
                          "premise": ["not met"]})
    pd.testing.assert_frame_equal(F._premise_display(premise), shown)


KEYL = pd.DataFrame({
    "comparison": ["BRCD vs KD", "BRCD vs Student (no KD)"],
    "paradigm": ["symmetric", "asymmetric"], "bits": [32, 32], "kind": ["evidence", "sanity"],
    "n": [3, 4], "estimate": [0.01234, -0.5], "sd": [0.02, 0.1],
    "sde": [0.0456, NAN], "family": [6, 2], "sde_family": [0.07891, 0.2], "margin": [0.01, 0.01],
    "seeds_for_margin": pd.Series([12, None], dtype=object),
    "seeds_for_margin_family": [7.0, NAN], "extra_cpu_s": [123.6, NAN],
    "verdict": ["inconclusive", "supported"]})

KEYL_SHOWN = pd.DataFrame({
    "comparison": ["BRCD vs KD", "BRCD vs Student (no KD)"],
    "paradigm": ["symmetric", "asymmetric (sanity)"],
    "n": [3, 4],
    "estimate": ["+0.0123", "-0.5000"],
    "SD": ["0.0200", "0.1000"],
    "SDE (a/6)": ["0.0456 (0.0789)", "— (0.2000 at a/2)"],
    "seeds (a/6)": ["12 (7)", "— (— at a/2)"],
    "CPU s": ["124", "—"]})


def test_key_display():
    pd.testing.assert_frame_equal(F._key_display(KEYL), KEYL_SHOWN)


def test_key_display_of_one_line_with_integer_cells():
    keyl = pd.DataFrame({
        "comparison": ["BRCD vs KD"], "paradigm": ["asymmetric"], "bits": [16],
        "kind": ["evidence"], "n": [2], "estimate": pd.Series([None], dtype=object),
        "sd": pd.Series([1], dtype=object), "sde": [float("inf")], "family": [3.0],
        "sde_family": [0.5], "margin": [0.01], "seeds_for_margin": [5.0],
        "seeds_for_margin_family": [float("inf")], "extra_cpu_s": [0.4], "verdict": ["x"]})
    shown = pd.DataFrame({
        "comparison": ["BRCD vs KD"], "paradigm": ["asymmetric"], "n": [2],
        "estimate": ["—"], "SD": ["1.0000"], "SDE (a/3)": ["— (0.5000)"],
        "seeds (a/3)": ["5 (—)"], "CPU s": ["0"]})
    pd.testing.assert_frame_equal(F._key_display(keyl), shown)


# --------------------------------------------------------------------------- _bank_sentence
def _profile(bank, teacher_seed=7, description="a stand-in"):
    return SimpleNamespace(student_train=SimpleNamespace(bank_seed=bank), teacher_seed=teacher_seed,
                           description=description)


BANK_SPLIT = ("What a seed varies in this profile: the student seed sets the hash head's "
              "initialisation, the batch order and view pairing, BRCD's k-means initialisation and "
              "the contrastive baselines' negatives; every student seed reads the same augmented "
              "views, drawn from the split seed (`bank_seed=\"split\"`); the seed changes which two "
              "views form a pair. Fixed across seeds: the data split, the pretrained backbones and "
              "the teacher (teacher seed 7; the teacher-seed study varies it). See "
              "`docs/statistics.md`.")


def test_bank_sentence():
    assert F._bank_sentence(None) == ""
    assert F._bank_sentence(_profile("split")) == BANK_SPLIT
    assert F._bank_sentence(_profile("run", teacher_seed=3)) == (
        "What a seed varies in this profile: the student seed sets the hash head's "
        "initialisation, the batch order and view pairing, BRCD's k-means initialisation and "
        "the contrastive baselines' negatives; each student seed draws its own augmented views "
        "(`bank_seed=\"run\"`). Fixed across seeds: the data split, the pretrained backbones and "
        "the teacher (teacher seed 3; the teacher-seed study varies it). See "
        "`docs/statistics.md`.")


# --------------------------------------------------------------------------- claims_markdown
def _entry(name, *, measure="mAP", threshold=0.0, margin=0.01):
    return SimpleNamespace(name=name, paper_text=f"“{name} quote”", operationalisation=f"{name} test",
                           scope=f"the {name} lines", measure=measure, threshold=threshold,
                           margin=margin)


@pytest.fixture
def small_catalogue(monkeypatch):
    """Four claims (``gamma`` has no verdict and no line, ``delta`` a verdict and no line) and short
    stand-ins for the rule texts; the constants set apart from their real values."""
    monkeypatch.setattr(F, "CATALOGUE", (_entry("gamma"), _entry("alpha"), _entry("delta"),
                                         _entry("beta", measure="share", threshold=0.5,
                                                margin=None)))
    for name, value in [("VERDICT_RULE", "<verdict rule>"), ("PREMISE_RULE", "<premise rule>"),
                        ("OVERALL_RULE", "<overall rule>."), ("MARGIN", 0.02), ("ALPHA", 0.1),
                        ("POWER", 0.9), ("LIFT_SHARE_AT_CHANCE", 0.3)]:
        monkeypatch.setattr(F, name, value)
    spy = _MdSpy()
    monkeypatch.setattr(F, "fit_markdown", spy)
    return spy


INTRO = ("Each line compares BRCD with one alternative as a paired difference with the **seed as "
         "the unit** (the teacher seed for the teacher-seed study): one line per search paradigm "
         "and code length, and a **pooled** line per comparison whose units are the per-seed means "
         "over the code lengths (runs of one seed at 16, 32 and 64 bits share everything but the "
         "length, so they are not independent). Positive = BRCD better. Every interval is a "
         "two-sided t-interval; the **raw** one at 95 %, the **adjusted** one at the level Holm's "
         "step-down gives the line within this profile's table (all evidence lines form one "
         "family, the sanity lines another). Verdicts: <verdict rule>; the smallest effect of "
         "interest is 0.02 mAP. **SDE** is the smallest detectable effect: the true difference the "
         "raw test (two-sided, alpha 0.1) finds with 90% power at the line's n and observed SD. A "
         "line whose alternative sits at chance in that paradigm (it recovers less than 0.3 of the "
         "teacher's lift above a random ranking, averaged over the comparison's code lengths) is a "
         "**sanity** check and does not count as evidence. Lines whose premise fails are reported "
         "as **premise not met**, without a verdict. `docs/statistics.md` says why each choice was "
         "made. The paper's own numbers are not shown: they are not available to this kit.")
PREMISE_HEAD = ["### The premise: a teacher worth distilling, a student worth teaching", "",
                "Rule: <premise rule>. Every distillation claim needs it; where it fails, the "
                "claim's lines say \"premise not met\".", ""]
VERDICT_HEAD = ["### One verdict per claim", "",
                "<overall rule>. *Paper* quotes the paper's abstract (`docs/method.md`); *kit* is "
                "the kit's operationalisation; *rule* the evidence lines the claim needs (the full "
                "table: [tables/claims_overall.csv](tables/claims_overall.csv)).", ""]
KEY_SECTION = ["### Key lines: the effect reached and what the margin would cost", "",
               "BRCD vs KD and vs the undistilled student at 32 bits. *SDE*: the smallest "
               "detectable effect (80 % power) at the raw level alpha = 0.1, and in brackets at "
               "a/6, the Bonferroni level of this profile's 6 evidence lines with a p-value, "
               "those whose premise is not met included (the family once every premise holds; "
               "the strictest level Holm tests a line at). A sanity line is costed at the level "
               "of its own family, a/2. *Seeds*: the seeds (at the same seed SD) "
               "for that effect to reach 0.02 mAP, at the two levels; *CPU s*: the seeds missing "
               "at a/6 times the rows' own wall time of one run of each of the two methods "
               "(measured on the machine that wrote the rows)."]


def _claims_table(spec):
    """Claims lines from (claim, unit, verdict, kind, note) tuples; the numbers of LINES."""
    out = []
    for i, (claim, unit, verdict, kind, note) in enumerate(spec):
        base = LINES.iloc[i % 3]
        out.append({**base.to_dict(), "claim": claim, "unit": unit, "verdict": verdict,
                    "kind": kind, "note": note})
    return pd.DataFrame(out)


def _overall(spec):
    return pd.DataFrame([{"claim": c, "paper states": "p", "operationalisation": "o", "rule": "r",
                          "evidence lines": ev, "sanity lines": float(sa), "overall": ov}
                         for c, ev, sa, ov in spec])


def test_claims_markdown_every_section(small_catalogue):
    spy = small_catalogue
    table = _claims_table([
        ("alpha", "seed mean over code lengths", "inconclusive", "evidence", NAN),
        ("beta", "teacher seed", "premise not met", "evidence", NAN),
        ("alpha", "seed", "supported", "evidence", "note A"),
        ("alpha", "seed", "inconclusive", "evidence", ""),
        ("beta", "teacher seed", "contradicted", "evidence", NAN),
        ("alpha", "seed", "equivalent", "sanity", "note B"),
        ("beta", "teacher seed", "supported", "sanity", NAN),
        ("alpha", "seed", "inconclusive", "evidence", "note A"),
    ])
    overall = _overall([("beta", "contradicted 1, premise not met 1", 1, "contradicted"),
                        ("alpha", "supported 1, inconclusive 3", 1, "inconclusive"),
                        ("delta", "—", 0, "not run")])
    frames = {"claims": table, "overall": overall, "premise": PREMISE, "key_lines": KEYL}
    rows = {"main": _rows([("brcd", 0, 16), ("brcd", 1, 16), ("kd", 0, 16)])}
    lines = F.claims_markdown("/nonexistent", rows=rows, profile=_profile("split"), frames=frames)
    assert lines == [
        "## Claims of the paper, checked", "", INTRO, "", BANK_SPLIT, "",
        "Seeds behind the table:", "- main table: 2 seeds: BRCD; 1 seed: KD", "",
        *PREMISE_HEAD, "<table 1>", "",
        "- not met: vit -> resnet, 32 bits: teacher 0.7000 vs undistilled student 0.7500: gap "
        "-0.0500 < 2 SDs (0.0469); no LSH row",
        "- not met: vit -> mobilenet, 64 bits: undistilled student 0.5500 <= LSH 0.6000", "",
        *VERDICT_HEAD,
        "- **`alpha`: inconclusive** (evidence lines: supported 1, inconclusive 3; sanity lines: "
        "1). Paper: “alpha quote”. Kit: alpha test. Rule: every evidence line of the alpha lines "
        "must be supported.",
        "- **`delta`: not run** (evidence lines: —; sanity lines: 0). Paper: “delta quote”. Kit: "
        "delta test. Rule: every evidence line of the delta lines must be supported.",
        "- **`beta`: contradicted** (evidence lines: contradicted 1, premise not met 1; sanity "
        "lines: 1). Paper: “beta quote”. Kit: beta test. Rule: every evidence line of the beta "
        "lines must be supported.",
        "",
        *KEY_SECTION, "", "<table 2>", "",
        "### Every line", "",
        "Evidence lines (6): supported 1, contradicted 1, inconclusive 3, premise not met 1. "
        "Sanity lines (2, not counted): supported 1, equivalent 1. The same lines with every "
        "column (unit, SD, p-values, levels) are in [tables/claims.csv](tables/claims.csv).", "",
        "#### `alpha`: inconclusive", "",
        "Unit: seed; seed mean over code lengths. Measure: difference in test mAP@K, threshold 0, "
        "margin 0.01.", "", "<table 3>", "", "- note A", "- note B", "",
        "#### `beta`: contradicted", "",
        "Unit: teacher seed. Measure: share of a gap, threshold 0.5, no margin (no equivalence "
        "verdict).", "", "<table 4>", "",
    ]
    assert [keys for _, keys in spy.calls] == [2, 2, 1, 1]
    pd.testing.assert_frame_equal(spy.calls[0][0], PREMISE_SHOWN)
    pd.testing.assert_frame_equal(spy.calls[1][0], KEYL_SHOWN)
    alpha = pd.DataFrame({
        "comparison": ["BRCD vs KD", "BRCD vs CRD", "BRCD vs KD", "BRCD vs CRD", "BRCD vs SP"],
        "paradigm": ["symmetric", "symmetric", "symmetric", "symmetric", "asymmetric"],
        "bits": ["16", "32", "16", "32", "pooled"], "n": [3, 1, 3, 1, 5],
        "estimate": ["+0.0123", "—", "+0.0123", "—", "-0.2000"],
        "raw 95 % CI": ["[+0.0010, +0.0200]", "—", "[+0.0010, +0.0200]", "—",
                        "[-0.2500, -0.1500]"],
        "adjusted CI": ["[-0.0030, +0.0250]", "—", "[-0.0030, +0.0250]", "—",
                        "[-0.3000, -0.1000]"],
        "SDE": ["0.0150", "—", "0.0150", "—", "0.0457"],
        "verdict": ["inconclusive", "supported", "inconclusive", "equivalent", "inconclusive"],
        "kind": ["evidence", "evidence", "evidence", "sanity", "evidence"]},
        index=[0, 2, 3, 5, 7])
    pd.testing.assert_frame_equal(spy.calls[2][0], alpha)
    beta = pd.DataFrame({
        "comparison": ["BRCD vs SP", "BRCD vs SP", "BRCD vs KD"],
        "paradigm": ["asymmetric", "asymmetric", "symmetric"],
        "bits": ["pooled", "pooled", "16"], "n": [5, 5, 3],
        "estimate": ["-0.2000", "-0.2000", "+0.0123"],
        "raw 95 % CI": ["[-0.2500, -0.1500]", "[-0.2500, -0.1500]", "[+0.0010, +0.0200]"],
        "adjusted CI": ["[-0.3000, -0.1000]", "[-0.3000, -0.1000]", "[-0.0030, +0.0250]"],
        "SDE": ["0.0457", "0.0457", "0.0150"],
        "verdict": ["premise not met", "contradicted", "supported"],
        "kind": ["evidence", "evidence", "sanity"]},
        index=[1, 4, 6])
    pd.testing.assert_frame_equal(spy.calls[3][0], beta)


def test_claims_markdown_before_any_result_row(small_catalogue, tmp_path, monkeypatch):
    _write(tmp_path, "main_rows.csv", {"method": ["kd"], "seed": [4], "bits": [16]})
    seen = []
    frames = {"claims": pd.DataFrame(columns=["claim", "kind", "verdict"]),
              "overall": pd.DataFrame(columns=["claim", "overall"]),
              "premise": pd.DataFrame(), "key_lines": None}

    def claims_frames(root, *, rows="not passed"):
        seen.append((root, rows))
        return frames

    monkeypatch.setattr(F, "claims_frames", claims_frames)
    lines = F.claims_markdown(str(tmp_path), heading=lambda title: [f"# {title}", "(heading)"])
    assert lines == [
        "# Claims of the paper, checked", "(heading)", "", INTRO, "",
        "Seeds behind the table:", "- main table: 1 seed: KD", "",
        *PREMISE_HEAD, "No teacher and undistilled-student rows yet (notebook 04).", "",
        *VERDICT_HEAD, "",
        "No result rows yet: run the notebooks 04, 05 and 06 first.", ""]
    assert small_catalogue.calls == []
    [(root, rows)] = seen
    assert root == str(tmp_path) and list(rows) == ["main"]
    pd.testing.assert_frame_equal(rows["main"], pd.DataFrame({"method": ["kd"], "seed": [4],
                                                              "bits": [16]}))
    # rows passed: the frames are made from them, and no rows file is read
    rows = {"ablations": _rows([("brcd", 0, 16)])}
    lines = F.claims_markdown(str(tmp_path), rows=rows)
    assert seen[1][0] == str(tmp_path) and seen[1][1] is rows
    assert lines[:8] == ["## Claims of the paper, checked", "", INTRO, "",
                         "Seeds behind the table:", "- ablations: 1 student seed, 16 bits", "",
                         PREMISE_HEAD[0]]


def test_claims_markdown_premise_met_and_no_sanity_line(small_catalogue):
    table = _claims_table([("beta", "teacher seed", "supported", "evidence", NAN),
                           ("beta", "teacher seed", "supported", "evidence", NAN)])
    overall = _overall([("beta", "supported 2", 0, "supported")])
    premise = PREMISE.iloc[[0]]
    frames = {"claims": table, "overall": overall, "premise": premise,
              "key_lines": pd.DataFrame(columns=list(KEYL.columns))}
    lines = F.claims_markdown("/nonexistent", rows={}, frames=frames)
    assert lines == [
        "## Claims of the paper, checked", "", INTRO, "",
        "Seeds behind the table:", "",
        *PREMISE_HEAD, "<table 1>", "",
        *VERDICT_HEAD,
        "- **`beta`: supported** (evidence lines: supported 2; sanity lines: 0). Paper: “beta "
        "quote”. Kit: beta test. Rule: every evidence line of the beta lines must be supported.",
        "",
        "### Every line", "",
        "Evidence lines (2): supported 2. Sanity lines (0, not counted): none. The same lines "
        "with every column (unit, SD, p-values, levels) are in "
        "[tables/claims.csv](tables/claims.csv).", "",
        "#### `beta`: supported", "",
        "Unit: teacher seed. Measure: share of a gap, threshold 0.5, no margin (no equivalence "
        "verdict).", "", "<table 2>", "",
    ]
    assert [keys for _, keys in small_catalogue.calls] == [2, 1]


def test_claims_markdown_key_lines_of_one_line(small_catalogue):
    keyl = KEYL.iloc[[1]].reset_index(drop=True).assign(bits=[16.0], family=[2.0])
    frames = {"claims": pd.DataFrame(columns=["claim", "kind", "verdict"]),
              "overall": pd.DataFrame(columns=["claim", "overall"]),
              "premise": pd.DataFrame(), "key_lines": keyl}
    lines = F.claims_markdown("/nonexistent", rows={}, frames=frames)
    start = lines.index("### Key lines: the effect reached and what the margin would cost")
    assert lines[start:start + 6] == [
        "### Key lines: the effect reached and what the margin would cost", "",
        "BRCD vs KD and vs the undistilled student at 16 bits. *SDE*: the smallest detectable "
        "effect (80 % power) at the raw level alpha = 0.1, and in brackets at a/2, the "
        "Bonferroni level of this profile's 2 sanity lines with a p-value (every key line here "
        "is a sanity line). *Seeds*: the seeds (at the same seed SD) for that effect to reach "
        "0.02 mAP, at the two levels; *CPU s*: the seeds missing at a/2 times the rows' own wall "
        "time of one run of each of the two methods (measured on the machine that wrote the "
        "rows).", "", "<table 1>", ""]
    assert lines[start + 6:] == ["No result rows yet: run the notebooks 04, 05 and 06 first.", ""]


# --------------------------------------------------------------------------- findings: asymmetric
def _main(spec):
    """Main rows from (method, paradigm, seed, value, status) tuples."""
    return pd.DataFrame(spec, columns=["method", "paradigm", "seed", "value", "status"]).assign(
        bits=16, variant=lambda f: f["method"])


ASYM_MAIN = _main([
    ("kd", "asymmetric", 0, 0.70, "ok"), ("kd", "asymmetric", 1, 0.72, "ok"),
    ("kd", "asymmetric", 2, 0.0, "diverged: loss is nan"),  # not ok: left out
    ("brcd", "asymmetric", 0, 0.80, "ok"), ("brcd", "asymmetric", 1, 0.82, "ok"),
    ("brcd", "symmetric", 0, 0.99, "ok"),  # symmetric: left out
    ("none", "asymmetric", 0, 0.10, "ok"), ("none", "asymmetric", 1, 0.12, "ok"),
    ("sp", "asymmetric", 0, 0.13, "ok"), ("sp", "asymmetric", 1, 0.15, "ok"),
    ("crd", "asymmetric", 0, 0.16, "ok"),
    ("foo", "asymmetric", 0, 0.5, "ok"),  # not a registered distiller: in no list
    ("teacher", "asymmetric", 0, 0.9, "ok"), ("LSH", "asymmetric", 0, 0.2, "ok"),
    ("ITQ", "asymmetric", 0, 0.3, "ok")])

ASYM_TEXT = ("In the asymmetric paradigm the database is encoded by the teacher and only the query "
             "by the student, so the student's bit j must mean what the teacher's bit j means. "
             "Only a loss that ties each student bit to the same teacher bit can achieve that: KD "
             "(a softmax over the code dimensions, per position) and BRCD (cosine between the "
             "student's and the teacher's codes, per position). The relation- and "
             "contrastive-based baselines match similarities between samples, which are "
             "invariant to permuting or flipping the bits, and the undistilled student has no "
             "teacher at all; their codes live in another coordinate system, and their asymmetric "
             "mAP is that of an unrelated code.{chance} The claims table lists those comparisons "
             "as sanity checks, not as support.")
CHANCE_TEXT = (" A random ranking scores about 0.100 here (the mean share of the database relevant "
               "to a query).")
# means over the ok asymmetric rows: KD (0.70 + 0.72) / 2, BRCD (0.80 + 0.82) / 2, CRD 0.16,
# SP (0.13 + 0.15) / 2, no KD (0.10 + 0.12) / 2
ASYM_MEANS = ("Mean asymmetric mAP over code lengths and seeds: per-bit targets KD 0.710, BRCD "
              "0.810; sample-relation baselines CRD 0.160, SP 0.140; no teacher: Student (no KD) "
              "0.110.")
ASYM_PARAGRAPH = ["### Why most baselines sit near chance in the asymmetric paradigm", "",
                  ASYM_TEXT.format(chance=CHANCE_TEXT), "", ASYM_MEANS, ""]


def test_asymmetric_paragraph():
    assert F._asymmetric_paragraph({"main": ASYM_MAIN}, 0.1) == ASYM_PARAGRAPH
    assert F._asymmetric_paragraph({"main": ASYM_MAIN}, None) == [
        "### Why most baselines sit near chance in the asymmetric paradigm", "",
        ASYM_TEXT.format(chance=""), "", ASYM_MEANS, ""]


def test_asymmetric_paragraph_lists_every_distiller_without_a_teacher(monkeypatch):
    # a second registered distiller of family "none" (a student trained without any teacher)
    families = {"none": "none", "solo": "none", "kd": "logit", "brcd": "ours", "crd": "contrastive",
                "sp": "relation"}
    monkeypatch.setattr(F, "DISTILLERS", set(families))
    monkeypatch.setattr(F, "distiller_class", lambda m: SimpleNamespace(family=families[m]))
    main = pd.concat([ASYM_MAIN, _main([("solo", "asymmetric", 0, 0.125, "ok")])],
                     ignore_index=True)
    assert F._asymmetric_paragraph({"main": main}, 0.1)[-2] == (
        "Mean asymmetric mAP over code lengths and seeds: per-bit targets KD 0.710, BRCD 0.810; "
        "sample-relation baselines CRD 0.160, SP 0.140; no teacher: Student (no KD) 0.110, solo "
        "0.125.")


def test_asymmetric_paragraph_needs_asymmetric_student_rows():
    assert F._asymmetric_paragraph({}, 0.1) == []
    assert F._asymmetric_paragraph({"ablations": ASYM_MAIN}, 0.1) == []
    only_references = _main([("teacher", "asymmetric", 0, 0.9, "ok"),
                             ("LSH", "asymmetric", 0, 0.2, "ok"),
                             ("ITQ", "asymmetric", 0, 0.3, "ok"),
                             ("brcd", "symmetric", 0, 0.8, "ok"),
                             ("kd", "asymmetric", 0, 0.7, "failed")])
    assert F._asymmetric_paragraph({"main": only_references}, 0.1) == []


# --------------------------------------------------------------------------- findings: failed runs
def _study(spec, columns=("method", "variant", "bits", "seed", "paradigm", "status", "warnings")):
    return pd.DataFrame(spec, columns=list(columns))


FAILED_ROWS = {
    "main": _study([
        ("sp", "sp", 16.0, 9.0, "symmetric", "diverged: loss is nan", NAN),
        ("sp", "sp", 16.0, 9.0, "asymmetric", "diverged: loss is nan", NAN),  # same run
        ("brcd", "brcd/upstream_mask", 32.0, 1.0, "symmetric", "error: boom", NAN),
        ("kd", "kd", 16.0, 0.0, "symmetric", "ok", "collapsed codes: 9 of 16 bits constant"),
        ("kd", "kd", 16.0, 0.0, "asymmetric", "ok", "collapsed codes: 9 of 16 bits constant"),
        ("none", "none", 16.0, 2.0, "symmetric", "ok", "slow run"),
        ("brcd", "brcd", 16.0, 0.0, "symmetric", "ok", NAN)]),
    "ablations": _study([
        ("brcd", "brcd/no_mask", 64, 3, "symmetric", "diverged: x", None),
        ("none", NAN, 16, 0, "symmetric", "failed: y", None),
        ("kd", "kd", 16, 0, "symmetric", "ok", None)],
        columns=("method", "variant", "bits", "seed", "paradigm", "status", "other")),
    "generality": _study([
        ("brcd", "brcd", 64, 1, "symmetric", "crashed", "collapsed codes: 40 of 64 bits constant"),
        ("kd", "kd", 64, 1, "symmetric", "crashed", NAN)],
        columns=("method", "variant", "bits", "seed", "paradigm", "state", "warnings")),
}
FAILED_HEAD = ["### Failed and collapsed runs", ""]
FAILED_ITEMS = [
    "4 run(s) did not give a number; they are left out of every table and of every paired "
    "comparison (their pair too). Runs whose codes collapsed keep their number and are listed "
    "here:", "",
    "- main: SP, 16 bits, seed 9: diverged: loss is nan",
    "- main: BRCD (brcd/upstream_mask), 32 bits, seed 1: error: boom",
    "- main: KD, 16 bits, seed 0: collapsed codes (kept in the tables, flagged): collapsed codes: "
    "9 of 16 bits constant",
    "- ablations: BRCD (brcd/no_mask), 64 bits, seed 3: diverged: x",
    "- ablations: Student (no KD), 16 bits, seed 0: failed: y",
    "- generality: BRCD, 64 bits, seed 1: collapsed codes (kept in the tables, flagged): "
    "collapsed codes: 40 of 64 bits constant"]
ALL_FINISHED = ("Every run of every study finished; no run diverged and no code collapsed "
                "(collapse = at least half the bits constant on the database).")
GEN_GRID = "Generality grid: see [generality_failed_runs](tables/generality_failed_runs.md)."


def test_failed_paragraph_lists_failed_and_collapsed_runs(tmp_path):
    assert F._failed_paragraph(FAILED_ROWS, str(tmp_path)) == [*FAILED_HEAD, *FAILED_ITEMS, ""]
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "generality_failed_runs.md").write_text("x")
    assert F._failed_paragraph(FAILED_ROWS, str(tmp_path)) == [
        *FAILED_HEAD, *FAILED_ITEMS, "", GEN_GRID, ""]


def test_failed_paragraph_variant_shown_unless_it_is_the_method():
    rows = {"pairs": _study([("none", "none", 8, 0, "symmetric", "failed", NAN),
                             ("crd", "CRD", 8, 1, "symmetric", "failed", NAN),
                             ("crd", "crd/class", 8, 2, "symmetric", "failed", "collapsed codes")])}
    assert F._failed_paragraph(rows, "/nonexistent") == [
        *FAILED_HEAD,
        "3 run(s) did not give a number; they are left out of every table and of every paired "
        "comparison (their pair too). Runs whose codes collapsed keep their number and are listed "
        "here:", "",
        "- pairs: Student (no KD) (none), 8 bits, seed 0: failed",
        "- pairs: CRD (CRD), 8 bits, seed 1: failed",
        "- pairs: CRD (crd/class), 8 bits, seed 2: failed",
        "- pairs: CRD (crd/class), 8 bits, seed 2: collapsed codes (kept in the tables, flagged): "
        "collapsed codes", ""]


def test_failed_paragraph_names_each_collapsed_run_once():
    # the paradigms of one run may warn differently: the run is listed once, with the first warning
    rows = {"main": _study([
        ("kd", "kd", 16, 0, "symmetric", "ok", "collapsed codes: 9 of 16 bits constant"),
        ("kd", "kd", 16, 0, "asymmetric", "ok", "collapsed codes: 8 of 16 bits constant")])}
    assert F._failed_paragraph(rows, "/nonexistent") == [
        *FAILED_HEAD,
        "0 run(s) did not give a number; they are left out of every table and of every paired "
        "comparison (their pair too). Runs whose codes collapsed keep their number and are listed "
        "here:", "",
        "- main: KD, 16 bits, seed 0: collapsed codes (kept in the tables, flagged): collapsed "
        "codes: 9 of 16 bits constant", ""]


def test_failed_paragraph_when_every_run_finished(tmp_path):
    rows = {"main": _study([("kd", "kd", 16, 0, "symmetric", "ok", NAN),
                            ("kd", "kd", 16, 1, "symmetric", "ok", "slow run")])}
    assert F._failed_paragraph(rows, str(tmp_path)) == [*FAILED_HEAD, ALL_FINISHED, ""]
    assert F._failed_paragraph({}, str(tmp_path)) == [*FAILED_HEAD, ALL_FINISHED, ""]
    # a warnings column without any warning (read from a CSV as all-NaN floats)
    quiet = {"main": rows["main"].assign(warnings=[NAN, NAN])}
    assert quiet["main"]["warnings"].dtype == np.float64
    assert F._failed_paragraph(quiet, str(tmp_path)) == [*FAILED_HEAD, ALL_FINISHED, ""]
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "generality_failed_runs.md").write_text("x")
    assert F._failed_paragraph(rows, str(tmp_path)) == [*FAILED_HEAD, ALL_FINISHED, "",
                                                        GEN_GRID, ""]


# --------------------------------------------------------------------------- findings: models
def test_paper_parameter_ratio(tmp_path):
    root = str(tmp_path)
    assert F.paper_parameter_ratio(root) is None
    name = "efficiency_paper_backbones.csv"
    _write(tmp_path, name, {"model": ["vit_b_16"], "params_M": [86.5]})
    assert F.paper_parameter_ratio(root) is None
    _write(tmp_path, name, {"model": ["efficientnet_b0"], "params_M": [5.25]})
    assert F.paper_parameter_ratio(root) is None
    _write(tmp_path, name, {"model": ["efficientnet_b0", "vit_b_16"], "params_M": [5.25, 86]})
    out = F.paper_parameter_ratio(root)
    assert out == (86.0, 5.25) and type(out) is tuple and type(out[0]) is float
    _write(tmp_path, name, {"model": ["resnet50", "vit_b_16", "efficientnet_b0"],
                            "params_M": [25.6, 86.57, 5.29]})
    assert F.paper_parameter_ratio(root) == (86.57, 5.29)


PROFILE_MODELS = {"model": ["teacher (t)", "middle (m)", "student (s)"],
                  "params_M": [12.0, 0.5, 0.25], "trainable_params_M": [3.5, 0.02, 0.0125],
                  "gflops_per_image": [0.1234, 0.0106, 0.00052],
                  "latency_ms_b1": [2.346, 1.0, 0.123]}
MODEL_LINES = [
    "### Stand-in models", "",
    "- teacher (t): 12,000,000 parameters (3,500,000 trained: the hash head), 123.4 M "
    "multiply-adds per image, 2.35 ms per query at batch 1 on this CPU",
    "- middle (m): 500,000 parameters (20,000 trained: the hash head), 10.6 M multiply-adds per "
    "image, 1.00 ms per query at batch 1 on this CPU",
    "- student (s): 250,000 parameters (12,500 trained: the hash head), 0.5 M multiply-adds per "
    "image, 0.12 ms per query at batch 1 on this CPU"]


def test_models_paragraph_with_the_paper_backbones(tmp_path):
    assert F._models_paragraph(str(tmp_path)) == []
    _write(tmp_path, "efficiency_profile_models.csv", PROFILE_MODELS)
    _write(tmp_path, "efficiency_paper_backbones.csv",
           {"model": ["vit_b_16", "efficientnet_b0"], "params_M": [86.57, 5.29]})
    # 12.0 / 0.25 = 48.0 (first over last row); 86.57 / 5.29 = 16.36...
    assert F._models_paragraph(str(tmp_path)) == [
        *MODEL_LINES,
        "- teacher / student parameters: 48.0x (the paper's ViT-B/16 over EfficientNet-B0, as this "
        "kit measures them with their hash heads (`efficiency_paper_backbones`): 86.57M / 5.29M = "
        "16.4x)", ""]


def test_models_paragraph_without_the_paper_backbones(tmp_path):
    two = {k: [v[0], v[2]] for k, v in PROFILE_MODELS.items()}
    _write(tmp_path, "efficiency_profile_models.csv", two)
    assert F._models_paragraph(str(tmp_path)) == [
        *MODEL_LINES[:3], MODEL_LINES[4],
        "- teacher / student parameters: 48.0x (the paper's ViT-B/16 and EfficientNet-B0 were not "
        "measured in this profile)", ""]
    one = {k: [v[1]] for k, v in PROFILE_MODELS.items()}
    _write(tmp_path, "efficiency_profile_models.csv", one)
    assert F._models_paragraph(str(tmp_path)) == [*MODEL_LINES[:2], MODEL_LINES[3], ""]


# --------------------------------------------------------------------------- findings: departures
def _upstream():
    """CRD rows first (the methods are read in name order), three seeds; CRCD one seed."""
    out = []
    for paradigm, cls, uni in [("symmetric", [0.62, 0.63, 0.65], [0.60, 0.60, 0.61]),
                               ("asymmetric", [0.30, 0.28, 0.33], [0.31, 0.31, 0.31])]:
        for seed in range(3):
            out.append(("crd", "class", paradigm, seed, cls[seed]))
            out.append(("crd", "uniform", paradigm, seed, uni[seed]))
    out += [("crcd", "class", "symmetric", 0, 0.50), ("crcd", "uniform", "symmetric", 0, 0.45),
            ("crcd", "class", "asymmetric", 0, 0.20), ("crcd", "uniform", "asymmetric", 0, 0.25)]
    frame = pd.DataFrame(out, columns=["method", "negatives", "paradigm", "seed", "value"])
    return frame.assign(bits=32.0, variant=frame["method"] + "/" + frame["negatives"],
                        status="ok")


def _t_line(diffs):
    """mean and raw 95 % t-interval: mean +- t(0.975, n - 1) * sd / sqrt(n)."""
    d = np.asarray(diffs)
    half = sps.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    return f"{d.mean():+.4f} [{d.mean() - half:+.4f}, {d.mean() + half:+.4f}]"


MEASURED = ("measured here (upstream-baselines study, 32 bits, class minus uniform negatives, "
            "paired by seed, raw 95 % intervals): CRCD asymmetric -0.0500 (n = 1); CRCD symmetric "
            "+0.0500 (n = 1); CRD asymmetric -0.0067 [-0.0692, +0.0558] (n = 3); CRD symmetric "
            "+0.0300 [+0.0052, +0.0548] (n = 3)")


def test_measured_effects_of_the_contrastive_negatives():
    # CRD symmetric: differences 0.02, 0.03, 0.04: mean 0.03, sd 0.01, half 4.3027 * 0.01 / sqrt 3
    assert _t_line([0.62 - 0.60, 0.63 - 0.60, 0.65 - 0.61]) == "+0.0300 [+0.0052, +0.0548]"
    # CRD asymmetric: differences -0.01, -0.03, 0.02: mean -0.00667, sd 0.02517
    assert _t_line([0.30 - 0.31, 0.28 - 0.31, 0.33 - 0.31]) == "-0.0067 [-0.0692, +0.0558]"
    assert F._measured_effects({"upstream_baselines": _upstream()}) == {
        "contrastive_negatives": MEASURED}


def test_measured_effects_say_no_pairs_rather_than_nan():
    up = _upstream()
    # every uniform CRD run failed: CRD has no pair in either paradigm; CRCD keeps its one pair
    up.loc[(up["method"] == "crd") & (up["negatives"] == "uniform"), "status"] = "failed"
    text = F._measured_effects({"upstream_baselines": up})["contrastive_negatives"]
    assert text == ("measured here (upstream-baselines study, 32 bits, class minus uniform "
                    "negatives, paired by seed, raw 95 % intervals): CRCD asymmetric -0.0500 "
                    "(n = 1); CRCD symmetric +0.0500 (n = 1); CRD asymmetric: no pairs; CRD "
                    "symmetric: no pairs")


def test_measured_effects_need_upstream_rows_with_negatives():
    up = _upstream()
    assert F._measured_effects({}) == {}
    assert F._measured_effects({"main": up}) == {}
    assert F._measured_effects({"upstream_baselines": up.iloc[:0]}) == {}
    assert F._measured_effects({"upstream_baselines": up.drop(columns="negatives")}) == {}


DEPARTURES = (
    SimpleNamespace(key="mask_rule", area="BRCD loss", release="R1", kit="K1", why="W1",
                    switch="S1", effect="not measured", docs="docs/departures.md#mask"),
    SimpleNamespace(key="contrastive_negatives", area="baselines", release="R2", kit="K2",
                    why="W2", switch="S2", effect="see the upstream study", docs="D2"))
DEPARTURE_MASK = ("- **`mask_rule`** (BRCD loss). Released code: R1. Kit: K1 (W1). Switch: S1. "
                  "Effect: not measured. Details: docs/departures.md#mask.")


def _negatives_line(effect):
    return (f"- **`contrastive_negatives`** (baselines). Released code: R2. Kit: K2 (W2). Switch: "
            f"S2. Effect: {effect}. Details: D2.")


def test_departures_markdown(monkeypatch):
    monkeypatch.setattr(F, "DEPARTURES", DEPARTURES)
    assert F.departures_markdown({}) == [DEPARTURE_MASK, _negatives_line("see the upstream study")]
    assert F.departures_markdown({"upstream_baselines": _upstream()}) == [
        DEPARTURE_MASK, _negatives_line(MEASURED)]


# --------------------------------------------------------------------------- findings_markdown
STAND_IN = ["### Stand-in data", "", "- Fashion stand-in, three seeds.",
            "- the paper's datasets (CIFAR-10, MS-COCO, NUS-WIDE, ImageNet-100) and ImageNet-"
            "pretrained backbones need a GPU box and downloads; this profile keeps their protocol "
            "shape (train / validation / query / database splits, mAP@K) at CPU scale.", ""]
UPSTREAM = ["### What \"upstream\" means", "",
            "A row or option named *upstream* reproduces the released code's behaviour where the "
            "kit departs from it. `upstream_mask` is BRCD with the released mask script, whose "
            "two chained `where` calls zero every bit for any margin below 1: the structural term "
            "and every negative then compare masked all-zero vectors (cosine 0), so BRCD reduces "
            "to its individual term plus a constant. The kit's default is the rule the paper "
            "describes (keep bit j of cluster c when |mean| > delta).", ""]
DEPARTURES_HEAD = ["### Departures from the released code", "",
                   "Each item: what the released code does, what the kit does by default and why, "
                   "the switch that restores the release, and its measured effect where measured "
                   "(`docs/departures.md`).", ""]


def _findings_root(tmp_path):
    _write(tmp_path, "main_rows.csv", ASYM_MAIN)
    _write(tmp_path, "upstream_baselines_rows.csv", _upstream().drop(columns="status"))
    _write(tmp_path, "efficiency_profile_models.csv",
           {k: [v[0], v[2]] for k, v in PROFILE_MODELS.items()})
    (tmp_path / "data_protocol.json").write_text(json.dumps({"chance_map": 0.1}))
    return str(tmp_path)


def test_findings_markdown_reads_the_results_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "DEPARTURES", DEPARTURES)
    root = _findings_root(tmp_path)
    profile = _profile("run", description="Fashion stand-in, three seeds")
    assert F.findings_markdown(root, profile=profile) == [
        "## Findings", "", *STAND_IN,
        *MODEL_LINES[:3], MODEL_LINES[4],
        "- teacher / student parameters: 48.0x (the paper's ViT-B/16 and EfficientNet-B0 were not "
        "measured in this profile)", "",
        *ASYM_PARAGRAPH,
        *FAILED_HEAD,
        "1 run(s) did not give a number; they are left out of every table and of every paired "
        "comparison (their pair too). Runs whose codes collapsed keep their number and are listed "
        "here:", "",
        "- main: KD, 16 bits, seed 2: diverged: loss is nan", "",
        *UPSTREAM, *DEPARTURES_HEAD, DEPARTURE_MASK, _negatives_line(MEASURED), ""]


def test_findings_markdown_with_rows_passed_and_a_heading(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "DEPARTURES", DEPARTURES)
    root = _findings_root(tmp_path)
    profile = _profile("run", description="Fashion stand-in, three seeds")
    titles = []

    def heading(title):
        titles.append(title)
        return [f"# {title}", "(heading)"]

    assert F.findings_markdown(root, profile=profile, rows={}, heading=heading) == [
        "# Findings", "(heading)", "", *STAND_IN,
        *MODEL_LINES[:3], MODEL_LINES[4],
        "- teacher / student parameters: 48.0x (the paper's ViT-B/16 and EfficientNet-B0 were not "
        "measured in this profile)", "",
        *FAILED_HEAD, ALL_FINISHED, "",
        *UPSTREAM, *DEPARTURES_HEAD, DEPARTURE_MASK, _negatives_line("see the upstream study"), ""]
    assert titles == ["Findings"]


def _fake_paired(lines):
    """A stand-in for paired_against returning the given (paradigm, n, mean, low, high) lines."""
    def fake(sub, **kwargs):
        return pd.DataFrame(lines, columns=["paradigm", "n", "mean", "low", "high"])
    return fake


@pytest.mark.parametrize("lines, want", [
    # n missing (NaN) with a finite mean: no pairs, n is not read as an int
    ([("symmetric", NAN, 0.5, NAN, NAN)], "CRD symmetric: no pairs"),
    # n = 0 with a finite mean: no pairs
    ([("symmetric", 0, 0.5, NAN, NAN)], "CRD symmetric: no pairs"),
    # pairs but a NaN mean: no pairs
    ([("symmetric", 2, NAN, NAN, NAN)], "CRD symmetric: no pairs"),
    # one pair (no interval)
    ([("symmetric", 1, 0.5, NAN, NAN)], "CRD symmetric +0.5000 (n = 1)"),
])
def test_measured_effects_no_pairs_cases(monkeypatch, lines, want):
    monkeypatch.setattr(F, "paired_against", _fake_paired(lines))
    up = _upstream()
    up = up[up["method"] == "crd"]
    assert F._measured_effects({"upstream_baselines": up}) == {"contrastive_negatives": (
        "measured here (upstream-baselines study, 32 bits, class minus uniform negatives, paired "
        "by seed, raw 95 % intervals): " + want)}


def test_key_families_read_the_evidence_line_even_when_a_sanity_line_comes_first():
    # KEYL reversed: the sanity line (family 2) first, the evidence line (family 6) second
    assert F._key_families(KEYL.iloc[[1, 0]].reset_index(drop=True)) == (6, 2, True)
    assert F._key_families(KEYL.iloc[[1]].reset_index(drop=True)) == (2, 2, False)
    assert F._key_families(KEYL.iloc[[0]].reset_index(drop=True)) == (6, None, True)


def test_claims_markdown_key_lines_of_evidence_only_name_no_sanity_level(small_catalogue):
    keyl = KEYL.iloc[[0]].reset_index(drop=True)
    frames = {"claims": pd.DataFrame(columns=["claim", "kind", "verdict"]),
              "overall": pd.DataFrame(columns=["claim", "overall"]),
              "premise": pd.DataFrame(), "key_lines": keyl}
    lines = F.claims_markdown("/nonexistent", rows={}, frames=frames)
    start = lines.index("### Key lines: the effect reached and what the margin would cost")
    assert lines[start + 2] == (
        "BRCD vs KD and vs the undistilled student at 32 bits. *SDE*: the smallest detectable "
        "effect (80 % power) at the raw level alpha = 0.1, and in brackets at a/6, the "
        "Bonferroni level of this profile's 6 evidence lines with a p-value, those whose premise "
        "is not met included (the family once every premise holds; the strictest level Holm "
        "tests a line at). *Seeds*: the seeds (at the same seed SD) for that effect to reach "
        "0.02 mAP, at the two levels; *CPU s*: the seeds missing at a/6 times the rows' own wall "
        "time of one run of each of the two methods (measured on the machine that wrote the "
        "rows).")

"""Exact outputs of :mod:`brcd_lib.reporting.claims` on tiny rows written by hand.

Each builder's lines are compared field by field (claim, comparison, paradigm, length, unit,
the paired result, the lengths behind it, the premise source and group, the alternative's means,
the note); the claims table, the overall verdicts and the key lines as whole frames. The
differences are multiples of 1/32, so means, SDs, win counts and gap shares are exact and worked
out by hand in the comments; intervals, p-values and the smallest detectable effects come from
scipy in this file (`_paired`, `_interval`, `_sde`, `_seeds`), never from the module under test.
The claims table and the overall verdicts read a small catalogue set for the test
(``claims.CATALOGUE`` monkeypatched), so every rule is exercised by a few lines."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy import stats as st

from brcd_lib.reporting import claims
from brcd_lib.reporting.catalogue import ClaimSpec

NAN = math.nan
SQRT2, SQRT3 = math.sqrt(2.0), math.sqrt(3.0)
SHARE = "BRCD: share of the teacher - no-KD gap closed"
COLS = ["claim", "comparison", "paradigm", "code_length", "unit", "n", "estimate", "raw_low",
        "raw_high", "adjusted_low", "adjusted_high", "sde", "sde_adjusted", "verdict", "kind",
        "premise", "measure", "threshold", "margin", "sd", "p_value", "p_adjusted",
        "adjusted_level", "wins", "note"]
KEY_COLS = ["comparison", "paradigm", "bits", "kind", "n", "estimate", "sd", "sde", "family",
            "sde_family", "margin", "seeds_for_margin", "seeds_for_margin_family", "extra_cpu_s",
            "verdict"]


# ------------------------------------------------------------------ references (scipy only)
def _interval(mean, sd, n, level):
    """Two-sided (1 - level) t-interval; NaN below 2 units; the point when sd is 0."""
    if n < 2 or not math.isfinite(level):
        return NAN, NAN
    if sd == 0:
        return mean, mean
    half = st.t.ppf(1 - level / 2, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def _paired(data, null=0.0, *, mean=NAN, sd=NAN, wins=0):
    """The expected paired result of ``data``; ``mean``, ``sd`` and ``wins`` are worked out by
    hand (checked against numpy here), the interval and the p-value come from scipy."""
    x = np.asarray(data, dtype=float)
    n = len(x)
    if n == 0:
        return dict(n=0, mean=NAN, low=NAN, high=NAN, p_value=NAN, wins=0, sd=NAN, null=null)
    assert x.mean() == pytest.approx(mean, rel=1e-12) and int((x > null).sum()) == wins
    if n == 1:
        return dict(n=1, mean=mean, low=NAN, high=NAN, p_value=NAN, wins=wins, sd=NAN, null=null)
    assert x.std(ddof=1) == pytest.approx(sd, rel=1e-12, abs=1e-15)
    low, high = _interval(mean, sd, n, 0.05)
    p = (0.0 if mean != null else 1.0) if sd == 0 else st.ttest_1samp(x, null).pvalue
    return dict(n=n, mean=mean, low=low, high=high, p_value=p, wins=wins, sd=sd, null=null)


def _sde(sd, n, alpha, power=0.8):
    """The true difference a two-sided paired t-test at ``alpha`` detects with ``power``."""
    if n < 2 or not math.isfinite(sd):
        return NAN
    if sd == 0:
        return 0.0
    df, crit = n - 1, st.t.ppf(1 - alpha / 2, n - 1)

    def short(nc):  # scipy's noncentral t gives NaN where a tail underflows: 1 and 0 there
        upper, lower = st.nct.sf(crit, df, nc), st.nct.cdf(-crit, df, nc)
        return (1.0 if math.isnan(upper) else upper) + (0.0 if math.isnan(lower) else lower) - power

    high = 1.0
    while short(high) < 0:
        high *= 2
    return optimize.brentq(short, 0.0, high, xtol=1e-14) * sd / math.sqrt(n)


def _seeds(sd, margin, alpha):
    """The fewest units (from 2) whose smallest detectable effect is at most ``margin``."""
    n = 2
    while _sde(sd, n, alpha) > margin:
        n += 1
    return n


def _close(a, b):
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) \
        or a == pytest.approx(b, rel=1e-9, abs=1e-14)


def _check_lines(lines, expected):
    assert len(lines) == len(expected)
    for line, exp in zip(lines, expected):
        assert isinstance(line, claims.Line)
        (claim, comparison, paradigm, length, unit, res, lengths, source, group, alt, note) = exp
        assert (line.claim, line.comparison, line.paradigm, line.code_length, line.unit,
                line.lengths, line.premise_source, line.premise_group, line.note) == \
            (claim, comparison, paradigm, length, unit, lengths, source, group, note)
        assert all(type(b) is int for b in line.lengths)
        assert list(line.alternative_means) == list(alt)
        assert all(_close(line.alternative_means[k], v) for k, v in alt.items())
        r = line.result
        got = dict(n=r.n, mean=r.mean, low=r.low, high=r.high, p_value=r.p_value, wins=r.wins,
                   sd=r.sd, null=r.null)
        assert got["n"] == res["n"] and got["wins"] == res["wins"], (exp, got)
        for key in ("mean", "low", "high", "p_value", "sd", "null"):
            assert _close(float(got[key]), float(res[key])), (key, exp, got)


def _rows(spec, **const):
    """(method, paradigm, bits, [values by seed], status?) -> rows with ``seed`` 0, 1, ...;
    ``None`` in the values skips that seed."""
    out = []
    for method, paradigm, bits, values, *status in spec:
        for seed, value in enumerate(values):
            if value is None:
                continue
            out.append({**const, "method": method, "paradigm": paradigm, "bits": bits,
                        "seed": seed, "value": value, "status": status[0] if status else "ok"})
    return pd.DataFrame(out)


def _spec(name, **kw):
    kw.setdefault("quotes", ())
    kw.setdefault("operationalisation", f"op {name}")
    kw.setdefault("study", "main")
    kw.setdefault("builder", "difference")
    return ClaimSpec(name=name, **kw)


# ------------------------------------------------------------------ _difference_lines
def _pair_rows():
    """kd and sp on a ``pair`` unit (no ``seed`` column). Symmetric, 16 bits: kd - sp per pair
    0.75 - 0.25, 0.875 - 0.5, 0.5 - 0.25 = 0.5, 0.375, 0.25 (a failed kd run, a NaN sp run and a
    brcd row are ignored); 32 bits: pairs 0, 1 give 0.625 - 0.5, 0.75 - 0.25 = 0.125, 0.5; pair 2
    has kd only, pair 3 sp only. Asymmetric: kd only (no line)."""
    spec = [
        ("kd", "symmetric", 16, [0.75, 0.875, 0.5]),
        ("sp", "symmetric", 16, [0.25, 0.5, 0.25]),
        ("kd", "symmetric", 16, [0.0], "failed"),
        ("sp", "symmetric", 16, [None, NAN]),
        ("brcd", "symmetric", 16, [0.125]),
        ("kd", "symmetric", 32, [0.625, 0.75, 0.5]),
        ("sp", "symmetric", 32, [0.5, 0.25, None, 0.125]),
        ("kd", "asymmetric", 16, [0.5, 0.5]),
    ]
    return _rows(spec).rename(columns={"seed": "pair"})


def test_difference_lines_per_length_and_pooled_on_a_named_unit():
    entry = _spec("c1", a="kd", threshold=0.25, unit="pair unit")
    lines = claims._difference_lines(entry, _pair_rows(), b="sp", label="SP*", source="src",
                                     group=(("g", 1),), unit_col="pair")
    # the alternative's mean per length over its ok runs: 16 bits (0.25 + 0.5 + 0.25) / 3;
    # 32 bits (0.5 + 0.25 + 0.125) / 3 = 0.875 / 3
    alt = {16: 1.0 / 3.0, 32: 0.875 / 3.0}
    d16, d32 = [0.5, 0.375, 0.25], [0.125, 0.5]
    # pooled: the pairs with both lengths, mean over the lengths: pair 0 (0.5 + 0.125) / 2 =
    # 0.3125, pair 1 (0.375 + 0.5) / 2 = 0.4375 (pair 2 lacks 32 bits)
    pooled = [0.3125, 0.4375]
    head = ("c1", "KD vs SP*", "symmetric")
    _check_lines(lines, [
        # wins count units above the claim's threshold 0.25 (0.25 itself is not above)
        (*head, "16", "pair unit", _paired(d16, 0.25, mean=0.375, sd=0.125, wins=2), (16,),
         "src", (("g", 1),), alt, ""),
        (*head, "32", "pair unit", _paired(d32, 0.25, mean=0.3125, sd=0.375 / SQRT2, wins=1),
         (32,), "src", (("g", 1),), alt, ""),
        (*head, "pooled", "pair unit (mean over 2 code lengths)",
         _paired(pooled, 0.25, mean=0.375, sd=0.125 / SQRT2, wins=2), (16, 32), "src",
         (("g", 1),), alt, ""),
    ])


def test_difference_lines_skip_a_paradigm_without_the_alternative_and_keep_empty_lengths():
    """A variant column (the label is BRCD's) with the default seed unit and no status column.
    Symmetric: no "lite" rows, no line. Asymmetric: full - lite at 16 bits 0.5 - 0.25,
    0.625 - 0.25, 0.75 - 0.5 = 0.25, 0.375, 0.25; at 32 bits only "full" and at 64 bits only
    "lite": lines of 0 units, and the pooled line has no seed with all three lengths."""
    rows = pd.DataFrame(
        [{"variant": "full", "paradigm": "symmetric", "bits": 16, "seed": s, "value": 0.5}
         for s in range(2)]
        + [{"variant": v, "paradigm": "asymmetric", "bits": 16, "seed": s, "value": x}
           for v, xs in (("full", [0.5, 0.625, 0.75]), ("lite", [0.25, 0.25, 0.5]))
           for s, x in enumerate(xs)]
        + [{"variant": "full", "paradigm": "asymmetric", "bits": 32, "seed": s, "value": 0.5}
           for s in range(2)]
        + [{"variant": "lite", "paradigm": "asymmetric", "bits": 64, "seed": 0, "value": 0.75}])
    entry = _spec("c2", column="variant", a="full")
    lines = claims._difference_lines(entry, rows, b="lite", label="Lite", source="s2")
    alt = {16: 1.0 / 3.0, 64: 0.75}  # lite at 16 bits: (0.25 + 0.25 + 0.5) / 3
    head = ("c2", "BRCD vs Lite", "asymmetric")
    _check_lines(lines, [
        (*head, "16", "student seed",
         _paired([0.25, 0.375, 0.25], mean=0.875 / 3, sd=0.125 / SQRT3, wins=3), (16,), "s2",
         (), alt, ""),
        (*head, "32", "student seed", _paired([]), (32,), "s2", (), alt, ""),
        (*head, "64", "student seed", _paired([]), (64,), "s2", (), alt, ""),
        (*head, "pooled", "student seed (mean over 3 code lengths)", _paired([]), (16, 32, 64),
         "s2", (), alt, ""),
    ])


# ------------------------------------------------------------------ _build_difference
def _main_two_seeds():
    """Symmetric, 16 bits, seeds 0 and 1: brcd 0.5, 0.75; kd 0.25, 0.5 (differences 0.25, 0.25);
    crd 0.5, 0.5 (0, 0.25); none 0.25, 0.25 (0.25, 0.5); a failed sp run only."""
    return _rows([("brcd", "symmetric", 16, [0.5, 0.75]), ("kd", "symmetric", 16, [0.25, 0.5]),
                  ("crd", "symmetric", 16, [0.5, 0.5]), ("none", "symmetric", 16, [0.25, 0.25]),
                  ("teacher", "symmetric", 16, [1.0]), ("LSH", "symmetric", 16, [0.125]),
                  ("sp", "symmetric", 16, [0.5], "failed")])


def test_baselines_are_the_registered_kd_methods_present_in_registry_order():
    rows = _main_two_seeds()
    # present: brcd (ours), kd, crd, none (no KD), teacher and LSH (not registered), sp (a
    # failed run is still present); registry order none, kd, sp, pkt, rkd, sskd, crd, ...
    assert claims._baselines(rows) == ["kd", "sp", "crd"]
    assert claims._baselines(rows[rows["method"] != "sp"]) == ["kd", "crd"]


def test_build_difference_baselines_plain_names_and_labels():
    rows = {"main": _main_two_seeds()}
    kd = _paired([0.25, 0.25], mean=0.25, sd=0.0, wins=2)
    crd = _paired([0.0, 0.25], mean=0.125, sd=0.25 / SQRT2, wins=1)
    none = _paired([0.25, 0.5], mean=0.375, sd=0.25 / SQRT2, wins=2)

    def line(claim, label, res, alt):
        return (claim, f"BRCD vs {label}", "symmetric", "16", "student seed", res, (16,), "main",
                (), {16: alt}, "")

    # every KD baseline present (the failed sp run leaves no pair), labelled by the registry
    _check_lines(claims._build_difference(_spec("bb", baselines=True), rows),
                 [line("bb", "KD", kd, 0.375), line("bb", "CRD", crd, 0.5)])
    # b without labels: the names themselves, in the order given
    _check_lines(claims._build_difference(_spec("nl", b=("none", "kd")), rows),
                 [line("nl", "none", none, 0.25), line("nl", "kd", kd, 0.375)])
    # b with labels: the labels, not the registry's
    _check_lines(claims._build_difference(_spec("lab", b=("none",), labels=("Custom",)), rows),
                 [line("lab", "Custom", none, 0.25)])


# ------------------------------------------------------------------ _build_gap_share
GAP = _spec("g", builder="gap_share", threshold=0.5, margin=None, measure="share",
            unit="seed unit", sanity=False)


def test_gap_share_per_length_pooled_and_seeds_without_a_gap():
    rows = _rows([
        ("teacher", "symmetric", 16, [1.0]),
        ("teacher", "symmetric", 16, [None, 0.0], "failed"),
        ("none", "symmetric", 16, [0.5, 0.75, 0.5, 1.0]),
        ("brcd", "symmetric", 16, [0.75, 0.875, 1.0, 1.0]),
        ("kd", "symmetric", 16, [0.0, 0.0, 0.0, 0.0]),
        ("teacher", "symmetric", 32, [0.875, 0.625]),
        ("none", "symmetric", 32, [0.25, 0.5, 0.25, 0.5]),
        ("brcd", "symmetric", 32, [0.5, 0.5, 0.625]),
        ("none", "symmetric", 64, [0.5]),          # no teacher at 64 bits: left out
        ("brcd", "symmetric", 64, [0.75]),
        ("teacher", "asymmetric", 16, [1.0]),      # asymmetric without brcd: no line
        ("none", "asymmetric", 16, [0.5]),
    ])
    lines = claims._build_gap_share(GAP, {"main": rows})
    # 16 bits, teacher 1.0: gaps 0.5, 0.25, 0.5, 0.0 and gains 0.25, 0.125, 0.5, 0.0; seed 3
    # has no gap: shares 0.5, 0.5, 1.0 (mean 2/3, SD sqrt(1/12)), one above one half
    # 32 bits, teacher (0.875 + 0.625) / 2 = 0.75: seeds 0-2 (seed 3 has no brcd): gaps 0.5,
    # 0.25, 0.5, gains 0.25, 0.0, 0.375: shares 0.5, 0.0, 0.75 (mean 5/12, var 0.875/6)
    # pooled over the seeds with both lengths (0-2): mean gaps 0.5, 0.25, 0.5, mean gains 0.25,
    # 0.0625, 0.4375: shares 0.5, 0.25, 0.875 (mean 13/24, var 0.59375/6)
    note = ("1 of 4 seeds have a teacher - undistilled student gap <= 0 (the teacher at or below "
            "the student): no share for them")
    _check_lines(lines, [
        ("g", SHARE, "symmetric", "16", "seed unit",
         _paired([0.5, 0.5, 1.0], 0.5, mean=2 / 3, sd=math.sqrt(1 / 12), wins=1), (16,), "main",
         (), {}, note),
        ("g", SHARE, "symmetric", "32", "seed unit",
         _paired([0.5, 0.0, 0.75], 0.5, mean=5 / 12, sd=math.sqrt(0.875 / 6), wins=1), (32,),
         "main", (), {}, ""),
        ("g", SHARE, "symmetric", "pooled", "seed unit (mean gain over mean gap, 2 code lengths)",
         _paired([0.5, 0.25, 0.875], 0.5, mean=13 / 24, sd=math.sqrt(0.59375 / 6), wins=1),
         (16, 32), "main", (), {}, ""),
    ])


def test_gap_share_second_paradigm_alone_and_one_length_has_no_pooled_line():
    rows = _rows([
        ("none", "symmetric", 16, [0.5]), ("brcd", "symmetric", 16, [0.75]),  # no teacher
        ("teacher", "asymmetric", 16, [1.0]), ("none", "asymmetric", 16, [0.5, 0.5]),
        ("brcd", "asymmetric", 16, [0.75, 1.0]),
    ])
    # gap 0.5 for both seeds, gains 0.25, 0.5: shares 0.5, 1.0
    _check_lines(claims._build_gap_share(GAP, {"main": rows}), [
        ("g", SHARE, "asymmetric", "16", "seed unit",
         _paired([0.5, 1.0], 0.5, mean=0.75, sd=0.5 / SQRT2, wins=1), (16,), "main", (), {}, ""),
    ])


# ------------------------------------------------------------------ _build_teacher_unit
def test_teacher_unit_means_over_student_seeds_per_teacher_seed():
    """Asymmetric only (the symmetric rows are teachers). brcd - kd at 16 bits per (teacher
    seed, student seed): t0 0.25, 0.5 (mean 0.375); t1 0.125, 0.375 (0.25); t2 0.5 and a brcd run
    without its kd pair (0.5). At 32 bits: t0 0.0, 0.25 (0.125); t1 0.25, 0.25 (0.25)."""
    def r(method, bits, t, s, value, status="ok"):
        return {"method": method, "paradigm": "asymmetric", "bits": bits, "seed": s,
                "teacher_seed": t, "value": value, "status": status}
    rows = pd.DataFrame([
        {"method": "teacher", "paradigm": "symmetric", "bits": 16, "seed": 0, "teacher_seed": 0,
         "value": 0.9, "status": "ok"},
        r("kd", 16, 0, 0, 0.25), r("brcd", 16, 0, 0, 0.5), r("kd", 16, 0, 1, 0.375),
        r("brcd", 16, 0, 1, 0.875), r("kd", 16, 1, 0, 0.25), r("brcd", 16, 1, 0, 0.375),
        r("kd", 16, 1, 1, 0.375), r("brcd", 16, 1, 1, 0.75), r("kd", 16, 2, 0, 0.25),
        r("brcd", 16, 2, 0, 0.75), r("brcd", 16, 2, 1, 0.25), r("kd", 16, 2, 1, 9.0, "failed"),
        r("kd", 32, 0, 0, 0.5), r("brcd", 32, 0, 0, 0.5), r("kd", 32, 0, 1, 0.5),
        r("brcd", 32, 0, 1, 0.75), r("kd", 32, 1, 0, 0.5), r("brcd", 32, 1, 0, 0.75),
        r("kd", 32, 1, 1, 0.5), r("brcd", 32, 1, 1, 0.75),
        r("teacher", 32, 0, 0, 0.9),
    ])
    entry = _spec("t", builder="teacher_unit", study="ts", b=("kd",), labels=("KD*",),
                  unit="teacher seed", threshold=0.125)
    # kd's mean per length: 16 bits (0.25 + 0.375 + 0.25 + 0.375 + 0.25) / 5 = 0.3; 32 bits 0.5
    alt = {16: 0.3, 32: 0.5}
    unit = "teacher seed (mean over 2 student seeds)"
    _check_lines(claims._build_teacher_unit(entry, {"ts": rows}), [
        ("t", "BRCD vs KD*", "asymmetric", "16", unit,
         _paired([0.375, 0.25, 0.5], 0.125, mean=0.375, sd=0.125, wins=3), (16,), "teacher_seeds",
         (), alt, ""),
        ("t", "BRCD vs KD*", "asymmetric", "32", unit,
         _paired([0.125, 0.25], 0.125, mean=0.1875, sd=0.125 / SQRT2, wins=1), (32,),
         "teacher_seeds", (), alt, ""),
    ])


# ------------------------------------------------------------------ _build_per_group
def test_per_pair_lines_in_the_order_met_with_each_alternative_present():
    """Groups in the order their students first appear (a teacher row does not count)."""
    base = [("alex", "resnet", "teacher", [0.375]),
            ("vit", "resnet", "teacher", [0.9]), ("vit", "resnet", "brcd", [0.5, 0.75]),
            ("vit", "resnet", "kd", [0.25, 0.25]), ("alex", "resnet", "brcd", [0.5, 0.5]),
            ("alex", "resnet", "sp", [0.25, 0.5]), ("alex", "resnet", "kd", [0.5, 0.25])]
    rows = pd.concat([_rows([(m, "symmetric", 16, v)], teacher_backbone=t, student_backbone=s)
                      for t, s, m, v in base], ignore_index=True)
    entry = _spec("pp", builder="per_pair", study="pairs", b=("sp", "kd"), labels=("SP", "KD"))
    vit = (("teacher_backbone", "vit"), ("student_backbone", "resnet"))
    alex = (("teacher_backbone", "alex"), ("student_backbone", "resnet"))
    # vit -> resnet has no sp: only kd, 0.25 and 0.5; alex -> resnet: sp 0.25, 0.0; kd 0.0, 0.25
    _check_lines(claims.BUILDERS["per_pair"](entry, {"pairs": rows}), [
        ("pp", "BRCD vs KD (vit -> resnet)", "symmetric", "16", "student seed",
         _paired([0.25, 0.5], mean=0.375, sd=0.25 / SQRT2, wins=2), (16,), "pairs", vit,
         {16: 0.25}, ""),
        ("pp", "BRCD vs SP (alex -> resnet)", "symmetric", "16", "student seed",
         _paired([0.25, 0.0], mean=0.125, sd=0.25 / SQRT2, wins=1), (16,), "pairs", alex,
         {16: 0.375}, ""),
        ("pp", "BRCD vs KD (alex -> resnet)", "symmetric", "16", "student seed",
         _paired([0.0, 0.25], mean=0.125, sd=0.25 / SQRT2, wins=1), (16,), "pairs", alex,
         {16: 0.375}, ""),
    ])


def test_per_setting_lines_without_labels_use_the_names():
    rows = _rows([("brcd", "symmetric", 16, [0.5, 0.75]), ("kd", "symmetric", 16, [0.25, 0.5]),
                  ("teacher", "symmetric", 16, [0.9])], setting="hashnet")
    entry = _spec("ps", builder="per_setting", study="gen", b=("kd",))
    _check_lines(claims.BUILDERS["per_setting"](entry, {"gen": rows}), [
        ("ps", "BRCD vs kd (hashnet)", "symmetric", "16", "student seed",
         _paired([0.25, 0.25], mean=0.25, sd=0.0, wins=2), (16,), "generality",
         (("setting", "hashnet"),), {16: 0.375}, ""),
    ])


# ------------------------------------------------------------------ premise tables
PROJ = ["bits", "teacher", "student_no_kd", "lsh", "status"]
PAIR = ["teacher_backbone", "student_backbone"]


def _pt_rows():
    main = _rows([("teacher", "symmetric", 16, [1.0]), ("none", "symmetric", 16, [0.5, 0.75]),
                  ("LSH", "symmetric", 16, [0.25])])
    seeds = _rows([("teacher", "symmetric", 16, [0.875, 0.625]),
                   ("none", "symmetric", 16, [0.5, 0.5])])
    seeds["teacher_seed"] = seeds["seed"]
    pairs = pd.concat([_rows([(m, "symmetric", 16, v)], teacher_backbone=t, student_backbone=s)
                       for t, s, m, v in [("vit", "effnet", "LSH", [0.75]),
                                          ("vit", None, "teacher", [0.875]),
                                          ("vit", "effnet", "none", [0.5]),
                                          ("vit", "resnet", "none", [0.25]),
                                          ("alex", None, "teacher", [0.375]),
                                          ("alex", "effnet", "none", [0.5])]],
                      ignore_index=True)
    gen = pd.concat([_rows([(m, "symmetric", 16, v)], setting=s)
                     for s, m, v in [("hashnet", "teacher", [0.75]), ("hashnet", "none", [0.5]),
                                     ("dsh", "teacher", [0.375]), ("dsh", "none", [0.5])]],
                    ignore_index=True)
    return main, seeds, pairs, gen


def test_premise_tables_of_every_study_with_the_main_lsh():
    main, seeds, pairs, gen = _pt_rows()
    tables = claims.premise_tables({"main": main, "teacher_seeds": seeds, "pairs": pairs,
                                    "generality": gen})
    assert list(tables) == ["main", "teacher_seeds", "pairs", "generality"]
    # main: gap 1.0 - 0.625 = 0.375 >= 2 * 0.25/sqrt 2 = 0.354, 0.625 > 0.25
    pd.testing.assert_frame_equal(tables["main"][PROJ], pd.DataFrame(
        [[16, 1.0, 0.625, 0.25, "met"]], columns=PROJ))
    # the teacher seeds together: mean 0.75, SD 0.25/sqrt 2: gap 0.25 < 0.354
    pd.testing.assert_frame_equal(tables["teacher_seeds"][PROJ], pd.DataFrame(
        [[16, 0.75, 0.5, 0.25, "not met"]], columns=PROJ))
    # each pair with its teacher backbone's teacher; LSH from main (0.25), not the pairs' 0.75
    pd.testing.assert_frame_equal(tables["pairs"][PAIR + PROJ], pd.DataFrame([
        ["alex", "effnet", 16, 0.375, 0.5, 0.25, "not met"],
        ["vit", "effnet", 16, 0.875, 0.5, 0.25, "met"],
        ["vit", "resnet", 16, 0.875, 0.25, 0.25, "not met"]], columns=PAIR + PROJ))
    pd.testing.assert_frame_equal(tables["generality"][["setting"] + PROJ], pd.DataFrame(
        [["dsh", 16, 0.375, 0.5, 0.25, "not met"], ["hashnet", 16, 0.75, 0.5, 0.25, "met"]],
        columns=["setting"] + PROJ))


def test_premise_tables_without_main_measure_no_lsh():
    _, _, pairs, gen = _pt_rows()
    tables = claims.premise_tables({"pairs": pairs, "generality": gen})
    assert list(tables) == ["pairs", "generality"]
    # no main rows: no LSH reference at all (the pairs' own LSH row is not one)
    pd.testing.assert_frame_equal(tables["pairs"][PAIR + PROJ], pd.DataFrame([
        ["alex", "effnet", 16, 0.375, 0.5, NAN, "not met"],
        ["vit", "effnet", 16, 0.875, 0.5, NAN, "not measured"],
        ["vit", "resnet", 16, 0.875, 0.25, NAN, "not measured"]], columns=PAIR + PROJ))
    assert list(tables["generality"]["status"]) == ["not met", "not measured"]
    # an empty main table is no main table; empty studies have no table
    empty = claims.premise_tables({"main": gen.iloc[:0], "generality": gen,
                                   "pairs": pairs.iloc[:0]})
    assert list(empty) == ["generality"] and empty["generality"]["lsh"].isna().all()
    assert claims.premise_tables({}) == {}


def _line(source, lengths, group=()):
    res = claims.paired([0.1, 0.2])
    return claims.Line("c", "x", "symmetric", "16", "u", res, lengths, source, group)


def test_premise_of_a_line_reads_every_length_and_its_group():
    main = pd.DataFrame({"bits": [16, 32, 64, 128],
                         "status": ["met", "met", "not met", "not measured"],
                         "teacher": [0.75, 0.875, 0.5, NAN]})
    pairs = pd.DataFrame({"teacher_backbone": ["vit", "alex"],
                          "student_backbone": ["resnet", "resnet"], "bits": [16, 16],
                          "status": ["met", "not met"], "teacher": [0.875, 0.375]})
    tables = {"main": main, "pairs": pairs,
              "teacher_seeds": pd.DataFrame(columns=["bits", "status", "teacher"])}
    of = claims._premise_of
    assert of(_line("main", (16, 32)), tables) == ("met", {16: 0.75, 32: 0.875})
    assert of(_line("main", (16, 64)), tables) == ("not met", {16: 0.75, 64: 0.5})
    assert of(_line("main", (64, 128)), tables) == ("not met", {64: 0.5})
    assert of(_line("main", (16, 128)), tables) == ("not measured", {16: 0.75})  # NaN teacher
    assert of(_line("main", (16, 256)), tables) == ("not measured", {16: 0.75})  # no such length
    vit = (("teacher_backbone", "vit"), ("student_backbone", "resnet"))
    alex = (("teacher_backbone", "alex"), ("student_backbone", "resnet"))
    assert of(_line("pairs", (16,), vit), tables) == ("met", {16: 0.875})
    assert of(_line("pairs", (16,), alex), tables) == ("not met", {16: 0.375})
    assert of(_line("generality", (16,)), tables) == ("not measured", {})  # no table
    assert of(_line("teacher_seeds", (16,)), tables) == ("not measured", {})  # an empty one
    assert of(_line(None, (16,)), tables) == ("not measured", {})
    status, teacher = of(_line("main", (16,)), tables)
    assert type(teacher[16]) is float


# ------------------------------------------------------------------ lift share
def test_lift_share_by_hand():
    lift = claims._lift_share
    assert math.isnan(lift({16: 0.625}, {16: 1.0}, None))   # no chance level
    assert math.isnan(lift({}, {16: 1.0}, 0.5))              # no alternative
    # (0.625 - 0.5) / (1.0 - 0.5) = 0.25 and (0.875 - 0.5) / 0.5 = 0.75: mean 0.5; 64 bits has
    # no teacher
    assert lift({16: 0.625, 32: 0.875, 64: 0.9}, {16: 1.0, 32: 1.0}, 0.5) == 0.5
    # a teacher at chance (32 bits, 0.5) or below it (0.25) has no lift: only 16 bits counts
    assert lift({16: 0.625, 32: 0.875}, {16: 1.0, 32: 0.5}, 0.5) == 0.25
    assert lift({16: 0.625, 32: 0.875}, {16: 1.0, 32: 0.25}, 0.5) == 0.25
    assert lift({16: 0.125}, {16: 0.75}, 0.25) == -0.25   # (0.125 - 0.25) / (0.75 - 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no lift anywhere: NaN, and no empty-mean warning
        assert math.isnan(lift({32: 0.875}, {32: 0.5}, 0.5))


# ------------------------------------------------------------------ _lines, missing_claims
def test_lines_and_missing_claims_in_catalogue_order(monkeypatch):
    cat = (_spec("l1", b=("kd",), labels=("KD",)), _spec("l2", study="ablations", b=("kd",)),
           _spec("l3", b=("none",)), _spec("l4", study="pairs", builder="per_pair", b=("kd",)))
    monkeypatch.setattr(claims, "CATALOGUE", cat)
    rows = {"main": _main_two_seeds(), "pairs": pd.DataFrame()}
    pairs, missing = claims._lines(rows)
    assert [(e.name, line.claim, line.comparison) for e, line in pairs] == \
        [("l1", "l1", "BRCD vs KD"), ("l3", "l3", "BRCD vs none")]
    assert pairs[0][0] is cat[0] and pairs[1][0] is cat[2]
    assert missing == ["l2", "l4"]
    assert claims.missing_claims(rows) == ["l2", "l4"]
    assert claims.missing_claims({}) == ["l1", "l2", "l3", "l4"]
    assert claims._lines({}) == ([], ["l1", "l2", "l3", "l4"])


# ------------------------------------------------------------------ claims_table
def _record(claim, comparison, data, *, mean, sd, wins, level, p_adj, verdict, alpha=0.05,
            null=0.0, kind="evidence", premise="met", measure="mAP", margin=0.01,
            paradigm="symmetric", unit="student seed", note=""):
    e = _paired(data, null, mean=mean, sd=sd, wins=wins)
    n = e["n"]
    low, high = _interval(mean, sd, n, level)
    return {"claim": claim, "comparison": comparison, "paradigm": paradigm, "code_length": "16",
            "unit": unit, "n": n, "estimate": e["mean"], "raw_low": e["low"], "raw_high": e["high"],
            "adjusted_low": low, "adjusted_high": high, "sde": _sde(e["sd"], n, alpha),
            "sde_adjusted": _sde(e["sd"], n, level) if math.isfinite(level) else NAN,
            "verdict": verdict, "kind": kind, "premise": premise, "measure": measure,
            "threshold": null, "margin": margin, "sd": e["sd"], "p_value": e["p_value"],
            "p_adjusted": p_adj, "adjusted_level": level, "wins": wins, "note": note}


def _frame(records):
    return pd.DataFrame(records, columns=COLS)


def _assert_table(got, records):
    pd.testing.assert_frame_equal(got, _frame(records), check_exact=False, rtol=1e-8, atol=1e-13)


def test_claims_table_four_verdicts_holm_and_a_non_default_alpha(monkeypatch):
    """One premise-met length, BRCD 0.5 in 4 seeds against six alternatives: brcd - kd 0.25,
    0.28125, 0.25, 0.28125 (mean 0.265625, SD 0.03125/sqrt 3); sp the mirror image; pkt 0,
    0.0625, -0.0625, 0 (mean 0, SD 0.0625 sqrt(2/3)); rkd 0.25, -0.25, 0.125, -0.0625 (mean
    0.015625, SD 0.21875); crd two seeds 0.125, 0.125 (SD 0: p 0); crcd one seed 0.0625."""
    entry = _spec("four", b=("kd", "sp", "pkt", "rkd", "crd", "crcd"),
                  labels=("KD", "SP", "PKT", "RKD", "CRD", "CRCD"), margin=0.25, sanity=False)
    monkeypatch.setattr(claims, "CATALOGUE", (entry,))
    rows = _rows([("teacher", "symmetric", 16, [1.0]), ("none", "symmetric", 16, [0.25] * 4),
                  ("LSH", "symmetric", 16, [0.125]), ("brcd", "symmetric", 16, [0.5] * 4),
                  ("kd", "symmetric", 16, [0.25, 0.21875, 0.25, 0.21875]),
                  ("sp", "symmetric", 16, [0.75, 0.78125, 0.75, 0.78125]),
                  ("pkt", "symmetric", 16, [0.5, 0.4375, 0.5625, 0.5]),
                  ("rkd", "symmetric", 16, [0.25, 0.75, 0.375, 0.5625]),
                  ("crd", "symmetric", 16, [0.375, 0.375]), ("crcd", "symmetric", 16, [0.4375])])
    # chance 0.5 puts every alternative below a quarter of the lift, but the claim has no sanity
    # lines (sanity=False): all evidence
    table = claims.claims_table({"main": rows}, chance=0.5, alpha=0.1)
    d_kd = [0.25, 0.28125, 0.25, 0.28125]
    d_rkd = [0.25, -0.25, 0.125, -0.0625]
    p_kd = st.ttest_1samp(d_kd, 0.0).pvalue          # about 8.6e-5; sp's is the same
    p_rkd = st.ttest_1samp(d_rkd, 0.0).pvalue        # about 0.9
    assert p_kd < 0.025 and 0.5 < p_rkd < 1
    # Holm over the 5 testable lines (crcd has one seed), alpha 0.1, ranks by p (ties in table
    # order): crd (p 0) at 0.1/5 = 0.02, kd at 0.1/4, sp at 0.1/3 (all rejected); rkd is not
    # (p > 0.1/2): rkd and pkt are read at 0.1/(5 - 4 + 1) = 0.05. Adjusted p: crd 0, kd 4 p_kd,
    # sp max(4 p_kd, 3 p_kd), rkd min(1, 2 p_rkd) = 1, pkt 1.
    kw = dict(alpha=0.1, margin=0.25)
    _assert_table(table, [
        _record("four", "BRCD vs KD", d_kd, mean=0.265625, sd=0.03125 / SQRT3, wins=4,
                level=0.025, p_adj=4 * p_kd, verdict="supported", **kw),
        _record("four", "BRCD vs SP", [-x for x in d_kd], mean=-0.265625, sd=0.03125 / SQRT3,
                wins=0, level=0.1 / 3, p_adj=4 * p_kd, verdict="contradicted", **kw),
        _record("four", "BRCD vs PKT", [0.0, 0.0625, -0.0625, 0.0], mean=0.0,
                sd=0.0625 * math.sqrt(2 / 3), wins=1, level=0.05, p_adj=1.0,
                verdict="equivalent", **kw),
        _record("four", "BRCD vs RKD", d_rkd, mean=0.015625, sd=0.21875, wins=2, level=0.05,
                p_adj=1.0, verdict="inconclusive", **kw),
        _record("four", "BRCD vs CRD", [0.125, 0.125], mean=0.125, sd=0.0, wins=2, level=0.02,
                p_adj=0.0, verdict="supported", **kw),
        _record("four", "BRCD vs CRCD", [0.0625], mean=0.0625, sd=NAN, wins=1, level=NAN,
                p_adj=NAN, verdict="inconclusive", **kw),
    ])


def test_claims_table_premise_not_met_leaves_the_family_unless_the_claim_needs_no_premise(
        monkeypatch):
    """Teacher 0.25 below the undistilled student 0.5: the premise fails at 16 bits. brcd - kd
    0.25, 0.3125, 0.375 (mean 0.3125, SD 0.0625) for two claims: one needs the premise (no
    verdict, no adjustment), one does not (a family of one: read at 0.05)."""
    monkeypatch.setattr(claims, "CATALOGUE", (
        _spec("prem", b=("kd",), labels=("KD",), sanity=False),
        _spec("noprem", b=("kd",), labels=("KD",), sanity=False, premise=False)))
    rows = _rows([("teacher", "symmetric", 16, [0.25]), ("none", "symmetric", 16, [0.5] * 3),
                  ("LSH", "symmetric", 16, [0.125]),
                  ("brcd", "symmetric", 16, [0.75, 0.8125, 0.875]),
                  ("kd", "symmetric", 16, [0.5] * 3)])
    table = claims.claims_table({"main": rows})
    d = [0.25, 0.3125, 0.375]
    p = st.ttest_1samp(d, 0.0).pvalue  # about 0.013 <= 0.05: rejected in a family of one
    assert p < 0.05
    not_met = _record("prem", "BRCD vs KD", d, mean=0.3125, sd=0.0625, wins=3, level=NAN,
                      p_adj=NAN, verdict="premise not met", premise="not met")
    _assert_table(table, [
        not_met,
        _record("noprem", "BRCD vs KD", d, mean=0.3125, sd=0.0625, wins=3, level=0.05, p_adj=p,
                verdict="supported"),
    ])


def test_claims_table_sanity_lines_at_chance_form_their_own_family(monkeypatch):
    """Chance 0.5, teacher 1.0 (symmetric, the premise's): the lift share of sp is exactly 0.25
    in the symmetric paradigm (0.625) and 0.125 in the asymmetric one (0.5625); kd's is 0.75
    (0.875) and 0.5 (0.75). Only the asymmetric sp line (below a quarter) is a sanity line."""
    monkeypatch.setattr(claims, "CATALOGUE", (_spec("san", b=("sp", "kd"), labels=("SP", "KD")),))
    rows = _rows([("teacher", "symmetric", 16, [1.0]), ("none", "symmetric", 16, [0.5] * 3),
                  ("LSH", "symmetric", 16, [0.25]),
                  ("brcd", "symmetric", 16, [0.75, 0.8125, 0.875]),
                  ("sp", "symmetric", 16, [0.625] * 3), ("kd", "symmetric", 16, [0.875] * 3),
                  ("brcd", "asymmetric", 16, [0.625, 0.6875, 0.75]),
                  ("sp", "asymmetric", 16, [0.5625] * 3), ("kd", "asymmetric", 16, [0.75] * 3)])
    table = claims.claims_table({"main": rows}, chance=0.5)
    d_sp, d_spa, d_kd = [0.125, 0.1875, 0.25], [0.0625, 0.125, 0.1875], [-0.125, -0.0625, 0.0]
    p_sp, p_spa, p_kd = (st.ttest_1samp(d, 0.0).pvalue for d in (d_sp, d_spa, d_kd))
    assert 0.05 / 3 < p_sp < p_kd and 0.05 < p_spa
    # evidence family: sp symmetric, kd both (m = 3): the smallest p (sp, about 0.035) is above
    # 0.05/3, so all three are read at 0.05/3; adjusted p: 3 p_sp, then max(3 p_sp, 2 p_kd)
    # twice. Sanity family: the asymmetric sp line alone, read at 0.05 (p about 0.074).
    lvl = 0.05 / 3
    assert 2 * p_kd > 3 * p_sp
    _assert_table(table, [
        _record("san", "BRCD vs SP", d_sp, mean=0.1875, sd=0.0625, wins=3, level=lvl,
                p_adj=3 * p_sp, verdict="inconclusive"),
        _record("san", "BRCD vs SP", d_spa, mean=0.125, sd=0.0625, wins=3, level=0.05,
                p_adj=p_spa, verdict="inconclusive", kind="sanity", paradigm="asymmetric"),
        _record("san", "BRCD vs KD", d_kd, mean=-0.0625, sd=0.0625, wins=0, level=lvl,
                p_adj=2 * p_kd, verdict="inconclusive"),
        _record("san", "BRCD vs KD", d_kd, mean=-0.0625, sd=0.0625, wins=0, level=lvl,
                p_adj=2 * p_kd, verdict="inconclusive", paradigm="asymmetric"),
    ])
    # without a chance level every line is evidence: one family of 4, smallest p above 0.05/4
    plain = claims.claims_table({"main": rows})
    assert list(plain["kind"]) == ["evidence"] * 4
    assert list(plain["adjusted_level"]) == pytest.approx([0.0125] * 4, rel=1e-12)


def test_claims_table_gap_share_is_read_against_its_threshold_without_a_margin(monkeypatch):
    """Gap 1.0 - 0.5 = 0.5 every seed, gains 1/32, 2/32, 3/32: shares 0.0625, 0.125, 0.1875
    (mean 0.125, SD 0.0625). Its 95 % interval, about [-0.03, 0.28], lies below the threshold
    one half: contradicted (it holds 0, so against 0 it would be inconclusive)."""
    monkeypatch.setattr(claims, "CATALOGUE", (GAP,))
    rows = _rows([("teacher", "symmetric", 16, [1.0]), ("none", "symmetric", 16, [0.5] * 3),
                  ("LSH", "symmetric", 16, [0.25]),
                  ("brcd", "symmetric", 16, [0.53125, 0.5625, 0.59375])])
    table = claims.claims_table({"main": rows}, chance=0.5)
    shares = [0.0625, 0.125, 0.1875]
    p = st.ttest_1samp(shares, 0.5).pvalue
    assert p < 0.05
    _assert_table(table, [
        _record("g", SHARE, shares, mean=0.125, sd=0.0625, wins=0, level=0.05, p_adj=p,
                verdict="contradicted", null=0.5, measure="share", margin=NAN, unit="seed unit"),
    ])
    low, high = table.loc[0, ["adjusted_low", "adjusted_high"]]
    assert low < 0 < high < 0.5


@pytest.mark.parametrize("share,verdict", [(0.4375, "contradicted"), (0.5, "inconclusive"),
                                           (0.5625, "supported")])
def test_a_share_of_exactly_one_half_is_neither_above_nor_below(monkeypatch, share, verdict):
    """Every seed closes the same share of the gap 0.5 (BRCD = 0.5 + share * 0.5): no spread, so
    the interval is the point itself; p is 0 off one half and 1 on it (not rejected, still read
    at 0.05 in a family of one). Exactly one half: no seed wins, and no margin: inconclusive."""
    monkeypatch.setattr(claims, "CATALOGUE", (GAP,))
    rows = _rows([("teacher", "symmetric", 16, [1.0]), ("none", "symmetric", 16, [0.5] * 3),
                  ("LSH", "symmetric", 16, [0.25]),
                  ("brcd", "symmetric", 16, [0.5 + share * 0.5] * 3)])
    table = claims.claims_table({"main": rows})
    _assert_table(table, [
        _record("g", SHARE, [share] * 3, mean=share, sd=0.0, wins=3 if share > 0.5 else 0,
                level=0.05, p_adj=1.0 if share == 0.5 else 0.0, verdict=verdict, null=0.5,
                measure="share", margin=NAN, unit="seed unit"),
    ])


@pytest.mark.parametrize("d,verdict", [(-0.25, "contradicted"), (0.0, "equivalent"),
                                       (0.25, "supported")])
def test_a_difference_of_exactly_the_threshold_is_equivalent_with_a_margin(monkeypatch, d,
                                                                            verdict):
    """brcd - kd = d in all 3 seeds: the interval is the point d; exactly at the threshold 0 it
    lies inside 0 +- 0.01 (p 1); a quarter off either side it is supported or contradicted."""
    monkeypatch.setattr(claims, "CATALOGUE", (_spec("eq", b=("kd",), labels=("KD",)),))
    rows = _rows([("teacher", "symmetric", 16, [1.0]), ("none", "symmetric", 16, [0.5] * 3),
                  ("LSH", "symmetric", 16, [0.25]), ("brcd", "symmetric", 16, [0.5] * 3),
                  ("kd", "symmetric", 16, [0.5 - d] * 3)])
    table = claims.claims_table({"main": rows})
    _assert_table(table, [
        _record("eq", "BRCD vs KD", [d] * 3, mean=d, sd=0.0, wins=3 if d > 0 else 0, level=0.05,
                p_adj=1.0 if d == 0 else 0.0, verdict=verdict),
    ])


def test_claims_table_of_no_rows_is_empty_with_the_columns(monkeypatch):
    monkeypatch.setattr(claims, "CATALOGUE", (GAP,))
    pd.testing.assert_frame_equal(claims.claims_table({}), pd.DataFrame([], columns=COLS))


# ------------------------------------------------------------------ overall_verdicts
def _rule(scope):
    return (f"supported when every evidence line ({scope}) is supported after adjustment; "
            "contradicted when any evidence line is contradicted; premise not met when the "
            "premise fails for any evidence line and none is contradicted; equivalent when every "
            "evidence line is equivalent; inconclusive otherwise. Sanity lines do not count.")


KIT = "— (not stated in the abstract: the kit's own check)"
OVERALL = ["claim", "paper states", "operationalisation", "rule", "evidence lines",
           "sanity lines", "overall"]
NAMES = ["sup", "con", "pnm_all", "pnm_some", "eqv", "inc", "inc2", "sanity_only", "missing",
         "absent"]


def _overall_catalogue(monkeypatch):
    cat = tuple(_spec(n, quotes=("q one", "q two") if n == "sup" else (), scope=f"scope {n}")
                for n in NAMES)
    monkeypatch.setattr(claims, "CATALOGUE", cat)


def _row(name, tally, n_sanity, overall):
    return [name, "“q one” … “q two”" if name == "sup" else KIT, f"op {name}",
            _rule(f"scope {name}"), tally, n_sanity, overall]


def test_overall_verdicts_every_rule(monkeypatch):
    _overall_catalogue(monkeypatch)
    lines = {
        "sup": [("evidence", "supported"), ("sanity", "contradicted"), ("evidence", "supported")],
        "con": [("evidence", "premise not met"), ("evidence", "contradicted"),
                ("evidence", "supported"), ("sanity", "supported")],
        "pnm_all": [("evidence", "premise not met")] * 2,
        "pnm_some": [("evidence", "inconclusive"), ("evidence", "premise not met"),
                     ("evidence", "supported")],
        "eqv": [("evidence", "equivalent")] * 2,
        "inc": [("evidence", "equivalent"), ("evidence", "supported")],
        "inc2": [("evidence", "inconclusive"), ("evidence", "supported"),
                 ("evidence", "inconclusive")],
        "sanity_only": [("sanity", "supported"), ("sanity", "inconclusive")],
        "missing": [("evidence", "supported")],
    }
    table = pd.DataFrame([{"claim": c, "kind": k, "verdict": v, "n": 3}
                          for c, ls in lines.items() for k, v in ls])
    out = claims.overall_verdicts(table, missing=["missing"])
    expected = pd.DataFrame([
        _row("sup", "supported 2", 1, "supported"),
        _row("con", "supported 1, contradicted 1, premise not met 1", 1, "contradicted"),
        _row("pnm_all", "premise not met 2", 0, "premise not met"),
        _row("pnm_some", "supported 1, inconclusive 1, premise not met 1", 0, "premise not met"),
        _row("eqv", "equivalent 2", 0, "equivalent"),
        _row("inc", "supported 1, equivalent 1", 0, "inconclusive"),
        _row("inc2", "supported 1, inconclusive 2", 0, "inconclusive"),
        _row("sanity_only", "—", 2, "no evidence line (sanity checks only)"),
        _row("missing", "supported 1", 0, "not run"),   # listed as missing: not run
        _row("absent", "—", 0, "not run"),              # no line at all: not run
    ], columns=OVERALL)
    pd.testing.assert_frame_equal(out, expected)


def test_overall_verdicts_of_an_empty_table(monkeypatch):
    _overall_catalogue(monkeypatch)
    expected = pd.DataFrame([_row(n, "—", 0, "not run") for n in NAMES], columns=OVERALL)
    pd.testing.assert_frame_equal(claims.overall_verdicts(pd.DataFrame()), expected)


# ------------------------------------------------------------------ key_lines
KL = ["claim", "comparison", "paradigm", "code_length", "kind", "n", "estimate", "sd", "p_value",
      "verdict"]
KD, NOKD = "BRCD vs KD", "BRCD vs Student (no KD)"


def _kl_table():
    return pd.DataFrame([
        ["beats_baselines", KD, "symmetric", "32", "evidence", 3, 0.02, 0.01, 0.01, "supported"],
        ["beats_baselines", KD, "asymmetric", "32", "evidence", 50, 0.005, 0.01, 0.2,
         "inconclusive"],
        ["beats_no_kd", NOKD, "symmetric", "32", "sanity", 4, 0.1, 0.02, 0.001, "supported"],
        ["beats_baselines", KD, "symmetric", "64", "evidence", 3, 0.0, 0.5, 0.3, "inconclusive"],
        ["beats_baselines", "BRCD vs SP", "symmetric", "32", "evidence", 1, 0.01, NAN, NAN,
         "inconclusive"],
        ["mask_helps", KD, "symmetric", "32", "evidence", 3, 0.0, 0.3, 0.04, "inconclusive"],
        ["beats_baselines", KD, "symmetric", "pooled", "sanity", 3, 0.0, 0.3, 0.5, "inconclusive"],
        ["beats_no_kd", NOKD, "asymmetric", "16", "evidence", 3, 0.05, 0.05, 0.02, "supported"],
    ], columns=KL)


def _kl_main():
    """Wall times at 32 bits: brcd 2 s and 4 s (the first run of each seed; the asymmetric rows
    repeat them at 10 s), kd 1 s, none 0.5 s; other lengths, methods, failed runs and runs
    without a value do not count."""
    def r(method, seed, wall, paradigm="symmetric", bits=32, status="ok", value=0.5):
        return {"method": method, "seed": seed, "bits": bits, "paradigm": paradigm,
                "wall_s": wall, "status": status, "value": value}
    return pd.DataFrame([r("brcd", 0, 2.0), r("brcd", 1, 4.0), r("kd", 0, 1.0), r("kd", 1, 1.0),
                         r("none", 0, 0.5), r("brcd", 0, 10.0, "asymmetric"),
                         r("brcd", 1, 10.0, "asymmetric"), r("brcd", 0, 100.0, bits=16),
                         r("sp", 0, 50.0), r("kd", 2, 1000.0, status="failed"),
                         r("none", 1, 70.0, value=NAN)])


def test_key_lines_at_32_bits_with_the_family_level_and_the_cost():
    out = claims.key_lines(_kl_table(), {"main": _kl_main()}, margin=0.02, alpha=0.1)
    # the evidence family: evidence lines with a p-value (rows 0, 1, 3, 5, 7): 5; its level
    # 0.1 / 5. The sanity line is costed in its own family: sanity lines with a p-value (rows 2
    # and 6): 2, level 0.1 / 2
    m, af, ms, afs = 5, 0.1 / 5, 2, 0.1 / 2
    nf0, nf1, nf2 = _seeds(0.01, 0.02, af), _seeds(0.01, 0.02, af), _seeds(0.02, 0.02, afs)
    assert nf1 < 50 and nf0 > 3 and nf2 > 4
    # per seed: brcd (2 + 4) / 2 = 3 s, plus kd 1 s (4 s) or none 0.5 s (3.5 s)
    expected = pd.DataFrame([
        [KD, "symmetric", 32, "evidence", 3, 0.02, 0.01, _sde(0.01, 3, 0.1), m,
         _sde(0.01, 3, af), 0.02, _seeds(0.01, 0.02, 0.1), nf0, (nf0 - 3) * 4.0, "supported"],
        [KD, "asymmetric", 32, "evidence", 50, 0.005, 0.01, _sde(0.01, 50, 0.1), m,
         _sde(0.01, 50, af), 0.02, _seeds(0.01, 0.02, 0.1), nf1, 0.0, "inconclusive"],
        [NOKD, "symmetric", 32, "sanity", 4, 0.1, 0.02, _sde(0.02, 4, 0.1), ms,
         _sde(0.02, 4, afs), 0.02, _seeds(0.02, 0.02, 0.1), nf2, (nf2 - 4) * 3.5, "supported"],
    ], columns=KEY_COLS)
    pd.testing.assert_frame_equal(out, expected, check_exact=False, rtol=1e-8)


def test_key_lines_at_a_given_length_without_wall_times():
    table = _kl_table()
    out = claims.key_lines(table, {"main": _kl_main().drop(columns="wall_s")}, bits=16, margin=0.05)
    expected = pd.DataFrame([
        [NOKD, "asymmetric", 16, "evidence", 3, 0.05, 0.05, _sde(0.05, 3, 0.05), 5,
         _sde(0.05, 3, 0.01), 0.05, _seeds(0.05, 0.05, 0.05), _seeds(0.05, 0.05, 0.01), NAN,
         "supported"],
    ], columns=KEY_COLS)
    pd.testing.assert_frame_equal(out, expected, check_exact=False, rtol=1e-8)


def test_key_lines_default_to_the_longest_length_without_32_bits():
    table = pd.DataFrame([
        ["beats_baselines", KD, "symmetric", "64", "sanity", 3, 0.125, 0.0, 0.01, "supported"],
        ["beats_baselines", KD, "symmetric", "16", "evidence", 3, 0.0, 0.01, NAN, "inconclusive"],
        ["beats_no_kd", NOKD, "symmetric", "8", "sanity", 3, 0.0, 0.01, 0.2, "inconclusive"],
        ["beats_baselines", KD, "asymmetric", "pooled", "evidence", 3, 0.0, 0.01, NAN,
         "inconclusive"],
    ], columns=KL)
    # lengths 8, 16, 64: 64 bits; the line is a sanity line, whose family (the sanity lines
    # with a p-value: the 64- and 8-bit ones) is 2; SD 0: the effect detectable is 0 and 2
    # seeds reach any margin; no rows: no cost
    expected = pd.DataFrame([[KD, "symmetric", 64, "sanity", 3, 0.125, 0.0, 0.0, 2, 0.0, 0.01,
                              2, 2, NAN, "supported"]], columns=KEY_COLS)
    pd.testing.assert_frame_equal(claims.key_lines(table), expected)


def test_key_lines_without_a_key_line_or_a_table_are_empty():
    pooled = _kl_table().assign(code_length="pooled")
    pd.testing.assert_frame_equal(claims.key_lines(pooled), pd.DataFrame())
    pd.testing.assert_frame_equal(claims.key_lines(pooled.iloc[:0]), pd.DataFrame())


def test_key_lines_of_a_kind_without_a_p_value_sit_in_a_family_of_one():
    """No evidence line has a p-value (one seed each): the evidence family is 1, not 0, so the
    family level is the raw level and the family columns repeat the raw ones."""
    table = pd.DataFrame([
        ["beats_baselines", KD, "symmetric", "32", "evidence", 3, 0.0, 0.01, NAN, "inconclusive"],
        ["beats_no_kd", NOKD, "symmetric", "32", "sanity", 3, 0.0, 0.01, 0.2, "inconclusive"],
    ], columns=KL)
    sde, seeds = _sde(0.01, 3, 0.05), _seeds(0.01, 0.01, 0.05)
    expected = pd.DataFrame([
        [KD, "symmetric", 32, "evidence", 3, 0.0, 0.01, sde, 1, sde, 0.01, seeds, seeds, NAN,
         "inconclusive"],
        [NOKD, "symmetric", 32, "sanity", 3, 0.0, 0.01, sde, 1, sde, 0.01, seeds, seeds, NAN,
         "inconclusive"],
    ], columns=KEY_COLS)
    pd.testing.assert_frame_equal(claims.key_lines(table, margin=0.01, alpha=0.05), expected,
                                  check_exact=False, rtol=1e-8)

"""Tests aimed at the mutants of ``brcd_lib/reporting/stats.py`` that survived ``make mutation``:
``Paired.format`` and ``Paired.interval`` (no other fast test calls them), the raw verdict at its
boundaries (``n == 2``, ``n == 1`` with a finite interval, ``high == threshold``) and
``paired_units`` (group order, group keys, incomplete units, the column names, ``by=()``).

Every expected value is worked by hand in a comment (the closed forms of Student's t with 1 and
2 degrees of freedom) or by reference code here (scipy's t quantiles and ``ttest_1samp``), never
read back from brcd_lib."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as sps

from brcd_lib.reporting.stats import Paired, paired, paired_units, verdict

NAN = math.nan


# ---------------------------------------------------------------- Paired.format


def test_format_without_pairs():
    assert Paired(0, NAN, NAN, NAN, NAN, 0).format() == "no pairs"


def test_format_one_pair_has_no_interval():
    # n == 1: the first branch (n == 0) must not fire, the second (no finite low) must
    assert Paired(1, 0.5, NAN, NAN, NAN, 1).format() == "+0.5000 (n = 1, no interval)"
    assert Paired(1, -0.25, NAN, NAN, NAN, 0).format(digits=1) == "-0.2 (n = 1, no interval)"


def test_format_with_an_interval_defaults_to_four_digits():
    res = Paired(5, 0.0123, 0.004, 0.0206, 0.01, 4, 0.01)
    assert res.format() == "+0.0123 [+0.0040, +0.0206] (n = 5)"
    assert res.format(digits=2) == "+0.01 [+0.00, +0.02] (n = 5)"
    assert Paired(2, -0.5, -1.25, 0.25, 0.3, 1, 0.1).format(1) == "-0.5 [-1.2, +0.2] (n = 2)"


# ---------------------------------------------------------------- Paired.interval


def test_paired_interval_is_the_t_interval_of_its_own_fields():
    res = Paired(4, 0.03, NAN, NAN, NAN, 3, 0.02)
    # t(0.975, 3) = 3.182446305284; half = 3.182446305284 * 0.02 / sqrt(4) = 0.03182446305284
    assert sps.t.ppf(0.975, 3) == pytest.approx(3.182446305284, rel=1e-12)
    assert res.interval() == pytest.approx((0.03 - 0.03182446305284, 0.03 + 0.03182446305284),
                                           rel=1e-10)
    # t(0.995, 3) = 5.840909309733; half = 5.840909309733 * 0.02 / 2 = 0.05840909309733
    assert sps.t.ppf(0.995, 3) == pytest.approx(5.840909309733, rel=1e-12)
    assert res.interval(0.99) == pytest.approx((0.03 - 0.05840909309733, 0.03 + 0.05840909309733),
                                               rel=1e-10)
    # confidence passed by keyword too; 0.5: t(0.75, 3) = 0.764892328404 (scipy), * 0.01
    assert res.interval(confidence=0.5) == pytest.approx(
        (0.03 - float(sps.t.ppf(0.75, 3)) * 0.01, 0.03 + float(sps.t.ppf(0.75, 3)) * 0.01),
        rel=1e-10)


def test_paired_interval_degenerate_fields():
    lo, hi = Paired(1, 0.5, NAN, NAN, NAN, 1, NAN).interval()
    assert math.isnan(lo) and math.isnan(hi)
    assert Paired(3, 0.25, 0.25, 0.25, 0.0, 3, 0.0).interval() == (0.25, 0.25)  # sd 0: the point
    # n = 2, df = 1: t(0.975, 1) = tan(0.475 pi) = 12.706204736175; sd 0.1 -> half = 12.7062 *
    # 0.1 / sqrt(2) = 0.898462...
    half = math.tan(0.475 * math.pi) * 0.1 / math.sqrt(2)
    assert Paired(2, 1.0, NAN, NAN, NAN, 2, 0.1).interval() == pytest.approx((1 - half, 1 + half))


# ---------------------------------------------------------------- verdict at its boundaries


def test_raw_verdict_needs_two_units_even_with_a_finite_interval():
    # fewer than 2 units is inconclusive whatever the interval fields say
    assert verdict(Paired(1, 0.5, 0.4, 0.6, 0.01, 1, 0.1)) == "inconclusive"
    assert verdict(Paired(1, -0.5, -0.6, -0.4, 0.01, 0, 0.1)) == "inconclusive"
    assert verdict(Paired(0, 0.5, 0.4, 0.6, 0.01, 0, 0.1)) == "inconclusive"


def test_raw_verdict_with_exactly_two_units():
    assert verdict(Paired(2, 0.2, 0.1, 0.3, 0.01, 2, 0.05)) == "supported"
    assert verdict(Paired(2, -0.2, -0.3, -0.1, 0.01, 0, 0.05)) == "contradicted"
    # from paired(): d = [1.0, 1.1], mean 1.05, sd = sqrt(2 * 0.05^2 / 1) = 0.070711,
    # se = 0.05, half = 12.706205 * 0.05 = 0.635310 -> low = 0.414690 > 0
    res = paired([1.0, 1.1])
    assert res.n == 2 and res.low == pytest.approx(1.05 - 12.706204736175 * 0.05)
    assert verdict(res) == "supported"
    assert verdict(paired([-1.0, -1.1])) == "contradicted"


def test_raw_verdict_high_touching_the_threshold_is_inconclusive():
    assert verdict(Paired(5, -0.02, -0.04, 0.0, 0.05, 1, 0.02)) == "inconclusive"
    assert verdict(Paired(5, 0.4, 0.3, 0.5, 0.05, 1, 0.1), threshold=0.5) == "inconclusive"
    assert verdict(Paired(5, 0.4, 0.3, 0.4999, 0.05, 1, 0.1), threshold=0.5) == "contradicted"
    assert verdict(Paired(5, 0.6, 0.5, 0.7, 0.05, 5, 0.1), threshold=0.5) == "inconclusive"


# ---------------------------------------------------------------- paired_units

COLUMNS = ["compared", "paradigm", "n", "mean", "low", "high", "p_value", "wins", "sd"]


def _teacher_rows():
    """Gains brcd - kd per (paradigm, teacher seed, student seed). "symmetric" comes first in the
    rows (a sorted groupby would put "asymmetric" first). Symmetric teacher 2 has one student
    seed only (an incomplete unit: kept, as ``complete=False``); symmetric teacher 0 also has a
    brcd run at student seed 2 without its kd pair (left out by the pairing)."""
    gains = {"symmetric": {0: [0.01, 0.03], 1: [0.05, 0.07], 2: [0.04]},
             "asymmetric": {0: [-0.01, -0.03], 1: [0.03, 0.05]}}
    rows = []
    for paradigm, by_teacher in gains.items():
        for t, gs in by_teacher.items():
            for s, g in enumerate(gs):
                rows += [{"method": "kd", "teacher_seed": t, "seed": s, "paradigm": paradigm,
                          "bits": 32, "status": "ok", "value": 0.5},
                         {"method": "brcd", "teacher_seed": t, "seed": s, "paradigm": paradigm,
                          "bits": 32, "status": "ok", "value": 0.5 + g}]
    rows.append({"method": "brcd", "teacher_seed": 0, "seed": 2, "paradigm": "symmetric",
                 "bits": 32, "status": "ok", "value": 0.6})
    return pd.DataFrame(rows)


# symmetric units (teacher-seed means over their student seeds): 0.02, 0.06, 0.04
#   n 3, mean 0.04, sd = sqrt((0.02^2 + 0.02^2 + 0) / 2) = 0.02, se = 0.02 / sqrt(3)
#   t(0.975, 2) = (2 * 0.975 - 1) / sqrt(2 * 0.975 * 0.025) = 0.95 / sqrt(0.04875) = 4.3026527
#   half = 4.3026527 * 0.02 / 1.7320508 = 0.0496828 -> [-0.0096828, 0.0896828]
#   t = 0.04 / (0.02 / sqrt 3) = 2 sqrt 3; df 2: p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(12 / 14)
SYM_HALF = 0.95 / math.sqrt(2 * 0.975 * 0.025) * 0.02 / math.sqrt(3)
SYM_P = 1 - math.sqrt(12 / 14)
# asymmetric units: -0.02, 0.04: n 2, mean 0.01, sd = sqrt(2 * 0.03^2) = 0.0424264, se = 0.03
#   t(0.975, 1) = tan(0.475 pi) = 12.7062047 -> half = 0.3811861
#   t = 0.01 / 0.03 = 1/3; df 1 (Cauchy): p = 1 - (2 / pi) atan(1/3) = 0.7951672
ASY_HALF = math.tan(0.475 * math.pi) * 0.03
ASY_P = 1 - 2 / math.pi * math.atan(1 / 3)


def _check_symmetric(line):
    assert line["n"] == 3 and line["wins"] == 3
    assert line["mean"] == pytest.approx(0.04)
    assert line["sd"] == pytest.approx(0.02)
    assert (line["low"], line["high"]) == pytest.approx((0.04 - SYM_HALF, 0.04 + SYM_HALF))
    assert line["p_value"] == pytest.approx(SYM_P)


def test_reference_values_against_scipy():
    # the hand-worked constants above, checked once against scipy's t-test
    sym = sps.ttest_1samp([0.02, 0.06, 0.04], 0.0)
    assert sym.pvalue == pytest.approx(SYM_P)
    assert (sym.confidence_interval(0.95).low, sym.confidence_interval(0.95).high) == \
        pytest.approx((0.04 - SYM_HALF, 0.04 + SYM_HALF))
    asy = sps.ttest_1samp([-0.02, 0.04], 0.0)
    assert asy.pvalue == pytest.approx(ASY_P)
    assert asy.confidence_interval(0.95).low == pytest.approx(0.01 - ASY_HALF)


def test_paired_units_per_paradigm_in_order_of_appearance():
    out = paired_units(_teacher_rows(), column="method", reference="brcd", others=["kd"],
                       unit=["teacher_seed"], over=["seed"])
    assert list(out.columns) == COLUMNS
    assert out["compared"].tolist() == ["kd", "kd"]
    assert out["paradigm"].tolist() == ["symmetric", "asymmetric"]
    _check_symmetric(out.iloc[0])
    asy = out.iloc[1]
    assert asy["n"] == 2 and asy["wins"] == 1
    assert asy["mean"] == pytest.approx(0.01)
    assert asy["sd"] == pytest.approx(math.sqrt(2) * 0.03)
    assert (asy["low"], asy["high"]) == pytest.approx((0.01 - ASY_HALF, 0.01 + ASY_HALF))
    assert asy["p_value"] == pytest.approx(ASY_P)


def test_paired_units_label_names_the_comparison():
    out = paired_units(_teacher_rows(), column="method", reference="brcd", others=["kd"],
                       unit=["teacher_seed"], over=["seed"], label=lambda name: f"BRCD - {name}")
    assert out["compared"].tolist() == ["BRCD - kd", "BRCD - kd"]


def test_paired_units_without_groups():
    rows = _teacher_rows()
    out = paired_units(rows[rows["paradigm"] == "symmetric"], column="method", reference="brcd",
                       others=["kd"], unit=["teacher_seed"], over=["seed"], by=())
    assert list(out.columns) == [c for c in COLUMNS if c != "paradigm"]
    assert len(out) == 1 and out.loc[0, "compared"] == "kd"
    _check_symmetric(out.iloc[0])

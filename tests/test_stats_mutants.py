"""Tests aimed at the mutants of ``brcd_lib/reporting/stats.py`` that survived ``make mutation``:
``Paired.format`` and ``Paired.interval`` (no other fast test calls them), the raw verdict at its
boundaries (``n == 2``, ``n == 1`` with a finite interval, ``high == threshold``) and
``paired_units`` (group order, group keys, incomplete units, the column names, ``by=()``).

Every expected value is worked by hand in a comment (the closed forms of Student's t with 1 and
2 degrees of freedom) or by reference code here (scipy's t quantiles and ``ttest_1samp``), never
read back from brcd_lib."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.optimize import brentq

from brcd_lib.reporting.stats import (Paired, holm, interval, paired, paired_against,
                                      paired_by_length, paired_frame, paired_units, seeds_needed,
                                      smallest_detectable_effect, unit_differences, verdict,
                                      verdict4)

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


# ---------------------------------------------------------------- paired: every field


def test_paired_drops_missing_values():
    # None, NaN and inf are left out: the same result as the finite values alone
    res = paired([0.02, None, 0.06, float("nan"), 0.04, float("inf")])
    assert res.n == 3 and res.mean == pytest.approx(0.04) and res.sd == pytest.approx(0.02)


def test_paired_without_pairs_every_field():
    res = paired([], null=0.5)
    assert res.n == 0 and res.wins == 0 and res.null == 0.5
    assert all(math.isnan(v) for v in (res.mean, res.low, res.high, res.p_value, res.sd))
    res = paired([None, float("nan")])
    assert res.n == 0 and res.wins == 0 and res.null == 0.0 and math.isnan(res.mean)


def test_paired_one_unit_every_field():
    res = paired([0.5], null=0.25)
    assert (res.n, res.mean, res.wins, res.null) == (1, 0.5, 1, 0.25)
    assert all(math.isnan(v) for v in (res.low, res.high, res.p_value, res.sd))
    assert paired([0.25], null=0.25).wins == 0  # a tie is not a win


def test_paired_three_units_every_field():
    # d = 0.02, 0.06, 0.04: mean 0.04, sd 0.02 (see SYM_HALF / SYM_P below)
    res = paired([0.02, 0.06, 0.04])
    assert (res.n, res.wins, res.null) == (3, 3, 0.0)
    assert res.mean == pytest.approx(0.04) and res.sd == pytest.approx(0.02)
    assert (res.low, res.high) == pytest.approx((0.04 - SYM_HALF, 0.04 + SYM_HALF))
    assert res.p_value == pytest.approx(SYM_P)


def test_paired_against_a_nonzero_null():
    # null 0.01: t = |0.04 - 0.01| / (0.02 / sqrt 3) = 1.5 sqrt 3 = 2.5980762, df 2:
    # p = 1 - t / sqrt(2 + t^2) = 1 - 2.5980762 / 2.9580399 = 1 - 0.8783101 = 0.1216899; the
    # interval is still the interval of the mean (the null does not move it); wins: d > 0.01 -> 3; null 0.03 -> 2
    res = paired([0.02, 0.06, 0.04], null=0.01)
    t = 1.5 * math.sqrt(3)
    assert res.p_value == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert res.p_value == pytest.approx(0.1216899, abs=1e-7)
    assert (res.low, res.high) == pytest.approx((0.04 - SYM_HALF, 0.04 + SYM_HALF))
    assert res.null == 0.01 and res.wins == 3
    assert paired([0.02, 0.06, 0.04], null=0.03).wins == 2


def test_paired_two_units_every_field():
    # d = -0.02, 0.04 (the asymmetric units above): df 1
    res = paired([-0.02, 0.04])
    assert (res.n, res.wins) == (2, 1)
    assert res.mean == pytest.approx(0.01) and res.sd == pytest.approx(math.sqrt(2) * 0.03)
    assert (res.low, res.high) == pytest.approx((0.01 - ASY_HALF, 0.01 + ASY_HALF))
    assert res.p_value == pytest.approx(ASY_P)


def test_paired_zero_spread():
    # 0.25 is exact in binary: mean 0.25, sd 0 exactly; p 0 when the mean is not the null, 1 when
    # it is
    res = paired([0.25, 0.25, 0.25])
    assert (res.n, res.mean, res.low, res.high, res.p_value, res.wins, res.sd, res.null) == \
        (3, 0.25, 0.25, 0.25, 0.0, 3, 0.0, 0.0)
    res = paired([0.25, 0.25], null=0.25)
    assert (res.n, res.mean, res.low, res.high, res.p_value, res.wins, res.sd, res.null) == \
        (2, 0.25, 0.25, 0.25, 1.0, 0, 0.0, 0.25)


def test_paired_computes_in_double_precision():
    # float32 inputs: 2^24 + 1 + 1 = 16777218 in float64 (16777216 in float32), mean 16777218 / 3
    res = paired(np.array([2.0 ** 24, 1.0, 1.0], dtype=np.float32))
    assert res.mean == 16777218 / 3


# ---------------------------------------------------------------- interval


def test_interval_boundaries():
    lo, hi = interval(0.5, 0.1, 1)
    assert math.isnan(lo) and math.isnan(hi)
    for mean, sd in ((0.5, NAN), (0.5, math.inf), (NAN, 0.1), (math.inf, 0.1)):
        lo, hi = interval(mean, sd, 5)
        assert math.isnan(lo) and math.isnan(hi)
    assert interval(0.5, 0.0, 4) == (0.5, 0.5)
    # n = 2, sd 1: half = tan(0.475 pi) * 1 / sqrt 2 = 8.9846...
    half = math.tan(0.475 * math.pi) / math.sqrt(2)
    assert interval(0.5, 1.0, 2) == pytest.approx((0.5 - half, 0.5 + half))
    # n = 3, sd 1, 90 %: t(0.95, 2) = 0.9 / sqrt(2 * 0.95 * 0.05) = 2.9199856; / sqrt 3
    half = 0.9 / math.sqrt(2 * 0.95 * 0.05) / math.sqrt(3)
    assert interval(0.0, 1.0, 3, 0.90) == pytest.approx((-half, half))


# ---------------------------------------------------------------- verdict4 at its boundaries


def test_verdict4_needs_a_finite_interval():
    assert verdict4(NAN, -0.5) == "inconclusive"
    assert verdict4(0.5, math.inf) == "inconclusive"
    assert verdict4(-math.inf, -0.5, margin=1.0) == "inconclusive"
    assert verdict4(NAN, NAN, margin=1.0) == "inconclusive"


def test_verdict4_touching_the_threshold():
    assert verdict4(0.0, 0.04) == "inconclusive"
    assert verdict4(0.5, 0.6, threshold=0.5) == "inconclusive"
    assert verdict4(-0.04, 0.0) == "inconclusive"
    assert verdict4(0.4, 0.5, threshold=0.5) == "inconclusive"
    # touching the threshold is no direction: inside the band, that is equivalence
    assert verdict4(0.5, 0.6, threshold=0.5, margin=0.25) == "equivalent"
    assert verdict4(0.25, 0.5, threshold=0.5, margin=0.5) == "equivalent"
    assert verdict4(0.5000001, 0.6, threshold=0.5) == "supported"
    assert verdict4(0.4, 0.4999999, threshold=0.5) == "contradicted"


def test_verdict4_equivalence_band():
    # threshold 0.5, margin 0.25: the band is (0.25, 0.75), open at both ends (exact in binary)
    assert verdict4(0.4, 0.6, threshold=0.5, margin=0.25) == "equivalent"
    assert verdict4(0.25, 0.6, threshold=0.5, margin=0.25) == "inconclusive"  # low on the edge
    assert verdict4(0.4, 0.75, threshold=0.5, margin=0.25) == "inconclusive"  # high on the edge
    assert verdict4(0.2, 0.6, threshold=0.5, margin=0.25) == "inconclusive"   # low outside
    assert verdict4(0.4, 0.8, threshold=0.5, margin=0.25) == "inconclusive"   # high outside
    assert verdict4(-0.02, 0.005, margin=0.01) == "inconclusive"
    assert verdict4(-0.005, 0.02, margin=0.01) == "inconclusive"
    assert verdict4(-0.02, 0.03, margin=0.01) == "inconclusive"
    assert verdict4(-0.004, 0.006, margin=None) == "inconclusive"
    assert verdict4(-0.004, 0.006, margin=0.01) == "equivalent"
    assert verdict4(0.1, 0.2) == "supported" and verdict4(-0.2, -0.1) == "contradicted"


# ---------------------------------------------------------------- Holm


def _holm_reference(p, alpha):
    """Holm's step-down written out: adjusted p (running max of min(1, (m - r + 1) p_(r))),
    rejected, and the level of each line."""
    p = [float(x) for x in p]
    idx = [i for i, x in enumerate(p) if math.isfinite(x)]
    m = len(idx)
    order = sorted(idx, key=lambda i: (p[i], i))
    adjusted, rejected, levels = [NAN] * len(p), [False] * len(p), [NAN] * len(p)
    running, stop = 0.0, None
    for r, i in enumerate(order, start=1):
        running = max(running, min(1.0, (m - r + 1) * p[i]))
        adjusted[i] = running
        if stop is None and p[i] <= alpha / (m - r + 1):
            rejected[i], levels[i] = True, alpha / (m - r + 1)
        else:
            stop = r if stop is None else stop
            levels[i] = alpha / (m - stop + 1)
    return adjusted, rejected, levels


def _check_holm(p, alpha, adjusted, rejected, levels):
    got = holm(p, alpha=alpha)
    assert got[0].tolist() == pytest.approx(adjusted, nan_ok=True)
    assert got[1].tolist() == rejected
    assert got[2].tolist() == pytest.approx(levels, nan_ok=True)
    ref = _holm_reference(p, alpha)
    assert ref[0] == pytest.approx(adjusted, nan_ok=True) and ref[1] == rejected
    assert ref[2] == pytest.approx(levels, nan_ok=True)


def test_holm_rejects_at_the_step_exactly():
    # alpha 0.5, p = 0.25, 0.5 (exact in binary): steps 0.5 / 2 = 0.25 and 0.5 / 1 = 0.5, both
    # reached with equality -> both rejected; adjusted 2 * 0.25 = 0.5, then max(0.5, 0.5) = 0.5
    _check_holm([0.5, 0.25], 0.5, [0.5, 0.5], [True, True], [0.5, 0.25])


def test_holm_stops_at_the_first_line_not_rejected():
    # alpha 0.05, m 4, sorted p 0.001, 0.03, 0.035, 0.04: steps 0.0125 (reject), 0.016667
    # (0.03 > it: stop at rank 2); ranks 2..4 read at 0.05 / (4 - 2 + 1) = 0.016667 though
    # 0.04 < 0.05 (its own step); adjusted: 0.004, 0.09, 0.07 -> 0.09, 0.04 -> 0.09
    _check_holm([0.04, 0.001, 0.035, 0.03], 0.05, [0.09, 0.004, 0.09, 0.09],
                [False, True, False, False], [0.05 / 3, 0.0125, 0.05 / 3, 0.05 / 3])


def test_holm_nothing_rejected_and_the_cap_at_one():
    # m 3, sorted 0.4, 0.6, 0.9: 3 * 0.4 = 1.2 -> 1; 2 * 0.6 = 1.2 -> 1; 0.9 -> max 1
    # 0.4 > 0.05 / 3: stop at rank 1: every line at 0.05 / 3
    _check_holm([0.9, 0.4, 0.6], 0.05, [1.0, 1.0, 1.0], [False, False, False], [0.05 / 3] * 3)


def test_holm_left_out_lines_and_a_family_of_one():
    # NaN lines are not tested: m counts the finite ones only (here 2: 0.01 * 2 = 0.02)
    _check_holm([NAN, 0.01, 0.02, NAN], 0.05, [NAN, 0.02, 0.02, NAN],
                [False, True, True, False], [NAN, 0.025, 0.05, NAN])
    _check_holm([0.03], 0.05, [0.03], [True], [0.05])
    _check_holm([0.07], 0.05, [0.07], [False], [0.05])
    adjusted, rejected, levels = holm([NAN, NAN])
    assert np.isnan(adjusted).all() and not rejected.any() and np.isnan(levels).all()
    assert adjusted.shape == rejected.shape == levels.shape == (2,)
    assert holm([])[0].shape == (0,)


def test_holm_ties_keep_the_order_of_the_lines():
    # equal p: the earlier line takes the smaller rank (a stable sort). 17 lines (numpy's default
    # sort of more than 16 items is not stable): p 0.001 at lines 3..8 (ranks 1..6), 0.002 at
    # lines 0..2 and 9..16 (ranks 7..17); every step 0.05 / (17 - r + 1) >= 0.05 / 17 = 0.00294
    # > 0.002: all rejected, line of rank r at 0.05 / (18 - r); adjusted: 17 * 0.001 = 0.017 for
    # the first group, 11 * 0.002 = 0.022 for the second (the later, smaller products lose to
    # the running max)
    p = [0.002] * 3 + [0.001] * 6 + [0.002] * 8
    rank = {i: r for r, i in enumerate([3, 4, 5, 6, 7, 8, 0, 1, 2] + list(range(9, 17)), start=1)}
    levels = [0.05 / (18 - rank[i]) for i in range(17)]
    adjusted = [0.017 if x == 0.001 else 0.022 for x in p]
    _check_holm(p, 0.05, adjusted, [True] * 17, levels)


def test_holm_types():
    # a list of Python numbers, None for a line not tested (read as NaN); rejected is a boolean
    # mask
    adjusted, rejected, levels = holm([1, 0, None])
    assert adjusted[:2].tolist() == [1.0, 0.0] and math.isnan(adjusted[2])
    assert rejected.dtype == np.bool_ and rejected.tolist() == [False, True, False]
    assert levels[:2].tolist() == pytest.approx([0.05, 0.025]) and math.isnan(levels[2])


# ---------------------------------------------------------------- smallest detectable effect


def _power(effect, sd, n, alpha):
    """Power of the two-sided paired t-test at level alpha for a true mean ``effect``: both
    tails of the noncentral t with df n - 1 and noncentrality effect sqrt(n) / sd."""
    df, nc = n - 1, effect * math.sqrt(n) / sd
    crit = sps.t.ppf(1 - alpha / 2, df)
    lower = float(sps.nct.cdf(-crit, df, nc))  # scipy gives NaN where this tail underflows (~0)
    return float(sps.nct.sf(crit, df, nc)) + (0.0 if math.isnan(lower) else lower)


@pytest.mark.parametrize("sd, n, alpha, power", [
    (0.02, 5, 0.05, 0.8),    # the kit's defaults
    (1.0, 2, 0.5, 0.8),      # df 1, crit = tan(0.25 pi) = 1: the wrong-sign tail weighs here
    (1.0, 2, 0.05, 0.95),    # df 1: power 0.95 needs more than crit + 10 (the bracket doubles)
    (0.5, 3, 0.1, 0.9),
])
def test_smallest_detectable_effect_has_the_power_asked(sd, n, alpha, power):
    effect = smallest_detectable_effect(sd, n, alpha=alpha, power=power)
    assert effect > 0
    assert _power(effect, sd, n, alpha) == pytest.approx(power, abs=1e-8)


def test_smallest_detectable_effect_defaults_and_scale():
    # defaults alpha 0.05, power 0.8; linear in sd, and for many units close to the normal
    # approximation (z(0.975) + z(0.8)) sd / sqrt(n) = (1.959964 + 0.841621) sd / sqrt(n)
    effect = smallest_detectable_effect(0.02, 5)
    assert _power(effect, 0.02, 5, 0.05) == pytest.approx(0.8, abs=1e-8)
    assert smallest_detectable_effect(0.04, 5) == pytest.approx(2 * effect, rel=1e-9)
    assert smallest_detectable_effect(1.0, 2000) == pytest.approx(2.801585 / math.sqrt(2000),
                                                                  rel=2e-3)


def test_smallest_detectable_effect_boundaries():
    for sd, n, kw in ((1.0, 1, {}), (1.0, 0, {}), (NAN, 5, {}), (math.inf, 5, {}),
                      (1.0, 5, {"alpha": 0.0}), (1.0, 5, {"alpha": 1.0}),
                      (1.0, 5, {"alpha": 1.5}), (1.0, 5, {"alpha": -0.1})):
        assert math.isnan(smallest_detectable_effect(sd, n, **kw)), (sd, n, kw)
    assert smallest_detectable_effect(0.0, 5) == 0.0
    assert smallest_detectable_effect(0.0, 2) == 0.0
    assert math.isfinite(smallest_detectable_effect(1.0, 2))  # two units are enough
    assert smallest_detectable_effect(1.0, 5) > 0.5


# ---------------------------------------------------------------- seeds needed


def _sde_replica(sd, n, alpha, power=0.8):
    """The computation of smallest_detectable_effect step by step (same scipy calls, bracket and
    tolerance), for a margin that sits exactly on a unit count; checked by the power test."""
    df = n - 1
    crit = float(sps.t.ppf(1.0 - alpha / 2.0, df))

    def shortfall(nc):
        lower = float(sps.nct.cdf(-crit, df, nc))
        upper = float(sps.nct.sf(crit, df, nc))
        return ((upper if math.isfinite(upper) else 1.0) + (lower if math.isfinite(lower) else 0.0)
                - power)

    high = crit + 10.0
    while shortfall(high) < 0.0:
        high *= 2.0
    return brentq(shortfall, 0.0, high, xtol=1e-10) * sd / math.sqrt(n)


def test_sde_replica_has_the_power_asked():
    assert _power(_sde_replica(1.0, 7, 0.05), 1.0, 7, 0.05) == pytest.approx(0.8, abs=1e-8)


def _first_n(sd, margin, alpha=0.05, power=0.8):
    n = 2
    while _sde_replica(sd, n, alpha, power) > margin:
        n += 1
    return n


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 9, 23])
def test_seeds_needed_on_the_exact_margin(n):
    # the margin equal to the effect n units detect: n fits (<=), n - 1 does not; a hair
    # below it, n + 1 units are needed
    margin = _sde_replica(1.0, n, 0.05)
    got = seeds_needed(1.0, margin, alpha=0.05)
    assert got == n and isinstance(got, int)
    assert seeds_needed(1.0, np.nextafter(margin, 0.0), alpha=0.05) == n + 1


def test_seeds_needed_alpha_and_power_are_passed_on():
    margin = _sde_replica(0.5, 6, 0.1, 0.9)
    assert seeds_needed(0.5, margin, alpha=0.1, power=0.9) == 6
    assert _first_n(0.5, margin) != 6  # the defaults would give another count
    # df 1, power 0.95: the bracket of the root doubles once (see the power test)
    margin = _sde_replica(1.0, 2, 0.05, 0.95)
    assert seeds_needed(1.0, margin, alpha=0.05, power=0.95) == 2
    assert seeds_needed(1.0, np.nextafter(margin, 0.0), alpha=0.05, power=0.95) == 3


def test_seeds_needed_boundaries():
    assert seeds_needed(NAN, 0.1) is None
    assert seeds_needed(math.inf, 0.1) is None
    assert seeds_needed(1.0, 0.0) is None
    assert seeds_needed(0.0, 0.0) is None  # no margin: nothing to reach, even with no spread
    assert seeds_needed(1.0, -0.1) is None
    assert seeds_needed(0.0, 0.1) == 2     # no spread: the fewest units with an interval
    assert seeds_needed(0.0, 5.0) == 2
    # margin above 1 (a difference in other units)
    margin = _sde_replica(2.0, 4, 0.05)
    assert margin > 1 and seeds_needed(2.0, margin, alpha=0.05) == 4


def test_seeds_needed_limit():
    margin = _sde_replica(1.0, 7, 0.05)
    assert seeds_needed(1.0, margin, alpha=0.05, limit=8) == 7   # the bracket reaches 8 = limit
    assert seeds_needed(1.0, margin, alpha=0.05, limit=4) is None


# ---------------------------------------------------------------- frames of paired differences

# kd 0.5 everywhere; brcd 0.5 + gain (seed 0, 1, 2):
#   symmetric  32: 0.01 0.03 0.05 -> n 3, mean 0.03      16: 0.03 0.05 0.07 -> n 3, mean 0.05
#   asymmetric 32: -0.02 0.04 NaN -> n 2, mean 0.01      16: 0.00 0.02 0.04 -> n 3, mean 0.02
# a failed brcd run (status "failed", value 0.9) at symmetric 32 seed 3, whose kd run is ok;
# a method "other" at symmetric 64 only.
GAINS = {("symmetric", 32): [0.01, 0.03, 0.05], ("symmetric", 16): [0.03, 0.05, 0.07],
         ("asymmetric", 32): [-0.02, 0.04, NAN], ("asymmetric", 16): [0.00, 0.02, 0.04]}


def _frame_rows():
    rows = []
    for (paradigm, bits), gains in GAINS.items():
        for seed, g in enumerate(gains):
            base = {"seed": seed, "bits": bits, "paradigm": paradigm, "status": "ok"}
            rows += [{**base, "method": "kd", "value": 0.5},
                     {**base, "method": "brcd", "value": 0.5 + g}]
    rows += [{"seed": 3, "bits": 32, "paradigm": "symmetric", "status": "failed",
              "method": "brcd", "value": 0.9},
             {"seed": 3, "bits": 32, "paradigm": "symmetric", "status": "ok", "method": "kd",
              "value": 0.5}]
    rows += [{"seed": s, "bits": 64, "paradigm": "symmetric", "status": "ok", "method": "other",
              "value": 0.4} for s in range(3)]
    return pd.DataFrame(rows)


def _expect(line, d):
    """The line's statistics against scipy's one-sample t-test of the differences d."""
    ref = sps.ttest_1samp(d, 0.0)
    ci = ref.confidence_interval(0.95)
    assert line["n"] == len(d) and line["wins"] == sum(x > 0 for x in d)
    assert line["mean"] == pytest.approx(np.mean(d))
    assert line["sd"] == pytest.approx(np.std(d, ddof=1))
    assert (line["low"], line["high"]) == pytest.approx((ci.low, ci.high))
    assert line["p_value"] == pytest.approx(ref.pvalue)


STAT_COLUMNS = ["n", "mean", "low", "high", "p_value", "wins", "sd"]


def test_paired_frame_by_groups():
    rows = _frame_rows()
    rows = rows[rows["status"] == "ok"]
    out = paired_frame(rows, column="method", a="brcd", b="kd", pair_on=["seed"],
                       by=["paradigm", "bits"])
    assert list(out.columns) == ["paradigm", "bits"] + STAT_COLUMNS
    # one line per group holding a or b (not symmetric 64: only "other" runs there), sorted
    assert list(zip(out["paradigm"], out["bits"])) == [
        ("asymmetric", 16), ("asymmetric", 32), ("symmetric", 16), ("symmetric", 32)]
    _expect(out.iloc[0], [0.00, 0.02, 0.04])
    _expect(out.iloc[1], [-0.02, 0.04])
    _expect(out.iloc[2], [0.03, 0.05, 0.07])
    _expect(out.iloc[3], [0.01, 0.03, 0.05])


def test_paired_frame_without_groups_and_a_missing_side():
    rows = _frame_rows()
    sub = rows[(rows["paradigm"] == "symmetric") & (rows["bits"] == 16)]
    out = paired_frame(sub, column="method", a="brcd", b="kd", pair_on=["seed"])
    assert list(out.columns) == STAT_COLUMNS and len(out) == 1
    _expect(out.iloc[0], [0.03, 0.05, 0.07])
    # b is absent from a group: that group's line has no pairs
    only_a = rows[(rows["method"] == "brcd") & (rows["status"] == "ok")]
    for a, b in (("brcd", "kd"), ("kd", "brcd")):
        out = paired_frame(pd.concat([only_a, rows[rows["method"] == "other"]]), column="method",
                           a=a, b=b, pair_on=["seed"], by=["paradigm"])
        assert out["n"].tolist() == [0, 0]


def test_unit_differences_complete_and_not():
    rows = _frame_rows()
    asym = rows[rows["paradigm"] == "asymmetric"]
    # per-seed means over the lengths: seed 0 (-0.02 + 0.00) / 2 = -0.01, seed 1 (0.04 + 0.02)
    # / 2 = 0.03; seed 2 has 16 only (32 is NaN): dropped when complete, 0.04 when not
    got = unit_differences(asym, column="method", a="brcd", b="kd")
    assert got.to_dict() == pytest.approx({0: -0.01, 1: 0.03})
    got = unit_differences(asym, column="method", a="brcd", b="kd", complete=False)
    assert got.to_dict() == pytest.approx({0: -0.01, 1: 0.03, 2: 0.04})
    # the failed run is left out (symmetric seed 3 has no brcd run that counts)
    sym = rows[rows["paradigm"] == "symmetric"]
    got = unit_differences(sym, column="method", a="brcd", b="kd")
    assert got.to_dict() == pytest.approx({0: 0.02, 1: 0.04, 2: 0.06})
    # without a status column every row counts
    got = unit_differences(sym[sym["status"] == "ok"].drop(columns="status"), column="method",
                           a="brcd", b="kd")
    assert got.to_dict() == pytest.approx({0: 0.02, 1: 0.04, 2: 0.06})
    # over nothing: one difference per (unit) key, no averaging
    one = sym[sym["bits"] == 16]
    got = unit_differences(one, column="method", a="brcd", b="kd", over=())
    assert got.to_dict() == pytest.approx({0: 0.03, 1: 0.05, 2: 0.07})
    # a side missing: empty
    assert unit_differences(one, column="method", a="brcd", b="none").empty
    assert unit_differences(one, column="method", a="none", b="kd").empty


def test_paired_against_stacks_the_comparisons():
    rows = _frame_rows()
    rows.loc[rows["method"] == "other", "method"] = "none"  # "none": only at symmetric 64
    rows = pd.concat([rows, pd.DataFrame([
        {"seed": s, "bits": b, "paradigm": p, "status": "ok", "method": "none", "value": 0.4}
        for s in range(3) for b in (16, 32) for p in ("symmetric", "asymmetric")])])
    out = paired_against(rows, column="method", reference="brcd", others=["kd", "none"],
                         pair_on=["seed", "bits"], label=str.upper)
    assert list(out.columns) == ["compared", "paradigm"] + STAT_COLUMNS
    assert out.index.tolist() == [0, 1, 2, 3]
    assert out["compared"].tolist() == ["KD", "KD", "NONE", "NONE"]
    assert out["paradigm"].tolist() == ["asymmetric", "symmetric"] * 2
    # brcd - kd over (seed, bits) pairs, the failed run left out
    _expect(out.iloc[0], [-0.02, 0.04, 0.00, 0.02, 0.04])
    _expect(out.iloc[1], [0.01, 0.03, 0.05, 0.03, 0.05, 0.07])
    # brcd - none = 0.1 + gain
    _expect(out.iloc[2], [0.08, 0.14, 0.10, 0.12, 0.14])
    assert paired_against(rows, column="method", reference="brcd", others=[],
                          pair_on=["seed"]).empty


def test_paired_by_length_per_length_and_pooled():
    rows = _frame_rows()
    out = paired_by_length(rows, column="method", reference="brcd", others=["kd"],
                           label=lambda n: f"vs {n}")
    assert list(out.columns) == ["compared", "paradigm", "bits"] + STAT_COLUMNS
    assert out.index.tolist() == list(range(6))
    assert (out["compared"] == "vs kd").all()
    assert list(zip(out["paradigm"], out["bits"])) == [
        ("asymmetric", "16"), ("asymmetric", "32"), ("symmetric", "16"), ("symmetric", "32"),
        ("symmetric", "pooled"), ("asymmetric", "pooled")]  # pooled: paradigms as they come
    _expect(out.iloc[3], [0.01, 0.03, 0.05])          # the failed run left out
    _expect(out.iloc[4], [0.02, 0.04, 0.06])          # per-seed means (0.01 + 0.03) / 2, ...
    _expect(out.iloc[5], [-0.01, 0.03])               # seed 2 lacks a length: left out
    # one length only: no pooled line
    one = rows[rows["bits"] == 16]
    out = paired_by_length(one, column="method", reference="brcd", others=["kd"])
    assert out["bits"].tolist() == ["16", "16"] and out["compared"].tolist() == ["kd", "kd"]
    assert paired_by_length(rows, column="method", reference="brcd", others=[]).empty


def test_paired_by_length_other_unit():
    rows = _frame_rows().rename(columns={"seed": "teacher_seed"})
    out = paired_by_length(rows, column="method", reference="brcd", others=["kd"],
                           unit="teacher_seed")
    _expect(out.iloc[4], [0.02, 0.04, 0.06])
    _expect(out.iloc[0], [0.00, 0.02, 0.04])


def test_paired_by_length_two_lengths_and_two_comparisons():
    rows = _frame_rows()
    rows = rows[rows["method"] != "other"]  # exactly two lengths, 16 and 32: pooled lines
    assert rows["bits"].nunique() == 2
    out = paired_by_length(rows, column="method", reference="brcd", others=["kd", "kd2"])
    # kd2: absent, its lines have no pairs; the stacked frame is numbered 0..11
    assert out.index.tolist() == list(range(12))
    assert out["bits"].tolist() == ["16", "32", "16", "32", "pooled", "pooled"] * 2
    assert out["n"].tolist()[:6] == [3, 2, 3, 3, 3, 2] and out["n"].tolist()[6:] == [0] * 6
    _expect(out.iloc[4], [0.02, 0.04, 0.06])


def test_unit_differences_empty_is_a_float_series():
    rows = _frame_rows()
    got = unit_differences(rows, column="method", a="brcd", b="nothing")
    assert got.empty and got.dtype == np.float64

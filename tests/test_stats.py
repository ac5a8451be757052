"""Paired intervals against scipy's one-sample t-test, Holm's step-down against a hand-worked
example, the four verdicts at their boundaries, the smallest detectable effect against a
simulation and the normal approximation, and the seed as the unit."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from brcd_lib.reporting.stats import (Paired, holm, interval, paired, paired_by_length,
                                      paired_frame, paired_units, seeds_needed,
                                      smallest_detectable_effect, unit_differences, verdict,
                                      verdict4)


@pytest.mark.parametrize("n", [2, 3, 5, 12])
def test_interval_and_p_value_match_scipy(n):
    rng = np.random.default_rng(n)
    d = rng.normal(0.01, 0.02, size=n)
    ref = sps.ttest_1samp(d, 0.0)
    ci = ref.confidence_interval(0.95)
    res = paired(d)
    assert res.n == n and res.mean == pytest.approx(d.mean())
    assert res.low == pytest.approx(ci.low) and res.high == pytest.approx(ci.high)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.wins == int((d > 0).sum())
    assert res.sd == pytest.approx(d.std(ddof=1))
    shifted = sps.ttest_1samp(d, 0.5)  # the p-value of "mean = null" for a threshold claim
    assert paired(d, null=0.5).p_value == pytest.approx(shifted.pvalue)
    wide = ref.confidence_interval(0.99)
    assert interval(res.mean, res.sd, n, 0.99) == pytest.approx((wide.low, wide.high))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=2, max_size=9))
def test_interval_contains_the_mean(d):
    res = paired(d)
    assert res.low <= res.mean + 1e-12 and res.mean <= res.high + 1e-12


def test_degenerate_inputs():
    assert paired([]).n == 0 and verdict(paired([])) == "inconclusive"
    one = paired([0.5])
    assert one.n == 1 and math.isnan(one.low) and verdict(one) == "inconclusive"
    same = paired([0.01, 0.01, 0.01])  # zero spread: the interval is the point
    assert same.low == same.high == pytest.approx(0.01) and verdict(same) == "supported"
    assert paired([0.1, float("nan"), 0.2]).n == 2  # failed runs leave their pair out
    assert math.isnan(smallest_detectable_effect(0.01, 1))
    assert smallest_detectable_effect(0.0, 5) == 0.0


def test_raw_verdict_rule_at_the_boundaries():
    assert verdict(Paired(5, 0.02, 0.001, 0.04, 0.03, 4)) == "supported"
    assert verdict(Paired(5, -0.02, -0.04, -0.001, 0.03, 1)) == "contradicted"
    assert verdict(Paired(5, 0.01, -0.001, 0.02, 0.1, 3)) == "inconclusive"
    assert verdict(Paired(5, 0.01, 0.0, 0.02, 0.05, 3)) == "inconclusive"  # touching 0
    assert verdict(Paired(5, 0.7, 0.6, 0.8, 0.0, 5), threshold=0.5) == "supported"


def test_four_verdicts_at_their_boundaries():
    assert verdict4(0.001, 0.04) == "supported"
    assert verdict4(-0.04, -0.001) == "contradicted"
    assert verdict4(-0.004, 0.006, margin=0.01) == "equivalent"
    assert verdict4(-0.004, 0.006, margin=None) == "inconclusive"  # no margin, no equivalence
    assert verdict4(-0.004, 0.010, margin=0.01) == "inconclusive"  # touching the margin
    assert verdict4(-0.02, 0.03, margin=0.01) == "inconclusive"
    assert verdict4(0.002, 0.008, margin=0.01) == "supported"  # a direction wins over equivalence
    assert verdict4(0.45, 0.58, threshold=0.5, margin=0.1) == "equivalent"
    assert verdict4(float("nan"), float("nan")) == "inconclusive"


def test_holm_against_a_hand_worked_example():
    # sorted p: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1, raised to 0.06);
    # steps 0.0125, 0.01667 reject; 0.03 > 0.025 stops: ranks 3 and 4 are read at 0.05 / 2
    adjusted, rejected, levels = holm([0.01, 0.04, 0.03, 0.005, float("nan")])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert list(rejected) == [True, False, False, True, False]
    assert levels[:4] == pytest.approx([0.05 / 3, 0.025, 0.025, 0.0125])
    assert math.isnan(adjusted[4]) and math.isnan(levels[4])  # left out of the family
    empty = holm([])
    assert all(len(a) == 0 for a in empty)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(-0.05, 0.2, allow_nan=False), min_size=3, max_size=6),
                min_size=1, max_size=8))
def test_adjusted_interval_excludes_zero_exactly_when_holm_rejects(groups):
    results = [paired(g) for g in groups]
    _, rejected, levels = holm([r.p_value for r in results])
    for r, rej, level in zip(results, rejected, levels):
        if not math.isfinite(level) or r.sd == 0:
            continue
        low, high = interval(r.mean, r.sd, r.n, 1 - level)
        excludes = low > 0 or high < 0
        if abs(r.p_value - level) > 1e-9:  # away from the exact boundary
            assert excludes == bool(rej)


def test_smallest_detectable_effect_has_80_percent_power_by_simulation():
    """20,000 simulated paired t-tests at n = 5 with the true difference set to the SDE reject
    about 80 % of the time (binomial SD 0.3 %)."""
    sd, n = 0.02, 5
    effect = smallest_detectable_effect(sd, n)
    rng = np.random.default_rng(0)
    d = rng.normal(effect, sd, size=(20_000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    crit = sps.t.ppf(0.975, n - 1)
    assert np.mean(np.abs(t) > crit) == pytest.approx(0.80, abs=0.012)


def test_smallest_detectable_effect_tends_to_the_normal_approximation():
    # (z_0.975 + z_0.8) = 1.95996 + 0.84162 = 2.80158 standard errors for a large sample
    assert smallest_detectable_effect(1.0, 20_000) * math.sqrt(20_000) == pytest.approx(2.80158, rel=2e-3)
    assert smallest_detectable_effect(1.0, 5, alpha=0.001) > smallest_detectable_effect(1.0, 5)


@pytest.mark.parametrize("sd,margin", [(0.0143, 0.01), (0.028, 0.01), (0.0045, 0.01)])
def test_seeds_needed_is_the_first_n_that_reaches_the_margin(sd, margin):
    n = seeds_needed(sd, margin)
    assert smallest_detectable_effect(sd, n) <= margin < smallest_detectable_effect(sd, n - 1)
    strict = seeds_needed(sd, margin, alpha=0.05 / 60)
    assert strict > n
    assert seeds_needed(0.0, 0.01) == 2 and seeds_needed(float("nan"), 0.01) is None
    # the limit is on the answer, not on the doubled bracket: an answer equal to the limit is
    # returned (not only powers of two), one above it is None
    assert seeds_needed(sd, margin, limit=n) == n
    assert seeds_needed(sd, margin, limit=n - 1) is None


def test_seeds_needed_at_a_limit_between_powers_of_two():
    # sd 0.0143, margin 0.01: 19 units (the smallest detectable effect at 18 / 19 units is
    # 0.01002 / 0.00972 by scipy's noncentral t, as the test above checks for any answer)
    assert seeds_needed(0.0143, 0.01) == 19
    assert seeds_needed(0.0143, 0.01, limit=19) == 19 and seeds_needed(0.0143, 0.01, limit=24) == 19
    assert seeds_needed(0.0143, 0.01, limit=18) is None and seeds_needed(0.0143, 0.01, limit=3) is None


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1])
def test_smallest_detectable_effect_needs_a_level_strictly_between_0_and_1(alpha):
    assert math.isnan(smallest_detectable_effect(0.01, 5, alpha=alpha))


def test_paired_frame_matches_by_keys_not_by_order():
    rows = pd.DataFrame([
        {"method": m, "seed": s, "bits": 16, "paradigm": "symmetric", "value": v}
        for m, s, v in [("a", 0, 0.5), ("a", 1, 0.6), ("a", 2, 0.7),
                        ("b", 2, 0.65), ("b", 0, 0.45), ("b", 1, 0.58), ("b", 3, 0.9)]
    ]).sample(frac=1.0, random_state=0)
    out = paired_frame(rows, column="method", a="a", b="b", pair_on=["bits", "seed"],
                       by=["paradigm"])
    assert out.loc[0, "n"] == 3  # seed 3 has no partner
    assert out.loc[0, "mean"] == pytest.approx(np.mean([0.05, 0.02, 0.05]))


def _rows_by_seed_and_length() -> pd.DataFrame:
    # difference a - b per (seed, bits): seed 0: +0.03, +0.01; seed 1: +0.05, -0.01; seed 2: 0.02,
    # 0.02; seed 3 has only 16 bits (left out of the pooled line)
    diffs = {(0, 16): 0.03, (0, 32): 0.01, (1, 16): 0.05, (1, 32): -0.01, (2, 16): 0.02,
             (2, 32): 0.02, (3, 16): 0.04}
    rows = []
    for (seed, bits), d in diffs.items():
        for p in ("symmetric", "asymmetric"):
            rows.append({"method": "b", "seed": seed, "bits": bits, "paradigm": p, "value": 0.5})
            rows.append({"method": "a", "seed": seed, "bits": bits, "paradigm": p, "value": 0.5 + d})
    return pd.DataFrame(rows)


def test_the_seed_is_the_unit_per_length_and_pooled():
    rows = _rows_by_seed_and_length()
    per_seed = unit_differences(rows[rows["paradigm"] == "symmetric"], column="method", a="a",
                                b="b", unit=["seed"], over=["bits"])
    assert per_seed.to_dict() == pytest.approx({0: 0.02, 1: 0.02, 2: 0.02})
    lines = paired_by_length(rows, column="method", reference="a", others=["b"])
    sym = lines[lines["paradigm"] == "symmetric"].set_index("bits")
    assert sym.loc["16", "n"] == 4 and sym.loc["32", "n"] == 3
    assert sym.loc["pooled", "n"] == 3 and sym.loc["pooled", "mean"] == pytest.approx(0.02)
    assert sym.loc["pooled", "low"] == pytest.approx(0.02)  # three identical per-seed means
    ref = sps.ttest_1samp([0.03, 0.05, 0.02, 0.04], 0.0).confidence_interval(0.95)
    assert (sym.loc["16", "low"], sym.loc["16", "high"]) == pytest.approx((ref.low, ref.high))


def test_the_teacher_seed_as_the_unit():
    rows = []
    for t, gains in {0: [0.01, 0.03], 1: [0.05, 0.07], 2: [0.00, 0.02]}.items():
        for s, g in enumerate(gains):
            rows += [{"method": "kd", "teacher_seed": t, "seed": s, "paradigm": "symmetric",
                      "bits": 32, "value": 0.5},
                     {"method": "brcd", "teacher_seed": t, "seed": s, "paradigm": "symmetric",
                      "bits": 32, "value": 0.5 + g}]
    out = paired_units(pd.DataFrame(rows), column="method", reference="brcd", others=["kd"],
                       unit=["teacher_seed"], over=["seed"])
    ref = sps.ttest_1samp([0.02, 0.06, 0.01], 0.0)
    assert out.loc[0, "n"] == 3 and out.loc[0, "mean"] == pytest.approx(0.03)
    assert out.loc[0, "p_value"] == pytest.approx(ref.pvalue)

"""Paired intervals against scipy's one-sample t-test, the verdict rule, and the claims table on
rows whose answer is known by construction."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from brcd_lib.reporting.claims import CLAIMS, claims_table, run_checks
from brcd_lib.reporting.stats import Paired, paired, paired_frame, verdict


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


def test_verdict_rule_at_the_boundaries():
    assert verdict(Paired(5, 0.02, 0.001, 0.04, 0.03, 4)) == "supported"
    assert verdict(Paired(5, -0.02, -0.04, -0.001, 0.03, 1)) == "contradicted"
    assert verdict(Paired(5, 0.01, -0.001, 0.02, 0.1, 3)) == "inconclusive"
    assert verdict(Paired(5, 0.01, 0.0, 0.02, 0.05, 3)) == "inconclusive"  # touching 0
    assert verdict(Paired(5, 0.7, 0.6, 0.8, 0.0, 5), threshold=0.5) == "supported"
    assert verdict(Paired(5, 0.45, 0.4, 0.49, 0.0, 5), threshold=0.5) == "contradicted"


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


def _main_rows(seeds=range(5), bits=(16, 32), effects=None) -> pd.DataFrame:
    """Main-table rows where BRCD = base + effect[method] + small noise, per seed."""
    rng = np.random.default_rng(0)
    effects = effects or {}
    rows = []
    for b in bits:
        for p in ("symmetric", "asymmetric"):
            rows.append({"method": "teacher", "bits": b, "seed": 0, "paradigm": p, "value": 0.9,
                         "status": "ok"})
            for s in seeds:
                base = 0.5 + 0.01 * s + (0.02 if b == 32 else 0.0)
                rows.append({"method": "brcd", "bits": b, "seed": s, "paradigm": p,
                             "value": base + 0.3, "status": "ok"})
                rows.append({"method": "none", "bits": b, "seed": s, "paradigm": p,
                             "value": base, "status": "ok"})
                for m, eff in effects.items():
                    rows.append({"method": m, "bits": b, "seed": s, "paradigm": p,
                                 "value": base + 0.3 - eff + rng.normal(0, 0.001),
                                 "status": "ok"})
    return pd.DataFrame(rows)


def test_claims_table_gives_the_verdicts_known_by_construction():
    main = _main_rows(effects={"kd": 0.02, "sp": -0.02, "pkt": 0.0})
    checks, missing = run_checks({"main": main})
    by = {c.subject: c for c in checks}
    assert by["BRCD vs KD, symmetric"].verdict == "supported"
    assert by["BRCD vs SP, asymmetric"].verdict == "contradicted"
    assert by["BRCD vs PKT, symmetric"].verdict == "inconclusive"
    assert by["BRCD vs Student (no KD), symmetric"].verdict == "supported"
    closed = by["share of the teacher - no-KD gap closed by BRCD, symmetric"]
    # BRCD is 0.3 above the undistilled student, whose gap to the teacher (0.9) is 0.9 - base
    expected = np.mean([0.3 / (0.4 - 0.01 * s - (0.02 if b == 32 else 0.0))
                        for b in (16, 32) for s in range(5)])
    assert closed.result.mean == pytest.approx(expected) and closed.verdict == "supported"
    assert "mask_helps" in missing and "robust_to_teacher" in missing
    table = claims_table({"main": main})
    assert set(table["verdict"]) >= {"supported", "contradicted", "inconclusive", "not run"}
    assert list(table.columns) == ["claim", "paper states", "compared", "measured (95 % CI)",
                                   "pairs", "verdict"]
    assert len(CLAIMS) >= 8


def test_failed_runs_are_left_out_of_the_pairs():
    main = _main_rows(effects={"kd": 0.02})
    main.loc[(main["method"] == "kd") & (main["seed"] == 0), "status"] = "diverged"
    main.loc[(main["method"] == "kd") & (main["seed"] == 0), "value"] = float("nan")
    checks, _ = run_checks({"main": main})
    kd = [c for c in checks if c.subject == "BRCD vs KD, symmetric"][0]
    assert kd.result.n == 2 * 4  # 2 code lengths x 4 seeds

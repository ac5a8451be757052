"""Tests aimed at the ``seeds_needed`` / ``smallest_detectable_effect`` mutants that survived
``make mutation``: the loop bounds of both searches, what happens exactly at those bounds, and the
messages of the errors they raise.

A level ``alpha`` outside (0, 1) makes ``smallest_detectable_effect`` NaN at once (documented), so
``seeds_needed`` never fits and walks its whole doubling loop quickly: the bracket end goes
4, 8, ..., 4 * 2**63 = 2**65 (64 probes) and the next value, 2**66, is in the message.

Expected values are worked by hand here or computed by reference code written here (scipy's
normal and noncentral t), never read back from brcd_lib."""
from __future__ import annotations

import math

import pytest
from scipy import stats as sps
from scipy.optimize import brentq

from brcd_lib.reporting.stats import seeds_needed, smallest_detectable_effect

NEVER = dict(alpha=1.5)  # smallest_detectable_effect is NaN: no unit count ever fits


def test_seeds_needed_reports_the_bracket_end_when_the_doubling_runs_out():
    # 64 doublings of 4 end at 4 * 2**64 = 2**66 = 73786976294838206464
    with pytest.raises(ArithmeticError) as err:
        seeds_needed(1.0, 0.01, limit=10**70, **NEVER)
    assert str(err.value) == "no unit count up to 73786976294838206464 fits margin 0.01"


def test_seeds_needed_returns_none_when_the_last_probe_is_the_limit():
    # the 64th probe is 4 * 2**63 = 2**65 == limit: past it there is nothing to try -> None
    assert seeds_needed(1.0, 0.01, limit=2**65, **NEVER) is None
    assert seeds_needed(1.0, 0.01, limit=2**65 - 1, **NEVER) is None


def test_smallest_detectable_effect_past_two_to_the_64_units():
    """df = n - 1 >= 2**64 used to reach scipy as a Python int it cannot convert (TypeError).
    At that n the noncentral t is the normal: effect = (z_0.975 + z_0.8) * sd / sqrt(n)."""
    z = sps.norm.ppf(0.975) + sps.norm.ppf(0.8)  # 2.8015849...
    n = 2**65
    assert smallest_detectable_effect(1.0, n) == pytest.approx(z / 2**32.5, rel=1e-6)


def _normal_nc(alpha: float, power: float) -> float:
    """The noncentrality of a two-sided z-test (the t-test's limit for huge n) with this power."""
    crit = sps.norm.ppf(1 - alpha / 2)
    return brentq(lambda nc: sps.norm.sf(crit - nc) + sps.norm.cdf(-crit - nc) - power, 0.0, 50.0,
                  xtol=1e-14)


def test_seeds_needed_when_the_last_doubling_finds_the_bracket():
    """The effect falls like 1 / sqrt(n); a margin of nc / 2**32.25 lies between the effect at
    2**64 (nc / 2**32) and at 2**65 (nc / 2**32.5), so the bracket is found at the 64th probe,
    low = 2**64, high = 2**65: 64 halvings are needed before the width is 1. The answer is the
    first n that fits, in (2**64, 2**65] (the bisection used to stop one step short and raise)."""
    margin = _normal_nc(0.05, 0.8) / 2**32.25  # 2.8015849... / 2**32.25
    n = seeds_needed(1.0, margin, alpha=0.05, power=0.8, limit=2**70)
    assert isinstance(n, int) and 2**64 < n <= 2**65


def test_smallest_detectable_effect_when_the_first_bracket_end_is_the_root():
    """With power equal to the test's power at nc = crit + 10 (the first end the search tries),
    the shortfall there is exactly 0.0: the search stops and the root is that end itself."""
    n, alpha = 2, 0.05
    df = n - 1
    crit = float(sps.t.ppf(1 - alpha / 2, df))  # 12.706...
    nc0 = crit + 10.0
    upper = float(sps.nct.sf(crit, df, nc0))
    lower = float(sps.nct.cdf(-crit, df, nc0))
    power = (upper if math.isfinite(upper) else 1.0) + (lower if math.isfinite(lower) else 0.0)
    assert 0.5 < power < 1.0
    assert smallest_detectable_effect(1.0, n, alpha=alpha, power=power) == nc0 / math.sqrt(n)


@pytest.mark.parametrize("alpha, power", [(0.5, 0.5), (0.05, 0.05), (0.05, 0.01), (0.05, 1.0),
                                          (0.05, 1.5), (0.05, math.nan)])
def test_a_power_not_between_alpha_and_one_is_refused_by_name(alpha, power):
    """At no effect the two-sided test already rejects with probability alpha and no effect
    reaches power 1: such a power has no smallest detectable effect (scipy's root search used to
    fail with 'f(a) and f(b) must have different signs'); seeds_needed passes it on."""
    message = f"power must lie above alpha ({alpha}) and below 1, got {power}"
    with pytest.raises(ValueError) as err:
        smallest_detectable_effect(1.0, 5, alpha=alpha, power=power)
    assert str(err.value) == message
    with pytest.raises(ValueError) as err:
        seeds_needed(0.01, 0.01, alpha=alpha, power=power)
    assert str(err.value) == message


def test_a_power_just_above_alpha_has_a_small_positive_effect():
    effect = smallest_detectable_effect(1.0, 5, alpha=0.05, power=0.06)
    assert 0.0 < effect < 0.2

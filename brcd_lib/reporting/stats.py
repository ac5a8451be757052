"""Paired comparisons over seeds: intervals, Holm's family-wise adjustment, the four verdicts,
and the smallest effect a comparison can detect.

A comparison of method A with method B is a *paired* difference: the two runs of a pair share
everything but the method (same seed, same teacher, same code length, same data), so the
difference removes what the pair shares. For ``n`` paired differences ``d_i`` (one per
**unit**: a student seed, or a teacher seed; see ``docs/statistics.md``):

* mean ``d = sum(d_i) / n``, standard deviation ``s`` (``ddof=1``);
* the **raw 95 % confidence interval** is the two-sided paired t-interval
  ``d +- t(0.975, n - 1) * s / sqrt(n)``;
* the two-sided p-value of the paired t-test of ``d = threshold`` and the count of units where A
  wins.

**Family-wise control** (:func:`holm`): within one profile's claims table the evidence lines form
one family. Holm's step-down orders the lines by p-value; the line of rank ``r`` (1 = smallest
p) is tested at level ``alpha / (m - r + 1)`` while every line before it was rejected; from the
first line that is not rejected on, every line is read at ``alpha / (m - k + 1)`` (``k`` that
line's rank). The **adjusted interval** of a line is its t-interval at that level: it excludes
the threshold exactly when Holm rejects the line.

**Verdicts** (:func:`verdict4`, :data:`VERDICT_RULE`), read off the adjusted interval of a claim
"difference > threshold" with a declared smallest effect of interest (the margin):

* ``supported``: the adjusted interval lies wholly above the threshold;
* ``contradicted``: it lies wholly below;
* ``equivalent``: it lies wholly inside ``threshold +- margin`` (two one-sided tests at the
  adjusted level; a claim without a margin cannot be equivalent);
* ``inconclusive``: none of these, or fewer than 2 units.

**Smallest detectable effect** (:func:`smallest_detectable_effect`): the true difference a
two-sided paired t-test at level ``alpha`` with ``n`` units detects with 80 % power, from the
noncentral t distribution and the observed standard deviation ``s`` of the differences.
:func:`seeds_needed` inverts it: the units needed for that effect to reach the margin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize as _optimize
from scipy import stats as _stats

__all__ = ["Paired", "paired", "paired_frame", "paired_against", "paired_by_length", "verdict",
           "paired_units", "verdict4", "interval", "holm", "smallest_detectable_effect", "seeds_needed",
           "VERDICT_RULE", "VERDICTS", "CONFIDENCE", "ALPHA", "POWER"]

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE
POWER = 0.8
VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive")
VERDICT_RULE = ("supported: the whole Holm-adjusted interval of the difference lies above the "
                "claim's threshold (0 unless stated); contradicted: it lies wholly below; "
                "equivalent: it lies wholly inside the threshold ± the smallest effect of "
                "interest (two one-sided tests at the adjusted level); inconclusive: none of "
                "these, or fewer than 2 units")


@dataclass(frozen=True)
class Paired:
    """A paired comparison: ``n`` units, mean difference, its raw 95 % interval, the p-value of
    ``mean = null``, the units won, the standard deviation of the differences and the null."""

    n: int
    mean: float
    low: float
    high: float
    p_value: float
    wins: int
    sd: float = math.nan
    null: float = 0.0

    def format(self, digits: int = 4) -> str:
        """``+0.0123 [+0.0040, +0.0206] (n = 5)``."""
        if self.n == 0:
            return "no pairs"
        if not math.isfinite(self.low):
            return f"{self.mean:+.{digits}f} (n = {self.n}, no interval)"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}] (n = {self.n})"

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """The two-sided t-interval at ``confidence`` (NaN with fewer than 2 units)."""
        return interval(self.mean, self.sd, self.n, confidence)


def interval(mean: float, sd: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """``mean +- t((1 + confidence) / 2, n - 1) * sd / sqrt(n)``; NaN with fewer than 2 units or
    no finite ``sd``; the point itself when ``sd`` is 0."""
    if n < 2 or not (math.isfinite(sd) and math.isfinite(mean)):
        return math.nan, math.nan
    if sd == 0.0:
        return mean, mean
    half = float(_stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def paired(differences: Sequence[float], *, null: float = 0.0) -> Paired:
    """The paired t-interval of ``differences`` (NaNs dropped) and the p-value of
    ``mean = null``."""
    d = np.asarray([x for x in differences if x is not None and np.isfinite(x)], dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan, 0, math.nan, null)
    mean = float(d.mean())
    wins = int((d > null).sum())
    if n < 2:
        return Paired(n, mean, math.nan, math.nan, math.nan, wins, math.nan, null)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    low, high = interval(mean, sd, n)
    if se == 0.0:  # every unit has the same difference
        return Paired(n, mean, low, high, 0.0 if mean != null else 1.0, wins, sd, null)
    p = float(2 * _stats.t.sf(abs(mean - null) / se, n - 1))
    return Paired(n, mean, low, high, p, wins, sd, null)


def verdict(result: Paired, threshold: float = 0.0) -> str:
    """The unadjusted three-way verdict of "difference > threshold" on the raw 95 % interval
    (supported / contradicted / inconclusive); the claims table uses :func:`verdict4` on the
    adjusted interval instead."""
    if result.n < 2 or not math.isfinite(result.low):
        return "inconclusive"
    if result.low > threshold:
        return "supported"
    if result.high < threshold:
        return "contradicted"
    return "inconclusive"


def verdict4(low: float, high: float, *, threshold: float = 0.0,
             margin: float | None = None) -> str:
    """The verdict of "difference > threshold" read off an (adjusted) interval ``[low, high]``
    by :data:`VERDICT_RULE`; ``margin`` the smallest effect of interest (``None``: no
    equivalence verdict)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if low > threshold:
        return "supported"
    if high < threshold:
        return "contradicted"
    if margin is not None and threshold - margin < low and high < threshold + margin:
        return "equivalent"
    return "inconclusive"


def holm(p_values: Sequence[float], *, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Holm's step-down over ``p_values`` (NaN = not tested: left out of the family).

    Returns (adjusted p-values, rejected, levels): ``levels[i]`` is the two-sided level at which
    line ``i`` is read (``alpha / (m - r + 1)`` for the rejected lines of rank ``r``,
    ``alpha / (m - k + 1)`` for every line from the first non-rejected rank ``k`` on), so the
    ``1 - levels[i]`` interval excludes the null exactly for the rejected lines. NaN for the
    lines left out."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    rejected = np.zeros(p.shape, dtype=bool)
    levels = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return adjusted, rejected, levels
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    stopped_at = None
    for r, i in enumerate(order, start=1):
        running = max(running, min(1.0, (m - r + 1) * p[i]))
        adjusted[i] = running
        step = alpha / (m - r + 1)
        if stopped_at is None and p[i] <= step:
            rejected[i] = True
            levels[i] = step
        else:
            if stopped_at is None:
                stopped_at = r
            levels[i] = alpha / (m - stopped_at + 1)
    return adjusted, rejected, levels


def smallest_detectable_effect(sd: float, n: int, *, alpha: float = ALPHA,
                               power: float = POWER) -> float:
    """The true mean difference a two-sided paired t-test at level ``alpha`` with ``n`` units
    and difference standard deviation ``sd`` detects with probability ``power`` (noncentral t;
    NaN with fewer than 2 units or no finite ``sd``, 0 when ``sd`` is 0)."""
    if n < 2 or not math.isfinite(sd) or not (0.0 < alpha < 1.0):
        return math.nan
    if not (alpha < power < 1.0):  # a test without effect already rejects with probability alpha
        raise ValueError(f"power must lie above alpha ({alpha}) and below 1, got {power}")
    if sd == 0.0:
        return 0.0
    df = float(n - 1)  # scipy's t rejects a Python int past 2**64 - 1 (TypeError); float is exact below 2**53
    crit = float(_stats.t.ppf(1.0 - alpha / 2.0, df))

    def shortfall(nc: float) -> float:
        lower = float(_stats.nct.cdf(-crit, df, nc))  # the wrong-sign tail: negligible here, and
        upper = float(_stats.nct.sf(crit, df, nc))    # scipy returns NaN where it underflows
        return (upper if math.isfinite(upper) else 1.0) + (lower if math.isfinite(lower) else 0.0) - power

    high = crit + 10.0
    for _ in range(64):  # bounded: the power reaches any target long before 2**64 x (crit + 10)
        if shortfall(high) >= 0.0:
            break
        high *= 2.0
    else:
        raise ArithmeticError(f"no noncentrality up to {high:g} reaches power {power} "
                              f"(alpha {alpha}, {n} units)")
    nc = _optimize.brentq(shortfall, 0.0, high, xtol=1e-10)
    return nc * sd / math.sqrt(n)


def seeds_needed(sd: float, margin: float, *, alpha: float = ALPHA, power: float = POWER,
                 limit: int = 100_000) -> int | None:
    """The fewest units whose :func:`smallest_detectable_effect` is at most ``margin`` (with the
    same difference standard deviation ``sd``); ``None`` past ``limit``."""
    if not (math.isfinite(sd) and margin > 0):
        return None
    if sd == 0.0:
        return 2

    def fits(n: int) -> bool:
        return smallest_detectable_effect(sd, n, alpha=alpha, power=power) <= margin

    if fits(2):
        return 2
    low, high = 2, 4  # fits(low) is False throughout; fits(high) once the bracket is found
    for _ in range(64):  # double the bracket, at most up to limit (loops bounded throughout)
        if fits(min(high, limit)):
            high = min(high, limit)
            break
        if high >= limit:
            return None
        low, high = high, high * 2
    else:
        raise ArithmeticError(f"no unit count up to {high} fits margin {margin}")
    # the effect falls with n: bisect for the first n that fits. The bracket is at most 2**64 wide
    # (low = 2**64, high = 2**65 when the last doubling fits), so 64 halvings + the last check.
    for _ in range(65):
        if high - low <= 1:
            return high
        mid = (low + high) // 2
        low, high = (low, mid) if fits(mid) else (mid, high)
    raise ArithmeticError(f"bisection between {low} and {high} did not end")  # unreachable


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["status"] == "ok"] if "status" in rows else rows


def paired_frame(rows: pd.DataFrame, *, column: str, a: str, b: str, pair_on: Sequence[str],
                 by: Sequence[str] = (), value: str = "value") -> pd.DataFrame:
    """Paired differences ``a - b`` of ``rows[value]`` where ``rows[column]`` is ``a`` or ``b``,
    matched on ``pair_on`` (e.g. the seed), one line per group of ``by`` (e.g. paradigm and
    code length): columns ``by``, ``n``, ``mean``, ``low``, ``high``, ``p_value``, ``wins``,
    ``sd``. Rows whose value is NaN (failed runs) leave their pair out."""
    ok = rows[rows[column].isin([a, b]) & rows[value].notna()]
    keys = list(by) + list(pair_on)
    wide = ok.pivot_table(index=keys, columns=column, values=value, aggfunc="mean")
    out = []
    groups = wide.groupby(level=list(range(len(by)))) if by else [((), wide)]
    for group, sub in groups:
        if a not in sub or b not in sub:
            diff = []
        else:
            diff = (sub[a] - sub[b]).dropna().tolist()
        res = paired(diff)
        key = group if isinstance(group, tuple) else (group,)
        out.append({**dict(zip(by, key)), "n": res.n, "mean": res.mean, "low": res.low,
                    "high": res.high, "p_value": res.p_value, "wins": res.wins, "sd": res.sd})
    return pd.DataFrame(out)


def unit_differences(rows: pd.DataFrame, *, column: str, a: str, b: str,
                     unit: Sequence[str] = ("seed",), over: Sequence[str] = ("bits",),
                     value: str = "value", complete: bool = True) -> pd.Series:
    """One difference per unit: ``a - b`` matched on ``unit + over``, then averaged over
    ``over`` within each unit (e.g. the per-seed mean over code lengths). With ``complete``,
    only units that have a pair at every ``over`` value present in the rows count (a seed
    missing a code length would mix lengths)."""
    ok = _ok(rows)
    ok = ok[ok[column].isin([a, b]) & ok[value].notna()]
    keys = list(unit) + list(over)
    wide = ok.pivot_table(index=keys, columns=column, values=value, aggfunc="mean")
    if a not in wide or b not in wide:
        return pd.Series(dtype=float)
    diff = (wide[a] - wide[b]).dropna()
    if not over:
        return diff
    n_over = ok.groupby(list(over)).ngroups
    grouped = diff.groupby(level=list(range(len(unit))))
    if not complete:
        return grouped.mean()
    return grouped.mean()[grouped.count() == n_over]


def paired_against(rows: pd.DataFrame, *, column: str, reference: str, others: Sequence[str],
                   pair_on: Sequence[str], by: Sequence[str] = ("paradigm",),
                   label=lambda name: name) -> pd.DataFrame:
    """:func:`paired_frame` of ``reference`` minus each of ``others`` (rows whose status is not
    "ok" left out), stacked with a ``compared`` column (``label(name)``) first."""
    rows = _ok(rows)
    parts = []
    for other in others:
        frame = paired_frame(rows, column=column, a=reference, b=other, pair_on=pair_on, by=by)
        frame.insert(0, "compared", label(other))
        parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def paired_by_length(rows: pd.DataFrame, *, column: str, reference: str, others: Sequence[str],
                     label=lambda name: name, unit: str = "seed") -> pd.DataFrame:
    """``reference`` minus each of ``others`` with the seed as the unit: one line per paradigm
    and code length (pairs matched on the seed), and one ``pooled`` line per paradigm whose
    units are the per-seed means over the code lengths (a seed counts when it has every length).
    Columns: ``compared``, ``paradigm``, ``bits`` (the length, or "pooled"), ``n``, ``mean``,
    ``low``, ``high`` (raw 95 % t-interval), ``p_value``, ``wins``, ``sd``."""
    rows = _ok(rows)
    parts = []
    for other in others:
        per = paired_frame(rows, column=column, a=reference, b=other, pair_on=[unit],
                           by=["paradigm", "bits"])
        per["bits"] = per["bits"].map(lambda b: str(int(b)))
        lines = [per]
        if rows["bits"].nunique() > 1:
            pooled = []
            for paradigm, sub in rows.groupby("paradigm", sort=False):
                res = paired(unit_differences(sub, column=column, a=reference, b=other,
                                              unit=[unit], over=["bits"]).tolist())
                pooled.append({"paradigm": paradigm, "bits": "pooled", "n": res.n,
                               "mean": res.mean, "low": res.low, "high": res.high,
                               "p_value": res.p_value, "wins": res.wins, "sd": res.sd})
            lines.append(pd.DataFrame(pooled))
        frame = pd.concat(lines, ignore_index=True)
        frame.insert(0, "compared", label(other))
        parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def paired_units(rows: pd.DataFrame, *, column: str, reference: str, others: Sequence[str],
                 unit: Sequence[str], over: Sequence[str], by: Sequence[str] = ("paradigm",),
                 label=lambda name: name) -> pd.DataFrame:
    """``reference`` minus each of ``others`` with ``unit`` as the unit: per group of ``by``, the
    mean over ``over`` of the paired differences within each unit (e.g. the teacher seed as the
    unit, averaged over its student seeds: ``unit=["teacher_seed"], over=["seed"]``). Columns:
    ``compared``, ``by``, ``n``, ``mean``, ``low``, ``high``, ``p_value``, ``wins``, ``sd``."""
    rows = _ok(rows)
    out = []
    for other in others:
        groups = rows.groupby(list(by), sort=False) if by else [((), rows)]
        for key, sub in groups:
            key = key if isinstance(key, tuple) else (key,)
            res = paired(unit_differences(sub, column=column, a=reference, b=other, unit=unit,
                                          over=over, complete=False).tolist())
            out.append({"compared": label(other), **dict(zip(by, key)), "n": res.n,
                        "mean": res.mean, "low": res.low, "high": res.high,
                        "p_value": res.p_value, "wins": res.wins, "sd": res.sd})
    return pd.DataFrame(out)

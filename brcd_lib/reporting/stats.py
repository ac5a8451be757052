"""Paired comparisons over seeds, with confidence intervals, and the verdict rule of the claims.

A comparison of method A with method B is a *paired* difference: the two runs of a pair share
everything but the method (same seed, same teacher, same code length, same data), so the
difference removes what the pair shares. For ``n`` pairs with differences ``d_i``:

* mean ``d = sum(d_i) / n``, standard deviation ``s`` (``ddof=1``);
* the **95 % confidence interval** is the two-sided paired t-interval
  ``d +- t(0.975, n - 1) * s / sqrt(n)`` (Student's t with ``n - 1`` degrees of freedom);
* the two-sided p-value of the paired t-test, and the count of pairs where A wins.

Intervals are per comparison, not adjusted for the number of comparisons in a table.

**Verdict rule** (:func:`verdict`), stated once and used for every claim: a claim that A is
better than B (``A - B > threshold``, threshold 0 unless the claim states one) is

* ``supported`` when the whole 95 % interval lies above the threshold,
* ``contradicted`` when the whole interval lies below it,
* ``inconclusive`` otherwise, or when there are fewer than 2 pairs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _stats

__all__ = ["Paired", "paired", "paired_frame", "verdict", "VERDICT_RULE", "CONFIDENCE"]

CONFIDENCE = 0.95
VERDICT_RULE = ("supported: the whole 95 % paired t-interval of the difference lies above the "
                "claim's threshold (0 unless stated); contradicted: it lies wholly below; "
                "inconclusive: it contains the threshold, or fewer than 2 pairs")


@dataclass(frozen=True)
class Paired:
    """A paired comparison: ``n`` pairs, mean difference, its 95 % interval, p-value, wins."""

    n: int
    mean: float
    low: float
    high: float
    p_value: float
    wins: int

    def format(self, digits: int = 4) -> str:
        """``+0.0123 [+0.0040, +0.0206] (n = 5)``."""
        if self.n == 0:
            return "no pairs"
        if not math.isfinite(self.low):
            return f"{self.mean:+.{digits}f} (n = {self.n}, no interval)"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}] (n = {self.n})"


def paired(differences: Sequence[float]) -> Paired:
    """The paired t-interval of ``differences`` (NaNs dropped)."""
    d = np.asarray([x for x in differences if x is not None and np.isfinite(x)], dtype=np.float64)
    n = int(d.size)
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(d.mean())
    wins = int((d > 0).sum())
    if n < 2:
        return Paired(n, mean, math.nan, math.nan, math.nan, wins)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0.0:  # every pair has the same difference
        return Paired(n, mean, mean, mean, 0.0 if mean != 0 else 1.0, wins)
    half = float(_stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * se
    p = float(2 * _stats.t.sf(abs(mean) / se, n - 1))
    return Paired(n, mean, mean - half, mean + half, p, wins)


def verdict(result: Paired, threshold: float = 0.0) -> str:
    """The verdict of a claim "difference > threshold" by the rule of :data:`VERDICT_RULE`."""
    if result.n < 2 or not math.isfinite(result.low):
        return "inconclusive"
    if result.low > threshold:
        return "supported"
    if result.high < threshold:
        return "contradicted"
    return "inconclusive"


def paired_frame(rows: pd.DataFrame, *, column: str, a: str, b: str, pair_on: Sequence[str],
                 by: Sequence[str] = (), value: str = "value") -> pd.DataFrame:
    """Paired differences ``a - b`` of ``rows[value]`` where ``rows[column]`` is ``a`` or ``b``,
    matched on ``pair_on`` (e.g. seed and code length), one line per group of ``by`` (e.g.
    paradigm): columns ``by``, ``n``, ``mean``, ``low``, ``high``, ``p_value``, ``wins``.
    Rows whose value is NaN (failed runs) leave their pair out."""
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
                    "high": res.high, "p_value": res.p_value, "wins": res.wins})
    return pd.DataFrame(out)


def paired_against(rows: pd.DataFrame, *, column: str, reference: str, others: Sequence[str],
                   pair_on: Sequence[str], by: Sequence[str] = ("paradigm",),
                   label=lambda name: name) -> pd.DataFrame:
    """:func:`paired_frame` of ``reference`` minus each of ``others`` (rows whose status is not
    "ok" left out), stacked with a ``compared`` column (``label(name)``) first."""
    if "status" in rows:
        rows = rows[rows["status"] == "ok"]
    parts = []
    for other in others:
        frame = paired_frame(rows, column=column, a=reference, b=other, pair_on=pair_on, by=by)
        frame.insert(0, "compared", label(other))
        parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

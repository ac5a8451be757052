"""The capacity ladder of notebook 06: does BRCD help more when the teacher - student gap is larger?

Student backbones of increasing strength (``Profile.ladder_backbones``) are distilled from the one
teacher with no KD, KD, BRCD and the strongest baseline, each run to convergence, over the same
seeds. Per rung and paradigm the table gives the teacher - no-KD gap, BRCD - KD (paired over seeds)
and the share of the symmetric gap BRCD closes, ``(BRCD - no KD) / (teacher - no KD)``, paired over
seeds (the teacher is one run, so the seed's no-KD student sets the gap of its pair). The figure
plots both against the gap.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..distill import method_label
from .stats import paired

__all__ = ["ladder_table", "ladder_figure"]

PARADIGMS = ("symmetric", "asymmetric")


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["status"] == "ok"] if "status" in rows else rows


def _interval(res) -> str:
    if res.n == 0:
        return "no pairs"
    if not math.isfinite(res.low):
        return f"{res.mean:+.4f} (n = {res.n})"
    return f"{res.mean:+.4f} [{res.low:+.4f}, {res.high:+.4f}]"


def ladder_lines(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per rung and paradigm (numbers, for the figure and tests): ``rung``,
    ``student_backbone``, ``paradigm``, ``teacher``, ``n`` seeds, the mean test mAP of each
    method (columns named by method), ``gap`` (teacher - mean no KD), ``brcd_minus_kd`` with
    ``brcd_minus_kd_low`` / ``_high`` (95 % paired t-interval over seeds) and ``share_closed``
    with ``share_closed_low`` / ``_high`` (per seed: (BRCD - no KD) / (teacher - no KD); NaN
    where a seed's gap is not positive, counted in ``nonpositive_gaps``)."""
    ok = _ok(rows)
    teacher = ok[ok["method"] == "teacher"].groupby("paradigm")["value"].mean()
    students = ok[ok["method"] != "teacher"]
    lines = []
    for (rung, backbone, paradigm), sub in students.groupby(
            ["rung", "student_backbone", "paradigm"], sort=True):
        wide = sub.pivot_table(index="seed", columns="method", values="value")
        t = float(teacher.get(paradigm, math.nan))
        line = {"rung": int(rung), "student_backbone": backbone, "paradigm": paradigm,
                "teacher": t, "n": int(len(wide))}
        for method in wide.columns:
            line[method] = float(wide[method].mean())
        line["gap"] = t - line.get("none", math.nan)
        diff = (wide["brcd"] - wide["kd"]) if {"brcd", "kd"} <= set(wide.columns) else pd.Series(dtype=float)
        res = paired(diff.tolist())
        line.update(brcd_minus_kd=res.mean, brcd_minus_kd_low=res.low, brcd_minus_kd_high=res.high)
        shares, nonpositive = [], 0
        if {"brcd", "none"} <= set(wide.columns):
            for _, r in wide.iterrows():
                gap = t - r["none"]
                if gap > 0:
                    shares.append((r["brcd"] - r["none"]) / gap)
                else:
                    nonpositive += 1
        res = paired(shares)
        line.update(share_closed=res.mean, share_closed_low=res.low, share_closed_high=res.high,
                     nonpositive_gaps=nonpositive)
        lines.append(line)
    return pd.DataFrame(lines)


def ladder_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The ladder table: rung, student backbone, paradigm, seeds, teacher and each method's mean
    test mAP, the teacher - no-KD gap, BRCD - KD and the share of the gap BRCD closes (each with
    its 95 % paired t-interval over seeds)."""
    lines = ladder_lines(rows)
    if lines.empty:
        return lines
    methods = [m for m in lines.columns if m not in {
        "rung", "student_backbone", "paradigm", "teacher", "n", "gap", "brcd_minus_kd",
        "brcd_minus_kd_low", "brcd_minus_kd_high", "share_closed", "share_closed_low",
        "share_closed_high", "nonpositive_gaps"}]
    order = [m for m in ("none", "kd") if m in methods] + \
        sorted(m for m in methods if m not in ("none", "kd", "brcd")) + (["brcd"] if "brcd" in methods else [])
    out = pd.DataFrame({"rung": lines["rung"], "student backbone": lines["student_backbone"],
                        "paradigm": lines["paradigm"], "seeds": lines["n"],
                        "teacher": lines["teacher"].round(4)})
    for m in order:
        out[method_label(m)] = lines[m].round(4)
    out["teacher - no KD"] = lines["gap"].round(4)
    out["BRCD - KD (95 % CI)"] = [
        _interval(_Res(r.brcd_minus_kd, r.brcd_minus_kd_low, r.brcd_minus_kd_high, r.n))
        for r in lines.itertuples()]
    out["share of gap closed by BRCD (95 % CI)"] = [
        _interval(_Res(r.share_closed, r.share_closed_low, r.share_closed_high,
                       r.n - r.nonpositive_gaps)) + (f"; {r.nonpositive_gaps} seed(s) with no gap"
                                                     if r.nonpositive_gaps else "")
        for r in lines.itertuples()]
    return out


class _Res:
    """The fields :func:`_interval` reads, from a ladder line."""

    def __init__(self, mean, low, high, n):
        self.mean, self.low, self.high, self.n = mean, low, high, int(n)


def ladder_figure(rows: pd.DataFrame, *, title: str = "Capacity ladder") -> Figure:
    """Two panels against the teacher - no-KD gap of each rung (symmetric gap on the x axis):
    BRCD - KD per paradigm, and the share of the symmetric gap BRCD closes; error bars are 95 %
    paired t-intervals over the seeds (the count is in the title)."""
    lines = ladder_lines(rows)
    fig = Figure(figsize=(10, 4.2))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    if lines.empty:
        ax1.text(0.5, 0.5, "no ladder rows", ha="center", va="center")
        return fig
    sym = lines[lines["paradigm"] == "symmetric"].set_index("rung")
    colors = {"symmetric": "#1f77b4", "asymmetric": "#d62728"}
    for k, paradigm in enumerate(PARADIGMS):
        sub = lines[lines["paradigm"] == paradigm].set_index("rung")
        if sub.empty:
            continue
        x = sym["gap"].reindex(sub.index).to_numpy() + (k - 0.5) * 0.0015
        y = sub["brcd_minus_kd"].to_numpy()
        err = np.vstack([y - sub["brcd_minus_kd_low"].to_numpy(),
                         sub["brcd_minus_kd_high"].to_numpy() - y])
        ax1.errorbar(x, y, yerr=np.nan_to_num(err), fmt="o-", capsize=3, color=colors[paradigm],
                     label=paradigm)
    for rung, r in sym.iterrows():
        ax1.annotate(r["student_backbone"], (r["gap"], r["brcd_minus_kd"]), fontsize=7,
                     xytext=(4, 6), textcoords="offset points")
    ax1.axhline(0.0, color="0.4", lw=0.8, ls="--")
    ax1.set_xlabel("teacher - no-KD student, symmetric test mAP")
    ax1.set_ylabel("BRCD - KD, test mAP")
    ax1.set_title("BRCD - KD against the gap", fontsize=10)
    ax1.legend(title="paradigm", fontsize=8)
    y = sym["share_closed"].to_numpy()
    err = np.vstack([y - sym["share_closed_low"].to_numpy(), sym["share_closed_high"].to_numpy() - y])
    ax2.errorbar(sym["gap"].to_numpy(), y, yerr=np.nan_to_num(err), fmt="o-", capsize=3,
                 color=colors["symmetric"])
    ax2.axhline(0.0, color="0.4", lw=0.8, ls="--")
    ax2.set_xlabel("teacher - no-KD student, symmetric test mAP")
    ax2.set_ylabel("share of the gap closed by BRCD")
    ax2.set_title("(BRCD - no KD) / (teacher - no KD), symmetric", fontsize=10)
    n = sorted(set(int(v) for v in lines["n"]))
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
    fig.suptitle(f"{title}: error bars are 95 % paired t-intervals over {seeds} seeds", fontsize=11)
    fig.tight_layout()
    return fig

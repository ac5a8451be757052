"""Tables built from result rows (schema: :mod:`brcd_lib.experiments.rows`), and their writer.

Tables are pivots of rows, never typed by hand: :func:`mean_std_table` aggregates seeds,
:func:`flatten_columns` makes the column labels readable, :func:`write_frame` writes CSV and
Markdown atomically.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from ..io import atomic_write_text
from .display import table_markdown


def write_frame(frame: pd.DataFrame, path: str, *, markdown: bool = True) -> None:
    """Write ``frame`` as CSV (full precision) and, beside it, as Markdown formatted for reading
    (:func:`brcd_lib.reporting.display.table_markdown`: integers as integers, rounding per
    column, ``—`` for missing values), both atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    atomic_write_text(path, frame.to_csv(index=False))
    if markdown:
        md_path = os.path.splitext(path)[0] + ".md"
        atomic_write_text(md_path, table_markdown(frame) + "\n")


def mean_std_table(frame: pd.DataFrame, *, index: Sequence[str] = ("method",),
                   columns: Sequence[str] = ("paradigm", "bits"), value: str = "value",
                   order: Sequence[str] | None = None, mark_best: bool = True,
                   exclude_from_best: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Aggregate rows over seeds into (numeric table of means/stds/n, display table "m ± s").

    The display table marks the best mean per column in bold (methods listed in
    ``exclude_from_best``, e.g. the teacher, are not candidates)."""
    if frame.empty:
        raise ValueError("no result rows to tabulate")
    group = list(index) + list(columns)
    agg = frame.groupby(group, dropna=False)[value].agg(["mean", "std", "count"]).reset_index()
    agg["std"] = agg["std"].fillna(0.0)
    mean = agg.pivot_table(index=list(index), columns=list(columns), values="mean")
    std = agg.pivot_table(index=list(index), columns=list(columns), values="std")
    count = agg.pivot_table(index=list(index), columns=list(columns), values="count")
    if order is not None:
        keep = [m for m in order if m in mean.index]
        rest = [m for m in mean.index if m not in keep]
        mean, std, count = (t.reindex(keep + rest) for t in (mean, std, count))
    def excluded(idx) -> bool:  # a row label, or any level of a MultiIndex row, is excluded
        return any(part in exclude_from_best for part in (idx if isinstance(idx, tuple) else (idx,)))

    display = mean.copy().astype(object)
    for col in mean.columns:
        candidates = mean[col][[not excluded(i) for i in mean.index]].dropna()
        best = candidates.max() if mark_best and len(candidates) else np.nan
        for idx in mean.index:
            m, s, n = mean.at[idx, col], std.at[idx, col], count.at[idx, col]
            if pd.isna(m):
                display.at[idx, col] = "—"
                continue
            cell = f"{m:.4f} ± {s:.4f}" if n and n > 1 else f"{m:.4f}"
            if mark_best and not pd.isna(best) and np.isclose(m, best) and not excluded(idx):
                cell = f"**{cell}**"
            display.at[idx, col] = cell
    numeric = pd.concat({"mean": mean, "std": std, "n": count}, axis=1)
    return numeric, display


def flatten_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Join a column MultiIndex into readable strings ("symmetric / 16 bits")."""
    out = table.copy()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = [" / ".join(f"{c} bits" if isinstance(c, (int, np.integer)) else str(c)
                                  for c in col) for col in out.columns]
    return out.reset_index()

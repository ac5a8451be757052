"""How tables and figures look: in JupyterLab, in executed notebooks and in the Markdown files.

One formatting rule set serves every destination (:func:`format_frame`):

- integers print as integers, also when a column became float on the way (a pivot, a NaN):
  ``K = 2``, not ``2.0000``;
- other numbers are rounded to the scale of their column (four significant digits of the
  column's largest value: ``0.4142``, ``12.35``, ``1009``), so a throughput column does not print
  ``1009.4780`` and an mAP column keeps four decimals;
- a missing value (NaN, None: e.g. the standard deviation of a single seed) prints as ``—``;
- text is left as it is; ``**best**`` marks become bold in HTML (:func:`table_html`) and stay
  Markdown bold in ``.md`` files (:func:`table_markdown`).

:class:`Table` and :class:`SavedFigure` are what a notebook displays: a table as an HTML table
without the integer index column (nothing at all when it is empty), a figure as the PNG file that
was written, embedded as ``image/png``. :func:`register_formatters` makes every ``DataFrame`` and
``matplotlib`` figure shown in a kernel use the same rules.
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
import re
from numbers import Integral, Real

import numpy as np
import pandas as pd

MISSING = "—"
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _is_missing(value) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _is_integral(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, Integral):
        return True
    return isinstance(value, Real) and math.isfinite(value) and float(value).is_integer() \
        and abs(value) < 1e15


def column_decimals(values) -> int | None:
    """Decimals that give four significant digits at the scale of the column's largest finite
    value (``None`` when every value is an integer)."""
    nums = [float(v) for v in values
            if isinstance(v, Real) and not isinstance(v, (bool, np.bool_)) and not _is_missing(v)]
    finite = [v for v in nums if math.isfinite(v)]
    if all(_is_integral(v) for v in finite):
        return None
    largest = max(abs(v) for v in finite)
    if largest < 1:
        return 4
    return max(0, 4 - (int(math.floor(math.log10(largest))) + 1))


def _numeric(column: pd.Series) -> bool:
    values = [v for v in column.tolist() if not _is_missing(v)]
    return bool(values) and all(isinstance(v, Real) and not isinstance(v, (bool, np.bool_))
                                for v in values)


def format_value(value, decimals: int | None) -> str:
    """One cell, with the column's ``decimals`` (see :func:`column_decimals`)."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, Real):
        if not math.isfinite(float(value)):
            return str(float(value))
        if decimals is None or isinstance(value, Integral):
            return str(int(value)) if _is_integral(value) else f"{float(value):.4g}"
        if 0 < abs(float(value)) < 10 ** -decimals / 2:  # would print as 0.0000
            return f"{float(value):.2e}"
        return f"{float(value):.{decimals}f}"
    return str(value)


def flat_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its index as ordinary columns (a default 0..n-1 index is dropped) and a
    column MultiIndex joined into ``"a / b"`` labels."""
    out = frame.copy()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = [" / ".join(str(part) for part in col if str(part) != "") for col in out.columns]
    default_index = isinstance(out.index, pd.RangeIndex) and out.index.start == 0 \
        and out.index.step == 1 and out.index.name is None
    if not default_index:
        names = [n for n in out.index.names]
        if all(n is None for n in names) and len(names) == 1:
            out.index.name = ""
        out = out.reset_index()
    else:
        out = out.reset_index(drop=True)
    out.columns = [str(c) for c in out.columns]
    return out


def format_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame of strings, one rule set per column (module docstring); index as columns."""
    flat = flat_frame(frame)
    out = pd.DataFrame(index=flat.index)
    for i, col in enumerate(flat.columns):
        values = flat.iloc[:, i].tolist()
        decimals = column_decimals(values)
        out[i] = [format_value(v, decimals) for v in values]
    out.columns = list(flat.columns)
    return out


def table_html(frame: pd.DataFrame) -> str:
    """An HTML table: no index column, formatted cells, ``**x**`` in bold."""
    if frame.shape[0] == 0:
        return f"<p><em>empty table (columns: {html.escape(', '.join(map(str, frame.columns)))})</em></p>"
    text = format_frame(frame).to_html(index=False, escape=True, border=0)
    return _BOLD.sub(r"<strong>\1</strong>", text)


def table_markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table with the same formatting (bold stays ``**x**``)."""
    flat = flat_frame(frame)
    align = ["right" if _numeric(flat.iloc[:, i]) else "left" for i in range(flat.shape[1])]
    return format_frame(frame).to_markdown(index=False, disable_numparse=True,
                                           colalign=align or None)


#: the widest Markdown table the report writes, in characters of its widest row (about 850 px in
#: JupyterLab's Markdown preview at its default font): wider tables are split by columns
REPORT_TABLE_CHARS = 130


def _width(markdown: str) -> int:
    return max((len(line) for line in markdown.splitlines()), default=0)


def fit_markdown(frame: pd.DataFrame, *, max_chars: int = REPORT_TABLE_CHARS,
                 keys: int = 1) -> str:
    """:func:`table_markdown` of ``frame``, split by columns into several tables when one would
    be wider than ``max_chars``: each part repeats the first ``keys`` columns (the row labels)
    and holds as many further columns as fit (at least one), keeping columns that share a
    ``"a / ..."`` prefix (e.g. one paradigm) together where they fit."""
    flat = flat_frame(frame)
    columns = list(flat.columns)

    def width(cols: list[str]) -> int:
        return _width(table_markdown(flat.iloc[:, [columns.index(c) for c in cols]]))

    if len(columns) <= keys + 1 or _width(table_markdown(frame)) <= max_chars:
        return table_markdown(frame)
    head, rest = columns[:keys], columns[keys:]
    groups: list[list[str]] = []
    for col in rest:  # consecutive columns with the same "a / " prefix form a group
        prefix = col.split(" / ")[0] if " / " in col else None
        if groups and prefix is not None and " / " in groups[-1][0] \
                and groups[-1][0].split(" / ")[0] == prefix:
            groups[-1].append(col)
        else:
            groups.append([col])
    parts, current = [], []
    for group in groups:
        if current and width(head + current + group) > max_chars:
            parts.append(current)
            current = []
        for col in group:  # a group wider than the page is cut column by column
            if current and width(head + current + [col]) > max_chars:
                parts.append(current)
                current = []
            current.append(col)
    parts.append(current)
    tables = []
    for i, part in enumerate(parts):
        table = table_markdown(flat.iloc[:, [columns.index(c) for c in head + part]])
        tables.append(table if i == 0 else f"(continued: {', '.join(part)})\n\n{table}")
    return "\n\n".join(tables)


def table_text(frame: pd.DataFrame) -> str:
    return format_frame(frame).to_string(index=False)


class Table:
    """A table to display: HTML in JupyterLab, text elsewhere. Empty tables show nothing."""

    def __init__(self, frame: pd.DataFrame, *, caption: str | None = None):
        self.frame, self.caption = frame, caption

    @property
    def empty(self) -> bool:
        return self.frame.shape[0] == 0

    def _repr_html_(self) -> str | None:
        if self.empty:
            return None
        head = f"<p><strong>{html.escape(self.caption)}</strong></p>" if self.caption else ""
        return head + table_html(self.frame)

    def _repr_markdown_(self) -> str | None:
        if self.empty:
            return None
        return (f"**{self.caption}**\n\n" if self.caption else "") + table_markdown(self.frame)

    def __repr__(self) -> str:
        return "" if self.empty else table_text(self.frame)


class SavedFigure:
    """A figure written to ``path``; displays as that PNG file (``image/png``)."""

    def __init__(self, path: str, *, label: str | None = None):
        self.path, self.label = path, label or os.path.basename(path)

    def png(self) -> bytes:
        with open(self.path, "rb") as fh:
            return fh.read()

    def _repr_png_(self) -> bytes:
        return self.png()

    def base64(self) -> str:
        return base64.b64encode(self.png()).decode("ascii")

    def __repr__(self) -> str:
        return f"<figure {self.label}>"


def figure_png(fig, *, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (for figures shown without being saved)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def show(obj, *, caption: str | None = None) -> None:
    """Display a table (not when it is empty) or a figure. Returns ``None``, so ``show(x)`` as the
    last line of a cell displays it once."""
    if obj is None:
        return None
    if isinstance(obj, pd.DataFrame):
        obj = Table(obj, caption=caption)
        if obj.empty:
            return None
    try:
        from IPython.display import display
    except ImportError:  # outside IPython: print the text form
        print(repr(obj))
        return None
    display(obj)
    return None


def register_formatters(shell=None) -> bool:
    """In an IPython kernel, show every ``DataFrame`` as :func:`table_html` and every matplotlib
    ``Figure`` as a PNG; returns whether a shell was found."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False
    from matplotlib.figure import Figure

    formatters = shell.display_formatter.formatters
    formatters["text/html"].for_type(pd.DataFrame, table_html)
    formatters["image/png"].for_type(Figure, figure_png)
    return True

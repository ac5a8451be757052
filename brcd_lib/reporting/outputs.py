"""Where a notebook writes what it produces: ``results/<profile>/{tables,figures}``.

``Outputs.table`` writes a frame as CSV and Markdown (atomically) and returns it;
``Outputs.figure`` saves a PNG and returns a :class:`~brcd_lib.reporting.display.SavedFigure`,
which a notebook displays as that very file (``image/png``); ``Outputs.meta`` writes a small JSON
(the config next to the result) with machine paths made portable.

Nothing here selects a matplotlib backend: the kit's figures are drawn on their own Agg canvas,
so a kernel keeps its inline backend and the user's own ``plt`` plots render as images.
"""
from __future__ import annotations

import json
import os
import sys

import pandas as pd

from ..analysis.plots import save_figure
from ..io import atomic_write_text
from ..paths import portable
from .display import SavedFigure
from .tables import write_frame


def _portable_obj(obj):
    """``obj`` (JSON-like) with absolute paths in its strings made portable."""
    if isinstance(obj, dict):
        return {k: _portable_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_portable_obj(v) for v in obj]
    if isinstance(obj, (str, os.PathLike)):
        return portable(obj)
    return obj


class Outputs:
    def __init__(self, *, results_root: str, profile: str):
        self.root = os.path.join(os.path.abspath(results_root), profile)
        self.tables = os.path.join(self.root, "tables")
        self.figures = os.path.join(self.root, "figures")
        for d in (self.tables, self.figures):
            os.makedirs(d, exist_ok=True)

    def table(self, frame: pd.DataFrame, name: str, *, index: bool = False) -> pd.DataFrame:
        out = frame.reset_index() if index else frame
        write_frame(out, os.path.join(self.tables, f"{name}.csv"))
        return frame

    def rows(self, frame: pd.DataFrame, name: str) -> pd.DataFrame:
        """Raw long-format rows (with provenance), CSV only."""
        write_frame(frame, os.path.join(self.tables, f"{name}_rows.csv"), markdown=False)
        return frame

    def figure(self, fig, name: str, *, dpi: int | None = None) -> SavedFigure:
        """Save ``fig`` as ``figures/<name>.png`` (atomically), at the kit's one figure width
        (:func:`brcd_lib.analysis.plots.save_figure`; ``dpi``: that resolution instead, any
        size); returns the saved figure, which displays as the PNG file (the last line of a
        cell, or ``display(...)`` in a loop)."""
        path = os.path.join(self.figures, f"{name}.png")
        save_figure(fig, path, dpi=dpi)
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:  # a pyplot figure would otherwise be shown a second time
            pyplot.close(fig)
        return SavedFigure(path, label=f"figures/{name}.png")

    @staticmethod
    def slug(name: str) -> str:
        """A file-name-safe version of a label: "student (no KD)" -> "student_no_KD"."""
        import re

        return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")

    def meta(self, obj: dict, name: str) -> None:
        atomic_write_text(os.path.join(self.root, f"{name}.json"),
                          json.dumps(_portable_obj(obj), indent=1, default=str))

"""Where a notebook writes what it produces: ``results/<profile>/{tables,figures}``.

``Outputs.table`` writes a frame as CSV and Markdown (atomically) and returns it for display;
``Outputs.figure`` saves a PNG; ``Outputs.meta`` a small JSON (the config next to the result).
"""
from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..analysis.plots import save_figure  # noqa: E402
from ..io import atomic_write_text  # noqa: E402
from .tables import write_frame  # noqa: E402


class Outputs:
    def __init__(self, *, results_root: str, profile: str):
        self.root = os.path.join(results_root, profile)
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

    def figure(self, fig, name: str, *, dpi: int = 150) -> str:
        """Save ``fig`` as ``figures/<name>.png`` (atomically) and return the path."""
        path = os.path.join(self.figures, f"{name}.png")
        save_figure(fig, path, dpi=dpi)
        plt.close(fig)
        return path

    @staticmethod
    def slug(name: str) -> str:
        """A file-name-safe version of a label: "student (no KD)" -> "student_no_KD"."""
        import re

        return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")

    def meta(self, obj: dict, name: str) -> None:
        atomic_write_text(os.path.join(self.root, f"{name}.json"),
                          json.dumps(obj, indent=1, default=str))

"""Figures of the redundancy analysis, drawn from the frames of ``brcd_lib.analysis.redundancy``.

Each function returns a :class:`matplotlib.figure.Figure` built on the non-interactive Agg canvas
(no pyplot state, no global backend switch, so nothing leaks between calls), with a title, labelled
axes (with units) and a legend or colour-bar label, :data:`FIG_WIDTH` inches wide like every figure
of the kit. :func:`save_figure` writes a PNG atomically, :data:`FIGURE_WIDTH_PX` pixels wide and at
most :data:`FIGURE_MAX_HEIGHT_PX` tall, so that JupyterLab and the reports show every figure at one
scale and none taller than a laptop screen.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "plot_cluster_bit_means",
    "plot_redundancy_vs_delta",
    "plot_bit_balance",
    "plot_bit_correlation",
    "plot_bit_flip_rate",
    "plot_offset_rates",
    "plot_elbow",
    "save_figure",
]

_DIVERGING = "RdBu_r"

#: every figure of the kit is drawn this wide (inches) and at most this tall ...
FIG_WIDTH = 7.6
FIG_MAX_HEIGHT = 5.6
#: ... and saved this wide (pixels: 7.6 in at 150 dpi, shown at 100 % in a JupyterLab cell of a
#: 1280-px-wide window with the file browser closed) and at most this tall
FIGURE_WIDTH_PX = 1140
FIGURE_MAX_HEIGHT_PX = 840


def _new_figure(height: float, width: float = FIG_WIDTH) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, min(height, FIG_MAX_HEIGHT)))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} needs a pandas DataFrame; got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} needs columns {columns}; missing {missing}. Build the frame with "
            "brcd_lib.analysis.redundancy"
        )
    if frame.empty:
        raise ValueError(f"{what} got an empty frame; nothing to draw")


def plot_cluster_bit_means(frame: pd.DataFrame, *, title: str = "Per-cluster bit means") -> Figure:
    """Heatmap of the mean of each bit (columns) in each cluster (rows), from
    :func:`~brcd_lib.analysis.redundancy.cluster_bit_means`. Diverging colormap centred at 0:
    saturated cells are consistent bits, pale cells redundancy bits."""
    _require(frame, ["cluster", "bit", "mean"], "plot_cluster_bit_means")
    grid = frame.pivot(index="cluster", columns="bit", values="mean").sort_index()
    fig, ax = _new_figure(max(2.5, 0.3 * grid.shape[0] + 1.5))
    sns.heatmap(
        grid,
        ax=ax,
        cmap=_DIVERGING,
        center=0.0,
        vmin=-1.0,
        vmax=1.0,
        cbar_kws={"label": "mean of the ±1 bit (unitless, -1 to 1)"},
    )
    ax.set_xlabel("bit index (position in the code)")
    ax.set_ylabel("cluster (k-means pseudo label)")
    ax.set_title(title)
    return fig


def plot_redundancy_vs_delta(
    frame: pd.DataFrame, *, title: str = "Redundancy bits vs margin δ"
) -> Figure:
    """Line plot of the number of redundancy bits against delta, one line per cluster plus the
    mean over clusters, from :func:`~brcd_lib.analysis.redundancy.redundancy_vs_delta`."""
    _require(frame, ["cluster", "delta", "n_redundant_bits"], "plot_redundancy_vs_delta")
    fig, ax = _new_figure(4.2)
    df = frame.copy()
    df["cluster"] = df["cluster"].astype(str)
    sns.lineplot(
        data=df, x="delta", y="n_redundant_bits", hue="cluster", ax=ax, alpha=0.5, linewidth=1.0,
        marker="o", markersize=3,
    )
    mean = frame.groupby("delta", sort=True)["n_redundant_bits"].mean()
    ax.plot(mean.index, mean.values, color="black", linewidth=2.0, label="mean over clusters")
    ax.set_xlabel("margin δ on |cluster bit mean| (unitless)")
    ax.set_ylabel("redundancy bits per cluster (bits)")
    ax.set_title(title)
    ax.legend(title="cluster", fontsize="small", ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def _per_model_bars(ax, frame: pd.DataFrame, *, y: str, single_label: str, mean_lines: bool):
    """Bars of ``y`` per bit; with a ``model`` column, one colour per model side by side (never
    stacked at the same position), and each model's mean as a line of its colour."""
    models = list(dict.fromkeys(frame["model"])) if "model" in frame else [None]
    colors = sns.color_palette("tab10", len(models))
    width = 0.8 / len(models)
    for i, (model, color) in enumerate(zip(models, colors)):
        sub = frame if model is None else frame[frame["model"] == model]
        offset = (i - (len(models) - 1) / 2) * width
        ax.bar(sub["bit"] + offset, sub[y], width=width, color=color,
               label=single_label if model is None else model)
        if mean_lines:
            mean = float(np.mean(sub[y]))
            ax.axhline(mean, color=color, linestyle="--", linewidth=1.2,
                       label=f"mean{'' if model is None else ' ' + str(model)} ({mean:.3f})")


def _legend_outside(ax, title: str | None = None) -> None:
    ax.legend(title=title, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0)


def plot_bit_balance(frame: pd.DataFrame, *, title: str = "Bit balance") -> Figure:
    """Bars of the fraction of +1 per bit with the balanced level 0.5 as a reference line, from
    :func:`~brcd_lib.analysis.redundancy.bit_balance`; with a ``model`` column one bar colour per
    model, side by side."""
    _require(frame, ["bit", "p_plus"], "plot_bit_balance")
    n_models = frame["model"].nunique() if "model" in frame else 1
    fig, ax = _new_figure(3.8)
    _per_model_bars(ax, frame, y="p_plus", single_label="fraction of +1", mean_lines=False)
    ax.axhline(0.5, color="black", linestyle="--", linewidth=1.0, label="balanced (0.5)")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("bit index (position in the code)")
    ax.set_ylabel("fraction of codes with +1 (0 to 1)")
    ax.set_title(title)
    _legend_outside(ax, "model" if n_models > 1 else None)
    fig.tight_layout()
    return fig


def plot_bit_correlation(matrix: pd.DataFrame, *, title: str = "Bit correlation") -> Figure:
    """Heatmap of the L x L Pearson correlation between bits (diverging, centred at 0), from
    :func:`~brcd_lib.analysis.redundancy.bit_correlation`."""
    if not isinstance(matrix, pd.DataFrame) or matrix.shape[0] != matrix.shape[1] or matrix.empty:
        raise ValueError("plot_bit_correlation needs the square DataFrame of bit_correlation(codes)")
    fig, ax = _new_figure(5.4)
    sns.heatmap(
        matrix.astype(float),
        ax=ax,
        cmap=_DIVERGING,
        center=0.0,
        vmin=-1.0,
        vmax=1.0,
        square=True,
        cbar_kws={"label": "Pearson correlation (unitless, -1 to 1)"},
    )
    ax.set_xlabel("bit index (position in the code)")
    ax.set_ylabel("bit index (position in the code)")
    ax.set_title(title)
    return fig


def plot_bit_flip_rate(frame: pd.DataFrame, *, title: str = "Bit flips under augmentation") -> Figure:
    """Bars of the per-bit flip rate between clean and augmented codes, with the mean as a line,
    from :func:`~brcd_lib.analysis.redundancy.bit_flip_rate`; with a ``model`` column one bar
    colour and one mean line per model."""
    _require(frame, ["bit", "flip_rate"], "plot_bit_flip_rate")
    n_models = frame["model"].nunique() if "model" in frame else 1
    fig, ax = _new_figure(3.8)
    _per_model_bars(ax, frame, y="flip_rate", single_label="flip rate", mean_lines=True)
    ax.set_ylim(0.0, max(1e-3, float(np.max(frame["flip_rate"]))) * 1.1)
    ax.set_xlabel("bit index (position in the code)")
    ax.set_ylabel("flip rate (fraction of augmented views)")
    ax.set_title(title)
    _legend_outside(ax, "model" if n_models > 1 else None)
    fig.tight_layout()
    return fig


def plot_offset_rates(
    frame: pd.DataFrame,
    *,
    x: str = "backbone",
    y: str = "offset_positive_rate",
    hue: str | None = None,
    title: str = "Offset positives caused by augmentation",
    xlabel: str | None = None,
) -> Figure:
    """Bars of the offset-positive rate per backbone (``x``), optionally split by ``hue`` (e.g.
    code length). One row per bar in ``frame``; rates come from
    :func:`~brcd_lib.analysis.redundancy.offset_positive_rate`."""
    _require(frame, [x, y] + ([hue] if hue else []), "plot_offset_rates")
    fig, ax = _new_figure(4.2)
    df = frame.copy()
    if hue:
        df[hue] = df[hue].astype(str)
        sns.barplot(data=df, x=x, y=y, hue=hue, ax=ax)
        ax.legend(title=hue, fontsize="small")
    else:
        sns.barplot(data=df, x=x, y=y, ax=ax, color="tab:green", label=y.replace("_", " "))
        ax.legend(fontsize="small")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(xlabel or x.replace("_", " "))
    ax.set_ylabel("offset-positive rate (fraction of views)")
    ax.set_title(title, fontsize="medium")
    ax.set_xticks(ax.get_xticks(), [_wrap(t.get_text()) for t in ax.get_xticklabels()],
                  fontsize="small")
    fig.tight_layout()
    return fig


def _wrap(label: str, width: int = 16) -> str:
    """Break a tick label at spaces so neighbouring labels do not overlap."""
    import textwrap

    return "\n".join(textwrap.wrap(label, width)) or label


def plot_elbow(frame: pd.DataFrame, *, title: str = "k-means elbow") -> Figure:
    """Inertia (left axis) and silhouette (right axis) against K, from
    :func:`~brcd_lib.distill.clustering.elbow_curve`."""
    _require(frame, ["k", "inertia", "silhouette"], "plot_elbow")
    fig, ax = _new_figure(4.2)
    l1 = ax.plot(frame["k"], frame["inertia"], marker="o", color="tab:blue", label="inertia")
    ax.set_xlabel("number of clusters K")
    ax.set_ylabel("inertia (sum of squared distances, bits²)")
    ax2 = ax.twinx()
    l2 = ax2.plot(
        frame["k"], frame["silhouette"], marker="s", color="tab:red", linestyle="--", label="silhouette"
    )
    ax2.set_ylabel("silhouette score (unitless, -1 to 1)")
    ax.set_title(title)
    ax.legend(handles=l1 + l2, loc="upper right", fontsize="small")
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int | None = None,
                width_px: int = FIGURE_WIDTH_PX, max_height_px: int = FIGURE_MAX_HEIGHT_PX) -> Path:
    """Write ``fig`` as PNG to a temporary file in the target folder, then rename it into place;
    returns the path.

    The image is cropped to the drawn content (plus 0.1 in) and written ``width_px`` pixels wide
    (the resolution follows from the content's width; a figure drawn :data:`FIG_WIDTH` wide comes
    out at about 150 dpi), white space added left and right where the content would otherwise be
    taller than ``max_height_px``. ``dpi`` instead writes at that resolution, cropped, any size."""
    from matplotlib.transforms import Bbox

    from ..io import atomic_open  # mode 0644 like every file the kit writes

    path = Path(path)
    if dpi is not None:
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
        return path
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure(): give it the Agg canvas
        FigureCanvasAgg(fig)
    fig.canvas.draw()  # lays the figure out, so the tight box is the one savefig would use
    box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
    width, height = box.width, box.height
    aspect = max_height_px / width_px
    if height > width * aspect:  # too tall for the width: widen the white margins
        extra = (height / aspect - width) / 2
        box = Bbox.from_extents(box.x0 - extra, box.y0, box.x1 + extra, box.y1)
        width = box.width
    # a pixel short of the target from rounding is avoided by aiming a hair above it
    dpi_used = (width_px + 0.25) / width
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi_used, bbox_inches=box)
    return path

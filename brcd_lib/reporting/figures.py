"""Figures of the notebooks that are not bit-level analysis (those are in ``analysis.plots``):
sample images, label distributions, training curves, sensitivity, efficiency trade-off, t-SNE,
precision-recall and precision@K curves, a retrieval case study.

Every function returns a Figure on the Agg canvas with a title, labelled axes (units) and legends
that do not cover the data. Error bars over seeds are 95 % Student-t intervals of the mean
(:func:`seed_summary`), and the titles say so and over how many seeds.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
from scipy import stats as _stats

PARADIGM_COLORS = {"symmetric": "#1f77b4", "asymmetric": "#d62728"}


def seed_summary(frame: pd.DataFrame, keys: list[str], value: str = "value") -> pd.DataFrame:
    """Mean, 95 % t-interval half-width and number of seeds of ``value`` per group of ``keys``
    (half-width 0 for a single seed)."""
    def half(x: pd.Series) -> float:
        n = x.notna().sum()
        return float(_stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0

    g = frame.groupby(keys, sort=False)[value]
    return pd.DataFrame({"mean": g.mean(), "half": g.apply(half), "n": g.count()}).reset_index()


def errorbar_note(n: pd.Series | list[int], unit: str = "seeds", one: str = "seed") -> str:
    """What the error bars of a figure are: "95 % t-interval of the mean over 5 seeds", "... over
    3-5 seeds", or "one seed, no error bars" (``unit`` / ``one``: what is counted)."""
    n = [int(v) for v in n]
    lo, hi = (min(n), max(n)) if n else (0, 0)
    if hi <= 1:
        return f"one {one}, no error bars"
    count = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"error bars: 95 % t-interval of the mean over {count} {unit}"


def _legend_outside(ax, title: str | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, title=title, fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _bars(ax, summary: pd.DataFrame, *, x: str, hue: str | None, order=None, hue_order=None):
    """Grouped bars of ``summary`` (from :func:`seed_summary`) with their interval as error bars."""
    xs = list(order or dict.fromkeys(summary[x]))
    hues = [None] if hue is None else list(hue_order or dict.fromkeys(summary[hue]))
    colors = sns.color_palette("tab10", len(hues))
    width = 0.8 / len(hues)
    for i, (h, color) in enumerate(zip(hues, colors)):
        sub = summary if h is None else summary[summary[hue] == h]
        sub = sub.set_index(x).reindex(xs)
        pos = np.arange(len(xs)) + (i - (len(hues) - 1) / 2) * width
        ax.bar(pos, sub["mean"], width=width, color=color, label=None if h is None else str(h),
               yerr=sub["half"].where(sub["n"] > 1), capsize=2, error_kw={"linewidth": 0.8})
    ax.set_xticks(np.arange(len(xs)), [str(v) for v in xs], rotation=35, ha="right",
                  rotation_mode="anchor")


def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1):
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _image_for_display(img) -> np.ndarray:
    arr = np.asarray(img.numpy() if hasattr(img, "numpy") else img)
    if arr.ndim == 3 and arr.shape[0] in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return arr


def plot_sample_images(images, labels: np.ndarray, *, n_per_class: int = 6,
                       class_names=None, title: str = "Sample training images") -> Figure:
    """A grid: one row per class, ``n_per_class`` images each. ``images`` (n, C, H, W) uint8."""
    class_ids = labels.argmax(1)
    classes = np.unique(class_ids)
    fig, axes = _figure(1.0 * n_per_class + 1.2, 1.0 * len(classes) + 0.6, len(classes), n_per_class)
    for r, c in enumerate(classes):
        idx = np.flatnonzero(class_ids == c)[:n_per_class]
        for j in range(n_per_class):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(idx):
                img = _image_for_display(images[idx[j]])
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            if j == 0:
                ax.set_ylabel(class_names[c] if class_names else f"class {c}", rotation=0,
                              ha="right", va="center")
    fig.suptitle(title)
    return fig


def plot_label_distribution(frame: pd.DataFrame, *, title: str = "Images per class and split",
                            class_names=None) -> Figure:
    """``frame`` with columns split, class, count; ``class_names`` label the classes."""
    frame = frame.copy()
    if class_names is not None:
        frame["class"] = [class_names[int(c)] for c in frame["class"]]
    fig, axes = _figure(9, 3.8)
    ax = axes[0, 0]
    sns.barplot(data=frame, x="class", y="count", hue="split", ax=ax)
    ax.set(title=title, xlabel="class", ylabel="number of images")
    ax.set_yscale("log")
    ax.set_ylabel("number of images (log scale)")
    for label in ax.get_xticklabels():
        label.set(rotation=30, ha="right", rotation_mode="anchor")
    _legend_outside(ax, "split")
    return fig


def plot_training_curves(frame: pd.DataFrame, *, title: str = "Validation mAP during training") -> Figure:
    """``frame`` with columns run, epoch, paradigm, map."""
    fig, axes = _figure(7.5, 3.8)
    ax = axes[0, 0]
    sns.lineplot(data=frame, x="epoch", y="map", hue="run", style="paradigm", marker="o", ax=ax)
    ax.set(title=title, xlabel="epoch", ylabel="validation mAP@K")
    ax.legend(fontsize=7, ncols=2)
    return fig


def plot_sensitivity(frame: pd.DataFrame, *, title: str = "BRCD sensitivity",
                     defaults: dict | None = None, min_span: float = 0.1) -> Figure:
    """``frame`` with columns parameter, setting, paradigm, seed, value (mAP): one panel per
    parameter, the mean over seeds with its 95 % t-interval, the profile's default setting
    (``defaults``: parameter -> value) marked, and a y axis spanning at least ``min_span`` so
    that differences inside the seed spread do not look large."""
    params = list(dict.fromkeys(frame["parameter"]))
    labels = {"alpha": "alpha (weight of the individual term)", "margin": "delta (mask margin)",
              "n_clusters": "K (number of clusters)"}
    frame = frame.copy()
    frame["setting"] = frame["setting"].astype(float)
    summary = seed_summary(frame, ["parameter", "setting", "paradigm"])
    fig, axes = _figure(4.2 * len(params) + 1.5, 3.8, 1, len(params))
    lo = float((summary["mean"] - summary["half"]).min())
    hi = float((summary["mean"] + summary["half"]).max())
    centre, span = (lo + hi) / 2, max(hi - lo, min_span) * 1.1
    for ax, p in zip(axes[0], params):
        sub = summary[summary["parameter"] == p].sort_values("setting")
        for paradigm, color in PARADIGM_COLORS.items():
            line = sub[sub["paradigm"] == paradigm]
            if line.empty:
                continue
            ax.errorbar(line["setting"], line["mean"], yerr=line["half"].where(line["n"] > 1),
                        marker="o", color=color, capsize=3, label=paradigm)
        if defaults and p in defaults:
            ax.axvline(float(defaults[p]), color="gray", linestyle=":", linewidth=1.2,
                       label=f"default ({defaults[p]:g})")
        ax.set_ylim(centre - span / 2, centre + span / 2)
        ax.set(xlabel=labels.get(p, p), ylabel="test mAP@K", title=f"mAP vs {p}")
    _legend_outside(axes[0, -1], "paradigm")
    fig.suptitle(f"{title}\n{errorbar_note(summary['n'])}")
    return fig


def plot_map_vs_latency(frame: pd.DataFrame, *, title: str = "mAP vs query latency") -> Figure:
    """``frame`` with columns model, latency_ms, map (one point per model, each named in the
    legend and beside the point)."""
    fig, axes = _figure(7.5, 4.2)
    ax = axes[0, 0]
    colors = sns.color_palette("tab10", len(frame))
    for (_, row), color in zip(frame.iterrows(), colors):
        ax.scatter(row["latency_ms"], row["map"], s=80, color=color, label=row["model"])
        ax.annotate(row["model"], (row["latency_ms"], row["map"]), textcoords="offset points",
                    xytext=(6, -12), fontsize=8)
    ax.set(title=title, xlabel="query latency, batch 1 (ms, log scale)", ylabel="test mAP@K")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    lat = frame["latency_ms"].astype(float)
    ax.set_xlim(lat.min() / 1.6, lat.max() * 1.6)
    m = frame["map"].astype(float)
    pad = max(0.02, 0.15 * (m.max() - m.min()))
    ax.set_ylim(m.min() - pad, m.max() + pad)
    _legend_outside(ax, "model")
    return fig


def tsne_embedding(codes: np.ndarray, *, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of +-1 codes (Hamming geometry = Euclidean on +-1 up to scale)."""
    from sklearn.manifold import TSNE

    codes = np.asarray(codes, dtype=np.float32)
    perplexity = min(perplexity, max(2.0, (len(codes) - 1) / 3))
    # identical codes (a collapsed model) give a PCA start of zero spread: scikit-learn divides by
    # it and its Barnes-Hut tree then crashes the process (segfault); start at random instead
    init = "pca" if len(np.unique(codes, axis=0)) > 1 else "random"
    return TSNE(n_components=2, perplexity=perplexity, init=init, random_state=seed).fit_transform(codes)


def plot_tsne(embeddings: dict[str, np.ndarray], labels: np.ndarray, *,
              title: str = "t-SNE of hash codes") -> Figure:
    """One panel per model; points coloured by class."""
    names = list(embeddings)
    fig, axes = _figure(4.2 * len(names), 4.2, 1, len(names))
    classes = labels.argmax(1) if labels.ndim == 2 else labels
    for ax, name in zip(axes[0], names):
        xy = embeddings[name]
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=classes, cmap="tab10", s=6)
        ax.set(title=name, xlabel="t-SNE 1 (a.u.)", ylabel="t-SNE 2 (a.u.)")
    fig.colorbar(sc, ax=axes[0, -1], label="class")
    fig.suptitle(title)
    return fig


def plot_curves(frame: pd.DataFrame, *, x: str, y: str, xlabel: str, ylabel: str, title: str) -> Figure:
    """Line curves per model (hue) and paradigm (style): precision-recall, precision@K."""
    fig, axes = _figure(6.5, 4)
    ax = axes[0, 0]
    sns.lineplot(data=frame, x=x, y=y, hue="model", style="paradigm" if "paradigm" in frame else None,
                 ax=ax, errorbar=None)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=8)
    return fig


def plot_case_study(query_images, result_images, relevant: np.ndarray, *, row_labels,
                    title: str = "Retrieval case study (top 10; green = relevant)") -> Figure:
    """Rows: queries; first column the query, then its top results framed green (relevant) or
    red (not relevant). ``result_images[i][j]`` image of result j of query i."""
    n_rows, n_res = len(query_images), len(result_images[0])
    fig, axes = _figure(1.0 * (n_res + 1) + 1.5, 1.1 * n_rows + 0.6, n_rows, n_res + 1)
    for i in range(n_rows):
        row = [query_images[i]] + list(result_images[i])
        for j, img in enumerate(row):
            ax = axes[i, j]
            arr = _image_for_display(img)
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=8)
                color = "black"
            else:
                color = "green" if relevant[i][j - 1] else "red"
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(2.5)
        axes[i, 0].set_title("query" if i == 0 else "", fontsize=8)
    fig.suptitle(title)
    return fig


def plot_kept_bits(frame: pd.DataFrame, *, title: str = "Kept bits per cluster") -> Figure:
    """``frame`` from :func:`brcd_lib.summaries.mask_statistics` (one or several rules)."""
    fig, axes = _figure(7, 3.5)
    ax = axes[0, 0]
    sns.barplot(data=frame, x="cluster", y="kept_bits", hue="rule", ax=ax)
    ax.set(title=title, xlabel="cluster", ylabel="kept bits (count)")
    ax.legend(title="mask rule", fontsize=8)
    return fig


def plot_grid_bars(frame: pd.DataFrame, *, x: str, title: str, xlabel: str, hue: str = "bits",
                   hue_label: str = "bits", order=None) -> Figure:
    """Mean test mAP per ``x`` category (in ``order``), one panel per paradigm, bars coloured by
    ``hue`` (code length by default), with the 95 % t-interval over seeds as error bars; the
    title says over how many seeds (none for a single seed)."""
    paradigms = list(dict.fromkeys(frame["paradigm"]))
    summary = seed_summary(frame, [x, hue, "paradigm"])
    order = [v for v in (order or dict.fromkeys(frame[x])) if v in set(frame[x])]
    fig, axes = _figure(max(5.5, 0.55 * len(order) + 2.5) * len(paradigms) + 1.2, 4.4, 1,
                        len(paradigms))
    for ax, p in zip(axes[0], paradigms):
        _bars(ax, summary[summary["paradigm"] == p], x=x, hue=hue, order=order)
        ax.set(title=f"{p} paradigm", xlabel=xlabel, ylabel="test mAP@K")
    _legend_outside(axes[0, -1], hue_label)
    fig.suptitle(f"{title}\n{errorbar_note(summary['n'])}")
    return fig


def plot_paired_differences(frame: pd.DataFrame, *, title: str,
                            xlabel: str = "difference in test mAP@K (BRCD minus the other)") -> Figure:
    """Paired differences with their 95 % intervals as horizontal bars around a zero line.
    ``frame``: columns ``compared`` (label), ``paradigm``, ``mean``, ``low``, ``high``, ``n``."""
    labels = list(dict.fromkeys(frame["compared"]))
    paradigms = list(dict.fromkeys(frame["paradigm"]))
    fig, axes = _figure(7.5, 0.35 * len(labels) * len(paradigms) + 1.8)
    ax = axes[0, 0]
    step = 0.8 / max(len(paradigms), 1)
    for i, p in enumerate(paradigms):
        sub = frame[frame["paradigm"] == p].set_index("compared").reindex(labels)
        pos = np.arange(len(labels)) + (i - (len(paradigms) - 1) / 2) * step
        err = np.vstack([(sub["mean"] - sub["low"]).to_numpy(), (sub["high"] - sub["mean"]).to_numpy()])
        ax.errorbar(sub["mean"], pos, xerr=np.where(np.isfinite(err), err, 0.0), fmt="o",
                    color=PARADIGM_COLORS.get(p), capsize=3, label=p)
    ax.axvline(0.0, color="black", linewidth=1.0)
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.invert_yaxis()
    ax.set(xlabel=xlabel, title=f"{title}\n{errorbar_note(frame['n'], 'pairs of runs', 'pair of runs')}")
    _legend_outside(ax, "paradigm")
    return fig

"""Figures of the notebooks that are not bit-level analysis (those are in ``analysis.plots``):
sample images, label distributions, training curves, sensitivity, efficiency trade-off, t-SNE,
precision-recall and precision@K curves, a retrieval case study, results per method and paired
differences.

Every function returns a Figure on the Agg canvas, :data:`FIG_WIDTH` inches wide (the saved PNG is
:data:`~brcd_lib.analysis.plots.FIGURE_WIDTH_PX` pixels wide and at most
:data:`~brcd_lib.analysis.plots.FIGURE_MAX_HEIGHT_PX` tall, so JupyterLab and the report show every
figure at the same scale), with a title, labelled axes (units) and legends that do not cover the
data. Results over seeds are dots with error bars (no bars from 0, which would hide differences of
0.01): the mean and its 95 % Student-t interval (:func:`seed_summary`); every title says so and over
how many seeds. Tables, in contrast, show mean ± seed standard deviation.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
from scipy import stats as _stats

from ..analysis.plots import FIG_MAX_HEIGHT, FIG_WIDTH

PARADIGM_COLORS = {"symmetric": "#1f77b4", "asymmetric": "#d62728"}
MARGIN_BAND = 0.01  # the claims' smallest effect of interest, drawn around 0 (catalogue.MARGIN)


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


def _legend_below(fig, handles, labels, title: str | None = None, ncols: int | None = None) -> None:
    if handles:
        fig.legend(handles, labels, title=title, fontsize=8, title_fontsize=8, loc="outside lower center",
                   ncols=ncols or min(len(labels), 4), frameon=False)


def _legend_outside(ax, title: str | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, title=title, fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _figure(height: float, nrows: int = 1, ncols: int = 1, **kw):
    """A constrained-layout figure :data:`FIG_WIDTH` wide and ``height`` (capped at
    :data:`FIG_MAX_HEIGHT`) tall."""
    fig = Figure(figsize=(FIG_WIDTH, min(height, FIG_MAX_HEIGHT)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
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
    """A grid of ``n_per_class`` images per class; classes in two blocks side by side when there
    are more than five (so the figure stays wider than tall). ``images`` (n, C, H, W) uint8."""
    class_ids = labels.argmax(1)
    classes = list(np.unique(class_ids))
    blocks = 2 if len(classes) > 5 else 1
    rows = math.ceil(len(classes) / blocks)
    cols = blocks * n_per_class
    cell = FIG_WIDTH / (cols + 1.2 * blocks)
    fig, axes = _figure(cell * rows + 0.6, rows, cols)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for i, c in enumerate(classes):
        r, block = i % rows, i // rows
        idx = np.flatnonzero(class_ids == c)[:n_per_class]
        for j in range(n_per_class):
            ax = axes[r, block * n_per_class + j]
            if j < len(idx):
                img = _image_for_display(images[idx[j]])
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            if j == 0:
                ax.set_ylabel(class_names[c] if class_names else f"class {c}", rotation=0,
                              ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_label_distribution(frame: pd.DataFrame, *, title: str = "Images per class and split",
                            class_names=None) -> Figure:
    """``frame`` with columns split, class, count; one panel per split on a linear axis from 0
    (splits differ by orders of magnitude, so each has its own scale; no log axis whose
    baseline would be arbitrary); ``class_names`` label the classes."""
    frame = frame.copy()
    if class_names is not None:
        frame["class"] = [class_names[int(c)] for c in frame["class"]]
    splits = list(dict.fromkeys(frame["split"]))
    ncols = 2 if len(splits) > 1 else 1
    nrows = math.ceil(len(splits) / ncols)
    fig, axes = _figure(2.3 * nrows + 0.8, nrows, ncols)
    for ax, split in zip(axes.flat, splits):
        sub = frame[frame["split"] == split]
        ax.bar(np.arange(len(sub)), sub["count"], color="#4c72b0")
        ax.set_xticks(np.arange(len(sub)), [str(c) for c in sub["class"]], rotation=40, ha="right",
                      rotation_mode="anchor", fontsize=7)
        ax.set_ylim(0, float(sub["count"].max()) * 1.1 or 1)
        ax.set_title(f"{split} ({int(sub['count'].sum()):,} class labels)", fontsize=9)
        ax.set_ylabel("images with the class", fontsize=8)
    for ax in list(axes.flat)[len(splits):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}\n(a multi-label image counts once per class; axes start at 0)",
                 fontsize=10)
    return fig


def plot_training_curves(frame: pd.DataFrame, *, title: str = "Validation mAP during training") -> Figure:
    """``frame`` with columns run, epoch, paradigm, map."""
    fig, axes = _figure(4.0)
    ax = axes[0, 0]
    sns.lineplot(data=frame, x="epoch", y="map", hue="run", style="paradigm", marker="o", ax=ax)
    ax.set(title=title, xlabel="epoch", ylabel="validation mAP@K")
    handles, labels = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    _legend_below(fig, handles, labels, ncols=4)
    return fig


_PARAM_LABELS = {"alpha": "alpha (weight of the individual term)", "margin": "delta (mask margin)",
                 "n_clusters": "K (number of clusters)"}


def plot_sensitivity(frame: pd.DataFrame, *, title: str = "BRCD sensitivity",
                     defaults: dict | None = None, min_span: float = 0.1) -> Figure:
    """``frame`` with columns parameter, setting, paradigm, seed, value (mAP): one panel per
    parameter, the mean over seeds with its 95 % t-interval, and in each panel its own default
    setting (``defaults``: parameter -> value) marked by a dotted line labelled inside that panel
    (the legend holds only the paradigms); a y axis spanning at least ``min_span`` so that
    differences inside the seed spread do not look large."""
    params = list(dict.fromkeys(frame["parameter"]))
    frame = frame.copy()
    frame["setting"] = frame["setting"].astype(float)
    summary = seed_summary(frame, ["parameter", "setting", "paradigm"])
    fig, axes = _figure(3.6, 1, len(params))
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
                        marker="o", markersize=4, color=color, capsize=3, label=paradigm)
        ax.set_ylim(centre - span / 2, centre + span / 2)
        if defaults and p in defaults:
            ax.axvline(float(defaults[p]), color="gray", linestyle=":", linewidth=1.2)
            ax.text(float(defaults[p]), centre + span / 2, f" default {defaults[p]:g}",
                    ha="left", va="top", fontsize=7, color="dimgray")
        ax.set_xlabel(_PARAM_LABELS.get(p, p), fontsize=8)
        ax.set_title(f"mAP vs {p}", fontsize=9)
    axes[0, 0].set_ylabel("test mAP@K")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    _legend_below(fig, handles, labels, title="paradigm")
    fig.suptitle(f"{title}\n{errorbar_note(summary['n'])}", fontsize=10)
    return fig


def plot_map_vs_latency(frame: pd.DataFrame, *, title: str = "mAP vs query latency") -> Figure:
    """``frame`` with columns model, latency_ms, map, and optionally ``half`` (95 % t-interval
    half-width of the mean over seeds) and ``n`` (seeds): one point per model, named in the
    legend and beside the point; error bars where ``n > 1``, and the title says what they are."""
    fig, axes = _figure(4.2)
    ax = axes[0, 0]
    colors = sns.color_palette("tab10", len(frame))
    has_ci = "half" in frame and "n" in frame
    seen: dict[float, int] = {}
    for (_, row), color in zip(frame.iterrows(), colors):
        yerr = row["half"] if has_ci and row["n"] > 1 else None
        label = row["model"] + (f" (mean of {int(row['n'])} seeds)" if has_ci and row["n"] > 1
                                else " (one run)" if has_ci else "")
        k = seen.get(float(row["latency_ms"]), 0)  # models at one latency: side by side
        seen[float(row["latency_ms"])] = k + 1
        x = float(row["latency_ms"]) * 1.08 ** k
        ax.errorbar(x, row["map"], yerr=yerr, fmt="o", markersize=7, capsize=4, color=color,
                    label=label)
    if has_ci and (frame["n"] > 1).any():
        many = frame[frame["n"] > 1]
        note = errorbar_note(many["n"]) + (" (students); one run where no bar" if
                                           (frame["n"] <= 1).any() else "")
    else:
        note = "one run per model, no error bars"
    ax.set(title=f"{title}\n{note}", xlabel="query latency, batch 1 (ms, log scale)",
           ylabel="test mAP@K")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    lat = frame["latency_ms"].astype(float)
    ax.set_xlim(lat.min() / 1.6, lat.max() * 1.6)
    m = frame["map"].astype(float)
    h = frame["half"].astype(float).fillna(0.0) if has_ci else 0.0 * m
    pad = max(0.02, 0.15 * float((m + h).max() - (m - h).min()))
    ax.set_ylim(float((m - h).min()) - pad, float((m + h).max()) + pad)
    handles, labels = ax.get_legend_handles_labels()
    _legend_below(fig, handles, labels, ncols=1)
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


def colour_classes(labels: np.ndarray) -> tuple[np.ndarray, str]:
    """One class per item to colour it by, and how it was chosen: the class itself for
    single-label items; for multi-label items the *rarest* of the item's classes among the
    plotted items (ties: the lower class id), so that rare classes stay visible instead of
    being hidden under the lowest class id (``argmax`` of a multi-hot row)."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels.astype(int), "class"
    multi = (labels.sum(1) > 1).any()
    if not multi:
        return labels.argmax(1), "class"
    freq = labels.sum(0).astype(float)
    rank = np.where(labels > 0, freq[None, :], np.inf)
    return rank.argmin(1), "rarest class of the item (multi-label)"


def plot_tsne(embeddings: dict[str, np.ndarray], labels: np.ndarray, *,
              title: str = "t-SNE of hash codes", class_names=None) -> Figure:
    """One panel per model; points coloured by class (:func:`colour_classes`: the rarest class
    of a multi-label item), with a categorical legend."""
    names = list(embeddings)
    fig, axes = _figure(FIG_WIDTH / max(len(names), 1) + 1.4, 1, len(names))
    classes, how = colour_classes(labels)
    present = sorted(set(int(c) for c in classes))
    palette = sns.color_palette("tab10" if len(present) <= 10 else "tab20", max(present) + 1)
    colors = [palette[int(c)] for c in classes]
    for ax, name in zip(axes[0], names):
        xy = embeddings[name]
        ax.scatter(xy[:, 0], xy[:, 1], c=colors, s=4, linewidths=0)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("t-SNE 1 (a.u.)", fontsize=8)
    axes[0, 0].set_ylabel("t-SNE 2 (a.u.)", fontsize=8)
    handles = [Line2D([], [], marker="o", linestyle="", color=palette[c], markersize=5) for c in present]
    labels_txt = [class_names[c] if class_names else str(c) for c in present]
    _legend_below(fig, handles, labels_txt, title=f"colour: {how}", ncols=min(len(present), 10))
    fig.suptitle(title, fontsize=10)
    return fig


def plot_curves(frame: pd.DataFrame, *, x: str, y: str, xlabel: str, ylabel: str, title: str) -> Figure:
    """Line curves per model (hue) and paradigm (style): precision-recall, precision@K. Points
    whose ``y`` is undefined (NaN: e.g. no query retrieved anything within that radius) are left
    out, never drawn as 0."""
    frame = frame[frame[y].notna()]
    fig, axes = _figure(4.2)
    ax = axes[0, 0]
    sns.lineplot(data=frame, x=x, y=y, hue="model", style="paradigm" if "paradigm" in frame else None,
                 ax=ax, errorbar=None, marker="o", markersize=3)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    handles, labels = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    _legend_below(fig, handles, labels, ncols=4)
    return fig


def plot_case_study(query_images, result_images, relevant: np.ndarray, *, row_labels,
                    title: str = "Retrieval case study (top 10; green = relevant)") -> Figure:
    """Rows: queries; first column the query, then its top results framed green (relevant) or
    red (not relevant). ``result_images[i][j]`` image of result j of query i."""
    n_rows, n_res = len(query_images), len(result_images[0])
    cell = FIG_WIDTH / (n_res + 2.6)
    fig, axes = _figure(cell * 1.1 * n_rows + 0.9, n_rows, n_res + 1)
    for i in range(n_rows):
        row = [query_images[i]] + list(result_images[i])
        for j, img in enumerate(row):
            ax = axes[i, j]
            arr = _image_for_display(img)
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(row_labels[i], rotation=0, ha="right", va="center", fontsize=6)
                color = "black"
            else:
                color = "green" if relevant[i][j - 1] else "red"
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(2.0)
        axes[i, 0].set_title("query" if i == 0 else "", fontsize=7)
    fig.suptitle(title, fontsize=9, wrap=True)
    return fig


def plot_kept_bits(frame: pd.DataFrame, *, title: str = "Kept bits per cluster") -> Figure:
    """``frame`` from :func:`brcd_lib.summaries.mask_statistics` (one or several rules)."""
    fig, axes = _figure(3.6)
    ax = axes[0, 0]
    sns.barplot(data=frame, x="cluster", y="kept_bits", hue="rule", ax=ax)
    ax.set(title=title, xlabel="cluster", ylabel="kept bits (count)")
    ax.legend(title="mask rule", fontsize=8)
    return fig


def _collapsed(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: runs whose warnings say the codes collapsed, and all runs."""
    flag = frame["warnings"].fillna("").astype(str).str.contains("collapsed codes") \
        if "warnings" in frame else pd.Series(False, index=frame.index)
    out = frame.assign(_c=flag).groupby(keys, sort=False)["_c"].agg(["sum", "count"])
    return out.rename(columns={"sum": "collapsed", "count": "runs"}).reset_index()


def _hue_title(frame: pd.DataFrame, hue: str, given: str) -> str:
    """The legend title: where the rows carry ``axis`` (what the settings vary) and the hue is
    the setting, the axes the rows hold; else ``given``."""
    if hue == "setting" and "axis" in frame:
        return " / ".join(str(a) for a in dict.fromkeys(frame["axis"].dropna()))
    return given


def plot_grid_bars(frame: pd.DataFrame, *, x: str, title: str, xlabel: str, hue: str = "bits",
                   hue_label: str = "bits", order=None, references: pd.DataFrame | None = None) -> Figure:
    """Mean test mAP per ``x`` category (rows, in ``order``), one panel per paradigm, one dot
    per ``hue`` value (code length by default) with the 95 % t-interval over seeds: a dot plot
    on an axis fitted to the data (bars from 0 would hide differences of 0.01). Cells holding
    runs whose codes collapsed (``warnings``) are drawn hollow and counted in the title.
    ``references``: lines to compare with (columns ``paradigm``, ``label``, ``value``, optional
    ``category``: a reference for one row only, e.g. a pair's teacher)."""
    paradigms = list(dict.fromkeys(frame["paradigm"]))
    summary = seed_summary(frame, [x, hue, "paradigm"])
    flags = _collapsed(frame, [x, hue, "paradigm"])
    summary = summary.merge(flags, on=[x, hue, "paradigm"], how="left")
    order = [v for v in (order or dict.fromkeys(frame[x])) if v in set(frame[x])]
    hues = list(dict.fromkeys(frame[hue]))
    colors = dict(zip(hues, sns.color_palette("tab10", len(hues))))
    fig, axes = _figure(0.32 * len(order) * max(1.0, len(hues) / 3) + 1.9, 1, len(paradigms),
                        sharey=True)
    step = 0.7 / max(len(hues), 1)
    ypos = {c: i for i, c in enumerate(order)}
    ref_handles = {}
    for ax, p in zip(axes[0], paradigms):
        sub = summary[summary["paradigm"] == p]
        for k, h in enumerate(hues):
            line = sub[sub[hue] == h]
            if line.empty:
                continue
            y = np.array([ypos[c] for c in line[x]]) + (k - (len(hues) - 1) / 2) * step
            err = line["half"].where(line["n"] > 1).fillna(0.0)
            collapsed = line["collapsed"].fillna(0) > 0
            ax.errorbar(line["mean"], y, xerr=err, fmt="none", ecolor=colors[h], capsize=2,
                        linewidth=1.0)
            ax.scatter(line["mean"][~collapsed], y[~collapsed.to_numpy()], color=colors[h], s=22,
                       zorder=3, label=str(h))
            if collapsed.any():
                ax.scatter(line["mean"][collapsed], y[collapsed.to_numpy()], facecolors="white",
                           edgecolors=colors[h], s=26, zorder=3, linewidths=1.3)
        if references is not None and len(references):
            for _, r in references[references["paradigm"] == p].iterrows():
                cat = r.get("category")
                style = {"color": "black" if r["label"].startswith("teacher") else "gray",
                         "linestyle": "--" if r["label"].startswith("teacher") else ":",
                         "linewidth": 1.2}
                if isinstance(cat, str) and cat in ypos:
                    handle = ax.vlines(r["value"], ypos[cat] - 0.45, ypos[cat] + 0.45, **style)
                else:
                    handle = ax.axvline(r["value"], **style)
                ref_handles.setdefault(r["label"].split(" (")[0], handle)
        ax.set_yticks(np.arange(len(order)), [str(v) for v in order], fontsize=8)
        ax.set_ylim(len(order) - 0.5, -0.5)
        ax.set_title(f"{p} paradigm", fontsize=9)
        ax.set_xlabel("test mAP@K", fontsize=8)
        ax.grid(axis="y", visible=False)
    axes[0, 0].set_ylabel(xlabel, fontsize=8)
    handles, labels = [], []
    for h in hues:
        handles.append(Line2D([], [], marker="o", linestyle="", color=colors[h]))
        labels.append(str(h))
    n_collapsed = int((flags["collapsed"] > 0).sum())
    if n_collapsed:
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white",
                              markeredgecolor="black"))
        labels.append("hollow: cell with collapsed runs")
    for label, handle in ref_handles.items():
        handles.append(Line2D([], [], color=handle.get_color() if hasattr(handle, "get_color")
                              else "black", linestyle="--" if label.startswith("teacher") else ":"))
        labels.append(label)
    _legend_below(fig, handles, labels, title=_hue_title(frame, hue, hue_label),
                  ncols=min(len(labels), 4))
    note = errorbar_note(summary["n"])
    if n_collapsed:
        runs = flags[flags["collapsed"] > 0]
        note += (f"; {int(runs['collapsed'].sum())} of {int(runs['runs'].sum())} runs in "
                 f"{n_collapsed} hollow cells collapsed (codes nearly constant)")
    fig.suptitle(f"{title}\n{note}", fontsize=10)
    return fig


def plot_paired_differences(frame: pd.DataFrame, *, title: str,
                            xlabel: str = "BRCD minus the other (test mAP@K)",
                            margin: float | None = MARGIN_BAND) -> Figure:
    """Paired differences with their raw 95 % intervals around a zero line, one panel per
    paradigm (rows) and code length (columns: each length, then ``pooled``; or one column when
    ``frame`` has no ``bits``), each panel on its own x axis so that a +-0.01 interval stays
    readable next to a +0.6 one. ``margin``: the smallest effect of interest, shaded around 0.
    ``frame``: columns ``compared`` (label), ``paradigm``, ``mean``, ``low``, ``high``, ``n``
    and optionally ``bits``."""
    labels = list(dict.fromkeys(frame["compared"]))
    paradigms = list(dict.fromkeys(frame["paradigm"]))
    lengths = list(dict.fromkeys(frame["bits"].astype(str))) if "bits" in frame else [None]
    lengths = sorted([b for b in lengths if b != "pooled"], key=lambda b: (b is None, int(b) if b else 0)) + \
        [b for b in lengths if b == "pooled"]
    fig, axes = _figure(0.22 * len(labels) * len(paradigms) + 1.6 + 0.4 * len(paradigms),
                        len(paradigms), len(lengths), sharey=True)
    for r, p in enumerate(paradigms):
        for c, b in enumerate(lengths):
            ax = axes[r, c]
            sub = frame[frame["paradigm"] == p]
            if b is not None:
                sub = sub[sub["bits"].astype(str) == b]
            sub = sub.set_index("compared").reindex(labels)
            pos = np.arange(len(labels))
            err = np.vstack([(sub["mean"] - sub["low"]).to_numpy(),
                             (sub["high"] - sub["mean"]).to_numpy()])
            if margin:
                ax.axvspan(-margin, margin, color="0.9", zorder=0)
            ax.axvline(0.0, color="black", linewidth=0.8)
            ax.errorbar(sub["mean"], pos, xerr=np.where(np.isfinite(err), err, 0.0), fmt="o",
                        markersize=3.5, color=PARADIGM_COLORS.get(p), capsize=2, linewidth=1.0)
            finite = sub[["low", "high", "mean"]].to_numpy(dtype=float)
            finite = finite[np.isfinite(finite)]
            if finite.size:
                lo, hi = min(finite.min(), -(margin or 0)), max(finite.max(), margin or 0)
                pad = 0.08 * (hi - lo or 1.0)
                ax.set_xlim(lo - pad, hi + pad)
            ax.tick_params(axis="x", labelsize=7, labelrotation=30)
            head = "pooled over lengths" if b == "pooled" else f"{b} bits" if b else p
            if r == 0 or b is None:
                ax.set_title(head, fontsize=8)
            if c == 0 and b is not None:
                ax.set_ylabel(p, fontsize=9, color=PARADIGM_COLORS.get(p, "black"))
            ax.set_yticks(pos, labels, fontsize=7)
            ax.set_ylim(len(labels) - 0.5, -0.5)
            ax.grid(axis="y", visible=False)
    fig.supxlabel(xlabel, fontsize=8)
    note = errorbar_note(frame["n"], "units (seeds)", "unit")
    band = f"; grey band: ±{margin:g}, the smallest effect of interest" if margin else ""
    fig.suptitle(f"{title}\n{note} (raw, not adjusted){band}", fontsize=9)
    return fig

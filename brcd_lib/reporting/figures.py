"""Figures of the notebooks that are not bit-level analysis (those are in ``analysis.plots``):
sample images, label distributions, training curves, sensitivity, efficiency trade-off, t-SNE,
precision-recall and precision@K curves, a retrieval case study.

Every function returns a Figure on the Agg canvas with a title, labelled axes (units) and legends.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

PARADIGM_COLORS = {"symmetric": "#1f77b4", "asymmetric": "#d62728"}


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


def plot_label_distribution(frame: pd.DataFrame, *, title: str = "Images per class and split") -> Figure:
    """``frame`` with columns split, class, count."""
    fig, axes = _figure(8, 3.6)
    ax = axes[0, 0]
    sns.barplot(data=frame, x="class", y="count", hue="split", ax=ax)
    ax.set(title=title, xlabel="class", ylabel="number of images")
    ax.legend(title="split", fontsize=8)
    return fig


def plot_training_curves(frame: pd.DataFrame, *, title: str = "Validation mAP during training") -> Figure:
    """``frame`` with columns run, epoch, paradigm, map."""
    fig, axes = _figure(7.5, 3.8)
    ax = axes[0, 0]
    sns.lineplot(data=frame, x="epoch", y="map", hue="run", style="paradigm", marker="o", ax=ax)
    ax.set(title=title, xlabel="epoch", ylabel="validation mAP@K")
    ax.legend(fontsize=7, ncols=2)
    return fig


def plot_sensitivity(frame: pd.DataFrame, *, title: str = "BRCD sensitivity") -> Figure:
    """``frame`` with columns parameter, setting, paradigm, value (mAP), one panel per parameter,
    mean and a 95% interval over seeds."""
    params = list(dict.fromkeys(frame["parameter"]))
    labels = {"alpha": "alpha (weight of the individual term)", "margin": "delta (mask margin)",
              "n_clusters": "K (number of clusters)"}
    fig, axes = _figure(4.2 * len(params), 3.6, 1, len(params))
    for ax, p in zip(axes[0], params):
        sub = frame[frame["parameter"] == p].copy()
        sub["setting"] = sub["setting"].astype(float)
        sns.lineplot(data=sub, x="setting", y="value", hue="paradigm", marker="o",
                     palette=PARADIGM_COLORS, ax=ax, errorbar=("ci", 95))
        ax.set(xlabel=labels.get(p, p), ylabel="test mAP@K", title=f"mAP vs {p}")
        ax.legend(title="paradigm", fontsize=8)
    fig.suptitle(title)
    return fig


def plot_map_vs_latency(frame: pd.DataFrame, *, title: str = "mAP vs query latency") -> Figure:
    """``frame`` with columns model, latency_ms, map (one point per model)."""
    fig, axes = _figure(6, 4)
    ax = axes[0, 0]
    sns.scatterplot(data=frame, x="latency_ms", y="map", hue="model", s=80, ax=ax)
    for _, row in frame.iterrows():
        ax.annotate(row["model"], (row["latency_ms"], row["map"]), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)
    ax.set(title=title, xlabel="query latency, batch 1 (ms)", ylabel="test mAP@K")
    ax.set_xscale("log")
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
                   hue_label: str = "bits") -> Figure:
    """Mean test mAP (with 95% interval over seeds) per ``x`` category, one panel per paradigm,
    bars coloured by ``hue`` (code length by default)."""
    paradigms = list(dict.fromkeys(frame["paradigm"]))
    fig, axes = _figure(5.5 * len(paradigms), 4, 1, len(paradigms))
    for ax, p in zip(axes[0], paradigms):
        sns.barplot(data=frame[frame["paradigm"] == p], x=x, y="value", hue=hue, ax=ax,
                    errorbar=("ci", 95))
        ax.set(title=f"{p} paradigm", xlabel=xlabel, ylabel="test mAP@K")
        for label in ax.get_xticklabels():
            label.set(rotation=35, ha="right", rotation_mode="anchor")
        ax.legend(title=hue_label, fontsize=8, loc="lower right")
    fig.suptitle(title)
    return fig

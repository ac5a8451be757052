"""Every figure of the kit at one width and at most one screen tall, and what each figure must
show: dots with intervals instead of bars from 0, per-panel axes for paired differences, the
sensitivity defaults in their own panels, collapsed runs flagged, reference lines, t-SNE colours
that keep rare classes, PR curves without the undefined point, seed means for the latency
trade-off, label counts on a linear axis from 0."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brcd_lib.analysis import plots
from brcd_lib.analysis.redundancy import (bit_balance, bit_correlation, bit_flip_rate,
                                          cluster_bit_means, redundancy_vs_delta)
from brcd_lib.reporting import efficiency, figures, summaries
from brcd_lib.reporting.pairs import pair_references
from brcd_lib.reporting.stats import paired_by_length


def _rows(methods=("none", "kd", "brcd"), bits=(16, 32), seeds=range(3), setting=None):
    rng = np.random.default_rng(0)
    out = []
    for m in methods:
        for b in bits:
            for p in ("symmetric", "asymmetric"):
                for s in seeds:
                    base = {"none": 0.60, "kd": 0.62, "brcd": 0.63, "rkd": 0.5}.get(m, 0.6)
                    v = base if p == "symmetric" else (0.1 if m in ("none", "rkd") else base - 0.1)
                    out.append({"method": m, "bits": b, "paradigm": p, "seed": s,
                                "value": v + rng.normal(0, 0.004), "status": "ok",
                                **({"setting": setting, "axis": "hashing model"} if setting else {})})
    return pd.DataFrame(out)


def _all_figures():
    rows = _rows(methods=("none", "kd", "sp", "brcd"), bits=(16, 32, 64))
    gen = pd.concat([_rows(methods=("none", "kd", "rkd", "brcd"), bits=(32,), setting=s)
                     for s in ("cibhash", "bihalf", "greedyhash")], ignore_index=True)
    gen["warnings"] = np.where((gen["method"] == "none") & (gen["setting"] == "greedyhash"),
                               "none/greedyhash: collapsed codes: 32 of 32 bits", None)
    sens = pd.DataFrame([{"parameter": p, "setting": v, "paradigm": par, "seed": s,
                          "value": 0.6 + 0.01 * s} for p, vals in
                         {"alpha": [0.0, 0.5, 0.8, 1.0], "margin": [0.0, 0.5, 0.9],
                          "n_clusters": [5, 10, 20]}.items()
                         for v in vals for par in ("symmetric", "asymmetric") for s in range(3)])
    rng = np.random.default_rng(1)
    codes = rng.choice([-1.0, 1.0], size=(60, 32))
    labels = rng.integers(0, 10, size=60)
    views = codes * rng.choice([1.0, -1.0], p=[0.9, 0.1], size=(2, 60, 32))
    images = rng.integers(0, 255, size=(60, 1, 8, 8), dtype=np.uint8)
    onehot = np.eye(10)[labels]
    lines = paired_by_length(rows, column="method", reference="brcd", others=["none", "kd", "sp"])
    trade = efficiency.tradeoff_frame(teacher=("teacher", 2.0, 0.72),
                                      students={"BRCD": [0.63, 0.64, 0.635], "no KD": [0.62, 0.63]},
                                      student_latency_ms=0.2)
    dist = pd.DataFrame([{"split": s, "class": c, "count": n * (c + 1)}
                         for s, n in (("train", 50), ("val", 5), ("query", 10), ("database", 600))
                         for c in range(10)])
    curves = pd.DataFrame({"model": "m", "paradigm": "symmetric", "recall": [0.0, 0.2, 0.5, 1.0],
                           "precision": [np.nan, 0.9, 0.7, 0.1]})
    return {
        "main_results": figures.plot_grid_bars(rows, x="method", title="t", xlabel="method"),
        "paired": figures.plot_paired_differences(lines, title="t"),
        "generality": figures.plot_grid_bars(gen, x="method", hue="setting",
                                             hue_label="hashing model / backbone", title="t",
                                             xlabel="method"),
        "sensitivity": figures.plot_sensitivity(sens, defaults={"alpha": 0.8, "margin": 0.5,
                                                                "n_clusters": 10}),
        "latency": figures.plot_map_vs_latency(trade),
        "labels": figures.plot_label_distribution(dist),
        "curves": figures.plot_curves(curves, x="recall", y="precision", xlabel="recall",
                                      ylabel="precision", title="t"),
        "tsne": figures.plot_tsne({"a": codes[:, :2], "b": codes[:, 2:4], "c": codes[:, 4:6]}, onehot),
        "samples": figures.plot_sample_images(images, onehot, n_per_class=6),
        "case": figures.plot_case_study(list(images[:5]), [list(images[i:i + 10]) for i in range(5)],
                                        np.ones((5, 10), bool), row_labels=["q"] * 5),
        "kept": figures.plot_kept_bits(pd.DataFrame({"cluster": [0, 1], "kept_bits": [3, 4],
                                                     "rule": "paper"})),
        "curves_train": figures.plot_training_curves(pd.DataFrame(
            {"run": "r", "epoch": [1, 2], "paradigm": "symmetric", "map": [0.5, 0.6]})),
        "cluster_means": plots.plot_cluster_bit_means(cluster_bit_means(codes, labels)),
        "redundancy": plots.plot_redundancy_vs_delta(redundancy_vs_delta(codes, labels, [0.0, 0.5])),
        "balance": plots.plot_bit_balance(pd.concat([bit_balance(codes).assign(model=m)
                                                     for m in ("a", "b", "c")])),
        "correlation": plots.plot_bit_correlation(bit_correlation(codes)),
        "flips": plots.plot_bit_flip_rate(bit_flip_rate(codes, views)),
        "offsets": plots.plot_offset_rates(pd.DataFrame({"backbone": ["a", "b"],
                                                         "offset_positive_rate": [0.1, 0.2]})),
        "elbow": plots.plot_elbow(pd.DataFrame({"k": [2, 4], "inertia": [9.0, 5.0],
                                                "silhouette": [0.3, 0.2]})),
    }


@pytest.fixture(scope="module")
def all_figures():
    return _all_figures()


def test_every_figure_has_one_width_and_fits_a_screen(all_figures, tmp_path):
    for name, fig in all_figures.items():
        assert fig.get_size_inches()[0] == pytest.approx(plots.FIG_WIDTH), name
        path = plots.save_figure(fig, tmp_path / f"{name}.png")
        width, height = Image.open(path).size
        assert abs(width - plots.FIGURE_WIDTH_PX) <= 1, (name, width)
        assert height <= plots.FIGURE_MAX_HEIGHT_PX + 1, (name, height)


def test_results_are_dots_on_a_fitted_axis_not_bars_from_zero(all_figures):
    fig = all_figures["main_results"]
    sym = fig.axes[0]
    assert not sym.patches  # no bars
    assert sym.get_xlim()[0] > 0.5  # the axis is fitted to values near 0.6, not started at 0
    assert "95 % t-interval" in fig._suptitle.get_text() and "3 seeds" in fig._suptitle.get_text()


def test_paired_differences_have_a_panel_per_paradigm_and_length_with_own_axes(all_figures):
    fig = all_figures["paired"]
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == ["16 bits", "32 bits", "64 bits", "pooled over lengths"]
    assert len(fig.axes) == 8  # two paradigms x (3 lengths + pooled)
    spans = {round(ax.get_xlim()[1] - ax.get_xlim()[0], 3) for ax in fig.axes}
    assert len(spans) > 1  # each panel fitted to its own intervals
    assert "raw" in fig._suptitle.get_text() and "0.01" in fig._suptitle.get_text()


def test_sensitivity_marks_each_default_in_its_own_panel_only(all_figures):
    fig = all_figures["sensitivity"]
    panels = fig.axes[:3]
    for ax, default in zip(panels, ("default 0.8", "default 0.5", "default 10")):
        texts = [t.get_text().strip() for t in ax.texts]
        assert texts == [default]
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert labels == ["symmetric", "asymmetric"] and not any("default" in x for x in labels)


def test_generality_flags_collapsed_runs_and_names_its_axis(all_figures):
    fig = all_figures["generality"]
    legend = fig.legends[0]
    assert legend.get_title().get_text() == "hashing model"  # the axis the rows hold
    assert any("collapsed" in t.get_text() for t in legend.get_texts())
    assert "collapsed" in fig._suptitle.get_text()
    hollow = [c for ax in fig.axes for c in ax.collections
              if len(c.get_facecolors()) and np.allclose(c.get_facecolors()[0][:3], 1.0)]
    assert hollow


def test_pairs_figure_draws_the_teacher_and_lsh():
    rows = []
    for student in ("s1", "s2"):
        for m, v in (("none", 0.5), ("kd", 0.55), ("brcd", 0.56)):
            for p in ("symmetric", "asymmetric"):
                for s in range(3):
                    rows.append({"teacher_backbone": "t", "student_backbone": student, "method": m,
                                 "paradigm": p, "seed": s, "bits": 32, "value": v + 0.001 * s,
                                 "status": "ok"})
    for p in ("symmetric", "asymmetric"):
        rows.append({"teacher_backbone": "t", "student_backbone": "(teacher)", "method": "teacher",
                     "paradigm": p, "seed": 0, "bits": 32, "value": 0.7, "status": "ok"})
    rows = pd.DataFrame(rows)
    lsh = pd.DataFrame([{"method": "LSH", "bits": 32, "paradigm": "symmetric", "value": 0.4}])
    refs = pair_references(rows, lsh)
    assert set(refs["label"]) == {"teacher (t)", "LSH on raw pixels"}
    students = rows[rows["method"] != "teacher"].assign(
        pair=lambda f: f["teacher_backbone"] + " → " + f["student_backbone"])
    fig = figures.plot_grid_bars(students, x="pair", hue="method", hue_label="method", title="t",
                                 xlabel="pair", references=refs)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "teacher" in labels and "LSH on raw pixels" in labels
    sym = fig.axes[0]
    assert any(np.allclose(line.get_xdata(), 0.4) for line in sym.get_lines())


def test_tsne_colours_multi_label_items_by_their_rarest_class():
    labels = np.array([[1, 0, 0, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]])
    # class frequencies: 5, 2, 1, 1 -> rarest present class per row
    classes, how = figures.colour_classes(labels)
    assert list(classes) == [3, 1, 0, 2, 1] and "rarest" in how
    single, how_single = figures.colour_classes(np.eye(3)[[2, 0, 1]])
    assert list(single) == [2, 0, 1] and how_single == "class"


def test_pr_curve_leaves_out_radii_where_nothing_is_retrieved():
    q = np.array([[1, 1, 1, 1], [-1, -1, -1, -1]], dtype=np.float32)
    db = np.array([[1, 1, -1, -1], [-1, -1, 1, 1], [1, -1, 1, -1]], dtype=np.float32)
    ql = np.eye(2)[[0, 1]]
    dl = np.eye(2)[[0, 1, 0]]
    pr, _ = summaries.curve_frames({("m", "symmetric"): (q, db)}, ql, dl, ks=[1])
    first = pr.iloc[0]
    assert first["radius"] == 0 and np.isnan(first["precision"])  # no item at distance 0
    assert (pr["precision"].dropna() > 0).all()
    fig = figures.plot_curves(pr, x="recall", y="precision", xlabel="r", ylabel="p", title="t")
    xs = np.concatenate([line.get_xdata() for line in fig.axes[0].get_lines()])
    ys = np.concatenate([line.get_ydata() for line in fig.axes[0].get_lines()])
    assert not np.any((xs == 0) & (ys == 0))


def test_latency_tradeoff_uses_seed_means_with_intervals(all_figures):
    trade = efficiency.tradeoff_frame(teacher=("teacher", 2.0, 0.72),
                                      students={"BRCD": [0.63, 0.64, 0.635]}, student_latency_ms=0.2)
    assert trade.loc[1, "map"] == pytest.approx(0.635) and trade.loc[1, "n"] == 3
    assert trade.loc[1, "half"] > 0 and trade.loc[0, "n"] == 1
    ax = all_figures["latency"].axes[0]
    assert "95 % t-interval" in ax.get_title() and "seeds" in ax.get_title()
    with pytest.raises(ValueError, match="notebook 04"):
        efficiency.tradeoff_frame(teacher=("t", 1.0, 0.7), students={"x": []}, student_latency_ms=0.1)


def test_label_counts_on_linear_axes_from_zero(all_figures):
    fig = all_figures["labels"]
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 4
    for ax in panels:
        assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0


def test_notebook_outputs_are_saved_at_the_kit_width(tmp_path, all_figures):
    from brcd_lib.reporting.outputs import Outputs

    out = Outputs(results_root=str(tmp_path), profile="p")
    saved = out.figure(all_figures["correlation"], "corr")  # a square heatmap: padded, not taller
    width, height = Image.open(saved.path).size
    assert abs(width - plots.FIGURE_WIDTH_PX) <= 1 and height <= plots.FIGURE_MAX_HEIGHT_PX + 1

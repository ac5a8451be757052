"""Tests of the redundancy frames (by hand on tiny inputs) and of the plots drawn from them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from brcd_lib.analysis import plots, redundancy
from brcd_lib.analysis.redundancy import (
    bit_balance,
    bit_correlation,
    bit_flip_rate,
    cluster_bit_means,
    offset_positive_rate,
    redundancy_vs_delta,
)
from brcd_lib.distill.brcd import bit_masks

torch.set_num_threads(1)

# cluster 0 (rows 0, 1): means [1, 0, 1]; cluster 2 (rows 2-5): means [0.5, -1, 0]
CODES = np.array(
    [[1, 1, 1], [1, -1, 1], [1, -1, 1], [1, -1, -1], [1, -1, 1], [-1, -1, -1]], dtype=float
)
LABELS = np.array([0, 0, 2, 2, 2, 2])


def test_cluster_bit_means_by_hand():
    df = cluster_bit_means(torch.from_numpy(CODES), LABELS)
    assert list(df.columns) == ["cluster", "bit", "mean"]
    assert df["cluster"].tolist() == [0, 0, 0, 2, 2, 2]
    assert df["bit"].tolist() == [0, 1, 2, 0, 1, 2]
    assert df["mean"].tolist() == pytest.approx([1, 0, 1, 0.5, -1, 0])


def test_redundancy_vs_delta_by_hand():
    df = redundancy_vs_delta(CODES, LABELS, [0.0, 0.5, 1.0])
    assert list(df.columns) == ["cluster", "delta", "n_redundant_bits", "n_kept_bits"]
    got = {(r.cluster, r.delta): (r.n_redundant_bits, r.n_kept_bits) for r in df.itertuples()}
    # |means| cluster 0: [1, 0, 1]; cluster 2: [0.5, 1, 0]; kept when |mean| > delta
    assert got == {
        (0, 0.0): (1, 2), (0, 0.5): (1, 2), (0, 1.0): (3, 0),
        (2, 0.0): (1, 2), (2, 0.5): (2, 1), (2, 1.0): (3, 0),
    }


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(2, 8), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_redundancy_agrees_with_paper_mask(k, L, delta, seed):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(k), rng.integers(0, k, size=20)])
    codes = rng.choice([-1.0, 1.0], size=(labels.size, L))
    kept_mask = bit_masks(codes, labels, k, delta).sum(1).numpy()
    df = redundancy_vs_delta(codes, labels, [delta]).sort_values("cluster")
    assert df["n_kept_bits"].tolist() == kept_mask.astype(int).tolist()
    assert (df["n_kept_bits"] + df["n_redundant_bits"] == L).all()


def test_bit_balance_by_hand():
    df = bit_balance(CODES)
    assert list(df.columns) == ["bit", "mean", "p_plus"]
    # bit 0: five +1 of six; bit 1: one +1; bit 2: four +1
    assert df["p_plus"].tolist() == pytest.approx([5 / 6, 1 / 6, 4 / 6])
    assert df["mean"].tolist() == pytest.approx([4 / 6, -4 / 6, 2 / 6])


def test_bit_correlation_by_hand():
    codes = np.array([[1, 1, -1, 1], [-1, -1, 1, 1], [1, 1, 1, 1], [-1, -1, -1, 1]], dtype=float)
    corr = bit_correlation(codes)
    assert corr.shape == (4, 4)
    assert corr.iloc[0, 1] == pytest.approx(1.0)  # identical bits
    assert corr.iloc[0, 2] == pytest.approx(0.0)  # orthogonal bits
    assert corr.iloc[1, 1] == pytest.approx(1.0)
    assert np.isnan(corr.iloc[3]).all() and np.isnan(corr[3]).all()  # constant bit
    np.testing.assert_allclose(corr.to_numpy()[:3, :3], np.corrcoef(codes[:, :3].T), atol=1e-12)


def test_offset_positive_rate_by_hand():
    clean = np.array([[1, 1], [-1, -1], [1, -1]], dtype=float)
    centroids = np.array([[1, 1], [-1, -1]], dtype=float)
    labels = np.array([0, 1, 0])
    view1 = np.array([[1, 1], [1, 1], [1, -1]], dtype=float)  # image 1 moved to cluster 0
    view2 = np.array([[-1, -1], [-1, -1], [-1, 1]], dtype=float)  # image 0 moved; image 2 tie -> 0
    assert offset_positive_rate(clean, view1, centroids, labels) == pytest.approx(1 / 3)
    both = np.stack([view1, view2])
    assert offset_positive_rate(clean, both, centroids, labels) == pytest.approx(2 / 6)
    assert offset_positive_rate(clean, clean, centroids, labels) == 0.0


def test_bit_flip_rate_by_hand():
    clean = np.array([[1, 1, 1], [-1, -1, -1]], dtype=float)
    views = np.array(
        [[[1, -1, 1], [-1, 1, 1]], [[1, -1, 1], [-1, -1, -1]]], dtype=float
    )  # bit 0 never flips; bit 1 flips 3 of 4; bit 2 flips 1 of 4
    df = bit_flip_rate(clean, views)
    assert list(df.columns) == ["bit", "flip_rate"]
    assert df["flip_rate"].tolist() == pytest.approx([0.0, 0.75, 0.25])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: cluster_bit_means(np.array([[1, 0]]), [0]), r"\+1 and -1"),
        (lambda: cluster_bit_means(CODES, LABELS[:-1]), "n = 6"),
        (lambda: bit_flip_rate(CODES, CODES[:, :2]), r"\(V, n, L\)"),
        (lambda: offset_positive_rate(CODES, CODES, np.zeros((2, 2)), LABELS), "centroids"),
        (lambda: redundancy_vs_delta(CODES, LABELS, []), "deltas"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------


def _check_figure(fig):
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel()


def _has_legend_or_colorbar(fig):
    ax = fig.axes[0]
    return ax.get_legend() is not None or any(a.get_ylabel() for a in fig.axes[1:])


def _frames():
    rng = np.random.default_rng(0)
    codes = rng.choice([-1.0, 1.0], size=(40, 8))
    labels = rng.integers(0, 3, size=40)
    views = codes * rng.choice([1.0, -1.0], p=[0.9, 0.1], size=(2, 40, 8))
    return codes, labels, views


def test_each_plot_returns_labelled_figure(tmp_path):
    codes, labels, views = _frames()
    offsets = pd.DataFrame(
        {"backbone": ["vit_b_16", "vit_b_16", "vit_b_32", "vit_b_32"],
         "code_length": [16, 32, 16, 32],
         "offset_positive_rate": [0.1, 0.2, 0.3, 0.4]}
    )
    elbow = pd.DataFrame({"k": [1, 2, 3], "inertia": [9.0, 5.0, 4.0], "silhouette": [np.nan, 0.3, 0.2]})
    figures = [
        plots.plot_cluster_bit_means(cluster_bit_means(codes, labels)),
        plots.plot_redundancy_vs_delta(redundancy_vs_delta(codes, labels, [0.0, 0.25, 0.5])),
        plots.plot_bit_balance(bit_balance(codes)),
        plots.plot_bit_correlation(bit_correlation(codes)),
        plots.plot_bit_flip_rate(bit_flip_rate(codes, views)),
        plots.plot_offset_rates(offsets),
        plots.plot_offset_rates(offsets, hue="code_length"),
        plots.plot_elbow(elbow),
    ]
    for fig in figures:
        _check_figure(fig)
        assert _has_legend_or_colorbar(fig)
    out = plots.save_figure(figures[0], tmp_path / "sub" / "means.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["means.png"]


def test_heatmap_is_centred_at_zero():
    codes, labels, _ = _frames()
    fig = plots.plot_cluster_bit_means(cluster_bit_means(codes, labels))
    mesh = fig.axes[0].collections[0]
    assert mesh.norm.vmin == -1.0 and mesh.norm.vmax == 1.0


def test_plot_rejects_wrong_frame():
    with pytest.raises(ValueError, match="missing"):
        plots.plot_bit_balance(pd.DataFrame({"bit": [0]}))


def test_analysis_package_exports():
    """Every name the package exports is the defining submodule's own object (not a stand-in),
    and two of them work on a tiny input through the package."""
    import brcd_lib.analysis as analysis

    assert sorted(analysis.__all__) == sorted(redundancy.__all__ + plots.__all__)
    for name in redundancy.__all__:
        assert getattr(analysis, name) is getattr(redundancy, name), name
    for name in plots.__all__:
        assert getattr(analysis, name) is getattr(plots, name), name
    # two +-1 codes, one cluster: bit 0 always +1 (mean 1), bit 1 split (mean 0)
    df = analysis.cluster_bit_means(np.array([[1, 1], [1, -1]]), np.array([0, 0]))
    assert df["mean"].tolist() == [1.0, 0.0]
    assert analysis.bit_balance(np.array([[1, 1], [1, -1]]))["p_plus"].tolist() == [1.0, 0.5]


def test_mean_abs_correlation_skips_constant_bits_and_is_undefined_for_collapsed_codes():
    """Collapsed codes (every bit constant) give no defined pair: None and a sentence, no numpy
    'Mean of empty slice' warning (a smoke notebook printed one)."""
    import warnings

    codes = torch.tensor([[1, 1, -1, 1], [-1, -1, -1, 1], [1, -1, -1, 1], [-1, 1, -1, 1]])
    corr = redundancy.bit_correlation(codes)  # bits 2 and 3 constant: only the pair (0, 1)
    expected = abs(np.corrcoef(codes[:, 0].numpy(), codes[:, 1].numpy())[0, 1])
    assert redundancy.mean_abs_correlation(corr) == pytest.approx(expected)
    collapsed = redundancy.bit_correlation(torch.ones(5, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert redundancy.mean_abs_correlation(collapsed) is None
        assert "undefined" in redundancy.describe_mean_abs_correlation(collapsed)
    assert redundancy.describe_mean_abs_correlation(corr) == (
        f"mean |correlation| between bits {expected:.3f}")


def test_offset_positive_rate_over_four_views_by_hand():
    """4 clusters x 4 views (2 images per cluster): the rate counts view v of image i against
    image i's own cluster. Two views were a coincidence for a reshape on the wrong axis; four
    views with unequal moves are not."""
    centroids = np.array([[1, 1, 1, 1], [1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]],
                         dtype=float)  # every pair of centroids 2 bits apart: no ties
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    assigned = np.array([
        [0, 0, 1, 1, 2, 2, 3, 3],  # view 0: nobody moves                          -> 0
        [0, 1, 1, 1, 2, 2, 3, 3],  # view 1: image 1 moves to cluster 1            -> 1
        [0, 0, 1, 1, 2, 2, 3, 0],  # view 2: image 7 moves to cluster 0            -> 1
        [3, 2, 1, 0, 0, 1, 2, 3],  # view 3: images 0, 1, 3, 4, 5, 6 move           -> 6
    ])
    views = centroids[assigned]  # (4, 8, 4): each view code sits exactly on a centroid
    clean = centroids[labels]
    # 0 + 1 + 1 + 6 = 8 moved views of 4 x 8 = 32
    assert offset_positive_rate(clean, views, centroids, labels) == pytest.approx(8 / 32)
    assert offset_positive_rate(clean, views[3], centroids, labels) == pytest.approx(6 / 8)
    assert offset_positive_rate(clean, views[:3], centroids, labels) == pytest.approx(2 / 24)

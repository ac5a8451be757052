"""Analysis of hash codes: bit-level redundancy frames (``redundancy``) and their figures (``plots``)."""
from __future__ import annotations

from .plots import (
    plot_bit_balance,
    plot_bit_correlation,
    plot_bit_flip_rate,
    plot_cluster_bit_means,
    plot_elbow,
    plot_offset_rates,
    plot_redundancy_vs_delta,
    save_figure,
)
from .redundancy import (
    bit_balance,
    bit_correlation,
    bit_flip_rate,
    cluster_bit_means,
    describe_mean_abs_correlation,
    mean_abs_correlation,
    offset_positive_rate,
    redundancy_vs_delta,
)

__all__ = [
    "cluster_bit_means",
    "redundancy_vs_delta",
    "bit_balance",
    "bit_correlation",
    "mean_abs_correlation",
    "describe_mean_abs_correlation",
    "offset_positive_rate",
    "bit_flip_rate",
    "plot_cluster_bit_means",
    "plot_redundancy_vs_delta",
    "plot_bit_balance",
    "plot_bit_correlation",
    "plot_bit_flip_rate",
    "plot_offset_rates",
    "plot_elbow",
    "save_figure",
]

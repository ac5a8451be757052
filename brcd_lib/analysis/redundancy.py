"""Bit-level redundancy analysis of hash codes (the paper's redundancy and offset-positive figures).

Every function takes tensors or arrays and returns a tidy :class:`pandas.DataFrame` (or a float),
ready for ``brcd_lib.analysis.plots``:

- :func:`cluster_bit_means` -> (cluster, bit, mean): the per-cluster mean of each +-1 bit;
- :func:`redundancy_vs_delta` -> (cluster, delta, n_redundant_bits, n_kept_bits): how many bits the
  paper's mask rule (``|mean| > delta`` kept) drops per cluster, for each delta;
- :func:`bit_balance` -> (bit, mean, p_plus): per-bit mean and fraction of +1;
- :func:`bit_correlation` -> L x L Pearson correlation between bits;
- :func:`offset_positive_rate` -> fraction of augmented views whose nearest centroid differs from
  the clean image's cluster;
- :func:`bit_flip_rate` -> (bit, flip_rate): how often augmentation flips each bit.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..distill.clustering import nearest_centroid

__all__ = [
    "cluster_bit_means",
    "redundancy_vs_delta",
    "bit_balance",
    "bit_correlation",
    "mean_abs_correlation",
    "describe_mean_abs_correlation",
    "offset_positive_rate",
    "bit_flip_rate",
]


def _np(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} must be a tensor or array") from exc


def _codes(x, name: str = "codes") -> np.ndarray:
    arr = _np(x, name).astype(np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (n, L) array; got shape {arr.shape}")
    if not np.all((arr == 1) | (arr == -1)):
        raise ValueError(f"{name} must contain only +1 and -1 (binarise with sign, sign(0) = +1)")
    return arr


def _labels(x, n: int, name: str = "clusters") -> np.ndarray:
    arr = _np(x, name)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be (n,) with n = {n}; got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer cluster indices")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer cluster indices; got dtype {arr.dtype}")
    return arr.astype(np.int64)


def cluster_bit_means(codes, clusters) -> pd.DataFrame:
    """Mean of each bit within each cluster.

    Args:
        codes: (n, L) +-1 codes.
        clusters: (n,) integer cluster labels; only clusters that occur are reported.

    Returns:
        DataFrame (cluster, bit, mean) with one row per (occurring cluster, bit), sorted by cluster
        then bit; ``mean`` lies in [-1, 1].
    """
    c = _codes(codes)
    y = _labels(clusters, c.shape[0])
    rows_cluster, rows_bit, rows_mean = [], [], []
    for k in np.unique(y):
        m = c[y == k].mean(axis=0)
        rows_cluster.extend([int(k)] * c.shape[1])
        rows_bit.extend(range(c.shape[1]))
        rows_mean.extend(m.tolist())
    return pd.DataFrame({"cluster": rows_cluster, "bit": rows_bit, "mean": rows_mean})


def redundancy_vs_delta(codes, clusters, deltas) -> pd.DataFrame:
    """Number of redundancy bits (``|mean| <= delta``) and kept bits per cluster, for each delta.

    This is the paper's mask rule (``bit_masks(..., rule="paper")``) counted per cluster.

    Returns:
        DataFrame (cluster, delta, n_redundant_bits, n_kept_bits); ``n_redundant_bits +
        n_kept_bits = L``.
    """
    deltas = [float(d) for d in np.atleast_1d(np.asarray(deltas, dtype=np.float64))]
    if not deltas:
        raise ValueError("deltas is empty; pass the margins to scan, e.g. np.linspace(0, 1, 11)")
    means = cluster_bit_means(codes, clusters)
    L = int(means["bit"].max()) + 1
    rows = []
    for k, grp in means.groupby("cluster", sort=True):
        a = np.abs(grp.sort_values("bit")["mean"].to_numpy())
        for d in deltas:
            kept = int((a > d).sum())
            rows.append(
                {"cluster": int(k), "delta": d, "n_redundant_bits": L - kept, "n_kept_bits": kept}
            )
    return pd.DataFrame(rows, columns=["cluster", "delta", "n_redundant_bits", "n_kept_bits"])


def bit_balance(codes) -> pd.DataFrame:
    """Per-bit balance: ``mean`` of the +-1 values and ``p_plus``, the fraction of +1.

    A balanced bit has mean 0 and p_plus 0.5; ``p_plus = (1 + mean) / 2``.
    """
    c = _codes(codes)
    return pd.DataFrame(
        {
            "bit": np.arange(c.shape[1]),
            "mean": c.mean(axis=0),
            "p_plus": (c == 1).mean(axis=0),
        }
    )


def bit_correlation(codes) -> pd.DataFrame:
    """L x L Pearson correlation between bits (index and columns are the bit numbers).

    A bit that is constant over the codes has no defined correlation: its row and column are NaN
    (its diagonal entry included).
    """
    c = _codes(codes)
    x = c - c.mean(axis=0, keepdims=True)
    cov = x.T @ x / c.shape[0]
    sd = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    const = sd == 0
    corr[const, :] = np.nan
    corr[:, const] = np.nan
    corr = np.clip(corr, -1.0, 1.0)
    bits = pd.Index(np.arange(c.shape[1]), name="bit")
    return pd.DataFrame(corr, index=bits, columns=bits.rename("bit"))


def mean_abs_correlation(corr: pd.DataFrame) -> float | None:
    """Mean |correlation| over the pairs of distinct bits of :func:`bit_correlation`, the pairs
    with a constant bit left out; ``None`` when no pair is defined (fewer than two bits vary,
    e.g. collapsed codes)."""
    values = np.asarray(corr, dtype=np.float64)
    off = np.abs(values[~np.eye(len(values), dtype=bool)])
    off = off[~np.isnan(off)]
    return float(off.mean()) if off.size else None


def describe_mean_abs_correlation(corr: pd.DataFrame) -> str:
    """``mean |correlation| between bits 0.123``, or why it is undefined."""
    value = mean_abs_correlation(corr)
    if value is None:
        return "mean |correlation| between bits undefined (fewer than two bits vary over the codes)"
    return f"mean |correlation| between bits {value:.3f}"


def _views(view_codes, n: int, L: int) -> np.ndarray:
    v = _np(view_codes, "view_codes").astype(np.float64)
    if v.ndim == 2:
        v = v[None]
    if v.ndim != 3 or v.shape[1:] != (n, L) or v.shape[0] == 0:
        raise ValueError(
            f"view_codes must be (n, L) = ({n}, {L}) or (V, n, L) with V >= 1 views; got shape {v.shape}"
        )
    if not np.all((v == 1) | (v == -1)):
        raise ValueError("view_codes must contain only +1 and -1")
    return v


def offset_positive_rate(clean_codes, view_codes, centroids, clean_labels) -> float:
    """Fraction of augmented views whose nearest centroid differs from the clean image's cluster.

    Args:
        clean_codes: (n, L) +-1 codes of the clean images (fixes n and L).
        view_codes: (n, L) codes of one augmented view per image, or (V, n, L) for V views.
        centroids: (K, L) k-means centroids.
        clean_labels: (n,) cluster of each clean image (its pseudo label).

    Returns:
        The rate over all V * n views, a float in [0, 1].
    """
    c = _codes(clean_codes, "clean_codes")
    n, L = c.shape
    v = _views(view_codes, n, L)
    y = _labels(clean_labels, n, "clean_labels")
    mu = _np(centroids, "centroids").astype(np.float64)
    if mu.ndim != 2 or mu.shape[1] != L:
        raise ValueError(f"centroids must be (K, {L}); got shape {mu.shape}")
    nearest = nearest_centroid(torch.from_numpy(v.reshape(-1, L)), torch.from_numpy(mu)).numpy()
    return float((nearest.reshape(v.shape[0], n) != y[None, :]).mean())


def bit_flip_rate(clean_codes, view_codes) -> pd.DataFrame:
    """Per bit, the fraction of (view, image) pairs whose view code differs from the clean code.

    Returns:
        DataFrame (bit, flip_rate).
    """
    c = _codes(clean_codes, "clean_codes")
    v = _views(view_codes, *c.shape)
    rate = (v != c[None]).mean(axis=(0, 1))
    return pd.DataFrame({"bit": np.arange(c.shape[1]), "flip_rate": rate})

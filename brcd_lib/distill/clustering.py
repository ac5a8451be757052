"""k-means on teacher hash codes: pseudo labels, centroids, elbow curve and an on-disk cache.

BRCD (method.md section 3, steps 1-2) clusters the teacher's codes of the clean training images with
k-means++ and many restarts; each training image gets a pseudo label and each cluster a centroid.
The released code runs scikit-learn's ``KMeans(init="k-means++")``; so does this module.

Public functions:

- :func:`kmeans_codes` -> :class:`KMeansResult` (labels, centroids, inertia);
- :func:`nearest_centroid` -> index of the nearest centroid (squared Euclidean), vectorised in torch;
- :func:`elbow_curve` -> tidy frame (k, inertia, silhouette) for choosing K;
- :func:`cached_kmeans` -> :func:`kmeans_codes` with its result stored in an ``.npz`` named by a
  SHA-256 of everything that determines it, written atomically and reloaded on a rerun.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

__all__ = [
    "KMeansResult",
    "kmeans_codes",
    "nearest_centroid",
    "elbow_curve",
    "cached_kmeans",
    "kmeans_cache_path",
]

# Largest number of (row, centroid, bit) differences held in memory at once by nearest_centroid.
_NEAREST_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class KMeansResult:
    """Outcome of k-means on codes.

    labels: (n,) int64, the cluster of each row (the pseudo labels).
    centroids: (K, L) float64, the cluster centres (real-valued, not binarised).
    inertia: sum of squared Euclidean distances of rows to their centroid.
    """

    labels: np.ndarray
    centroids: np.ndarray
    inertia: float

    @property
    def n_clusters(self) -> int:
        """K, the number of centroids."""
        return int(self.centroids.shape[0])


def _as_matrix(codes, name: str = "codes") -> np.ndarray:
    """Return ``codes`` as a finite float64 (n, L) array or raise a ValueError naming the problem."""
    if isinstance(codes, torch.Tensor):
        codes = codes.detach().cpu().numpy()
    arr = np.asarray(codes, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, L) array; got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(arr.shape)}); pass at least one code")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; encode the images again")
    return arr


def _check_k(arr: np.ndarray, n_clusters: int) -> None:
    """Reject a K that k-means cannot honour on these rows."""
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)):
        raise ValueError(f"n_clusters must be an int; got {n_clusters!r}")
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1; got {n_clusters}")
    n = arr.shape[0]
    if n_clusters > n:
        raise ValueError(
            f"n_clusters={n_clusters} is larger than the number of codes n={n}; "
            f"use at most {n} clusters or more codes"
        )
    n_distinct = np.unique(arr, axis=0).shape[0]
    if n_clusters > n_distinct:
        raise ValueError(
            f"n_clusters={n_clusters} is larger than the number of distinct codes ({n_distinct} "
            f"among n={n}); k-means would leave clusters empty. Use at most {n_distinct} clusters"
        )


def kmeans_codes(
    codes, *, n_clusters: int, seed: int, n_init: int = 10, max_iter: int = 300
) -> KMeansResult:
    """k-means++ with ``n_init`` restarts (scikit-learn ``KMeans``) on (n, L) codes.

    Args:
        codes: (n, L) tensor or array (normally +-1 teacher codes).
        n_clusters: K.
        seed: ``random_state`` of ``KMeans``; the same seed gives the same result.
        n_init: number of k-means++ restarts; the best inertia is kept.
        max_iter: Lloyd iterations per restart.

    Raises:
        ValueError: K > n, K > number of distinct codes, or malformed codes.
    """
    arr = _as_matrix(codes)
    _check_k(arr, n_clusters)
    if n_init < 1 or max_iter < 1:
        raise ValueError(f"n_init and max_iter must be >= 1; got n_init={n_init}, max_iter={max_iter}")
    km = KMeans(
        n_clusters=int(n_clusters),
        init="k-means++",
        n_init=int(n_init),
        max_iter=int(max_iter),
        random_state=int(seed),
    )
    km.fit(arr)
    return KMeansResult(
        labels=np.asarray(km.labels_, dtype=np.int64),
        centroids=np.asarray(km.cluster_centers_, dtype=np.float64),
        inertia=float(km.inertia_),
    )


def nearest_centroid(codes, centroids) -> torch.Tensor:
    """Index of the nearest centroid of every row under squared Euclidean distance.

    Args:
        codes: (n, L) tensor or array.
        centroids: (K, L) tensor or array.

    Returns:
        (n,) int64 tensor on the device of ``codes`` (CPU for arrays). Ties go to the lowest
        centroid index. Distances are computed as explicit differences (no ``|a|^2 - 2ab + |b|^2``
        expansion), so equal distances stay exactly equal; rows are processed in chunks to bound
        memory.
    """
    c = codes if isinstance(codes, torch.Tensor) else torch.as_tensor(np.asarray(codes))
    mu = centroids if isinstance(centroids, torch.Tensor) else torch.as_tensor(np.asarray(centroids))
    if c.dim() != 2 or mu.dim() != 2:
        raise ValueError(
            f"codes must be (n, L) and centroids (K, L); got {tuple(c.shape)} and {tuple(mu.shape)}"
        )
    if c.shape[1] != mu.shape[1]:
        raise ValueError(
            f"codes have L={c.shape[1]} bits but centroids have {mu.shape[1]}; "
            "use the centroids of the same code length"
        )
    if mu.shape[0] == 0:
        raise ValueError("centroids is empty; run k-means first")
    dtype = torch.promote_types(c.dtype, mu.dtype)
    if not dtype.is_floating_point:
        dtype = torch.float32
    c = c.detach().to(dtype)
    mu = mu.detach().to(device=c.device, dtype=dtype)
    n, L = c.shape
    k = mu.shape[0]
    chunk = max(1, _NEAREST_CHUNK_ELEMENTS // max(1, k * L))
    out = torch.empty(n, dtype=torch.long, device=c.device)
    for start in range(0, n, chunk):
        block = c[start : start + chunk]
        d2 = ((block[:, None, :] - mu[None, :, :]) ** 2).sum(dim=-1)
        out[start : start + chunk] = torch.argmin(d2, dim=1)
    return out


def elbow_curve(
    codes,
    ks,
    *,
    seed: int,
    n_init: int = 10,
    max_iter: int = 300,
    silhouette_sample_size: int = 2000,
) -> pd.DataFrame:
    """Inertia and silhouette of k-means for every K in ``ks`` (the paper's elbow plot).

    Returns:
        DataFrame with columns ``k``, ``inertia``, ``silhouette``. The silhouette is computed on a
        seeded random sample of at most ``silhouette_sample_size`` rows; it is NaN where undefined
        (K = 1 or K = n).
    """
    arr = _as_matrix(codes)
    ks = [int(k) for k in ks]
    if not ks:
        raise ValueError("ks is empty; pass the K values to try, e.g. range(2, 21)")
    if silhouette_sample_size < 2:
        raise ValueError(f"silhouette_sample_size must be >= 2; got {silhouette_sample_size}")
    rows = []
    n = arr.shape[0]
    for k in ks:
        res = kmeans_codes(arr, n_clusters=k, seed=seed, n_init=n_init, max_iter=max_iter)
        n_used = len(np.unique(res.labels))
        if 2 <= n_used <= n - 1:
            sample = min(n, int(silhouette_sample_size))
            sil = float(
                silhouette_score(
                    arr,
                    res.labels,
                    sample_size=sample if sample < n else None,
                    random_state=int(seed),
                )
            )
        else:
            sil = float("nan")
        rows.append({"k": k, "inertia": res.inertia, "silhouette": sil})
    return pd.DataFrame(rows, columns=["k", "inertia", "silhouette"])


def _codes_digest(arr: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(repr(arr.shape).encode())
    h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()


def _cache_key_digest(
    cache_key: str, codes_digest: str, n_clusters: int, seed: int, n_init: int, max_iter: int
) -> str:
    payload = json.dumps(
        {
            "cache_key": str(cache_key),
            "codes_sha256": codes_digest,
            "n_clusters": int(n_clusters),
            "seed": int(seed),
            "n_init": int(n_init),
            "max_iter": int(max_iter),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def kmeans_cache_path(
    codes,
    *,
    n_clusters: int,
    seed: int,
    n_init: int,
    cache_dir: str | os.PathLike,
    cache_key: str,
    max_iter: int = 300,
) -> Path:
    """Path of the ``.npz`` that :func:`cached_kmeans` uses for these arguments."""
    arr = _as_matrix(codes)
    digest = _cache_key_digest(cache_key, _codes_digest(arr), n_clusters, seed, n_init, max_iter)
    return Path(cache_dir) / f"kmeans_{digest}.npz"


def _load_cached(path: Path, digest: str, n: int, n_clusters: int, L: int) -> KMeansResult:
    """Load and validate a cache file; raise ValueError when it does not match."""
    with np.load(path, allow_pickle=False) as z:
        stored = str(z["digest"])
        labels = np.asarray(z["labels"], dtype=np.int64)
        centroids = np.asarray(z["centroids"], dtype=np.float64)
        inertia = float(z["inertia"])
    if stored != digest:
        raise ValueError("stored digest differs from the requested one")
    if labels.shape != (n,) or centroids.shape != (n_clusters, L):
        raise ValueError(
            f"stored shapes labels {labels.shape}, centroids {centroids.shape} do not match "
            f"({n},) and ({n_clusters}, {L})"
        )
    if labels.min() < 0 or labels.max() >= n_clusters:
        raise ValueError("stored labels are out of range")
    return KMeansResult(labels=labels, centroids=centroids, inertia=inertia)


def _atomic_save_npz(path: Path, **arrays) -> None:
    """Write an .npz atomically (``brcd_lib.io.atomic_open``: same folder, mode 0644, renamed)."""
    from ..io import atomic_open

    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def cached_kmeans(
    codes,
    *,
    n_clusters: int,
    seed: int,
    n_init: int = 10,
    cache_dir: str | os.PathLike,
    cache_key: str,
    max_iter: int = 300,
) -> KMeansResult:
    """:func:`kmeans_codes` with an on-disk cache.

    The file is ``cache_dir/kmeans_<sha256>.npz`` where the SHA-256 covers ``cache_key``, the
    SHA-256 of the codes' bytes (float64, with the shape), ``n_clusters``, ``seed``, ``n_init`` and
    ``max_iter``. It stores labels, centroids, inertia and that digest, and is written atomically
    (temporary file + ``os.replace``). A rerun with the same arguments reloads it without running
    k-means; a file that cannot be read or does not match (digest, shapes, label range) is rebuilt
    with a ``RuntimeWarning``.
    """
    arr = _as_matrix(codes)
    _check_k(arr, n_clusters)
    digest = _cache_key_digest(cache_key, _codes_digest(arr), n_clusters, seed, n_init, max_iter)
    path = Path(cache_dir) / f"kmeans_{digest}.npz"
    if path.exists():
        try:
            return _load_cached(path, digest, arr.shape[0], int(n_clusters), arr.shape[1])
        except Exception as exc:  # corrupt or mismatched file: rebuild
            warnings.warn(
                f"k-means cache {path} is unreadable or does not match ({exc}); rebuilding it",
                RuntimeWarning,
                stacklevel=2,
            )
    res = kmeans_codes(arr, n_clusters=n_clusters, seed=seed, n_init=n_init, max_iter=max_iter)
    _atomic_save_npz(
        path,
        labels=res.labels,
        centroids=res.centroids,
        inertia=np.float64(res.inertia),
        digest=np.array(digest),
    )
    return res

"""Shallow (data-independent and linear) hashing baselines on raw pixels: LSH and ITQ.

Both flatten each input to a vector and centre it with the training mean.

- ``lsh``: random Gaussian projections, sign (Charikar-style sign random projections).
- ``itq``: Iterative Quantization (Gong & Lazebnik, CVPR 2011 / TPAMI 2013): PCA to L dimensions on
  the training set, then ``n_iter`` alternations of B = sign(V R) and the orthogonal Procrustes
  update of the rotation R (SVD of B^T V), starting from a seeded random orthogonal matrix.

Codes are float32 arrays of +-1 with sign(0) = +1, like every code in the kit.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..registry import Registry

__all__ = [
    "ShallowHasher",
    "LSHHasher",
    "ITQHasher",
    "register_shallow_hasher",
    "get_shallow_hasher",
    "list_shallow_hashers",
    "lsh_codes",
]

SHALLOW_HASHERS: Registry = Registry("shallow hasher")


def register_shallow_hasher(name: str, *, label: str | None = None
                            ) -> Callable[[type["ShallowHasher"]], type["ShallowHasher"]]:
    """Class decorator adding a hasher to the registry under ``name`` (``label``: the name shown
    in tables, default ``name.upper()``)."""

    def deco(cls: type[ShallowHasher]) -> type[ShallowHasher]:
        cls.name = name
        return SHALLOW_HASHERS.register(name, label=label or name.upper())(cls)

    return deco


def list_shallow_hashers() -> list[str]:
    """Registered shallow hasher names, sorted (``SHALLOW_HASHERS`` iterates in registration
    order, the order of the tables)."""
    return SHALLOW_HASHERS.names()


def get_shallow_hasher(name: str, **kwargs) -> "ShallowHasher":
    """Build a registered hasher, e.g. ``get_shallow_hasher("itq", code_length=32, seed=0)``."""
    return SHALLOW_HASHERS.build(name, **kwargs)


def _flatten(x, what: str) -> np.ndarray:
    """(n, ...) numpy array or torch tensor -> float64 (n, D)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{what} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{what} must have shape (n, ...) with n >= 1, got {x.shape}")
    return x.reshape(x.shape[0], -1).astype(np.float64)


def _sign(z: np.ndarray) -> np.ndarray:
    return np.where(z >= 0, np.float32(1.0), np.float32(-1.0))


class ShallowHasher:
    """Base class: ``fit(x_train)`` learns the projection; ``encode(x)`` gives +-1 float32 codes."""

    name: str = "base"

    def __init__(self, *, code_length: int, seed: int = 0) -> None:
        if isinstance(code_length, bool) or not isinstance(code_length, (int, np.integer)) \
                or code_length < 1:
            raise ValueError(f"code_length must be a positive integer, got {code_length!r}")
        self.code_length = int(code_length)
        self.seed = int(seed)
        self.mean_: np.ndarray | None = None
        self.projection_: np.ndarray | None = None  # (D, L)

    def fit(self, x_train) -> "ShallowHasher":
        x = _flatten(x_train, "x_train")
        self.mean_ = x.mean(axis=0)
        self.projection_ = self._learn(x - self.mean_)
        return self

    def _learn(self, centred: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, x) -> np.ndarray:
        """+-1 float32 codes (n, code_length) of ``x`` (n, ...)."""
        if self.projection_ is None:
            raise RuntimeError(f"{type(self).__name__}.encode called before fit(x_train)")
        flat = _flatten(x, "x")
        if flat.shape[1] != self.mean_.shape[0]:
            raise ValueError(
                f"x has {flat.shape[1]} features per item, the hasher was fit on "
                f"{self.mean_.shape[0]}"
            )
        return _sign((flat - self.mean_) @ self.projection_)


@register_shallow_hasher("lsh")
class LSHHasher(ShallowHasher):
    """Sign of random Gaussian projections of the mean-centred inputs (seeded)."""

    def _learn(self, centred: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.standard_normal((centred.shape[1], self.code_length))


@register_shallow_hasher("itq")
class ITQHasher(ShallowHasher):
    """Iterative Quantization: PCA to ``code_length`` dims + learned orthogonal rotation.

    After ``fit``: ``pca_`` (D, L) principal directions, ``rotation_`` (L, L) orthogonal,
    ``loss_history_`` the quantisation loss ||sign(V R) - V R||_F^2 for the initial and every
    iterated rotation (non-increasing by construction).
    """

    def __init__(self, *, code_length: int, seed: int = 0, n_iter: int = 50) -> None:
        super().__init__(code_length=code_length, seed=seed)
        if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
            raise ValueError(f"n_iter must be a non-negative integer, got {n_iter!r}")
        self.n_iter = int(n_iter)
        self.pca_: np.ndarray | None = None
        self.rotation_: np.ndarray | None = None
        self.loss_history_: list[float] = []

    def _pca(self, centred: np.ndarray) -> np.ndarray:
        """Top ``code_length`` principal directions (D, L), from the smaller Gram matrix."""
        n, dim = centred.shape
        if self.code_length > dim:
            raise ValueError(
                f"ITQ needs code_length <= input dimension: code_length={self.code_length} but "
                f"inputs have {dim} features; use fewer bits or a richer input"
            )
        if self.code_length > n:
            raise ValueError(
                f"ITQ needs code_length <= number of training items: code_length="
                f"{self.code_length} but x_train has {n} items"
            )
        top = slice(None, -self.code_length - 1, -1)
        if dim <= n:
            _, vecs = np.linalg.eigh(centred.T @ centred)
            return vecs[:, top]
        vals, vecs = np.linalg.eigh(centred @ centred.T)
        u, lam = vecs[:, top], vals[top]
        return (centred.T @ u) / np.sqrt(np.maximum(lam, np.finfo(np.float64).tiny))

    def _learn(self, centred: np.ndarray) -> np.ndarray:
        self.pca_ = self._pca(centred)
        v = centred @ self.pca_
        rng = np.random.default_rng(self.seed)
        rotation, _ = np.linalg.qr(rng.standard_normal((self.code_length, self.code_length)))
        self.loss_history_ = [self._loss(v, rotation)]
        for _ in range(self.n_iter):
            b = _sign(v @ rotation).astype(np.float64)
            ub, _, uat = np.linalg.svd(b.T @ v)  # B^T V = UB S UA^T
            rotation = uat.T @ ub.T  # R = UA UB^T maximises tr(B^T V R)
            self.loss_history_.append(self._loss(v, rotation))
        self.rotation_ = rotation
        return self.pca_ @ rotation

    @staticmethod
    def _loss(v: np.ndarray, rotation: np.ndarray) -> float:
        z = v @ rotation
        return float(np.sum((_sign(z) - z) ** 2))


def lsh_codes(train_x, x_list, *, code_length: int, seed: int) -> list[np.ndarray]:
    """LSH codes of every array in ``x_list``, with the centring mean taken from ``train_x``."""
    hasher = LSHHasher(code_length=code_length, seed=seed).fit(train_x)
    return [hasher.encode(x) for x in x_list]

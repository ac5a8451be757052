"""Binarisation layers: sign with sign(0) = +1, straight-through sign, and the Bi-half layer.

* :func:`sign_pm1` -- +-1 float codes, no gradient (evaluation).
* :func:`sign_ste` -- forward ``sign_pm1``, backward identity (straight-through estimator). The
  paper's hash layer is ``sign_ste(sigmoid(h) - 0.5)`` (method.md section 2).
* :func:`bihalf` -- Li & van Gemert (AAAI 2021): per bit, the half of the batch with the largest
  values becomes +1 and the rest -1; backward ``g + gamma * (u - b) / numel(b)`` as in the
  authors' released ``hash.backward`` (gamma = 6 there).
"""
from __future__ import annotations

import torch
from torch.autograd import Function


def sign_pm1(x: torch.Tensor) -> torch.Tensor:
    """+-1 of the same dtype as ``x`` with sign(0) = +1 (``torch.sign`` would give 0)."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class _SignSTE(Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D401 - autograd hook
        return sign_pm1(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        return grad_output


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """Sign (0 -> +1) whose gradient is passed through unchanged (d sign_ste(x) / dx := 1)."""
    return _SignSTE.apply(x)


def bihalf_codes(u: torch.Tensor) -> torch.Tensor:
    """The Bi-half assignment without gradient: per column of ``u`` (N, L), the ``N // 2`` largest
    entries become +1, the other ``N - N // 2`` become -1. Ties are broken by row index (stable
    sort: among equal values the earlier row gets +1)."""
    if u.dim() != 2:
        raise ValueError(f"bihalf expects a (batch, bits) matrix, got shape {tuple(u.shape)}")
    n = u.shape[0]
    if n < 2:
        raise ValueError("bihalf needs a batch of at least 2 rows (half +1, half -1)")
    order = torch.sort(u, dim=0, descending=True, stable=True).indices
    ranked = torch.cat([u.new_ones(n // 2, u.shape[1]), -u.new_ones(n - n // 2, u.shape[1])])
    return torch.empty_like(u).scatter_(0, order, ranked)


class _BiHalf(Function):
    @staticmethod
    def forward(ctx, u: torch.Tensor, gamma: float) -> torch.Tensor:  # noqa: D401
        b = bihalf_codes(u)
        ctx.save_for_backward(u, b)
        ctx.gamma = gamma
        return b

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        u, b = ctx.saved_tensors
        return g + ctx.gamma * (u - b) / b.numel(), None


def bihalf(u: torch.Tensor, *, gamma: float = 6.0) -> torch.Tensor:
    """Bi-half layer (training): :func:`bihalf_codes` forward; backward
    ``grad + gamma * (u - b) / b.numel()`` (the released code's gradient, gamma = 6 by default)."""
    return _BiHalf.apply(u, float(gamma))

"""CRCD, complementary relation contrastive distillation (Zhu et al., CVPR 2021), at the code level.

Settings and machinery as CRD (``crd.py``): linear embeddings to ``embed_dim``, L2 normalisation,
student and teacher momentum banks of size n_train, ``n_negatives`` sampled negatives, NCE loss
with ``Z`` fixed on the first batch, both sides added. What CRCD contrasts is *relations*:
for the student-anchored side, with anchors ``a_j = m_t[y_j]`` (the teacher-bank rows of the
batch's own images),

    score[(b, j), k] = exp(<e(m_t[idx[b, k]] - a_j), e(f_s[b] - a_j)> / T) / Z_s

where ``e`` is the unit vector, ``idx[b, 0] = y_b`` (positive) and ``idx[b, 1:]`` the negatives;
the teacher-anchored side swaps the roles (anchors and contrast rows from the student bank,
``f_t`` in place of ``f_s``). Each (sample b, anchor j) pair is one NCE row.

What is implemented, and how it differs from the public code (Lechatelia/CRCD, which calls itself
incomplete, and its copy in the BRCD release):
- only the feature-relation term of that code; the paper's gradient-relation term is not in
  any public code and is not implemented;
- anchors are the batch's own bank rows, as in that code;
- ``self_anchor=False`` (default) drops the pairs j == b: their positive relation is the zero
  vector ``a_b - a_b``, which the public code turns into an arbitrary direction by adding 1e-6
  to every coordinate. With ``self_anchor=True`` those pairs are kept and any zero relation
  (a contrast row that *is* the anchor row) scores cosine 0;
- cosines are computed from inner products (no B x B x (1 + K) x d tensor), and the inner
  products with bank rows from one product with the whole bank (no (B, 1 + K, d) gather);
- ``negatives="class"`` draws the negatives from other classes with the training labels, as the
  BRCD release does (see ``crd.py`` / ``memory.py``); the default ``"uniform"`` needs no labels.
"""
from __future__ import annotations

import math

import torch

from .base import DistillBatch
from .crd import ContrastiveDistiller, use_dense
from .registry import register_distiller


def relation_cosines(
    fresh: torch.Tensor,
    anchors: torch.Tensor,
    contrast: torch.Tensor,
    idx: torch.Tensor,
    anchor_index: torch.Tensor,
    eps: float = 1e-12,
) -> torch.Tensor:
    """(B, B, 1 + K): ``[b, j, k] = <e(contrast[b, k] - anchors[j]), e(fresh[b] - anchors[j])>``.

    fresh: (B, d) embeddings with gradient; anchors: (B, d) bank rows ``bank[anchor_index]``;
    contrast: (B, 1 + K, d) bank rows ``bank[idx]``. A contrast row whose index equals the
    anchor's index is the zero relation and gets cosine 0. This is the plain form;
    :func:`bank_relation_cosines` computes the same values (in (B, 1 + K, B) layout) from the
    whole bank, which is what the distiller uses.
    """
    wf = torch.einsum("bkd,bd->bk", contrast, fresh)  # (B, K1)
    wa = torch.einsum("bkd,jd->bjk", contrast, anchors)  # (B, B, K1)
    fa = fresh @ anchors.t()  # (B, B)
    aa = anchors.pow(2).sum(dim=1)  # (B,)
    ww = contrast.pow(2).sum(dim=2)  # (B, K1)
    ff = fresh.pow(2).sum(dim=1)  # (B,)
    numerator = wf.unsqueeze(1) - wa - fa.unsqueeze(2) + aa.view(1, -1, 1)
    norm_w = (ww.unsqueeze(1) - 2.0 * wa + aa.view(1, -1, 1)).clamp_min(eps * eps).sqrt()
    norm_f = (ff.unsqueeze(1) - 2.0 * fa + aa.view(1, -1)).clamp_min(eps * eps).sqrt()
    cos = numerator / (norm_w * norm_f.unsqueeze(2))
    zero_relation = idx.unsqueeze(1) == anchor_index.view(1, -1, 1)
    return cos.masked_fill(zero_relation, 0.0).clamp(-1.0, 1.0)


def bank_relation_cosines(
    fresh: torch.Tensor,
    bank: torch.Tensor,
    idx: torch.Tensor,
    anchor_index: torch.Tensor,
    eps: float = 1e-12,
) -> torch.Tensor:
    """(B, 1 + K, B): ``[b, k, j]`` = :func:`relation_cosines` ``[b, j, k]`` with
    ``anchors = bank[anchor_index]`` and ``contrast = bank[idx]``.

    The inner products with bank rows come from (B, d) x (d, n) products with the whole
    (detached) bank, read at the sampled columns (no (B, 1 + K, d) tensor; rows are gathered
    instead when the bank is far larger than the sample, ``crd.use_dense``). Everything that
    does not depend on ``fresh`` (the contrast rows' relation norms, the anchor terms, the
    zero-relation mask) is computed without autograd and in place, so that only a few
    (B, 1 + K, B) tensors carry a gradient. Unlike :func:`relation_cosines` the values are not
    clamped to [-1, 1] (they can exceed it by rounding only).
    """
    bank = bank.detach()
    idx = idx.long().to(bank.device)
    anchor_index = anchor_index.long().to(bank.device)
    anchors = bank.index_select(0, anchor_index)  # (Bj, d)
    if use_dense(bank.shape[0], idx.numel()):
        wf = torch.gather(fresh @ bank.t(), 1, idx)  # (B, K1)
        with torch.no_grad():
            wa = (bank @ anchors.t())[idx]  # (B, K1, Bj): <bank[idx[b, k]], a_j>
            ww = bank.pow(2).sum(dim=1)[idx]  # (B, K1)
    else:
        contrast = bank.index_select(0, idx.reshape(-1)).reshape(*idx.shape, bank.shape[1])
        wf = torch.einsum("bkd,bd->bk", contrast, fresh)
        with torch.no_grad():
            wa = torch.einsum("bkd,jd->bkj", contrast, anchors)
            ww = contrast.pow(2).sum(dim=2)
    with torch.no_grad():
        aa = anchors.pow(2).sum(dim=1)  # (Bj,)
        # 1 / |w - a_j|, and 0 for the zero relation (a contrast row that is the anchor's row)
        inv_norm_w = (ww.unsqueeze(2) + aa).sub_(wa, alpha=2.0).clamp_min_(eps * eps).rsqrt_()
        inv_norm_w.masked_fill_(idx.unsqueeze(2) == anchor_index, 0.0)
        anchor_term = wa.neg_().add_(aa)  # <a_j, a_j> - <w, a_j>   (wa is consumed)
    fa = fresh @ anchors.t()  # (B, Bj)
    ff = fresh.pow(2).sum(dim=1)  # (B,)
    inv_norm_f = (ff.unsqueeze(1) - 2.0 * fa + aa).clamp_min(eps * eps).rsqrt()  # (B, Bj)
    # <w - a_j, f - a_j> = <w, f> - <f, a_j> + (<a_j, a_j> - <w, a_j>)
    numerator = (wf.unsqueeze(2) - fa.unsqueeze(1)) + anchor_term
    return numerator * (inv_norm_w * inv_norm_f.unsqueeze(1))


def log_nce_loss(scores: torch.Tensor, log_z: torch.Tensor, n_data: int, weights: torch.Tensor,
                 eps: float = 1e-7) -> torch.Tensor:
    """:func:`crd.nce_loss` of ``probs = exp(scores) / Z`` written in the log domain.

    scores: (B, 1 + K, J) logits, the positive at ``k = 0``; each (b, j) is one NCE row, counted
    with ``weights`` (B, J) (0 drops a row, e.g. a self-anchored pair). With ``P = exp(s - log Z)``
    and ``c = K / n_data``: ``log(P / (P + c + eps)) = (s - log Z) - logaddexp(s - log Z,
    log(c + eps))`` and ``log(c / (P + c + eps)) = log c - logaddexp(s - log Z, log(c + eps))``,
    with ``logaddexp(x, a) = a + softplus(x - a)`` (one transcendental per entry and direction).
    """
    m = scores.shape[1] - 1
    noise = m / float(n_data)
    lc = math.log(noise + eps)
    # logaddexp(x, lc) = lc + softplus(x - lc), with x = s - log Z
    soft = torch.nn.functional.softplus(scores - (log_z + lc))  # (B, 1 + K, J)
    log_d1 = scores[:, 0] - log_z - lc - soft[:, 0]  # (B, J)
    log_d0 = m * (math.log(noise) - lc) - soft[:, 1:].sum(dim=1)  # (B, J)
    return -((log_d1 + log_d0) * weights).sum() / weights.sum()


@register_distiller("crcd")
class CRCDDistiller(ContrastiveDistiller):
    """Complementary relation contrastive distillation (feature relations, both sides).

    Args:
        embed_dim: embedding size (paper, as CRD: 128).
        n_negatives: negatives per sample (500).
        temperature: NCE temperature (0.05).
        momentum: bank momentum (0.5).
        self_anchor: keep the (b, b) sample-anchor pairs (see the module docstring).
        inputs: ``"codes"`` (default) or ``"logits"``.
        weight: multiplier of the loss.
        eps: constant inside the NCE logs.
        negatives: ``"uniform"`` (default) or ``"class"`` (the release; reads the labels).
    """

    label = "CRCD"
    family = "contrastive"

    def __init__(
        self,
        *,
        embed_dim: int = 128,
        n_negatives: int = 500,
        temperature: float = 0.05,
        momentum: float = 0.5,
        self_anchor: bool = False,
        inputs: str = "codes",
        weight: float = 1.0,
        eps: float = 1e-7,
        negatives: str = "uniform",
    ):
        super().__init__(
            embed_dim=embed_dim,
            n_negatives=n_negatives,
            temperature=temperature,
            momentum=momentum,
            inputs=inputs,
            weight=weight,
            eps=eps,
            negatives=negatives,
        )
        self.self_anchor = bool(self_anchor)

    def _side(self, fresh: torch.Tensor, bank: torch.Tensor, idx: torch.Tensor,
              index: torch.Tensor, slot: int) -> torch.Tensor:
        """NCE loss of one side over its (sample b, anchor j) rows."""
        scores = bank_relation_cosines(fresh, bank, idx, index) / self.temperature  # (B, K1, Bj)
        b = index.numel()
        weights = torch.ones(b, b, dtype=scores.dtype, device=scores.device)
        if not self.self_anchor:
            weights.fill_diagonal_(0.0)
        if float(self.z[slot]) < 0:  # Z = mean(exp(score)) * n_data over the kept rows, 1st batch
            with torch.no_grad():
                kept = torch.exp(scores) * weights.unsqueeze(1)
                self.z[slot] = kept.sum() / (weights.sum() * scores.shape[1]) * self.n_data
        log_z = torch.log(self.z[slot].detach())
        return log_nce_loss(scores, log_z, self.n_data, weights, self.eps)

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        f_s, f_t, index = self._embed(batch)
        if not self.self_anchor and index.numel() < 2:
            raise ValueError("CRCD needs a batch of at least 2 images (anchors are the other items).")
        idx = self._contrast_indices(index)
        loss = (self._side(f_s, self.memory_t.bank, idx, index, 0)
                + self._side(f_t, self.memory_s.bank, idx, index, 1))
        self._update(index, f_s, f_t)
        return self.weight * loss

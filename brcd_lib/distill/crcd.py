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
- cosines are computed from inner products (no B x B x (1 + K) x d tensor);
- ``negatives="class"`` draws the negatives from other classes with the training labels, as the
  BRCD release does (see ``crd.py`` / ``memory.py``); the default ``"uniform"`` needs no labels.
"""
from __future__ import annotations

import torch

from .base import DistillBatch
from .crd import ContrastiveDistiller, fix_normaliser, nce_loss
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
    anchor's index is the zero relation and gets cosine 0.
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

    def _rows(self, cos: torch.Tensor) -> torch.Tensor:
        b = cos.shape[0]
        if self.self_anchor:
            return cos.reshape(b * b, -1)
        keep = ~torch.eye(b, dtype=torch.bool, device=cos.device)
        return cos[keep]  # (B (B - 1), 1 + K), rows ordered by (b, j)

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        f_s, f_t, index = self._embed(batch)
        if not self.self_anchor and index.numel() < 2:
            raise ValueError("CRCD needs a batch of at least 2 images (anchors are the other items).")
        idx = self._contrast_indices(index)
        cos_s = relation_cosines(
            f_s, self.memory_t.gather(index), self.memory_t.gather(idx), idx, index
        )
        cos_t = relation_cosines(
            f_t, self.memory_s.gather(index), self.memory_s.gather(idx), idx, index
        )
        out_s = torch.exp(self._rows(cos_s) / self.temperature)
        out_t = torch.exp(self._rows(cos_t) / self.temperature)
        z_s = fix_normaliser(self.z, 0, out_s, self.n_data)
        z_t = fix_normaliser(self.z, 1, out_t, self.n_data)
        loss = nce_loss(out_s / z_s, self.n_data, self.eps) + nce_loss(out_t / z_t, self.n_data, self.eps)
        self._update(index, f_s, f_t)
        return self.weight * loss

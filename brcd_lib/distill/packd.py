"""PACKD, positive-pair-aware contrastive KD (Yu et al., ACM MM 2022), at the hash-code level.

What is implemented (following the released PACKD code and its copy in the BRCD release):
- embeddings: ``feat = min(embed_dim, L)``; the student code goes through a trainable linear map
  L -> feat, the teacher code through one only when ``embed_dim < L`` (otherwise it is just
  L2-normalised, as the released code does when ``feat_dim >= t_dim``); both are L2-normalised;
- one teacher momentum bank of size n_train (momentum 0.5). As in the released code the bank is
  written with momentum 0 (overwritten) during its first ``warmup_iters`` = 782 updates (one per
  training step; the release hard-codes 782, about 10 epochs of its 5,000 CIFAR-10 training
  images at batch 64 = 79 steps per epoch) and momentum-updated afterwards. ``warmup_iters=0,
  overwrite_first=True`` gives the kit's earlier rule (each entry overwritten on its own first
  write). As in the released code the bank is updated with the teacher's view-1 embeddings
  *before* the negatives are read;
- positives: the ``views`` augmented views of the same image. Student embeddings of the views
  (points x_1..x_V) and teacher embeddings of the views (y_1..y_V, plus ``mined_positives`` bank
  entries, see below) are matched by an entropic optimal-transport plan ``pi`` (Sinkhorn,
  uniform marginals, squared Euclidean cost, ``sinkhorn_eps`` = 0.1, at most ``sinkhorn_iters``
  = 100 log-domain iterations, stop when the mean L1 change of the row potentials is below
  ``sinkhorn_tol`` = 0.1; ``pi`` carries no gradient). The positive logit is
  ``sum_ij pi_ij <x_i, y_j>``. With ``views=1`` the plan is the single pair (what the BRCD
  release runs, ``mixup_num = 1``); the default ``views=2`` uses both views of the batch so that
  the Sinkhorn weighting has something to weigh;
- negatives: ``n_negatives`` bank rows sampled uniformly among the other training images (the
  row's own index excluded; ``negatives="uniform"``, default) or among the images sharing no
  label with it (``negatives="class"``, the released ``packd_data`` sampler; reads
  ``DistillContext.train_labels``), scored against every student view;
- loss: ``-mean_b log(exp(pos_b / T) / (exp(pos_b / T) + sum exp(neg_b / T)))``, T = 0.07 (the
  released code's constant);
- ``mined_positives = n > 0`` (off by default; the released default ``pos_k = -1`` mines none):
  the n sampled bank rows most similar to the anchor's teacher view-1 embedding are moved from the
  negatives to the positive set, where the Sinkhorn plan weighs them with the views.
The released code's label-based positives (supervised ``pos_idx``) have no unsupervised analogue
other than this mining and are not implemented (``negatives="class"`` covers only its negatives).
"""
from __future__ import annotations

import math

import torch

from .base import DistillBatch, DistillContext, Distiller
from .crd import Embed
from .kd import check_inputs, student_teacher
from .memory import MomentumMemory, check_negatives, label_matrix
from .registry import register_distiller


@torch.no_grad()
def sinkhorn_plan(
    x: torch.Tensor, y: torch.Tensor, *, eps: float, max_iter: int, tol: float
) -> torch.Tensor:
    """Entropic OT plan (B, P1, P2) between point sets x (B, P1, d) and y (B, P2, d) with uniform
    marginals 1/P1 and 1/P2 and squared Euclidean cost (log-domain Sinkhorn)."""
    cost = (x.unsqueeze(2) - y.unsqueeze(1)).pow(2).sum(dim=-1)
    p1, p2 = cost.shape[1], cost.shape[2]
    u = cost.new_zeros(cost.shape[0], p1)
    v = cost.new_zeros(cost.shape[0], p2)

    def scaled(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (-cost + u.unsqueeze(2) + v.unsqueeze(1)) / eps

    for _ in range(int(max_iter)):
        u_prev = u
        u = eps * (-math.log(p1) - torch.logsumexp(scaled(u, v), dim=2)) + u
        v = eps * (-math.log(p2) - torch.logsumexp(scaled(u, v), dim=1)) + v
        if float((u - u_prev).abs().sum(dim=-1).mean()) < tol:
            break
    return torch.exp(scaled(u, v))


@register_distiller("packd")
class PACKDDistiller(Distiller):
    """Positive-pair-aware contrastive KD with Sinkhorn-weighted positives.

    Args:
        embed_dim: embedding size (paper: 64; capped at the code length L).
        n_negatives: negatives per sample from the teacher bank (paper: 500).
        temperature: InfoNCE temperature (released code: 0.07).
        momentum: bank momentum (0.5).
        overwrite_first: overwrite a bank entry on its first write (default off; see the module
            docstring).
        warmup_iters: bank updates written with momentum 0 first (released: 782).
        negatives: ``"uniform"`` (default) or ``"class"`` (the release; reads the labels).
        views: 1 or 2 augmented views used as positives (default 2).
        mined_positives: bank rows promoted from negatives to positives (default 0).
        sinkhorn_eps, sinkhorn_iters, sinkhorn_tol: Sinkhorn settings (0.1, 100, 0.1).
        inputs: ``"codes"`` (default) or ``"logits"``.
        weight: multiplier of the loss.
    """

    label = "PACKD"
    family = "contrastive"

    def __init__(
        self,
        *,
        embed_dim: int = 64,
        n_negatives: int = 500,
        temperature: float = 0.07,
        momentum: float = 0.5,
        overwrite_first: bool = False,
        warmup_iters: int = 782,
        negatives: str = "uniform",
        views: int = 2,
        mined_positives: int = 0,
        sinkhorn_eps: float = 0.1,
        sinkhorn_iters: int = 100,
        sinkhorn_tol: float = 0.1,
        inputs: str = "codes",
        weight: float = 1.0,
    ):
        super().__init__()
        if views not in (1, 2):
            raise ValueError(f"views must be 1 or 2 (a batch carries two views); got {views}.")
        if not 0 <= mined_positives < n_negatives:
            raise ValueError(
                f"mined_positives must lie in [0, n_negatives); got {mined_positives} with "
                f"n_negatives={n_negatives}."
            )
        if embed_dim < 1 or temperature <= 0 or sinkhorn_eps <= 0:
            raise ValueError("embed_dim must be >= 1, temperature and sinkhorn_eps > 0.")
        self.embed_dim = int(embed_dim)
        self.n_negatives = int(n_negatives)
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.overwrite_first = bool(overwrite_first)
        if int(warmup_iters) < 0:
            raise ValueError(f"warmup_iters must be >= 0; got {warmup_iters}.")
        self.warmup_iters = int(warmup_iters)
        self.negatives = check_negatives(negatives)
        self.class_labels: torch.Tensor | None = None
        self.views = int(views)
        self.mined_positives = int(mined_positives)
        self.sinkhorn_eps = float(sinkhorn_eps)
        self.sinkhorn_iters = int(sinkhorn_iters)
        self.sinkhorn_tol = float(sinkhorn_tol)
        self.inputs = check_inputs(inputs)
        self.weight = float(weight)
        self.embed_s: Embed | None = None
        self.embed_t: Embed | None = None
        self.memory_t: MomentumMemory | None = None

    @property
    def reads_labels(self) -> bool:
        """True with ``negatives="class"`` (negatives drawn from other classes)."""
        return self.negatives == "class"

    def prepare(self, context: DistillContext) -> None:
        """Create the embeddings (seeded by ``context.seed``) and the n_train-row teacher bank;
        with ``negatives="class"`` read ``context.train_labels`` (ValueError when missing)."""
        seed, l = int(context.seed), int(context.code_length)
        self.class_labels = (label_matrix(context.train_labels, int(context.n_train), self.name)
                             if self.reads_labels else None)
        feat = min(self.embed_dim, l)
        self.embed_s = Embed(dim_in=l, dim_out=feat, seed=seed)
        self.embed_t = Embed(dim_in=l, dim_out=feat, seed=seed + 1, linear=self.embed_dim < l)
        self.memory_t = MomentumMemory(
            n_items=int(context.n_train),
            dim=feat,
            momentum=self.momentum,
            seed=seed,
            overwrite_first=self.overwrite_first,
            warmup_updates=self.warmup_iters,
        )
        self.to(context.teacher_train_codes.device)

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        if self.embed_s is None:
            raise RuntimeError("packd: call prepare(context) before the first step.")
        pairs = [student_teacher(batch, self.inputs, view=v) for v in range(1, self.views + 1)]
        e_s = torch.stack([self.embed_s(s) for s, _ in pairs], dim=1)  # (B, V, d)
        e_t = torch.stack([self.embed_t(t) for _, t in pairs], dim=1)  # (B, V, d)
        index = batch.index.long().to(self.memory_t.bank.device)
        if self.training:
            self.memory_t.update(index, e_t[:, 0])
        if self.negatives == "class":
            neg_idx = self.memory_t.sample_class_negatives(index, self.n_negatives, self.class_labels)
        else:
            neg_idx = self.memory_t.sample_negatives(index, self.n_negatives)
        negatives = self.memory_t.gather(neg_idx)
        positives = e_t
        if self.mined_positives:
            sim = torch.einsum("bkd,bd->bk", negatives, e_t[:, 0].detach())
            top = sim.topk(self.mined_positives, dim=1).indices
            keep = torch.ones_like(sim, dtype=torch.bool).scatter(1, top, False)
            mined = torch.gather(negatives, 1, top.unsqueeze(2).expand(-1, -1, negatives.shape[2]))
            negatives = negatives[keep].view(sim.shape[0], -1, negatives.shape[2])
            positives = torch.cat([e_t, mined], dim=1)
        pi = sinkhorn_plan(
            e_s.detach(),
            positives.detach(),
            eps=self.sinkhorn_eps,
            max_iter=self.sinkhorn_iters,
            tol=self.sinkhorn_tol,
        )
        pos = (pi * torch.bmm(e_s, positives.transpose(1, 2))).sum(dim=(1, 2))  # (B,)
        neg = torch.einsum("bvd,bkd->bvk", e_s, negatives).reshape(e_s.shape[0], -1)
        logits = torch.cat([pos.unsqueeze(1), neg], dim=1) / self.temperature
        loss = -(logits[:, 0] - torch.logsumexp(logits, dim=1)).mean()
        return self.weight * loss

"""CRD, contrastive representation distillation (Tian et al., ICLR 2020), at the hash-code level.

Student and teacher codes are mapped by trainable linear embeddings (L -> ``embed_dim``) and
L2-normalised. Two memory banks of size n_train (``MomentumMemory``) keep a running student
embedding and a running teacher embedding per training image. For a batch with dataset indices
``y`` and ``n_negatives`` sampled negatives per row (the row's own index in column 0):

- student anchor: ``P_s[b, k] = exp(<m_t[idx[b, k]], f_s[b]> / T) / Z_s`` (teacher bank);
- teacher anchor: ``P_t[b, k] = exp(<m_s[idx[b, k]], f_t[b]> / T) / Z_t`` (student bank);
- ``Z`` is fixed on the first batch to ``mean(exp(. / T)) * n_train`` (RepDistiller's
  ``ContrastMemory``) and kept in the state dict;
- NCE loss with noise ``P_n = 1 / n_train`` and ``m = n_negatives``:
  ``-(1/B) * sum_b [log(P_pos / (P_pos + m P_n + eps)) + sum_k log(m P_n / (P_neg + m P_n + eps))]``
  for each side; the two sides are added;
- after the step (training mode only) both banks are momentum-updated at ``y``.

Negatives (``negatives=``): ``"uniform"`` (default, unsupervised) over all other training items,
or ``"class"`` over the items sharing no label with the positive, the BRCD release's
label-based sampler (needs ``DistillContext.train_labels``; see ``memory.py``).

Scoring: each side is one (B, d) x (d, n_train) product of the fresh embeddings with the whole
bank, whose sampled columns are then read (:func:`bank_scores`); no (B, 1 + K, d) tensor of bank
rows is formed unless the bank is much larger than the number of sampled entries.

Parameters (the two embeddings) and banks are created in ``prepare()``: build the optimiser
after calling it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import DistillBatch, DistillContext, Distiller
from .kd import check_inputs, student_teacher
from .memory import MomentumMemory, check_negatives, contrast_indices, label_matrix
from .registry import register_distiller


class Embed(nn.Module):
    """Linear map (optional) followed by row L2 normalisation; weights drawn from a seeded
    generator with PyTorch's default ``nn.Linear`` bounds ``U(-1/sqrt(dim_in), 1/sqrt(dim_in))``."""

    def __init__(self, *, dim_in: int, dim_out: int, seed: int, linear: bool = True):
        super().__init__()
        if not linear and dim_in != dim_out:
            raise ValueError(f"an Embed without a linear map needs dim_in == dim_out; got {dim_in}, {dim_out}.")
        self.dim_in, self.dim_out = int(dim_in), int(dim_out)
        self.linear = nn.Linear(self.dim_in, self.dim_out) if linear else None
        if self.linear is not None:
            g = torch.Generator().manual_seed(int(seed))
            bound = 1.0 / self.dim_in**0.5
            with torch.no_grad():
                self.linear.weight.uniform_(-bound, bound, generator=g)
                self.linear.bias.uniform_(-bound, bound, generator=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dim_in:
            raise ValueError(
                f"embedding expects {self.dim_in}-d inputs (the code length given to prepare()); "
                f"got {x.shape[-1]}-d."
            )
        if self.linear is not None:
            x = self.linear(x)
        return F.normalize(x, dim=-1)


#: :func:`bank_scores` multiplies with the whole bank when it has at most this many times as many
#: rows as there are sampled entries (B (1 + K)); beyond that it gathers the sampled rows.
DENSE_FACTOR = 4.0


def use_dense(n_bank: int, n_sampled: int) -> bool:
    """Whether scoring against the whole bank is cheaper than gathering ``n_sampled`` rows."""
    return n_bank <= DENSE_FACTOR * n_sampled


def bank_scores(memory: MomentumMemory, fresh: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(B, 1 + K) inner products ``<bank[idx[b, k]], fresh[b]>`` (the bank carries no gradient).

    One (B, d) x (d, n) matrix product against the whole bank followed by a gather of the sampled
    columns, or, when the bank is far larger than the sample (:func:`use_dense`), a gather of the
    sampled rows and a batched product."""
    bank = memory.bank.detach()
    idx = idx.long().to(bank.device)
    if use_dense(bank.shape[0], idx.numel()):
        return torch.gather(fresh @ bank.t(), 1, idx)
    return torch.einsum("bkd,bd->bk", memory.gather(idx), fresh)


def nce_loss(probs: torch.Tensor, n_data: int, eps: float = 1e-7) -> torch.Tensor:
    """RepDistiller's ``ContrastLoss``: ``probs`` (N, 1 + K), positive in column 0."""
    m = probs.shape[1] - 1
    noise = m / float(n_data)
    p_pos = probs[:, 0]
    p_neg = probs[:, 1:]
    log_d1 = torch.log(p_pos / (p_pos + noise + eps))
    log_d0 = torch.log(noise / (p_neg + noise + eps))
    return -(log_d1.sum() + log_d0.sum()) / probs.shape[0]


def fix_normaliser(z: torch.Tensor, slot: int, scores: torch.Tensor, n_data: int) -> torch.Tensor:
    """Set ``z[slot]`` to ``mean(scores) * n_data`` if not yet set (negative), return it."""
    if float(z[slot]) < 0:
        with torch.no_grad():
            z[slot] = scores.detach().mean() * n_data
    return z[slot].detach()


class ContrastiveDistiller(Distiller):
    """Shared set-up of CRD and CRCD: two embeddings, two momentum banks, two Z constants."""

    def __init__(
        self,
        *,
        embed_dim: int,
        n_negatives: int,
        temperature: float,
        momentum: float,
        inputs: str,
        weight: float,
        eps: float,
        negatives: str = "uniform",
    ):
        super().__init__()
        if embed_dim < 1 or n_negatives < 1 or temperature <= 0:
            raise ValueError(
                f"need embed_dim >= 1, n_negatives >= 1, temperature > 0; got {embed_dim}, "
                f"{n_negatives}, {temperature}."
            )
        self.embed_dim = int(embed_dim)
        self.n_negatives = int(n_negatives)
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.inputs = check_inputs(inputs)
        self.weight = float(weight)
        self.eps = float(eps)
        self.negatives = check_negatives(negatives)
        self.n_data = 0
        self.class_labels: torch.Tensor | None = None  # (n_train, C) 0/1, CPU, negatives="class"
        self.embed_s: Embed | None = None
        self.embed_t: Embed | None = None
        self.memory_s: MomentumMemory | None = None
        self.memory_t: MomentumMemory | None = None
        # Z for the student-anchored side (slot 0) and the teacher-anchored side (slot 1).
        self.register_buffer("z", torch.full((2,), -1.0))

    @property
    def reads_labels(self) -> bool:
        """True with ``negatives="class"`` (negatives drawn from other classes)."""
        return self.negatives == "class"

    def prepare(self, context: DistillContext) -> None:
        """Create the embeddings (seeded by ``context.seed``) and the n_train-row banks; with
        ``negatives="class"`` read ``context.train_labels`` (ValueError when missing)."""
        seed = int(context.seed)
        self.n_data = int(context.n_train)
        self.class_labels = (label_matrix(context.train_labels, self.n_data, self.name)
                             if self.reads_labels else None)
        self.embed_s = Embed(dim_in=context.code_length, dim_out=self.embed_dim, seed=seed)
        self.embed_t = Embed(dim_in=context.code_length, dim_out=self.embed_dim, seed=seed + 1)
        self.memory_s = MomentumMemory(
            n_items=self.n_data, dim=self.embed_dim, momentum=self.momentum, seed=seed
        )
        self.memory_t = MomentumMemory(
            n_items=self.n_data, dim=self.embed_dim, momentum=self.momentum, seed=seed + 1
        )
        self.z.fill_(-1.0)
        self.to(context.teacher_train_codes.device)

    def _embed(self, batch: DistillBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.embed_s is None:
            raise RuntimeError(f"{self.name}: call prepare(context) before the first step.")
        s, t = student_teacher(batch, self.inputs)
        index = batch.index.long().to(self.memory_s.bank.device)
        return self.embed_s(s), self.embed_t(t), index

    def _contrast_indices(self, index: torch.Tensor) -> torch.Tensor:
        """(B, 1 + K): the positive, then ``n_negatives`` negatives under the ``negatives`` rule
        (drawn from the student bank's seeded sampler)."""
        if self.negatives == "class":
            neg = self.memory_s.sample_class_negatives(index, self.n_negatives, self.class_labels)
        else:
            neg = self.memory_s.sample_negatives(index, self.n_negatives)
        return contrast_indices(index, neg)

    def _update(self, index: torch.Tensor, f_s: torch.Tensor, f_t: torch.Tensor) -> None:
        if self.training:
            self.memory_s.update(index, f_s)
            self.memory_t.update(index, f_t)


@register_distiller("crd")
class CRDDistiller(ContrastiveDistiller):
    """Contrastive representation distillation with momentum memory banks.

    Args:
        embed_dim: embedding size (paper: 128).
        n_negatives: negatives per sample drawn from the bank (paper: 500).
        temperature: NCE temperature (paper: 0.05).
        momentum: bank momentum (paper: 0.5).
        inputs: ``"codes"`` (default) or ``"logits"``.
        weight: multiplier of the loss.
        eps: RepDistiller's constant inside the NCE logs.
        negatives: ``"uniform"`` (default) or ``"class"`` (the release; reads the labels).
    """

    label = "CRD"
    family = "contrastive"

    def __init__(
        self,
        *,
        embed_dim: int = 128,
        n_negatives: int = 500,
        temperature: float = 0.05,
        momentum: float = 0.5,
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

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        f_s, f_t, index = self._embed(batch)
        idx = self._contrast_indices(index)
        out_s = torch.exp(bank_scores(self.memory_t, f_s, idx) / self.temperature)  # teacher bank
        out_t = torch.exp(bank_scores(self.memory_s, f_t, idx) / self.temperature)  # student bank
        z_s = fix_normaliser(self.z, 0, out_s, self.n_data)
        z_t = fix_normaliser(self.z, 1, out_t, self.n_data)
        loss = nce_loss(out_s / z_s, self.n_data, self.eps) + nce_loss(out_t / z_t, self.n_data, self.eps)
        self._update(index, f_s, f_t)
        return self.weight * loss

"""Momentum memory bank and negative-index sampler shared by CRD, CRCD and PACKD.

The data layer gives every batch its dataset indices (``DistillBatch.index``); the contrastive
baselines draw their negatives from this module with a seeded ``torch.Generator`` so that a run
is reproducible. Two rules (``negatives=`` of CRD, CRCD and PACKD, checked by
:func:`check_negatives`):

- ``"uniform"`` (the kit's default, unsupervised): uniform with replacement over every training
  item except the positive itself (:meth:`MomentumMemory.sample_negatives`);
- ``"class"`` (the BRCD release, RepDistiller's ``mode="exact"`` sampler with ``cls_negative``):
  uniform over the training items that share *no* label with the positive, without replacement
  when they are at least as many as the negatives drawn, with replacement otherwise, as the
  release (:meth:`MomentumMemory.sample_class_negatives`). For one-hot labels these are the items of the
  other classes, as in the release; for multi-hot labels (MS-COCO, NUS-WIDE) an item is a negative
  when its label set is disjoint from the anchor's, the complement of the mAP relevance rule. A
  row for which every other item shares a label falls back to all other items. The bank holds
one L2-normalised embedding per training item and is refreshed after each step with a momentum
update, as in RepDistiller's ``ContrastMemory`` (Tian et al., ICLR 2020).

The bank and the sampler state are both saved in ``state_dict()`` (the sampler through
``get_extra_state``), so a resumed run draws the same negatives as an uninterrupted one.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class MomentumMemory(nn.Module):
    """A bank of ``n_items`` unit vectors of size ``dim`` plus a seeded negative sampler.

    Args:
        n_items: number of training items (dataset indices are ``0 .. n_items - 1``).
        dim: embedding size.
        momentum: weight of the old entry in ``update``: ``new = m * old + (1 - m) * emb``,
            then L2-normalised (RepDistiller's ``nce_m``; 0 overwrites).
        seed: seeds both the initial bank and the negative sampler.
        overwrite_first: when True an entry that was never written is overwritten (momentum 0)
            on its first update.
        warmup_updates: the first ``warmup_updates`` calls of :meth:`update` use momentum 0
            (overwrite), the later ones ``momentum``. PACKD's released memory does this for its
            first 782 updates (``memory_change_num // 782 == 0``), about 10 epochs of the
            5,000-image CIFAR-10 training set at batch 64. The count is saved in the state dict.

    The initial bank is uniform in ``[-s, s]`` with ``s = 1 / sqrt(dim / 3)`` (RepDistiller's
    initialisation) and then L2-normalised per row (as the CRCD and PACKD releases do).
    """

    def __init__(
        self,
        *,
        n_items: int,
        dim: int,
        momentum: float,
        seed: int,
        overwrite_first: bool = False,
        warmup_updates: int = 0,
    ) -> None:
        super().__init__()
        if int(n_items) < 2:
            raise ValueError(
                f"MomentumMemory needs n_items >= 2 (one positive and at least one possible "
                f"negative); got n_items={n_items}. Pass the training-set size."
            )
        if int(dim) < 1:
            raise ValueError(f"MomentumMemory needs dim >= 1; got dim={dim}.")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1]; got momentum={momentum}.")
        self.n_items = int(n_items)
        self.dim = int(dim)
        self.momentum = float(momentum)
        self.seed = int(seed)
        self.overwrite_first = bool(overwrite_first)
        if int(warmup_updates) < 0:
            raise ValueError(f"warmup_updates must be >= 0; got {warmup_updates}.")
        self.warmup_updates = int(warmup_updates)
        self.n_updates = 0
        self._generator = torch.Generator().manual_seed(self.seed)
        stdv = 1.0 / math.sqrt(self.dim / 3.0)
        bank = torch.rand(self.n_items, self.dim, generator=self._generator) * (2 * stdv) - stdv
        self.register_buffer("bank", F.normalize(bank, dim=1))
        self.register_buffer("written", torch.zeros(self.n_items, dtype=torch.bool))

    # ------------------------------------------------------------------ sampling
    def _check_index(self, index: torch.Tensor) -> torch.Tensor:
        if index.dim() != 1:
            raise ValueError(
                f"index must be a 1-d tensor of dataset indices (B,); got shape {tuple(index.shape)}."
            )
        index = index.long()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.n_items):
            raise ValueError(
                f"dataset index out of range [0, {self.n_items}): min {int(index.min())}, "
                f"max {int(index.max())}. Is n_train in the DistillContext the training-set size?"
            )
        return index

    def sample_negatives(self, index: torch.Tensor, k: int) -> torch.Tensor:
        """(B, k) long tensor of negatives: uniform with replacement over all items except the
        row's own index ``index[b]``; on the device of ``index``."""
        index = self._check_index(index)
        if int(k) < 1:
            raise ValueError(f"k (number of negatives) must be >= 1; got k={k}.")
        draw = torch.randint(
            0, self.n_items - 1, (index.numel(), int(k)), generator=self._generator
        ).to(index.device)
        # Draw from n_items - 1 values and shift the ones at or above the positive: uniform over
        # every item except the positive.
        return draw + (draw >= index.unsqueeze(1)).long()

    def sample_class_negatives(self, index: torch.Tensor, k: int, labels: torch.Tensor) -> torch.Tensor:
        """(B, k) long tensor of negatives that share no label with ``index[b]``, drawn uniformly
        from the items ``j`` with ``labels[j] . labels[index[b]] == 0`` (never the row itself):
        ``k`` distinct items when that pool holds at least ``k``, with replacement otherwise, as
        the release's ``np.random.choice(pool, k, replace=k > len(pool))``. A row without such an
        item draws from all other items. ``labels``: the (n_items, C) 0/1 float matrix of
        :func:`label_matrix`."""
        index = self._check_index(index)
        if int(k) < 1:
            raise ValueError(f"k (number of negatives) must be >= 1; got k={k}.")
        if labels.dim() != 2 or labels.shape[0] != self.n_items:
            raise ValueError(
                f"labels must be an ({self.n_items}, C) matrix (one row per training item); got "
                f"shape {tuple(labels.shape)}."
            )
        labels = labels.to(device="cpu", dtype=torch.float32)
        rows = torch.arange(index.numel())
        allowed = (labels[index.cpu()] @ labels.t()) == 0  # (B, n_items): no shared label
        allowed[rows, index.cpu()] = False
        empty = ~allowed.any(dim=1)
        if bool(empty.any()):
            allowed[empty] = True
            allowed[rows[empty], index.cpu()[empty]] = False
        # the release (crd_data / packd_data): np.random.choice(pool, k, replace=k > len(pool)),
        # i.e. k distinct negatives when the row's pool holds at least k items
        k = int(k)
        weights = allowed.float()
        large = allowed.sum(dim=1) >= k
        draw = torch.empty(index.numel(), k, dtype=torch.long)
        for rows_, replace in ((large, False), (~large, True)):
            if bool(rows_.any()):
                draw[rows_] = torch.multinomial(weights[rows_], k, replacement=replace,
                                                generator=self._generator)
        return draw.to(index.device)

    # ------------------------------------------------------------------ bank access
    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        """Bank rows for any-shaped long ``idx`` -> ``idx.shape + (dim,)``, detached."""
        idx = idx.long().to(self.bank.device)
        return self.bank.index_select(0, idx.reshape(-1)).reshape(*idx.shape, self.dim).detach()

    @torch.no_grad()
    def update(self, index: torch.Tensor, embeddings: torch.Tensor) -> None:
        """Momentum update of rows ``index`` with ``embeddings`` (B, dim), then L2-normalise."""
        index = self._check_index(index).to(self.bank.device)
        if embeddings.shape != (index.numel(), self.dim):
            raise ValueError(
                f"embeddings must have shape ({index.numel()}, {self.dim}); "
                f"got {tuple(embeddings.shape)}."
            )
        emb = embeddings.detach().to(self.bank.dtype)
        m = torch.full((index.numel(), 1), self.momentum, dtype=emb.dtype, device=emb.device)
        if self.n_updates < self.warmup_updates:
            m = torch.zeros_like(m)
        if self.overwrite_first:
            m = torch.where(self.written[index].unsqueeze(1), m, torch.zeros_like(m))
        new = m * self.bank[index] + (1.0 - m) * emb
        # out of place: a step's scores may have saved the bank for their backward pass
        self.bank = self.bank.index_copy(0, index, F.normalize(new, dim=1))
        self.written[index] = True
        self.n_updates += 1

    # ------------------------------------------------------------------ checkpointing
    def get_extra_state(self) -> Any:
        return {"generator_state": self._generator.get_state(), "n_updates": self.n_updates}

    def set_extra_state(self, state: Any) -> None:
        self._generator.set_state(state["generator_state"])
        self.n_updates = int(state.get("n_updates", 0))  # absent in checkpoints before the warm-up option


NEGATIVE_RULES: tuple[str, ...] = ("uniform", "class")


def check_negatives(negatives: str) -> str:
    """Validate a ``negatives`` rule name; raises ValueError listing the valid names."""
    if negatives not in NEGATIVE_RULES:
        raise ValueError(
            f"unknown negatives {negatives!r}; valid names: {', '.join(NEGATIVE_RULES)} "
            f"('class' draws from other classes with the training labels, as the BRCD release)"
        )
    return negatives


def label_matrix(labels: torch.Tensor | None, n_train: int, method: str) -> torch.Tensor:
    """The (n_train, C) 0/1 float32 label matrix of ``DistillContext.train_labels`` ((n_train, C)
    multi-hot or (n_train,) class ids), on the CPU. Raises ValueError naming ``method`` when the
    labels are missing or do not have one row per training item."""
    if labels is None:
        raise ValueError(
            f"{method} with negatives='class' draws negatives from other classes and needs the "
            f"training labels: pass DistillContext(train_labels=...) ((n_train, C) multi-hot or "
            f"(n_train,) class ids), or use negatives='uniform' (unsupervised)."
        )
    labels = torch.as_tensor(labels).detach().cpu()
    if labels.dim() == 1:
        if labels.is_floating_point() or (labels.numel() and int(labels.min()) < 0):
            raise ValueError(f"{method}: 1-d train_labels must be non-negative integer class ids.")
        labels = torch.nn.functional.one_hot(labels.long(), int(labels.max()) + 1 if labels.numel() else 1)
    if labels.dim() != 2 or labels.shape[0] != int(n_train):
        raise ValueError(
            f"{method}: train_labels must have one row per training item, shape ({n_train}, C) or "
            f"({n_train},); got {tuple(labels.shape)}."
        )
    labels = labels.to(torch.float32)
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError(f"{method}: train_labels must be a 0/1 (multi-hot) matrix.")
    return labels


def contrast_indices(index: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """(B, 1 + k): the positive's own index in column 0, then its negatives (RepDistiller's
    ``contrast_idx`` layout)."""
    return torch.cat([index.long().unsqueeze(1), negatives], dim=1)

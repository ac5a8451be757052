"""BRCD: bit-mask robust contrastive knowledge distillation (He et al., WWW 2024).

Implements method.md section 3:

- :func:`bit_masks` -- per-cluster masks that keep the consistent bits (``|mean| > margin``);
- :func:`offset_alpha` -- alpha per sample, 1 for offset positives (view 2 left the anchor's cluster);
- :func:`brcd_loss` -- the contrastive objective over 2B rows with the mixed individual /
  structural positive and false-negative removal;
- :class:`BRCDDistiller` -- the ``"brcd"`` distiller: k-means on the teacher's clean training codes
  in ``prepare``, then :func:`brcd_loss` per batch.

Deviations from the released code (github.com/hly1998/BRCD) are listed in ``docs/brcd.md``.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..registry import Registry
from .base import DistillBatch, DistillContext, Distiller
from .clustering import cached_kmeans, kmeans_codes, nearest_centroid
from .registry import register_distiller

__all__ = [
    "bit_masks",
    "offset_alpha",
    "brcd_loss",
    "brcd_logits",
    "BRCDDistiller",
    "list_mask_rules",
    "register_mask_rule",
    "ablation_variants",
]

_COS_EPS = 1e-8

# --------------------------------------------------------------------------------------------
# Bit masks
# --------------------------------------------------------------------------------------------

MaskRule = Callable[[torch.Tensor, float], torch.Tensor]
MASK_RULES: Registry = Registry("mask rule")


def register_mask_rule(name: str) -> Callable[[MaskRule], MaskRule]:
    """Register ``fn(cluster_means (K, L) float64, margin) -> (K, L) mask`` under ``name``."""
    return MASK_RULES.register(name)


def list_mask_rules() -> list[str]:
    """Names accepted by ``bit_masks(rule=...)``."""
    return MASK_RULES.names()


@register_mask_rule("paper")
def _paper_rule(means: torch.Tensor, margin: float) -> torch.Tensor:
    """method.md section 3: keep bit j of cluster c when ``|m_c[j]| > margin``."""
    return (means.abs() > margin).to(means.dtype)


@register_mask_rule("upstream")
def _upstream_rule(means: torch.Tensor, margin: float) -> torch.Tensor:
    """The arithmetic of the released ``get_mask/get_matrix.py``, reproduced as is::

        matrix = np.where(matrix > args.margin, matrix, 1)
        matrix = np.where(matrix < args.margin, matrix, 0)

    applied to ``matrix = |cluster means|``. The first line sends every entry <= margin to 1 and
    keeps the others (> margin); the second zeroes every entry >= margin. Since ``|mean| <= 1``,
    the result is all zeros for any margin <= 1 and all ones for margin > 1 (method.md section 4,
    defect 1).
    """
    m = means.abs()
    one = torch.ones_like(m)
    zero = torch.zeros_like(m)
    m = torch.where(m > margin, m, one)
    m = torch.where(m < margin, m, zero)
    return m


def _to_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    try:
        return torch.as_tensor(np.asarray(x))
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} must be a tensor or array; got {type(x).__name__}") from exc


def bit_masks(codes, clusters, n_clusters: int, margin: float, rule: str = "paper") -> torch.Tensor:
    """Per-cluster bit masks (method.md section 3, step 3).

    Args:
        codes: (n, L) tensor or array of +-1 (the teacher's clean training codes).
        clusters: (n,) integer pseudo labels in ``[0, n_clusters)``.
        n_clusters: K.
        margin: delta; with ``rule="paper"`` bit j of cluster c is kept when ``|m_c[j]| > margin``
            where ``m_c`` is the mean of cluster c's codes.
        rule: a name from :func:`list_mask_rules`: ``"paper"`` (the rule of the paper) or
            ``"upstream"`` (what the released mask script computes; all zeros for margin <= 1).

    Returns:
        (K, L) float32 tensor of 0/1 on the device of ``codes`` (CPU for arrays).

    Raises:
        ValueError: unknown rule, shapes that do not match, codes not +-1, labels out of range,
            or an empty cluster (named, with the advice to use a smaller K).
    """
    rule_fn = MASK_RULES.get(rule)
    c = _to_tensor(codes, "codes")
    y = _to_tensor(clusters, "clusters")
    if c.dim() != 2:
        raise ValueError(f"codes must be (n, L); got shape {tuple(c.shape)}")
    if y.dim() != 1 or y.shape[0] != c.shape[0]:
        raise ValueError(
            f"clusters must be (n,) with n = {c.shape[0]} (one label per code); got shape {tuple(y.shape)}"
        )
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        if y.dtype == torch.bool or not torch.equal(y, y.round()):
            raise ValueError("clusters must hold integer cluster indices")
    y = y.to(device=c.device, dtype=torch.long)
    if isinstance(n_clusters, bool) or int(n_clusters) != n_clusters or n_clusters < 1:
        raise ValueError(f"n_clusters must be a positive int; got {n_clusters!r}")
    n_clusters = int(n_clusters)
    margin = float(margin)
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0; got {margin}")
    c = c.to(torch.float64)
    if not bool(((c == 1) | (c == -1)).all()):
        raise ValueError("codes must contain only +1 and -1 (binarise with sign, sign(0) = +1)")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_clusters):
        raise ValueError(
            f"cluster labels must lie in [0, {n_clusters}); got min {int(y.min())}, max {int(y.max())}"
        )
    if n_clusters > c.shape[0]:
        raise ValueError(
            f"n_clusters={n_clusters} is larger than the number of training codes n={c.shape[0]}; "
            f"at least {n_clusters - c.shape[0]} clusters must be empty. Use at most {c.shape[0]} "
            "clusters or more codes"
        )
    counts = torch.bincount(y, minlength=n_clusters)
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        raise ValueError(
            f"cluster {empty[0]} is empty (empty clusters: {empty}); its bit mask is undefined. "
            f"Use a smaller number of clusters than K={n_clusters}"
        )
    sums = torch.zeros(n_clusters, c.shape[1], dtype=torch.float64, device=c.device)
    sums.index_add_(0, y, c)
    means = sums / counts[:, None].to(torch.float64)
    return rule_fn(means, margin).to(torch.float32)


# --------------------------------------------------------------------------------------------
# Offset positives
# --------------------------------------------------------------------------------------------


def offset_alpha(alpha, cluster: torch.Tensor, cluster_other: torch.Tensor) -> torch.Tensor:
    """alpha per sample: ``alpha`` where ``cluster == cluster_other``, 1.0 where they differ.

    An *offset positive* is a sample whose view-2 teacher code lies nearest to a centroid other
    than the anchor's pseudo label; its structural (cross-view) term is dropped.

    Args:
        alpha: float, or (B,) tensor of per-sample weights.
        cluster: (B,) pseudo labels of the anchors.
        cluster_other: (B,) nearest centroids of the view-2 teacher codes.

    Returns:
        (B,) float tensor (alpha's dtype when it is a floating tensor, else float32).
    """
    cluster = torch.as_tensor(cluster)
    cluster_other = torch.as_tensor(cluster_other, device=cluster.device)
    if cluster.dim() != 1 or cluster.shape != cluster_other.shape:
        raise ValueError(
            f"cluster and cluster_other must both be (B,); got {tuple(cluster.shape)} and "
            f"{tuple(cluster_other.shape)}"
        )
    if isinstance(alpha, torch.Tensor):
        dtype = alpha.dtype if alpha.dtype.is_floating_point else torch.float32
        a = alpha.to(device=cluster.device, dtype=dtype)
        if a.dim() == 0:
            a = a.expand(cluster.shape[0])
        if a.shape != cluster.shape:
            raise ValueError(f"alpha must be a float or (B,) = {tuple(cluster.shape)}; got {tuple(a.shape)}")
    else:
        a = torch.full(cluster.shape, float(alpha), dtype=torch.float32, device=cluster.device)
    return torch.where(cluster == cluster_other, a, torch.ones_like(a))


# --------------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------------


def _cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a_i, b_j) = a_i . b_j / max(|a_i| |b_j|, eps); 0 (not NaN) for an all-zero vector.

    The norm product is formed as ``sqrt(max(|a|^2 |b|^2, eps^2))`` so the gradient at a zero
    vector is finite as well.
    """
    dots = a @ b.T
    na2 = (a * a).sum(dim=1)
    nb2 = (b * b).sum(dim=1)
    denom = torch.sqrt(torch.clamp(na2[:, None] * nb2[None, :], min=_COS_EPS**2))
    return dots / denom


def _cosine_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine with the same zero-vector convention as :func:`_cosine_matrix`."""
    dots = (a * b).sum(dim=1)
    denom = torch.sqrt(torch.clamp((a * a).sum(dim=1) * (b * b).sum(dim=1), min=_COS_EPS**2))
    return dots / denom


def _negative_mask(
    batch_size: int,
    cluster: torch.Tensor | None,
    cluster_other: torch.Tensor | None,
    device: torch.device,
) -> tuple[torch.Tensor, int]:
    """(2B, 2B) bool matrix of the negatives kept for each row, and the number of false negatives
    removed by the cluster rule (self and partner are never counted)."""
    n = 2 * batch_size
    idx = torch.arange(n, device=device)
    partner = (idx + batch_size) % n
    valid = torch.ones(n, n, dtype=torch.bool, device=device)
    valid[idx, idx] = False
    valid[idx, partner] = False
    if cluster is None:
        return valid, 0
    anchor_cluster = torch.cat([cluster, cluster])  # rows k and B+k both belong to sample k
    entry_cluster = torch.cat([cluster, cluster_other])  # student row k / teacher row B+k
    same = anchor_cluster[:, None] == entry_cluster[None, :]
    removed = same & valid
    return valid & ~same, int(removed.sum())


def check_temperature(temperature) -> float:
    """``temperature`` as a float when it is a finite number > 0; else ``ValueError`` naming it
    (an infinite tau makes every logit 0: a constant loss without gradient; 0, a negative or a
    NaN one has no meaning)."""
    try:
        tau = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a finite number > 0 (the paper's tau is 0.3); "
                         f"got {temperature!r}") from None
    if not (math.isfinite(tau) and tau > 0):
        why = (": every logit would be 0, a constant loss that gives the student no gradient"
               if tau == math.inf else "")
        raise ValueError(f"temperature must be a finite number > 0 (the paper's tau is 0.3); "
                         f"got {temperature!r}{why}")
    return tau


def _check_loss_inputs(student, teacher, teacher_other, temperature, mask, cluster, cluster_other):
    for name, t in (("student", student), ("teacher", teacher), ("teacher_other", teacher_other)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            raise ValueError(f"{name} must be a (B, L) tensor; got {getattr(t, 'shape', type(t))}")
    if teacher.shape != student.shape or teacher_other.shape != student.shape:
        raise ValueError(
            "student, teacher and teacher_other must have the same (B, L) shape; got "
            f"{tuple(student.shape)}, {tuple(teacher.shape)}, {tuple(teacher_other.shape)}"
        )
    if student.shape[0] < 1 or student.shape[1] < 1:
        raise ValueError(f"the batch is empty: shape {tuple(student.shape)}")
    check_temperature(temperature)
    if mask is not None and (not isinstance(mask, torch.Tensor) or mask.shape != student.shape):
        raise ValueError(
            f"mask must be None or a (B, L) = {tuple(student.shape)} tensor (the mask row of each "
            f"sample's cluster, masks[cluster]); got {getattr(mask, 'shape', type(mask))}"
        )
    if (cluster is None) != (cluster_other is None):
        raise ValueError("pass both cluster and cluster_other (false-negative removal) or neither")
    if cluster is not None:
        b = student.shape[0]
        cluster, cluster_other = torch.as_tensor(cluster), torch.as_tensor(cluster_other)
        for name, c in (("cluster", cluster), ("cluster_other", cluster_other)):
            if c.is_floating_point() or c.is_complex() or c.dtype == torch.bool:
                raise ValueError(f"{name} must hold integer cluster ids (e.g. a long tensor from "
                                 f"k-means), got dtype {c.dtype}")
        if tuple(cluster.shape) != (b,) or tuple(cluster_other.shape) != (b,):
            raise ValueError(
                f"cluster and cluster_other must be (B,) = ({b},); got {tuple(cluster.shape)} and "
                f"{tuple(cluster_other.shape)}"
            )


def brcd_logits(
    student: torch.Tensor,
    teacher: torch.Tensor,
    teacher_other: torch.Tensor,
    *,
    temperature: float = 0.3,
    alpha=0.8,
    mask: torch.Tensor | None = None,
    cluster: torch.Tensor | None = None,
    cluster_other: torch.Tensor | None = None,
) -> torch.Tensor:
    """The (2B, 1 + 2B) logits of :func:`brcd_loss`: column 0 is the positive of each row, column
    1 + q is ``cos(u_r, u_q) / tau`` for a kept negative q and ``-inf`` for q = r, q = r's partner
    and removed false negatives. Same arguments and conventions as :func:`brcd_loss`."""
    _check_loss_inputs(student, teacher, teacher_other, temperature, mask, cluster, cluster_other)
    b = student.shape[0]
    dtype = student.dtype if student.dtype.is_floating_point else torch.float32
    s = student.to(dtype)
    t1 = teacher.detach().to(device=s.device, dtype=dtype)
    t2 = teacher_other.detach().to(device=s.device, dtype=dtype)

    if isinstance(alpha, torch.Tensor):
        a = alpha.detach().to(device=s.device, dtype=dtype)
        if a.dim() == 0:
            a = a.expand(b)
        if a.shape != (b,):
            raise ValueError(f"alpha must be a float or a (B,) = ({b},) tensor; got {tuple(a.shape)}")
    else:
        a = torch.full((b,), float(alpha), dtype=dtype, device=s.device)
    if bool(((a < 0) | (a > 1) | torch.isnan(a)).any()):
        raise ValueError("alpha must lie in [0, 1] (1 = individual term only, 0 = structural only)")

    if mask is not None:
        m = mask.detach().to(device=s.device, dtype=dtype)
        u = torch.cat([s * m, t2 * m], dim=0)
    else:
        u = torch.cat([s, t2], dim=0)

    tau = float(temperature)
    sim = _cosine_matrix(u, u) / tau  # (2B, 2B)
    individual = _cosine_rows(s, t1) / tau  # (B,)
    structural = torch.diagonal(sim, offset=b)  # cos(u_k, u_{B+k}) / tau, (B,)
    positive = a * individual + (1 - a) * structural
    positive = torch.cat([positive, positive])  # rows k and B+k share the positive

    if cluster is not None:
        cl = torch.as_tensor(cluster, device=s.device).long()
        clo = torch.as_tensor(cluster_other, device=s.device).long()
    else:
        cl = clo = None
    valid, _ = _negative_mask(b, cl, clo, s.device)
    negatives = sim.masked_fill(~valid, float("-inf"))
    return torch.cat([positive[:, None], negatives], dim=1)


def brcd_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    teacher_other: torch.Tensor,
    *,
    temperature: float = 0.3,
    alpha=0.8,
    mask: torch.Tensor | None = None,
    cluster: torch.Tensor | None = None,
    cluster_other: torch.Tensor | None = None,
) -> torch.Tensor:
    """The BRCD objective (method.md section 3).

    Rows r = 0..2B-1: ``u_k = s_k * M_k`` (k < B) and ``u_{B+k} = t2_k * M_k``, with ``M_k`` the
    mask row of sample k (``mask[k]``; all ones when ``mask`` is None).

    - individual term ``I_k = cos(s_k, t1_k) / tau`` (unmasked, same view);
    - structural term ``S_k = cos(u_k, u_{B+k}) / tau``;
    - positive logit of rows k and B+k: ``alpha_k I_k + (1 - alpha_k) S_k``;
    - negatives of row r: ``cos(u_r, u_q) / tau`` for every q other than r and its partner;
    - with ``cluster`` / ``cluster_other`` given, a negative q is removed when its cluster
      (``cluster[j]`` for a student row j, ``cluster_other[j]`` for a teacher row B+j) equals the
      anchor's cluster ``cluster[k]`` (rows k and B+k). Removal is exact (the logit is -inf, i.e.
      dropped from the softmax); the released code adds -1000 instead, so each removed term keeps
      a weight ``exp(-1000)`` times its own -- the two agree up to that factor;
    - loss = mean over the 2B rows of the cross-entropy with the positive as class 0.

    Cosine of an all-zero vector is 0. ``teacher``, ``teacher_other``, ``mask`` and ``alpha`` are
    detached; the gradient flows only into ``student``.

    Args:
        student: (B, L) student codes of view 1 (with gradient).
        teacher: (B, L) teacher codes of view 1.
        teacher_other: (B, L) teacher codes of view 2.
        temperature: tau > 0.
        alpha: float or (B,) tensor in [0, 1] (see :func:`offset_alpha`).
        mask: (B, L) per-sample mask rows, or None for no masking.
        cluster: (B,) pseudo labels of the anchors, or None.
        cluster_other: (B,) nearest centroid of each view-2 teacher code, or None.

    Returns:
        Scalar tensor.
    """
    logits = brcd_logits(
        student,
        teacher,
        teacher_other,
        temperature=temperature,
        alpha=alpha,
        mask=mask,
        cluster=cluster,
        cluster_other=cluster_other,
    )
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


# --------------------------------------------------------------------------------------------
# The distiller
# --------------------------------------------------------------------------------------------


def ablation_variants() -> dict[str, dict]:
    """Keyword overrides of :class:`BRCDDistiller` for the paper's ablations (plus the released
    mask rule for comparison)."""
    return {
        "brcd": {},
        "no_mask": {"use_mask": False},
        "no_cluster": {"use_cluster": False},
        "alpha_1": {"alpha": 1.0},
        "alpha_0": {"alpha": 0.0},
        "upstream_mask": {"mask_rule": "upstream"},
    }


@register_distiller("brcd")
class BRCDDistiller(Distiller):
    """BRCD as a distiller (method.md section 3).

    ``prepare`` runs k-means (cached when the context names a ``cache_dir``) on the teacher's clean
    training codes and builds the per-cluster bit masks; ``forward`` looks up each sample's pseudo
    label by dataset index, finds the nearest centroid of its view-2 teacher code (unmasked: the
    kit's fix of defect 4), sets alpha = 1 for offset positives and calls :func:`brcd_loss`.

    Args (keyword-only):
        temperature: tau of the contrastive logits.
        alpha: weight of the individual term in the positive.
        margin: delta of the bit masks.
        n_clusters: K of k-means.
        use_mask: apply the bit masks (False = ablation "without bit mask").
        use_cluster: false-negative removal and offset positives (False = ablation "without
            cluster-based handling"; alpha is then constant).
        mask_rule: ``"paper"`` or ``"upstream"`` (see :func:`bit_masks`).
        n_init: k-means++ restarts.
        kmeans_max_iter: Lloyd iterations per restart.

    After ``prepare``: ``pseudo_labels`` (n_train,), ``centroids`` (K, L), ``masks`` (K, L),
    ``kept_bit_fraction`` and :meth:`stats`.
    """

    label = "BRCD"
    family = "ours"

    def __init__(
        self,
        *,
        temperature: float = 0.3,
        alpha: float = 0.8,
        margin: float = 0.5,
        n_clusters: int = 10,
        use_mask: bool = True,
        use_cluster: bool = True,
        mask_rule: str = "paper",
        n_init: int = 10,
        kmeans_max_iter: int = 300,
    ) -> None:
        super().__init__()
        check_temperature(temperature)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1]; got {alpha}")
        if not float(margin) >= 0:
            raise ValueError(f"margin must be >= 0; got {margin}")
        if int(n_clusters) < 1:
            raise ValueError(f"n_clusters must be >= 1; got {n_clusters}")
        if int(n_clusters) == 1 and use_cluster:
            raise ValueError(
                "n_clusters=1 with the cluster-based handling (use_cluster=True) removes every "
                "negative (all items share the anchor's one cluster): the BRCD loss is exactly 0 "
                "and the student learns nothing from the teacher. Use n_clusters >= 2 (the "
                "profile's brcd.n_clusters, e.g. --set brcd.n_clusters=10), or use_cluster=False")
        MASK_RULES.entry(mask_rule)  # ValueError naming the valid rules
        if int(n_init) < 1 or int(kmeans_max_iter) < 1:
            raise ValueError(
                f"n_init and kmeans_max_iter must be >= 1; got {n_init}, {kmeans_max_iter}"
            )
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.margin = float(margin)
        self.n_clusters = int(n_clusters)
        self.use_mask = bool(use_mask)
        self.use_cluster = bool(use_cluster)
        self.mask_rule = mask_rule
        self.n_init = int(n_init)
        self.kmeans_max_iter = int(kmeans_max_iter)
        # Non-persistent buffers: they follow .to(device) but stay out of state_dict (they are
        # rebuilt by prepare, deterministically and from cache).
        self.register_buffer("pseudo_labels", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer("centroids", torch.empty(0), persistent=False)
        self.register_buffer("masks", torch.empty(0), persistent=False)
        self.kept_bit_fraction: float | None = None
        self.inertia: float | None = None
        self._prepared = False
        self._last: dict[str, float | int | None] = {
            "offset_positive_rate": None,
            "removed_negatives": None,
        }

    def prepare(self, context: DistillContext) -> None:
        """k-means on ``context.teacher_train_codes`` -> pseudo labels, centroids, bit masks."""
        codes = context.teacher_train_codes
        if not isinstance(codes, torch.Tensor):
            codes = torch.as_tensor(np.asarray(codes))
        if codes.dim() != 2:
            raise ValueError(f"teacher_train_codes must be (n_train, L); got {tuple(codes.shape)}")
        if codes.shape[0] != context.n_train:
            raise ValueError(
                f"teacher_train_codes has {codes.shape[0]} rows but n_train = {context.n_train}; "
                "encode every training image once, row i = dataset index i"
            )
        if codes.shape[1] != context.code_length:
            raise ValueError(
                f"teacher_train_codes has {codes.shape[1]} bits but code_length = {context.code_length}"
            )
        codes_cpu = codes.detach().cpu().float()
        if context.cache_dir is not None:
            res = cached_kmeans(
                codes_cpu,
                n_clusters=self.n_clusters,
                seed=context.seed,
                n_init=self.n_init,
                max_iter=self.kmeans_max_iter,
                cache_dir=context.cache_dir,
                cache_key=context.cache_key,
            )
        else:
            res = kmeans_codes(
                codes_cpu,
                n_clusters=self.n_clusters,
                seed=context.seed,
                n_init=self.n_init,
                max_iter=self.kmeans_max_iter,
            )
        labels = torch.from_numpy(res.labels).long()
        masks = bit_masks(codes_cpu, labels, self.n_clusters, self.margin, rule=self.mask_rule)
        device = self.pseudo_labels.device
        self.pseudo_labels = labels.to(device)
        self.centroids = torch.from_numpy(res.centroids).float().to(device)
        self.masks = masks.to(device)
        self.kept_bit_fraction = float(masks.mean())
        self.inertia = res.inertia
        self._prepared = True

    def forward(self, batch: DistillBatch) -> torch.Tensor:
        """L_BRCD of one batch."""
        if not self._prepared:
            raise RuntimeError("BRCDDistiller.forward called before prepare(context); call prepare first")
        device = batch.student.device
        index = torch.as_tensor(batch.index, device=self.pseudo_labels.device).long()
        if index.dim() != 1 or index.shape[0] != batch.student.shape[0]:
            raise ValueError(
                f"batch.index must be (B,) with B = {batch.student.shape[0]}; got {tuple(index.shape)}"
            )
        n_train = self.pseudo_labels.shape[0]
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n_train):
            raise ValueError(
                f"batch.index must lie in [0, {n_train}) (dataset indices of the training set); got "
                f"min {int(index.min())}, max {int(index.max())}"
            )
        cluster = self.pseudo_labels[index].to(device)
        cluster_other = nearest_centroid(batch.teacher_other.detach(), self.centroids).to(device)
        offset = cluster != cluster_other
        self._last["offset_positive_rate"] = float(offset.float().mean())

        alpha = offset_alpha(self.alpha, cluster, cluster_other) if self.use_cluster else self.alpha
        mask = self.masks.to(device)[cluster] if self.use_mask else None
        if self.use_cluster:
            _, removed = _negative_mask(cluster.shape[0], cluster, cluster_other, device)
            self._last["removed_negatives"] = removed
            return brcd_loss(
                batch.student,
                batch.teacher,
                batch.teacher_other,
                temperature=self.temperature,
                alpha=alpha,
                mask=mask,
                cluster=cluster,
                cluster_other=cluster_other,
            )
        self._last["removed_negatives"] = 0
        return brcd_loss(
            batch.student,
            batch.teacher,
            batch.teacher_other,
            temperature=self.temperature,
            alpha=alpha,
            mask=mask,
        )

    def stats(self) -> dict:
        """Diagnostics: kept bits per cluster, kept-bit fraction, k-means inertia, and for the
        last batch the offset-positive rate and the number of removed false negatives (pairs
        (row, negative) over the 2B rows; 0 when ``use_cluster`` is False)."""
        if not self._prepared:
            raise RuntimeError("stats() needs prepare(context) first")
        return {
            "kept_bits_per_cluster": [int(v) for v in self.masks.sum(dim=1).round().tolist()],
            "kept_bit_fraction": self.kept_bit_fraction,
            "inertia": self.inertia,
            "offset_positive_rate": self._last["offset_positive_rate"],
            "removed_negatives": self._last["removed_negatives"],
        }

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, alpha={self.alpha}, margin={self.margin}, "
            f"n_clusters={self.n_clusters}, use_mask={self.use_mask}, use_cluster={self.use_cluster}, "
            f"mask_rule={self.mask_rule!r}, n_init={self.n_init}, kmeans_max_iter={self.kmeans_max_iter}"
        )

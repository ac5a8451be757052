"""CIBHash (Qiu et al., IJCAI 2021), the paper's hashing objective (method.md section 2).

For logits h1, h2 of two views: ``p = sigmoid(h)``, codes ``b = sign_ste(p - 0.5)``;

    loss = NT-Xent(b1, b2; tau) + beta * (KL(p1 || p2) + KL(p2 || p1)) / 2

* NT-Xent: the 2B codes ``z = [b1; b2]``, ``s_ij = cos(z_i, z_j) / tau``; row i's positive is its
  partner (i +- B), its negatives the other 2(B - 1) rows; loss = mean over the 2B rows of
  ``-log(exp(s_pos) / (exp(s_pos) + sum_neg exp(s_neg)))`` (the released ``NtXentLoss``:
  cross-entropy with reduction "sum" divided by 2B).
* KL between factorised Bernoulli distributions, per bit ``p log(p/q) + (1-p) log((1-p)/(1-q))``,
  **summed over the L bits and averaged over the B images** (``torch.mean(torch.sum(kl, 1))`` in
  the released ``compute_kl``). The released code detaches the second argument (the target)
  of each direction; ``detach_target=True`` (default) does the same. Probabilities are clamped to
  ``[prob_eps, 1 - prob_eps]`` (the released code adds 1e-8 inside the logarithms instead).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .hash_layers import sign_pm1, sign_ste
from .objectives import HashObjective, ObjectiveOutput, register_objective


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """NT-Xent (SimCLR) between two (B, D) batches whose row i is a positive pair; cosine
    similarity / ``temperature``; mean over the 2B rows."""
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"nt_xent needs two (B, D) tensors of the same shape, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def bernoulli_kl(p: torch.Tensor, q: torch.Tensor, *, eps: float = 1e-7) -> torch.Tensor:
    """KL(Bernoulli(p) || Bernoulli(q)) per entry, probabilities clamped to [eps, 1 - eps]."""
    p = p.clamp(eps, 1 - eps)
    q = q.clamp(eps, 1 - eps)
    return p * (torch.log(p) - torch.log(q)) + (1 - p) * (torch.log1p(-p) - torch.log1p(-q))


def symmetric_bernoulli_kl(p1: torch.Tensor, p2: torch.Tensor, *, eps: float = 1e-7,
                           detach_target: bool = True) -> torch.Tensor:
    """``(KL(p1 || p2) + KL(p2 || p1)) / 2``, each summed over bits and averaged over the batch;
    with ``detach_target`` the second argument of each KL carries no gradient (released code)."""
    t1, t2 = (p1.detach(), p2.detach()) if detach_target else (p1, p2)
    kl12 = bernoulli_kl(p1, t2, eps=eps).sum(dim=1).mean()
    kl21 = bernoulli_kl(p2, t1, eps=eps).sum(dim=1).mean()
    return (kl12 + kl21) / 2


@register_objective("cibhash")
class CIBHash(HashObjective):
    """CIBHash: NT-Xent between the two views' codes + beta * symmetric Bernoulli KL."""

    def __init__(self, *, temperature: float = 0.3, beta: float = 0.001, prob_eps: float = 1e-7,
                 detach_target: bool = True):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0 < prob_eps < 0.5:
            raise ValueError(f"prob_eps must lie in (0, 0.5), got {prob_eps}")
        self.temperature = float(temperature)
        self.beta = float(beta)
        self.prob_eps = float(prob_eps)
        self.detach_target = bool(detach_target)

    def forward(self, logits1: torch.Tensor, logits2: torch.Tensor, feats1: torch.Tensor | None = None,
                feats2: torch.Tensor | None = None) -> ObjectiveOutput:
        """Loss and straight-through codes of two views' logits (features are not used)."""
        self._check(logits1, logits2, feats1, feats2)
        p1, p2 = torch.sigmoid(logits1), torch.sigmoid(logits2)
        b1, b2 = sign_ste(p1 - 0.5), sign_ste(p2 - 0.5)
        contrastive = nt_xent(b1, b2, temperature=self.temperature)
        kl = symmetric_bernoulli_kl(p1, p2, eps=self.prob_eps, detach_target=self.detach_target)
        loss = contrastive + self.beta * kl
        self.last_terms = {"contrastive": float(contrastive.detach()), "kl": float(kl.detach())}
        return ObjectiveOutput(loss, b1, b2)

    @torch.no_grad()
    def encode(self, logits: torch.Tensor) -> torch.Tensor:
        """Evaluation codes ``sign(sigmoid(h) - 0.5)`` (sign(0) = +1)."""
        return sign_pm1(torch.sigmoid(logits) - 0.5)

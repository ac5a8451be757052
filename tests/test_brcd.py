"""Tests of the BRCD loss, bit masks, offset alpha and the ``brcd`` distiller."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brcd_lib.distill.base import DistillBatch, DistillContext
from brcd_lib.distill.brcd import (
    BRCDDistiller,
    ablation_variants,
    bit_masks,
    brcd_logits,
    brcd_loss,
    list_mask_rules,
    offset_alpha,
)
from brcd_lib.distill.clustering import nearest_centroid
from brcd_lib.distill.registry import get_distiller, list_distillers

torch.set_num_threads(1)

# ------------------------------------------------------------------------------------------
# Reference: a plain Python loop written from method.md section 3, independent of the library.
# ------------------------------------------------------------------------------------------


def _cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    den = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 0.0 if den == 0 else dot / den


def reference_loss(
    s, t1, t2, *, tau, alpha, mask=None, cluster=None, cluster_other=None, removal="exact"
):
    """Loop over the 2B rows; ``removal="minus1000"`` mimics the released code's -1000 offset."""
    B, L = len(s), len(s[0])
    alphas = list(alpha) if isinstance(alpha, (list, tuple)) else [alpha] * B
    M = mask if mask is not None else [[1.0] * L for _ in range(B)]
    rows = [[s[k][j] * M[k][j] for j in range(L)] for k in range(B)]
    rows += [[t2[k][j] * M[k][j] for j in range(L)] for k in range(B)]
    total = 0.0
    for r in range(2 * B):
        k = r if r < B else r - B
        partner = r + B if r < B else r - B
        individual = _cos(s[k], t1[k]) / tau
        structural = _cos(rows[k], rows[k + B]) / tau
        pos = alphas[k] * individual + (1 - alphas[k]) * structural
        logits = [pos]
        for q in range(2 * B):
            if q == r or q == partner:
                continue
            neg = _cos(rows[r], rows[q]) / tau
            if cluster is not None:
                q_cluster = cluster[q] if q < B else cluster_other[q - B]
                if q_cluster == cluster[k]:
                    if removal == "exact":
                        continue
                    neg = neg - 1000.0
            logits.append(neg)
        mx = max(logits)
        lse = mx + math.log(sum(math.exp(x - mx) for x in logits))
        total += lse - pos
    return total / (2 * B)


# Hand-chosen inputs, B = 3, L = 4.
S = [[1, -1, 1, 1], [-1, -1, 1, -1], [1, 1, -1, -1]]
T1 = [[1, -1, 1, 1], [-1, 1, 1, -1], [1, 1, -1, 1]]
T2 = [[1, 1, 1, 1], [-1, -1, -1, -1], [-1, 1, -1, -1]]
MASK = [[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1]]
CL = [0, 1, 0]
CL_OTHER = [0, 1, 1]  # sample 2's view 2 left cluster 0: an offset positive
TAU = 0.3


def _t(x, requires_grad=False):
    return torch.tensor(x, dtype=torch.float64, requires_grad=requires_grad)


CASES = {
    "no_mask": dict(alpha=0.8),
    "mask": dict(alpha=0.8, mask=MASK),
    "clusters": dict(alpha=0.8, cluster=CL, cluster_other=CL_OTHER),
    "mask_clusters": dict(alpha=0.8, mask=MASK, cluster=CL, cluster_other=CL_OTHER),
    "alpha_tensor_offset": dict(alpha=[0.8, 0.8, 1.0], mask=MASK, cluster=CL, cluster_other=CL_OTHER),
    "alpha_1": dict(alpha=1.0, mask=MASK),
    "alpha_0": dict(alpha=0.0, mask=MASK),
    "alpha_0_clusters": dict(alpha=0.0, cluster=CL, cluster_other=CL_OTHER),
}


def _lib_kwargs(case):
    kw = {}
    a = case["alpha"]
    kw["alpha"] = _t(a) if isinstance(a, list) else a
    if "mask" in case:
        kw["mask"] = _t(case["mask"])
    if "cluster" in case:
        kw["cluster"] = torch.tensor(case["cluster"])
        kw["cluster_other"] = torch.tensor(case["cluster_other"])
    return kw


@pytest.mark.parametrize("name", sorted(CASES))
def test_brcd_loss_golden(name):
    case = CASES[name]
    expected = reference_loss(S, T1, T2, tau=TAU, **case)
    got = brcd_loss(_t(S), _t(T1), _t(T2), temperature=TAU, **_lib_kwargs(case))
    assert got.dim() == 0
    assert float(got) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_cases_differ_from_each_other():
    """The switches matter on the golden inputs (otherwise the golden tests would prove little)."""
    values = {n: reference_loss(S, T1, T2, tau=TAU, **c) for n, c in CASES.items()}
    assert len({round(v, 9) for v in values.values()}) == len(values)


def test_exact_removal_matches_minus_1000_convention():
    case = CASES["mask_clusters"]
    ref_released = reference_loss(S, T1, T2, tau=TAU, removal="minus1000", **case)
    got = brcd_loss(_t(S), _t(T1), _t(T2), temperature=TAU, **_lib_kwargs(case))
    assert float(got) == pytest.approx(ref_released, rel=1e-12, abs=1e-12)


def test_all_zero_mask_alpha_0_is_log_of_row_size():
    """Every cosine is 0: each row has the positive and 2B - 2 negatives, all logits 0."""
    B, L = 3, 4
    loss = brcd_loss(_t(S), _t(T1), _t(T2), temperature=TAU, alpha=0.0, mask=torch.zeros(B, L))
    assert float(loss) == pytest.approx(math.log(2 * B - 1), rel=1e-12)


def test_batch_of_one_has_no_negatives():
    loss = brcd_loss(_t(S[:1]), _t(T1[:1]), _t(T2[:1]), temperature=TAU, alpha=0.5)
    assert float(loss) == 0.0


def test_gradient_only_into_student():
    s = _t(S, requires_grad=True)
    t1 = _t(T1, requires_grad=True)
    t2 = _t(T2, requires_grad=True)
    mask = _t(MASK, requires_grad=True)
    loss = brcd_loss(
        s, t1, t2, temperature=TAU, alpha=0.8, mask=mask,
        cluster=torch.tensor(CL), cluster_other=torch.tensor(CL_OTHER),
    )
    loss.backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0
    assert t1.grad is None and t2.grad is None and mask.grad is None


def test_zero_mask_gives_finite_loss_and_gradient():
    s = _t(S, requires_grad=True)
    loss = brcd_loss(s, _t(T1), _t(T2), temperature=TAU, alpha=0.8, mask=torch.zeros(3, 4))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(s.grad).all()


def test_logits_layout():
    logits = brcd_logits(
        _t(S), _t(T1), _t(T2), temperature=TAU, alpha=0.8,
        cluster=torch.tensor(CL), cluster_other=torch.tensor(CL_OTHER),
    )
    assert logits.shape == (6, 7)
    neg = logits[:, 1:]
    for r in range(6):
        assert neg[r, r] == float("-inf")
        assert neg[r, (r + 3) % 6] == float("-inf")
    # row 0 (anchor cluster 0): student row 2 (cluster 0) is a false negative, teacher row 5
    # (cluster_other[2] = 1) is kept.
    assert neg[0, 2] == float("-inf")
    assert torch.isfinite(neg[0, 5])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mask=torch.ones(2, 4)), "mask"),
        (dict(cluster=torch.tensor([0, 1, 0])), "both cluster"),
        (dict(cluster=torch.tensor([0, 1]), cluster_other=torch.tensor([0, 1])), r"\(B,\)"),
        (dict(alpha=1.5), r"\[0, 1\]"),
        (dict(temperature=0.0), "temperature"),
    ],
)
def test_brcd_loss_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        brcd_loss(_t(S), _t(T1), _t(T2), **kwargs)


def test_brcd_loss_shape_mismatch():
    with pytest.raises(ValueError, match="same"):
        brcd_loss(_t(S), _t(T1)[:2], _t(T2))


# ------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------


def _pm1(rng, *shape):
    return torch.from_numpy(rng.choice([-1.0, 1.0], size=shape))


batch_st = st.tuples(st.integers(2, 5), st.integers(2, 8), st.integers(0, 2**31 - 1))


@settings(max_examples=25, deadline=None)
@given(batch_st)
def test_alpha_1_positive_ignores_teacher_other_and_mask(params):
    B, L, seed = params
    rng = np.random.default_rng(seed)
    s, t1, t2a, t2b = (_pm1(rng, B, L) for _ in range(4))
    ma = torch.from_numpy(rng.integers(0, 2, size=(B, L)).astype(np.float64))
    mb = torch.from_numpy(rng.integers(0, 2, size=(B, L)).astype(np.float64))
    pa = brcd_logits(s, t1, t2a, alpha=1.0, mask=ma)[:, 0]
    pb = brcd_logits(s, t1, t2b, alpha=1.0, mask=mb)[:, 0]
    assert torch.allclose(pa, pb, rtol=0, atol=1e-12)
    # With an all-zero mask every negative is 0, so the whole loss ignores teacher_other.
    la = brcd_loss(s, t1, t2a, alpha=1.0, mask=torch.zeros(B, L))
    lb = brcd_loss(s, t1, t2b, alpha=1.0, mask=torch.zeros(B, L))
    assert float(la) == pytest.approx(float(lb), abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(batch_st, st.integers(1, 3), st.floats(0.0, 1.0))
def test_removing_false_negatives_never_increases_loss(params, n_clusters, alpha):
    B, L, seed = params
    rng = np.random.default_rng(seed)
    s, t1, t2 = (_pm1(rng, B, L) for _ in range(3))
    cl = torch.from_numpy(rng.integers(0, n_clusters, size=B))
    clo = torch.from_numpy(rng.integers(0, n_clusters, size=B))
    with_c = brcd_loss(s, t1, t2, alpha=alpha, cluster=cl, cluster_other=clo)
    without = brcd_loss(s, t1, t2, alpha=alpha)
    assert float(with_c) <= float(without) + 1e-12
    # Strictly lower when at least one negative shares the anchor's cluster.
    valid_negs = B >= 2
    shares = any(
        (int(cl[j]) == int(cl[k]) and j != k) or (int(clo[j]) == int(cl[k]) and j != k)
        for k in range(B)
        for j in range(B)
    )
    if valid_negs and shares:
        assert float(with_c) < float(without)


@settings(max_examples=25, deadline=None)
@given(batch_st, st.floats(0.0, 1.0))
def test_all_zero_mask_is_finite(params, alpha):
    B, L, seed = params
    rng = np.random.default_rng(seed)
    s = _pm1(rng, B, L).requires_grad_(True)
    t1, t2 = _pm1(rng, B, L), _pm1(rng, B, L)
    loss = brcd_loss(s, t1, t2, alpha=alpha, mask=torch.zeros(B, L))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


@settings(max_examples=15, deadline=None)
@given(batch_st, st.floats(0.0, 1.0), st.integers(1, 3))
def test_loss_matches_reference_on_random_inputs(params, alpha, n_clusters):
    B, L, seed = params
    rng = np.random.default_rng(seed)
    s, t1, t2 = (_pm1(rng, B, L) for _ in range(3))
    mask = rng.integers(0, 2, size=(B, L)).astype(np.float64)
    cl = rng.integers(0, n_clusters, size=B)
    clo = rng.integers(0, n_clusters, size=B)
    expected = reference_loss(
        s.tolist(), t1.tolist(), t2.tolist(), tau=TAU, alpha=alpha, mask=mask.tolist(),
        cluster=cl.tolist(), cluster_other=clo.tolist(),
    )
    got = brcd_loss(
        s, t1, t2, temperature=TAU, alpha=alpha, mask=torch.from_numpy(mask),
        cluster=torch.from_numpy(cl), cluster_other=torch.from_numpy(clo),
    )
    assert float(got) == pytest.approx(expected, rel=1e-10, abs=1e-10)


# ------------------------------------------------------------------------------------------
# offset_alpha
# ------------------------------------------------------------------------------------------


def test_offset_alpha_float():
    got = offset_alpha(0.8, torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2]))
    assert got.dtype.is_floating_point
    assert got.tolist() == pytest.approx([0.8, 1.0, 0.8])


def test_offset_alpha_tensor():
    got = offset_alpha(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([4, 1, 2]), torch.tensor([3, 1, 0]))
    assert got.tolist() == pytest.approx([1.0, 0.2, 1.0])


def test_offset_alpha_shape_error():
    with pytest.raises(ValueError, match="cluster_other"):
        offset_alpha(0.8, torch.tensor([0, 1]), torch.tensor([0, 1, 2]))


# ------------------------------------------------------------------------------------------
# bit_masks
# ------------------------------------------------------------------------------------------

# cluster 0: means [1, 0, 1]; cluster 1: means [-1, 1, 0]; cluster 2: means [0.5, -1, 0.5]
CODES = [
    [1, 1, 1], [1, -1, 1],
    [-1, 1, 1], [-1, 1, -1],
    [1, -1, 1], [1, -1, 1], [1, -1, 1], [-1, -1, -1],
]
LABELS = [0, 0, 1, 1, 2, 2, 2, 2]


def test_bit_masks_paper_by_hand():
    m = bit_masks(torch.tensor(CODES, dtype=torch.float32), torch.tensor(LABELS), 3, 0.5)
    assert m.dtype == torch.float32 and m.shape == (3, 3)
    # |mean| > 0.5 strictly: 0.5 is dropped.
    assert m.tolist() == [[1, 0, 1], [1, 1, 0], [0, 1, 0]]


def test_bit_masks_paper_lower_margin_and_numpy_input():
    m = bit_masks(np.array(CODES), np.array(LABELS), 3, 0.25)
    assert m.tolist() == [[1, 0, 1], [1, 1, 0], [1, 1, 1]]


@pytest.mark.parametrize("margin", [0.0, 0.25, 0.5, 1.0])
def test_bit_masks_upstream_all_zero_up_to_margin_1(margin):
    m = bit_masks(torch.tensor(CODES), torch.tensor(LABELS), 3, margin, rule="upstream")
    assert m.tolist() == [[0, 0, 0]] * 3


def test_bit_masks_upstream_above_1_is_all_ones():
    # where(|m| > 1.5, |m|, 1) -> all 1; where(1 < 1.5, 1, 0) -> all 1
    m = bit_masks(torch.tensor(CODES), torch.tensor(LABELS), 3, 1.5, rule="upstream")
    assert m.tolist() == [[1, 1, 1]] * 3


def test_bit_masks_empty_cluster():
    with pytest.raises(ValueError, match=r"cluster 1 is empty.*smaller"):
        bit_masks(torch.tensor(CODES), torch.tensor([0, 0, 2, 2, 2, 2, 2, 2]), 3, 0.5)


@pytest.mark.parametrize(
    "codes, labels, k, margin, rule, match",
    [
        (CODES, LABELS, 3, 0.5, "nope", "valid names: paper, upstream"),
        ([[1, 0.5, 1]] * 8, LABELS, 3, 0.5, "paper", r"\+1 and -1"),
        (CODES, LABELS[:-1], 3, 0.5, "paper", "one label per code"),
        (CODES, LABELS, 2, 0.5, "paper", r"\[0, 2\)"),
        (CODES, LABELS, 3, -0.1, "paper", "margin"),
    ],
)
def test_bit_masks_bad_input(codes, labels, k, margin, rule, match):
    with pytest.raises(ValueError, match=match):
        bit_masks(torch.tensor(codes, dtype=torch.float32), torch.tensor(labels), k, margin, rule=rule)


def test_mask_rules_registry():
    assert list_mask_rules() == ["paper", "upstream"]


def _clustered_codes(rng, n_per, k, L, n_structured, flip):
    """k prototypes; the first ``n_structured`` bits follow the prototype with ``flip``
    probability of flipping, the rest are fair coins (redundancy bits)."""
    protos = rng.choice([-1.0, 1.0], size=(k, L))
    codes, labels = [], []
    for c in range(k):
        x = np.repeat(protos[c][None], n_per, axis=0)
        flips = rng.random((n_per, n_structured)) < flip
        x[:, :n_structured] = np.where(flips, -x[:, :n_structured], x[:, :n_structured])
        x[:, n_structured:] = rng.choice([-1.0, 1.0], size=(n_per, L - n_structured))
        codes.append(x)
        labels += [c] * n_per
    return np.concatenate(codes), np.array(labels)


def test_bit_masks_realistic_clusters_neither_all_zero_nor_all_one():
    rng = np.random.default_rng(0)
    codes, labels = _clustered_codes(rng, n_per=60, k=4, L=16, n_structured=10, flip=0.1)
    m = bit_masks(codes, labels, 4, 0.5)
    assert 0 < float(m.mean()) < 1
    # structured bits are mostly kept, coin bits mostly dropped
    assert float(m[:, :10].mean()) > float(m[:, 10:].mean())
    assert float(bit_masks(codes, labels, 4, 0.5, rule="upstream").sum()) == 0


# ------------------------------------------------------------------------------------------
# The distiller
# ------------------------------------------------------------------------------------------


def _context(rng, n=80, L=12, k=4, cache_dir=None):
    codes, _ = _clustered_codes(rng, n_per=n // k, k=k, L=L, n_structured=8, flip=0.1)
    return DistillContext(
        teacher_train_codes=torch.from_numpy(codes).float(), n_train=n, code_length=L, seed=3,
        cache_dir=cache_dir, cache_key="test",
    )


def _batch(rng, ctx, B=6):
    L = ctx.code_length
    index = torch.from_numpy(rng.choice(ctx.n_train, size=B, replace=False))
    teacher = ctx.teacher_train_codes[index].clone()
    teacher_other = teacher.clone()
    teacher_other[: B // 2] *= -1  # far from its centroid: an offset positive for those samples
    student = torch.from_numpy(rng.choice([-1.0, 1.0], size=(B, L))).float().requires_grad_(True)
    return DistillBatch(
        student=student, student_other=student.detach().clone(), teacher=teacher,
        teacher_other=teacher_other, index=index,
    )


def test_distiller_registered_and_variants():
    assert "brcd" in list_distillers()
    d = get_distiller("brcd", n_clusters=4)
    assert isinstance(d, BRCDDistiller) and d.n_clusters == 4
    v = ablation_variants()
    assert set(v) == {"brcd", "no_mask", "no_cluster", "alpha_1", "alpha_0", "upstream_mask"}
    for kwargs in v.values():
        get_distiller("brcd", **kwargs)
    assert v["no_mask"] == {"use_mask": False} and v["alpha_0"] == {"alpha": 0.0}


def test_distiller_prepare_forward_matches_loss():
    rng = np.random.default_rng(1)
    ctx = _context(rng)
    d = BRCDDistiller(n_clusters=4, n_init=2)
    with pytest.raises(RuntimeError, match="prepare"):
        d(_batch(rng, ctx))
    d.prepare(ctx)
    assert d.pseudo_labels.shape == (ctx.n_train,)
    assert d.centroids.shape == (4, ctx.code_length)
    assert d.masks.shape == (4, ctx.code_length)
    assert 0 < d.kept_bit_fraction < 1
    assert d.kept_bit_fraction == pytest.approx(float(d.masks.mean()))
    batch = _batch(rng, ctx)
    loss = d(batch)
    loss.backward()
    assert torch.isfinite(loss) and batch.student.grad is not None
    loss = loss.detach()

    # Same value recomputed by hand from the pieces.
    c = d.pseudo_labels[batch.index]
    co = nearest_centroid(batch.teacher_other, d.centroids)
    alpha = torch.where(c == co, torch.tensor(0.8), torch.tensor(1.0))
    expected = brcd_loss(
        batch.student, batch.teacher, batch.teacher_other, temperature=0.3, alpha=alpha,
        mask=d.masks[c], cluster=c, cluster_other=co,
    )
    assert float(loss) == pytest.approx(float(expected.detach()), rel=1e-6)

    st_ = d.stats()
    assert st_["kept_bits_per_cluster"] == d.masks.sum(1).int().tolist()
    assert st_["offset_positive_rate"] == pytest.approx(float((c != co).float().mean()))
    assert st_["offset_positive_rate"] > 0
    anchor = torch.cat([c, c])
    entry = torch.cat([c, co])
    same = anchor[:, None] == entry[None, :]
    n = len(anchor)
    expected_removed = sum(
        bool(same[r, q]) for r in range(n) for q in range(n) if q != r and q != (r + n // 2) % n
    )
    assert st_["removed_negatives"] == expected_removed


def test_distiller_ablations_match_loss():
    rng = np.random.default_rng(2)
    ctx = _context(rng)
    batch = _batch(rng, ctx)
    d = BRCDDistiller(n_clusters=4, n_init=2, use_mask=False, use_cluster=False, alpha=0.6)
    d.prepare(ctx)
    expected = brcd_loss(batch.student, batch.teacher, batch.teacher_other, temperature=0.3, alpha=0.6)
    assert float(d(batch).detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert d.stats()["removed_negatives"] == 0

    up = BRCDDistiller(n_clusters=4, n_init=2, mask_rule="upstream")
    up.prepare(ctx)
    assert up.kept_bit_fraction == 0.0


def test_distiller_uses_cache(tmp_path):
    rng = np.random.default_rng(4)
    ctx = _context(rng, cache_dir=str(tmp_path))
    d1 = BRCDDistiller(n_clusters=4, n_init=2)
    d1.prepare(ctx)
    assert len(list(tmp_path.glob("kmeans_*.npz"))) == 1
    d2 = BRCDDistiller(n_clusters=4, n_init=2)
    d2.prepare(ctx)
    assert torch.equal(d1.pseudo_labels, d2.pseudo_labels)
    assert torch.equal(d1.masks, d2.masks)


def test_distiller_bad_input():
    with pytest.raises(ValueError, match="valid names"):
        BRCDDistiller(mask_rule="nope")
    with pytest.raises(TypeError):
        BRCDDistiller(0.3)  # keyword-only
    rng = np.random.default_rng(5)
    ctx = _context(rng)
    bad = DistillContext(teacher_train_codes=ctx.teacher_train_codes, n_train=ctx.n_train + 1,
                         code_length=ctx.code_length)
    with pytest.raises(ValueError, match="n_train"):
        BRCDDistiller(n_clusters=4, n_init=1).prepare(bad)
    d = BRCDDistiller(n_clusters=4, n_init=1)
    d.prepare(ctx)
    batch = _batch(rng, ctx)
    batch.index = batch.index + ctx.n_train
    with pytest.raises(ValueError, match="batch.index"):
        d(batch)

"""Golden-value, registry, gradient and property tests of the eight KD baselines and the memory bank.

Every expected value is computed inside the test by a separately written plain implementation
(NumPy, float64, explicit loops) of the formula in the method's paper / reference code.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import brcd_lib.distill.baselines  # noqa: F401  (registers the eight baselines)
from brcd_lib.distill import (DistillBatch, DistillContext, distiller_class, get_distiller,
                              list_distillers, list_methods)
from brcd_lib.distill.memory import MomentumMemory
from brcd_lib.distill.packd import sinkhorn_plan

torch.set_num_threads(1)

B, L = 4, 8
# the registered baselines: every method that is neither the undistilled student nor BRCD
EIGHT = tuple(m for m in list_methods() if distiller_class(m).family not in ("none", "ours"))


# ----------------------------------------------------------------------------- fixtures
def signs(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return np.where(rng.standard_normal(shape) >= 0, 1.0, -1.0)


def make_batch(seed: int = 0, *, b: int = B, l: int = L, grad: bool = True, n_train: int = 10):
    """A batch of +-1 codes (student and teacher tensors are leaves that require grad, so that a
    test can see where gradients go) plus the NumPy arrays it was built from."""
    rng = np.random.default_rng(seed)
    arrays = {
        "student": signs(rng, b, l),
        "student_other": signs(rng, b, l),
        "teacher": signs(rng, b, l),
        "teacher_other": signs(rng, b, l),
        "student_logits": rng.standard_normal((b, l)),
        "student_logits_other": rng.standard_normal((b, l)),
        "teacher_logits": rng.standard_normal((b, l)),
        "teacher_logits_other": rng.standard_normal((b, l)),
        "student_rot": signs(rng, 4, b, l),
        "teacher_rot": signs(rng, 4, b, l),
    }
    arrays["student_rot"][0] = arrays["student"]
    arrays["teacher_rot"][0] = arrays["teacher"]
    tensors = {
        k: torch.tensor(v, dtype=torch.float32, requires_grad=grad) for k, v in arrays.items()
    }
    index = torch.tensor(rng.choice(n_train, size=b, replace=False), dtype=torch.long)
    arrays["index"] = index.numpy().copy()
    return DistillBatch(index=index, **tensors), arrays


def context(n_train: int = 10, l: int = L, seed: int = 0) -> DistillContext:
    return DistillContext(
        teacher_train_codes=torch.ones(n_train, l), n_train=n_train, code_length=l, seed=seed
    )


def build(name: str, n_train: int = 10, **kw):
    small = {
        "crd": dict(embed_dim=6, n_negatives=5),
        "crcd": dict(embed_dim=6, n_negatives=5),
        "packd": dict(embed_dim=4, n_negatives=5),
    }
    d = get_distiller(name, **{**small.get(name, {}), **kw})
    d.prepare(context(n_train))
    return d


def unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / max(n, 1e-12)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def nce_reference(probs: list[list[float]], n_data: int, eps: float = 1e-7) -> float:
    """Tian et al.'s NCE loss, written from the formula."""
    total = 0.0
    for row in probs:
        m = len(row) - 1
        noise = m / n_data
        total += math.log(row[0] / (row[0] + noise + eps))
        for p in row[1:]:
            total += math.log(noise / (p + noise + eps))
    return -total / len(probs)


def close(actual: torch.Tensor, expected: float, rtol: float = 1e-4, atol: float = 1e-6) -> None:
    actual = actual.detach()
    assert math.isfinite(float(actual))
    assert float(actual) == pytest.approx(expected, rel=rtol, abs=atol)


# ----------------------------------------------------------------------------- registry
def test_registry_lists_the_eight_baselines_and_none():
    names = list_distillers()
    for name in EIGHT + ("none",):
        assert name in names


def test_unknown_distiller_lists_valid_names():
    with pytest.raises(ValueError) as err:
        get_distiller("not-a-method")
    for name in EIGHT:
        assert name in str(err.value)


def test_unknown_inputs_and_variant_are_rejected():
    with pytest.raises(ValueError, match="codes, logits"):
        get_distiller("kd", inputs="features")
    with pytest.raises(ValueError, match="paper, upstream"):
        get_distiller("sp", variant="other")


def test_constructor_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        get_distiller("kd").__class__(4.0)


def test_paper_defaults():
    assert get_distiller("kd").temperature == 4.0
    rkd = get_distiller("rkd")
    assert (rkd.distance_weight, rkd.angle_weight) == (25.0, 50.0)
    crd = get_distiller("crd")
    assert (crd.embed_dim, crd.n_negatives, crd.temperature, crd.momentum) == (128, 500, 0.05, 0.5)
    crcd = get_distiller("crcd")
    assert (crcd.embed_dim, crcd.n_negatives, crcd.temperature, crcd.momentum) == (128, 500, 0.05, 0.5)
    packd = get_distiller("packd")
    assert (packd.embed_dim, packd.n_negatives) == (64, 500)
    sskd = get_distiller("sskd")
    assert sskd.needs_rotations and sskd.n_rotations == 4
    assert not get_distiller("kd").needs_rotations


def test_missing_logits_and_missing_prepare_and_rotations_are_clear_errors():
    batch, _ = make_batch()
    batch.teacher_logits = None
    with pytest.raises(ValueError, match="teacher_logits"):
        get_distiller("kd", inputs="logits")(batch)
    with pytest.raises(RuntimeError, match="prepare"):
        get_distiller("crd")(batch)
    batch.student_rot = None
    with pytest.raises(ValueError, match="student_rot"):
        get_distiller("sskd")(batch)


# ----------------------------------------------------------------------------- golden values
@pytest.mark.parametrize("inputs", ["codes", "logits"])
def test_kd_golden(inputs):
    batch, a = make_batch(1)
    s_key, t_key = ("student", "teacher") if inputs == "codes" else ("student_logits", "teacher_logits")
    s, t, temp = a[s_key], a[t_key], 4.0
    total = 0.0
    for b in range(B):
        p_t, p_s = softmax(t[b] / temp), softmax(s[b] / temp)
        total += sum(p_t[i] * (math.log(p_t[i]) - math.log(p_s[i])) for i in range(L))
    expected = total / B * temp**2
    close(get_distiller("kd", inputs=inputs)(batch), expected)


def _sp_gram(f: np.ndarray) -> np.ndarray:
    n = f.shape[0]
    g = np.array([[sum(f[i, k] * f[j, k] for k in range(f.shape[1])) for j in range(n)] for i in range(n)])
    return np.array([unit(row) for row in g])


def test_sp_golden_paper():
    batch, a = make_batch(2)
    diff = _sp_gram(a["teacher"]) - _sp_gram(a["student"])
    expected = float((diff**2).sum()) / (B * B)
    close(get_distiller("sp")(batch), expected)


def test_sp_golden_upstream_variant():
    batch, a = make_batch(3)
    expected = 0.0
    for b in range(B):
        # the BRCD release treats each code as a batch of L one-dimensional features
        diff = _sp_gram(a["teacher"][b].reshape(L, 1)) - _sp_gram(a["student"][b].reshape(L, 1))
        expected += float((diff**2).sum()) / (L * L)
    close(get_distiller("sp", variant="upstream")(batch), expected)


def test_pkt_golden():
    batch, a = make_batch(4)
    eps = 1e-7

    def probs(f):
        x = [row / (np.linalg.norm(row) + eps) for row in f]
        k = np.array([[(np.dot(x[i], x[j]) + 1) / 2 for j in range(B)] for i in range(B)])
        return k / k.sum(axis=1, keepdims=True)

    p_s, p_t = probs(a["student"]), probs(a["teacher"])
    expected = np.mean(
        [[p_t[i, j] * math.log((p_t[i, j] + eps) / (p_s[i, j] + eps)) for j in range(B)] for i in range(B)]
    )
    close(get_distiller("pkt")(batch), expected)


def _rkd_reference(s: np.ndarray, t: np.ndarray, wd: float, wa: float) -> float:
    n = s.shape[0]

    def dist(f):
        d = np.array([[np.linalg.norm(f[i] - f[j]) for j in range(n)] for i in range(n)])
        return d / np.mean([d[i, j] for i in range(n) for j in range(n) if d[i, j] > 0])

    def angle(f, i, j, k):
        return float(np.dot(unit(f[j] - f[i]), unit(f[k] - f[i])))

    ds, dt = dist(s), dist(t)
    loss_d = np.mean([huber(ds[i, j] - dt[i, j]) for i in range(n) for j in range(n)])
    loss_a = np.mean(
        [huber(angle(s, i, j, k) - angle(t, i, j, k)) for i in range(n) for j in range(n) for k in range(n)]
    )
    return wd * loss_d + wa * loss_a


@pytest.mark.parametrize("inputs", ["codes", "logits"])
def test_rkd_golden(inputs):
    batch, a = make_batch(5)
    s_key, t_key = ("student", "teacher") if inputs == "codes" else ("student_logits", "teacher_logits")
    assert len({tuple(r) for r in a[s_key]}) == B and len({tuple(r) for r in a[t_key]}) == B
    expected = _rkd_reference(a[s_key], a[t_key], 25.0, 50.0)
    close(get_distiller("rkd", inputs=inputs)(batch), expected)


def _fix_embedding(embed, rng) -> tuple[np.ndarray, np.ndarray]:
    w = rng.standard_normal(tuple(embed.linear.weight.shape)) * 0.5
    bias = rng.standard_normal(tuple(embed.linear.bias.shape)) * 0.1
    with torch.no_grad():
        embed.linear.weight.copy_(torch.tensor(w))
        embed.linear.bias.copy_(torch.tensor(bias))
    return w, bias


def _fix_bank(memory, rng) -> np.ndarray:
    bank = np.array([unit(r) for r in rng.standard_normal(tuple(memory.bank.shape))])
    with torch.no_grad():
        memory.bank.copy_(torch.tensor(bank))
    return bank


def _fixed_negatives(index: np.ndarray, k: int, n_train: int, rng) -> np.ndarray:
    rows = []
    for i in index:
        others = [j for j in range(n_train) if j != i]
        rows.append(rng.choice(others, size=k, replace=True))
    return np.array(rows)


def test_crd_golden_and_memory_update():
    n_train, k, temp = 10, 5, 0.05
    d = build("crd", n_train=n_train)
    rng = np.random.default_rng(6)
    ws, bs = _fix_embedding(d.embed_s, rng)
    wt, bt = _fix_embedding(d.embed_t, rng)
    mem_s, mem_t = _fix_bank(d.memory_s, rng), _fix_bank(d.memory_t, rng)
    batch, a = make_batch(7, n_train=n_train)
    negs = _fixed_negatives(a["index"], k, n_train, rng)
    d.memory_s.sample_negatives = lambda index, kk: torch.tensor(negs)

    f_s = [unit(ws @ a["student"][b] + bs) for b in range(B)]
    f_t = [unit(wt @ a["teacher"][b] + bt) for b in range(B)]
    idx = [[a["index"][b]] + list(negs[b]) for b in range(B)]
    out_s = [[math.exp(np.dot(mem_t[i], f_s[b]) / temp) for i in idx[b]] for b in range(B)]
    out_t = [[math.exp(np.dot(mem_s[i], f_t[b]) / temp) for i in idx[b]] for b in range(B)]
    z_s = np.mean(out_s) * n_train
    z_t = np.mean(out_t) * n_train
    expected = nce_reference([[p / z_s for p in r] for r in out_s], n_train) + nce_reference(
        [[p / z_t for p in r] for r in out_t], n_train
    )
    close(d(batch), expected)
    # Z is fixed on the first batch; the banks are momentum-updated at the batch's indices.
    assert d.z[0].item() == pytest.approx(z_s, rel=1e-4)
    assert d.z[1].item() == pytest.approx(z_t, rel=1e-4)
    for b, i in enumerate(a["index"]):
        np.testing.assert_allclose(d.memory_s.bank[i].numpy(), unit(0.5 * mem_s[i] + 0.5 * f_s[b]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(d.memory_t.bank[i].numpy(), unit(0.5 * mem_t[i] + 0.5 * f_t[b]), rtol=1e-5, atol=1e-6)
    z_before = d.z.clone()
    d(make_batch(8, n_train=n_train)[0])
    assert torch.equal(d.z, z_before)


def test_crcd_golden():
    n_train, k, temp = 10, 5, 0.05
    d = build("crcd", n_train=n_train)
    rng = np.random.default_rng(9)
    ws, bs = _fix_embedding(d.embed_s, rng)
    wt, bt = _fix_embedding(d.embed_t, rng)
    mem_s, mem_t = _fix_bank(d.memory_s, rng), _fix_bank(d.memory_t, rng)
    batch, a = make_batch(10, n_train=n_train)
    negs = _fixed_negatives(a["index"], k, n_train, rng)
    negs[0, 0] = a["index"][1]  # a contrast row that is another anchor's own row (zero relation)
    d.memory_s.sample_negatives = lambda index, kk: torch.tensor(negs)

    f_s = [unit(ws @ a["student"][b] + bs) for b in range(B)]
    f_t = [unit(wt @ a["teacher"][b] + bt) for b in range(B)]
    idx = [[a["index"][b]] + list(negs[b]) for b in range(B)]

    def side(fresh, bank):
        rows = []
        for b in range(B):
            for j in range(B):
                if j == b:
                    continue
                anchor = bank[a["index"][j]]
                rel = unit(fresh[b] - anchor)
                rows.append([math.exp(np.dot(unit(bank[i] - anchor), rel) / temp) for i in idx[b]])
        z = np.mean(rows) * n_train
        return nce_reference([[p / z for p in r] for r in rows], n_train)

    expected = side(f_s, mem_t) + side(f_t, mem_s)
    close(d(batch), expected)


def _sinkhorn_reference(x, y, eps=0.1, max_iter=100, tol=0.1):
    """Log-domain Sinkhorn with uniform marginals, written with loops (x: B lists of points)."""
    plans, us, vs = [], [], []
    nb = len(x)
    cost = [np.array([[np.sum((p - q) ** 2) for q in y[b]] for p in x[b]]) for b in range(nb)]
    us = [np.zeros(len(x[b])) for b in range(nb)]
    vs = [np.zeros(len(y[b])) for b in range(nb)]

    def lse(v):
        m = max(v)
        return m + math.log(sum(math.exp(t - m) for t in v))

    for _ in range(max_iter):
        err = 0.0
        for b in range(nb):
            c, u, v = cost[b], us[b], vs[b]
            p1, p2 = c.shape
            u_new = np.array([eps * (math.log(1 / p1) - lse([(-c[i, j] + u[i] + v[j]) / eps for j in range(p2)])) + u[i] for i in range(p1)])
            v_new = np.array([eps * (math.log(1 / p2) - lse([(-c[i, j] + u_new[i] + v[j]) / eps for i in range(p1)])) + v[j] for j in range(p2)])
            err += np.abs(u_new - u).sum() / nb
            us[b], vs[b] = u_new, v_new
        if err < tol:
            break
    for b in range(nb):
        c, u, v = cost[b], us[b], vs[b]
        plans.append(np.exp((-c + u[:, None] + v[None, :]) / eps))
    return plans


@pytest.mark.parametrize("mined", [0, 1, 2])
def test_packd_golden(mined):
    n_train, k, temp = 10, 5, 0.07
    d = build("packd", n_train=n_train, mined_positives=mined)
    assert d.embed_t.linear is not None  # embed_dim 4 < L 8: both sides have a linear map
    rng = np.random.default_rng(11 + mined)
    ws, bs = _fix_embedding(d.embed_s, rng)
    wt, bt = _fix_embedding(d.embed_t, rng)
    bank = _fix_bank(d.memory_t, rng)
    batch, a = make_batch(12 + mined, n_train=n_train)
    negs = _fixed_negatives(a["index"], k, n_train, rng)
    d.memory_t.sample_negatives = lambda index, kk: torch.tensor(negs)

    views = [("student", "teacher"), ("student_other", "teacher_other")]
    e_s = [[unit(ws @ a[sv][b] + bs) for sv, _ in views] for b in range(B)]
    e_t = [[unit(wt @ a[tv][b] + bt) for _, tv in views] for b in range(B)]
    bank = bank.copy()
    for b in range(B):  # first write overwrites (momentum 0), before the negatives are read
        bank[a["index"][b]] = e_t[b][0]
    positives, negatives = [], []
    for b in range(B):
        rows = [bank[i] for i in negs[b]]
        pos = list(e_t[b])
        if mined:  # the `mined` rows most similar to the teacher's view 1 become positives
            sims = [np.dot(r, e_t[b][0]) for r in rows]
            top = sorted(range(len(rows)), key=lambda q: -sims[q])[:mined]
            pos.extend(rows[q] for q in top)
            rows = [r for q, r in enumerate(rows) if q not in top]
        positives.append(pos)
        negatives.append(rows)
    plans = _sinkhorn_reference(e_s, positives)
    total = 0.0
    for b in range(B):
        pos = sum(plans[b][i, j] * np.dot(e_s[b][i], positives[b][j]) for i in range(2) for j in range(len(positives[b])))
        logits = [pos / temp] + [np.dot(e_s[b][v], r) / temp for v in range(2) for r in negatives[b]]
        total += -(logits[0] - math.log(sum(math.exp(t) for t in logits)))
    close(d(batch), total / B)
    np.testing.assert_allclose(d.memory_t.bank[a["index"]].numpy(), np.array([e_t[b][0] for b in range(B)]), rtol=1e-5, atol=1e-6)


def test_packd_teacher_embedding_is_plain_normalisation_when_embed_dim_covers_the_code():
    d = get_distiller("packd", n_negatives=5)  # embed_dim 64 >= L 8
    d.prepare(context())
    assert d.embed_t.linear is None and d.embed_s.linear.out_features == L
    assert list(d.embed_t.parameters()) == []


def _sskd_kept_reference(t_rot, ratio):
    """SSKD's error-level ranking, ranked on exact integer dot products of the +-1 teacher codes
    (equal norms: the cosines' order), so that equal cosines tie on every CPU (issue #11: float
    cosines of equal value can differ in their last bit). Returns (kept rows, #right, #wrong)."""
    r, n, _ = t_rot.shape
    dots = [[int(round(float(np.dot(t_rot[c][b], t_rot[0][j])))) for j in range(n)]
            for b in range(n) for c in range(1, r)]
    ranks = []
    for row in range(len(dots)):
        target = row // (r - 1)
        ranks.append(sum(1 for j in range(n) if dots[row][j] > dots[row][target]))
    right = [row for row in range(len(ranks)) if ranks[row] == 0]
    wrong = sorted((row for row in range(len(ranks)) if ranks[row] > 0), key=lambda q: (ranks[q], q))
    return sorted(right + wrong[: int(len(wrong) * ratio)]), len(right), len(wrong)


def _sskd_reference(s_rot, t_rot, temp, ratio):
    r, n, _ = s_rot.shape

    def sims(codes):
        rows = []
        for b in range(n):
            for c in range(1, r):
                rows.append([float(np.dot(unit(codes[c][b]), unit(codes[0][j]))) for j in range(n)])
        return np.array(rows)

    s_sim, t_sim = sims(s_rot), sims(t_rot)
    keep, n_right, n_wrong = _sskd_kept_reference(t_rot, ratio)
    total = 0.0
    for row in keep:
        p_t, p_s = softmax(t_sim[row] / temp), softmax(s_sim[row] / temp)
        total += sum(p_t[j] * (math.log(p_t[j]) - math.log(p_s[j])) for j in range(n))
    return total / len(keep) * temp**2, n_right, n_wrong


@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_sskd_golden(ratio):
    batch, a = make_batch(14)
    expected, n_right, n_wrong = _sskd_reference(a["student_rot"], a["teacher_rot"], 0.5, ratio)
    assert n_right >= 1 and n_wrong >= 2  # the ranking rule is exercised
    close(get_distiller("sskd", keep_wrong_ratio=ratio)(batch), expected)


@settings(max_examples=40, deadline=None)
@given(
    b=st.integers(min_value=2, max_value=6),
    l=st.sampled_from([2, 3, 4, 5, 7]),
    ratio=st.sampled_from([0.0, 0.5, 0.75, 1.0]),
    seed=st.integers(min_value=0, max_value=10_000),
    noise=st.sampled_from([0.0, 1e-7, -1e-7]),
)
def test_sskd_ranking_is_exact_under_ties(b, l, ratio, seed, noise):
    """Issue #11: short +-1 codes tie exactly (image 1's unrotated code is a copy of image 0's,
    so every rotated copy of images 0 and 1 sees an exact tie). The kept rows must equal the
    integer reference in float32 and float64, and must not move when the float cosines are
    perturbed by 1e-7 column by column, as another CPU's rounding could."""
    from brcd_lib.distill import sskd

    rng = np.random.default_rng(seed)
    t_rot = signs(rng, 4, b, l)
    t_rot[0][1] = t_rot[0][0]
    expected, _, _ = _sskd_kept_reference(t_rot, ratio)
    for dtype in (torch.float32, torch.float64):
        codes = torch.tensor(t_rot, dtype=dtype)
        scores, tol = sskd.rotation_rank_scores(codes)
        assert sskd.kept_rows(scores, 3, ratio, tol).tolist() == expected
    s_rot = signs(rng, 4, b, l)
    batch = DistillBatch(student=torch.tensor(s_rot[0], dtype=torch.float32),
                         student_other=torch.tensor(s_rot[0], dtype=torch.float32),
                         teacher=torch.tensor(t_rot[0], dtype=torch.float32),
                         teacher_other=torch.tensor(t_rot[0], dtype=torch.float32),
                         index=torch.arange(b),
                         student_rot=torch.tensor(s_rot, dtype=torch.float32),
                         teacher_rot=torch.tensor(t_rot, dtype=torch.float32))
    d = get_distiller("sskd", keep_wrong_ratio=ratio)
    original = sskd.rotation_similarities
    with pytest.MonkeyPatch.context() as mp:
        # column-dependent offsets of +-1e-7: equal cosines no longer compare equal as floats
        mp.setattr(sskd, "rotation_similarities",
                   lambda c: original(c) + noise * torch.linspace(-1.0, 1.0, c.shape[1]))
        loss = d(batch)
    if expected:
        s_ref, _, _ = _sskd_reference(s_rot, t_rot, 0.5, ratio)
        close(loss, s_ref, rtol=1e-4, atol=1e-5)
    else:
        assert float(loss) == 0.0


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", EIGHT)
def test_gradients_reach_student_codes_and_never_teacher_codes(name):
    d = build(name)
    batch, _ = make_batch(15)
    loss = d(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    student_grads = [batch.student.grad] + ([batch.student_rot.grad] if name == "sskd" else [])
    assert any(g is not None and float(g.abs().sum()) > 0 for g in student_grads)
    for g in student_grads:
        assert g is None or bool(torch.isfinite(g).all())
    for field in ("teacher", "teacher_other", "teacher_logits", "teacher_logits_other", "teacher_rot"):
        assert getattr(batch, field).grad is None, field


@pytest.mark.parametrize("name", ["crd", "crcd", "packd"])
def test_embedding_parameters_are_trainable(name):
    d = build(name, n_negatives=5)
    batch, _ = make_batch(16)
    d(batch).backward()
    grads = [p.grad for p in d.embed_s.parameters()]
    assert grads and all(g is not None and float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.parametrize("name", EIGHT)
@pytest.mark.parametrize("seed", [0, 1])
def test_losses_finite_on_random_and_degenerate_inputs(name, seed):
    d = build(name)
    batch, _ = make_batch(100 + seed)
    assert torch.isfinite(d(batch))
    same, _ = make_batch(200 + seed)  # every student code identical to the teacher's / each other
    for field in ("student", "student_other", "teacher", "teacher_other"):
        setattr(same, field, torch.ones(B, L, requires_grad=True))
    same.student_rot = torch.ones(4, B, L, requires_grad=True)
    same.teacher_rot = torch.ones(4, B, L)
    loss = d(same)
    loss.backward()
    assert torch.isfinite(loss)
    assert same.student.grad is None or bool(torch.isfinite(same.student.grad).all())


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(["kd", "sp", "pkt", "rkd"]),
    b=st.integers(min_value=2, max_value=6),
    l=st.integers(min_value=2, max_value=10),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_batch_losses_are_finite_and_nonnegative(name, b, l, seed):
    batch, _ = make_batch(seed, b=b, l=l)
    loss = get_distiller(name)(batch)
    loss = loss.detach()
    assert torch.isfinite(loss) and float(loss) >= -1e-6


@pytest.mark.parametrize("name", ["kd", "sp", "pkt", "rkd"])
def test_batch_losses_vanish_when_student_equals_teacher(name):
    batch, _ = make_batch(17)
    batch.student = batch.teacher.detach().clone().requires_grad_(True)
    assert float(get_distiller(name)(batch).detach()) == pytest.approx(0.0, abs=1e-6)


# ----------------------------------------------------------------------------- memory bank
@settings(max_examples=25, deadline=None)
@given(
    n_items=st.integers(min_value=2, max_value=30),
    k=st.integers(min_value=1, max_value=40),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_negatives_are_in_range_and_never_the_positive(n_items, k, seed):
    mem = MomentumMemory(n_items=n_items, dim=3, momentum=0.5, seed=seed)
    index = torch.arange(n_items)
    neg = mem.sample_negatives(index, k)
    assert neg.shape == (n_items, k) and neg.dtype == torch.long
    assert int(neg.min()) >= 0 and int(neg.max()) < n_items
    assert not bool((neg == index.unsqueeze(1)).any())


def test_negatives_cover_every_other_item_and_are_seeded():
    mem = MomentumMemory(n_items=6, dim=3, momentum=0.5, seed=3)
    neg = mem.sample_negatives(torch.tensor([2]), 600)
    assert set(neg.flatten().tolist()) == {0, 1, 3, 4, 5}
    a = MomentumMemory(n_items=50, dim=3, momentum=0.5, seed=4).sample_negatives(torch.tensor([1, 2]), 7)
    b = MomentumMemory(n_items=50, dim=3, momentum=0.5, seed=4).sample_negatives(torch.tensor([1, 2]), 7)
    c = MomentumMemory(n_items=50, dim=3, momentum=0.5, seed=5).sample_negatives(torch.tensor([1, 2]), 7)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_memory_update_gather_and_overwrite_first():
    mem = MomentumMemory(n_items=5, dim=3, momentum=0.25, seed=0)
    old = mem.bank.clone()
    assert torch.allclose(old.norm(dim=1), torch.ones(5))
    emb = torch.tensor([[1.0, 2.0, 2.0], [0.0, -3.0, 4.0]])
    mem.update(torch.tensor([1, 3]), emb)
    for row, i in enumerate([1, 3]):
        expected = unit(0.25 * old[i].numpy() + 0.75 * emb[row].numpy())
        np.testing.assert_allclose(mem.bank[i].numpy(), expected, rtol=1e-6, atol=1e-7)
    assert torch.equal(mem.bank[[0, 2, 4]], old[[0, 2, 4]])
    assert mem.gather(torch.tensor([[1, 3], [0, 0]])).shape == (2, 2, 3)
    first = MomentumMemory(n_items=5, dim=3, momentum=0.5, seed=0, overwrite_first=True)
    first.update(torch.tensor([2]), emb[:1])
    np.testing.assert_allclose(first.bank[2].numpy(), unit(emb[0].numpy()), rtol=1e-6)
    before = first.bank[2].clone()
    first.update(torch.tensor([2]), emb[1:])
    np.testing.assert_allclose(first.bank[2].numpy(), unit(0.5 * before.numpy() + 0.5 * emb[1].numpy()), rtol=1e-6)


def test_memory_state_dict_restores_bank_and_sampler():
    mem = MomentumMemory(n_items=40, dim=3, momentum=0.5, seed=1)
    mem.sample_negatives(torch.tensor([0]), 5)
    state = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in mem.state_dict().items()}
    expected = mem.sample_negatives(torch.tensor([0, 1]), 9)
    other = MomentumMemory(n_items=40, dim=3, momentum=0.5, seed=99)
    other.load_state_dict(state)
    assert torch.equal(other.bank, mem.bank)
    assert torch.equal(other.sample_negatives(torch.tensor([0, 1]), 9), expected)


def test_memory_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_items"):
        MomentumMemory(n_items=1, dim=3, momentum=0.5, seed=0)
    mem = MomentumMemory(n_items=5, dim=3, momentum=0.5, seed=0)
    with pytest.raises(ValueError, match="out of range"):
        mem.sample_negatives(torch.tensor([5]), 2)
    with pytest.raises(ValueError, match="shape"):
        mem.update(torch.tensor([0]), torch.ones(1, 4))


# ----------------------------------------------------------------------------- sinkhorn
@settings(max_examples=20, deadline=None)
@given(p1=st.integers(1, 3), p2=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_sinkhorn_plan_has_uniform_marginals(p1, p2, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(3, p1, 5, generator=g), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(3, p2, 5, generator=g), dim=-1)
    pi = sinkhorn_plan(x, y, eps=0.5, max_iter=300, tol=0.0)
    assert torch.allclose(pi.sum(dim=2), torch.full((3, p1), 1.0 / p1), atol=1e-4)
    assert torch.allclose(pi.sum(dim=1), torch.full((3, p2), 1.0 / p2), atol=1e-4)


# ----------------------------------------------------------------------------- metadata (issue #16)
FAMILY = {"none": "none", "kd": "logit", "sp": "relation", "pkt": "relation", "rkd": "relation",
          "sskd": "relation", "crd": "contrastive", "crcd": "contrastive", "packd": "contrastive",
          "brcd": "ours"}


def test_every_registered_distiller_declares_its_metadata():
    from brcd_lib.distill import distiller_class
    from brcd_lib.distill.base import FAMILIES

    assert set(FAMILY) <= set(list_distillers())
    labels = set()
    for name in list_distillers():
        cls = distiller_class(name)
        assert "label" in vars(cls) and isinstance(cls.label, str) and cls.label, name
        assert cls.family in FAMILIES, name
        assert isinstance(cls.needs_rotations, bool), name
        assert get_distiller(name).reads_labels is False, name  # defaults are unsupervised
        labels.add(cls.label)
        if name in FAMILY:
            assert cls.family == FAMILY[name], name
    assert len(labels) == len(list_distillers())  # display names are distinct
    assert [n for n in FAMILY if distiller_class(n).needs_rotations] == ["sskd"]


def test_registering_without_metadata_is_an_error():
    from brcd_lib.distill import Distiller, register_distiller

    class NoLabel(Distiller):
        family = "logit"

    class BadFamily(Distiller):
        label = "x"
        family = "feature"

    with pytest.raises(ValueError, match="label"):
        register_distiller("test-no-label")(NoLabel)
    with pytest.raises(ValueError, match="family"):
        register_distiller("test-bad-family")(BadFamily)
    assert "test-no-label" not in list_distillers() and "test-bad-family" not in list_distillers()


# ----------------------------------------------------------------------------- class negatives
def labelled_context(labels, n_train: int = 10, l: int = L, seed: int = 0) -> DistillContext:
    return DistillContext(teacher_train_codes=torch.ones(n_train, l), n_train=n_train,
                          code_length=l, seed=seed, train_labels=labels)


ONE_HOT_CLASSES = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 0])


@pytest.mark.parametrize("name", ["crd", "crcd", "packd"])
def test_class_negatives_read_labels_and_need_them(name):
    d = get_distiller(name, negatives="class")
    assert d.reads_labels and not get_distiller(name).reads_labels
    with pytest.raises(ValueError, match="train_labels"):
        d.prepare(context())
    with pytest.raises(ValueError, match="one row per training item"):
        d.prepare(labelled_context(torch.zeros(9, 3, dtype=torch.uint8)))
    with pytest.raises(ValueError, match="uniform, class"):
        get_distiller(name, negatives="labels")


@pytest.mark.parametrize("name", ["crd", "crcd", "packd"])
@pytest.mark.parametrize("as_ids", [False, True])
def test_class_negatives_end_to_end_come_from_other_classes(name, as_ids):
    """get_distiller(name, negatives="class") trains with a labelled context; every negative it
    draws has another class than its positive (one-hot labels, as CIFAR-10 in the release)."""
    ids = torch.tensor(ONE_HOT_CLASSES)
    labels = ids if as_ids else torch.nn.functional.one_hot(ids, 3).to(torch.uint8)
    small = {"crd": dict(embed_dim=6), "crcd": dict(embed_dim=6), "packd": dict(embed_dim=4)}
    d = get_distiller(name, negatives="class", n_negatives=7, **small[name])
    d.prepare(labelled_context(labels))
    memory = d.memory_t if name == "packd" else d.memory_s
    drawn = []
    original = memory.sample_class_negatives

    def spy(index, k, lab):
        out = original(index, k, lab)
        drawn.append((index.clone(), out.clone()))
        return out

    memory.sample_class_negatives = spy
    batch, _ = make_batch(30, n_train=10)
    loss = d(batch)
    assert torch.isfinite(loss)
    loss.backward()
    assert batch.student.grad is not None
    (index, neg), = drawn
    assert neg.shape == (B, 7)
    for i, row in zip(index.tolist(), neg.tolist()):
        assert all(ONE_HOT_CLASSES[j] != ONE_HOT_CLASSES[i] for j in row)


def test_class_negatives_cover_exactly_the_other_classes_and_are_seeded():
    labels = torch.nn.functional.one_hot(torch.tensor(ONE_HOT_CLASSES), 3).float()
    mem = MomentumMemory(n_items=10, dim=3, momentum=0.5, seed=3)
    neg = mem.sample_class_negatives(torch.tensor([2]), 500, labels)
    assert set(neg.flatten().tolist()) == {i for i in range(10) if ONE_HOT_CLASSES[i] != 1}
    draws = [MomentumMemory(n_items=10, dim=3, momentum=0.5, seed=s).sample_class_negatives(
        torch.tensor([0, 4]), 9, labels) for s in (4, 4, 5)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=25),
    c=st.integers(min_value=1, max_value=5),
    k=st.integers(min_value=1, max_value=30),
    density=st.sampled_from([0.2, 0.5, 0.9]),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_class_negatives_share_no_label_with_the_positive(n, c, k, density, seed):
    """Multi-hot labels: a negative shares no label with its positive and is never the positive;
    a row whose every other item shares a label falls back to all other items."""
    from brcd_lib.distill.memory import label_matrix

    rng = np.random.default_rng(seed)
    multi_hot = (rng.random((n, c)) < density).astype(np.uint8)
    labels = label_matrix(torch.tensor(multi_hot), n, "test")
    mem = MomentumMemory(n_items=n, dim=2, momentum=0.5, seed=seed)
    index = torch.arange(n)
    neg = mem.sample_class_negatives(index, k, labels)
    assert neg.shape == (n, k) and neg.dtype == torch.long
    for i in range(n):
        disjoint = [j for j in range(n) if j != i and not (multi_hot[i] & multi_hot[j]).any()]
        allowed = set(disjoint) if disjoint else set(range(n)) - {i}
        assert set(neg[i].tolist()) <= allowed


def test_class_negative_sampler_state_survives_a_checkpoint():
    d = get_distiller("crd", negatives="class", embed_dim=6, n_negatives=5)
    d.prepare(labelled_context(torch.tensor(ONE_HOT_CLASSES)))
    d(make_batch(31, n_train=10)[0])
    state = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in d.state_dict().items()}
    index = torch.tensor([1, 5, 8])
    expected = d._contrast_indices(index)
    other = get_distiller("crd", negatives="class", embed_dim=6, n_negatives=5)
    other.prepare(labelled_context(torch.tensor(ONE_HOT_CLASSES), seed=9))
    other.load_state_dict(state)
    assert torch.equal(other._contrast_indices(index), expected)


# ----------------------------------------------------------------------------- bank scoring (issue #17)
@pytest.mark.parametrize("name", ["crd", "crcd"])
def test_whole_bank_scoring_equals_gathering_the_sampled_rows(name, monkeypatch):
    """Scoring against the whole bank then reading the sampled columns gives the loss and the
    gradients of the gather-then-multiply form (both paths of bank_scores)."""
    from brcd_lib.distill import crd as crd_module

    results = []
    for factor in (1e9, 0.0):  # always dense, never dense
        monkeypatch.setattr(crd_module, "DENSE_FACTOR", factor)
        d = build(name, n_train=40, n_negatives=12)
        batch, _ = make_batch(32, n_train=40)
        loss = d(batch)
        loss.backward()
        grads = [p.grad.clone() for p in d.embed_s.parameters()]
        results.append((loss.detach(), batch.student.grad.clone(), grads, d.memory_s.bank.clone()))
    (l1, g1, p1, m1), (l2, g2, p2, m2) = results
    assert torch.allclose(l1, l2, rtol=1e-5, atol=1e-6)
    assert torch.allclose(g1, g2, rtol=1e-4, atol=1e-6)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(p1, p2))
    assert torch.allclose(m1, m2, atol=1e-6)


@pytest.mark.parametrize("dense", [True, False])
def test_bank_relation_cosines_equal_the_plain_form(dense, monkeypatch):
    """CRCD's whole-bank relation cosines, (B, 1 + K, B) layout, equal the plain gathered form
    (B, B, 1 + K), zero relations included (a contrast row that is an anchor's own row)."""
    from brcd_lib.distill import crd as crd_module
    from brcd_lib.distill.crcd import bank_relation_cosines, relation_cosines

    monkeypatch.setattr(crd_module, "DENSE_FACTOR", 1e9 if dense else 0.0)
    g = torch.Generator().manual_seed(5)
    bank = torch.nn.functional.normalize(torch.randn(30, 6, generator=g, dtype=torch.float64), dim=1)
    fresh = torch.nn.functional.normalize(torch.randn(5, 6, generator=g, dtype=torch.float64), dim=1)
    index = torch.tensor([3, 8, 0, 21, 14])
    idx = torch.cat([index.unsqueeze(1), torch.randint(0, 30, (5, 7), generator=g)], dim=1)
    idx[0, 3] = index[2]  # a zero relation for anchor j = 2
    ours = bank_relation_cosines(fresh, bank, idx, index)
    plain = relation_cosines(fresh, bank[index], bank[idx], idx, index)
    assert ours.shape == (5, 8, 5)
    assert torch.allclose(ours, plain.permute(0, 2, 1), atol=1e-12)
    assert float(ours[0, 3, 2]) == 0.0


def test_log_domain_nce_equals_the_nce_loss():
    from brcd_lib.distill.crcd import log_nce_loss
    from brcd_lib.distill.crd import nce_loss

    g = torch.Generator().manual_seed(6)
    scores = torch.randn(4, 6, 3, generator=g, dtype=torch.float64) * 5
    weights = torch.ones(4, 3, dtype=torch.float64)
    weights[1, 2] = weights[3, 0] = 0.0
    z = torch.tensor(2.5, dtype=torch.float64)
    rows = (torch.exp(scores) / z).permute(0, 2, 1)[weights.bool()]
    assert float(log_nce_loss(scores, torch.log(z), 40, weights)) == pytest.approx(
        float(nce_loss(rows, 40)), rel=1e-12)


# ----------------------------------------------------------------------------- PACKD warm-up (issue #16)
def test_memory_warmup_overwrites_for_a_number_of_updates_and_is_checkpointed():
    emb = torch.tensor([[1.0, 2.0, 2.0], [0.0, -3.0, 4.0], [2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    mem = MomentumMemory(n_items=5, dim=3, momentum=0.5, seed=0, warmup_updates=2)
    mem.update(torch.tensor([1]), emb[:1])
    np.testing.assert_allclose(mem.bank[1].numpy(), unit(emb[0].numpy()), rtol=1e-6)
    mem.update(torch.tensor([1]), emb[1:2])  # second update: still momentum 0
    np.testing.assert_allclose(mem.bank[1].numpy(), unit(emb[1].numpy()), rtol=1e-6)
    state = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in mem.state_dict().items()}
    before = mem.bank[1].clone()
    mem.update(torch.tensor([1]), emb[2:3])  # third update: momentum 0.5
    np.testing.assert_allclose(mem.bank[1].numpy(), unit(0.5 * before.numpy() + 0.5 * emb[2].numpy()), rtol=1e-6)
    resumed = MomentumMemory(n_items=5, dim=3, momentum=0.5, seed=7, warmup_updates=2)
    resumed.load_state_dict(state)
    assert resumed.n_updates == 2
    resumed.update(torch.tensor([1]), emb[2:3])
    assert torch.allclose(resumed.bank, mem.bank)


def test_packd_warmup_counts_iterations_as_released():
    d = get_distiller("packd")
    assert d.warmup_iters == 782 and not d.overwrite_first  # the release's hard-coded count
    d = build("packd", warmup_iters=2)
    assert d.memory_t.warmup_updates == 2
    index = torch.tensor([3, 1, 7, 5])
    batches = [make_batch(33 + i)[0] for i in range(3)]
    rows, embedded = [], []
    for batch in batches:
        batch.index = index
        d(batch)
        rows.append(d.memory_t.bank[3].clone())
        embedded.append(d.embed_t(batch.teacher)[0].detach())
    assert not torch.allclose(embedded[1], embedded[2])
    assert torch.allclose(rows[0], embedded[0], atol=1e-6)  # update 1: overwritten
    assert torch.allclose(rows[1], embedded[1], atol=1e-6)  # update 2: overwritten
    mixed = torch.nn.functional.normalize(0.5 * embedded[1] + 0.5 * embedded[2], dim=0)
    assert torch.allclose(rows[2], mixed, atol=1e-6)  # update 3: momentum 0.5
    batch = batches[0]
    d.eval()
    d(batch)
    assert d.memory_t.n_updates == 3  # no update outside training mode
    with pytest.raises(ValueError, match="warmup_iters"):
        get_distiller("packd", warmup_iters=-1)

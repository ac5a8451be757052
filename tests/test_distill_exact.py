"""Exact-value tests of the distillation modules (k-means elbow curve, CRD, CRCD, the momentum
memory and its samplers, PACKD's set-up, PKT, RKD, SP, the distiller registry).

They pin what the broader tests in ``test_baselines.py`` / ``test_clustering.py`` leave open:
boundaries of every guard, the full text of every error message, the defaults that reach a
callee, seeds, and the role of each ``eps``. Expected values are written by hand (arithmetic in
the comments) or computed by plain loops written here from the methods' definitions, never by the
module under test.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import brcd_lib.distill.baselines  # noqa: F401  (registers the eight baselines)
from brcd_lib.distill import DistillBatch, DistillContext, get_distiller
from brcd_lib.distill import clustering
from brcd_lib.distill import crcd as crcd_module
from brcd_lib.distill import registry as registry_module
from brcd_lib.distill.base import Distiller
from brcd_lib.distill.clustering import KMeansResult, elbow_curve
from brcd_lib.distill.crcd import bank_relation_cosines, relation_cosines
from brcd_lib.distill.crd import Embed, bank_scores, fix_normaliser, use_dense
from brcd_lib.distill.memory import MomentumMemory, label_matrix
from brcd_lib.distill.pkt import pkt_loss
from brcd_lib.distill.rkd import pairwise_distances, rkd_loss
from brcd_lib.distill.sp import sp_loss_upstream
from brcd_lib.registry import Registry

torch.set_num_threads(1)


def exact(message: str) -> str:
    """A ``pytest.raises(match=...)`` pattern that accepts ``message`` and nothing else."""
    return "^" + re.escape(message) + "$"


def starts(prefix: str) -> str:
    return "^" + re.escape(prefix)


def assert_near(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    """Same shape and dtype, every entry within ``atol`` (torch.testing is slow to import)."""
    actual = actual.detach()
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert float((actual - expected).abs().max()) <= atol, (actual, expected)


# ============================================================================ clustering.elbow_curve
def _spy_kmeans_and_silhouette(monkeypatch):
    """Replace k-means and the silhouette by recorders: labels alternate 0, 1 (two clusters)."""
    calls = {"kmeans": [], "silhouette": []}

    def fake_kmeans(codes, **kwargs):
        calls["kmeans"].append(kwargs)
        n = codes.shape[0]
        return KMeansResult(labels=np.arange(n) % 2, centroids=np.zeros((2, codes.shape[1])), inertia=1.5)

    def fake_silhouette(x, labels, **kwargs):
        calls["silhouette"].append((x.shape[0], kwargs))
        return 0.25

    monkeypatch.setattr(clustering, "kmeans_codes", fake_kmeans)
    monkeypatch.setattr(clustering, "silhouette_score", fake_silhouette)
    return calls


def test_elbow_curve_defaults_reach_kmeans_and_the_silhouette(monkeypatch):
    """Documented defaults: n_init=10, max_iter=300, a silhouette sample of 2000 rows (n = 2001 >
    2000: the sample is drawn, seeded with ``seed``)."""
    calls = _spy_kmeans_and_silhouette(monkeypatch)
    df = elbow_curve(np.zeros((2001, 2)), [2], seed=7)
    assert calls["kmeans"] == [dict(n_clusters=2, seed=7, n_init=10, max_iter=300)]
    assert calls["silhouette"] == [(2001, dict(sample_size=2000, random_state=7))]
    assert df.to_dict("list") == {"k": [2], "inertia": [1.5], "silhouette": [0.25]}


@pytest.mark.parametrize(
    "sample_size, expected",
    [(2, 2), (4, 4), (5, None), (50, None)],  # n = 5 rows: a sample only when it is smaller than n
)
def test_elbow_curve_passes_its_settings_and_samples_only_below_n(monkeypatch, sample_size, expected):
    calls = _spy_kmeans_and_silhouette(monkeypatch)
    elbow_curve(np.zeros((5, 3)), [2, 3], seed=3, n_init=4, max_iter=9, silhouette_sample_size=sample_size)
    assert calls["kmeans"] == [dict(n_clusters=k, seed=3, n_init=4, max_iter=9) for k in (2, 3)]
    assert calls["silhouette"] == [(5, dict(sample_size=expected, random_state=3))] * 2


# Four points: two close ones and two far apart on the x axis.
ELBOW_POINTS = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [20.0, 0.0]])


def test_elbow_curve_inertia_and_silhouette_by_hand():
    """n = 4 points in L = 2 dims (n != L). Silhouette s(i) = (b - a) / max(a, b), a = mean distance
    to the own cluster, b = smallest mean distance to another cluster, 0 for a singleton;
    undefined (NaN) for K = 1 and K = n."""
    df = elbow_curve(ELBOW_POINTS, [1, 2, 3, 4], seed=0)
    assert df["k"].tolist() == [1, 2, 3, 4]
    # K = 1: mean (7.5, 0.25); x: 56.25 + 56.25 + 6.25 + 156.25 = 275, y: 3 * 0.0625 + 0.5625 = 0.75
    # K = 2: {p0, p1}, {p2, p3}: x: 25 + 25, y: 0.25 + 0.25 -> 50.5;  K = 3: {p0, p1}, {p2}, {p3}: 0.5
    assert df["inertia"].tolist() == pytest.approx([275.75, 50.5, 0.5, 0.0], abs=1e-9)
    sqrt101, sqrt401 = math.sqrt(101.0), math.sqrt(401.0)
    # K = 2: p0: a = 1, b = (10 + 20) / 2; p1: a = 1, b = (sqrt101 + sqrt401) / 2;
    #        p2: a = 10, b = (10 + sqrt101) / 2; p3: a = 10, b = (20 + sqrt401) / 2
    b2 = (10 + sqrt101) / 2
    b3 = (20 + sqrt401) / 2
    s2 = [1 - 1 / 15, 1 - 2 / (sqrt101 + sqrt401), (b2 - 10) / b2, (b3 - 10) / b3]
    # K = 3 (= n - 1): p0: a = 1, b = min(10, 20); p1: a = 1, b = min(sqrt101, sqrt401); singletons 0
    s3 = [1 - 1 / 10, 1 - 1 / sqrt101, 0.0, 0.0]
    sil = df["silhouette"].tolist()
    assert math.isnan(sil[0]) and math.isnan(sil[3])
    assert sil[1] == pytest.approx(sum(s2) / 4, rel=1e-12)
    assert sil[2] == pytest.approx(sum(s3) / 4, rel=1e-12)


def test_elbow_curve_undefined_silhouette_is_a_float_nan():
    df = elbow_curve(ELBOW_POINTS, [1], seed=0)
    assert df["silhouette"].dtype == np.float64 and math.isnan(df["silhouette"].iloc[0])
    assert list(df.columns) == ["k", "inertia", "silhouette"]


def test_elbow_curve_rejects_empty_ks():
    with pytest.raises(ValueError, match=exact("ks is empty; pass the K values to try, e.g. range(2, 21)")):
        elbow_curve(ELBOW_POINTS, [], seed=0)


def test_elbow_curve_rejects_a_silhouette_sample_below_two():
    with pytest.raises(ValueError, match=exact("silhouette_sample_size must be >= 2; got 1")):
        elbow_curve(ELBOW_POINTS, [2], seed=0, silhouette_sample_size=1)


# ============================================================================ crd: Embed
def _linear_init(dim_in: int, dim_out: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's nn.Linear bounds U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weight then bias, drawn from a
    generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(dim_in)
    w = torch.empty(dim_out, dim_in).uniform_(-bound, bound, generator=g)
    b = torch.empty(dim_out).uniform_(-bound, bound, generator=g)
    return w, b


def _assert_linear_init(embed: Embed, dim_in: int, dim_out: int, seed: int) -> None:
    w, b = _linear_init(dim_in, dim_out, seed)
    assert embed.linear.weight.shape == (dim_out, dim_in)
    assert_near(embed.linear.weight.detach(), w, 1e-7)
    assert_near(embed.linear.bias.detach(), b, 1e-7)


def test_embed_weights_are_the_seeded_default_linear_init():
    e = Embed(dim_in=8, dim_out=3, seed=11)
    _assert_linear_init(e, 8, 3, 11)
    bound = 1.0 / math.sqrt(8)  # 0.3536
    w = e.linear.weight.detach()
    assert float(w.abs().max()) <= bound and float(w.min()) < 0 < float(w.max())


def test_embed_normalises_the_last_dimension_of_any_shape():
    x = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [1.0, 2.0, 2.0], [6.0, 0.0, 8.0]],
                      [[0.0, 5.0, 0.0], [1.0, 0.0, 0.0], [2.0, 1.0, 2.0], [0.0, 3.0, 4.0]]])  # (2, 4, 3)
    out = Embed(dim_in=3, dim_out=3, seed=0, linear=False)(x)
    # row norms: 5, 2, 3, 10 / 5, 1, 3, 5
    norms = torch.tensor([[5.0, 2.0, 3.0, 10.0], [5.0, 1.0, 3.0, 5.0]]).unsqueeze(2)
    assert_near(out, x / norms, 1e-7)


@pytest.mark.parametrize("shape", [(2, 5), (2, 4, 5)])
def test_embed_rejects_the_wrong_input_width(shape):
    e = Embed(dim_in=3, dim_out=3, seed=0, linear=False)
    with pytest.raises(ValueError, match=exact(
            "embedding expects 3-d inputs (the code length given to prepare()); got 5-d.")):
        e(torch.ones(*shape))


def test_embed_without_linear_map_needs_equal_sizes():
    with pytest.raises(ValueError, match=exact("an Embed without a linear map needs dim_in == dim_out; got 3, 4.")):
        Embed(dim_in=3, dim_out=4, seed=0, linear=False)


# ============================================================================ crd: scoring helpers
def test_use_dense_threshold_is_four_times_the_sample():
    assert use_dense(40, 10)  # 40 <= 4 * 10
    assert not use_dense(41, 10)
    assert use_dense(3, 1) and not use_dense(5, 1)


@pytest.mark.parametrize("n_items, gathers", [(100, True), (24, False)])
def test_bank_scores_gathers_rows_only_for_a_large_bank(n_items, gathers):
    """idx has 2 x 3 = 6 sampled entries: a bank of 100 > 4 * 6 rows is read by gathering the
    sampled rows, one of 24 <= 24 by a product with the whole bank; both give <bank[idx], fresh>."""
    mem = MomentumMemory(n_items=n_items, dim=3, momentum=0.5, seed=1)
    calls = []
    original = mem.gather
    mem.gather = lambda idx: calls.append(idx.clone()) or original(idx)
    fresh = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0]])
    idx = torch.tensor([[3, 7, 0], [9, 3, 20]])
    out = bank_scores(mem, fresh, idx)
    bank = mem.bank
    expected = torch.tensor([[float(bank[i] @ fresh[b]) for i in idx[b].tolist()] for b in range(2)])
    assert_near(out, expected, 1e-6)
    assert (len(calls) == 1) is gathers


def test_bank_relation_cosines_decides_the_path_on_the_bank_rows(monkeypatch):
    """The whole-bank / gathered-rows choice (``crd.use_dense``) is made on the bank's number of
    rows (100) and the number of sampled entries (2 x 3), not on its width (3)."""
    seen = []
    real = crcd_module.use_dense
    monkeypatch.setattr(crcd_module, "use_dense", lambda n_bank, n_sampled: seen.append((n_bank, n_sampled))
                        or real(n_bank, n_sampled))
    g = torch.Generator().manual_seed(0)
    bank = torch.nn.functional.normalize(torch.randn(100, 3, generator=g, dtype=torch.float64), dim=1)
    fresh = torch.nn.functional.normalize(torch.randn(2, 3, generator=g, dtype=torch.float64), dim=1)
    bank_relation_cosines(fresh, bank, torch.tensor([[1, 5, 6], [2, 7, 8]]), torch.tensor([1, 2]))
    assert seen == [(100, 6)]


def test_fix_normaliser_sets_only_an_unset_slot():
    """``z[slot]`` < 0 means not yet set; any value >= 0 (0 when every exp underflows, or a Z below
    1) is kept. Unset: mean(scores) * n_data = (1 + 3 + 2 + 6) / 4 * 10 = 30."""
    z = torch.tensor([0.0, -1.0, 0.5])
    scores = torch.tensor([[1.0, 3.0], [2.0, 6.0]])
    assert float(fix_normaliser(z, 0, scores, 10)) == 0.0
    assert float(fix_normaliser(z, 2, scores, 10)) == 0.5
    assert float(fix_normaliser(z, 1, scores, 10)) == 30.0
    assert z.tolist() == [0.0, 30.0, 0.5]


# ============================================================================ CRD / CRCD end to end
L_CODE, N_TRAIN = 6, 8


def _context(seed: int = 0, n_train: int = N_TRAIN, l: int = L_CODE, labels=None) -> DistillContext:
    return DistillContext(teacher_train_codes=torch.ones(n_train, l), n_train=n_train, code_length=l,
                          seed=seed, train_labels=labels)


def _batch(seed: int, index: list[int], l: int = L_CODE) -> DistillBatch:
    g = torch.Generator().manual_seed(seed)
    b = len(index)

    def codes():
        return torch.where(torch.randn(b, l, generator=g) >= 0, 1.0, -1.0).requires_grad_(True)

    return DistillBatch(student=codes(), student_other=codes(), teacher=codes().detach(),
                        teacher_other=codes().detach(), index=torch.tensor(index))


def _fix_weights(d, rng) -> None:
    """Overwrite the embeddings and banks with known values; the reference reads them back."""
    with torch.no_grad():
        for embed in (d.embed_s, d.embed_t):
            embed.linear.weight.copy_(torch.tensor(rng.standard_normal(tuple(embed.linear.weight.shape)) * 0.5))
            embed.linear.bias.copy_(torch.tensor(rng.standard_normal(tuple(embed.linear.bias.shape)) * 0.1))
        for memory in (d.memory_s, d.memory_t):
            rows = rng.standard_normal(tuple(memory.bank.shape))
            memory.bank.copy_(torch.tensor(rows / np.linalg.norm(rows, axis=1, keepdims=True)))


def _embedded(embed, codes: torch.Tensor) -> np.ndarray:
    w = embed.linear.weight.detach().double().numpy()
    b = embed.linear.bias.detach().double().numpy()
    out = [w @ c + b for c in codes.detach().double().numpy()]
    return np.array([v / np.linalg.norm(v) for v in out])


def _nce_reference(rows: list[list[float]], n_data: int, eps: float) -> float:
    """Tian et al.'s NCE loss: -(1/N) sum [log(P+ / (P+ + m/n + eps)) + sum log((m/n) / (P- + m/n + eps))]."""
    total = 0.0
    for row in rows:
        m = len(row) - 1
        noise = m / n_data
        total += math.log(row[0] / (row[0] + noise + eps))
        total += sum(math.log(noise / (p + noise + eps)) for p in row[1:])
    return -total / len(rows)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def test_crd_golden_with_its_own_eps():
    """CRD with eps = 0.3 (not the 1e-7 default): both NCE sides use it."""
    temp, eps = 0.5, 0.3
    d = get_distiller("crd", embed_dim=4, n_negatives=3, temperature=temp, eps=eps)
    d.prepare(_context())
    _fix_weights(d, np.random.default_rng(1))
    negs = torch.tensor([[1, 4, 6], [0, 7, 7], [2, 5, 3]])
    d.memory_s.sample_negatives = lambda index, k: negs
    batch = _batch(2, [0, 3, 5])
    f_s, f_t = _embedded(d.embed_s, batch.student), _embedded(d.embed_t, batch.teacher)
    mem_s, mem_t = d.memory_s.bank.double().numpy(), d.memory_t.bank.double().numpy()
    idx = [[i] + negs[b].tolist() for b, i in enumerate([0, 3, 5])]
    out_s = [[math.exp(mem_t[i] @ f_s[b] / temp) for i in idx[b]] for b in range(3)]
    out_t = [[math.exp(mem_s[i] @ f_t[b] / temp) for i in idx[b]] for b in range(3)]
    z_s, z_t = np.mean(out_s) * N_TRAIN, np.mean(out_t) * N_TRAIN
    expected = (_nce_reference([[p / z_s for p in r] for r in out_s], N_TRAIN, eps)
                + _nce_reference([[p / z_t for p in r] for r in out_t], N_TRAIN, eps))
    assert float(d(batch).detach()) == pytest.approx(expected, rel=1e-5)


def _crcd_side(fresh, bank, index, idx, temp, n_data, eps, self_anchor, z=None):
    """CRCD's relation NCE of one side, with loops: anchors a_j = bank[index[j]], one NCE row per
    (b, j) (j == b only with self_anchor), cosine 0 for a zero relation (contrast row = anchor row)."""
    rows = []
    for b in range(len(index)):
        for j in range(len(index)):
            if j == b and not self_anchor:
                continue
            anchor = bank[index[j]]
            rel = _unit(fresh[b] - anchor)
            rows.append([math.exp((0.0 if i == index[j] else float(_unit(bank[i] - anchor) @ rel)) / temp)
                         for i in idx[b]])
    if z is None:
        z = np.mean(rows) * n_data
    return _nce_reference([[p / z for p in r] for r in rows], n_data, eps)


@pytest.mark.parametrize("index, self_anchor", [([2, 5], False), ([4], True), ([1, 3, 6], True)])
def test_crcd_golden_with_its_own_eps_and_smallest_batches(index, self_anchor):
    """eps = 0.3 (not the default); a batch of 2 is enough without self anchors, and a batch of 1
    works with them (its one anchor is its own row: the positive is the zero relation)."""
    temp, eps = 0.5, 0.3
    d = get_distiller("crcd", embed_dim=4, n_negatives=3, temperature=temp, eps=eps, self_anchor=self_anchor)
    d.prepare(_context())
    _fix_weights(d, np.random.default_rng(3))
    rng = np.random.default_rng(4)
    negs = torch.tensor(np.array([rng.choice([j for j in range(N_TRAIN) if j != i], 3) for i in index]))
    negs[0, 0] = index[-1]  # a contrast row that is an anchor's own row (a zero relation)
    d.memory_s.sample_negatives = lambda idx, k: negs
    batch = _batch(5, index)
    f_s, f_t = _embedded(d.embed_s, batch.student), _embedded(d.embed_t, batch.teacher)
    mem_s, mem_t = d.memory_s.bank.double().numpy(), d.memory_t.bank.double().numpy()
    idx = [[i] + negs[b].tolist() for b, i in enumerate(index)]
    expected = (_crcd_side(f_s, mem_t, index, idx, temp, N_TRAIN, eps, self_anchor)
                + _crcd_side(f_t, mem_s, index, idx, temp, N_TRAIN, eps, self_anchor))
    assert float(d(batch).detach()) == pytest.approx(expected, rel=1e-5)


def test_crcd_uses_a_z_that_is_already_set():
    """Z values restored from a checkpoint (0.5 < 1 and 3.0) are used as they are, not refitted."""
    temp = 0.5
    d = get_distiller("crcd", embed_dim=4, n_negatives=3, temperature=temp)
    d.prepare(_context())
    _fix_weights(d, np.random.default_rng(6))
    negs = torch.tensor([[0, 1, 7], [2, 4, 6], [1, 0, 2]])
    d.memory_s.sample_negatives = lambda idx, k: negs
    with torch.no_grad():
        d.z.copy_(torch.tensor([0.5, 3.0]))
    index = [3, 5, 7]
    batch = _batch(7, index)
    f_s, f_t = _embedded(d.embed_s, batch.student), _embedded(d.embed_t, batch.teacher)
    mem_s, mem_t = d.memory_s.bank.double().numpy(), d.memory_t.bank.double().numpy()
    idx = [[i] + negs[b].tolist() for b, i in enumerate(index)]
    expected = (_crcd_side(f_s, mem_t, index, idx, temp, N_TRAIN, 1e-7, False, z=0.5)
                + _crcd_side(f_t, mem_s, index, idx, temp, N_TRAIN, 1e-7, False, z=3.0))
    assert float(d(batch).detach()) == pytest.approx(expected, rel=1e-5)
    assert d.z.tolist() == [0.5, 3.0]


def test_crcd_keeps_a_z_of_zero():
    """Z = 0 (every exp underflowed on the first batch) counts as set: only a negative Z is refitted."""
    d = get_distiller("crcd", embed_dim=4, n_negatives=3)
    d.prepare(_context())
    with torch.no_grad():
        d.z.copy_(torch.tensor([0.0, -1.0]))
    d(_batch(8, [0, 1, 2]))
    assert float(d.z[0]) == 0.0 and float(d.z[1]) > 0


def test_crcd_needs_two_images_without_self_anchors():
    d = get_distiller("crcd", embed_dim=4, n_negatives=3)
    d.prepare(_context())
    with pytest.raises(ValueError, match=exact(
            "CRCD needs a batch of at least 2 images (anchors are the other items).")):
        d(_batch(9, [4]))


def test_crcd_loss_keeps_the_dtype_of_the_model():
    """A bfloat16 CRCD (embeddings, banks, codes) gives a bfloat16 loss: the NCE row weights take
    the scores' dtype."""
    d = get_distiller("crcd", embed_dim=4, n_negatives=3)
    d.prepare(_context())
    d.to(torch.bfloat16)
    batch = _batch(10, [0, 4, 6])
    for name in ("student", "student_other", "teacher", "teacher_other"):
        setattr(batch, name, getattr(batch, name).detach().to(torch.bfloat16))
    loss = d(batch)
    assert loss.dtype == torch.bfloat16 and torch.isfinite(loss)


def test_relation_cosines_are_clamped_to_plus_minus_one():
    """With integer coordinates every inner product is exact; |v|^2 = 3 and sqrt(3) * sqrt(3) =
    2.9999999999999996 in float64, so the unclamped cosines of v with +v and -v are
    +-1.0000000000000002: the result is clamped to exactly +-1."""
    fresh = torch.ones(1, 3, dtype=torch.float64)
    anchors = torch.zeros(1, 3, dtype=torch.float64)
    contrast = torch.stack([torch.ones(3), -torch.ones(3)]).unsqueeze(0).double()  # (1, 2, 3)
    out = relation_cosines(fresh, anchors, contrast, torch.tensor([[5, 6]]), torch.tensor([7]))
    assert out.tolist() == [[[1.0, -1.0]]]


@pytest.mark.parametrize("name", ["crd", "crcd"])
def test_contrastive_prepare_seeds_embeddings_and_banks(name):
    """Student side seeded with ``seed``, teacher side with ``seed + 1`` (embedding and bank);
    prepare() leaves Z at the constructor's unset value, also after a step."""
    d = get_distiller(name, embed_dim=4, n_negatives=3)
    unset = d.z.clone()
    d.prepare(_context(seed=5))
    _assert_linear_init(d.embed_s, L_CODE, 4, 5)
    _assert_linear_init(d.embed_t, L_CODE, 4, 6)
    assert torch.equal(d.memory_s.bank, _bank_reference(N_TRAIN, 4, 5))
    assert torch.equal(d.memory_t.bank, _bank_reference(N_TRAIN, 4, 6))
    d(_batch(11, [0, 1, 2]))
    assert bool((d.z > 0).all())
    d.prepare(_context(seed=5))
    assert torch.equal(d.z, unset) and unset.tolist() == [-1.0, -1.0]


@pytest.mark.parametrize("name", ["crd", "crcd", "packd"])
def test_class_negatives_errors_name_the_method(name):
    d = get_distiller(name, negatives="class")
    with pytest.raises(ValueError, match=starts(f"{name} with negatives='class' draws negatives")):
        d.prepare(_context())
    with pytest.raises(ValueError, match=exact(f"{name}: 1-d train_labels must be non-negative integer class ids.")):
        d.prepare(_context(labels=torch.tensor([0, 1, 0, -1, 0, 1, 1, 0])))


# ============================================================================ memory
def _bank_reference(n: int, dim: int, seed: int) -> torch.Tensor:
    """RepDistiller's initialisation: uniform in [-s, s], s = 1 / sqrt(dim / 3), drawn from a
    generator seeded with ``seed``, then each row L2-normalised."""
    g = torch.Generator().manual_seed(seed)
    s = 1.0 / math.sqrt(dim / 3.0)
    raw = torch.rand(n, dim, generator=g) * (2 * s) - s
    return torch.nn.functional.normalize(raw, dim=1)


def test_memory_initial_bank_is_the_normalised_uniform_draw():
    mem = MomentumMemory(n_items=50, dim=6, momentum=0.5, seed=4)
    ref = _bank_reference(50, 6, 4)
    assert torch.equal(mem.bank, ref)  # bit for bit: a rerun reproduces the bank
    assert bool((mem.bank < 0).any()) and bool((mem.bank > 0).any())


def test_memory_accepts_dim_one_and_rejects_zero():
    mem = MomentumMemory(n_items=4, dim=1, momentum=0.5, seed=0)
    assert torch.equal(mem.bank.abs(), torch.ones(4, 1))  # a normalised scalar is +-1
    with pytest.raises(ValueError, match=exact("MomentumMemory needs dim >= 1; got dim=0.")):
        MomentumMemory(n_items=4, dim=0, momentum=0.5, seed=0)


def test_memory_momentum_bounds_are_inclusive():
    emb = torch.tensor([[0.0, 3.0, 4.0]])
    keep = MomentumMemory(n_items=4, dim=3, momentum=1.0, seed=0)
    old = keep.bank[2].clone()
    keep.update(torch.tensor([2]), emb)  # momentum 1: the old entry stays
    assert_near(keep.bank[2], old, 1e-7)
    overwrite = MomentumMemory(n_items=4, dim=3, momentum=0.0, seed=0)
    overwrite.update(torch.tensor([2]), emb)  # momentum 0: (0, 3, 4) / 5
    assert_near(overwrite.bank[2], torch.tensor([0.0, 0.6, 0.8]), 1e-7)


@pytest.mark.parametrize("momentum", [1.5, -0.5])
def test_memory_rejects_momentum_outside_the_unit_interval(momentum):
    with pytest.raises(ValueError, match=exact(f"momentum must lie in [0, 1]; got momentum={momentum}.")):
        MomentumMemory(n_items=4, dim=3, momentum=momentum, seed=0)


def test_memory_rejects_negative_warmup():
    with pytest.raises(ValueError, match=exact("warmup_updates must be >= 0; got -1.")):
        MomentumMemory(n_items=4, dim=3, momentum=0.5, seed=0, warmup_updates=-1)


def test_memory_rejects_a_two_dimensional_index():
    mem = MomentumMemory(n_items=4, dim=3, momentum=0.5, seed=0)
    with pytest.raises(ValueError, match=exact(
            "index must be a 1-d tensor of dataset indices (B,); got shape (2, 1).")):
        mem.sample_negatives(torch.tensor([[0], [1]]), 2)


@pytest.mark.parametrize("sampler", ["uniform", "class"])
def test_memory_samplers_need_at_least_one_negative(sampler):
    mem = MomentumMemory(n_items=4, dim=3, momentum=0.5, seed=0)
    labels = torch.eye(4)
    with pytest.raises(ValueError, match=exact("k (number of negatives) must be >= 1; got k=0.")):
        if sampler == "uniform":
            mem.sample_negatives(torch.tensor([0]), 0)
        else:
            mem.sample_class_negatives(torch.tensor([0]), 0, labels)


@pytest.mark.parametrize("labels, shape", [(torch.zeros(4, 2), "(4, 2)"), (torch.zeros(5), "(5,)")])
def test_class_sampler_needs_one_label_row_per_item(labels, shape):
    mem = MomentumMemory(n_items=5, dim=3, momentum=0.5, seed=0)
    with pytest.raises(ValueError, match=exact(
            f"labels must be an (5, C) matrix (one row per training item); got shape {shape}.")):
        mem.sample_class_negatives(torch.tensor([0]), 2, labels)


CLASSES = [0, 0, 0, 1, 1, 1, 1]  # items 3..6 are the four items of class 1


def test_class_sampler_accepts_boolean_labels():
    labels = torch.nn.functional.one_hot(torch.tensor(CLASSES), 2).bool()
    mem = MomentumMemory(n_items=7, dim=3, momentum=0.5, seed=0)
    neg = mem.sample_class_negatives(torch.tensor([0, 4]), 3, labels)
    assert set(neg[0].tolist()) <= {3, 4, 5, 6} and set(neg[1].tolist()) <= {0, 1, 2}


def test_class_sampler_draws_a_pool_of_exactly_k_without_replacement():
    """Each of items 0, 1, 2 has a pool of exactly 4 (class 1): k = 4 draws all four once."""
    labels = torch.nn.functional.one_hot(torch.tensor(CLASSES), 2).float()
    for seed in range(3):
        mem = MomentumMemory(n_items=7, dim=3, momentum=0.5, seed=seed)
        neg = mem.sample_class_negatives(torch.tensor([0, 1, 2]), 4, labels)
        assert [sorted(row) for row in neg.tolist()] == [[3, 4, 5, 6]] * 3


def test_memory_state_without_update_count_starts_at_zero():
    """Checkpoints written before the warm-up option carry no ``n_updates``: it is 0, so a memory
    with one warm-up update overwrites on its next update."""
    mem = MomentumMemory(n_items=4, dim=3, momentum=0.5, seed=0, warmup_updates=1)
    mem.n_updates = 5
    mem.set_extra_state({"generator_state": torch.Generator().manual_seed(0).get_state()})
    assert mem.n_updates == 0
    mem.update(torch.tensor([1]), torch.tensor([[0.0, 3.0, 4.0]]))
    assert_near(mem.bank[1], torch.tensor([0.0, 0.6, 0.8]), 1e-7)


# ============================================================================ memory.label_matrix
def test_label_matrix_one_hot_of_class_ids():
    out = label_matrix(torch.tensor([0, 2, 1]), 3, "m")
    assert out.dtype == torch.float32
    assert out.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]  # C = max id + 1 = 3


@pytest.mark.parametrize("dtype", [torch.uint8, torch.bool])
def test_label_matrix_multi_hot_becomes_float32(dtype):
    out = label_matrix(torch.tensor([[1, 0], [1, 1]]).to(dtype), 2, "m")
    assert out.dtype == torch.float32 and out.tolist() == [[1.0, 0.0], [1.0, 1.0]]


def test_label_matrix_of_no_class_ids_has_one_column():
    out = label_matrix(torch.tensor([], dtype=torch.long), 0, "m")
    assert out.shape == (0, 1) and out.dtype == torch.float32


@pytest.mark.parametrize("labels", [[0.0, 1.0], [-1, 0]])
def test_label_matrix_class_ids_must_be_non_negative_integers(labels):
    with pytest.raises(ValueError, match=exact("m: 1-d train_labels must be non-negative integer class ids.")):
        label_matrix(torch.tensor(labels), 2, "m")


def test_label_matrix_must_be_zero_one():
    with pytest.raises(ValueError, match=exact("m: train_labels must be a 0/1 (multi-hot) matrix.")):
        label_matrix(torch.tensor([[0, 2], [1, 0]]), 2, "m")


# ============================================================================ PACKD
def test_packd_needs_prepare():
    with pytest.raises(RuntimeError, match=exact("packd: call prepare(context) before the first step.")):
        get_distiller("packd")(_batch(12, [0, 1]))


def test_packd_prepare_seeds_the_teacher_embedding_with_seed_plus_one():
    d = get_distiller("packd", embed_dim=4, n_negatives=3)  # 4 < L = 6: both sides linear
    d.prepare(_context(seed=3))
    _assert_linear_init(d.embed_s, L_CODE, 4, 3)
    _assert_linear_init(d.embed_t, L_CODE, 4, 4)
    assert torch.equal(d.memory_t.bank, _bank_reference(N_TRAIN, 4, 3))


def test_packd_teacher_has_no_linear_map_when_embed_dim_equals_the_code_length():
    d = get_distiller("packd", embed_dim=L_CODE, n_negatives=3)
    d.prepare(_context())
    assert d.embed_t.linear is None and d.embed_s.linear.out_features == L_CODE


def test_packd_overwrite_first_reaches_the_bank():
    """overwrite_first=True, no warm-up: the first write of an entry is the teacher's view-1
    embedding itself (momentum 0), not a 0.5 mix with the initial row."""
    d = get_distiller("packd", embed_dim=4, n_negatives=3, overwrite_first=True, warmup_iters=0)
    d.prepare(_context())
    assert d.memory_t.overwrite_first is True
    batch = _batch(13, [2, 6])
    d(batch)
    expected = torch.tensor(_embedded(d.embed_t, batch.teacher), dtype=torch.float32)
    assert_near(d.memory_t.bank[[2, 6]], expected, 1e-6)


# ============================================================================ PKT
def _pkt_reference(s: np.ndarray, t: np.ndarray, eps: float) -> float:
    """Passalis & Tefas with the eps placement of the authors' code: x / (|x| + eps), K = (cos + 1)
    / 2, rows divided by max(row sum, eps), mean of P_t log((P_t + eps) / (P_s + eps))."""
    n = s.shape[0]

    def probs(f):
        x = [row / (np.linalg.norm(row) + eps) for row in f]
        k = [[(float(x[i] @ x[j]) + 1.0) / 2.0 for j in range(n)] for i in range(n)]
        return [[k[i][j] / max(sum(k[i]), eps) for j in range(n)] for i in range(n)]

    p_s, p_t = probs(s), probs(t)
    return float(np.mean([[p_t[i][j] * math.log((p_t[i][j] + eps) / (p_s[i][j] + eps))
                           for j in range(n)] for i in range(n)]))


def test_pkt_loss_default_eps_on_real_valued_inputs():
    rng = np.random.default_rng(14)
    s, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    out = pkt_loss(torch.tensor(s), torch.tensor(t))
    assert float(out) == pytest.approx(_pkt_reference(s, t, 1e-7), rel=1e-10)


def test_pkt_loss_eps_clamps_the_row_sums():
    """eps = 5 exceeds every row sum (at most B = 3): the rows are divided by eps, as written."""
    rng = np.random.default_rng(15)
    s, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    out = pkt_loss(torch.tensor(s), torch.tensor(t), 5.0)
    assert float(out) == pytest.approx(_pkt_reference(s, t, 5.0), rel=1e-9)


def test_pkt_distiller_uses_its_eps():
    batch = _batch(15, [0, 1, 2, 3])
    batch.student, batch.teacher = batch.student.detach().double(), batch.teacher.double()
    eps = 0.5
    expected = _pkt_reference(batch.student.numpy(), batch.teacher.numpy(), eps)
    assert float(get_distiller("pkt", eps=eps)(batch)) == pytest.approx(expected, rel=1e-9)


# ============================================================================ RKD
def test_pairwise_distances_default_eps_and_dtype():
    x = torch.tensor([[0.0, 0.0], [0.3, 0.4], [3.0, 4.0]], dtype=torch.float64)
    # |p0 p1| = 0.5, |p0 p2| = 5, |p1 p2| = |(2.7, 3.6)| = 4.5; diagonal 0
    expected = [[0.0, 0.5, 5.0], [0.5, 0.0, 4.5], [5.0, 4.5, 0.0]]
    np.testing.assert_allclose(pairwise_distances(x).numpy(), expected, rtol=0, atol=1e-12)
    half = pairwise_distances(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16


def test_rkd_loss_by_hand_on_collinear_points():
    """Student at x = 0, 0.5, 2; teacher at y = 0, 1, 3 (both on a line, same order: every angle
    cosine agrees, the angle term is 0). Distances 0.5, 2, 1.5 / 1, 3, 2, divided by the mean of
    the positive entries (4/3 / 2): 0.375, 1.5, 1.125 / 0.5, 1.5, 1.0. Differences -0.125, 0, 0.125,
    each pair twice: Huber 0.5 x^2 -> 4 * 0.0078125 / 9 entries."""
    s = torch.tensor([[0.0, 0.0], [0.5, 0.0], [2.0, 0.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    loss = rkd_loss(s, t, distance_weight=25.0, angle_weight=50.0)
    assert float(loss) == pytest.approx(25.0 * 4 * 0.0078125 / 9, rel=1e-12)


def _rkd_reference(s: np.ndarray, t: np.ndarray, wd: float, wa: float, eps: float) -> float:
    """Park et al. with the kit's clamp: d_ij = sqrt(max(|x_i - x_j|^2, eps)) off the diagonal."""
    n = s.shape[0]

    def huber(x):
        return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5

    def dist(f):
        d = np.array([[0.0 if i == j else math.sqrt(max(float(((f[i] - f[j]) ** 2).sum()), eps))
                       for j in range(n)] for i in range(n)])
        return d / np.mean(d[d > 0])

    def angle(f, i, j, k):
        return float(_unit(f[j] - f[i]) @ _unit(f[k] - f[i]))

    ds, dt = dist(s), dist(t)
    loss_d = np.mean([huber(ds[i, j] - dt[i, j]) for i in range(n) for j in range(n)])
    loss_a = np.mean([huber(angle(s, i, j, k) - angle(t, i, j, k))
                      for i in range(n) for j in range(n) for k in range(n)])
    return wd * loss_d + wa * loss_a


def test_rkd_loss_clamps_both_sides_with_its_eps():
    """eps = 0.5: the squared distances 0.25 (student p0 p1) and 0.36 (teacher p0 p1) are raised
    to 0.5 on both sides."""
    s = np.array([[0.0, 0.0], [0.5, 0.0], [2.0, 1.0], [1.0, -1.0]])
    t = np.array([[0.0, 0.0], [0.0, 0.6], [1.0, 3.0], [-2.0, 1.0]])
    loss = rkd_loss(torch.tensor(s), torch.tensor(t), distance_weight=25.0, angle_weight=50.0, eps=0.5)
    assert float(loss) == pytest.approx(_rkd_reference(s, t, 25.0, 50.0, 0.5), rel=1e-10)


# ============================================================================ SP
def test_sp_upstream_on_real_valued_inputs():
    """The release's per-sample outer products t_b t_b^T (not ratios), rows L2-normalised,
    squared Frobenius / L^2, summed over the batch."""
    rng = np.random.default_rng(16)
    s, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    expected = 0.0
    for b in range(3):
        gs = np.array([_unit(np.array([s[b, i] * s[b, j] for j in range(4)])) for i in range(4)])
        gt = np.array([_unit(np.array([t[b, i] * t[b, j] for j in range(4)])) for i in range(4)])
        expected += float(((gt - gs) ** 2).sum()) / 16
    assert float(sp_loss_upstream(torch.tensor(s), torch.tensor(t))) == pytest.approx(expected, rel=1e-10)


# ============================================================================ registry
@pytest.fixture
def scratch_registry(monkeypatch):
    """register_distiller writes into a throw-away catalogue (the real one stays untouched)."""
    fresh = Registry("distiller")
    monkeypatch.setattr(registry_module, "DISTILLERS", fresh)
    return fresh


def test_register_distiller_reads_the_class_metadata(scratch_registry):
    class Toy(Distiller):
        label = "Toy"
        family = "logit"

    assert registry_module.register_distiller("toy")(Toy) is Toy
    assert (Toy.name, Toy.label, Toy.family) == ("toy", "Toy", "logit")
    assert scratch_registry.meta("toy") == {"label": "Toy", "family": "logit"}


def test_register_distiller_without_label_names_both_ways_to_give_one(scratch_registry):
    class NoLabel(Distiller):
        family = "logit"

    with pytest.raises(ValueError, match=exact(
            "distiller 'toy' must set its display name (class attribute 'label', or "
            "register_distiller(..., label=...))")):
        registry_module.register_distiller("toy")(NoLabel)


def test_register_distiller_lists_the_families(scratch_registry):
    class BadFamily(Distiller):
        label = "x"
        family = "feature"

    with pytest.raises(ValueError, match=exact(
            "distiller 'toy': family must be one of none, logit, relation, contrastive, ours, "
            "got 'feature'")):
        registry_module.register_distiller("toy")(BadFamily)

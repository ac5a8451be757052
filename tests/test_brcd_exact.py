"""Exact-value tests of ``brcd_lib/distill/brcd.py``: the BRCD loss and the ``brcd`` distiller with
every argument set away from its default, full error messages, and the device of what is built.

Expected values are literals worked by hand in comments or come from the reference written here
from method.md section 3 and the module's docstrings (plain NumPy, float64), never from brcd_lib.
k-means is replaced by a spy that records its keyword arguments and returns a fixed result, so the
pseudo labels, centroids and masks of the distiller tests are known by hand.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import brcd_lib.distill.brcd as brcd_mod
from brcd_lib.distill.base import DistillBatch, DistillContext
from brcd_lib.distill.brcd import BRCDDistiller, bit_masks, brcd_loss, offset_alpha
from brcd_lib.distill.clustering import KMeansResult

torch.set_num_threads(1)

EPS = 1e-8  # the documented floor of |a| |b| in the cosine


def _full(msg: str) -> str:
    """A regex that matches exactly ``msg``."""
    return "^" + re.escape(msg) + "$"


# ---------------------------------------------------------------- reference (method.md section 3)


def ref_cos(a, b) -> float:
    """cos(a, b) = a . b / max(|a| |b|, eps) (the module's convention, 0 for a zero vector)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b) / max(math.sqrt(float(a @ a)) * math.sqrt(float(b @ b)), EPS)


def ref_loss(s, t1, t2, *, tau, alpha, mask=None, cluster=None, cluster_other=None) -> float:
    s, t1, t2 = (np.asarray(x, dtype=np.float64) for x in (s, t1, t2))
    B, L = s.shape
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (B,))
    M = np.ones((B, L)) if mask is None else np.asarray(mask, dtype=np.float64)
    u = np.concatenate([s * M, t2 * M])  # rows k: masked student, rows B + k: masked teacher view 2
    total = 0.0
    for r in range(2 * B):
        k = r % B
        partner = (r + B) % (2 * B)
        pos = a[k] * ref_cos(s[k], t1[k]) / tau + (1 - a[k]) * ref_cos(u[k], u[B + k]) / tau
        logits = [pos]
        for q in range(2 * B):
            if q in (r, partner):
                continue
            if cluster is not None:
                q_cluster = cluster[q] if q < B else cluster_other[q - B]
                if q_cluster == cluster[k]:
                    continue  # false negative: removed
            logits.append(ref_cos(u[r], u[q]) / tau)
        mx = max(logits)
        total += mx + math.log(sum(math.exp(x - mx) for x in logits)) - pos
    return total / (2 * B)


# ---------------------------------------------------------------- brcd_loss on real-valued inputs

# B = 3, L = 4, real values (not +-1: a / b and b / b differ from a * b and b * b there). Student
# row 1 is tiny: |s_1| |t_q| is about 1e-9, below eps = 1e-8, so the floor of the cosine matters.
S = np.array([[0.5, -1.5, 2.0, 1.0],
              [0.5e-9, -1.5e-9, 2.0e-9, 1.0e-9],
              [-2.0, 0.25, 1.0, -0.75]])
T1 = np.array([[1.5, -0.5, 1.0, 2.0],
               [0.25, -1.0, 1.5, 0.5],
               [-1.0, 0.5, 2.5, -0.5]])
T2 = np.array([[1.0, 2.0, -0.5, 1.5],
               [-0.5, -1.0, 1.0, 2.0],
               [-1.5, 0.75, 0.5, -1.0]])
MASK = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 1.0]])
ALPHA = np.array([0.3, 1.0, 0.6])
CL, CL_OTHER = [0, 1, 0], [0, 0, 1]


def _t(x):
    return torch.tensor(np.asarray(x), dtype=torch.float64)


def test_reference_floor_of_the_cosine_is_reached():
    """The tiny row's norms multiply to less than eps, the others' to more than sqrt(2e-8)."""
    n = lambda v: math.sqrt(float(v @ v))  # noqa: E731
    assert n(S[1]) * n(T1[1]) < EPS < 1e-6 < n(S[0]) * n(T1[0])
    assert n(S[1]) * n(T1[1]) > 1e-12


def test_brcd_loss_every_argument_set_matches_the_reference():
    kw = dict(tau=0.45, alpha=ALPHA, mask=MASK, cluster=CL, cluster_other=CL_OTHER)
    expected = ref_loss(S, T1, T2, **kw)
    got = brcd_loss(_t(S), _t(T1), _t(T2), temperature=0.45, alpha=_t(ALPHA), mask=_t(MASK),
                    cluster=torch.tensor(CL), cluster_other=torch.tensor(CL_OTHER))
    assert float(got) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_brcd_loss_plain_real_values_match_the_reference():
    expected = ref_loss(S, T1, T2, tau=1.7, alpha=0.25)
    got = brcd_loss(_t(S), _t(T1), _t(T2), temperature=1.7, alpha=0.25)
    assert float(got) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_brcd_loss_defaults_are_tau_0_3_and_alpha_0_8():
    expected = ref_loss(S, T1, T2, tau=0.3, alpha=0.8)
    assert float(brcd_loss(_t(S), _t(T1), _t(T2))) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("position, name", [(0, "student"), (1, "teacher"), (2, "teacher_other")])
def test_brcd_loss_names_the_argument_that_is_not_two_dimensional(position, name):
    args = [_t(S), _t(T1), _t(T2)]
    args[position] = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError, match=_full(f"{name} must be a (B, L) tensor; got torch.Size([4])")):
        brcd_loss(*args)
    args[position] = [[1.0, -1.0, 1.0, 1.0]] * 3  # not a tensor at all
    with pytest.raises(ValueError, match=_full(f"{name} must be a (B, L) tensor; got <class 'list'>")):
        brcd_loss(*args)


# ---------------------------------------------------------------- _negative_mask


def test_negative_mask_without_clusters_removes_nothing():
    valid, removed = brcd_mod._negative_mask(2, None, None, torch.device("cpu"))
    assert removed == 0
    # rows 0..3; partner of r is r + 2 mod 4; self and partner are never negatives
    assert valid.tolist() == [[False, True, False, True],
                              [True, False, True, False],
                              [False, True, False, True],
                              [True, False, True, False]]


def test_negative_mask_is_built_on_the_given_device_not_the_default_one():
    """A default device (``torch.set_default_device``; here the meta device as a context) must not
    leak into the mask: everything is made on the device passed in."""
    cl, clo = torch.tensor([0, 1, 0]), torch.tensor([0, 0, 1])
    with torch.device("meta"):
        valid0, removed0 = brcd_mod._negative_mask(2, None, None, torch.device("cpu"))
        valid, removed = brcd_mod._negative_mask(3, cl, clo, torch.device("cpu"))
    assert valid0.device.type == "cpu" and removed0 == 0
    assert valid0.tolist() == [[False, True, False, True], [True, False, True, False]] * 2
    # B = 3: anchor clusters of rows 0..5: 0 1 0 0 1 0; entry clusters: 0 1 0 | 0 0 1; partner r + 3
    #   row 0: drops 2, 4 (cluster 0)       row 3: drops 2, 4
    #   row 1: drops 5 (cluster 1)          row 4: drops 5
    #   row 2: drops 0, 3, 4 (cluster 0)    row 5: drops 0, 3, 4       -> 12 removed
    F, T = False, True
    assert valid.device.type == "cpu" and removed == 12
    assert valid.tolist() == [[F, T, F, F, F, T], [T, F, T, T, F, F], [F, T, F, F, F, F]] * 2


# ---------------------------------------------------------------- offset_alpha


def test_offset_alpha_expands_a_zero_dimensional_alpha():
    got = offset_alpha(torch.tensor(0.25, dtype=torch.float64), torch.tensor([0, 1, 2]),
                       torch.tensor([0, 2, 2]))
    assert got.dtype == torch.float64 and got.tolist() == [0.25, 1.0, 0.25]


def test_offset_alpha_wrong_shape_message():
    with pytest.raises(ValueError, match=_full("alpha must be a float or (B,) = (3,); got (2,)")):
        offset_alpha(torch.tensor([0.1, 0.2]), torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2]))


def test_offset_alpha_float_alpha_is_float32_whatever_the_default_dtype():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        got = offset_alpha(0.5, torch.tensor([0, 1]), torch.tensor([0, 0]))
    finally:
        torch.set_default_dtype(old)
    assert got.dtype == torch.float32 and got.tolist() == [0.5, 1.0]


# ---------------------------------------------------------------- bit_masks


def test_bit_masks_names_an_input_that_is_not_an_array():
    with pytest.raises(ValueError, match=_full("codes must be a tensor or array; got list")):
        bit_masks([["a", "b"], ["c", "d"]], [0, 0], 1, 0.5)
    with pytest.raises(ValueError, match=_full("clusters must be a tensor or array; got list")):
        bit_masks([[1, -1], [1, 1]], ["a", "b"], 1, 0.5)


def test_bit_masks_shape_messages():
    with pytest.raises(ValueError, match=_full("codes must be (n, L); got shape (2,)")):
        bit_masks(torch.tensor([1.0, -1.0]), [0, 0], 1, 0.5)
    # n = 2 codes of L = 3 bits, one label
    with pytest.raises(ValueError, match=_full(
            "clusters must be (n,) with n = 2 (one label per code); got shape (1,)")):
        bit_masks([[1, -1, 1], [1, 1, 1]], [0], 1, 0.5)


@pytest.mark.parametrize("labels", [[0.5, 0.0, 1.0], [True, False, True]])
def test_bit_masks_rejects_labels_that_are_not_integers(labels):
    with pytest.raises(ValueError, match=_full("clusters must hold integer cluster indices")):
        bit_masks([[1, -1], [1, 1], [-1, 1]], torch.tensor(labels), 2, 0.5)


# cluster 0 = codes 0, 1: mean (1, 0, 1) -> mask (1, 0, 1); cluster 1 = code 2: mask (1, 1, 1)
CODES3 = [[1, -1, 1], [1, 1, 1], [-1, 1, -1]]


@pytest.mark.parametrize("labels", [[0, 1, 1], [0.0, 1.0, 1.0]])
def test_bit_masks_accepts_integer_valued_float_labels(labels):
    got = bit_masks(CODES3, torch.tensor(labels), 2, 0.5)
    # cluster 0 = code 0 alone: all bits kept; cluster 1 = codes 1, 2: mean (0, 1, 0)
    assert got.dtype == torch.float32 and got.tolist() == [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]


@pytest.mark.parametrize("k", [2.5, True, 0])
def test_bit_masks_n_clusters_must_be_a_positive_int(k):
    with pytest.raises(ValueError, match=_full(f"n_clusters must be a positive int; got {k!r}")):
        bit_masks(CODES3, [0, 0, 0], k, 0.5)


def test_bit_masks_codes_must_be_plus_minus_one():
    with pytest.raises(ValueError, match=_full(
            "codes must contain only +1 and -1 (binarise with sign, sign(0) = +1)")):
        bit_masks([[1, 0.5, 1], [1, 1, 1], [-1, 1, -1]], [0, 1, 1], 2, 0.5)


def test_bit_masks_are_built_on_the_codes_device_not_the_default_one():
    codes, labels = torch.tensor(CODES3, dtype=torch.float32), torch.tensor([0, 1, 1])
    with torch.device("meta"):
        got = bit_masks(codes, labels, 2, 0.5)
    assert got.device.type == "cpu" and got.tolist() == [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]


def test_bit_masks_one_cluster_per_code_is_allowed():
    # K = n = 3: every mean is a +-1 code, every bit is kept
    assert bit_masks(CODES3, [2, 0, 1], 3, 0.5).tolist() == [[1.0] * 3] * 3


def test_bit_masks_more_clusters_than_codes_message():
    # n = 2, L = 3, K = 5: 5 - 2 = 3 clusters must be empty
    with pytest.raises(ValueError, match=_full(
            "n_clusters=5 is larger than the number of training codes n=2; at least 3 clusters must "
            "be empty. Use at most 2 clusters or more codes")):
        bit_masks([[1, -1, 1], [1, 1, 1]], [0, 1], 5, 0.5)


def test_bit_masks_empty_last_cluster_message():
    with pytest.raises(ValueError, match=_full(
            "cluster 2 is empty (empty clusters: [2]); its bit mask is undefined. Use a smaller "
            "number of clusters than K=3")):
        bit_masks(CODES3, [0, 1, 1], 3, 0.5)


# ---------------------------------------------------------------- the distiller, k-means spied

# n = 6 training codes, L = 4, K = 3 fixed pseudo labels:
#   cluster 0 = rows 0, 1: mean ( 1,  1, 0, 1) -> mask (1, 1, 0, 1)
#   cluster 1 = rows 2, 3: mean (-1,  0, 1, 1) -> mask (1, 0, 1, 1)
#   cluster 2 = rows 4, 5: mean ( 1, -1, -1, 0) -> mask (1, 1, 1, 0)
# (margin 0.6: |mean| is 0 or 1, so the masks are those of any margin in [0, 1))
TRAIN = np.array([[1, 1, 1, 1], [1, 1, -1, 1],
                  [-1, -1, 1, 1], [-1, 1, 1, 1],
                  [1, -1, -1, -1], [1, -1, -1, 1]])
LABELS = np.array([0, 0, 1, 1, 2, 2])
CENTROIDS = np.array([[1.0, 1.0, 0.0, 1.0], [-1.0, 0.0, 1.0, 1.0], [1.0, -1.0, -1.0, 0.0]])
MASKS = np.array([[1, 1, 0, 1], [1, 0, 1, 1], [1, 1, 1, 0]], dtype=np.float64)
INERTIA = 6.0

# Batch of B = 4: dataset indices 0, 2, 4, 1 -> pseudo labels 0, 1, 2, 0.
INDEX = [0, 2, 4, 1]
CLUSTER = [0, 1, 2, 0]
# Nearest centroids of the view-2 teacher codes (squared distances to c0, c1, c2):
#   ( 1,  1,  1, 1): 1, 5, 9  -> 0
#   ( 1, -1, -1, 1): 5, 9, 1  -> 2   (sample 1 left cluster 1: the one offset positive)
#   ( 1, -1, -1,-1): 9, 13, 1 -> 2
#   ( 1,  1, -1, 1): 1, 9, 5  -> 0
T_OTHER = np.array([[1, 1, 1, 1], [1, -1, -1, 1], [1, -1, -1, -1], [1, 1, -1, 1]], dtype=np.float64)
CLUSTER_OTHER = [0, 2, 2, 0]
# False negatives (self and partner excluded; rows 0..3 students, 4..7 teachers):
#   rows 0, 3, 4, 7 (cluster 0) each drop two of {0, 3, 4, 7}; rows 2, 6 (cluster 2) drop row 5
#   (teacher of sample 1, nearest centroid 2); rows 1, 5 (cluster 1) drop nothing: 4 * 2 + 2 = 10
REMOVED = 10
S4 = np.array([[0.5, -1.5, 2.0, 1.0], [-2.0, 0.25, 1.0, -0.75],
               [1.25, 0.5, -1.0, 2.0], [-0.5, 1.0, 0.75, -1.5]])
T4 = np.array([[1.5, -0.5, 1.0, 2.0], [0.25, -1.0, 1.5, 0.5],
               [-1.0, 0.5, 2.5, -0.5], [1.0, 2.0, -0.5, 1.5]])
# alpha 0.375 is exact in float32 (offset_alpha makes the per-sample alphas float32)
TAU, ALPHA_D = 0.7, 0.375


def _batch():
    return DistillBatch(student=_t(S4), student_other=_t(S4), teacher=_t(T4),
                        teacher_other=_t(T_OTHER), index=torch.tensor(INDEX))


class _KMeansSpy:
    def __init__(self):
        self.calls = []

    def __call__(self, codes, **kwargs):
        self.calls.append((codes, kwargs))
        return KMeansResult(labels=LABELS.copy(), centroids=CENTROIDS.copy(), inertia=INERTIA)


@pytest.fixture
def spy(monkeypatch):
    s = _KMeansSpy()
    monkeypatch.setattr(brcd_mod, "kmeans_codes", s)
    monkeypatch.setattr(brcd_mod, "cached_kmeans", s)
    return s


def _distiller(**kwargs):
    kw = dict(temperature=TAU, alpha=ALPHA_D, margin=0.6, n_clusters=3, n_init=3, kmeans_max_iter=7)
    kw.update(kwargs)
    return BRCDDistiller(**kw)


def _context(codes=None, **kwargs):
    kw = dict(teacher_train_codes=torch.tensor(TRAIN, dtype=torch.float32) if codes is None else codes,
              n_train=6, code_length=4, seed=11)
    kw.update(kwargs)
    return DistillContext(**kw)


def test_prepare_without_cache_calls_kmeans_with_the_distillers_settings(spy):
    d = _distiller()
    d.prepare(_context(TRAIN))  # a NumPy array of ints is accepted
    (codes, kwargs), = spy.calls
    assert kwargs == {"n_clusters": 3, "seed": 11, "n_init": 3, "max_iter": 7}
    assert codes.dtype == torch.float32 and codes.tolist() == TRAIN.tolist()
    assert d.pseudo_labels.tolist() == LABELS.tolist()
    assert d.centroids.dtype == torch.float32 and d.centroids.tolist() == CENTROIDS.tolist()
    assert d.masks.tolist() == MASKS.tolist()
    assert d.kept_bit_fraction == 9 / 12 and d.inertia == INERTIA


def test_prepare_with_cache_passes_dir_key_and_kmeans_settings(spy, tmp_path):
    d = _distiller()
    d.prepare(_context(TRAIN.tolist(), cache_dir=str(tmp_path), cache_key="teacher-a"))  # a list
    (codes, kwargs), = spy.calls
    assert kwargs == {"n_clusters": 3, "seed": 11, "n_init": 3, "max_iter": 7,
                      "cache_dir": str(tmp_path), "cache_key": "teacher-a"}
    assert codes.tolist() == TRAIN.tolist()
    assert d.masks.tolist() == MASKS.tolist()


def test_prepare_builds_its_buffers_on_the_distillers_device(spy):
    """On the meta device (shapes only): a buffer left on the CPU would show it."""
    d = _distiller().to("meta")
    d.prepare(_context())
    for buf in (d.pseudo_labels, d.centroids, d.masks):
        assert buf.device.type == "meta"
    assert tuple(d.masks.shape) == (3, 4) and d.kept_bit_fraction == 9 / 12


@pytest.mark.parametrize("context, message", [
    (dict(codes=torch.ones(6)), "teacher_train_codes must be (n_train, L); got (6,)"),
    (dict(n_train=7), "teacher_train_codes has 6 rows but n_train = 7; encode every training image "
                      "once, row i = dataset index i"),
    (dict(code_length=5), "teacher_train_codes has 4 bits but code_length = 5"),
])
def test_prepare_messages(spy, context, message):
    with pytest.raises(ValueError, match=_full(message)):
        _distiller().prepare(_context(**context))
    assert spy.calls == []


@pytest.mark.parametrize("use_cluster", [True, False])
@pytest.mark.parametrize("use_mask", [True, False])
def test_forward_matches_the_reference(spy, use_mask, use_cluster):
    d = _distiller(use_mask=use_mask, use_cluster=use_cluster)
    d.prepare(_context())
    loss = d(_batch())
    mask = MASKS[CLUSTER] if use_mask else None
    if use_cluster:
        # alpha = 1 for the offset positive (sample 1), 0.375 elsewhere
        expected = ref_loss(S4, T4, T_OTHER, tau=TAU, alpha=[ALPHA_D, 1.0, ALPHA_D, ALPHA_D],
                            mask=mask, cluster=CLUSTER, cluster_other=CLUSTER_OTHER)
    else:
        expected = ref_loss(S4, T4, T_OTHER, tau=TAU, alpha=ALPHA_D, mask=mask)
    assert loss.dim() == 0 and float(loss) == pytest.approx(expected, rel=1e-10, abs=1e-12)
    st = d.stats()
    assert st["offset_positive_rate"] == 0.25  # one of four samples left its cluster
    assert st["removed_negatives"] == (REMOVED if use_cluster else 0)


def test_forward_does_not_follow_the_default_device(spy):
    """A default device (here the meta device, as a context) must not leak into the batch indices:
    they are made on the pseudo labels' device. (Without use_cluster: with it, offset_alpha's
    ``torch.as_tensor(cluster)`` follows the default device, which the meta device cannot copy
    back; on a real second device that is only a round trip.)"""
    d = _distiller(use_cluster=False)
    d.prepare(_context())
    batch = _batch()
    batch.index = INDEX  # a list: made into a tensor by forward
    with torch.device("meta"):
        loss = d(batch)
    assert loss.device.type == "cpu"
    expected = ref_loss(S4, T4, T_OTHER, tau=TAU, alpha=ALPHA_D, mask=MASKS[CLUSTER])
    assert float(loss) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_the_switches_change_the_reference_on_these_inputs():
    """Dropping the mask, the clusters, the offset alpha or tau moves the value (so the tests above
    tell those apart)."""
    full = dict(tau=TAU, alpha=[ALPHA_D, 1.0, ALPHA_D, ALPHA_D], mask=MASKS[CLUSTER],
                cluster=CLUSTER, cluster_other=CLUSTER_OTHER)
    values = [ref_loss(S4, T4, T_OTHER, **full),
              ref_loss(S4, T4, T_OTHER, **{**full, "mask": None}),
              ref_loss(S4, T4, T_OTHER, **{**full, "tau": 0.3}),
              ref_loss(S4, T4, T_OTHER, **{**full, "alpha": ALPHA_D}),
              ref_loss(S4, T4, T_OTHER, tau=TAU, alpha=ALPHA_D, mask=MASKS[CLUSTER]),
              ref_loss(S4, T4, T_OTHER, tau=0.3, alpha=ALPHA_D, mask=MASKS[CLUSTER])]
    assert min(abs(a - b) for i, a in enumerate(values) for b in values[i + 1:]) > 1e-3


def test_forward_before_prepare_message():
    with pytest.raises(RuntimeError, match=_full(
            "BRCDDistiller.forward called before prepare(context); call prepare first")):
        _distiller()(_batch())


def test_forward_index_messages(spy):
    d = _distiller()
    d.prepare(_context())
    b3 = _batch()  # the first three samples: B = 3, L = 4
    b3.student, b3.teacher, b3.teacher_other = b3.student[:3], b3.teacher[:3], b3.teacher_other[:3]
    b3.index = torch.tensor(INDEX[:3])[:, None]  # (B, 1): B rows but two dimensions
    with pytest.raises(ValueError, match=_full("batch.index must be (B,) with B = 3; got (3, 1)")):
        d(b3)
    batch = _batch()
    batch.index = torch.tensor([0, 2, 6, 1])  # 6 = n_train is one past the last index
    with pytest.raises(ValueError, match=_full(
            "batch.index must lie in [0, 6) (dataset indices of the training set); got min 0, max 6")):
        d(batch)

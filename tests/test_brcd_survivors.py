"""Tests aimed at the ``brcd_lib/distill/brcd.py`` mutants still alive after the first pass
(tests/test_brcd_mutants.py): the ``BRCDDistiller`` constructor (defaults, validation messages,
the three non-persistent buffers and the attributes set before ``prepare``), the messages of
``check_temperature``, the ablation table and the cosine of an integer student.

Expected values are literals worked by hand in comments, never read back from brcd_lib."""
from __future__ import annotations

import math

import pytest
import torch

from brcd_lib.distill.brcd import BRCDDistiller, ablation_variants, brcd_logits, check_temperature

TAU_MSG = "temperature must be a finite number > 0 (the paper's tau is 0.3); got "


# ---------------------------------------------------------------- check_temperature


@pytest.mark.parametrize("tau, shown", [(0, "0"), (-0.3, "-0.3"), (math.nan, "nan")])
def test_check_temperature_message_without_the_infinity_note(tau, shown):
    with pytest.raises(ValueError) as err:
        check_temperature(tau)
    assert str(err.value) == TAU_MSG + shown


def test_check_temperature_message_for_an_infinite_tau():
    with pytest.raises(ValueError) as err:
        check_temperature(math.inf)
    assert str(err.value) == (TAU_MSG + "inf: every logit would be 0, a constant loss that gives "
                              "the student no gradient")


# ---------------------------------------------------------------- ablation_variants


def test_ablation_variants_exact():
    assert ablation_variants() == {
        "brcd": {},
        "no_mask": {"use_mask": False},
        "no_cluster": {"use_cluster": False},
        "alpha_1": {"alpha": 1.0},
        "alpha_0": {"alpha": 0.0},
        "upstream_mask": {"mask_rule": "upstream"},
    }


# ---------------------------------------------------------------- brcd_logits, integer student


def test_integer_student_is_made_float_before_its_norm():
    """An int8 student (12, 5): |s|^2 = 144 + 25 = 169 must be formed in float (in int8, 12 * 12
    wraps to -112). Teacher = student, so the individual cosine is 1 and, with alpha = 1, the
    positive logit (column 0) is 1 / tau = 2 on both rows."""
    s = torch.tensor([[12, 5]], dtype=torch.int8)
    t = torch.tensor([[12.0, 5.0]])
    logits = brcd_logits(s, t, t, temperature=0.5, alpha=1.0)
    assert logits.dtype == torch.float32
    assert logits[:, 0].tolist() == pytest.approx([2.0, 2.0], rel=1e-6)


# ---------------------------------------------------------------- BRCDDistiller.__init__


def test_distiller_defaults_are_the_papers():
    d = BRCDDistiller()
    assert (d.temperature, d.alpha, d.margin) == (0.3, 0.8, 0.5)
    assert (d.n_clusters, d.n_init, d.kmeans_max_iter) == (10, 10, 300)
    assert (d.use_mask, d.use_cluster, d.mask_rule) == (True, True, "paper")


def test_distiller_before_prepare():
    d = BRCDDistiller(n_clusters=2)
    bufs = dict(d.named_buffers())
    assert list(bufs) == ["pseudo_labels", "centroids", "masks"]
    assert bufs["pseudo_labels"].dtype == torch.long and tuple(bufs["pseudo_labels"].shape) == (0,)
    assert bufs["centroids"].dtype == torch.float32 and tuple(bufs["centroids"].shape) == (0,)
    assert bufs["masks"].dtype == torch.float32 and tuple(bufs["masks"].shape) == (0,)
    # rebuilt by prepare, so kept out of checkpoints
    assert list(d.state_dict()) == []
    assert d.kept_bit_fraction is None and d.inertia is None


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": 1.5}, "alpha must lie in [0, 1]; got 1.5"),
    ({"alpha": 2.0}, "alpha must lie in [0, 1]; got 2.0"),
    ({"margin": -0.1}, "margin must be >= 0; got -0.1"),
    ({"n_clusters": 0}, "n_clusters must be >= 1; got 0"),
    ({"n_init": 0}, "n_init and kmeans_max_iter must be >= 1; got 0, 300"),
    ({"kmeans_max_iter": 0}, "n_init and kmeans_max_iter must be >= 1; got 10, 0"),
    ({"n_clusters": 1}, (
        "n_clusters=1 with the cluster-based handling (use_cluster=True) removes every "
        "negative (all items share the anchor's one cluster): the BRCD loss is exactly 0 "
        "and the student learns nothing from the teacher. Use n_clusters >= 2 (the "
        "profile's brcd.n_clusters, e.g. --set brcd.n_clusters=10), or use_cluster=False")),
])
def test_distiller_rejects_with_the_exact_message(kwargs, message):
    with pytest.raises(ValueError) as err:
        BRCDDistiller(**kwargs)
    assert str(err.value) == message


def test_distiller_accepts_the_smallest_valid_settings():
    d = BRCDDistiller(alpha=1.0, margin=0.0, n_clusters=1, use_cluster=False, n_init=1,
                      kmeans_max_iter=1)
    assert (d.alpha, d.margin, d.n_clusters, d.n_init, d.kmeans_max_iter) == (1.0, 0.0, 1, 1, 1)

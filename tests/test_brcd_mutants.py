"""Tests aimed at the mutants of ``brcd_lib/distill/brcd.py`` that survived ``make mutation``.

Expected values are worked by hand in comments or computed by reference code written here (plain
NumPy), never read back from brcd_lib."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from brcd_lib.distill.base import DistillBatch, DistillContext
from brcd_lib.distill.brcd import (BRCDDistiller, bit_masks, list_mask_rules, offset_alpha,
                                   register_mask_rule)
from brcd_lib.distill.brcd import MASK_RULES

# ---------------------------------------------------------------- the mask-rule registry


def test_register_mask_rule_makes_a_rule_usable_by_name():
    name = "_test_keep_negative_bits"
    try:
        @register_mask_rule(name)
        def _rule(means, margin):  # keep bit j of cluster c when m_c[j] < -margin
            return (means < -margin).to(means.dtype)

        assert name in list_mask_rules()
        # cluster 0: codes (+1, -1), (+1, -1) -> mean (+1, -1); cluster 1: (-1, -1), (-1, +1)
        # -> mean (-1, 0); the rule keeps mean < -0.5: [[0, 1], [1, 0]]
        codes = [[1, -1], [1, -1], [-1, -1], [-1, 1]]
        got = bit_masks(codes, [0, 0, 1, 1], 2, 0.5, rule=name)
        assert got.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    finally:
        MASK_RULES.remove(name)
    assert name not in list_mask_rules()


# ---------------------------------------------------------------- BRCDDistiller.stats

# Two well-separated groups of 4-bit codes (n = 6, K = 2):
#   A = (+1 +1 +1 +1), (+1 +1 +1 -1), (+1 +1 -1 +1), (+1 +1 -1 -1): mean (1, 1, 0, 0)
#   B = (-1 -1 -1 +1), (-1 -1 -1 -1):                                 mean (-1, -1, -1, 0)
# k-means with K = 2 splits on the first two bits (any other split costs more), so
#   masks (|mean| > 0.5): A keeps 2 bits, B keeps 3 -> kept bits {2, 3}, fraction 5 / 8
#   inertia: A: each code is at squared distance 0 + 0 + 1 + 1 = 2 from (1, 1, 0, 0) -> 4 * 2 = 8
#            B: each code is at squared distance 0 + 0 + 0 + 1 = 1 from (-1, -1, -1, 0) -> 2 * 1 = 2
#            total 10
CODES = [[1, 1, 1, 1], [1, 1, 1, -1], [1, 1, -1, 1], [1, 1, -1, -1],
         [-1, -1, -1, 1], [-1, -1, -1, -1]]


def _prepared(**kwargs):
    d = BRCDDistiller(n_clusters=2, n_init=4, **kwargs)
    d.prepare(DistillContext(teacher_train_codes=torch.tensor(CODES, dtype=torch.float32),
                             n_train=6, code_length=4, seed=0))
    return d


def test_stats_before_prepare_names_the_missing_step():
    with pytest.raises(RuntimeError) as err:
        BRCDDistiller(n_clusters=2).stats()
    assert str(err.value) == "stats() needs prepare(context) first"


def test_stats_after_prepare():
    d = _prepared()
    st = d.stats()
    assert list(st) == ["kept_bits_per_cluster", "kept_bit_fraction", "inertia",
                        "offset_positive_rate", "removed_negatives"]
    assert sorted(st["kept_bits_per_cluster"]) == [2, 3]
    assert st["kept_bit_fraction"] == pytest.approx(5 / 8)
    assert st["inertia"] == pytest.approx(10.0)
    assert st["offset_positive_rate"] is None and st["removed_negatives"] is None


def test_offset_alpha_dtype_follows_a_floating_alpha_only():
    cluster, other = torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2])
    got64 = offset_alpha(torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), cluster, other)
    assert got64.dtype == torch.float64 and got64.tolist() == [0.25, 1.0, 0.75]
    got_int = offset_alpha(torch.tensor([2, 3, 4]), cluster, other)  # integer weights -> float32
    assert got_int.dtype == torch.float32 and got_int.tolist() == [2.0, 1.0, 4.0]


def test_offset_alpha_makes_everything_on_the_clusters_device():
    """On the meta device (shapes only) a tensor left on the CPU would raise when mixed in."""
    cluster = torch.tensor([0, 1, 2], device="meta")
    out = offset_alpha(0.5, cluster, [0, 2, 2])  # a list: made on the clusters' device
    assert out.device.type == "meta" and tuple(out.shape) == (3,)
    out = offset_alpha(torch.tensor([0.25, 0.5, 0.75]), cluster, torch.tensor([0, 2, 2], device="meta"))
    assert out.device.type == "meta" and out.dtype == torch.float32

"""benchmarks/paper_grid.py: the paper grid counted without its data (split sizes, student runs,
distinct view banks, forward passes) and the end-to-end arithmetic of cached vs uncached
training. Each test fails when the counting or the arithmetic drifts from the kit's rules."""
from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest

from benchmarks import paper_grid
from brcd_lib.data.registry import class_names, dataset_parameters
from brcd_lib.experiments.preflight import _workload, run_plan
from brcd_lib.experiments.profiles import get_profile


@pytest.fixture(scope="module")
def paper():
    return get_profile("paper")


@pytest.fixture(scope="module")
def plan(paper):
    return run_plan(paper)


def test_protocol_sizes_are_the_cifar10_protocol_defaults(paper):
    sizes = paper_grid.protocol_sizes(paper)
    params = dataset_parameters("cifar10")
    assert sizes == {"train": params["n_train_per_class"] * len(class_names("cifar10")),
                     "val": params["n_val"], "query": params["n_query"], "database": 50_000}
    assert sizes["train"] == 5_000  # 500 per class x 10 classes (the released protocol)
    # a protocol override of the profile is honoured
    small = dataclasses.replace(paper, data=dataclasses.replace(
        paper.data, protocol={"n_train_per_class": 2, "n_val": 3}))
    assert paper_grid.protocol_sizes(small)["train"] == 20
    assert paper_grid.protocol_sizes(small)["val"] == 3


def test_protocol_sizes_refuses_other_datasets():
    with pytest.raises(ValueError, match="cifar10 only"):
        paper_grid.protocol_sizes("digits")


def test_distinct_banks_of_the_paper_grid(paper, plan):
    banks = paper_grid.distinct_banks(paper, plan, 8)
    # SSKD reads 4 rotations of the EfficientNet-B0 and ViT-B/16 banks; the other student
    # backbones one unrotated bank each; one bank per backbone, shared by all its runs
    assert {(b, 8, r) for b in ("efficientnet_b0", "vit_b_16") for r in range(4)} <= banks
    assert {("mobilenet_v2", 8, 0), ("resnet18", 8, 0)} <= banks
    # every run's own teacher has its bank (the backbone-pairs axis: other ViT teachers)
    runs = paper_grid.student_runs(plan)
    teachers = {paper_grid.teacher_backbone(r) for r in runs}
    assert {(t, 8, 0) for t in teachers} <= banks
    rotated = {(r["backbone"], paper_grid.teacher_backbone(r)) for r in runs if r["rotations"]}
    assert {b for b, _, rot in banks if rot} == {x for pair in rotated for x in pair}
    assert len(banks) == len({(b, rot) for b, _, rot in banks})
    with pytest.raises(ValueError, match="views"):
        paper_grid.distinct_banks(paper, plan, 1)
    with pytest.raises(ValueError, match="run_plan"):
        paper_grid.distinct_banks(paper, [], 8)


def test_distinct_banks_match_preflight_workload(paper, plan):
    """With a bank of V views in both trainings, _workload's passes beyond the clean features are
    V x n_train per bank: the same banks per backbone as distinct_banks counts."""
    v, n = 6, 7
    banked = dataclasses.replace(
        paper, student_train=dataclasses.replace(paper.student_train, feature_views=v),
        teacher_train=dataclasses.replace(paper.teacher_train, feature_views=v))
    sizes = {"train": n, "val": 1, "query": 2, "database": 3}
    passes = paper_grid.forward_passes(banked, plan, sizes)
    from_workload = {b: (k - sum(sizes.values())) // (v * n) for b, k in passes.items()}
    counted = {b: 0 for b in passes}
    for b, _, _ in paper_grid.distinct_banks(banked, plan, v):
        counted[b] += 1
    assert from_workload == counted


def test_forward_passes_follow_the_shared_rule(paper, plan):
    """Issue #29: the paper profile trains its grid together, so per phase (teachers, students)
    and epoch each backbone computes the 2 views once, plus the rotated copies (SSKD: 3 beyond
    view 1) when a run reading it needs them; one augmentation seed (the split seed) for all."""
    sizes = paper_grid.protocol_sizes(paper)
    passes = paper_grid.forward_passes(paper, plan, sizes)
    n, clean = sizes["train"], sum(sizes.values())
    expected = {b: clean for b in paper_grid.grid_backbones(paper, plan)}
    for b in {t["backbone"] for t in plan["teachers"]}:
        expected[b] += paper.teacher_train.epochs * n * 2
    extra = {b: 0 for b in expected}
    for s in paper_grid.student_runs(plan):
        for b in (s["backbone"], paper_grid.teacher_backbone(s)):
            extra[b] = max(extra[b], max(s["rotations"] - 1, 0))
    for b in expected:
        if b in {x for s in paper_grid.student_runs(plan)
                 for x in (s["backbone"], paper_grid.teacher_backbone(s))}:
            expected[b] += paper.student_train.epochs * n * (2 + extra[b])
    assert passes == expected
    # issue #29's target: ViT-B/16 per seed at least 50x fewer than the per-run 282M of one seed
    assert passes["vit_b_16"] == 65_000 + 200 * 5_000 * 2 + 400 * 5_000 * (2 + 3)
    assert len(paper.seeds) == 5 and passes["vit_b_16"] / len(paper.seeds) * 50 <= 282_065_000


def test_forward_passes_per_run_follow_the_uncached_rule(paper, plan):
    sizes = paper_grid.protocol_sizes(paper)
    passes = paper_grid.workload(paper, plan, sizes)["forward_passes_per_run"]
    n, clean = sizes["train"], sum(sizes.values())
    expected = {b: clean for b in paper_grid.grid_backbones(paper, plan)}
    for t in plan["teachers"]:
        expected[t["backbone"]] += paper.teacher_train.epochs * n * 2
    for s in paper_grid.student_runs(plan):
        k = paper.student_train.epochs * n * (2 + s["rotations"])
        expected[s["backbone"]] += k
        expected[paper_grid.teacher_backbone(s)] += k  # the run's own teacher
    assert passes == expected
    assert list(passes)[:4] == ["vit_b_16", "efficientnet_b0", "mobilenet_v2", "resnet18"]
    # the same as preflight's own count on stand-in splits
    splits = SimpleNamespace(**{s: range(v) for s, v in sizes.items()})
    assert passes == _workload(paper, plan, splits, paper_grid.grid_backbones(paper, plan))[
        "forward_passes_per_run"]
    one = run_plan(dataclasses.replace(paper, seeds=paper.seeds[:1]))
    assert paper_grid.workload(paper, one, sizes)["forward_passes_per_run"]["vit_b_16"] == \
        282_065_000  # one seed of the grid, as issue #29 counted it
    with pytest.raises(ValueError, match="lacks"):
        paper_grid.forward_passes(paper, plan, {"train": 1})
    with pytest.raises(ValueError, match="teacher backbone"):
        paper_grid.teacher_backbone({"backbone": "x"})
    assert paper_grid.teacher_backbone({"teacher": '{"backbone": "vit_b_32"}'}) == "vit_b_32"


def test_end_to_end_arithmetic():
    one = paper_grid.one_run_totals(epochs=400, uncached_epoch_s=10.0, cached_epoch_s=0.5,
                                    bank_build_s=40.0)
    assert one["uncached_s"] == 4000.0
    assert one["cached_s"] == 40.0 + 200.0
    assert one["ratio"] == pytest.approx(4000.0 / 240.0)
    grid = paper_grid.grid_totals(runs=64, epochs=400, uncached_epoch_s=10.0, cached_epoch_s=0.5,
                                  banks_build_s=300.0)
    assert grid["uncached_s"] == 64 * 4000.0
    assert grid["cached_s"] == 300.0 + 64 * 200.0
    assert grid["ratio"] == pytest.approx(256000.0 / 13100.0)
    # the bank is paid once: a grid of one run with the run's bank is the one-run figure
    assert paper_grid.grid_totals(runs=1, epochs=400, uncached_epoch_s=10.0, cached_epoch_s=0.5,
                                  banks_build_s=40.0) == one
    assert paper_grid.break_even_epochs(bank_build_s=19.0, uncached_epoch_s=10.0,
                                        cached_epoch_s=0.5) == pytest.approx(2.0)
    assert math.isinf(paper_grid.break_even_epochs(bank_build_s=1.0, uncached_epoch_s=1.0,
                                                   cached_epoch_s=2.0))


def test_bank_build_seconds():
    banks = {("a", 8, 0), ("a", 8, 1), ("b", 4, 0)}
    s = paper_grid.bank_build_seconds(banks, n_train=10, seconds_per_view_image={"a": 0.5,
                                                                                 "b": 2.0})
    assert s == pytest.approx(2 * 8 * 10 * 0.5 + 4 * 10 * 2.0)
    with pytest.raises(ValueError, match="no seconds per image for backbone 'b'"):
        paper_grid.bank_build_seconds(banks, n_train=10, seconds_per_view_image={"a": 0.5})


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), "epochs"), (dict(epochs=True), "epochs"),
    (dict(uncached_epoch_s=-1.0), "uncached_epoch_s"),
    (dict(cached_epoch_s=float("nan")), "cached_epoch_s"),
    (dict(bank_build_s="1"), "bank_build_s"),
])
def test_end_to_end_rejects_bad_input(kwargs, match):
    good = dict(epochs=4, uncached_epoch_s=1.0, cached_epoch_s=0.1, bank_build_s=2.0)
    with pytest.raises(ValueError, match=match):
        paper_grid.one_run_totals(**{**good, **kwargs})
    with pytest.raises(ValueError, match="runs"):
        paper_grid.grid_totals(runs=0, epochs=4, uncached_epoch_s=1.0, cached_epoch_s=0.1,
                               banks_build_s=2.0)

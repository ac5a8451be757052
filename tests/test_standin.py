"""The CPU stand-in's trainable structure (issue #24), from the profile registry; the capacity
ladder's plan and table; the convergence report. Expected numbers are computed by hand here."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from brcd_lib.experiments import plan
from brcd_lib.experiments.profiles import get_profile, list_profiles
from brcd_lib.experiments.rows import run_rows, training_fields
from brcd_lib.models import build_hashing_network, count_parameters
from brcd_lib.reporting.convergence import convergence_table, learning_curves, run_lengths
from brcd_lib.reporting.ladder import ladder_lines, ladder_table

CPU_PROFILES = [p for p in list_profiles() if get_profile(p).runs_on_cpu]


def _head_params(model, bits: int, *, role: str) -> tuple[int, list[int]]:
    bb = model.backbone
    net = build_hashing_network(role=role, backbone=bb.name, code_length=bits, head=model.head,
                                head_hidden=model.head_hidden, **bb.kwargs)
    widths = [m.out_features for m in net.head.modules() if hasattr(m, "out_features")]
    return count_parameters(net.head), widths


@pytest.mark.parametrize("name", CPU_PROFILES)
def test_paper_trainable_structure_on_every_cpu_profile(name):
    """Frozen backbones, a linear teacher head, a student head with at least the teacher head's
    trainable parameters and no hidden layer narrower than the code length (method.md section 2:
    the release gives the student ~40x the teacher's head)."""
    p = get_profile(name)
    assert p.teacher.freeze_backbone and p.student.freeze_backbone
    for bits in p.bits:
        t_params, t_widths = _head_params(p.teacher, bits, role="teacher")
        assert t_widths == [bits], f"{name}: the teacher head must be linear"
        models = [p.student] + [r["student_model"] for r in plan.ladder_models(p)]
        for model in models:
            s_params, s_widths = _head_params(model, bits, role="student")
            assert s_params >= t_params, (name, bits, s_params, t_params)
            assert min(s_widths) >= bits, (name, bits, s_widths)


@pytest.mark.parametrize("name", CPU_PROFILES)
def test_student_backbones_much_smaller_than_the_teacher(name):
    p = get_profile(name)

    def backbone_params(model, role):
        bb = model.backbone
        return count_parameters(build_hashing_network(role=role, backbone=bb.name, code_length=16,
                                                      **bb.kwargs).backbone)

    teacher = backbone_params(p.teacher, "teacher")
    for model in [p.student] + [r["student_model"] for r in plan.ladder_models(p)]:
        assert backbone_params(model, "student") * 10 <= teacher


def test_undistilled_head_option():
    p = get_profile("digits")
    assert p.undistilled_head == "same"
    assert p.student_model("none") == p.student
    release = dataclasses.replace(p, undistilled_head="release")
    assert release.student_model("none").head == "linear"
    assert release.student_model("none").head_hidden is None
    assert release.student_model("kd") == p.student  # distilled students keep the MLP
    with pytest.raises(ValueError, match="undistilled_head"):
        dataclasses.replace(p, undistilled_head="linear")


def test_ladder_plan_on_fashion():
    p = get_profile("fashion")
    rungs = plan.ladder_models(p)
    assert len(rungs) >= 3
    widths = [r["student_model"].backbone.kwargs["width"] for r in rungs]
    assert widths == sorted(widths) and len(set(widths)) == len(widths)
    # the profile's own student is one rung, with the very model of the main grid
    assert any(r["student_model"] == p.student for r in rungs)
    jobs = plan.ladder_jobs(p)
    seeds = p.ladder_seeds or p.focus_seeds or p.seeds
    assert len(jobs) == len(rungs) * len(p.ladder_methods) * len(seeds)
    assert {"none", "kd", "brcd"} <= set(p.ladder_methods) and len(p.ladder_methods) >= 4


def _record(**kw):
    rec = {"key": "k", "dataset": "d", "profile": "p", "bits": 32, "seed": 0, "top_k": 10,
           "metrics": {"symmetric": 0.5, "asymmetric": 0.4}, "teacher_seed": 0,
           "best_epoch": {"symmetric": 40, "asymmetric": 70}, "epochs_run": 120,
           "train": {"epochs": 400}}
    rec.update(kw)
    return rec


def test_rows_carry_training_lengths():
    rows = run_rows(_record(), method="kd")
    by = {r["paradigm"]: r for r in rows}
    assert (by["symmetric"]["best_epoch"], by["asymmetric"]["best_epoch"]) == (40, 70)
    assert by["symmetric"]["epochs_run"] == 120 and by["asymmetric"]["max_epochs"] == 400
    # a teacher validates one paradigm: both its rows carry that best epoch
    assert training_fields(_record(best_epoch={"symmetric": 30}), "asymmetric")["best_epoch"] == 30


def test_convergence_share_by_hand():
    def rows(h, method, best, cap):
        return [{"config_hash": h, "method": method, "paradigm": p, "status": "ok",
                 "best_epoch": b, "epochs_run": b + 50, "max_epochs": cap}
                for p, b in zip(("symmetric", "asymmetric"), best)]

    main = pd.DataFrame(rows("a", "none", (100, 790), 1000)      # 790 < 800: inside
                        + rows("b", "kd", (810, 10), 1000)        # 810 >= 800: bound
                        + rows("c", "brcd", (300, 320), 1000)
                        + rows("t", "teacher", (50, 50), 100))   # 50 < 80
    abl = pd.DataFrame(rows("c", "brcd", (300, 320), 1000) + rows("d", "brcd", (800, 1), 1000))
    lengths = run_lengths(main)
    assert dict(zip(lengths["config_hash"], lengths["inside"])) == {
        "a": True, "b": False, "c": True, "t": True}
    table = convergence_table({"main": main, "ablations": abl}).set_index(["study", "role"])
    assert table.loc[("main", "student"), "runs"] == 3
    assert table.loc[("main", "student"), "inside"] == 2
    assert table.loc[("ablations", "student"), "share"] == 0.5
    # over all studies each run counts once: a, b, c, d students (c shared), t teacher
    assert table.loc[("all studies", "all"), "runs"] == 5
    assert table.loc[("all studies", "all"), "inside"] == 3
    assert table.loc[("all studies", "all"), "share"] == 0.6


def test_learning_curves_from_records():
    rec = _record(history=[{"epoch": 10, "loss": 2.0, "val_symmetric": 0.3, "val_asymmetric": 0.2},
                           {"epoch": 20, "loss": 1.5, "val_symmetric": 0.35, "val_asymmetric": 0.1}])
    curves = learning_curves([("kd", rec)])
    assert len(curves) == 4
    sym = curves[curves["paradigm"] == "symmetric"]
    assert sym["val_map"].tolist() == [0.3, 0.35] and sym["best_epoch"].tolist() == [40, 40]


def _ladder_rows():
    rows = [{"method": "teacher", "paradigm": p, "seed": 0, "value": 0.8, "rung": None,
             "student_backbone": "(teacher)", "status": "ok"} for p in ("symmetric", "asymmetric")]
    # rung 0: no KD 0.5 / 0.6, KD 0.55 / 0.62, BRCD 0.6 / 0.66 (seeds 0, 1), symmetric only
    values = {0: {"none": (0.5, 0.6), "kd": (0.55, 0.62), "brcd": (0.6, 0.66)},
              1: {"none": (0.7, 0.7), "kd": (0.71, 0.73), "brcd": (0.75, 0.74)}}
    for rung, by in values.items():
        for method, vals in by.items():
            for seed, v in enumerate(vals):
                rows.append({"method": method, "paradigm": "symmetric", "seed": seed, "value": v,
                             "rung": rung, "student_backbone": f"w{rung}", "status": "ok"})
    return pd.DataFrame(rows)


def test_ladder_lines_by_hand():
    lines = ladder_lines(_ladder_rows()).set_index("rung")
    # rung 0: gap 0.8 - mean(0.5, 0.6) = 0.25; BRCD - KD per seed 0.05, 0.04 -> 0.045
    assert lines.loc[0, "gap"] == pytest.approx(0.25)
    assert lines.loc[0, "brcd_minus_kd"] == pytest.approx(0.045)
    # t(0.975, 1) = 12.7062; sd of (0.05, 0.04) = 0.0070711; half = 12.7062 * 0.0070711 / sqrt 2
    assert lines.loc[0, "brcd_minus_kd_high"] - 0.045 == pytest.approx(0.0635310, rel=1e-4)
    # share closed per seed: (0.6 - 0.5) / 0.3 = 1/3, (0.66 - 0.6) / 0.2 = 0.3
    assert lines.loc[0, "share_closed"] == pytest.approx((1 / 3 + 0.3) / 2)
    # rung 1: gap 0.1; shares 0.05 / 0.1 = 0.5 and 0.04 / 0.1 = 0.4
    assert lines.loc[1, "share_closed"] == pytest.approx(0.45)
    table = ladder_table(_ladder_rows())
    assert list(table["rung"]) == [0, 1]
    assert "share of gap closed by BRCD (95 % CI)" in table.columns


def test_ladder_counts_seeds_without_a_gap():
    rows = _ladder_rows()
    rows.loc[(rows["rung"] == 1) & (rows["method"] == "none") & (rows["seed"] == 0), "value"] = 0.85
    line = ladder_lines(rows).set_index("rung").loc[1]
    assert line["nonpositive_gaps"] == 1
    assert line["share_closed"] == pytest.approx(0.04 / 0.1)
    assert not math.isnan(line["gap"])

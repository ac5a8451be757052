"""The grids' seeds: focus methods get their own seeds, the teacher-seed study varies the teacher,
and a run-seeded view bank gives each seed its own augmentations."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from brcd_lib.experiments import studies
from brcd_lib.experiments.experiment import Experiment
from brcd_lib.experiments.profiles import get_profile
from brcd_lib.experiments.train import override_profile

from fakes import tiny_settings


def test_method_seeds_and_study_defaults():
    digits = get_profile("digits")
    assert digits.method_seeds("brcd") == digits.focus_seeds and len(digits.focus_seeds) >= 5
    assert digits.method_seeds("sp") == digits.seeds and len(digits.seeds) >= 3
    assert len(digits.aux_seeds) >= 5 and len(digits.teacher_seeds) >= 3
    smoke = get_profile("smoke")
    assert smoke.method_seeds("brcd") == smoke.seeds  # focus_seeds None = seeds


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    profile = override_profile(get_profile("smoke"), tiny_settings(student_epochs=2))
    return Experiment(profile, cache_dir=str(tmp_path_factory.mktemp("cache")), progress=False)


@pytest.mark.slow
def test_teacher_seed_grid_trains_one_teacher_per_seed(tiny):
    rows = studies.teacher_seed_grid(tiny, teacher_seeds=(0, 1), seeds=(0,), methods=("none", "kd"))
    assert set(rows["teacher_seed"]) == {0, 1}
    teachers = rows[rows["method"] == "teacher"]
    assert teachers["config_hash"].nunique() == 2  # two teacher runs
    students = rows[rows["method"] != "teacher"]
    assert len(students) == 2 * 2 * 2 and (students["status"] == "ok").all()
    # the students of teacher 0 are the main grid's runs (same keys, loaded from the cache)
    main = studies.main_grid(tiny, methods=["none", "kd"], seeds=[0])
    main_keys = set(main[main["method"] != "teacher"]["config_hash"].dropna())
    t0_keys = set(students[students["teacher_seed"] == 0]["config_hash"])
    assert t0_keys <= main_keys


def test_bank_seed_switch(tiny):
    net = tiny.build_network(tiny.profile.student, 16, role="student", seed=0)
    train = tiny.profile.student_train
    assert train.bank_seed == "split"
    assert tiny.bank_seed(train, 3) == tiny.profile.data.split_seed
    run = dataclasses.replace(train, bank_seed="run")
    assert tiny.bank_seed(run, 3) == 3
    a = tiny.view_bank(net, 2, seed=tiny.bank_seed(run, 0))
    b = tiny.view_bank(net, 2, seed=tiny.bank_seed(run, 1))
    again = tiny.view_bank(net, 2, seed=0)
    assert not torch.equal(a, b) and torch.equal(a, again)
    with pytest.raises(ValueError, match="bank_seed must be"):
        tiny.bank_seed(dataclasses.replace(train, bank_seed="epoch"), 0)


@pytest.mark.slow
def test_upstream_baselines_grid_gives_class_negatives_the_labels(tiny):
    rows = studies.upstream_baselines_grid(tiny, seeds=(0,), methods=["crd"])
    assert set(rows["negatives"]) == {"uniform", "class"} and (rows["status"] == "ok").all()
    assert rows.groupby("negatives")["config_hash"].nunique().tolist() == [1, 1]
    assert rows["config_hash"].nunique() == 2  # two different runs


def test_pair_models_cover_every_student_and_teacher_once():
    from brcd_lib.experiments import plan

    fashion = get_profile("fashion")
    pairs = plan.pair_models(fashion)
    t0, s0 = fashion.teacher.backbone.name, fashion.student.backbone.name
    assert (pairs[0]["teacher"], pairs[0]["student"]) == (t0, s0)  # the profile's own pair first
    students = {p["student"] for p in pairs if p["teacher"] == t0}
    teachers = {p["teacher"] for p in pairs if p["student"] == s0}
    assert len(students) >= 3 and len(teachers) >= 2
    assert len({(p["teacher"], p["student"]) for p in pairs}) == len(pairs)
    heads = {plan.head_of(p["student_model"]) for p in pairs}
    assert heads == {"mlp"}  # the student's head everywhere
    assert pairs[0]["student_model"] == fashion.student  # the main grid's run, same cache key
    assert pairs[0]["teacher_model"] == fashion.teacher
    jobs = plan.pair_jobs(fashion)
    assert len(jobs) == len(pairs) * len(fashion.pair_methods) * len(fashion.seeds)
    assert not plan.pair_models(get_profile("digits")) and not plan.pair_jobs(get_profile("mosaic"))
    # the paper profile names its backbones: the default student first, then the others
    paper = plan.pair_models(get_profile("paper"))
    assert [p["student"] for p in paper if p["axis"] == "student backbone"] == \
        ["efficientnet_b0", "mobilenet_v2", "resnet18"]


def test_pairs_table_and_claim_on_made_up_rows():
    import pandas as pd

    from brcd_lib.reporting.claims import claims_table
    from brcd_lib.reporting.pairs import pairs_paired_differences, pairs_table

    rows = []
    for student, gain in (("a", 0.05), ("b", -0.02)):
        for seed in range(3):
            for method, v in (("none", 0.5), ("kd", 0.6), ("brcd", 0.6 + gain + 0.001 * seed)):
                for paradigm in ("symmetric", "asymmetric"):
                    rows.append({"axis": "student backbone", "teacher_backbone": "t",
                                 "student_backbone": student, "method": method, "seed": seed,
                                 "paradigm": paradigm, "bits": 32, "value": v, "status": "ok"})
    rows = pd.DataFrame(rows)
    cost = pd.DataFrame({"model": ["t", "a", "b"], "params_M": [1.0, 0.01, 0.02],
                         "latency_ms_b1": [2.0, 0.5, 0.7]})
    table = pairs_table(rows, cost)
    assert list(table.columns[:4]) == ["axis", "teacher_backbone", "student_backbone", "method"]
    line = table[(table["student_backbone"] == "b") & (table["method"] == "brcd")].iloc[0]
    assert line["student params (M)"] == 0.02 and line["teacher latency b1 (ms)"] == 2.0
    assert line["seeds"] == 3
    diff = pairs_paired_differences(rows)
    kd = diff[(diff["compared"] == "KD") & (diff["paradigm"] == "symmetric")].set_index("student_backbone")
    assert kd.loc["a", "mean"] == pytest.approx(0.051) and kd.loc["b", "mean"] == pytest.approx(-0.019)
    lines = claims_table({"pairs": rows})
    lines = lines[(lines["claim"] == "across_backbones") & (lines["paradigm"] == "symmetric")]
    verdicts = dict(zip(lines["comparison"], lines["verdict"]))
    assert verdicts["BRCD vs KD (t -> a)"] == "supported"
    assert verdicts["BRCD vs KD (t -> b)"] == "contradicted"
    assert set(lines["n"]) == {3} and set(lines["premise"]) == {"not measured"}  # no teacher rows


@pytest.mark.slow
def test_pair_grid_trains_every_pair(tiny):
    from brcd_lib.config import BackboneConfig

    s_bb = tiny.profile.student.backbone
    profile = dataclasses.replace(
        tiny.profile, pair_methods=("none", "brcd"),
        student_backbones=(s_bb, dataclasses.replace(s_bb, name="small_mobilenet_s", kwargs={})),
        teacher_backbones=(dataclasses.replace(tiny.profile.teacher.backbone, name="resnet_teacher_s",
                                               kwargs={}),))
    assert isinstance(profile.student_backbones[1], BackboneConfig)
    exp = Experiment(profile, cache_dir=tiny.cache_dir, progress=False, workers=1)
    rows = studies.pair_grid(exp, seeds=(0,))
    ok = rows[rows["status"] == "ok"]
    pairs = set(zip(ok["teacher_backbone"], ok["student_backbone"]))
    assert {("resnet_teacher", "small_mobilenet_s"), ("resnet_teacher_s", "small_cnn_s"),
            ("resnet_teacher", "(teacher)"), ("resnet_teacher_s", "(teacher)")} <= pairs
    assert set(ok["method"]) == {"teacher", "none", "brcd"}
    nets = studies.pair_networks(exp)
    assert set(nets) == {"resnet_teacher", "resnet_teacher_s", "small_cnn_s", "small_mobilenet_s"}
    # what notebook 06 shows: the table with each pair's parameters and latency
    from brcd_lib.reporting.efficiency import efficiency_table
    from brcd_lib.reporting.pairs import pairs_paired_differences, pairs_table

    cost = efficiency_table(nets, image_size=exp.profile.data.image_size, batch_sizes=(1,),
                            repeats=3, warmup=1)
    table = pairs_table(rows, cost)
    assert table["student params (M)"].notna().all() and table["teacher latency b1 (ms)"].notna().all()
    assert len(pairs_paired_differences(rows)) > 0

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

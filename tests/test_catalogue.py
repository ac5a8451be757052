"""One catalogue: a distiller registered in one place (here, in this file) appears in every grid
and table; a metric column registered in one place appears in every row, cached runs included."""
from __future__ import annotations

import pytest
import torch

from brcd_lib.distill import (DISTILLERS, FAMILIES, Distiller, distiller_class, get_distiller,
                              list_methods, method_label, register_distiller)
from brcd_lib.experiments import studies
from brcd_lib.experiments.columns import COLUMNS, register_column
from brcd_lib.experiments.experiment import Experiment
from brcd_lib.experiments.profiles import list_profiles, get_profile
from brcd_lib.experiments.rows import ROW_COLUMNS
from brcd_lib.experiments.train import override_profile
from brcd_lib.reporting.tables import mean_std_table

from fakes import tiny_settings


class ToyDistiller(Distiller):
    """Pulls the student's codes towards the teacher's (mean squared difference)."""

    def __init__(self, *, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, batch):
        return self.weight * (batch.student - batch.teacher).pow(2).mean()


@pytest.fixture
def toy():
    register_distiller("toy", label="Toy", family="relation")(ToyDistiller)
    yield "toy"
    DISTILLERS.remove("toy")


def test_every_registered_distiller_declares_its_metadata():
    for name in list_methods():
        cls = distiller_class(name)
        assert cls.family in FAMILIES, name
        assert cls.label and method_label(name) == cls.label
        assert cls.n_views == 2
        assert get_distiller(name).reads_labels is False  # never by default
    assert list_methods()[0] == "none" and list_methods()[-1] == "brcd"
    assert get_distiller("sskd").rotations == 4 and get_distiller("sskd", n_rotations=2).rotations == 2
    assert get_distiller("kd").rotations == 0


def test_a_registered_method_reaches_grids_tables_and_labels(toy):
    methods = list_methods()
    # family order: after the registered relation methods, before the contrastive ones
    assert methods.index("rkd") < methods.index("toy") < methods.index("crd")
    for name in list_profiles():
        profile = get_profile(name)
        if profile.methods is None:
            assert "toy" in profile.grid_methods()
    assert "toy" in studies.table_order()
    assert studies.display_label("toy") == "Toy"
    assert "toy" not in studies.non_students()


def test_registering_a_bad_family_or_a_second_class_fails(toy):
    with pytest.raises(ValueError, match="family must be one of"):
        register_distiller("bad", family="feature")(type("Bad", (Distiller,), {}))
    with pytest.raises(ValueError, match="registered twice"):
        register_distiller("toy", label="Other", family="relation")(type("Other", (Distiller,), {}))


@pytest.mark.slow
def test_toy_method_and_toy_column_appear_in_the_main_grid(toy, tmp_path):
    calls = []

    @register_column("toy_hamming_mean")
    def toy_column(*, query_codes, db_codes, query_labels, db_labels, top_k):
        calls.append(1)
        return float((query_codes[:, None, :] != db_codes[None, :5, :]).float().sum(-1).mean())

    try:
        profile = override_profile(get_profile("smoke"), tiny_settings(student_epochs=2))
        exp = Experiment(profile, cache_dir=str(tmp_path), progress=False)
        rows = studies.main_grid(exp, methods=None, bits_list=[16])
        assert set(ROW_COLUMNS) <= set(rows.columns)
        toy_rows = rows[rows["method"] == "toy"]
        assert len(toy_rows) == 2 and (toy_rows["status"] == "ok").all()
        assert toy_rows["toy_hamming_mean"].notna().all()
        assert rows["toy_hamming_mean"].notna().all()  # students, teacher, LSH and ITQ
        _, display = mean_std_table(rows, order=studies.table_order(),
                                    exclude_from_best=studies.non_students())
        assert "toy" in display.index
        # cached runs get the column too: the second grid only loads runs
        n_calls = len(calls)
        again = studies.main_grid(exp, methods=["none", "toy"], bits_list=[16])
        assert again["toy_hamming_mean"].notna().all() and len(calls) > n_calls
    finally:
        COLUMNS.remove("toy_hamming_mean")
    assert torch.get_num_threads() >= 1

"""The registry of departures from the released code and its generated page docs/departures.md."""
from __future__ import annotations

import dataclasses

import pytest

from brcd_lib.reporting import departures as dep
from brcd_lib.config import DataConfig, TrainConfig
from brcd_lib.data.listfile import list_validation_modes
from brcd_lib.data.transforms import paper_test_transform
from brcd_lib.distill import get_distiller
from brcd_lib.distill.brcd import ablation_variants
from brcd_lib.experiments.profiles import get_profile

PAPER = get_profile("paper")


def test_docs_page_is_generated_from_the_registry():
    """Regenerate with ``python -m brcd_lib.reporting.departures`` when this fails."""
    assert dep.DOC_PATH.read_text() == dep.render_document()


def test_entries_are_complete_and_unique():
    keys = [d.key for d in dep.DEPARTURES]
    assert len(keys) == len(set(keys))
    for d in dep.DEPARTURES:
        assert d.area in dep.AREAS, d.key
        for field in dataclasses.fields(d):
            assert getattr(d, field.name).strip(), (d.key, field.name)
        assert d.effect == dep.NOT_MEASURED or d.effect.startswith(("measured", "none")), d.key
    with pytest.raises(dataclasses.FrozenInstanceError):
        dep.DEPARTURES[0].key = "x"  # type: ignore[misc]


def test_issue_16_items_and_method_md_defects_are_listed():
    keys = {d.key for d in dep.DEPARTURES}
    assert {"mask_rule", "training_draw", "validation_split", "offset_check_unmasked",
            "checkpoints", "ranking_ties", "feature_bank", "contrastive_negatives",
            "early_stopping", "kmeans", "two_view_hashing_losses"} <= keys


def test_area_filter_and_markdown_rows():
    assert all(d.area == "baselines" for d in dep.departures("baselines"))
    with pytest.raises(ValueError, match="valid areas"):
        dep.departures("nowhere")
    table = dep.render_markdown()
    assert table.count("\n") == 2 + len(dep.DEPARTURES)
    rows = table.splitlines()[2:]
    assert all(row.count(" | ") == 7 for row in rows)  # no unescaped pipe inside a cell


# every switch the registry names exists and does what it says
SWITCH_CHECKS = {
    "mask_rule": lambda: (get_distiller("brcd", mask_rule="upstream").mask_rule == "upstream"
                          and "upstream_mask" in ablation_variants()),
    "cluster_switches": lambda: get_distiller("brcd", use_cluster=True, use_mask=True) is not None,
    "kmeans": lambda: get_distiller("brcd", n_init=30).n_init == 30 == PAPER.brcd["n_init"],
    "validation_split": lambda: "upstream" in list_validation_modes(),
    "cifar10_test_transform": lambda: (
        DataConfig(test_transform_options={"center_crop": False}) is not None
        and PAPER.data.test_transform_options == {"center_crop": False}
        and paper_test_transform(center_crop=False) is not None),
    "early_stopping": lambda: (TrainConfig(stop_when="exceeds").stop_when == "exceeds"
                               == PAPER.student_train.stop_when == PAPER.teacher_train.stop_when),
    "feature_bank": lambda: TrainConfig(feature_views=0).feature_views == 0 == PAPER.student_train.feature_views,
    "online_views_shared": lambda: (TrainConfig(bank_seed="run").bank_seed == "run"
                                    and PAPER.student_train.bank_seed == "split"),
    "contrastive_negatives": lambda: all(get_distiller(n, negatives="class").reads_labels
                                         for n in ("crd", "crcd", "packd")),
    "sp_on_codes": lambda: get_distiller("sp", variant="upstream").variant == "upstream",
    "crcd_self_anchor": lambda: get_distiller("crcd", self_anchor=True).self_anchor,
    "packd_views": lambda: get_distiller("packd", views=1).views == 1,
    "cpu_backbones": lambda: (PAPER.teacher.backbone.name, PAPER.student.backbone.name)
    == ("vit_b_16", "efficientnet_b0"),
    "student_epoch_cap": lambda: PAPER.student_train.epochs == 400 == TrainConfig(epochs=400).epochs,
    "undistilled_head": lambda: (dataclasses.replace(PAPER, undistilled_head="release")
                                 .student_model("none").head == "linear"),
}


def test_every_named_switch_exists():
    with_switch = {d.key for d in dep.DEPARTURES if not d.switch.startswith("none")}
    assert with_switch == set(SWITCH_CHECKS)
    for key, check in SWITCH_CHECKS.items():
        assert check(), key


def test_distiller_table_reads_the_registry():
    table = dep.render_distiller_table()
    assert "| `crd` | CRD | contrastive | no | no | yes |" in table
    assert "| `sskd` | SSKD | relation | yes | no | no option |" in table

"""benchmarks/bench_latency.py derives its groups from the profiles: the fashion profile's
teacher and student with their BackboneConfig.kwargs at the profile's image size, and the paper
profile's teacher and student backbones."""
from __future__ import annotations

import pytest

from benchmarks import bench_latency
from brcd_lib.experiments.profiles import get_profile


def test_cpu_group_is_the_fashion_profile():
    fashion = get_profile("fashion")
    g = bench_latency.get_group("cpu")
    assert g.profile == "fashion" and g.image_size == fashion.data.image_size
    assert g.teacher == fashion.teacher and g.students == (fashion.student,)


def test_paper_group_is_the_paper_profile():
    paper = get_profile("paper")
    g = bench_latency.get_group("paper")
    assert g.image_size == paper.data.image_size == 224
    assert g.teacher.backbone.name == "vit_b_16"
    assert [m.backbone.name for m in g.students] == ["efficientnet_b0", "mobilenet_v2",
                                                     "resnet18"]
    with pytest.raises(ValueError, match="valid groups: cpu, paper"):
        bench_latency.get_group("gpu")


def test_cpu_nets_are_built_with_the_profile_kwargs():
    fashion = get_profile("fashion")
    nets = bench_latency.build_nets("cpu", code_length=16)
    teacher, student = nets.values()
    assert teacher.backbone.spec == {"name": fashion.teacher.backbone.name,
                                     "kwargs": fashion.teacher.backbone.kwargs}
    assert student.backbone.spec == {"name": fashion.student.backbone.name,
                                     "kwargs": fashion.student.backbone.kwargs}
    assert list(nets)[1] == "small_cnn_s(width=8)"
    assert student.head_name  # the family's default head, hidden width from the config
    hidden = [m.out_features for m in student.head.modules() if hasattr(m, "out_features")]
    assert fashion.student.head_hidden in hidden


def test_measure_group_rows(monkeypatch):
    rows = bench_latency.measure_group("cpu", code_length=16, batch_sizes=[2], warmup=1,
                                       rounds=2, notes="test")
    assert [r["role"] for r in rows] == ["teacher", "student"]
    for r in rows:
        assert r["image_size"] == 28 and r["profile"] == "fashion"
        assert r["throughput_img_s"] == pytest.approx(2 / (r["latency_ms"] / 1e3))
    assert rows[0]["latency_speedup_vs_teacher"] == 1.0

"""The paper profile's grid counted without its data, and the cached-vs-uncached arithmetic.

* :func:`protocol_sizes` -- the split sizes of the profile's dataset from the dataset's protocol
  defaults (``brcd_lib.data.dataset_parameters``, overridden by ``DataConfig.protocol``) and its
  registered class names; only CIFAR-10 (the paper profile's dataset) is supported, whose
  database is the whole training set (``cifar10.CIFAR10_TRAIN_SIZE``);
* :func:`student_runs` -- the student runs of ``preflight.run_plan`` (deduplicated as the run
  cache does);
* :func:`distinct_banks` -- the view banks those runs would read with ``views`` views: one per
  (backbone, views, rotation), the rule of ``preflight._workload`` (banks are shared by every run
  with the same frozen backbone; SSKD reads one per rotation), each run's own teacher backbone;
* :func:`forward_passes` -- backbone forward passes of the whole notebook sequence,
  ``preflight._workload`` itself called on stand-in splits of :func:`protocol_sizes` with every
  backbone of the plan (upper bound: every epoch runs, no early stopping);
* :func:`one_run_totals`, :func:`grid_totals`, :func:`bank_build_seconds`,
  :func:`break_even_epochs` -- end-to-end seconds of uncached vs cached training (bank build
  included), shared by ``bench_cache`` and ``bench_gpu_estimate``.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Iterable, Mapping

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SETS = ("train", "val", "query", "database")


def _profile(profile):
    from brcd_lib.experiments.profiles import Profile, get_profile

    return profile if isinstance(profile, Profile) else get_profile(profile)


def protocol_sizes(profile="paper") -> dict[str, int]:
    """{set: number of images} of the profile's dataset under its protocol, without the data."""
    from brcd_lib.data.cifar10 import CIFAR10_TRAIN_SIZE
    from brcd_lib.data.registry import class_names, dataset_parameters

    p = _profile(profile)
    name = p.data.name
    if name != "cifar10":
        raise ValueError(f"protocol_sizes knows the split sizes of cifar10 only (the paper "
                         f"profile's dataset); profile {p.name!r} uses {name!r}, whose sizes need "
                         "its data (brcd_lib.experiments.preflight.check)")
    params = {**dataset_parameters(name), **dict(p.data.protocol)}
    n_classes = len(class_names(name))
    return {"train": int(params["n_train_per_class"]) * n_classes, "val": int(params["n_val"]),
            "query": int(params["n_query"]), "database": CIFAR10_TRAIN_SIZE}


def sizes_note(sizes: Mapping[str, int], profile="paper") -> str:
    """Where the split sizes come from, for the notes of a table."""
    p = _profile(profile)
    return (f"{p.data.name} split sizes from the dataset's protocol defaults (no data read): "
            + ", ".join(f"{k} {sizes[k]:,}" for k in SETS))


def teacher_backbone(run: Mapping) -> str:
    """The teacher backbone of a student run of ``run_plan`` (its ``teacher`` entry)."""
    import json

    if run.get("teacher_backbone"):  # run_plan names it since the backbone pairs (#14)
        return str(run["teacher_backbone"])
    teacher = run.get("teacher")
    try:
        return str(json.loads(teacher)["backbone"] if isinstance(teacher, str) else
                   teacher["backbone"])
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"student run without a readable teacher backbone: {run!r}") from None


def grid_backbones(profile="paper", plan: Mapping | None = None) -> list[str]:
    """The backbones whose forward passes are counted: the profile's teacher and student and
    its student backbones (``preflight.check``'s list, in its order), then every other backbone
    a run of ``plan`` uses."""
    p = _profile(profile)
    student = p.student.backbone.name
    names = [p.teacher.backbone.name, student,
             *[b if isinstance(b, str) else b.name for b in p.student_backbones]]
    if plan is not None:
        names += [t["backbone"] for t in plan.get("teachers", [])]
        for run in student_runs(plan):
            names += [run["backbone"], teacher_backbone(run)]
    return list(dict.fromkeys(names))


def student_runs(plan: Mapping) -> list[dict]:
    """The student runs of a ``run_plan`` (each a dict with ``backbone`` and ``rotations``)."""
    runs = plan.get("students") if isinstance(plan, Mapping) else None
    if runs is None:
        raise ValueError("plan must be the dict of brcd_lib.experiments.preflight.run_plan "
                         "(with a 'students' list)")
    return list(runs)


def distinct_banks(profile, plan: Mapping, views: int) -> set[tuple[str, int, int]]:
    """(backbone, views, rotation) of every view bank the plan's student runs read with a bank of
    ``views`` views: each run's student backbone and its teacher's backbone, for each rotation its
    distiller reads (at least rotation 0) -- ``preflight._workload``'s rule."""
    if isinstance(views, bool) or not isinstance(views, int) or views < 2:
        raise ValueError(f"views must be an integer >= 2 (a bank draws two different views per "
                         f"image), got {views!r}")
    _profile(profile)  # a clear error for an unknown profile
    banks: set[tuple[str, int, int]] = set()
    for run in student_runs(plan):
        teacher = teacher_backbone(run)
        for r in range(max(1, int(run["rotations"]))):
            banks |= {(run["backbone"], views, r), (teacher, views, r)}
    return banks


def workload(profile="paper", plan: Mapping | None = None,
             sizes: Mapping[str, int] | None = None) -> dict:
    """``preflight._workload`` of the profile's notebook sequence on stand-in splits of ``sizes``
    (default :func:`protocol_sizes`) with every backbone of :func:`grid_backbones` (each student
    run's passes go to its own teacher): forward passes as the runs go and per run alone,
    augmented views, head steps, online banks' bytes."""
    from types import SimpleNamespace

    from brcd_lib.experiments.preflight import _workload, run_plan

    p = _profile(profile)
    plan = run_plan(p) if plan is None else plan
    sizes = protocol_sizes(p) if sizes is None else sizes
    missing = [s for s in SETS if s not in sizes]
    if missing:
        raise ValueError(f"sizes lacks the set(s) {missing}; give all of {list(SETS)}")
    splits = SimpleNamespace(**{s: range(int(sizes[s])) for s in SETS})
    return _workload(p, plan, splits, grid_backbones(p, plan))


def forward_passes(profile="paper", plan: Mapping | None = None,
                   sizes: Mapping[str, int] | None = None) -> dict[str, int]:
    """{backbone: forward passes} of the profile's notebook sequence (:func:`workload`)."""
    return dict(workload(profile, plan, sizes)["forward_passes"])


# ---------------------------------------------------------------------------------------------
# end-to-end arithmetic
# ---------------------------------------------------------------------------------------------
def _seconds(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def bank_build_seconds(banks: Iterable[tuple[str, int, int]], *, n_train: int,
                       seconds_per_view_image: Mapping[str, float]) -> float:
    """Seconds to build ``banks``: views x ``n_train`` images x the backbone's seconds per
    augmented image (augmentation + forward), summed over the banks."""
    n_train = _count("n_train", n_train)
    total = 0.0
    for backbone, views, _rotation in banks:
        if backbone not in seconds_per_view_image:
            raise ValueError(f"no seconds per image for backbone {backbone!r} (have "
                             f"{sorted(seconds_per_view_image)})")
        total += _count("views", views, 2) * n_train * _seconds(
            f"seconds per image of {backbone}", seconds_per_view_image[backbone])
    return total


def one_run_totals(*, epochs: int, uncached_epoch_s: float, cached_epoch_s: float,
                   bank_build_s: float) -> dict[str, float]:
    """One run of ``epochs`` epochs: uncached = E x uncached epoch; cached = bank build + E x
    cached epoch; ratio = uncached / cached."""
    e = _count("epochs", epochs)
    u = e * _seconds("uncached_epoch_s", uncached_epoch_s)
    c = _seconds("bank_build_s", bank_build_s) + e * _seconds("cached_epoch_s", cached_epoch_s)
    return {"uncached_s": u, "cached_s": c, "ratio": u / c if c > 0 else math.inf}


def grid_totals(*, runs: int, epochs: int, uncached_epoch_s: float, cached_epoch_s: float,
                banks_build_s: float) -> dict[str, float]:
    """``runs`` runs of ``epochs`` epochs: uncached = N x E x uncached epoch; cached = the build
    of the distinct banks (once, shared) + N x E x cached epoch; ratio = uncached / cached."""
    n = _count("runs", runs)
    e = _count("epochs", epochs)
    u = n * e * _seconds("uncached_epoch_s", uncached_epoch_s)
    c = _seconds("banks_build_s", banks_build_s) + n * e * _seconds("cached_epoch_s",
                                                                    cached_epoch_s)
    return {"uncached_s": u, "cached_s": c, "ratio": u / c if c > 0 else math.inf}


def break_even_epochs(*, bank_build_s: float, uncached_epoch_s: float,
                      cached_epoch_s: float) -> float:
    """Epochs after which bank build + cached epochs cost less than uncached epochs (inf when
    a cached epoch is not cheaper)."""
    saved = _seconds("uncached_epoch_s", uncached_epoch_s) - _seconds("cached_epoch_s",
                                                                      cached_epoch_s)
    return _seconds("bank_build_s", bank_build_s) / saved if saved > 0 else math.inf

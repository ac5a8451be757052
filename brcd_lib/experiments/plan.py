"""The training runs of the paper's grids, derived from a profile alone.

Each grid of :mod:`brcd_lib.experiments.studies` trains the jobs listed here, and the preflight
(:func:`brcd_lib.experiments.preflight.run_plan`) counts the same lists, so the estimate of a run
and the run itself cannot drift apart. A job is the keyword arguments of
:func:`brcd_lib.experiments.studies.student_rows` plus the extra columns its rows carry.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

from ..config import BackboneConfig, ModelConfig, config_hash
from ..distill import distiller_class
from ..models import backbone_info, default_head
from ..distill.brcd import ablation_variants
from .profiles import Profile

__all__ = ["Job", "study_bits", "distill_kwargs", "main_jobs", "ablation_jobs", "sensitivity_jobs",
           "generality_models", "generality_jobs", "axis_backbone", "pair_models", "pair_jobs",
           "teacher_seed_jobs", "upstream_jobs", "ladder_models", "ladder_jobs",
           "analysis_jobs", "all_jobs"]


@dataclass(frozen=True)
class Job:
    """One student run of a grid: ``kwargs`` for ``studies.student_rows`` (bits, method, seed,
    variant, distill_kwargs, model, teacher_model, teacher_seed) and ``fields``, extra columns
    of its rows (axis, setting, parameter, negatives)."""

    kwargs: dict[str, Any]
    fields: dict[str, Any] = field(default_factory=dict)


def study_bits(profile: Profile) -> int:
    """The code length of the single-length studies (ablations, sensitivity, generality, the
    teacher-seed and upstream-baselines studies, notebooks 03, 07, 09, 10):
    ``Profile.sensitivity_bits`` when the profile trains it, else its longest code length."""
    bits = profile.sensitivity_bits
    return bits if bits in profile.bits else profile.bits[-1]


def distill_kwargs(profile: Profile, method: str, kwargs: dict | None = None) -> dict:
    """A student run's distiller settings: the profile's overrides of ``method`` (and BRCD's
    profile settings), then ``kwargs``; what is left out takes the distiller's defaults."""
    merged = {**profile.method_kwargs.get(method, {}), **(kwargs or {})}
    return {**profile.brcd, **merged} if method == "brcd" else merged


def main_jobs(profile: Profile, *, methods=None, seeds=None, bits_list=None) -> list[Job]:
    """Notebook 04's main grid: every method at every code length with its seeds
    (:meth:`Profile.method_seeds`) unless ``seeds`` is given."""
    methods = methods or profile.grid_methods()
    return [Job(dict(bits=b, method=m, seed=s))
            for b in (bits_list or profile.bits) for m in methods
            for s in (seeds or profile.method_seeds(m))]


def ablation_jobs(profile: Profile, *, seeds=None, bits_list=None) -> list[Job]:
    """Notebook 05: BRCD and its ablations at ``Profile.ablation_bits`` (default: the study
    code length) with the auxiliary seeds."""
    seeds = seeds or profile.aux_seeds or profile.seeds
    bits_list = bits_list or profile.ablation_bits or (study_bits(profile),)
    return [Job(dict(bits=b, method="brcd", seed=s, variant=v, distill_kwargs=kw))
            for b in bits_list for v, kw in ablation_variants().items() for s in seeds]


def sensitivity_jobs(profile: Profile, *, seeds=None, bits: int | None = None) -> list[Job]:
    """Notebook 08: BRCD's alpha, delta (margin) and K, one at a time."""
    seeds = seeds or profile.aux_seeds or profile.seeds
    bits = bits or study_bits(profile)
    grid = ([("alpha", a, {"alpha": a}) for a in profile.alphas]
            + [("margin", m, {"margin": m}) for m in profile.margins]
            + [("n_clusters", k, {"n_clusters": k}) for k in profile.cluster_counts])
    return [Job(dict(bits=bits, method="brcd", seed=s, variant=f"{p}={v}", distill_kwargs=kw),
                dict(parameter=p, setting=v))
            for p, v, kw in grid for s in seeds]


def generality_models(profile: Profile) -> list[tuple[str, ModelConfig, ModelConfig]]:
    """(objective, teacher model, student model) of the hashing-model axis of notebook 06:
    teacher and student trained with the same objective."""
    return [(o, dataclasses.replace(profile.teacher, objective=o),
             dataclasses.replace(profile.student, objective=o)) for o in profile.objectives]


def generality_jobs(profile: Profile, *, seeds=None, bits: int | None = None) -> list[Job]:
    """Notebook 06: the generality methods across hashing objectives (backbones:
    :func:`pair_jobs`)."""
    seeds = seeds or profile.generality_seeds or profile.seeds
    bits = bits or study_bits(profile)
    jobs = [Job(dict(bits=bits, method=method, seed=seed, variant=f"{method}/{objective}",
                     model=student, teacher_model=teacher),
                dict(axis="hashing model", setting=objective))
            for objective, teacher, student in generality_models(profile)
            for method in profile.generality_methods for seed in seeds]
    return jobs


def axis_backbone(default: BackboneConfig, entry: str | BackboneConfig) -> BackboneConfig:
    """An entry of ``Profile.student_backbones`` / ``teacher_backbones``: a
    :class:`BackboneConfig` as given, or a backbone name (the profile's backbone settings under
    that name, with the backbone's own default size)."""
    if isinstance(entry, BackboneConfig):
        return entry
    if entry == default.name:
        return default
    return dataclasses.replace(default, name=entry, kwargs={})


def head_of(model: ModelConfig, backbone: str | None = None) -> str:
    """The head ``model`` builds on ``backbone`` (default: its own backbone's name): its
    ``head``, else the backbone family's default (:func:`brcd_lib.models.default_head`)."""
    return model.head or default_head(backbone_info(backbone or model.backbone.name)["family"])


def pair_models(profile: Profile) -> list[dict[str, Any]]:
    """The backbone-pairs study (notebook 06): every student backbone of the profile under its
    teacher, then every other teacher backbone over its student; each pair once, the profile's
    own pair first. Every student keeps the profile student's head (the family default of the
    profile's student, e.g. the MLP head), every teacher the profile teacher's.
    Returns dicts ``axis``, ``teacher``, ``student`` (backbone names) and the two ModelConfigs."""
    t0, s0 = profile.teacher, profile.student

    def with_head(model, backbone):
        # the profile model's head, spelled out only where the backbone's family default
        # differs, so the profile's own pair is the very run of the main grid (same cache key)
        head = head_of(model)
        return dataclasses.replace(model, backbone=backbone, head=(
            model.head if head_of(model, backbone.name) == head else head))

    def student(entry):
        return with_head(s0, axis_backbone(s0.backbone, entry))

    def teacher(entry):
        return with_head(t0, axis_backbone(t0.backbone, entry))

    if not profile.student_backbones and not profile.teacher_backbones:
        return []
    pairs, seen = [], set()
    candidates = ([("student backbone", t0.backbone, e) for e in
                   (s0.backbone, *profile.student_backbones)]
                  + [("teacher backbone", e, s0.backbone) for e in profile.teacher_backbones])
    for axis, t_entry, s_entry in candidates:
        t_model, s_model = teacher(t_entry), student(s_entry)
        key = config_hash(t_model.backbone, s_model.backbone)
        if key in seen:
            continue
        seen.add(key)
        pairs.append({"axis": axis, "teacher": t_model.backbone.name,
                      "student": s_model.backbone.name, "teacher_model": t_model,
                      "student_model": s_model})
    return pairs


def pair_jobs(profile: Profile, *, seeds=None, bits: int | None = None) -> list[Job]:
    """Notebook 06's backbone pairs: ``Profile.pair_methods`` for every pair of
    :func:`pair_models`, with the generality seeds, at the study code length."""
    seeds = seeds or profile.generality_seeds or profile.seeds
    bits = bits or study_bits(profile)
    return [Job(dict(bits=bits, method=method, seed=seed,
                     variant=f"{method}/{p['teacher']}/{p['student']}",
                     model=p["student_model"], teacher_model=p["teacher_model"]),
                dict(axis=p["axis"], teacher_backbone=p["teacher"], student_backbone=p["student"]))
            for p in pair_models(profile) for method in profile.pair_methods for seed in seeds]


def ladder_models(profile: Profile) -> list[dict[str, Any]]:
    """The capacity ladder (notebook 06): the profile's student head on each of
    ``Profile.ladder_backbones`` (student backbones of increasing strength, weakest first), all
    under the profile's one teacher. Returns dicts ``rung`` (0, 1, ...), ``student`` (a label:
    the backbone name and its width) and ``student_model``; a rung equal to the profile's own
    student is that very model (its runs are the main grid's)."""
    out = []
    for rung, bb in enumerate(profile.ladder_backbones):
        model = (profile.student if bb == profile.student.backbone
                 else dataclasses.replace(profile.student, backbone=bb))
        out.append({"rung": rung, "student": backbone_label(bb), "student_model": model})
    return out


def backbone_label(bb: BackboneConfig) -> str:
    """``small_cnn_s (width 8)``: a backbone's name and the size keyword that tells rungs apart."""
    size = ", ".join(f"{k} {v}" for k, v in sorted(bb.kwargs.items()) if k in ("width", "depth"))
    return f"{bb.name} ({size})" if size else bb.name


def ladder_jobs(profile: Profile, *, seeds=None, bits: int | None = None) -> list[Job]:
    """Notebook 06's capacity ladder: ``Profile.ladder_methods`` on every rung of
    :func:`ladder_models` with ``Profile.ladder_seeds`` (default: the focus seeds), at the study
    code length."""
    seeds = seeds or profile.ladder_seeds or profile.focus_seeds or profile.seeds
    bits = bits or study_bits(profile)
    return [Job(dict(bits=bits, method=method, seed=seed, model=r["student_model"]),
                dict(rung=r["rung"], student_backbone=r["student"]))
            for r in ladder_models(profile) for method in profile.ladder_methods for seed in seeds]


def teacher_seed_jobs(profile: Profile, *, teacher_seeds=None, seeds=None, bits: int | None = None,
                      methods=("none", "kd", "brcd")) -> list[Job]:
    """Notebook 04: the no-KD / KD / BRCD comparison under each of ``Profile.teacher_seeds``."""
    teacher_seeds = tuple(profile.teacher_seeds if teacher_seeds is None else teacher_seeds)
    bits = bits or study_bits(profile)
    return [Job(dict(bits=bits, method=m, seed=s, teacher_seed=t))
            for t in teacher_seeds for m in methods for s in (seeds or profile.seeds)]


def upstream_jobs(profile: Profile, *, seeds=None, bits: int | None = None,
                  methods=None) -> list[Job]:
    """Notebook 04: the baselines with a ``negatives`` option, with uniform (default) and
    class-based (released) negatives."""
    methods = methods or [m for m in profile.grid_methods()
                          if "negatives" in inspect.signature(distiller_class(m)).parameters]
    bits = bits or study_bits(profile)
    return [Job(dict(bits=bits, method=m, seed=s, variant=f"{m}/{neg}",
                     distill_kwargs={} if neg == "uniform" else {"negatives": "class"}),
                dict(negatives=neg))
            for m in methods for neg in ("uniform", "class") for s in (seeds or profile.seeds)]


def analysis_jobs(profile: Profile) -> list[Job]:
    """Notebooks 07, 09 and 10: the no-KD and BRCD students of the first seed at the study code
    length (runs the main grid already trained)."""
    return [Job(dict(bits=study_bits(profile), method=m, seed=profile.seeds[0]))
            for m in ("none", "brcd")]


def all_jobs(profile: Profile) -> dict[str, list[Job]]:
    """Every grid's jobs, by notebook study."""
    return {"main": main_jobs(profile), "teacher_seeds": teacher_seed_jobs(profile),
            "upstream_baselines": upstream_jobs(profile), "ablations": ablation_jobs(profile),
            "generality": generality_jobs(profile), "pairs": pair_jobs(profile),
            "ladder": ladder_jobs(profile),
            "sensitivity": sensitivity_jobs(profile),
            "analysis": analysis_jobs(profile)}

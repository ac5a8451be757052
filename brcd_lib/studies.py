"""The paper's result grids as functions of an :class:`~brcd_lib.pipeline.Experiment`.

Each returns long-format rows (a DataFrame) with provenance; tables are pivots of them
(:func:`brcd_lib.results.mean_std_table`). Finished runs come from the run cache, so calling a
study twice costs only the evaluation.
"""
from __future__ import annotations

import dataclasses
import logging

import pandas as pd
from tqdm.auto import tqdm

from .distill.brcd import ablation_variants
from .engine import TrainingDiverged
from .parallel import prefetch_students
from .pipeline import DegenerateTeacher, Experiment, ShallowNotAvailable

log = logging.getLogger(__name__)

METHOD_LABELS = {"teacher": "Teacher", "none": "Student (no KD)", "kd": "KD", "sp": "SP",
                 "pkt": "PKT", "rkd": "RKD", "crd": "CRD", "sskd": "SSKD", "crcd": "CRCD",
                 "packd": "PACKD", "brcd": "BRCD", "LSH": "LSH", "ITQ": "ITQ"}


def _failed_rows(exp: Experiment, *, method: str, variant: str, bits: int, seed: int,
                 error: Exception) -> list[dict]:
    """A run that diverged (or could not start) is recorded as such, without a number."""
    log.warning("%s", error)
    status = "diverged" if isinstance(error, TrainingDiverged) else "not run"
    return [{"dataset": exp.profile.data.name, "profile": exp.profile.name, "method": method,
             "variant": variant, "bits": bits, "paradigm": p, "seed": seed, "metric": "mAP",
             "value": float("nan"), "status": f"{status}: {error}"}
            for p in ("symmetric", "asymmetric")]


def student_rows(exp: Experiment, *, bits: int, method: str, seed: int, variant: str | None = None,
                 **kwargs) -> list[dict]:
    try:
        run = exp.student(bits, method=method, seed=seed, label=variant, **kwargs)
    except (TrainingDiverged, DegenerateTeacher) as err:
        return _failed_rows(exp, method=method, variant=variant or method, bits=bits, seed=seed,
                              error=err)
    rows = exp.rows(run, method=method, variant=variant)
    for r in rows:
        r["status"] = "ok"
        r.update({f"extra_{k}": v for k, v in run.record.get("extra", {}).items()})
    return rows


def reference_rows(exp: Experiment, bits_list=None) -> pd.DataFrame:
    """LSH and ITQ on raw pixels, and the teacher, for every code length."""
    rows = []
    for bits in bits_list or exp.profile.bits:
        for name in ("lsh", "itq"):
            try:
                rows += exp.shallow_rows(bits, name)
            except ShallowNotAvailable as err:
                log.warning("%s", err)
        teacher = exp.teacher(bits)
        rows += exp.rows(teacher, method="teacher")
    frame = pd.DataFrame(rows)
    frame["status"] = "ok"
    return frame


def main_grid(exp: Experiment, *, methods=None, seeds=None, bits_list=None) -> pd.DataFrame:
    """Teacher, LSH/ITQ, the student without KD, the eight baselines and BRCD."""
    methods = methods or exp.profile.methods
    seeds = seeds or exp.profile.seeds
    bits_list = bits_list or exp.profile.bits
    rows = [reference_rows(exp, bits_list)]
    jobs = [dict(bits=b, method=m, seed=s) for b in bits_list for m in methods for s in seeds]
    prefetch_students(exp, jobs, desc="main grid")
    for job in tqdm(jobs, desc="main grid", disable=not exp.progress):
        rows.append(pd.DataFrame(student_rows(exp, **job)))
    return pd.concat(rows, ignore_index=True)


def ablation_grid(exp: Experiment, *, seeds=None, bits_list=None) -> pd.DataFrame:
    """BRCD and its ablations: no mask, no cluster handling, alpha = 1, alpha = 0, upstream mask."""
    seeds = seeds or exp.profile.aux_seeds or exp.profile.seeds
    bits_list = bits_list or exp.profile.bits
    rows = []
    jobs = [dict(bits=b, method="brcd", seed=s, variant=v, distill_kwargs=kw)
            for b in bits_list for v, kw in ablation_variants().items() for s in seeds]
    prefetch_students(exp, jobs, desc="ablations")
    for job in tqdm(jobs, desc="ablations", disable=not exp.progress):
        rows += student_rows(exp, **job)
    return pd.DataFrame(rows)


def sensitivity_grid(exp: Experiment, *, seeds=None, bits: int | None = None) -> pd.DataFrame:
    """BRCD's mAP against alpha, delta (margin) and K, one parameter at a time."""
    seeds = seeds or exp.profile.aux_seeds or exp.profile.seeds
    bits = bits or exp.profile.sensitivity_bits
    if bits not in exp.profile.bits:
        bits = exp.profile.bits[-1]
    grid = ([("alpha", a, {"alpha": a}) for a in exp.profile.alphas]
            + [("margin", m, {"margin": m}) for m in exp.profile.margins]
            + [("n_clusters", k, {"n_clusters": k}) for k in exp.profile.cluster_counts])
    rows = []
    jobs = [(p, v, dict(bits=bits, method="brcd", seed=s, variant=f"{p}={v}", distill_kwargs=kw))
            for p, v, kw in grid for s in seeds]
    prefetch_students(exp, [job for _, _, job in jobs], desc="sensitivity")
    for param, value, job in tqdm(jobs, desc="sensitivity", disable=not exp.progress):
        for r in student_rows(exp, **job):
            r.update(parameter=param, setting=value)
            rows.append(r)
    return pd.DataFrame(rows)


def generality_grid(exp: Experiment, *, seeds=None, bits: int | None = None) -> pd.DataFrame:
    """BRCD and the strongest baselines across hashing objectives (teacher and student trained
    with the same objective) and, where the profile lists them, across student backbones."""
    seeds = seeds or exp.profile.aux_seeds or exp.profile.seeds
    bits = bits or exp.profile.sensitivity_bits
    if bits not in exp.profile.bits:
        bits = exp.profile.bits[-1]
    rows, jobs = [], []  # jobs: (axis, setting, keyword arguments of student_rows)
    for objective in exp.profile.objectives:
        teacher_model = dataclasses.replace(exp.profile.teacher, objective=objective)
        student_model = dataclasses.replace(exp.profile.student, objective=objective)
        teacher = exp.teacher(bits, model=teacher_model)
        for r in exp.rows(teacher, method="teacher"):
            r.update(axis="hashing model", setting=objective, status="ok")
            rows.append(r)
        jobs += [("hashing model", objective,
                  dict(bits=bits, method=method, seed=seed, variant=f"{method}/{objective}",
                       model=student_model, teacher_model=teacher_model))
                 for method in exp.profile.generality_methods for seed in seeds]
    for backbone in exp.profile.student_backbones:
        student_model = dataclasses.replace(
            exp.profile.student, backbone=dataclasses.replace(exp.profile.student.backbone, name=backbone))
        jobs += [("student backbone", backbone,
                  dict(bits=bits, method=method, seed=seed, variant=f"{method}/{backbone}",
                       model=student_model))
                 for method in exp.profile.generality_methods for seed in seeds]
    prefetch_students(exp, [job for _, _, job in jobs], desc="generality")
    for axis, setting, job in tqdm(jobs, desc="generality", disable=not exp.progress):
        for r in student_rows(exp, **job):
            r.update(axis=axis, setting=setting)
            rows.append(r)
    return pd.DataFrame(rows)

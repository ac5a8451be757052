"""The paper's result grids as functions of an :class:`~brcd_lib.experiments.experiment.Experiment`.

Each returns long-format rows (a DataFrame, schema :mod:`brcd_lib.experiments.rows`) with
provenance; tables are pivots of them (:func:`brcd_lib.reporting.tables.mean_std_table`). Finished
runs come from the run cache, so calling a study twice costs only the evaluation. With several
workers (:mod:`brcd_lib.training.parallel`), one per GPU or on a Dask cluster
(:mod:`brcd_lib.training.executors`) a grid first trains its unfinished runs there
(:func:`prefetch_students`), then its serial pass loads them.
"""
from __future__ import annotations

import inspect
import logging

import pandas as pd
import torch
from ..training.progress import tqdm

from ..config import config_hash
from ..distill import distiller_class, get_distiller, list_methods, method_label
from ..distill.brcd import ablation_variants
from ..models.shallow import SHALLOW_HASHERS
from ..provenance import provenance
from ..training.engine import TrainingDiverged
from ..training.executors import Outcome, run_jobs
from ..training.parallel import resolve_workers
from ..training.progress import run_label
from . import plan
from . import rows as rowlib
from .columns import COLUMNS
from .experiment import (DegenerateTeacher, Experiment, ShallowNotAvailable, collapse_summary,
                         held_student_collapses)
from .runstore import TrainedRun, code_fingerprint

log = logging.getLogger(__name__)

def display_label(method: str) -> str:
    """The name a table shows for a row's ``method``: a distiller's registered label, "Teacher",
    or a shallow hasher's label (LSH, ITQ)."""
    if method == "teacher":
        return "Teacher"
    return method_label(method)


def table_order() -> list[str]:
    """Row order of the main table: shallow hashers, the teacher, then every registered
    distiller in family order (the student without distillation first, BRCD last)."""
    shallow = [e.meta["label"] for e in SHALLOW_HASHERS.entries()]
    return shallow + ["teacher"] + list_methods()


def non_students() -> list[str]:
    """``method`` values that are not students (not candidates for "best student")."""
    return [e.meta["label"] for e in SHALLOW_HASHERS.entries()] + ["teacher"]


def column_values(exp: Experiment, pairs: dict) -> dict[str, dict[str, float]]:
    """paradigm -> {column: value} of the registered metric columns, for ``pairs``: paradigm ->
    (query codes, database codes). Empty when no column is registered."""
    if not len(COLUMNS):
        return {}
    q_labels, db_labels, top_k = exp.labels("query"), exp.labels("database"), exp.splits.top_k
    out = {}
    for paradigm, (q, db) in pairs.items():
        q, db = torch.as_tensor(q, dtype=torch.float32), torch.as_tensor(db, dtype=torch.float32)
        out[paradigm] = {e.name: float(e.factory(query_codes=q, db_codes=db, query_labels=q_labels,
                                                 db_labels=db_labels, top_k=top_k))
                         for e in COLUMNS.entries()}
    return out


def run_code_pairs(exp: Experiment, run: TrainedRun, teacher_db=None) -> dict:
    """paradigm -> (query codes, database codes) of a run: its own database codes in the
    symmetric paradigm, the teacher's (``teacher_db``) in the asymmetric one."""
    pairs = {}
    for paradigm, net in run.nets.items():
        own_db = paradigm == "symmetric" or teacher_db is None
        pairs[paradigm] = (exp.codes(net, "query"),
                           exp.codes(net, "database") if own_db else teacher_db)
    return pairs


def student_rows(exp: Experiment, *, bits: int, method: str, seed: int, variant: str | None = None,
                 **kwargs) -> list[dict]:
    """Rows of one student run (trained or loaded); a run that diverged, or whose teacher
    collapsed, gives rows with a NaN value and the reason in ``status``."""
    try:
        run = exp.student(bits, method=method, seed=seed, label=variant, **kwargs)
    except (TrainingDiverged, DegenerateTeacher) as err:
        log.warning("%s", err)
        status = "diverged" if isinstance(err, TrainingDiverged) else "not run"
        teacher_seed = kwargs.get("teacher_seed")
        return rowlib.failed_rows(dataset=exp.profile.data.name, profile=exp.profile.name,
                                  method=method, variant=variant, bits=bits, seed=seed,
                                  top_k=exp.splits.top_k, status=f"{status}: {err}",
                                  teacher_seed=exp.profile.teacher_seed if teacher_seed is None
                                  else teacher_seed)
    columns = {}
    if len(COLUMNS):
        teacher = exp.teacher(bits, model=kwargs.get("teacher_model"),
                              seed=kwargs.get("teacher_seed"))
        columns = column_values(exp, run_code_pairs(exp, run, exp.codes(teacher.net, "database")))
    return rowlib.run_rows(run.record, method=method, variant=variant, columns=columns)


def teacher_rows(exp: Experiment, run: TrainedRun) -> list[dict]:
    """Rows of a teacher run (its own codes in both paradigms)."""
    columns = column_values(exp, run_code_pairs(exp, run)) if len(COLUMNS) else {}
    return rowlib.run_rows(run.record, method="teacher", columns=columns)


def shallow_rows(exp: Experiment, bits: int, name: str, *, seed: int = 0) -> list[dict]:
    """Rows of a shallow hasher (symmetric paradigm) on raw pixels."""
    q, db = exp.shallow_codes(bits, name, seed=seed)
    metrics = {"symmetric": exp.evaluate(q, db)}
    columns = column_values(exp, {"symmetric": (q, db)})
    return rowlib.reference_rows_of(
        dataset=exp.profile.data.name, profile=exp.profile.name,
        method=SHALLOW_HASHERS.meta(name)["label"], bits=bits, seed=seed, top_k=exp.splits.top_k,
        metrics=metrics, config_hash=config_hash(name, bits, seed),
        split_hash=exp.splits.split_hash, provenance=provenance(device="cpu"), columns=columns)


def available_shallow_rows(exp: Experiment, bits: int, name: str) -> list[dict]:
    """:func:`shallow_rows`, or none (with a log line) where the profile's images are read from
    files and shallow hashers on raw pixels do not apply."""
    try:
        return shallow_rows(exp, bits, name)
    except ShallowNotAvailable as err:
        log.warning("%s", err)
        return []


def shallow_reference(exp: Experiment, bits: int, name: str = "lsh") -> pd.DataFrame:
    """:func:`available_shallow_rows` as a frame, for a figure's reference line."""
    return pd.DataFrame(available_shallow_rows(exp, bits, name))


# --------------------------------------------------------------------------- worker processes
_WORKER_EXP: Experiment | None = None


def _init_worker(profile, cache_dir: str, device: str | None,
                 fingerprint: str | None = None) -> None:
    """A worker's Experiment on the shared cache; a worker that runs other code than the
    calling process (a stale checkout on a cluster node, a scheduler started before the code
    changed) stops with an error rather than train runs the caller would not reuse."""
    global _WORKER_EXP
    mine = code_fingerprint("student")
    if fingerprint is not None and fingerprint != mine:
        raise RuntimeError(f"this worker runs other code than the process that sent the run "
                           f"(code fingerprint {mine}, sender {fingerprint}): restart the "
                           "workers from the same checkout (docs/reliability.md)")
    _WORKER_EXP = Experiment(profile, cache_dir=cache_dir, device=device, progress=False,
                             workers=1, executor="local")


def _run_student(job: dict) -> dict:
    """Train (or load) one student run in a worker: ``{"error": None or the status of a run
    that could not finish, "summary": its test mAP@K}``; an exception propagates (the executor
    reports it with the run's name and writes the traceback to the run's log)."""
    rows = student_rows(_WORKER_EXP, **job)
    bad = [r["status"] for r in rows if r.get("status") != "ok"]
    summary = ", ".join(f"{r['paradigm'][:4]} {r['value']:.3f}" for r in rows
                        if r.get("status") == "ok" and "paradigm" in r and "value" in r)
    return {"error": bad[0] if bad else None, "summary": summary}


def job_name(job: dict) -> str:
    """A student job's name in progress bars, logs and errors: ``brcd 16 bits seed 0``
    (``... teacher seed 1`` when it names a teacher seed)."""
    name = run_label(job) or repr(job)
    if job.get("teacher_seed") is not None:
        name += f" teacher seed {job['teacher_seed']}"
    return name


def _run_teacher(spec: dict) -> dict:
    """Train (or load) one teacher in a worker (``spec``: bits, model, seed)."""
    run = _WORKER_EXP.teacher(spec["bits"], model=spec["model"], seed=spec["seed"])
    return {"error": None, "summary": f"symm {run.metrics['symmetric']:.3f}"}


def prefetch_teachers(exp: Experiment, specs: list[dict], *,
                      desc: str = "teachers") -> list[Outcome]:
    """Train the distinct teachers of ``specs`` (dicts of ``bits``, ``model``, ``seed``; None =
    the profile's) on the experiment's executor when it is ``gpus`` or a Dask one (with
    ``local`` the calling process trains them, with threads). Their backbones are built (and
    pretrained, if the profile pretrains them) here first, once. Returns the outcomes; a teacher
    that did not finish is logged and left to the calling process."""
    if exp.executor.kind == "local":
        return []
    unique = {}
    for s in specs:
        model = s.get("model") or exp.profile.teacher
        seed = exp.profile.teacher_seed if s.get("seed") is None else s["seed"]
        unique.setdefault((s["bits"], repr(model), seed), dict(bits=s["bits"], model=model,
                                                               seed=seed))
    todo = [spec for spec in unique.values() if not exp.has_teacher(**spec)]
    for spec in todo:  # a SimCLR stand-in backbone is pretrained here, once, not by each worker
        exp.build_network(spec["model"], spec["bits"], role="teacher", seed=spec["seed"])
    if not todo:
        return []
    outcomes = run_jobs(_run_teacher, todo, executor=exp.executor, workers=exp.workers,
                        names=[f"teacher {s['bits']} bits seed {s['seed']}" for s in todo],
                        initializer=_init_worker, initargs=_worker_args(exp),
                        log_dir=exp.runs.log_dir, desc=desc,
                        progress=exp.progress)
    _warn_unfinished(outcomes, exp)
    return outcomes


def _worker_args(exp: Experiment) -> tuple:
    """The arguments of :func:`_init_worker` for ``exp``'s workers (Dask workers may sit on
    other machines: each picks its own device)."""
    device = None if exp.executor.uses_dask else exp.device
    return (exp.profile, exp.cache_dir, device, code_fingerprint("student"))


def _warn_unfinished(outcomes: list[Outcome], exp: Experiment) -> None:
    failed = [o.name for o in outcomes if not o.ok]  # each was logged with its error and log
    if failed:
        log.warning("%d run(s) did not finish on the %s executor (%s); this process trains "
                    "them", len(failed), exp.executor, "; ".join(failed))


def prefetch_students(exp: Experiment, jobs: list[dict], *, workers: int | None = None,
                      desc: str = "runs") -> list[Outcome]:
    """Train the student runs ``jobs`` (keyword dicts of :func:`student_rows`) on the
    experiment's executor (``exp.executor``: worker processes, one per GPU, or Dask workers;
    :mod:`brcd_lib.training.executors`) so that a serial pass over the same jobs only loads
    them. With the ``local`` executor it does nothing with one worker or fewer than two jobs.
    The inputs the jobs share (teachers, their codes, the students' features and view banks)
    are built here first (:meth:`Experiment.prepare_inputs`). Returns the jobs'
    :class:`~brcd_lib.training.executors.Outcome` s (empty when nothing was sent): a run that did
    not finish there is logged as a warning with its name, error and log, and left to the serial
    pass, which trains it in this process (and records or raises what it ends with)."""
    spec = exp.executor
    workers = exp.workers if workers is None else resolve_workers(workers)
    if not jobs or (spec.kind == "local" and (workers <= 1 or len(jobs) < 2)):
        return []
    prefetch_teachers(exp, [dict(bits=j["bits"], model=j.get("teacher_model"),
                                 seed=j.get("teacher_seed")) for j in jobs])
    prepared = set()  # shared inputs are built here, once, not by racing workers
    for job in jobs:
        exp.teacher(job["bits"], model=job.get("teacher_model"), seed=job.get("teacher_seed"))
        kwargs = exp.distill_config(job.get("method", "none"), job.get("distill_kwargs")).kwargs
        rotations = get_distiller(job.get("method", "none"), **kwargs).rotations
        train = job.get("train") or exp.profile.student_train
        needs = (job["bits"], repr(job.get("model")), repr(job.get("teacher_model")),
                 job.get("teacher_seed"), repr(train), rotations,
                 exp.bank_seed(train, job.get("seed", 0)))
        if needs not in prepared:
            exp.prepare_inputs(**job)
            prepared.add(needs)
    outcomes = run_jobs(_run_student, jobs, executor=spec, workers=workers,
                        names=[job_name(j) for j in jobs], initializer=_init_worker,
                        initargs=_worker_args(exp), log_dir=exp.runs.log_dir,
                        desc=desc, progress=exp.progress)
    _warn_unfinished(outcomes, exp)  # the serial pass trains them
    return outcomes


# --------------------------------------------------------------------------- the grids
def study_bits(exp: Experiment) -> int:
    """The code length of the single-length studies (:func:`plan.study_bits` of the profile)."""
    return plan.study_bits(exp.profile)


def reference_rows(exp: Experiment, bits_list=None) -> pd.DataFrame:
    """LSH and ITQ on raw pixels, and the teacher, for every code length."""
    rows = []
    for bits in bits_list or exp.profile.bits:
        for name in SHALLOW_HASHERS:
            rows += available_shallow_rows(exp, bits, name)
        rows += teacher_rows(exp, exp.teacher(bits))
    return pd.DataFrame(rows)


def _run_jobs(exp: Experiment, jobs: list[plan.Job], desc: str) -> list[dict]:
    """Rows of every job (trained by the workers first, then loaded in order), each row with its
    job's extra fields."""
    unfinished = {o.index: o for o in prefetch_students(exp, [j.kwargs for j in jobs], desc=desc)
                  if not o.ok}
    rows = []
    with held_student_collapses():  # said once below, not run by run
        for i, job in enumerate(tqdm(jobs, desc=desc, disable=not exp.progress)):
            try:
                got = student_rows(exp, **job.kwargs)
            except Exception as err:
                if i in unfinished:  # the worker's attempts come first in its log
                    err.add_note(f"run {unfinished[i].name} also failed on the {exp.executor} "
                                 f"executor: {unfinished[i].error} (log: {unfinished[i].log})")
                raise
            for r in got:
                r.update(job.fields)
                rows.append(r)
    summary = collapse_summary(rows, grid=desc, profile=exp.profile, n_train=len(exp.splits.train))
    if summary:
        log.warning("%s", summary)
    return rows


def main_grid(exp: Experiment, *, methods=None, seeds=None, bits_list=None) -> pd.DataFrame:
    """Teacher, LSH/ITQ, the student without KD, the eight baselines and BRCD; each method with
    its seeds (:meth:`Profile.method_seeds`) unless ``seeds`` is given."""
    bits_list = bits_list or exp.profile.bits
    jobs = plan.main_jobs(exp.profile, methods=methods, seeds=seeds, bits_list=bits_list)
    students = pd.DataFrame(_run_jobs(exp, jobs, "main grid"))  # first: teachers on the executor
    return pd.concat([reference_rows(exp, bits_list), students], ignore_index=True)


def ablation_grid(exp: Experiment, *, seeds=None, bits_list=None) -> pd.DataFrame:
    """BRCD and its ablations: no mask, no cluster handling, alpha = 1, alpha = 0, upstream mask;
    at ``Profile.ablation_bits`` (default: the study code length)."""
    jobs = plan.ablation_jobs(exp.profile, seeds=seeds, bits_list=bits_list)
    return pd.DataFrame(_run_jobs(exp, jobs, "ablations"))


def sensitivity_grid(exp: Experiment, *, seeds=None, bits: int | None = None) -> pd.DataFrame:
    """BRCD's mAP against alpha, delta (margin) and K, one parameter at a time."""
    jobs = plan.sensitivity_jobs(exp.profile, seeds=seeds, bits=bits)
    return pd.DataFrame(_run_jobs(exp, jobs, "sensitivity"))


def generality_grid(exp: Experiment, *, seeds=None, bits: int | None = None) -> pd.DataFrame:
    """BRCD and the strongest baselines across hashing objectives (teacher and student trained
    with the same objective); backbones: :func:`pair_grid`."""
    bits = bits or study_bits(exp)
    jobs = plan.generality_jobs(exp.profile, seeds=seeds, bits=bits)
    students = _run_jobs(exp, jobs, "generality")  # first: its teachers go to the executor
    rows = []
    for objective, teacher_model, _ in plan.generality_models(exp.profile):
        for r in teacher_rows(exp, exp.teacher(bits, model=teacher_model)):
            r.update(axis="hashing model", setting=objective)
            rows.append(r)
    return pd.DataFrame(rows + students)


def pair_grid(exp: Experiment, *, seeds=None, bits: int | None = None) -> pd.DataFrame:
    """The backbone-pairs study: each pair's teacher rows and its students
    (``Profile.pair_methods``, the generality seeds) at the study code length; rows carry
    ``axis``, ``teacher_backbone`` and ``student_backbone``. Empty when the profile lists no
    other backbones."""
    bits = bits or study_bits(exp)
    jobs = plan.pair_jobs(exp.profile, seeds=seeds, bits=bits)
    students = _run_jobs(exp, jobs, "backbone pairs")  # first: its teachers go to the executor
    rows, seen = [], set()
    for p in plan.pair_models(exp.profile):
        if p["teacher"] in seen:
            continue
        seen.add(p["teacher"])
        for r in teacher_rows(exp, exp.teacher(bits, model=p["teacher_model"])):
            r.update(axis=p["axis"], teacher_backbone=p["teacher"], student_backbone="(teacher)")
            rows.append(r)
    return pd.DataFrame(rows + students)


def ladder_grid(exp: Experiment, *, seeds=None, bits: int | None = None) -> pd.DataFrame:
    """The capacity ladder: ``Profile.ladder_methods`` on student backbones of increasing
    strength under the profile's teacher, at the study code length; rows carry ``rung`` and
    ``student_backbone``, and the teacher's rows (``rung`` None). Empty when the profile lists
    no ladder."""
    if not exp.profile.ladder_backbones:
        return pd.DataFrame(columns=list(rowlib.ROW_COLUMNS))
    bits = bits or study_bits(exp)
    jobs = plan.ladder_jobs(exp.profile, seeds=seeds, bits=bits)
    students = _run_jobs(exp, jobs, "capacity ladder")  # first: its teacher goes to the executor
    rows = []
    for r in teacher_rows(exp, exp.teacher(bits)):
        r.update(rung=None, student_backbone="(teacher)")
        rows.append(r)
    return pd.DataFrame(rows + students)


def learning_curve_records(exp: Experiment, *, methods=("none", "kd", "brcd"),
                           bits: int | None = None, seeds=None) -> list[tuple[str, dict]]:
    """``(method, run record)`` of the main grid's runs of ``methods`` at ``bits`` (default: the
    study code length) and their seeds: their records hold the validation history
    (:func:`brcd_lib.reporting.convergence.learning_curves`). The runs are the main grid's, so
    they are loaded from the run store."""
    bits = bits or study_bits(exp)
    out = []
    for method in methods:
        for seed in seeds or exp.profile.method_seeds(method):
            try:
                out.append((method, exp.student(bits, method=method, seed=seed).record))
            except (TrainingDiverged, DegenerateTeacher) as err:
                log.warning("%s", err)
    return out


def pair_networks(exp: Experiment, *, bits: int | None = None) -> dict[str, torch.nn.Module]:
    """The pairs study's networks at the study code length, by backbone name (each teacher and
    each student once; pretrained backbones, freshly initialised heads: for parameter counts
    and latency, which do not depend on the head's weights)."""
    bits = bits or study_bits(exp)
    nets = {}
    for p in plan.pair_models(exp.profile):
        for role in ("teacher", "student"):
            if p[role] not in nets:
                nets[p[role]] = exp.build_network(p[f"{role}_model"], bits, role=role)
    return nets


def teacher_seed_grid(exp: Experiment, *, teacher_seeds=None, seeds=None, bits: int | None = None,
                      methods=("none", "kd", "brcd")) -> pd.DataFrame:
    """The no-KD / KD / BRCD comparison at one code length repeated under several teachers
    (``Profile.teacher_seeds``: the teacher's head initialisation, batch order and views), each
    with the student seeds ``Profile.seeds``. Rows carry ``teacher_seed``; empty when the profile
    lists no teacher seeds."""
    teacher_seeds = tuple(teacher_seeds if teacher_seeds is not None else exp.profile.teacher_seeds)
    if not teacher_seeds:
        return pd.DataFrame(columns=list(rowlib.ROW_COLUMNS))
    bits = bits or study_bits(exp)
    jobs = plan.teacher_seed_jobs(exp.profile, teacher_seeds=teacher_seeds, seeds=seeds, bits=bits,
                                  methods=methods)
    students = _run_jobs(exp, jobs, "teacher seeds")  # first: its teachers go to the executor
    rows = []
    for t in teacher_seeds:
        rows += teacher_rows(exp, exp.teacher(bits, seed=t))
    return pd.DataFrame(rows + students)


def upstream_baselines_grid(exp: Experiment, *, seeds=None, bits: int | None = None,
                            methods=None) -> pd.DataFrame:
    """The contrastive baselines that can draw their negatives from other classes as released
    (``negatives="class"``: supervised information in an unsupervised benchmark) next to the kit's
    default (``"uniform"``), at one code length. Rows: ``variant`` = ``<method>/<negatives>``."""
    jobs = plan.upstream_jobs(exp.profile, seeds=seeds, bits=bits, methods=methods)
    return pd.DataFrame(_run_jobs(exp, jobs, "upstream baselines"))


def brcd_settings(exp: Experiment) -> dict:
    """BRCD's settings in this profile: the distiller's defaults overridden by the profile's
    (``n_clusters``, ``margin``, ``alpha``, ``n_init`` ...), for the analyses that repeat its
    k-means and masks outside training (notebooks 03 and 07)."""
    defaults = {k: p.default for k, p in inspect.signature(distiller_class("brcd")).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return {**defaults, **plan.distill_kwargs(exp.profile, "brcd")}

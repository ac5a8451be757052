"""The result-row schema, built in one place.

A row is one method x dataset x bits x paradigm x seed (long format). Every row has the columns of
:data:`ROW_COLUMNS`; rows of runs that diverged or could not run keep the schema with a NaN value
and a ``status`` other than ``"ok"``. Tables and figures are pivots of these rows.

Extra per-run values a distiller reports (``record["extra"]``, e.g. BRCD's kept-bit fraction)
become ``extra_<name>`` columns; registered metric columns (:mod:`brcd_lib.experiments.columns`)
become columns of their own name. ``warnings`` holds the run record's warnings (collapsed codes,
code of unknown origin, a rebuilt record; "" when none). A trained run's rows also say how long it
trained (:data:`TRAINING_COLUMNS`): the epoch of the checkpoint the row evaluates (``best_epoch``,
per paradigm), the epochs it ran (``epochs_run``) and its cap (``max_epochs``), from which the
report computes how many runs converged before their budget bound.
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["ROW_COLUMNS", "PROVENANCE_COLUMNS", "TRAINING_COLUMNS", "training_fields", "metric_name", "run_rows", "failed_rows",
           "reference_rows_of"]

PROVENANCE_COLUMNS = ("config_hash", "split_hash", "commit", "versions", "device", "timestamp",
                      "wall_s")
ROW_COLUMNS = ("dataset", "profile", "method", "variant", "bits", "paradigm", "seed",
               "teacher_seed", "metric", "value", "status") + PROVENANCE_COLUMNS


TRAINING_COLUMNS = ("best_epoch", "epochs_run", "max_epochs")


def training_fields(record: dict, paradigm: str) -> dict[str, Any]:
    """How long the run of ``record`` trained, for its row of ``paradigm``: the best (selected)
    epoch of that paradigm (a teacher has one, the symmetric), the epochs it ran and the cap
    (``TrainConfig.epochs``); None where the record does not say."""
    best = record.get("best_epoch") or {}
    chosen = best.get(paradigm, best.get("symmetric"))
    cap = (record.get("train") or {}).get("epochs")
    return {"best_epoch": None if chosen is None else int(chosen),
            "epochs_run": None if record.get("epochs_run") is None else int(record["epochs_run"]),
            "max_epochs": None if cap is None else int(cap)}


def metric_name(top_k: int | None) -> str:
    """``mAP@1000`` (``mAP@all`` when the whole database is ranked)."""
    return f"mAP@{top_k or 'all'}"


def _row(*, dataset: str, profile: str, method: str, variant: str | None, bits: int,
         paradigm: str, seed: int, top_k: int | None, value: float, status: str,
         provenance: dict[str, Any], teacher_seed: int | None = None) -> dict[str, Any]:
    row = {"dataset": dataset, "profile": profile, "method": method, "variant": variant or method,
           "bits": int(bits), "paradigm": paradigm, "seed": int(seed),
           "teacher_seed": None if teacher_seed is None else int(teacher_seed),
           "metric": metric_name(top_k), "value": float(value), "status": status}
    row.update({k: provenance.get(k) for k in PROVENANCE_COLUMNS})
    return row


def run_rows(record: dict, *, method: str, variant: str | None = None,
             columns: dict[str, dict[str, float]] | None = None) -> list[dict]:
    """Rows of a finished run (one per paradigm of ``record["metrics"]``) from its record.
    ``columns``: paradigm -> {column: value} of registered metric columns."""
    prov = {"config_hash": record["key"], **{k: record.get(k) for k in PROVENANCE_COLUMNS
                                             if k != "config_hash"}}
    rows = []
    for paradigm, value in record["metrics"].items():
        row = _row(dataset=record["dataset"], profile=record["profile"], method=method,
                   variant=variant, bits=record["bits"], paradigm=paradigm, seed=record["seed"],
                   top_k=record["top_k"], value=value, status="ok", provenance=prov,
                   teacher_seed=record.get("teacher_seed"))
        row.update({f"extra_{k}": v for k, v in record.get("extra", {}).items()})
        # what the run store or the code check found (collapsed codes, unknown code, rebuilt
        # record): shown by the report; "" when nothing
        row["warnings"] = "; ".join(record.get("warnings") or [])
        row.update(training_fields(record, paradigm))
        row.update((columns or {}).get(paradigm, {}))
        rows.append(row)
    return rows


def failed_rows(*, dataset: str, profile: str, method: str, variant: str | None, bits: int,
                seed: int, top_k: int | None, status: str, teacher_seed: int | None = None,
                paradigms: tuple[str, ...] = ("symmetric", "asymmetric")) -> list[dict]:
    """Rows of a run that diverged or could not run: NaN value, the reason in ``status``."""
    return [_row(dataset=dataset, profile=profile, method=method, variant=variant, bits=bits,
                 paradigm=p, seed=seed, top_k=top_k, value=math.nan, status=status, provenance={},
                 teacher_seed=teacher_seed)
            for p in paradigms]


def reference_rows_of(*, dataset: str, profile: str, method: str, bits: int, seed: int,
                      top_k: int | None, metrics: dict[str, float], config_hash: str,
                      split_hash: str, provenance: dict[str, Any],
                      columns: dict[str, dict[str, float]] | None = None) -> list[dict]:
    """Rows of a reference method computed without a training run (LSH, ITQ)."""
    prov = {**provenance, "config_hash": config_hash, "split_hash": split_hash, "wall_s": 0.0}
    rows = []
    for paradigm, value in metrics.items():
        row = _row(dataset=dataset, profile=profile, method=method, variant=method.lower(),
                   bits=bits, paradigm=paradigm, seed=seed, top_k=top_k, value=value,
                   status="ok", provenance=prov)
        row.update((columns or {}).get(paradigm, {}))
        rows.append(row)
    return rows

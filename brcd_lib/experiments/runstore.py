"""Finished and interrupted training runs on disk: one folder per run, shared by teachers and
students.

A run folder ``<cache>/runs/<profile>/<role>-<key>/`` holds

* ``last.pt``: the training loop's resumable checkpoint (written at every validation);
* ``best.pt`` (teacher) or ``best_symmetric.pt`` / ``best_asymmetric.pt`` (student): the head
  selected for each search paradigm;
* ``result.json``: the run's record (test metrics, validation history, configs, provenance),
  written last, so its presence means the run finished.

:meth:`RunStore.load_or_train` is the one load-or-train path: a finished run is loaded (its
record and the selected heads), otherwise ``train(run_dir)`` runs (and resumes from ``last.pt``
when the loop finds one), and the store writes the selected heads and the record.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..io import atomic_write_json, json_safe, read_json
from ..training import distributed, engine

__all__ = ["TrainedRun", "RunStore", "TrainOutcome", "PARADIGMS"]

PARADIGMS = ("symmetric", "asymmetric")


@dataclass
class TrainedRun:
    """A finished run: the network with its selected head(s) and its test metrics."""

    role: str
    net: Any                       # HashingNetwork with the head selected for ``symmetric``
    nets: dict[str, Any]           # paradigm -> network with that paradigm's best head
    metrics: dict[str, float]      # paradigm -> test mAP@K
    record: dict                   # everything written to result.json
    run_dir: str


@dataclass
class TrainOutcome:
    """What a training function hands back to the store: the selected head per paradigm (a
    teacher selects one head, used in both paradigms), the epoch of each, and the record."""

    heads: dict[str, dict]         # paradigm -> head_state
    best_epoch: dict[str, int]
    record: dict


def head_files(role: str) -> dict[str, str]:
    """Paradigm -> checkpoint file of the selected head (teachers keep one head for both)."""
    if role == "teacher":
        return {"symmetric": "best.pt"}
    return {p: f"best_{p}.pt" for p in PARADIGMS}


class RunStore:
    """Run folders under ``root`` (``<cache>/runs/<profile>``)."""

    def __init__(self, *, root: str):
        self.root = root

    def run_dir(self, role: str, key: str) -> str:
        path = os.path.join(self.root, f"{role}-{key}")
        os.makedirs(path, exist_ok=True)
        return path

    def load_or_train(self, *, role: str, key: str, net: nn.Module,
                      train: Callable[[str], TrainOutcome], model_config: dict,
                      bits: int) -> TrainedRun:
        """The finished run ``role``-``key`` (heads loaded into copies of ``net``), or the run
        trained now by ``train(run_dir)``."""
        run_dir = self.run_dir(role, key)
        result_path = os.path.join(run_dir, "result.json")
        files = head_files(role)
        if os.path.exists(result_path):
            record = read_json(result_path)
            heads = {p: engine.load_checkpoint(os.path.join(run_dir, f))["head"]
                     for p, f in files.items()}
        else:
            outcome = train(run_dir)
            heads, record = outcome.heads, outcome.record
            for paradigm, name in files.items():
                engine.save_checkpoint(os.path.join(run_dir, name), format=engine.CHECKPOINT_FORMAT,
                                       head=heads[paradigm], config=json_safe(model_config),
                                       bits=bits, epoch=outcome.best_epoch[paradigm])
            if distributed.is_main():
                atomic_write_json(result_path, record)
        if role == "teacher":  # one head, used in both paradigms
            engine.load_head_state(net, heads["symmetric"])
            nets = {p: net for p in PARADIGMS}
        else:
            nets = {p: copy.deepcopy(net) for p in PARADIGMS}
            for paradigm, model in nets.items():
                engine.load_head_state(model, heads[paradigm])
        return TrainedRun(role, nets["symmetric"], nets, record["metrics"], record, run_dir)

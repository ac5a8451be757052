"""Finished and interrupted training runs on disk: one folder per run, shared by teachers and
students.

A run folder ``<cache>/runs/<profile>/<role>-<key>/`` holds

* ``last.pt``: the training loop's resumable checkpoint (written at every validation);
* ``best.pt`` (teacher) or ``best_symmetric.pt`` / ``best_asymmetric.pt`` (student): the head
  selected for each search paradigm;
* ``code.json``: the fingerprint of the code that trained (or is training) the run, written
  when training starts;
* ``result.json``: the run's record (test metrics, validation history, configs, provenance, the
  code fingerprint, ``warnings`` and a ``checksum`` of its own content), written last, so its
  presence means the run finished.
* ``train.lock``: present while a process trains the run (:class:`~.runlock.RunLock`: host,
  pid, heartbeat). A process that needs an unfinished run another live process is training
  waits for it and then loads it, so two workers or cluster nodes sharing the store never train
  the same run; the lock of a killed worker or a lost node is taken over and the run resumes
  from its ``last.pt``.

:meth:`RunStore.load_or_train` is the one load-or-train path: a finished run is loaded (its
record and the selected heads), otherwise ``train(run_dir)`` runs (and resumes from ``last.pt``
when the loop finds one), and the store writes the selected heads and the record.

Cached runs are checked, not trusted (``docs/reliability.md``, "Code-aware run cache"):

* **code** -- the key (:func:`brcd_lib.config.config_hash` of the settings) does not change when
  the code changes, so the record carries :func:`code_fingerprint` of the code that trained it
  (:data:`CODE_PATHS`). A run trained by other code is retrained, with a warning naming its
  folder; an interrupted run started by other code restarts from epoch 0. A record written
  before fingerprints existed is used as it is, with a warning and an entry in its
  ``warnings`` (its code is unknown; deleting the folder retrains it).
* **content** -- ``result.json`` carries the SHA-256 of its content. A damaged (unreadable,
  truncated) or edited file is rebuilt with a warning naming it: from the run's intact
  checkpoints when ``last.pt`` says the loop had finished (the test metrics are evaluated
  again), else by training.
"""
from __future__ import annotations

import ast
import copy
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from ..io import atomic_write_json, json_safe, read_json
from ..training import distributed, engine
from .runlock import RunLock

__all__ = ["TrainedRun", "RunStore", "TrainOutcome", "PARADIGMS", "CODE_PATHS", "LOG_FOLDER",
           "store_root", "code_fingerprint", "record_checksum"]

log = logging.getLogger(__name__)

PARADIGMS = ("symmetric", "asymmetric")

_PACKAGE = Path(__file__).resolve().parents[1]

# the code that determines a run's result, relative to brcd_lib/ (a folder = its *.py files).
# Left out on purpose: data/ (the split is in the key by its hash), the caches below a run
# (features, SimCLR, k-means are keyed by content), parallel.py (which process trains a run does
# not change it), reporting/ and the run store itself (how a record is stored).
_TEACHER_CODE = ("models", "metrics.py", "training/engine.py", "training/sources.py",
                 "training/distributed.py", "training/encode.py", "training/features.py",
                 "experiments/experiment.py")
CODE_PATHS: dict[str, tuple[str, ...]] = {
    "teacher": _TEACHER_CODE,
    "student": _TEACHER_CODE + ("distill",),
}


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


# ------------------------------------------------------------------------------------------------
# code fingerprint and record checksum
# ------------------------------------------------------------------------------------------------
def _code_files(role: str) -> list[Path]:
    if role not in CODE_PATHS:
        raise ValueError(f"role must be one of {', '.join(CODE_PATHS)}, got {role!r}")
    files = []
    for rel in CODE_PATHS[role]:
        path = _PACKAGE / rel
        files += sorted(path.glob("*.py")) if path.is_dir() else [path]
    return files


_NORMALISED: dict[str, str] = {}


def _normalised_source(path: Path) -> str:
    """The module's syntax tree without docstrings, comments and layout: editing a comment or a
    docstring keeps the fingerprint, editing code changes it. Kept per content (SHA-256 of the
    file's bytes), so a file is parsed again only when its bytes change (the mutated modules of
    `make mutation` are megabytes: parsing them took seconds per call)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest not in _NORMALISED:
        # the newline translation of Path.read_text, so the fingerprints stay what they were
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        _NORMALISED[digest] = _parse_normalised(text)
    return _NORMALISED[digest]


def _parse_normalised(text: str) -> str:
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


_FINGERPRINTS: dict[str, str] = {}


def code_fingerprint(role: str) -> str:
    """SHA-256 (16 hex digits) of the code that determines a ``role`` run (:data:`CODE_PATHS`),
    read once per process (the code this process runs)."""
    if role not in _FINGERPRINTS:
        h = hashlib.sha256()
        for path in _code_files(role):
            h.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
            h.update(_normalised_source(path).encode() + b"\0")
        _FINGERPRINTS[role] = h.hexdigest()[:16]
    return _FINGERPRINTS[role]


def library_fingerprint() -> str:
    """SHA-256 (16 hex digits) of the whole library as it determines a notebook's outputs: every
    module of ``brcd_lib`` (syntax trees without docstrings and comments, as
    :func:`code_fingerprint`) and the sidecars of the committed weights (their SHA-256 and
    recipe). Unlike :data:`CODE_PATHS` nothing is left out: a table or figure also depends on the
    reporting code. Read on each call (a fraction of a second), so an edit is seen at once."""
    h = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
        try:
            h.update(_normalised_source(path).encode() + b"\0")
        except SyntaxError:  # a module being edited: its bytes, so the fingerprint still moves
            h.update(path.read_bytes() + b"\0")
    for path in sorted((_PACKAGE / "weights").glob("*.json")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def record_checksum(record: dict) -> str:
    """SHA-256 of a record's content (every field but ``checksum``, canonical JSON)."""
    body = {k: v for k, v in record.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def seal_record(record: dict, *, role: str) -> dict:
    """``record`` as JSON values with the code fingerprint and its checksum (what is written)."""
    out = json.loads(json.dumps(json_safe(record)))
    out["code_fingerprint"] = code_fingerprint(role)
    out.setdefault("warnings", [])
    out["checksum"] = record_checksum(out)
    return out


# ------------------------------------------------------------------------------------------------
# the store
# ------------------------------------------------------------------------------------------------
LOG_FOLDER = "logs"  # the executors' per-run logs, beside the run folders (not a run)


def store_root(cache_dir: str, profile: str) -> str:
    """``<cache>/runs/<profile>``: the root of ``profile``'s :class:`RunStore`. (``Experiment``
    spells the same path out: experiment.py is part of the runs' code fingerprint, so an edit
    there would retrain every cached run.)"""
    return os.path.join(cache_dir, "runs", profile)


class RunStore:
    """Run folders under ``root`` (``<cache>/runs/<profile>``, :func:`store_root`)."""

    def __init__(self, *, root: str):
        self.root = root
        self._warned: set[tuple[str, str]] = set()
        self._notes: dict[str, list[str]] = {}  # run folder -> warnings for the next record

    def run_dir(self, role: str, key: str) -> str:
        path = os.path.join(self.root, f"{role}-{key}")
        os.makedirs(path, exist_ok=True)
        return path

    @property
    def log_dir(self) -> str:
        """Where the executors write each run's log."""
        return os.path.join(self.root, LOG_FOLDER)

    def run_folders(self) -> list[str]:
        """The names of the run folders under ``root``, finished or not (none when it does not
        exist yet); the log folder is not one."""
        try:
            return sorted(e.name for e in os.scandir(self.root)
                          if e.is_dir() and e.name != LOG_FOLDER)
        except FileNotFoundError:
            return []

    def _warn_once(self, run_dir: str, message: str) -> None:
        if (run_dir, message) not in self._warned:
            self._warned.add((run_dir, message))
            log.warning("%s", message)

    def check_finished(self, run_dir: str, *, role: str, key: str) -> dict | None:
        """The verified record of a finished run in ``run_dir``, or None when it must be
        (re)trained or rebuilt; every problem found is logged as a warning naming the file and
        cleared from the folder so that training can start (see the module doc)."""
        result_path = os.path.join(run_dir, "result.json")
        code_path = os.path.join(run_dir, "code.json")
        current = code_fingerprint(role)
        if not os.path.exists(result_path):
            self._check_interrupted(run_dir, code_path, current)
            return None
        problem, record = None, None
        try:
            record = read_json(result_path)
        except ValueError as err:
            problem = f"is damaged ({err.__cause__})"
        if problem is None and (not isinstance(record, dict) or "metrics" not in record):
            problem = "is not a run record"
        if problem is None and record.get("key") not in (None, key):
            problem = f"belongs to run {record.get('key')!r}"
        if problem is None and "checksum" in record and record["checksum"] != record_checksum(record):
            problem = "was changed after it was written (its checksum does not match its content)"
        if problem is None and "checksum" not in record and "code_fingerprint" in record:
            problem = "has lost its checksum"
        if problem is not None:
            how = self._rebuild_plan(run_dir, code_path, current)
            log.warning("run result %s %s; %s", result_path, problem, how)
            self._notes.setdefault(run_dir, []).append(f"result.json {problem}; {how}")
            if os.path.exists(result_path):  # _rebuild_plan may have cleared it already
                os.remove(result_path)
            return None
        found = record.get("code_fingerprint")
        if found is None:
            message = (f"run folder {run_dir} predates code fingerprints (its result.json has "
                       "none): the code that trained it is unknown; using it as it is (delete the "
                       "folder to retrain it with this code)")
            self._warn_once(run_dir, message)
            record.setdefault("warnings", [])
            record["warnings"] = list(record["warnings"]) + [
                "trained by unknown code (record predates code fingerprints)"]
            return record
        if found != current:
            log.warning("run folder %s was trained by other code (code fingerprint %s, this code "
                        "%s; fingerprinted: brcd_lib/{%s}); retraining it", run_dir, found, current,
                        ",".join(CODE_PATHS[role]))
            self._clear(run_dir, keep_code=False)
            return None
        return record

    def _check_interrupted(self, run_dir: str, code_path: str, current: str) -> None:
        last = os.path.join(run_dir, "last.pt")
        if not os.path.exists(last):
            return
        started = _read_code(code_path)
        if started is not None and started != current:
            log.warning("interrupted run %s was started by other code (code fingerprint %s, this "
                        "code %s); restarting it from epoch 0", run_dir, started, current)
            self._clear(run_dir, keep_code=False)
            return
        try:
            engine.load_checkpoint(last)
        except (RuntimeError, FileNotFoundError) as err:
            log.warning("%s; restarting the run from epoch 0", err)
            os.remove(last)

    def _rebuild_plan(self, run_dir: str, code_path: str, current: str) -> str:
        """Clear what cannot be reused for a rebuild; returns what will happen (for the log)."""
        last = os.path.join(run_dir, "last.pt")
        started = _read_code(code_path)
        if started != current:  # other code, or unknown code (a folder older than code.json)
            self._clear(run_dir, keep_code=False)
            return ("retraining it (its checkpoints come from "
                    + (f"other code, fingerprint {started})" if started else "unknown code)"))
        try:
            done = bool(engine.load_checkpoint(last).get("done"))
        except (RuntimeError, FileNotFoundError):
            done = False
        if done:
            return "rebuilding it from the run's checkpoints (the test metrics are evaluated again)"
        self._clear(run_dir, keep_code=True)
        return "retraining it (no finished checkpoint to rebuild it from)"

    def _load_heads(self, run_dir: str, role: str, files: dict[str, str]) -> dict | None:
        """The selected heads of a finished run, or None (after a warning, with result.json
        removed) when a head checkpoint is missing or damaged."""
        try:
            return {p: engine.load_checkpoint(os.path.join(run_dir, f))["head"]
                    for p, f in files.items()}
        except (RuntimeError, FileNotFoundError, KeyError) as err:
            how = self._rebuild_plan(run_dir, os.path.join(run_dir, "code.json"),
                                     code_fingerprint(role))
            reason = str(err).split("; delete it")[0].split("; train the run first")[0]
            log.warning("run %s: a head checkpoint is unusable (%s); %s", run_dir, reason, how)
            self._notes.setdefault(run_dir, []).append(f"a head checkpoint was unusable; {how}")
            result_path = os.path.join(run_dir, "result.json")
            if os.path.exists(result_path):
                os.remove(result_path)
            return None

    @staticmethod
    def _clear(run_dir: str, *, keep_code: bool) -> None:
        for name in os.listdir(run_dir):
            if name.endswith(".pt") or name == "result.json" or (name == "code.json" and not keep_code):
                os.remove(os.path.join(run_dir, name))

    def load_or_train(self, *, role: str, key: str, net: nn.Module,
                      train: Callable[[str], TrainOutcome], model_config: dict,
                      bits: int) -> TrainedRun:
        """The finished run ``role``-``key`` (heads loaded into copies of ``net``), or the run
        trained now by ``train(run_dir)``."""
        run_dir = self.run_dir(role, key)
        files = head_files(role)
        record = heads = lock = None
        if distributed.is_main():  # only rank 0 checks and clears; the others follow its files
            record, heads = self._peek_finished(run_dir, role=role, key=key, files=files)
            if record is None:  # train it, or wait for the process that trains it (runlock)
                lock = RunLock(run_dir).acquire(what=f"run {os.path.basename(run_dir)}")
                record, heads = self._checked_finished(run_dir, role=role, key=key, files=files)
                if record is not None:
                    lock.release()
                    lock = None
        try:
            return self._load_or_train(run_dir, role=role, net=net, train=train,
                                       model_config=model_config, bits=bits, record=record,
                                       heads=heads)
        finally:
            if lock is not None:
                lock.release()

    def _peek_finished(self, run_dir: str, *, role: str, key: str,
                       files: dict[str, str]) -> tuple[dict | None, dict | None]:
        """The record and heads of a run that finished with this code, read without a lock and
        without changing anything; (None, None) for anything else (the locked check decides)."""
        result_path = os.path.join(run_dir, "result.json")
        if not os.path.exists(result_path):
            return None, None
        try:
            record = read_json(result_path)
        except (OSError, ValueError):
            return None, None
        if (not isinstance(record, dict) or record.get("key") not in (None, key)
                or record.get("code_fingerprint") != code_fingerprint(role)
                or record.get("checksum") != record_checksum(record)):
            return None, None
        try:
            return record, {p: engine.load_checkpoint(os.path.join(run_dir, f))["head"]
                            for p, f in files.items()}
        except (RuntimeError, FileNotFoundError, KeyError):
            return None, None

    def _checked_finished(self, run_dir: str, *, role: str, key: str,
                          files: dict[str, str]) -> tuple[dict | None, dict | None]:
        """:meth:`check_finished` and the heads (under the run's lock: it may clear files)."""
        record = self.check_finished(run_dir, role=role, key=key)
        heads = None if record is None else self._load_heads(run_dir, role, files)
        return (record, heads) if heads is not None else (None, None)

    def _load_or_train(self, run_dir: str, *, role: str, net: nn.Module,
                       train: Callable[[str], TrainOutcome], model_config: dict, bits: int,
                       record: dict | None, heads: dict | None) -> TrainedRun:
        result_path = os.path.join(run_dir, "result.json")
        files = head_files(role)
        distributed.barrier()
        if not distributed.is_main() and os.path.exists(result_path):
            record = read_json(result_path)
            heads = {p: engine.load_checkpoint(os.path.join(run_dir, f))["head"]
                     for p, f in files.items()}
        if record is None:
            if distributed.is_main():
                atomic_write_json(os.path.join(run_dir, "code.json"),
                                  {"code_fingerprint": code_fingerprint(role),
                                   "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
            distributed.barrier()
            outcome = train(run_dir)
            heads = outcome.heads
            notes = self._notes.pop(run_dir, [])
            record = seal_record({**outcome.record, "warnings": list(
                outcome.record.get("warnings", [])) + notes}, role=role)
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


def _read_code(path: str) -> str | None:
    try:
        return read_json(path).get("code_fingerprint")
    except (OSError, ValueError, AttributeError):
        return None

"""Exact-output tests of the run store's repair paths (fast, no training loop): which files a
cleared run folder keeps, what the store says it will do with a bad record or an unusable head
checkpoint (the exact warning and the note carried into the next record), and the one-time
warning of a record that predates code fingerprints.

Each test works in its own tmp folder and runs with the working directory moved to an empty
folder, so that a path missing its run folder would be looked up (and, for the clearing code,
deleted) there instead of in the repository."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fakes import TinyNet, head_outcome  # noqa: E402
from runstore_helpers import empty_cwd  # noqa: E402,F401 (autouse fixture)
from runstore_helpers import run_files as _files  # noqa: E402
from runstore_helpers import store_warnings as _warnings  # noqa: E402
from runstore_helpers import write_checkpoint as _checkpoint  # noqa: E402

from brcd_lib.experiments import runstore  # noqa: E402
from brcd_lib.experiments.runstore import RunStore  # noqa: E402

torch.set_num_threads(1)

KEY = "a" * 16
OTHER = "0123456789abcdef"  # a code fingerprint that is not this code's


def _fill(run_dir: Path, *, code: str | None, last_done: bool | None) -> None:
    """A run folder: best.pt, result.json, a file the store does not own (notes.txt), code.json
    naming ``code`` (none when None), last.pt with ``done=last_done`` (none when None)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _checkpoint(run_dir / "best.pt", head={"w": torch.zeros(1)})
    (run_dir / "result.json").write_text(json.dumps({"key": KEY}))
    (run_dir / "notes.txt").write_text("mine")
    if code is not None:
        (run_dir / "code.json").write_text(json.dumps({"code_fingerprint": code}))
    if last_done is not None:
        _checkpoint(run_dir / "last.pt", done=last_done)


# ------------------------------------------------------------------ _clear
@pytest.mark.parametrize("keep_code, left", [
    (True, ["code.json", "notes.txt", "train.lock"]),
    (False, ["notes.txt", "train.lock"]),
])
def test_clear_removes_checkpoints_and_record_and_code_only_when_asked(tmp_path, keep_code, left):
    run_dir = tmp_path / "run"
    _fill(run_dir, code=OTHER, last_done=True)
    _checkpoint(run_dir / "best_symmetric.pt", head={})
    (run_dir / "train.lock").write_text("host 1")
    (run_dir / "result.json.tmp").write_text("")  # a name that only starts like the record
    assert _files(run_dir) == ["best.pt", "best_symmetric.pt", "code.json", "last.pt",
                               "notes.txt", "result.json", "result.json.tmp", "train.lock"]
    RunStore._clear(str(run_dir), keep_code=keep_code)
    assert _files(run_dir) == sorted(left + ["result.json.tmp"])


# ------------------------------------------------------------------ _rebuild_plan via check_finished
def _check_bad_record(tmp_path, caplog, *, code, last_done):
    """check_finished on a folder whose result.json is valid JSON but no run record; returns
    (the run folder, the one warning, the store)."""
    run_dir = tmp_path / "runs" / f"teacher-{KEY}"
    _fill(run_dir, code=code, last_done=last_done)
    store = RunStore(root=str(tmp_path / "runs"))
    with caplog.at_level(logging.WARNING):
        assert store.check_finished(str(run_dir), role="teacher", key=KEY) is None
    msgs = _warnings(caplog)
    assert len(msgs) == 1, msgs
    return run_dir, msgs[0], store


def test_bad_record_of_other_code_clears_the_folder_and_names_the_fingerprint(tmp_path, caplog):
    run_dir, msg, store = _check_bad_record(tmp_path, caplog, code=OTHER, last_done=True)
    how = f"retraining it (its checkpoints come from other code, fingerprint {OTHER})"
    assert msg == f"run result {run_dir / 'result.json'} is not a run record; {how}"
    assert _files(run_dir) == ["notes.txt"]  # checkpoints, record and code.json gone
    assert store._notes == {str(run_dir): [f"result.json is not a run record; {how}"]}


def test_bad_record_of_unknown_code_clears_the_folder(tmp_path, caplog):
    run_dir, msg, _ = _check_bad_record(tmp_path, caplog, code=None, last_done=True)
    assert msg == (f"run result {run_dir / 'result.json'} is not a run record; "
                   "retraining it (its checkpoints come from unknown code)")
    assert _files(run_dir) == ["notes.txt"]


def test_bad_record_of_this_code_with_a_finished_loop_is_rebuilt_from_its_checkpoints(
        tmp_path, caplog):
    run_dir, msg, _ = _check_bad_record(tmp_path, caplog, code=runstore.code_fingerprint("teacher"),
                                        last_done=True)
    assert msg == (f"run result {run_dir / 'result.json'} is not a run record; rebuilding it "
                   "from the run's checkpoints (the test metrics are evaluated again)")
    assert _files(run_dir) == ["best.pt", "code.json", "last.pt", "notes.txt"]  # record only


@pytest.mark.parametrize("last_done", [None, False])
def test_bad_record_of_this_code_without_a_finished_loop_is_retrained_keeping_code_json(
        tmp_path, caplog, last_done):
    """No last.pt, or one whose loop had not finished: nothing to rebuild from; checkpoints go,
    code.json (this code) stays."""
    run_dir, msg, _ = _check_bad_record(tmp_path, caplog, code=runstore.code_fingerprint("teacher"),
                                        last_done=last_done)
    assert msg == (f"run result {run_dir / 'result.json'} is not a run record; retraining it "
                   "(no finished checkpoint to rebuild it from)")
    assert _files(run_dir) == ["code.json", "notes.txt"]


# ------------------------------------------------------------------ _load_heads via load_or_train
def _train_seeing(seen, value):
    def train(run_dir):
        seen.append(sorted(f for f in os.listdir(run_dir) if f != "train.lock"))
        return head_outcome(KEY, value)
    return train


def _load(root, train):
    return RunStore(root=str(root)).load_or_train(role="teacher", key=KEY, net=TinyNet(d=4, bits=4),
                                                  train=train, model_config={}, bits=4)


def _finished(tmp_path, *, last_done):
    seen = []
    first = _load(tmp_path / "runs", _train_seeing(seen, 0.25))
    assert seen == [["code.json"]]
    run_dir = Path(first.run_dir)
    assert _files(run_dir) == ["best.pt", "code.json", "result.json"]
    if last_done is not None:
        _checkpoint(run_dir / "last.pt", done=last_done)
    return run_dir


@pytest.mark.parametrize("damage", ["missing", "foreign"])
def test_an_unusable_head_of_a_finished_loop_is_rebuilt_with_the_exact_warning_and_note(
        tmp_path, caplog, damage):
    """best.pt missing or not a kit checkpoint, last.pt says the loop finished: the warning gives
    the checkpoint's own reason without its advice, the record is removed before training (a
    crash during the rebuild must not leave a record claiming the run finished), the
    checkpoints stay, and the next record carries the note."""
    run_dir = _finished(tmp_path, last_done=True)
    best = run_dir / "best.pt"
    if damage == "missing":
        best.unlink()
        reason = f"checkpoint {best} does not exist"
    else:
        torch.save({"head": {}}, best)
        reason = f"{best} is not a brcd-kit checkpoint (no format tag 'brcd-kit/1')"
    how = "rebuilding it from the run's checkpoints (the test metrics are evaluated again)"
    seen = []
    with caplog.at_level(logging.WARNING):
        again = _load(tmp_path / "runs", _train_seeing(seen, 0.5))
    assert _warnings(caplog) == [f"run {run_dir}: a head checkpoint is unusable ({reason}); {how}"]
    expected_seen = ["code.json", "last.pt"] if damage == "missing" else [
        "best.pt", "code.json", "last.pt"]
    assert seen == [expected_seen]  # no result.json while training
    assert again.record["warnings"] == [f"a head checkpoint was unusable; {how}"]
    assert again.metrics["symmetric"] == 0.5


def test_a_crash_while_rebuilding_a_missing_head_leaves_no_record(tmp_path, caplog):
    run_dir = _finished(tmp_path, last_done=True)
    (run_dir / "best.pt").unlink()

    class Crash(Exception):
        pass

    def crash(run_dir):
        raise Crash

    with pytest.raises(Crash):
        _load(tmp_path / "runs", crash)
    assert _files(run_dir) == ["code.json", "last.pt"]


def test_an_unusable_head_without_a_finished_loop_is_retrained_with_the_note(tmp_path, caplog):
    run_dir = _finished(tmp_path, last_done=None)  # the fake trains no loop: no last.pt
    (run_dir / "best.pt").write_bytes(b"not a checkpoint")
    how = "retraining it (no finished checkpoint to rebuild it from)"
    seen = []
    with caplog.at_level(logging.WARNING):
        again = _load(tmp_path / "runs", _train_seeing(seen, 0.5))
    msgs = _warnings(caplog)
    assert len(msgs) == 1 and msgs[0].startswith(
        f"run {run_dir}: a head checkpoint is unusable (checkpoint {run_dir / 'best.pt'} is "
        "truncated or not a brcd-kit checkpoint (")
    assert msgs[0].endswith(f"); {how}") and "delete it" not in msgs[0]
    assert seen == [["code.json"]]
    assert again.record["warnings"] == [f"a head checkpoint was unusable; {how}"]


# ------------------------------------------------------------------ _warn_once via check_finished
def test_a_record_without_fingerprint_is_warned_about_once_per_folder(tmp_path, caplog):
    store = RunStore(root=str(tmp_path / "runs"))
    dirs = [tmp_path / "runs" / f"teacher-{KEY}", tmp_path / "runs" / "copy" / f"teacher-{KEY}"]
    for d in dirs:
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"key": KEY, "metrics": {"symmetric": 0.5}}))
    with caplog.at_level(logging.WARNING):
        for d in dirs + dirs:
            rec = store.check_finished(str(d), role="teacher", key=KEY)
            assert rec["warnings"] == ["trained by unknown code (record predates code fingerprints)"]
    assert _warnings(caplog) == [
        f"run folder {d} predates code fingerprints (its result.json has none): the code that "
        "trained it is unknown; using it as it is (delete the folder to retrain it with this code)"
        for d in dirs]

"""Exact-output tests of the run store's remaining paths (fast, no training loop): the record
checksum and seal, the lock-free peek at a finished run, the interrupted-run checks, the
messages of a record of another run, of another code or without its checksum, what a trained
run writes (code.json, the head checkpoints, the record's warnings), a student's two networks,
and a non-main rank reading the files rank 0 wrote.

Expected values are literals or computed here independently (hashlib over known bytes)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
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
from brcd_lib.experiments.runstore import RunStore, TrainOutcome  # noqa: E402
from brcd_lib.training import distributed, engine  # noqa: E402

torch.set_num_threads(1)

KEY = "a" * 16
OTHER_KEY = "b" * 16
OTHER = "0123456789abcdef"  # a code fingerprint that is not this code's
TEACHER_CODE = ("models,metrics.py,training/engine.py,training/sources.py,training/distributed.py,"
                "training/encode.py,training/features.py,experiments/experiment.py")


def _fp() -> str:
    return runstore.code_fingerprint("teacher")


def _sha(body: dict) -> str:
    """The checksum computed here: SHA-256 of sorted, compact JSON."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _run_dir(tmp_path) -> Path:
    d = tmp_path / "runs" / f"teacher-{KEY}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _store(tmp_path) -> RunStore:
    return RunStore(root=str(tmp_path / "runs"))


# ------------------------------------------------------------------ record_checksum, seal_record
def test_record_checksum_is_sha256_of_sorted_compact_json_without_checksum():
    rec = {"z": 1, "a": [1, 2], "checksum": "ignored", "m": {"y": 2, "b": "x"}}
    expected = hashlib.sha256(b'{"a":[1,2],"m":{"b":"x","y":2},"z":1}').hexdigest()
    assert runstore.record_checksum(rec) == expected


def test_seal_record_adds_fingerprint_empty_warnings_and_checksum():
    out = runstore.seal_record({"key": KEY, "metrics": {"symmetric": 0.5}}, role="teacher")
    fp = _fp()
    canonical = ('{"code_fingerprint":"%s","key":"%s","metrics":{"symmetric":0.5},"warnings":[]}'
                 % (fp, KEY)).encode()
    assert out == {"key": KEY, "metrics": {"symmetric": 0.5}, "code_fingerprint": fp,
                   "warnings": [], "checksum": hashlib.sha256(canonical).hexdigest()}


def test_seal_record_keeps_existing_warnings():
    out = runstore.seal_record({"key": KEY, "warnings": ("w",)}, role="teacher")
    assert out["warnings"] == ["w"]
    assert sorted(out) == ["checksum", "code_fingerprint", "key", "warnings"]


# ------------------------------------------------------------------ check_finished: bad records
def test_a_record_of_another_run_names_its_key(tmp_path, caplog):
    run_dir = _run_dir(tmp_path)
    (run_dir / "result.json").write_text(json.dumps({"key": OTHER_KEY, "metrics": {}}))
    store = _store(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert store.check_finished(str(run_dir), role="teacher", key=KEY) is None
    how = "retraining it (its checkpoints come from unknown code)"
    assert _warnings(caplog) == [
        f"run result {run_dir / 'result.json'} belongs to run 'bbbbbbbbbbbbbbbb'; {how}"]
    assert store._notes == {str(run_dir): [f"result.json belongs to run 'bbbbbbbbbbbbbbbb'; {how}"]}
    assert _files(run_dir) == []


def test_a_fingerprinted_record_without_checksum_has_lost_it(tmp_path, caplog):
    run_dir = _run_dir(tmp_path)
    (run_dir / "result.json").write_text(json.dumps(
        {"key": KEY, "metrics": {"symmetric": 0.5}, "code_fingerprint": _fp()}))
    (run_dir / "code.json").write_text(json.dumps({"code_fingerprint": _fp()}))
    store = _store(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert store.check_finished(str(run_dir), role="teacher", key=KEY) is None
    how = "retraining it (no finished checkpoint to rebuild it from)"
    assert _warnings(caplog) == [
        f"run result {run_dir / 'result.json'} has lost its checksum; {how}"]
    assert store._notes == {str(run_dir): [f"result.json has lost its checksum; {how}"]}
    assert _files(run_dir) == ["code.json"]


def test_a_record_of_other_code_is_retrained_with_the_exact_warning(tmp_path, caplog):
    run_dir = _run_dir(tmp_path)
    body = {"key": KEY, "metrics": {"symmetric": 0.5}, "code_fingerprint": OTHER, "warnings": []}
    (run_dir / "result.json").write_text(json.dumps({**body, "checksum": _sha(body)}))
    (run_dir / "code.json").write_text(json.dumps({"code_fingerprint": OTHER}))
    _checkpoint(run_dir / "best.pt", head={"w": torch.zeros(1)})
    _checkpoint(run_dir / "last.pt", done=True)
    (run_dir / "notes.txt").write_text("mine")
    store = _store(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert store.check_finished(str(run_dir), role="teacher", key=KEY) is None
    assert _warnings(caplog) == [
        f"run folder {run_dir} was trained by other code (code fingerprint {OTHER}, this code "
        f"{_fp()}; fingerprinted: brcd_lib/{{{TEACHER_CODE}}}); retraining it"]
    assert _files(run_dir) == ["notes.txt"]


# ------------------------------------------------------------------ check_finished: interrupted runs
def test_an_interrupted_run_of_this_code_is_kept_silently(tmp_path, caplog):
    run_dir = _run_dir(tmp_path)
    (run_dir / "code.json").write_text(json.dumps({"code_fingerprint": _fp()}))
    _checkpoint(run_dir / "last.pt", done=False)
    with caplog.at_level(logging.WARNING):
        assert _store(tmp_path).check_finished(str(run_dir), role="teacher", key=KEY) is None
    assert _warnings(caplog) == []
    assert _files(run_dir) == ["code.json", "last.pt"]


def test_an_interrupted_run_without_code_json_is_kept_silently(tmp_path, caplog):
    run_dir = _run_dir(tmp_path)
    _checkpoint(run_dir / "last.pt", done=False)
    with caplog.at_level(logging.WARNING):
        assert _store(tmp_path).check_finished(str(run_dir), role="teacher", key=KEY) is None
    assert _warnings(caplog) == []
    assert _files(run_dir) == ["last.pt"]


def test_an_interrupted_run_of_other_code_restarts_with_the_exact_warning(tmp_path, caplog):
    run_dir = _run_dir(tmp_path)
    (run_dir / "code.json").write_text(json.dumps({"code_fingerprint": OTHER}))
    _checkpoint(run_dir / "last.pt", done=False)
    _checkpoint(run_dir / "best.pt", head={"w": torch.zeros(1)})
    (run_dir / "notes.txt").write_text("mine")
    with caplog.at_level(logging.WARNING):
        assert _store(tmp_path).check_finished(str(run_dir), role="teacher", key=KEY) is None
    assert _warnings(caplog) == [
        f"interrupted run {run_dir} was started by other code (code fingerprint {OTHER}, this "
        f"code {_fp()}); restarting it from epoch 0"]
    assert _files(run_dir) == ["notes.txt"]


def test_a_damaged_last_checkpoint_is_removed_with_the_exact_warning(tmp_path, caplog):
    run_dir = _run_dir(tmp_path)
    (run_dir / "code.json").write_text(json.dumps({"code_fingerprint": _fp()}))
    torch.save({"done": False}, run_dir / "last.pt")  # no format tag
    with caplog.at_level(logging.WARNING):
        assert _store(tmp_path).check_finished(str(run_dir), role="teacher", key=KEY) is None
    assert _warnings(caplog) == [
        f"{run_dir / 'last.pt'} is not a brcd-kit checkpoint (no format tag 'brcd-kit/1'); "
        "delete it to retrain; restarting the run from epoch 0"]
    assert _files(run_dir) == ["code.json"]


# ------------------------------------------------------------------ load_or_train
class _Spy:
    """Stands in for RunLock: records acquire/release and delegates to the real lock."""

    def __init__(self, events, real):
        self.events, self.real = events, real

    def __call__(self, folder):
        events, real = self.events, self.real(folder)

        class Lock:
            def acquire(self, **kw):
                events.append(("acquire", folder, kw))
                real.acquire(**kw)
                return self

            def release(self):
                events.append(("release", folder))
                real.release()
        return Lock()


@pytest.fixture
def lock_events(monkeypatch):
    events = []
    monkeypatch.setattr(runstore, "RunLock", _Spy(events, runstore.RunLock))
    return events


def _load(root, train, *, role="teacher", net=None, model_config=None, bits=4):
    return RunStore(root=str(root)).load_or_train(
        role=role, key=KEY, net=net if net is not None else TinyNet(d=4, bits=4), train=train,
        model_config={} if model_config is None else model_config, bits=bits)


def test_training_holds_the_lock_and_loading_a_finished_run_takes_none(tmp_path, lock_events):
    run_dir = str(tmp_path / "runs" / f"teacher-{KEY}")
    seen = []

    def train(d):
        seen.append((d, list(lock_events), sorted(os.listdir(d))))
        return head_outcome(KEY, 0.25)

    first = _load(tmp_path / "runs", train)
    acquired = ("acquire", run_dir, {"what": f"run teacher-{KEY}"})
    assert seen == [(run_dir, [acquired], ["code.json", "train.lock"])]
    assert lock_events == [acquired, ("release", run_dir)]
    assert first.run_dir == run_dir and first.role == "teacher"
    assert _files(run_dir) == ["best.pt", "code.json", "result.json"]

    lock_events.clear()

    def fail(d):
        raise AssertionError("trained again")

    again = _load(tmp_path / "runs", fail)
    assert lock_events == []  # the peek found it: no lock taken
    assert again.record == json.loads(Path(run_dir, "result.json").read_text())
    assert again.metrics == {"symmetric": 0.25, "asymmetric": 0.25}
    assert torch.equal(again.net.head.weight, torch.full((4, 4), 0.25))
    assert again.nets == {"symmetric": again.net, "asymmetric": again.net}
    assert again.role == "teacher" and again.run_dir == run_dir


def test_peek_returns_the_record_and_heads_of_a_finished_run(tmp_path):
    first = _load(tmp_path / "runs", lambda d: head_outcome(KEY, 0.25))
    run_dir = first.run_dir
    record, heads = _store(tmp_path)._peek_finished(run_dir, role="teacher", key=KEY,
                                                    files={"symmetric": "best.pt"})
    assert record == json.loads(Path(run_dir, "result.json").read_text())
    assert sorted(heads) == ["symmetric"]
    assert sorted(heads["symmetric"]) == ["head.bias", "head.weight"]
    assert torch.equal(heads["symmetric"]["head.weight"], torch.full((4, 4), 0.25))
    assert torch.equal(heads["symmetric"]["head.bias"], torch.zeros(4))
    assert _files(run_dir) == ["best.pt", "code.json", "result.json"]


def test_training_writes_code_json_checkpoints_and_the_outcome_warnings(tmp_path):
    fmt = "%Y-%m-%dT%H:%M:%S"
    codes = []

    def train(d):
        codes.append(json.loads(Path(d, "code.json").read_text()))
        out = head_outcome(KEY, 0.25)
        return TrainOutcome(heads=out.heads, best_epoch={"symmetric": 7},
                            record={**out.record, "warnings": ["from training"]})

    before = time.strftime(fmt)
    run = _load(tmp_path / "runs", train, model_config={"d": 4, "kind": ("tiny", 1)}, bits=4)
    after = time.strftime(fmt)
    (code,) = codes
    assert sorted(code) == ["code_fingerprint", "started"]
    assert code["code_fingerprint"] == _fp()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", code["started"])
    assert before <= code["started"] <= after
    best = torch.load(Path(run.run_dir, "best.pt"), weights_only=True)
    assert sorted(best) == ["bits", "config", "epoch", "format", "head"]
    assert best["format"] == "brcd-kit/1"
    assert best["config"] == {"d": 4, "kind": ["tiny", 1]}
    assert best["bits"] == 4 and best["epoch"] == 7
    assert torch.equal(best["head"]["head.weight"], torch.full((4, 4), 0.25))
    assert run.record["warnings"] == ["from training"]
    assert json.loads(Path(run.run_dir, "result.json").read_text())["warnings"] == ["from training"]


def _net(value):
    net = TinyNet(d=4, bits=4)
    with torch.no_grad():
        net.head.weight.fill_(value)
        net.head.bias.zero_()
    return net


def test_a_student_gets_one_copy_of_the_network_per_paradigm(tmp_path):
    def train(d):
        return TrainOutcome(heads={"symmetric": engine.head_state(_net(0.25)),
                                   "asymmetric": engine.head_state(_net(0.75))},
                            best_epoch={"symmetric": 1, "asymmetric": 2},
                            record={"key": KEY, "metrics": {"symmetric": 0.25, "asymmetric": 0.75}})

    net = _net(0.5)
    run = _load(tmp_path / "runs", train, role="student", net=net)
    assert run.role == "student"
    assert run.run_dir == str(tmp_path / "runs" / f"student-{KEY}")
    assert sorted(run.nets) == ["asymmetric", "symmetric"]
    assert run.net is run.nets["symmetric"]
    assert run.nets["symmetric"] is not net and run.nets["asymmetric"] is not net
    assert torch.equal(run.nets["symmetric"].head.weight, torch.full((4, 4), 0.25))
    assert torch.equal(run.nets["asymmetric"].head.weight, torch.full((4, 4), 0.75))
    assert torch.equal(net.head.weight, torch.full((4, 4), 0.5))  # the caller's net untouched
    assert _files(run.run_dir) == ["best_asymmetric.pt", "best_symmetric.pt", "code.json",
                                   "result.json"]
    epochs = {f: torch.load(Path(run.run_dir, f), weights_only=True)["epoch"]
              for f in ("best_symmetric.pt", "best_asymmetric.pt")}
    assert epochs == {"best_symmetric.pt": 1, "best_asymmetric.pt": 2}


def test_a_non_main_rank_reads_the_record_and_heads_rank_0_wrote(tmp_path, monkeypatch):
    first = _load(tmp_path / "runs", lambda d: head_outcome(KEY, 0.25))
    written = json.loads(Path(first.run_dir, "result.json").read_text())
    monkeypatch.setattr(distributed, "is_main", lambda: False)

    def fail(d):
        raise AssertionError("a non-main rank trained")

    run = _load(tmp_path / "runs", fail)
    assert run.record == written
    assert run.metrics == {"symmetric": 0.25, "asymmetric": 0.25}
    assert torch.equal(run.net.head.weight, torch.full((4, 4), 0.25))
    assert _files(run.run_dir) == ["best.pt", "code.json", "result.json"]

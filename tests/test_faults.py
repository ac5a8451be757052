"""The fault suite: every fault of issue #18 (and the red team's faults that already held), one
case each, with the outcome it must have -- a clear error (what was wrong, the value or path, the
fix; a CLI exits 2 with one line), or correct behaviour (rebuilt, retrained with a warning,
rejected input, no leftover) -- and no silent wrong answer, no traceback for a user error, no
orphaned process.

:data:`FAULTS` is the case list and the source of the tally in ``docs/reliability.md``
(``test_the_tally_in_the_docs_is_the_suite's`` regenerates it and compares; ``python
tests/test_faults.py`` prints it). A case checked by a test in another file names that test
(``elsewhere``); ``test_cases_elsewhere_exist`` checks that it exists.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import re
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

CLEAR_ERROR, CORRECT, NO_ORPHAN = "clear error", "correct behaviour", "no orphan"


@dataclass(frozen=True)
class Fault:
    id: str
    group: str
    fault: str
    expect: str              # CLEAR_ERROR, CORRECT or NO_ORPHAN
    slow: bool = False
    elsewhere: str | None = None  # "tests/<file>.py::<test>[<param>]" when checked there


FAULTS: list[Fault] = []
CHECKS: dict[str, Callable] = {}


def fault(id: str, group: str, what: str, expect: str, *, slow: bool = False):
    def deco(fn):
        FAULTS.append(Fault(id, group, what, expect, slow))
        CHECKS[id] = fn
        return fn
    return deco


def covered(id: str, group: str, what: str, expect: str, node: str) -> None:
    FAULTS.append(Fault(id, group, what, expect, elsewhere=node))


# ==============================================================================================
# helpers
# ==============================================================================================
@dataclass
class Ctx:
    tmp: Path
    mp: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture
    caplog: pytest.LogCaptureFixture


def one_line_error(rc: int, err: str, *fragments: str, code: int = 2) -> str:
    """A CLI's failure: exit status ``code``, no traceback, one error line holding ``fragments``."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and " INFO " not in ln
             and not ln.startswith("WARNING")]
    assert rc == code, (rc, err)
    assert len(lines) == 1, lines
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def train_cli(ctx: Ctx, *args: str) -> tuple[int, str]:
    from brcd_lib.experiments.train import main

    ctx.capsys.readouterr()
    rc = main(["--profile", "smoke", "--no-progress", "--cache-dir", str(ctx.tmp / "cache"),
               *args])
    return rc, ctx.capsys.readouterr().err


def reproduce_cli(ctx: Ctx, *args: str) -> tuple[int, str, str]:
    from brcd_lib.experiments.reproduce import main

    ctx.capsys.readouterr()
    rc = main(["--profile", "smoke", *args])
    out = ctx.capsys.readouterr()
    return rc, out.out, out.err


def fake_papermill(ctx: Ctx, *, fail: Exception | None = None) -> list[str]:
    """Replace papermill's executor by a copy of the notebook (no kernel): the runner's own
    logic (locks, logs, markers, leftovers) runs for real. Returns the executed names."""
    import papermill

    ran: list[str] = []

    def execute(nb, out, **kw):
        ran.append(os.path.basename(nb))
        Path(out).write_text(Path(nb).read_text())
        if fail is not None:
            raise fail

    ctx.mp.setattr(papermill, "execute_notebook", execute)
    return ran


def fake_runs(ctx: Ctx) -> tuple[list[str], dict]:
    """:func:`fake_papermill` over two scratch notebooks: the executed names and the keyword
    arguments of ``reproduce.run`` (results root, notebook folder, cache folder)."""
    ran = fake_papermill(ctx)
    kw = dict(results_root=str(ctx.tmp / "r"), notebook_dir=str(notebook_dir(ctx.tmp)),
              cache_dir=str(ctx.tmp / "c"))
    return ran, kw


def notebook_dir(tmp: Path, names=("01_a.ipynb", "02_b.ipynb")) -> Path:
    folder = tmp / "notebooks"
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {},
                                                          "source": f"x = {i}", "outputs": [],
                                                          "execution_count": None}],
                                               "metadata": {}, "nbformat": 4,
                                               "nbformat_minor": 5}))
    return folder


def _mount(path: Path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True)
    return done.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only_dir(ctx: Ctx, path: Path):
    """A folder that cannot be written: a read-only tmpfs (root), mode 0555 (other users), or
    (where neither is possible) a simulated EROFS of every file creation in brcd_lib.io."""
    if _mount(path, "ro,size=64k"):
        try:
            yield "read-only mount"
        finally:
            _umount(path)
        return
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield "mode 0555"
        finally:
            path.chmod(0o755)
        return
    from brcd_lib import io as kio

    real = kio.tempfile.mkstemp

    def mkstemp(*a, dir=None, **kw):
        if dir is not None and str(dir).startswith(str(path)):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*a, dir=dir, **kw)

    ctx.mp.setattr(kio.tempfile, "mkstemp", mkstemp)
    yield "simulated"


@contextlib.contextmanager
def full_disk(ctx: Ctx, path: Path):
    """A folder on a full device: a 64 KiB tmpfs filled up (root), else a simulated ENOSPC of
    every rename into it."""
    if _mount(path, "size=64k"):
        try:
            with contextlib.suppress(OSError), open(path / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
            yield "full tmpfs"
        finally:
            _umount(path)
        return
    path.mkdir(parents=True, exist_ok=True)
    from brcd_lib import io as kio

    real = kio.os.replace

    def replace(src, dst):
        if str(dst).startswith(str(path)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    ctx.mp.setattr(kio.os, "replace", replace)
    yield "simulated"


# ==============================================================================================
# orphans
# ==============================================================================================
covered("orphan-pool", "orphans", "SIGKILL of the process running 2 pool workers (a kernel)",
        NO_ORPHAN, "tests/test_orphans.py::test_sigkill_of_the_pool_process_leaves_no_worker"
                   "[pdeathsig+watchdog]")
covered("orphan-watchdog", "orphans", "the same without prctl (portable watchdog alone)",
        NO_ORPHAN, "tests/test_orphans.py::test_sigkill_of_the_pool_process_leaves_no_worker"
                   "[watchdog]")
covered("orphan-runner", "orphans", "SIGKILL of the notebook runner while a notebook runs 2 "
        "workers", NO_ORPHAN, "tests/test_orphans.py::"
        "test_sigkill_of_the_notebook_runner_or_its_kernel_leaves_no_worker[runner]")
covered("orphan-kernel", "orphans", "SIGKILL of the notebook kernel running 2 workers",
        NO_ORPHAN, "tests/test_orphans.py::"
                   "test_sigkill_of_the_notebook_runner_or_its_kernel_leaves_no_worker[kernel]")

# ==============================================================================================
# concurrency
# ==============================================================================================
RUNNER = textwrap.dedent('''
    import os, sys, time, shutil
    from pathlib import Path
    import papermill
    def execute(nb, out, **kw):
        time.sleep(1.5)
        Path(out).write_text(Path(nb).read_text())
    papermill.execute_notebook = execute
    from brcd_lib.experiments import reproduce
    reproduce.run("smoke", results_root=sys.argv[1], notebook_dir=sys.argv[2],
                  cache_dir=sys.argv[3], only=sys.argv[4:])
''')


def _two_runners(ctx: Ctx, only_a: list[str], only_b: list[str]):
    nbdir = notebook_dir(ctx.tmp, names=("01_a.ipynb", "02_b.ipynb", "03_c.ipynb"))
    script = ctx.tmp / "runner.py"
    script.write_text(RUNNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [str(ctx.tmp / "results"), str(nbdir), str(ctx.tmp / "cache")]
    procs = [subprocess.Popen([sys.executable, str(script), *args, *only], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for only in (only_a, only_b)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    log = json.loads((ctx.tmp / "results" / "smoke" / "run_log.json").read_text())
    marker = json.loads(next((ctx.tmp / "cache" / "reproduce").glob("smoke-*.json")).read_text())
    return log, marker, [o for o, _ in outs]


@fault("concurrent-only-lists", "concurrency", "two runners with different --only lists into one "
       "results root at the same time", CORRECT, slow=True)
def _(ctx):
    log, marker, _ = _two_runners(ctx, ["01", "02"], ["03"])
    assert sorted(log["notebooks"]) == ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]
    assert all(e["status"] == "ok" for e in log["notebooks"].values())
    assert sorted(marker) == ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]


@fault("concurrent-same-notebook", "concurrency", "two runners executing the same notebook into "
       "one results root", CORRECT, slow=True)
def _(ctx):
    log, marker, outs = _two_runners(ctx, ["01"], ["01"])
    assert sorted(log["notebooks"]) == ["01_a.ipynb"] and sorted(marker) == ["01_a.ipynb"]
    joined = "\n".join(outs)
    assert joined.count("[run ] 01_a.ipynb") == 1 and "[skip] 01_a.ipynb" in joined


covered("concurrent-json", "concurrency", "two processes adding entries to one JSON file",
        CORRECT, "tests/test_io.py::test_update_json_is_entry_by_entry_under_a_lock")
covered("concurrent-reproduce", "held before (red team)", "two reproduce runs of the same profile (runs "
        "trained by 2 workers and loaded by the serial pass)", CORRECT,
        "tests/test_parallel.py::test_worker_runs_equal_serial_runs")

# ==============================================================================================
# code-aware run cache
# ==============================================================================================
KEY = "k" * 16


def _tiny_run(store, calls: list, *, epochs: int = 2):
    """A run of the store: a linear head trained by engine.fit on a fixed feature bank; its
    'test metric' is a function of the selected head (so a rebuilt record can be compared)."""
    from brcd_lib.config import TrainConfig
    from brcd_lib.experiments.runstore import TrainOutcome
    from brcd_lib.models import get_objective
    from brcd_lib.training import engine, sources
    from fakes import TinyNet

    bank = torch.randn(2, 24, 6, generator=torch.Generator().manual_seed(0))
    net = TinyNet(d=6)

    def train(run_dir):
        calls.append(run_dir)
        local = TinyNet(d=6)
        loop = engine.fit(name="tiny", net=local, objective=get_objective("cibhash"),
                          source=sources.BankPairSource(student_bank=bank),
                          train_cfg=TrainConfig(epochs=epochs, batch_size=8, eval_every=1),
                          seed=0, validate=lambda: {"symmetric": float(
                              local.head.weight.detach().abs().sum())},
                          checkpoint_path=os.path.join(run_dir, "last.pt"), progress=False)
        head = loop.best_state["symmetric"]["head"]
        value = float(head["head.weight"].abs().sum())
        return TrainOutcome(heads={"symmetric": head}, best_epoch=dict(loop.best_epoch),
                            record={"key": KEY, "metrics": {"symmetric": value,
                                                            "asymmetric": value},
                                    "history": loop.history, "epochs_run": loop.epochs_run})

    return store.load_or_train(role="teacher", key=KEY, net=net, train=train,
                               model_config={}, bits=8)


def _store(ctx):
    from brcd_lib.experiments.runstore import RunStore

    return RunStore(root=str(ctx.tmp / "runs"))


def _warnings(ctx) -> list[str]:
    return [r.getMessage() for r in ctx.caplog.records if r.levelno >= logging.WARNING]


@fault("cache-other-code", "code-aware cache", "a finished run cached by other code (e.g. "
       "brcd_loss changed)", CORRECT)
def _(ctx):
    from brcd_lib.experiments import runstore

    calls = []
    first = _tiny_run(_store(ctx), calls)
    assert first.record["code_fingerprint"] == runstore.code_fingerprint("teacher")
    ctx.mp.setitem(runstore._FINGERPRINTS, "teacher", "0" * 16)  # the code changed
    again = _tiny_run(_store(ctx), calls)
    assert len(calls) == 2 and again.record["code_fingerprint"] == "0" * 16
    assert again.record["history"] == first.record["history"]  # trained from epoch 0 again
    assert any(f"run folder {first.run_dir} was trained by other code" in w and "retraining" in w
               for w in _warnings(ctx))


@fault("cache-edited-value", "code-aware cache", "a hand-edited metric in result.json", CORRECT)
def _(ctx):
    calls = []
    run = _tiny_run(_store(ctx), calls)
    path = Path(run.run_dir) / "result.json"
    rec = json.loads(path.read_text())
    true = rec["metrics"]["symmetric"]
    rec["metrics"]["symmetric"] = 0.99
    path.write_text(json.dumps(rec))
    with ctx.caplog.at_level(logging.INFO):
        again = _tiny_run(_store(ctx), calls)
    assert again.metrics["symmetric"] == true  # evaluated again, not read
    msgs = _warnings(ctx)
    assert any(f"run result {path} was changed after it was written" in w and
               "rebuilding it from the run's checkpoints" in w for w in msgs), msgs
    assert any("resumed from" in r.getMessage() for r in ctx.caplog.records)  # no retraining
    assert again.record["history"] == run.record["history"]
    assert any("rebuilding" in w for w in again.record["warnings"])


@fault("cache-truncated-record", "code-aware cache", "a truncated result.json (checkpoints "
       "intact)", CORRECT)
def _(ctx):
    calls = []
    run = _tiny_run(_store(ctx), calls)
    path = Path(run.run_dir) / "result.json"
    path.write_text(path.read_text()[:40])
    again = _tiny_run(_store(ctx), calls)
    assert again.metrics == run.metrics and again.record["history"] == run.record["history"]
    assert any(f"run result {path} is damaged" in w and "from the run's checkpoints" in w
               for w in _warnings(ctx))
    assert json.loads(path.read_text())["checksum"]


@fault("cache-damaged-head", "code-aware cache", "a truncated best.pt next to an intact record",
       CORRECT)
def _(ctx):
    calls = []
    run = _tiny_run(_store(ctx), calls)
    best = Path(run.run_dir) / "best.pt"
    best.write_bytes(best.read_bytes()[:50])
    again = _tiny_run(_store(ctx), calls)
    assert again.metrics == run.metrics
    assert any(str(best) in w for w in _warnings(ctx))


@fault("cache-legacy-record", "code-aware cache", "a run cached before records carried a code "
       "fingerprint", CORRECT)
def _(ctx):
    calls = []
    run = _tiny_run(_store(ctx), calls)
    path = Path(run.run_dir) / "result.json"
    rec = json.loads(path.read_text())
    for field in ("code_fingerprint", "checksum", "warnings"):
        rec.pop(field)
    path.write_text(json.dumps(rec))
    (Path(run.run_dir) / "code.json").unlink()
    again = _tiny_run(_store(ctx), calls)
    assert len(calls) == 1 and again.metrics == run.metrics  # accepted, not retrained
    assert again.record["warnings"] == ["trained by unknown code (record predates code "
                                        "fingerprints)"]
    assert any(f"run folder {run.run_dir} predates code fingerprints" in w
               for w in _warnings(ctx))


@fault("cache-interrupted-other-code", "code-aware cache", "an interrupted run (last.pt) resumed "
       "by other code", CORRECT)
def _(ctx):
    from brcd_lib.experiments import runstore

    calls = []
    run = _tiny_run(_store(ctx), calls)
    (Path(run.run_dir) / "result.json").unlink()  # as if killed before the end
    ctx.mp.setitem(runstore._FINGERPRINTS, "teacher", "1" * 16)
    with ctx.caplog.at_level(logging.INFO):
        _tiny_run(_store(ctx), calls)
    assert not any("resumed from" in r.getMessage() for r in ctx.caplog.records)
    assert any("was started by other code" in w and "restarting it from epoch 0" in w
               for w in _warnings(ctx))


@fault("cache-fingerprint-scope", "code-aware cache", "a comment or docstring edited vs a code "
       "line edited in the training code", CORRECT)
def _(ctx):
    import shutil

    from brcd_lib.experiments import runstore

    copy = ctx.tmp / "brcd_lib"
    shutil.copytree(ROOT / "brcd_lib", copy, ignore=shutil.ignore_patterns("__pycache__"))
    ctx.mp.setattr(runstore, "_PACKAGE", copy)

    def fingerprint(role):
        runstore._FINGERPRINTS.pop(role, None)
        return runstore.code_fingerprint(role)

    ctx.mp.setattr(runstore, "_FINGERPRINTS", {})
    base = {r: fingerprint(r) for r in ("teacher", "student")}
    brcd = copy / "distill" / "brcd.py"
    text = brcd.read_text()
    brcd.write_text(text.replace('"""The BRCD objective', '"""The BRCD objective (edited)', 1)
                    + "\n# a comment\n")
    assert {r: fingerprint(r) for r in base} == base
    brcd.write_text(text.replace("return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()",
                                 "return (torch.logsumexp(logits, dim=1) - logits[:, 0]).sum()"))
    assert fingerprint("student") != base["student"] and fingerprint("teacher") == base["teacher"]


@fault("cache-record-key", "code-aware cache", "adding the fingerprint and checksum to the run "
       "store (existing cached runs must keep their keys)", CORRECT)
def _(ctx):
    """The fingerprint is a checked field of the record, not a part of the key: the run keys
    are those of the runs cached before it (the same hashed parts), a setting that defines the
    run moves its key, and one that does not (the code fingerprint, how the Experiment runs)
    leaves it."""
    import dataclasses

    from brcd_lib.config import TrainConfig, config_hash, hash_view
    from brcd_lib.experiments import runstore
    from brcd_lib.training.features import module_fingerprint
    from fakes import KeyedExperiment

    # fields added later are schema additions: at their default they stay out of the hash
    assert list(hash_view(TrainConfig())) == [
        "epochs", "batch_size", "lr", "eval_every", "patience", "feature_views", "num_workers"]
    assert config_hash(TrainConfig(pin_memory=False, bank_seed="split")) == \
        config_hash(TrainConfig())

    def keys(folder, **kwargs):
        fake = KeyedExperiment(ctx.tmp / folder, **kwargs)
        t = fake.exp.teacher(16, seed=0)
        s = fake.exp.student(16, method="kd", seed=0)
        return fake.exp, t, s

    exp, t, s = keys("a")
    p = exp.profile
    fp = module_fingerprint(t.net.backbone)  # TinyNet: an identity backbone
    # the hashed parts of the runs cached before the fingerprint: nothing more, nothing less
    assert t.record["key"] == config_hash("teacher", p.data, "split-hash", p.teacher,
                                          p.teacher_train, 16, 0, fp)
    assert s.record["key"] == config_hash("student", p.data, "split-hash", p.student_model("kd"),
                                          p.student_train, 16, 0, exp.distill_config("kd"),
                                          t.record["key"], fp)
    # not part of the key: the code fingerprint, and how the Experiment runs
    ctx.mp.setattr(runstore, "code_fingerprint", lambda role: "other-code")
    _, t2, s2 = keys("b", online="per_run", bank_batch=7, resume=False, workers=1)
    assert (t2.record["key"], s2.record["key"]) == (t.record["key"], s.record["key"])
    # part of the key: the split, the seeds, the length, the training and the distiller
    fake = KeyedExperiment(ctx.tmp / "c", split_hash="other-split")
    assert fake.exp.teacher(16, seed=0).record["key"] != t.record["key"]
    e = KeyedExperiment(ctx.tmp / "d").exp
    moved = {
        "teacher seed": e.teacher(16, seed=1).record["key"],
        "teacher length": e.teacher(32, seed=0).record["key"],
        "teacher epochs": e.teacher(16, seed=0, train=dataclasses.replace(
            p.teacher_train, epochs=p.teacher_train.epochs + 1)).record["key"],
    }
    assert len(set(moved.values()) | {t.record["key"]}) == 4, moved
    students = {
        "seed": e.student(16, method="kd", seed=1).record["key"],
        "teacher seed": e.student(16, method="kd", seed=0, teacher_seed=1).record["key"],
        "method": e.student(16, method="brcd", seed=0).record["key"],
        "weight": e.student(16, method="kd", seed=0, distill_weight=2.0).record["key"],
        "epochs": e.student(16, method="kd", seed=0, train=dataclasses.replace(
            p.student_train, epochs=p.student_train.epochs + 1)).record["key"],
    }
    assert len(set(students.values()) | {s.record["key"]}) == 6, students


covered("cache-feature", "held before (red team)", "a feature cache entry with a wrong hash, size or "
        "key, or truncated", CORRECT,
        "tests/test_resume_kill.py::test_feature_cache_mismatch_is_rebuilt_with_warning")
covered("cache-split", "held before (red team)", "a damaged split file or sidecar", CORRECT,
        "tests/test_resume_kill.py::test_split_file_mismatch_is_redrawn_with_warning")
covered("cache-kmeans", "held before (red team)", "a damaged k-means cache", CORRECT,
        "tests/test_resume_kill.py::test_kmeans_cache_mismatch_is_rebuilt_with_warning")
covered("resume-kill", "held before (red team)", "kill -9 of a training run, then the same command",
        CORRECT, "tests/test_resume_kill.py::test_sigkilled_student_resumes_to_the_uninterrupted_result")
covered("ddp-gloo", "held before (red team)", "2 gloo ranks vs one process", CORRECT,
        "tests/test_distributed.py::test_two_ranks_match_one_process")

# ==============================================================================================
# silent wrong answers
# ==============================================================================================
def _codes(n, bits=16, seed=0):
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n, bits)) < 0.5, -1.0, 1.0)


@fault("labels-pm1", "silent wrong answers", "map_at_k with multi-hot labels written as +-1",
       CLEAR_ERROR)
def _(ctx):
    from brcd_lib.metrics import map_at_k

    q, db = _codes(4), _codes(9, seed=1)
    ql, dl = np.eye(3)[[0, 1, 2, 0]] * 2 - 1, np.eye(3)[np.arange(9) % 3] * 2 - 1
    with pytest.raises(ValueError, match=r"query_labels must be multi-hot 0/1 \(n, C\), got values "
                                         r"from -1.0 to 1.0; \+-1 labels: pass \(labels > 0\)"):
        map_at_k(q, db, ql, dl, 5)
    assert map_at_k(q, db, ql > 0, dl > 0, 5) < 1.0  # the stated fix gives the real value


@fault("labels-counts", "silent wrong answers", "map_at_k with label counts (2) or fractions",
       CLEAR_ERROR)
def _(ctx):
    from brcd_lib.metrics import map_at_k

    q, db = _codes(2), _codes(3, seed=1)
    for bad in (np.array([[2, 0], [0, 1]]), np.array([[0.5, 0.0], [0.0, 1.0]])):
        with pytest.raises(ValueError, match="query_labels must be multi-hot 0/1"):
            map_at_k(q, db, bad, np.eye(2)[[0, 1, 0]], 2)


@fault("cluster-float", "silent wrong answers", "brcd_loss with float cluster labels", CLEAR_ERROR)
def _(ctx):
    from brcd_lib.distill.brcd import brcd_loss

    s = torch.randn(4, 8)
    t, t2 = torch.sign(torch.randn(4, 8)), torch.sign(torch.randn(4, 8))
    with pytest.raises(ValueError, match=r"cluster must hold integer cluster ids .* got dtype "
                                         r"torch.float32"):
        brcd_loss(s, t, t2, cluster=torch.tensor([0.5, 1.5, 0.2, 0.1]),
                  cluster_other=torch.tensor([0, 1, 0, 1]))
    assert brcd_loss(s, t, t2, cluster=torch.tensor([0, 1, 0, 1]),
                     cluster_other=torch.tensor([0, 1, 0, 1])) > 0


@fault("teacher-lr-1e6", "silent wrong answers", "a teacher trained with lr 1e6 (smoke profile: "
       "collapsed codes, mAP far below the lr-5e-4 teacher)", CORRECT, slow=True)
def _(ctx):
    from brcd_lib.experiments.experiment import Experiment
    from brcd_lib.experiments.profiles import get_profile
    from brcd_lib.experiments.studies import teacher_rows
    from brcd_lib.experiments.train import override_profile

    cache = str(ctx.tmp / "cache")
    bad = Experiment(override_profile(get_profile("smoke"), ["teacher_train.lr=1e6"]),
                     cache_dir=cache, progress=False)
    run = bad.teacher(16)
    health = run.record["code_health"]
    assert 2 * health["constant_bits"] >= health["bits"]
    assert run.record["warnings"] and "collapsed codes" in run.record["warnings"][0]
    assert any("teacher 16 bits: collapsed codes" in w for w in _warnings(ctx))
    assert all("collapsed codes" in r["warnings"] for r in teacher_rows(bad, run))
    good = Experiment("smoke", cache_dir=cache, progress=False).teacher(16)  # same backbones
    assert good.record["warnings"] == [] and good.metrics["symmetric"] > run.metrics["symmetric"]


@fault("only-empty", "silent wrong answers", '--only "" (ran all 11 notebooks)', CLEAR_ERROR)
def _(ctx):
    rc, out, err = reproduce_cli(ctx, "--only", "", "--results-root", str(ctx.tmp / "r"))
    one_line_error(rc, err, "--only needs notebook numbers or names", "available: 01_")
    rc, out, err = reproduce_cli(ctx, "--only", "--results-root", str(ctx.tmp / "r"))
    one_line_error(rc, err, "--only needs notebook numbers or names")
    assert not (ctx.tmp / "r").exists()


@fault("only-number", "silent wrong answers", "--only 1 (ran 01, 10 and 11)", CORRECT)
def _(ctx):
    from brcd_lib.experiments.reproduce import list_notebooks, select

    nbs = list_notebooks()
    assert [os.path.basename(n) for n in select(nbs, ["1"])] == ["01_data_protocols.ipynb"]
    assert [os.path.basename(n) for n in select(nbs, ["01", "11"])] == [
        "01_data_protocols.ipynb", "11_report.ipynb"]
    assert [os.path.basename(n) for n in select(nbs, ["report"])] == ["11_report.ipynb"]


@fault("numpy-ints", "silent wrong answers", "np.int64(32) as code length, seed or epoch count",
       CORRECT)
def _(ctx):
    from brcd_lib.config import TrainConfig, config_hash
    from brcd_lib.experiments.experiment import as_count
    from brcd_lib.models import build_hashing_network

    net = build_hashing_network(role="student", backbone="small_cnn_s", code_length=np.int64(32))
    assert net.code_length == 32 and type(net.code_length) is int
    assert as_count(np.int64(32), "bits", minimum=1) == 32
    assert type(as_count(np.int32(0), "seed")) is int
    cfg = TrainConfig(epochs=np.int64(3), batch_size=np.int32(8))
    assert cfg == TrainConfig(epochs=3, batch_size=8)
    assert config_hash(cfg) == config_hash(TrainConfig(epochs=3, batch_size=8))  # same run key
    with pytest.raises(ValueError, match=r"bits must be an integer >= 1, got float 1.5"):
        as_count(1.5, "bits", minimum=1)


# ==============================================================================================
# clear errors instead of tracebacks
# ==============================================================================================
@fault("results-root-file", "clear errors", "results root that is a file", CLEAR_ERROR)
def _(ctx):
    blocker = ctx.tmp / "results"
    blocker.write_text("x")
    rc, _, err = reproduce_cli(ctx, "--only", "01", "--results-root", str(blocker))
    one_line_error(rc, err, f"{blocker} is a file, not a folder", "move that file away")


@fault("results-root-read-only", "clear errors", "results root on a read-only file system",
       CLEAR_ERROR)
def _(ctx):
    root = ctx.tmp / "ro"
    with read_only_dir(ctx, root):
        rc, _, err = reproduce_cli(ctx, "--only", "01", "--results-root", str(root))
    one_line_error(rc, err, f"cannot write to the results folder {root}/smoke/notebooks",
                   "read-only", "--results-root")


@fault("cache-read-only", "clear errors", "cache folder on a read-only file system", CLEAR_ERROR)
def _(ctx):
    cache = ctx.tmp / "rocache"
    with read_only_dir(ctx, cache):
        ctx.capsys.readouterr()
        from brcd_lib.experiments.train import main

        rc = main(["--profile", "smoke", "--cache-dir", str(cache)])
        err = ctx.capsys.readouterr().err
    one_line_error(rc, err, f"cannot write to the cache folder {cache}", "read-only", "BRCD_CACHE")


@fault("cache-disk-full", "clear errors", "disk full under the cache during a run", CLEAR_ERROR)
def _(ctx):
    cache = ctx.tmp / "fullcache"
    with full_disk(ctx, cache):
        ctx.capsys.readouterr()
        from brcd_lib.experiments.train import main

        rc = main(["--profile", "smoke", "--role", "teacher", "--cache-dir", str(cache)])
        err = ctx.capsys.readouterr().err
    one_line_error(rc, err, f"cannot write {cache}/", "no space left on the device",
                   "free space there")


@fault("results-disk-full", "clear errors", "disk full under the results folder (a notebook "
       "writing a table)", CLEAR_ERROR)
def _(ctx):
    import pandas as pd

    from brcd_lib.io import StorageError
    from brcd_lib.reporting.outputs import Outputs

    root = ctx.tmp / "fullresults"
    with full_disk(ctx, root):
        out = Outputs(results_root=str(root), profile="smoke")
        with pytest.raises(StorageError, match=f"cannot write {root}/smoke/tables/t.csv: no space "
                                               "left on the device"):
            out.table(pd.DataFrame({"a": [1.0] * 20000}), "t")


@fault("notebook-error-line", "clear errors", "a notebook that raises (e.g. its disk is full): "
       "what the runner prints", CLEAR_ERROR)
def _(ctx):
    from papermill.exceptions import PapermillExecutionError

    err = PapermillExecutionError(cell_index=3, exec_count=3, source="x", ename="StorageError",
                                  evalue="cannot write /r/t.csv: no space left on the device",
                                  traceback=["..."])
    fake_papermill(ctx, fail=err)
    nbdir = notebook_dir(ctx.tmp)
    from brcd_lib.experiments import reproduce

    ctx.mp.setattr(reproduce, "list_notebooks", lambda d=None: sorted(
        str(p) for p in nbdir.glob("*.ipynb")))
    rc, _, stderr = reproduce_cli(ctx, "--only", "01", "--results-root", str(ctx.tmp / "r"))
    one_line_error(rc, stderr, "notebook 01_a.ipynb failed: StorageError: cannot write /r/t.csv",
                   "01_a.failed.ipynb", code=1)
    log = json.loads((ctx.tmp / "r" / "smoke" / "run_log.json").read_text())
    assert log["notebooks"]["01_a.ipynb"]["status"] == "failed: PapermillExecutionError"


@fault("threads-abc", "clear errors", "BRCD_THREADS=abc", CLEAR_ERROR)
def _(ctx):
    ctx.mp.setenv("BRCD_THREADS", "abc")
    rc, _, err = reproduce_cli(ctx, "--only", "01", "--results-root", str(ctx.tmp / "r"))
    one_line_error(rc, err, "BRCD_THREADS must be a positive integer", "got 'abc'")


@fault("workers-abc", "clear errors", "BRCD_WORKERS=two", CLEAR_ERROR)
def _(ctx):
    ctx.mp.setenv("BRCD_WORKERS", "two")
    rc, _, err = reproduce_cli(ctx, "--only", "01", "--results-root", str(ctx.tmp / "r"))
    one_line_error(rc, err, "BRCD_WORKERS must be a positive integer", "got 'two'")


@fault("list-file-latin1", "clear errors", "a list file that is not UTF-8", CLEAR_ERROR)
def _(ctx):
    from brcd_lib.data.listfile import read_list_file

    path = ctx.tmp / "train.txt"
    path.write_bytes(b"a.jpg 0 1\nb\xe9.jpg 1 0\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(path))} is not UTF-8 text .* line 2\\); "
                                         "list files must be UTF-8: convert it"):
        read_list_file(path)


@fault("run-log-damaged", "clear errors", "a damaged run_log.json", CLEAR_ERROR)
def _(ctx):
    log = ctx.tmp / "r" / "smoke" / "run_log.json"
    log.parent.mkdir(parents=True)
    log.write_text('{"notebooks": {')
    rc, _, err = reproduce_cli(ctx, "--only", "01", "--results-root", str(ctx.tmp / "r"))
    one_line_error(rc, err, f"run log {log} is damaged", "git checkout", "or delete it")


@fault("marker-damaged", "clear errors", "a damaged finished-notebook marker", CORRECT)
def _(ctx):
    from brcd_lib.experiments import reproduce

    ran, kw = fake_runs(ctx)
    reproduce.run("smoke", **kw)
    marker = next((ctx.tmp / "c" / "reproduce").glob("smoke-*.json"))
    marker.write_text("{garbage")
    with pytest.warns(RuntimeWarning, match=f"finished-notebook marker {re.escape(str(marker))} "
                                            "is damaged"):
        reproduce.run("smoke", **kw)
    assert ran == ["01_a.ipynb", "02_b.ipynb"] * 2  # treated as unfinished: both rerun
    assert sorted(json.loads(marker.read_text())) == ["01_a.ipynb", "02_b.ipynb"]


for _field, _value, _msg in (("epochs", 0, "TrainConfig.epochs must be an integer >= 1"),
                             ("eval_every", 0, "TrainConfig.eval_every must be an integer >= 1"),
                             ("batch_size", 0, "TrainConfig.batch_size must be an integer >= 1"),
                             ("lr", 0.0, "TrainConfig.lr must be a positive finite number")):
    def _check(ctx, _field=_field, _value=_value, _msg=_msg):
        rc, err = train_cli(ctx, "--role", "teacher", "--set", f"teacher_train.{_field}={_value}")
        one_line_error(rc, err, f"teacher_train.{_field}: {_msg}", f"got {_value!r}")
        assert not (ctx.tmp / "cache" / "runs").exists()  # nothing ran
    fault(f"set-{_field}", "clear errors", f"--set teacher_train.{_field}={_value}",
          CLEAR_ERROR)(_check)


@fault("device-nope", "clear errors", "--device nope (the real command line)", CLEAR_ERROR,
       slow=True)
def _(ctx):
    done = subprocess.run([sys.executable, "-m", "brcd_lib.train", "--profile", "smoke",
                           "--device", "nope", "--cache-dir", str(ctx.tmp / "cache")],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)
    one_line_error(done.returncode, done.stderr, "unknown device 'nope'", "use cpu, cuda")


@fault("device-cuda-no-gpu", "clear errors", "--device cuda on a machine without a GPU",
       CLEAR_ERROR)
def _(ctx):
    if torch.cuda.is_available():
        ctx.mp.setattr(torch.cuda, "is_available", lambda: False)
    rc, err = train_cli(ctx, "--device", "cuda")
    one_line_error(rc, err, "device 'cuda' needs a CUDA GPU", "use --device cpu")


@fault("output-dir-file", "clear errors", "--output-dir pointing at a file (was reported after "
       "training)", CLEAR_ERROR)
def _(ctx):
    target = ctx.tmp / "out.json"
    target.write_text("{}")
    rc, err = train_cli(ctx, "--output-dir", str(target))
    one_line_error(rc, err, f"--output-dir {target} is a file, not a folder")
    assert not (ctx.tmp / "cache" / "runs").exists()  # checked before training


@fault("only-unknown", "clear errors", "--only 99", CLEAR_ERROR)
def _(ctx):
    rc, _, err = reproduce_cli(ctx, "--only", "99", "--results-root", str(ctx.tmp / "r"))
    one_line_error(rc, err, "--only '99' matches no notebook; available: 01_data_protocols.ipynb")


@fault("cache-dir-file", "clear errors", "--cache-dir pointing at a file", CLEAR_ERROR)
def _(ctx):
    target = ctx.tmp / "cachefile"
    target.write_text("")
    from brcd_lib.experiments.train import main

    ctx.capsys.readouterr()
    rc = main(["--profile", "smoke", "--cache-dir", str(target)])
    one_line_error(rc, ctx.capsys.readouterr().err, f"cache folder {target} is a file")


# ==============================================================================================
# leftovers and file modes
# ==============================================================================================
@fault("leftover-tmp-ipynb", "leftovers", "*.tmp.ipynb left by a killed runner", CORRECT)
def _(ctx):
    from brcd_lib.experiments import reproduce

    fake_papermill(ctx)
    nbdir = notebook_dir(ctx.tmp)
    out = ctx.tmp / "r" / "smoke" / "notebooks"
    out.mkdir(parents=True)
    stale = out / "02_b.ipynb.tmp.ipynb"
    stale.write_text("half")
    busy = out / "03_c.ipynb.tmp.ipynb"  # another runner is executing 03 right now
    busy.write_text("running")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f'''
        import time
        from brcd_lib.io import file_lock
        with file_lock({str(out / "03_c.ipynb")!r}):
            print("held", flush=True)
            time.sleep(60)
    ''')], env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        reproduce.run("smoke", results_root=str(ctx.tmp / "r"), notebook_dir=str(nbdir),
                      cache_dir=str(ctx.tmp / "c"), only=["01"])
    finally:
        holder.kill()
        holder.wait()
    assert not stale.exists() and busy.exists()
    assert f"[gone] notebooks/{stale.name}" in ctx.capsys.readouterr().out


@fault("leftover-cache-tmp", "leftovers", "*.pt.XXXX.tmp in the cache after a killed run",
       CORRECT)
def _(ctx):
    from brcd_lib.experiments.experiment import Experiment

    cache = ctx.tmp / "cache"
    stale = cache / "features" / ".abc.pt.a1b2c3d4.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 3600,) * 2)
    young = cache / "runs" / "smoke" / "teacher-x" / ".last.pt.zz99yy88.tmp"
    young.parent.mkdir(parents=True)
    young.write_bytes(b"being written")  # newer than this process: kept
    Experiment("smoke", cache_dir=str(cache), progress=False)
    assert not stale.exists() and young.exists()


@fault("modes-figures-kmeans", "leftovers", "figures and k-means caches written with mode 0600",
       CORRECT)
def _(ctx):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from brcd_lib.analysis.plots import save_figure
    from brcd_lib.distill.clustering import cached_kmeans, kmeans_cache_path

    fig = plt.figure()
    path = save_figure(fig, ctx.tmp / "figs" / "f.png")
    plt.close(fig)
    codes = _codes(40)
    kw = dict(n_clusters=3, seed=0, n_init=1, cache_dir=ctx.tmp / "clusters", cache_key="t")
    cached_kmeans(codes, **kw)
    for p in (path, kmeans_cache_path(codes, **kw)):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o644, p


# ==============================================================================================
# issue #27, a clean first hour: the runner, --compare, settings and library inputs
# ==============================================================================================
FIRST_HOUR = "first hour (#27)"


def _rows_csv(path: Path, seeds=(0,), value=0.5) -> None:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([dict(method=m, variant=m, bits=16, paradigm="symmetric", seed=s, value=value,
                       status="ok") for m in ("kd", "brcd") for s in seeds]).to_csv(path,
                                                                                    index=False)


def _fake_rerun(ctx, *, seeds=(0,), tables=("main_rows.csv",)) -> list[str]:
    """reproduce.run replaced by one that writes the fresh tables (no kernel)."""
    from brcd_lib.experiments import reproduce

    calls = []

    def run(profile, *, results_root=None, **kw):
        calls.append(results_root)
        for name in tables:
            _rows_csv(Path(results_root) / profile / "tables" / name, seeds)
        return {}

    ctx.mp.setattr(reproduce, "run", run)
    return calls


@fault("compare-missing-table", FIRST_HOUR, "--compare after deleting a committed table "
       "(main_rows.csv): was PASS, 5 tables, exit 0", CLEAR_ERROR)
def _(ctx):
    committed = ctx.tmp / "committed" / "smoke" / "tables"
    _rows_csv(committed / "teachers_rows.csv")  # main_rows.csv deleted, teachers kept
    _fake_rerun(ctx, tables=("teachers_rows.csv", "main_rows.csv"))
    rc, out, _ = reproduce_cli(ctx, "--compare", "--committed-root", str(ctx.tmp / "committed"),
                               "--results-root", str(ctx.tmp / "fresh"))
    assert rc == 1
    assert "PASS teachers" in out and "FAIL main" in out
    assert f"the committed table {committed / 'main_rows.csv'} is missing" in out
    assert "restore it (git checkout -- <file>)" in out
    assert "FAIL: profile smoke, 2 tables" in out


@fault("compare-seed-lists", FIRST_HOUR, "--compare after changing a profile's seed list: "
       "notebooks skipped as finished, old results compared (PASS), and with --force a FAIL that "
       "never said the seeds differ", CLEAR_ERROR)
def _(ctx):
    from brcd_lib.experiments import reproduce

    committed = ctx.tmp / "committed" / "smoke"
    _rows_csv(committed / "tables" / "main_rows.csv", seeds=(0,))
    settings = reproduce.profile_settings("smoke")
    (committed / "run_log.json").write_text(json.dumps(
        {"notebooks": {}, "settings": {**settings, "seeds": [0]}}))
    ctx.mp.setattr(reproduce, "profile_settings",
                   lambda p: {**settings, "seeds": [0, 1]})  # the edited profile
    _fake_rerun(ctx, seeds=(0, 1))
    rc, out, _ = reproduce_cli(ctx, "--compare", "--committed-root", str(ctx.tmp / "committed"),
                               "--results-root", str(ctx.tmp / "fresh"))
    assert rc == 1
    assert "seed lists differ: committed 0, rerun 0, 1" in out
    assert "settings differ from those of the committed results (seeds: [0] -> [0, 1])" in out
    # the same seeds, settings recorded alike: PASS
    ctx.mp.setattr(reproduce, "profile_settings", lambda p: {**settings, "seeds": [0]})
    _fake_rerun(ctx, seeds=(0,))
    rc, out, _ = reproduce_cli(ctx, "--compare", "--committed-root", str(ctx.tmp / "committed"),
                               "--results-root", str(ctx.tmp / "fresh2"))
    assert rc == 0 and "lists differ" not in out and "settings differ" not in out


@fault("library-edit-skipped", FIRST_HOUR, "reproduce after editing library code (BRCD "
       "temperature 0.3 -> 0.9) or a profile's settings: every notebook skipped as finished",
       CORRECT)
def _(ctx):
    from brcd_lib.experiments import reproduce, runstore

    ran, kw = fake_runs(ctx)
    reproduce.run("smoke", **kw)
    reproduce.run("smoke", **kw)
    assert ran == ["01_a.ipynb", "02_b.ipynb"]  # unchanged: skipped
    ctx.mp.setattr(runstore, "library_fingerprint", lambda: "edited-library")
    ctx.capsys.readouterr()
    reproduce.run("smoke", **kw)
    assert ran[2:] == ["01_a.ipynb", "02_b.ipynb"]
    assert "[run ] 01_a.ipynb (1/2, profile smoke; the library code (brcd_lib) changed since " \
           "it finished)" in ctx.capsys.readouterr().out
    settings = reproduce.profile_settings("smoke")
    ctx.mp.setattr(reproduce, "profile_settings", lambda p: {**settings, "seeds": [0, 1]})
    reproduce.run("smoke", **kw)
    assert ran[4:] == ["01_a.ipynb", "02_b.ipynb"]
    assert "the profile's settings changed since it finished" in ctx.capsys.readouterr().out
    log = json.loads((ctx.tmp / "r" / "smoke" / "run_log.json").read_text())
    assert log["library"] == "edited-library" and log["settings"]["seeds"] == [0, 1]


@fault("library-fingerprint", FIRST_HOUR, "the library fingerprint: a code edit anywhere in "
       "brcd_lib changes it, a docstring or comment edit does not", CORRECT)
def _(ctx):
    import shutil

    from brcd_lib.experiments import runstore

    copy = ctx.tmp / "brcd_lib"
    shutil.copytree(ROOT / "brcd_lib", copy, ignore=shutil.ignore_patterns("*.pt", "__pycache__"))
    ctx.mp.setattr(runstore, "_PACKAGE", copy)
    base = runstore.library_fingerprint()
    brcd = copy / "distill" / "brcd.py"
    text = brcd.read_text()
    old = "        temperature: float = 0.3,\n        alpha: float = 0.8,\n        margin"
    assert old in text
    brcd.write_text(text.replace('"""BRCD: bit-mask', '"""BRCD (edited docstring): bit-mask', 1)
                    + "\n# a comment\n")
    assert runstore.library_fingerprint() == base
    brcd.write_text(text.replace(old, old.replace("0.3", "0.9")))
    assert runstore.library_fingerprint() != base
    brcd.write_text(text)
    (copy / "reporting" / "report.py").write_text((copy / "reporting" / "report.py").read_text()
                                                 + "\nX = 1\n")
    assert runstore.library_fingerprint() != base  # reporting code counts too


@fault("compare-symlinked-root", FIRST_HOUR, "--compare --results-root <a symbolic link to the "
       "committed root>: passed the guard and overwrote the committed main_rows.csv", CLEAR_ERROR)
def _(ctx):
    committed = ctx.tmp / "committed"
    table = committed / "smoke" / "tables" / "main_rows.csv"
    _rows_csv(table)
    before = table.read_bytes(), table.stat().st_mtime_ns
    (ctx.tmp / "link").symlink_to(committed)
    calls = _fake_rerun(ctx)
    rc, _, err = reproduce_cli(ctx, "--compare", "--committed-root", str(committed),
                               "--results-root", str(ctx.tmp / "link"))
    one_line_error(rc, err, f"the rerun folder {ctx.tmp / 'link' / 'smoke'} (real path "
                   f"{committed / 'smoke'}) is the committed results", "pass another folder")
    rc, _, err = reproduce_cli(ctx, "--compare", "--committed-root", str(committed),
                               "--results-root", str(committed / "smoke" / "x"))
    one_line_error(rc, err, "lies inside the committed results")
    assert calls == [] and (table.read_bytes(), table.stat().st_mtime_ns) == before


@fault("only-repeated", FIRST_HOUR, "--only 01 --only 03 (ran only 03: the last flag won)",
       CORRECT)
def _(ctx):
    from brcd_lib.experiments import reproduce

    ran = fake_papermill(ctx)
    nbdir = notebook_dir(ctx.tmp, names=("01_a.ipynb", "02_b.ipynb", "03_c.ipynb"))
    ctx.mp.setattr(reproduce, "list_notebooks", lambda d=None: sorted(
        str(p) for p in nbdir.glob("*.ipynb")))
    rc, _, err = reproduce_cli(ctx, "--only", "01", "--only", "03", "--results-root",
                               str(ctx.tmp / "r"))
    assert rc == 0, err
    assert ran == ["01_a.ipynb", "03_c.ipynb"]
    assert reproduce.get_args_parser().parse_args(["--only", "1", "2", "--only", "3"]).only == \
        ["1", "2", "3"]


@fault("brcd-one-cluster", FIRST_HOUR, "--set brcd.n_clusters=1: every negative removed, loss "
       "exactly 0, the no-KD student's metrics returned with exit 0", CLEAR_ERROR)
def _(ctx):
    rc, err = train_cli(ctx, "--set", "brcd.n_clusters=1")
    one_line_error(rc, err, "n_clusters=1 with the cluster-based handling (use_cluster=True) "
                   "removes every negative", "the BRCD loss is exactly 0",
                   "--set brcd.n_clusters=10")
    assert not (ctx.tmp / "cache" / "runs").exists()  # rejected before any training
    from brcd_lib.distill import get_distiller

    assert get_distiller("brcd", n_clusters=1, use_cluster=False).n_clusters == 1  # no removal


@fault("brcd-infinite-temperature", FIRST_HOUR, "brcd_loss(..., temperature=inf): accepted, a "
       "constant loss without gradient", CLEAR_ERROR)
def _(ctx):
    from brcd_lib.distill import BRCDDistiller, brcd_loss

    s = torch.randn(4, 8, requires_grad=True)
    t, t2 = torch.sign(torch.randn(4, 8)), torch.sign(torch.randn(4, 8))
    for bad in (float("inf"), float("nan"), 0.0, -0.3, "warm"):
        with pytest.raises(ValueError, match=r"temperature must be a finite number > 0 \(the "
                                             r"paper's tau is 0.3\); got "):
            brcd_loss(s, t, t2, temperature=bad)
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            BRCDDistiller(temperature=bad)
    with pytest.raises(ValueError, match="got inf: every logit would be 0, a constant loss"):
        brcd_loss(s, t, t2, temperature=float("inf"))
    brcd_loss(s, t, t2, temperature=0.3).backward()
    assert float(s.grad.abs().sum()) > 0


@fault("file-size-limit", FIRST_HOUR, "a file-size limit (ulimit -f): OSError EFBIG, then "
       "torch.save's RuntimeError", CLEAR_ERROR)
def _(ctx):
    import resource

    from brcd_lib.io import StorageError, atomic_save

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    target = ctx.tmp / "cache" / "big.pt"
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))  # Python ignores SIGXFSZ
    try:
        with pytest.raises(StorageError) as err:
            atomic_save({"w": torch.zeros(1 << 20)}, target)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(err.value)
    assert message.startswith(f"cannot write {target}: the file is larger than this process may "
                              "write (File too large; the process's file-size limit, `ulimit -f`, "
                              "is 1048576 bytes); raise the limit (`ulimit -f unlimited`")
    assert err.value.errno == errno.EFBIG
    assert sorted(os.listdir(target.parent)) == []  # no half-written file


@fault("n-val-zero", FIRST_HOUR, "--set data.protocol.n_val=0: trained, then failed at the first "
       "validation (mat1 and mat2 shapes cannot be multiplied)", CLEAR_ERROR)
def _(ctx):
    rc, err = train_cli(ctx, "--role", "teacher", "--set", "data.protocol.n_val=0")
    one_line_error(rc, err, "n_val=0 leaves no validation queries",
                   "set n_val to 1 or more (e.g. --set data.protocol.n_val=10)")
    assert not (ctx.tmp / "cache" / "runs").exists()
    from brcd_lib.data import get_dataset

    with pytest.raises(ValueError, match="n_val=0 leaves no validation queries"):
        get_dataset("digits", n_val=0, split_dir=str(ctx.tmp / "splits"))


@fault("ctrl-c-runner", FIRST_HOUR, "Ctrl-C during python -m brcd_lib.reproduce: a 47-line "
       "papermill/asyncio traceback and a half-executed *.tmp.ipynb", CLEAR_ERROR)
def _(ctx):
    import papermill

    from brcd_lib.experiments import reproduce

    nbdir = notebook_dir(ctx.tmp)
    ctx.mp.setattr(reproduce, "list_notebooks", lambda d=None: sorted(
        str(p) for p in nbdir.glob("*.ipynb")))

    def execute(nb, out, **kw):
        Path(out).write_text("{half")  # papermill writes the copy cell by cell
        if nb.endswith("02_b.ipynb"):
            raise KeyboardInterrupt
        Path(out).write_text(Path(nb).read_text())

    ctx.mp.setattr(papermill, "execute_notebook", execute)
    rc, _, err = reproduce_cli(ctx, "--results-root", str(ctx.tmp / "r"))
    one_line_error(rc, err, "python -m brcd_lib.reproduce: interrupted during 02_b.ipynb (its "
                   "partial executed copy was removed); the notebooks that finished are kept: "
                   "run the same command again to continue", code=130)
    left = os.listdir(ctx.tmp / "r" / "smoke" / "notebooks")
    assert sorted(n for n in left if not n.endswith(".lock")) == ["01_a.ipynb"]


@fault("ctrl-c-runner-real", FIRST_HOUR, "Ctrl-C (SIGINT to the process group, as a terminal "
       "sends it) while a real notebook kernel runs", CLEAR_ERROR, slow=True)
def _(ctx):
    import signal

    env = {**os.environ, "PYTHONPATH": str(ROOT), "BRCD_CACHE": str(ctx.tmp / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "brcd_lib.reproduce", "--profile", "smoke",
                             "--only", "02", "--results-root", str(ctx.tmp / "r")], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout.readline().startswith("[run ] 02_teachers.ipynb")
    time.sleep(4)  # the kernel is executing the notebook
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = "\n".join(ln for ln in err.splitlines() if "IPKernelApp" not in ln)
    one_line_error(proc.returncode, err, "interrupted during 02_teachers.ipynb", code=130)
    assert [n for n in os.listdir(ctx.tmp / "r" / "smoke" / "notebooks")
            if not n.endswith(".lock")] == []


@fault("distill-exports", FIRST_HOUR, "from brcd_lib.distill import brcd_loss (where the README "
       "places it): ImportError", CORRECT)
def _(ctx):
    from brcd_lib.distill import BRCDDistiller, bit_masks, brcd_loss, offset_alpha
    from brcd_lib.distill import brcd as module

    assert (brcd_loss, bit_masks, offset_alpha, BRCDDistiller) == (
        module.brcd_loss, module.bit_masks, module.offset_alpha, module.BRCDDistiller)
    readme = (ROOT / "README.md").read_text()
    row = next(ln for ln in readme.splitlines() if ln.startswith("| `brcd_lib/distill/` |"))
    for name in ("brcd_loss", "bit_masks", "offset_alpha"):
        assert f"`{name}`" in row


@fault("class-negatives-replacement", FIRST_HOUR, "negatives='class' drew with replacement "
       "(26 repeats per row of 500 from a pool of 4,500); the release draws without replacement "
       "when the pool is large enough", CORRECT)
def _(ctx):
    from brcd_lib.distill.memory import MomentumMemory

    labels = torch.nn.functional.one_hot(torch.arange(5000) % 10, 10).float()
    mem = MomentumMemory(n_items=5000, dim=4, momentum=0.5, seed=0)
    neg = mem.sample_class_negatives(torch.arange(64), 500, labels)
    for i, row in enumerate(neg.tolist()):
        assert len(set(row)) == 500  # k distinct items: the pool (4,500) holds at least k
        assert all(j % 10 != i % 10 for j in row)
    small = torch.nn.functional.one_hot(torch.arange(300) % 10, 10).float()  # pool 270 < k
    mem = MomentumMemory(n_items=300, dim=4, momentum=0.5, seed=0)
    neg = mem.sample_class_negatives(torch.tensor([0, 1]), 500, small)
    assert neg.shape == (2, 500) and len(set(neg[0].tolist())) < 270 + 1
    assert all(j % 10 != 0 for j in neg[0].tolist())
    # mixed rows: a row whose pool is large enough has distinct draws, the other repeats
    mixed = torch.zeros(12, 2)
    mixed[:10, 0] = 1
    mixed[10:, 1] = 1  # class 1 has 2 items: its rows' pool holds 10, class 0 rows' holds 2
    neg = MomentumMemory(n_items=12, dim=2, momentum=0.5, seed=1).sample_class_negatives(
        torch.tensor([0, 10]), 6, mixed)
    assert set(neg[0].tolist()) <= {10, 11} and len(set(neg[1].tolist())) == 6
    again = MomentumMemory(n_items=12, dim=2, momentum=0.5, seed=1).sample_class_negatives(
        torch.tensor([0, 10]), 6, mixed)
    assert torch.equal(neg, again)  # seeded


@fault("executed-copy-parameters", FIRST_HOUR, "executed copies showed two parameter cells "
       "(profile = \"smoke\", then the injected \"digits\")", CORRECT)
def _(ctx):
    from brcd_lib.experiments.reproduce import merge_injected_parameters

    def cell(src, tags, n=None):
        return {"cell_type": "code", "source": src, "metadata": {"tags": tags}, "outputs": [],
                "execution_count": n}

    cells = [cell('profile = "smoke"      # smoke, digits\nresults_root = None    # None: ...\n'
                  'progress = True        # bars', ["parameters"], 1),
             cell('# Parameters\nprofile = "digits"\nprogress = False\nextra = 3\n',
                  ["injected-parameters"], 2),
             cell("x = 1", [], 3)]
    merged = merge_injected_parameters(cells)
    assert len(merged) == 2 and merged[1]["source"] == "x = 1"
    assert "".join(merged[0]["source"]) == ('profile = "digits"     # smoke, digits\n'
                                            'results_root = None    # None: ...\n'
                                            'progress = False       # bars\nextra = 3')
    assert merged[0]["metadata"]["tags"] == ["parameters"] and merged[0]["execution_count"] == 2
    assert merge_injected_parameters(cells[:1]) == cells[:1]  # nothing injected


# ==============================================================================================
# the paper profile
# ==============================================================================================
covered("rehearsal-cifar", "paper profile", "every notebook with the paper's backbones (CIFAR-10 "
        "format, random weights, CPU)", CORRECT,
        "tests/test_rehearsal.py::test_paper_rehearsal_runs_every_notebook[paper_rehearsal]")
covered("rehearsal-lists", "paper profile", "every notebook with the paper's backbones (NUS-WIDE "
        "list files, multi-label, random weights, CPU)", CORRECT,
        "tests/test_rehearsal.py::test_paper_rehearsal_runs_every_notebook[paper_rehearsal_lists]")
covered("paper-preflight", "paper profile", "paper profile started without a GPU or data",
        CLEAR_ERROR, "tests/test_rehearsal.py::test_paper_preflight_names_what_is_missing")


# ==============================================================================================
# the tests
# ==============================================================================================
def _param(f: Fault):
    return pytest.param(f.id, id=f.id, marks=[pytest.mark.slow] if f.slow else [])


@pytest.mark.parametrize("case", [_param(f) for f in FAULTS if f.elsewhere is None])
def test_fault(case, tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("BRCD_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.delenv("BRCD_THREADS", raising=False)
    monkeypatch.delenv("BRCD_WORKERS", raising=False)
    caplog.set_level(logging.WARNING)
    CHECKS[case](Ctx(tmp_path, monkeypatch, capsys, caplog))


def test_cases_elsewhere_exist():
    for f in FAULTS:
        if f.elsewhere is None:
            continue
        path, _, test = f.elsewhere.partition("::")
        name = test.split("[")[0]
        assert f"def {name}(" in (ROOT / path).read_text(), f.elsewhere
    ids = [f.id for f in FAULTS]
    assert len(ids) == len(set(ids))


TALLY_START, TALLY_END = "<!-- fault-tally:start -->", "<!-- fault-tally:end -->"


def tally() -> str:
    """The Markdown block of docs/reliability.md, from :data:`FAULTS`."""
    n = len(FAULTS)
    count = {k: sum(f.expect == k for f in FAULTS) for k in (CLEAR_ERROR, CORRECT, NO_ORPHAN)}
    lines = [TALLY_START,
             "| tally (tests/test_faults.py, generated) | cases |", "|---|---|",
             f"| fault cases tried | {n} |",
             f"| clear error (the value or path and the fix; a CLI exits with one line) | "
             f"{count[CLEAR_ERROR]} |",
             f"| correct behaviour (rebuilt, retrained with a warning, rejected, cleaned up) | "
             f"{count[CORRECT]} |",
             f"| SIGKILL cases with no surviving worker | {count[NO_ORPHAN]} |",
             "| silent wrong answers | 0 |",
             "| tracebacks for user errors | 0 |",
             "| orphaned processes | 0 |",
             "",
             "| group | case | fault | outcome | test |", "|---|---|---|---|---|"]
    for f in FAULTS:
        where = f.elsewhere or f"tests/test_faults.py::test_fault[{f.id}]"
        lines.append(f"| {f.group} | `{f.id}` | {f.fault} | {f.expect} | `{where}` |")
    lines.append(TALLY_END)
    return "\n".join(lines)


def test_the_tally_in_the_docs_is_the_suites():
    doc = (ROOT / "docs" / "reliability.md").read_text()
    start, end = doc.find(TALLY_START), doc.find(TALLY_END)
    assert start >= 0 and end > start, "docs/reliability.md lacks the fault tally block"
    assert doc[start:end + len(TALLY_END)] == tally(), \
        "the tally is stale: run `python tests/test_faults.py --write`"


# ==============================================================================================
# a killed pool worker (issue 27, item 14; branch cluster-executor)
# ==============================================================================================
# Before: SIGKILL of one pool worker failed the whole notebook with BrokenProcessPool and no run
# named. Now the pool is replaced, the run whose worker died is named (with its log) and
# resubmitted once, and resumes from its last.pt; a run that keeps killing its worker is reported
# by name with its log and the grid's serial pass trains it in the calling process.
covered("pool-worker-killed", "processes", "SIGKILL of one pool worker while it trains a grid's "
        "run", CORRECT, "tests/test_faults.py::test_killed_pool_worker_is_named_and_its_run_resumes")


@pytest.mark.slow
def test_killed_pool_worker_is_named_and_its_run_resumes(tmp_path, monkeypatch, caplog):
    import cluster_jobs

    from brcd_lib.experiments.experiment import Experiment

    monkeypatch.delenv("BRCD_WORKERS", raising=False)
    monkeypatch.delenv("BRCD_EXECUTOR", raising=False)
    caplog.set_level(logging.WARNING)
    exp = Experiment(cluster_jobs.killed_grid_profile(), cache_dir=str(tmp_path), progress=False,
                     workers=2)
    if exp.workers < 2:
        pytest.skip("one CPU: the grid runs no worker processes")
    killed = cluster_jobs.grid_with_a_killed_worker(exp)
    named = [r.getMessage() for r in caplog.records
             if f"worker process {killed['pid']} died (SIGKILL) while training run "
             in r.getMessage()]
    assert len(named) == 1, caplog.text
    log_path = named[0].split("(log: ")[1].split(")")[0]
    text = Path(log_path).read_text()
    assert f"resumed from {killed['run_dir']}/last.pt at epoch" in text


if __name__ == "__main__":
    if "--write" in sys.argv:
        path = ROOT / "docs" / "reliability.md"
        doc = path.read_text()
        start, end = doc.find(TALLY_START), doc.find(TALLY_END)
        path.write_text(doc[:start] + tally() + doc[end + len(TALLY_END):])
    print(tally())


# ==============================================================================================
# issue 27, metric faults (items 11 and the two metric parts of 15), from branch retrieval-1m.
# Plain tests, not yet in FAULTS: registering them (fault(...) before `test_fault`, then
# `python tests/test_faults.py --write`) changes the tally in docs/reliability.md, which the lead
# merges once with the other sections.
#   11  (n, 1) label column: before, read as one-class multi-hot (a silent wrong value);
#       now a ValueError naming both readings and both fixes.
#   15  codes on the 'meta' device: before, NotImplementedError from .cpu(); now a ValueError
#       naming the device and the fix. bfloat16 codes: before, TypeError from .numpy(); now the
#       same value as float32 codes (converted block by block, exactly).
# ==============================================================================================
def _metric_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    q = np.where(rng.random((20, 16)) < 0.5, -1.0, 1.0)
    d = np.where(rng.random((200, 16)) < 0.5, -1.0, 1.0)
    return q, d, rng.integers(0, 2, 20), rng.integers(0, 2, 200)


def test_issue27_11_label_column_is_refused_not_read_as_one_class():
    from brcd_lib.metrics import map_at_k

    q, d, ql, dl = _metric_case()
    as_ids = map_at_k(q, d, ql, dl, 50)
    for q_labels, d_labels, what in ((ql[:, None], dl[:, None], "query_labels"),
                                     (ql, dl[:, None], "db_labels")):
        with pytest.raises(ValueError, match=rf"{what} has shape \(\d+, 1\): a single column "
                                             r"reads either as class ids or as multi-hot labels "
                                             r"of one class.*labels\[:, 0\] or labels\.ravel\(\)"
                                             r".*one column per class"):
            map_at_k(q, d, q_labels, d_labels, 50)
    # the first fix it names is the class-id reading the user meant
    assert map_at_k(q, d, ql[:, None][:, 0], dl[:, None].ravel(), 50) == as_ids


def test_issue27_15_meta_device_codes_get_a_clear_error():
    from brcd_lib.metrics import map_at_k

    q, d, ql, dl = _metric_case()
    meta = torch.empty((20, 16), device="meta")
    with pytest.raises(ValueError, match=r"query_codes is a tensor on the 'meta' device, which has "
                                         r"a shape but no values; compute the codes .* on a real "
                                         r"device \(cpu or cuda\)"):
        map_at_k(meta, torch.from_numpy(d), ql, dl, 50)
    with pytest.raises(ValueError, match=r"db_codes is a tensor on the 'meta' device"):
        map_at_k(torch.from_numpy(q), torch.empty((200, 16), device="meta"), ql, dl, 50)


def test_issue27_15_bfloat16_codes_give_the_float32_value():
    from brcd_lib.metrics import map_at_k

    q, d, ql, dl = _metric_case()
    want = map_at_k(q, d, ql, dl, 50)
    got = map_at_k(torch.from_numpy(q).bfloat16(), torch.from_numpy(d).bfloat16(), ql, dl, 50)
    assert got == want
    assert map_at_k(torch.from_numpy(q).bfloat16(), torch.from_numpy(d).bfloat16(), ql, dl, 50,
                    backend="torch") == want

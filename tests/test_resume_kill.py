"""Interrupted runs: a student killed with SIGKILL and restarted ends exactly like an
uninterrupted run; cache entries that do not match their hash or size are rebuilt, never used.

The end-to-end test drives ``python -m brcd_lib.train`` in subprocesses on a shrunken smoke
profile (1 SimCLR epoch per backbone, a BiHalf teacher -- balanced bits, so k-means has distinct
codes to cluster after so little training --, 10 training images per class, 2 cached views) with
a checkpoint at every epoch. Every cache lives in ``tmp_path``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from brcd_lib.training import engine
from brcd_lib.data import SplitIntegrityWarning, get_dataset
from brcd_lib.distill.clustering import cached_kmeans, kmeans_cache_path
from brcd_lib.training.features import FeatureStore

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 8

# a small student of the smoke profile, with a last.pt checkpoint at every epoch
TRAIN_ARGS = [
    "--profile", "smoke", "--role", "student", "--bits", "16", "--method", "brcd", "--seed", "0",
    "--epochs", str(EPOCHS), "--eval-every", "1", "--patience", "100", "--feature-views", "2",
    "--set", "teacher.backbone.ssl_epochs=5", "--set", "student.backbone.ssl_epochs=1",
    "--set", "teacher.objective=bihalf", "--set", "teacher_train.epochs=10",
    "--set", "teacher_train.feature_views=2", "--set", "brcd.n_clusters=4",
    "--set", "data.protocol.n_train_per_class=10", "--no-progress",
]

# Runs brcd_lib.train as __main__ (what `python -m brcd_lib.train` does) with one change: after
# each student checkpoint the process sleeps, so that the test's SIGKILL lands between two
# checkpoints of a run that is still in progress.
SLOW_CHECKPOINTS = """
import runpy, sys, time
import brcd_lib.training.engine as engine
_save = engine.save_checkpoint
def _slow_save(path, **state):
    _save(path, **state)
    if "student-" in str(path) and str(path).endswith("last.pt"):
        time.sleep({delay})
engine.save_checkpoint = _slow_save
sys.argv = ["brcd_lib.train"] + {args!r}
runpy.run_module("brcd_lib.train", run_name="__main__", alter_sys=True)
"""


def _env(cache: Path) -> dict:
    env = dict(os.environ)
    env["BRCD_CACHE"] = str(cache)  # belt and braces: --cache-dir is passed as well
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"  # 2 busy cores: one thread per process is faster
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _cli(cache: Path, out: Path) -> list[str]:
    return TRAIN_ARGS + ["--cache-dir", str(cache), "--output-dir", str(out)]


def _student_dir(cache: Path) -> Path:
    found = sorted((cache / "runs" / "smoke").glob("student-*"))
    assert len(found) == 1, found
    return found[0]


def _heads(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {p: engine.load_checkpoint(str(run_dir / f"best_{p}.pt"))["head"]
            for p in ("symmetric", "asymmetric")}


@pytest.mark.slow
def test_sigkilled_student_resumes_to_the_uninterrupted_result(tmp_path):
    # 1. the uninterrupted reference run (teacher + student) in cache A
    cache_a, out_a = tmp_path / "A", tmp_path / "out_A"
    ref = subprocess.run([sys.executable, "-m", "brcd_lib.train", *_cli(cache_a, out_a)],
                         cwd=ROOT, env=_env(cache_a), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_dir = _student_dir(cache_a)
    ref_result = json.loads((ref_dir / "result.json").read_text())
    assert ref_result["epochs_run"] == EPOCHS

    # 2. cache B: everything of A except the student run (same teacher, backbones, features)
    cache_b, out_b = tmp_path / "B", tmp_path / "out_B"
    shutil.copytree(cache_a, cache_b, ignore=lambda d, names: [n for n in names
                                                               if n.startswith("student-")])
    assert not list((cache_b / "runs" / "smoke").glob("student-*"))

    # 3. start the student, wait for its first checkpoint, SIGKILL it
    code = SLOW_CHECKPOINTS.format(delay=2.0, args=_cli(cache_b, out_b))
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=_env(cache_b),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    last = None
    try:
        while time.time() < deadline and proc.poll() is None:
            found = list((cache_b / "runs" / "smoke").glob("student-*/last.pt"))
            if found:
                last = found[0]
                break
            time.sleep(0.02)
        assert last is not None, f"no checkpoint appeared; stderr: {proc.stderr.read()[-3000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    run_dir = last.parent
    assert run_dir.name == ref_dir.name  # same run key in both caches
    assert not (run_dir / "result.json").exists(), "the run finished before it was killed"
    killed = engine.load_checkpoint(str(last))
    assert 1 <= killed["epoch"] < EPOCHS and not killed["done"]

    # 4. restart: it resumes from last.pt and finishes
    again = subprocess.run([sys.executable, "-m", "brcd_lib.train", *_cli(cache_b, out_b)],
                           cwd=ROOT, env=_env(cache_b), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed from {last}" in again.stderr
    assert f"at epoch {killed['epoch']}" in again.stderr

    # 5. identical to the uninterrupted run: selected heads, metrics, validation history
    result = json.loads((run_dir / "result.json").read_text())
    assert result["key"] == ref_result["key"]
    assert result["metrics"] == ref_result["metrics"]
    assert result["best_epoch"] == ref_result["best_epoch"]
    assert result["history"] == ref_result["history"]
    ref_heads, heads = _heads(ref_dir), _heads(run_dir)
    for paradigm in ref_heads:
        assert ref_heads[paradigm].keys() == heads[paradigm].keys()
        for name, tensor in ref_heads[paradigm].items():
            assert torch.equal(tensor, heads[paradigm][name]), (paradigm, name)
    printed = json.loads(again.stdout)
    assert printed["metrics"] == ref_result["metrics"]
    written = json.loads(next(out_b.glob("*.json")).read_text())
    assert written["metrics"] == ref_result["metrics"]


# =============================================================================================
# cache entries that do not match are rebuilt with a warning, never used
# =============================================================================================
def _store_file(store: FeatureStore, key: str) -> Path:
    return Path(store.cache_dir) / f"{key}.pt"


def _counting_builder(value: torch.Tensor):
    calls = []

    def build():
        calls.append(1)
        return value.clone()

    return build, calls


@pytest.mark.parametrize("damage", ["hash", "size", "truncated", "key"])
def test_feature_cache_mismatch_is_rebuilt_with_warning(tmp_path, caplog, damage):
    value = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    key = "f" * 24
    build, calls = _counting_builder(value)
    FeatureStore(cache_dir=str(tmp_path)).get(key, build)
    path = _store_file(FeatureStore(cache_dir=str(tmp_path)), key)
    blob = torch.load(path, weights_only=True)
    if damage == "hash":        # same size, one value changed, stale hash
        blob["value"][0, 0] = 99.0
        torch.save(blob, path)
    elif damage == "size":      # a row missing, stale hash
        blob["value"] = blob["value"][:3]
        torch.save(blob, path)
    elif damage == "truncated":  # half a file
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:                       # another entry's content under this name
        blob["key"] = "0" * 24
        torch.save(blob, path)

    fresh = FeatureStore(cache_dir=str(tmp_path))  # no memory cache: reads the file
    build2, calls2 = _counting_builder(value)
    with caplog.at_level(logging.WARNING, logger="brcd_lib.training.features"):
        got = fresh.get(key, build2)
    assert calls2 == [1], "the damaged entry was used instead of rebuilt"
    assert torch.equal(got, value)
    assert any("rebuilding" in r.getMessage() and str(path) in r.getMessage()
               for r in caplog.records)
    # the rebuilt entry is valid again: it loads without a rebuild or a warning
    caplog.clear()
    build3, calls3 = _counting_builder(value)
    with caplog.at_level(logging.WARNING, logger="brcd_lib.training.features"):
        assert torch.equal(FeatureStore(cache_dir=str(tmp_path)).get(key, build3), value)
    assert calls3 == [] and not caplog.records


SMOKE_PROTOCOL = {"subset": 60, "n_query": 10, "n_val": 10, "n_train_per_class": 30, "top_k": 50}


@pytest.mark.parametrize("damage", ["content", "size", "sidecar"])
def test_split_file_mismatch_is_redrawn_with_warning(tmp_path, damage):
    first = get_dataset("digits", split_dir=tmp_path, seed=0, **SMOKE_PROTOCOL)
    files = sorted(tmp_path.glob("*.npz"))
    assert len(files) == 1
    path = files[0]
    sidecar = path.with_name(path.name + ".sha256")
    data = bytearray(path.read_bytes())
    if damage == "content":      # same size, one byte flipped (in the last index array)
        data[-200] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "size":       # truncated
        path.write_bytes(bytes(data[: len(data) - 100]))
    else:                        # a hash that belongs to another file
        sidecar.write_text("0" * 64 + f"  {path.name}\n")
    with pytest.warns(SplitIntegrityWarning, match="rejected because"):
        again = get_dataset("digits", split_dir=tmp_path, seed=0, **SMOKE_PROTOCOL)
    assert again.split_hash == first.split_hash  # redrawn from the seed: the same split
    for name in ("train", "val", "query", "database"):
        assert np.array_equal(getattr(again, name).labels, getattr(first, name).labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SplitIntegrityWarning)  # the saved file is valid again
        get_dataset("digits", split_dir=tmp_path, seed=0, **SMOKE_PROTOCOL)


def _codes(n=60, bits=16, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.where(rng.random((4, bits)) < 0.5, -1.0, 1.0)
    codes = centers[np.arange(n) % 4].copy()
    flip = rng.random(codes.shape) < 0.1
    codes[flip] *= -1
    return codes


@pytest.mark.parametrize("damage", ["digest", "size", "truncated"])
def test_kmeans_cache_mismatch_is_rebuilt_with_warning(tmp_path, damage):
    codes = _codes()
    kw = dict(n_clusters=4, seed=0, n_init=2, cache_dir=tmp_path, cache_key="teacher-x")
    ref = cached_kmeans(codes, **kw)
    path = kmeans_cache_path(codes, **kw)
    with np.load(path) as z:
        stored = {k: z[k] for k in z.files}
    if damage == "digest":       # another request's file under this name
        stored["digest"] = np.array("0" * 64)
        stored["labels"] = (stored["labels"] + 1) % 4
        np.savez(path, **stored)
    elif damage == "size":       # labels of fewer codes
        stored["labels"] = stored["labels"][:-5]
        np.savez(path, **stored)
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        again = cached_kmeans(codes, **kw)
    assert np.array_equal(again.labels, ref.labels)
    assert np.array_equal(again.centroids, ref.centroids)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        cached_kmeans(codes, **kw)  # the rebuilt file loads cleanly

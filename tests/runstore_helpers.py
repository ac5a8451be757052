"""Helpers shared by the run-store tests (test_runstore_exact.py, test_runstore_mutants.py).

``empty_cwd`` is an autouse fixture once a test module imports it: each test runs with the
working directory moved to an empty folder and fails if anything was written there, so that a
path missing its run folder would be looked up (or deleted) there instead of in the repository."""
from __future__ import annotations

import logging
import os

import pytest

from brcd_lib.experiments import runstore
from brcd_lib.training import engine


@pytest.fixture(autouse=True)
def empty_cwd(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield
    assert sorted(os.listdir(cwd)) == []  # nothing was written or looked up here


def run_files(run_dir) -> list[str]:
    """The names in a run folder, sorted."""
    return sorted(os.listdir(run_dir))


def store_warnings(caplog) -> list[str]:
    """The run store's own warnings (and worse) captured by ``caplog``, in order."""
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.WARNING and r.name == runstore.log.name]


def write_checkpoint(path, **state) -> None:
    """A checkpoint in the engine's current format holding ``state``."""
    engine.save_checkpoint(str(path), format=engine.CHECKPOINT_FORMAT, **state)

"""Shared fixtures: a cache folder of the test session, and the smoke profile executed once per
session (notebook and browser tests)."""
from __future__ import annotations

import os

import pytest

import mutmut_order

if "MUTANT_UNDER_TEST" in os.environ:
    # Under mutmut (`make mutation`) the mutated modules are megabytes of trampolines and the
    # code fingerprints parse them (about 30 s): parse them once here, at collection, so that the
    # processes mutmut forks for each mutant inherit the parsed trees instead of redoing it.
    # pytest imports this file again in every session, i.e. in every mutant's process: the flag,
    # inherited through the fork, keeps those from hashing the megabytes again (that took 60 % of
    # a mutant's time, py-spy).
    from brcd_lib.experiments import runstore as _runstore

    if not getattr(_runstore, "_prewarmed_for_mutmut", False):
        _runstore.library_fingerprint()
        for _role in _runstore.CODE_PATHS:
            _runstore.code_fingerprint(_role)
        _runstore._prewarmed_for_mutmut = True
    mutmut_order.durations()  # parsed once here when the stats file exists (cached in the module)


def pytest_collection_modifyitems(config, items):
    """Under mutmut, a mutant's covering tests run fastest first (tests/mutmut_order.py)."""
    mutmut_order.order_fastest_first(items)


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """Every test runs on a cache folder of its own session (``$BRCD_CACHE``), never on the
    repository's ``.cache``: results do not depend on what earlier runs left there."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BRCD_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory, session_cache):
    """Every notebook executed on the smoke profile by the runner, into a scratch results root;
    returns ``<root>/smoke``."""
    from brcd_lib.experiments import reproduce

    root = tmp_path_factory.mktemp("results")
    # the smoke profile trains in one process (Profile.workers = 1); here its grids go through
    # two worker processes spawned from the notebook kernels, the path digits and fashion take
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BRCD_WORKERS", "2")
        reproduce.run("smoke", results_root=str(root), force=True)
    return root / "smoke"

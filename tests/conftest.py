"""Shared fixtures: the smoke profile executed once per session (notebook and browser tests)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory):
    """Every notebook executed on the smoke profile by the runner, into a scratch results root;
    returns ``<root>/smoke``."""
    from brcd_lib.experiments import reproduce

    root = tmp_path_factory.mktemp("results")
    reproduce.run("smoke", results_root=str(root), force=True)
    return root / "smoke"

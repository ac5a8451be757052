"""Shared fixtures: the smoke profile executed once per session (notebook and browser tests)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory):
    """Every notebook executed on the smoke profile by the runner, into a scratch results root;
    returns ``<root>/smoke``."""
    import os

    from brcd_lib.experiments import reproduce

    root = tmp_path_factory.mktemp("results")
    # a cache of its own: the run does not depend on (or write into) the repository's .cache
    saved = os.environ.get("BRCD_CACHE")
    os.environ["BRCD_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        reproduce.run("smoke", results_root=str(root), force=True)
    finally:
        if saved is None:
            os.environ.pop("BRCD_CACHE", None)
        else:
            os.environ["BRCD_CACHE"] = saved
    return root / "smoke"

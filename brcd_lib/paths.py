"""Where the kit reads and writes, in one place: the repository, the cache, the data, the results.

Environment variables (each optional):

==================  =========================================================================
``BRCD_CACHE``      the cache folder: splits, pretrained backbones, features, view banks,
                    k-means, training runs, the notebook runner's "finished" markers
                    (default ``<repo>/.cache``)
``BRCD_DATA``       where downloadable datasets are looked for and downloaded to; a dataset
                    ``x`` is searched in ``$BRCD_DATA/x`` and ``$BRCD_DATA``
                    (default ``<repo>/.cache/data``, after the system folders a dataset knows)
``BRCD_RESULTS``    the results root holding ``<profile>/`` folders (default ``<repo>/results``)
==================  =========================================================================

Every function returns an absolute path, whatever the working directory (a relative value of a
variable is resolved against the working directory once, when it is read).
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE = "BRCD_CACHE"
ENV_DATA = "BRCD_DATA"
ENV_RESULTS = "BRCD_RESULTS"


def repo_root() -> Path:
    """The repository folder (the one holding ``brcd_lib/``, ``notebooks/`` and ``results/``)."""
    return Path(__file__).resolve().parents[1]


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else None


def cache_root() -> Path:
    """``$BRCD_CACHE`` or ``<repo>/.cache``."""
    return _env_path(ENV_CACHE) or repo_root() / ".cache"


def cache_dir(*parts: str) -> Path:
    """A folder (not created) under the cache root: ``cache_dir("runs", "digits")``."""
    return cache_root().joinpath(*parts)


def data_root() -> Path:
    """``$BRCD_DATA`` or ``<repo>/.cache/data``: where datasets are downloaded to."""
    return _env_path(ENV_DATA) or repo_root() / ".cache" / "data"


def data_candidates(subfolder: str) -> list[Path]:
    """``$BRCD_DATA/<subfolder>`` and ``$BRCD_DATA`` when the variable is set, else nothing."""
    env = _env_path(ENV_DATA)
    return [env / subfolder, env] if env else []


def results_root() -> Path:
    """``$BRCD_RESULTS`` or ``<repo>/results``."""
    return _env_path(ENV_RESULTS) or repo_root() / "results"


def notebooks_dir() -> Path:
    """The ordered notebooks: ``<repo>/notebooks``."""
    return repo_root() / "notebooks"

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
variable is resolved against the working directory once, when it is read). Before anything is
handed to a notebook kernel or a worker process (which may run in another working directory),
:func:`anchor_environment` rewrites relative values of these variables as absolute paths, so a
relative ``BRCD_RESULTS=out`` cannot split outputs across two folders.

:func:`portable` turns a path (or a text holding paths) into what may be written into committed
outputs: repository-relative, or ``$BRCD_CACHE`` / ``$BRCD_RESULTS`` / ``$BRCD_DATA`` / ``~``-prefixed, never
the machine's absolute path.
"""
from __future__ import annotations

import logging
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


def weights_root() -> Path:
    """``<repo>/brcd_lib/weights``: the committed pretrained stand-in backbones (weight files
    with SHA-256 and provenance sidecars, made by ``python -m brcd_lib.pretrain``)."""
    return repo_root() / "brcd_lib" / "weights"


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


def anchor_environment() -> dict[str, str]:
    """Rewrite ``BRCD_CACHE`` / ``BRCD_DATA`` / ``BRCD_RESULTS`` in ``os.environ`` as absolute
    paths (resolved against the current working directory, once) and return those that are set.
    Child processes (notebook kernels, workers) inherit the absolute values."""
    out = {}
    for name in (ENV_CACHE, ENV_DATA, ENV_RESULTS):
        path = _env_path(name)
        if path is not None:
            os.environ[name] = out[name] = str(path)
    return out


def find_repo(start: str | os.PathLike | None = None) -> Path | None:
    """The brcd-kit repository holding ``start`` (default: the working directory): the first of
    ``start`` and its parents with ``brcd_lib/paths.py`` and ``notebooks/``; ``None`` if none.
    A notebook's kernel runs in its folder (or the repository root under papermill), so this is
    the repository the notebook was opened from."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "brcd_lib" / "paths.py").is_file() and (folder / "notebooks").is_dir():
            return folder
    return None


def _roots() -> list[tuple[Path, str]]:
    """(absolute folder, portable name) pairs, most specific first."""
    pairs = [(results_root(), f"${ENV_RESULTS}"), (cache_root(), f"${ENV_CACHE}"),
             (data_root(), f"${ENV_DATA}"), (repo_root(), ".")]
    # the repository's own results/ and .cache/ read better relative to the repository
    pairs = [(p, repo_name(p) or name) for p, name in pairs]
    pairs.append((Path.home().resolve(), "~"))
    return sorted(pairs, key=lambda pair: len(str(pair[0])), reverse=True)


def repo_name(path: str | os.PathLike) -> str | None:
    """``path`` relative to the repository root (``results/digits``), or ``None`` outside it."""
    try:
        rel = Path(path).resolve().relative_to(repo_root())
    except ValueError:
        return None
    return rel.as_posix() or "."


def portable(value: str | os.PathLike) -> str:
    """``value`` (a path, or a text holding absolute paths) with every absolute path under the
    results / cache / data roots, the repository or the home folder written relative to it:
    ``results/digits``, ``$BRCD_CACHE/splits/x.npz``, ``~/data``. Other text is left alone."""
    import re

    text = os.fspath(value)
    for folder, name in _roots():
        prefix = str(folder)
        if prefix in ("/", ""):
            continue
        # the prefix as a whole path component: followed by a separator or the end of a path
        pattern = re.compile(re.escape(prefix) + r"(/|\\|(?=[\s\"',;:)\]}]|$))")
        text = pattern.sub(lambda m: ("" if name == "." else name + "/") if m.group(1) else name,
                           text)
    return text


class PortableFormatter(logging.Formatter):
    """A log formatter whose messages carry no machine path (:func:`portable`): what notebooks
    and their worker processes log ends up in executed notebooks that are committed."""

    def format(self, record: logging.LogRecord) -> str:
        return portable(super().format(record))

"""What every notebook does first: check the kernel and the profile, then build the experiment.

:func:`setup` is the notebooks' one entry point. In order, and before anything heavy:

1. the environment's path variables become absolute (:func:`brcd_lib.paths.anchor_environment`),
   so the kernel and its worker processes agree on the folders whatever their working directory;
2. the kernel must run the ``brcd_lib`` of the repository the notebook belongs to (the setup
   cell puts that repository first on ``sys.path``); a kernel that imported another clone's
   ``brcd_lib`` is stopped with :class:`KernelMismatch`;
3. the profile's requirements (GPU, data) are checked
   (:func:`brcd_lib.experiments.preflight.require_profile`): one message naming the fix;
4. display: kit tables and figures render as HTML tables and PNG images
   (:mod:`brcd_lib.reporting.display`), log messages go to stdout (not red stderr blocks),
   progress bars are live widgets in JupyterLab (:mod:`brcd_lib.training.progress`).
"""
from __future__ import annotations

import logging
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd
import seaborn as sns
import torch

from .. import paths
from ..experiments.experiment import Experiment
from ..experiments.preflight import require_profile
from ..provenance import git_commit
from ..training import progress as progress_bars
from .display import register_formatters
from ..training.parallel import resolve_threads
from .outputs import Outputs


class KernelMismatch(RuntimeError):
    """The kernel imported ``brcd_lib`` from another repository than the notebook's."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def check_kernel(start: str | os.PathLike | None = None) -> str:
    """Which ``brcd_lib`` this kernel runs, as a sentence for the notebook; raises
    :class:`KernelMismatch` when the notebook (found from the working directory ``start``) lives
    in another brcd-kit repository than the imported ``brcd_lib``."""
    here, lib = paths.find_repo(start), paths.repo_root()
    if here is not None and here != lib:
        raise KernelMismatch(
            f"this notebook belongs to the repository {here}, but the kernel imported brcd_lib "
            f"from {lib}. Restart the kernel and run the notebook from the top: its setup cell "
            f"puts the notebook's repository first on sys.path.")
    where = "this repository" if here is not None else "the installed package"
    return f"brcd_lib from {where} (commit {git_commit()})"


def _log_to_stdout() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(paths.PortableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


def setup(profile: str, results_root: str | os.PathLike | None = None, *,
          progress: bool = True, executor: str | None = None) -> tuple[Experiment, Outputs]:
    """Return the profile's :class:`Experiment` and :class:`Outputs` (``<results>/<profile>``).

    ``results_root``: ``None`` = ``$BRCD_RESULTS`` or ``<repo>/results``, whatever the working
    directory; a relative value is resolved against the working directory once, here.
    ``progress``: live progress bars (widgets in JupyterLab; the notebook runner routes them to
    its console). ``executor``: where the grids train their runs (``None`` = ``$BRCD_EXECUTOR``
    or ``local``; :mod:`brcd_lib.training.executors`)."""
    paths.anchor_environment()
    kernel = check_kernel()
    readiness = require_profile(profile)
    _log_to_stdout()
    sns.set_theme(context="notebook", style="whitegrid")
    pd.set_option("display.width", 160)
    pd.set_option("display.max_columns", 40)
    register_formatters()
    if progress and progress_bars.destination() == "file":
        # SimCLR pretraining (models layer) draws its bar with tqdm.auto: send it where the
        # runner's bars go instead of into the executed notebook
        from ..models import pretrain

        pretrain.tqdm = progress_bars.tqdm
    exp = Experiment(profile, progress=bool(progress), executor=executor)
    if exp.profile.runs_on_cpu:
        # the CPU profiles train small heads: one intra-op thread per process avoids the heavy
        # slow-down of oversubscribed cores (measured 10-30x on a loaded 2-core machine)
        torch.set_num_threads(resolve_threads())  # BRCD_THREADS, checked
    root = Path(results_root).expanduser().resolve() if results_root else paths.results_root()
    out = Outputs(results_root=str(root), profile=exp.profile.name)
    print(f"profile {exp.profile.name}: {exp.profile.description}")
    print(f"{kernel}; Python {platform.python_version()}")
    print(f"device {exp.device} ({torch.get_num_threads()} threads); executor {exp.executor}; "
          f"cache {paths.portable(exp.cache_dir)}; outputs {paths.portable(out.root)}")
    for note in readiness.notes:
        print(note)
    return exp, out


class Timer:
    """``with Timer("main grid"):`` prints the wall time of a block."""

    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        self.t0 = time.time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.time() - self.t0
        print(f"{self.label}: {self.seconds:.1f} s")
        return False

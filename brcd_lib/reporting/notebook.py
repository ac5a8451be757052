"""What every notebook does first: logging, plotting style, the experiment and its outputs."""
from __future__ import annotations

import logging
import os
import time

import pandas as pd
import seaborn as sns
import torch

from ..experiments.experiment import Experiment
from ..training.parallel import resolve_threads
from .outputs import Outputs


def setup(profile: str, results_root: str, *, progress: bool = False) -> tuple[Experiment, Outputs]:
    """Return the profile's :class:`Experiment` and :class:`Outputs` (results/<profile>/...)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sns.set_theme(context="notebook", style="whitegrid")
    pd.set_option("display.width", 160)
    pd.set_option("display.max_columns", 40)
    exp = Experiment(profile, progress=progress)
    if exp.profile.runs_on_cpu:
        # the CPU profiles train small heads: one intra-op thread per process avoids the heavy
        # slow-down of oversubscribed cores (measured 10-30x on a loaded 2-core machine)
        torch.set_num_threads(resolve_threads())  # BRCD_THREADS, checked
    out = Outputs(results_root=os.path.abspath(results_root), profile=exp.profile.name)
    print(f"profile {exp.profile.name}: {exp.profile.description}")
    print(f"device {exp.device} ({torch.get_num_threads()} threads); cache {exp.cache_dir}; "
          f"outputs {out.root}")
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

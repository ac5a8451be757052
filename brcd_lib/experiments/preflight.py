"""Checks that run before any training: the device, the folders, the data; and for the ``paper``
profile an estimate of the real run's time and disk.

* :func:`check_device` -- ``--device nope`` or ``cuda`` on a machine without a GPU is a clear
  ``ValueError`` at once, not a traceback after the data was loaded;
* :func:`check` -- everything a profile needs before its first notebook runs (GPU, data, writable
  cache and results folders, free disk) and, with ``estimate=True``, the number of training runs,
  backbone forward passes, feature-cache bytes and (measured on this machine's device) the hours
  the notebook sequence will take. Notebook 01 (or a user) calls it; it never trains.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ..io import StorageError, ensure_writable_dir
from ..paths import cache_root, results_root
from .profiles import Profile, get_profile

__all__ = ["check_device", "Preflight", "check", "run_plan"]


def check_device(device: str | None) -> str | None:
    """``device`` as a canonical string (None stays None: the profile decides). An unknown
    device, or CUDA on a machine without one, raises ``ValueError`` naming it and the fix."""
    if device is None:
        return None
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not device.strip():
        raise ValueError(f"device must be cpu, cuda or cuda:<i>, got {device!r}")
    try:
        dev = torch.device(device.strip())
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; use cpu, cuda or cuda:<i> "
                         f"({str(exc).splitlines()[0]})") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device {device!r} needs a CUDA GPU, but none is available on this "
                             f"machine (torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {device!r} does not exist: this machine has {n} CUDA "
                             f"GPU(s), cuda:0..cuda:{n - 1}")
    elif dev.type != "cpu":
        raise ValueError(f"device {device!r} is not supported by the kit; use cpu, cuda or "
                         "cuda:<i>")
    return str(dev)

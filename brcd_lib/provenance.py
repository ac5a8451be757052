"""Where a number came from: commit, versions, device, time."""
from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
from importlib import metadata

_PACKAGES = ("torch", "torchvision", "timm", "numpy", "scikit-learn", "faiss-cpu")


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The repository's HEAD commit (short), with ``+dirty`` when tracked files outside
    ``results/`` changed (generated outputs are not code); ``unknown`` outside a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, check=True,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)results"], cwd=root,
                               check=True, capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def device_description(device: str = "cpu") -> str:
    """A readable name of the device a result was computed on."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def provenance(*, device: str = "cpu") -> dict[str, str]:
    """Columns every result row carries (besides its config hash, split hash and seed)."""
    versions = library_versions()
    return {
        "commit": git_commit(),
        "torch": versions["torch"],
        "versions": ";".join(f"{k}={v}" for k, v in versions.items()),
        "device": device_description(device),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }

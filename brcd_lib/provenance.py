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
    return commit_of(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def commit_of(root: str) -> str:
    """:func:`git_commit` of the checkout at ``root``. The tracked files are compared by content
    with HEAD (``git diff``, through the nbstripout filter that ``make lab`` configures), not by
    ``git status``, which calls a notebook modified as soon as a save changed its size, even
    when the filter strips all that changed (outputs, the kernel's metadata)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, check=True,
                             capture_output=True, text=True).stdout.strip()
        diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", ":(exclude)results"],
                              cwd=root, capture_output=True)
        if diff.returncode not in (0, 1):
            raise subprocess.CalledProcessError(diff.returncode, "git diff")
        return sha + ("+dirty" if diff.returncode else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def refresh_git_index(path: str) -> bool:
    """After a notebook under git's nbstripout filter was saved: when the filter strips every
    change of the save (outputs, execution counts, the kernel's metadata), record the file's new
    size and time in git's index, so that ``git status`` does not list it. git calls a file
    modified, without running the filter, as soon as its size differs from the index entry;
    a file with a real change, an unconfigured filter, an untracked file or a file outside a
    checkout are left alone. Returns True when the index entry was refreshed."""
    folder, name = os.path.split(os.path.abspath(path))

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True)

    try:
        attr = git("check-attr", "filter", "--", name).stdout.strip()
        if not attr.endswith(": nbstripout") or git("config", "filter.nbstripout.clean").returncode:
            return False
        if git("ls-files", "--error-unmatch", "--", name).returncode:
            return False  # not tracked
        if git("diff", "--quiet", "--", name).returncode != 0:
            return False  # a real change (or git failed): the index stays as it is
        return git("update-index", "--", name).returncode == 0
    except OSError:  # no git
        return False


def lab_post_save(model=None, os_path: str | None = None, contents_manager=None, **_) -> None:
    """The Jupyter server's ``FileContentsManager.post_save_hook`` that ``make lab`` sets: a
    saved notebook whose save changed nothing but what the filter strips stays out of
    ``git status`` (:func:`refresh_git_index`). Never fails a save."""
    if os_path and str(os_path).endswith(".ipynb"):
        try:
            refresh_git_index(str(os_path))
        except Exception:  # a hook must not break saving
            pass


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

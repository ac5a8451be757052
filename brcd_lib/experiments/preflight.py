"""What a profile needs before anything heavy runs: a GPU, the data, ImageNet weights.

:func:`check_profile` looks (in a second, without reading or downloading anything) and lists what
is missing; :func:`require_profile` raises :class:`ProfileNotReady` with one message that says
what the profile needs and how to get it. The notebook runner calls it before it starts a kernel,
and every notebook's setup cell calls it before it builds anything, so a missing dataset is one
message in the first cell, not a traceback after a failed download.

Downloads happen only when asked for: ``BRCD_DOWNLOAD=1`` in the environment (or
``python -m brcd_lib.reproduce --download``) lets the data layer fetch a dataset it cannot find.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .profiles import Profile, get_profile

ENV_DOWNLOAD = "BRCD_DOWNLOAD"


def download_allowed() -> bool:
    """Whether ``$BRCD_DOWNLOAD`` asks for downloads (``1``, ``true``, ``yes``)."""
    return os.environ.get(ENV_DOWNLOAD, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Readiness:
    """``problems``: what is missing (each a sentence with its fix); ``needs``: what the profile
    needs, met or not (for the message); ``notes``: what will happen on first use."""

    profile: str
    problems: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        lines = [f"profile {self.profile!r} cannot run on this machine:"]
        lines += [f"  - {p}" for p in self.problems]
        if self.needs:
            lines.append(f"profile {self.profile!r} needs: " + "; ".join(self.needs) + ".")
        lines += self.notes
        return "\n".join(lines)


class ProfileNotReady(RuntimeError):
    """A profile's requirements are not met. In a notebook it shows as its message alone (no
    traceback: IPython calls ``_render_traceback_``)."""

    def __init__(self, readiness: Readiness):
        super().__init__(readiness.message())
        self.readiness = readiness

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def _gpu_problem() -> str | None:
    import torch

    if torch.cuda.is_available():
        return None
    build = (f"this torch {torch.__version__} is built without CUDA" if torch.version.cuda is None
             else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU")
    return (f"a CUDA GPU: {build}. Run the profile on a GPU machine, or run a CPU profile "
            "(smoke, digits, fashion)")


def _weights_note(profile: Profile) -> str | None:
    """Where the ImageNet weights of the profile's pretrained backbones come from."""
    names = [m.backbone.name for m in (profile.teacher, profile.student)
             if m.backbone.pretrained and m.backbone.weights_path is None]
    if not names:
        return None
    try:
        import torch
        import torchvision

        missing = []
        for name in names:
            url = torchvision.models.get_model_weights(name).IMAGENET1K_V1.url
            path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
            if not os.path.exists(path):
                missing.append(f"{name} ({url})")
    except Exception:  # noqa: BLE001 - a note, never a reason to fail
        return None
    if not missing:
        return None
    return ("ImageNet weights not in the torch hub cache yet, downloaded on first use (needs "
            "internet; offline, download them elsewhere and set BackboneConfig.weights_path): "
            + ", ".join(missing))


def check_profile(profile: Profile | str, *, download: bool | None = None) -> Readiness:
    """What ``profile`` needs and what this machine lacks (GPU, dataset files). Reads no data and
    downloads nothing; ``download`` (default :func:`download_allowed`) turns a missing
    downloadable dataset from a problem into a note."""
    from ..data import DatasetNotAvailableError, dataset_parameters, locate_files

    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    download = download_allowed() if download is None else download
    ready = Readiness(profile=profile.name)
    if not profile.runs_on_cpu:
        ready.needs.append("a CUDA GPU")
        problem = _gpu_problem()
        if problem:
            ready.problems.append(problem)
    pretrained = [m.backbone.name for m in (profile.teacher, profile.student) if m.backbone.pretrained]
    if pretrained:
        ready.needs.append("ImageNet weights of " + ", ".join(pretrained))
    data = profile.data
    ready.needs.append(f"dataset {data.name}")
    try:
        locate_files(data.name, root=data.root, **data.protocol)
    except DatasetNotAvailableError as err:
        takes_download = "download" in dataset_parameters(data.name)
        if download and takes_download:
            ready.notes.append(f"{data.name} is not on disk; {ENV_DOWNLOAD} is set, so it will be "
                               "downloaded on first use")
        else:
            fix = (f" To let the kit download it instead, set {ENV_DOWNLOAD}=1 (or run "
                   "`python -m brcd_lib.reproduce --download`)." if takes_download else "")
            reason = str(err).removesuffix(", or pass download=True")
            ready.problems.append(f"dataset {data.name}: {reason}.{fix}")
    note = _weights_note(profile) if ready.ok else None
    if note:
        ready.notes.append(note)
    return ready


def require_profile(profile: Profile | str, *, download: bool | None = None) -> Readiness:
    """:func:`check_profile`, raising :class:`ProfileNotReady` when something is missing."""
    ready = check_profile(profile, download=download)
    if not ready.ok:
        raise ProfileNotReady(ready)
    return ready

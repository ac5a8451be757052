"""Hashing networks of a profile's ``ModelConfig`` with random weights, built as the kit builds
them (``Experiment._new_network``): ``build_hashing_network`` with the config's head, hidden
width, freezing and ``BackboneConfig.kwargs``; the GPU speed options (bf16 autocast,
channels-last) only on CUDA unless ``gpu_options`` forces them. Pretrained and committed weights
are not loaded (speed does not depend on the weights)."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def describe(model) -> str:
    """``name(key=value, ...)`` of a ModelConfig's backbone (``name`` without kwargs)."""
    bb = model.backbone
    kw = ", ".join(f"{k}={v}" for k, v in sorted(bb.kwargs.items()))
    return f"{bb.name}({kw})" if kw else bb.name


def with_backbone(model, name: str):
    """``model`` with its backbone renamed ``name`` (as ``plan`` builds the student-backbone
    axis of the generality grid)."""
    return dataclasses.replace(model, backbone=dataclasses.replace(model.backbone, name=name))


def network_from_config(model, bits: int, *, role: str, device: str = "cpu",
                        gpu_options: bool | None = None, seed: int = 0):
    """A HashingNetwork of ``model`` (a ModelConfig) with random weights on ``device``, in eval
    mode. ``gpu_options=None``: the config's bf16 / channels-last settings on CUDA only (the
    kit's rule); True / False: always / never."""
    import torch

    from brcd_lib.models import build_hashing_network

    if role not in ("teacher", "student"):
        raise ValueError(f"role must be 'teacher' or 'student', got {role!r}")
    on = str(device).startswith("cuda") if gpu_options is None else bool(gpu_options)
    bb = model.backbone
    torch.manual_seed(seed)
    net = build_hashing_network(role=role, backbone=bb.name, code_length=bits, pretrained=False,
                                freeze_backbone=model.freeze_backbone, head=model.head,
                                head_hidden=model.head_hidden,
                                backbone_precision=model.backbone_precision if on else "fp32",
                                channels_last=model.channels_last and on, **bb.kwargs)
    return net.to(device).eval()

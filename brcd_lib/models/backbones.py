"""Backbone registry and the paper's torchvision backbones.

``create_backbone(name, *, pretrained=False, weights_path=None, **kw)`` returns an ``nn.Module``
with attributes ``out_dim`` (int), ``family`` (str), ``name`` and ``spec`` (``{"name", "kwargs"}``,
used in cache keys) whose ``forward(x)`` maps ``(B, 3, H, W)`` to ``(B, out_dim)``.

Paper backbones (torchvision, as in the authors' released code):

======================  =================  =======  ===========================================
name                    family             out_dim  surgery
======================  =================  =======  ===========================================
vit_b_16, vit_b_32      ``vit``            768      ``heads`` -> Identity (class token)
vit_l_16                ``vit``            1024     ``heads`` -> Identity
efficientnet_b0..b3     ``imagenet_logits`` 1000    none: the 1000-way classifier is kept
mobilenet_v2            ``imagenet_logits`` 1000    none
resnet18, resnet34      ``resnet``         512      ``fc`` -> Identity
resnet50/101/152        ``resnet``         2048     ``fc`` -> Identity
======================  =================  =======  ===========================================

``pretrained=True`` loads torchvision's ``IMAGENET1K_V1`` weights (what ``pretrained=True`` meant
in the released code); without internet this fails with a message pointing to ``weights_path``.
``weights_path`` loads a local state_dict strictly: either torchvision's own file (keys of the
unmodified model, e.g. ``heads.head.weight``) or a state_dict of the wrapper returned here.
Extra keyword arguments go to the torchvision constructor (e.g. ``image_size=32`` for a ViT).
"""
from __future__ import annotations

import os
from typing import Any, Callable

import torch
import torchvision
from torch import nn

from ..registry import Registry

BACKBONES: Registry = Registry("backbone")
ROLE_HINTS = ("teacher", "student", "any")
PRETRAINED_TAG = "IMAGENET1K_V1"


def register_backbone(name: str, *, family: str, role_hint: str) -> Callable:
    """Decorator registering ``factory(*, pretrained, weights_path, **kw) -> nn.Module`` under
    ``name``. ``family`` selects the default hash head; ``role_hint`` is "teacher", "student" or
    "any" (documentation only: any backbone can play any role)."""
    if role_hint not in ROLE_HINTS:
        raise ValueError(f"role_hint must be one of {ROLE_HINTS}, got {role_hint!r}")
    return BACKBONES.register(name, family=family, role_hint=role_hint)


def list_backbones() -> list[str]:
    """Registered backbone names (paper and CPU backbones), sorted."""
    return BACKBONES.names()


def backbone_info(name: str) -> dict[str, Any]:
    """``{"family", "role_hint"}`` of a registered backbone."""
    return dict(BACKBONES.entry(name).meta)


def create_backbone(name: str, *, pretrained: bool = False, weights_path: str | None = None,
                    **kw: Any) -> nn.Module:
    """Build backbone ``name``; see the module docstring for the names and what they return."""
    entry = BACKBONES.entry(name)
    if pretrained and weights_path is not None:
        raise ValueError("pass either pretrained=True or weights_path=..., not both")
    model = entry.factory(pretrained=bool(pretrained), weights_path=weights_path, **kw)
    for attr in ("out_dim", "family"):
        if not hasattr(model, attr):
            raise TypeError(f"backbone factory {name!r} returned a module without {attr!r}")
    if model.family != entry.meta["family"]:
        raise TypeError(f"backbone {name!r} reports family {model.family!r} but was registered "
                        f"as {entry.meta['family']!r}")
    model.name = name
    model.spec = {"name": name, "kwargs": dict(kw)}
    return model


# --------------------------------------------------------------------------------------------
# state_dict loading
# --------------------------------------------------------------------------------------------
def read_state_dict(weights_path: str) -> dict[str, torch.Tensor]:
    """Read a local state_dict (``torch.load(weights_only=True)``); accepts a checkpoint dict
    with a ``state_dict`` entry too."""
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"weights_path {weights_path!r} does not exist")
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{weights_path!r} does not hold a state_dict (got {type(state).__name__})")
    return state


def key_mismatch(module: nn.Module, state: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(missing, unexpected) keys of ``state`` with respect to ``module.state_dict()``."""
    expected = set(module.state_dict())
    got = set(state)
    return sorted(expected - got), sorted(got - expected)


def mismatch_message(what: str, missing: list[str], unexpected: list[str], n: int = 5) -> str:
    """A readable description of a key mismatch naming the first ``n`` keys of each kind."""
    parts = [f"the state_dict does not match {what}"]
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:n])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:n])})")
    return "; ".join(parts)


def load_strict(module: nn.Module, state: dict[str, Any], *, what: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with a clear error on mismatched keys."""
    missing, unexpected = key_mismatch(module, state)
    if missing or unexpected:
        raise ValueError(mismatch_message(what, missing, unexpected))
    module.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------------------------
# torchvision backbones
# --------------------------------------------------------------------------------------------
class TorchvisionBackbone(nn.Module):
    """A torchvision model after the paper's surgery; ``forward`` is the model's forward."""

    def __init__(self, *, model: nn.Module, out_dim: int, family: str):
        super().__init__()
        self.model = model
        self.out_dim = int(out_dim)
        self.family = family

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, out_dim)."""
        return self.model(x)


def _imagenet_weights(tv_name: str):
    return getattr(torchvision.models.get_model_weights(tv_name), PRETRAINED_TAG)


def _build_torchvision(tv_name: str, *, family: str, surgery: Callable[[nn.Module], int],
                       pretrained: bool, weights_path: str | None, **kw: Any) -> nn.Module:
    ctor = getattr(torchvision.models, tv_name)
    model = ctor(weights=None, **kw)
    if pretrained:
        weights = _imagenet_weights(tv_name)
        try:
            state = weights.get_state_dict(progress=False)
        except Exception as exc:  # network errors come in many types
            raise RuntimeError(
                f"could not load torchvision's ImageNet weights for {tv_name} ({weights}): {exc}. "
                f"This machine may have no internet: download {weights.url} elsewhere and pass "
                f"weights_path='/path/to/file.pth', or use pretrained=False"
            ) from exc
        load_strict(model, state, what=f"torchvision {tv_name}")
    raw_state = read_state_dict(weights_path) if weights_path is not None else None
    if raw_state is not None:
        missing, unexpected = key_mismatch(model, raw_state)
        if not missing and not unexpected:  # torchvision's own file
            model.load_state_dict(raw_state, strict=True)
            raw_state = None
    out_dim = surgery(model)
    wrapper = TorchvisionBackbone(model=model, out_dim=out_dim, family=family)
    if raw_state is not None:  # a state_dict of the wrapper (or a mismatch)
        w_missing, w_unexpected = key_mismatch(wrapper, raw_state)
        if w_missing or w_unexpected:
            raise ValueError(
                mismatch_message(f"torchvision {tv_name} (file {weights_path!r})", missing, unexpected)
                + "; it matches neither torchvision's model nor this wrapper's state_dict")
        wrapper.load_state_dict(raw_state, strict=True)
    return wrapper


def _vit_surgery(model: nn.Module) -> int:
    model.heads = nn.Identity()
    return int(model.hidden_dim)


def _resnet_surgery(model: nn.Module) -> int:
    out_dim = int(model.fc.in_features)
    model.fc = nn.Identity()
    return out_dim


def _keep_logits(model: nn.Module) -> int:
    return 1000 if not hasattr(model, "classifier") else int(
        [m for m in model.classifier.modules() if isinstance(m, nn.Linear)][-1].out_features)


def _register_torchvision(name: str, *, family: str, role_hint: str,
                          surgery: Callable[[nn.Module], int]) -> None:
    def factory(*, pretrained: bool = False, weights_path: str | None = None, **kw: Any) -> nn.Module:
        return _build_torchvision(name, family=family, surgery=surgery, pretrained=pretrained,
                                  weights_path=weights_path, **kw)

    factory.__name__ = f"build_{name}"
    factory.__doc__ = f"torchvision {name}, family {family!r}."
    register_backbone(name, family=family, role_hint=role_hint)(factory)


for _name in ("vit_b_16", "vit_b_32", "vit_l_16"):
    _register_torchvision(_name, family="vit", role_hint="teacher", surgery=_vit_surgery)
for _name in ("efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
              "mobilenet_v2"):
    _register_torchvision(_name, family="imagenet_logits", role_hint="student", surgery=_keep_logits)
for _name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
    _register_torchvision(_name, family="resnet", role_hint="student", surgery=_resnet_surgery)

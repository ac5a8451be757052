"""The hashing network: a (frozen) backbone and a trainable hash head.

``forward(x)`` returns the head's real-valued logits h (B, L); the hashing objective binarises
them (CIBHash: ``sign(sigmoid(h) - 0.5)`` with a straight-through gradient). ``encode(x)`` gives
evaluation codes ``sign(h)`` in {-1, +1} with sign(0) = +1; this equals the objectives'
``encode`` (``sign(sigmoid(h) - 0.5)`` for CIBHash) except where ``sigmoid`` rounds a nonzero
``|h|`` below about 3e-8 to exactly 0.5 in float32.
"""
from __future__ import annotations

import contextlib
import numbers
from typing import Any, Iterator

import torch
from torch import nn

from .backbones import create_backbone
from .hash_layers import sign_pm1
from .heads import create_head, default_head

ROLES = ("teacher", "student")
PRECISIONS = ("fp32", "bf16")


class HashingNetwork(nn.Module):
    """Backbone + head. With ``freeze_backbone=True`` the backbone's parameters do not require
    gradients, ``features`` runs it under ``torch.no_grad()`` and the backbone stays in eval mode
    (BatchNorm statistics and Dropout frozen) even when the network is put in train mode.

    ``backbone_precision="bf16"`` runs the backbone under bfloat16 autocast (its features are
    returned as float32); ``channels_last=True`` feeds it channels-last images. Both are speed
    options of the GPU path (the head always runs in float32); :attr:`feature_tag` names them for
    feature-cache keys."""

    def __init__(self, *, backbone: nn.Module, head: nn.Module, freeze_backbone: bool = True,
                 backbone_precision: str = "fp32", channels_last: bool = False):
        super().__init__()
        if backbone_precision not in PRECISIONS:
            raise ValueError(f"backbone_precision must be one of {PRECISIONS}, got "
                             f"{backbone_precision!r}")
        self.backbone = backbone
        self.head = head
        self.backbone_precision = backbone_precision
        self.channels_last = bool(channels_last)
        self.freeze_backbone = bool(freeze_backbone)
        if self.freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
            self.backbone.eval()
        self._code_length = _infer_code_length(head)

    @property
    def code_length(self) -> int:
        """L, the number of bits (the head's output size)."""
        return self._code_length

    def train(self, mode: bool = True) -> "HashingNetwork":
        """Set train/eval mode; a frozen backbone always stays in eval mode."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    @property
    def feature_tag(self) -> str:
        """How the backbone is run, for cache keys: "" for float32 in the default layout."""
        parts = ([self.backbone_precision] if self.backbone_precision != "fp32" else []) + \
            (["channels_last"] if self.channels_last else [])
        return "+".join(parts)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, out_dim) in float32; no gradient when the backbone is frozen."""
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = (torch.autocast(x.device.type, dtype=torch.bfloat16)
                    if self.backbone_precision == "bf16" else contextlib.nullcontext())
        grad = torch.no_grad() if self.freeze_backbone else contextlib.nullcontext()
        with grad, autocast:
            out = self.backbone(x)
        return out.float()

    def head_forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits (B, L) of precomputed backbone features."""
        return self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, L) = head(features(x))."""
        return self.head(self.features(x))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """+-1 float codes (B, L): ``sign(forward(x))`` with sign(0) = +1, no gradient."""
        return sign_pm1(self.forward(x))

    @torch.no_grad()
    def encode_features(self, feats: torch.Tensor) -> torch.Tensor:
        """+-1 float codes of precomputed backbone features."""
        return sign_pm1(self.head(feats))

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that require gradients (the head; the backbone too when not frozen)."""
        return (p for p in self.parameters() if p.requires_grad)


def _infer_code_length(head: nn.Module) -> int:
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if hasattr(head, "code_length"):
        return int(head.code_length)
    if not linears:
        raise ValueError("cannot infer the code length: the head has no nn.Linear and no "
                         "'code_length' attribute")
    return int(linears[-1].out_features)


def build_hashing_network(*, role: str, backbone: str, code_length: int, pretrained: bool = False,
                          weights_path: str | None = None, freeze_backbone: bool = True,
                          head: str | None = None, head_hidden: int | None = None,
                          backbone_precision: str = "fp32", channels_last: bool = False,
                          **backbone_kw: Any) -> HashingNetwork:
    """A :class:`HashingNetwork` on backbone ``backbone`` (a registered name) with the head of its
    family (method.md section 2) unless ``head`` names another; ``role`` ("teacher" or
    "student") is recorded on the network as ``role``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if not isinstance(code_length, numbers.Integral) or isinstance(code_length, bool) or code_length <= 0:
        raise ValueError(f"code_length must be a positive int (e.g. 16, 32, 64), got {code_length!r}")
    code_length = int(code_length)  # NumPy integers too
    net_backbone = create_backbone(backbone, pretrained=pretrained, weights_path=weights_path,
                                   **backbone_kw)
    head_name = head if head is not None else default_head(net_backbone.family)
    net_head = create_head(head_name, in_dim=net_backbone.out_dim, code_length=code_length,
                           hidden=head_hidden)
    net = HashingNetwork(backbone=net_backbone, head=net_head, freeze_backbone=freeze_backbone,
                         backbone_precision=backbone_precision, channels_last=channels_last)
    net.role = role
    net.head_name = head_name
    return net

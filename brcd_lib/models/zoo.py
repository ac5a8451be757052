"""Scaled-down library backbones for the backbone-pairs study of the CPU profiles.

The paper's students come from three families (EfficientNet-B0, MobileNetV2, ResNet-18). The
CPU stand-ins keep the families and take the building code from the libraries, scaled down to
28 px Fashion-MNIST and a few thousand parameters:

===================  =================  ===========================================  =======
name                 family (head)      architecture                                 out_dim
===================  =================  ===========================================  =======
small_mobilenet_s    small_mobilenet    torchvision ``MobileNetV2`` with three         32
                     (mlp)              inverted-residual stages (expansion 4,
                                        8-16-32 channels), its final 1x1 conv to 1280
                                        channels removed, global average pooling
small_resnet_s       small_timm_resnet  timm ``ResNet`` (basic blocks, one per          32
                     (mlp)              stage, channels 4-8-16-32), stride-2 stem
                                        conv without the max-pool (28 px inputs),
                                        global average pooling
===================  =================  ===========================================  =======

Keyword arguments override the size (``setting`` for the MobileNet: torchvision's
``inverted_residual_setting`` rows ``[t, c, n, s]``; ``channels`` and ``stem_width`` for the
ResNet). Like the other small backbones they have no ImageNet weights: the profiles pretrain them
with SimCLR (``python -m brcd_lib.pretrain``) or load ``weights_path``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .backbones import load_strict, read_state_dict, register_backbone
from .heads import register_family_head

MOBILENET_SETTING = ((1, 8, 1, 1), (4, 16, 2, 2), (4, 32, 2, 2))


class _Pooled(nn.Module):
    """``features`` followed by global average pooling: (B, 3, H, W) -> (B, out_dim)."""

    def __init__(self, *, features: nn.Module, out_dim: int, family: str):
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim, self.family = int(out_dim), family

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.family} expects images (B, 3, H, W), got shape {tuple(x.shape)}")
        return self.pool(self.features(x)).flatten(1)


def small_mobilenet(*, setting=MOBILENET_SETTING, width_mult: float = 1.0) -> nn.Module:
    """torchvision's MobileNetV2 with ``setting`` as its inverted-residual stages, without the
    last 1x1 convolution (1280 channels: most of a tiny net's parameters)."""
    import torchvision

    rows = [list(map(int, r)) for r in setting]
    if not rows or any(len(r) != 4 or min(r) <= 0 for r in rows):
        raise ValueError(f"setting must be rows [t, c, n, s] of positive ints, got {setting!r}")
    net = torchvision.models.MobileNetV2(width_mult=width_mult, inverted_residual_setting=rows)
    features = net.features[:-1]
    with torch.no_grad():
        out_dim = features(torch.zeros(1, 3, 32, 32)).shape[1]
    return _Pooled(features=features, out_dim=out_dim, family="small_mobilenet")


def small_timm_resnet(*, channels=(4, 8, 16, 32), stem_width: int = 4) -> nn.Module:
    """timm's ResNet with one basic block per stage of ``channels``; the stem's max-pool is
    removed (28 px images cannot afford timm's 4x stem reduction; its stride-2 conv stays)."""
    from timm.models.resnet import BasicBlock, ResNet

    channels = tuple(int(c) for c in channels)
    if len(channels) != 4 or min(channels) <= 0:
        raise ValueError(f"channels must be 4 positive ints (timm's ResNet has 4 stages), got {channels!r}")
    net = ResNet(BasicBlock, [1, 1, 1, 1], channels=channels, stem_width=int(stem_width),
                 num_classes=0, global_pool="")
    net.maxpool = nn.Identity()
    features = nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool,
                             net.layer1, net.layer2, net.layer3, net.layer4)
    return _Pooled(features=features, out_dim=channels[-1], family="small_timm_resnet")


ZOO = {"small_mobilenet_s": (small_mobilenet, "small_mobilenet"),
       "small_resnet_s": (small_timm_resnet, "small_timm_resnet")}

for _family in ("small_mobilenet", "small_timm_resnet"):
    register_family_head(_family, "mlp")


def _register(name: str, build, family: str) -> None:
    def factory(*, pretrained: bool = False, weights_path: str | None = None, **kw: Any) -> nn.Module:
        if pretrained:
            raise ValueError(f"{name} has no ImageNet weights: pretrain it with "
                             f"`python -m brcd_lib.pretrain` or pass weights_path=...")
        model = build(**kw)
        if weights_path is not None:
            load_strict(model, read_state_dict(weights_path), what=f"{name} (file {weights_path!r})")
        return model

    factory.__name__ = f"build_{name}"
    factory.__doc__ = f"{build.__doc__} Family {family!r}."
    register_backbone(name, family=family, role_hint="student")(factory)


for _name, (_build, _fam) in ZOO.items():
    _register(_name, _build, _fam)

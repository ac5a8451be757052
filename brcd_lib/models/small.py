"""Small CPU backbones: the stand-ins for ImageNet-pretrained networks in the CPU profiles.

They take ``(B, 3, H, W)`` images with H = W anywhere in 8..32 (other sizes work where the
architecture allows) and return a feature vector. They have no ImageNet weights: pretrain them
with :func:`brcd_lib.models.pretrain.ssl_pretrain` (SimCLR) or load a state_dict with
``weights_path``.

Registered sizes (``create_backbone(name, **overrides)``; keyword arguments override the size):

===============  ===================  ===============================================  =======
name             family (head)        architecture                                     out_dim
===============  ===================  ===============================================  =======
small_cnn_s      small_cnn (mlp)      SmallCNN width 16, depth 3, 1 conv/stage, GAP    64
small_cnn_m      small_cnn (mlp)      SmallCNN width 32, depth 3, 1 conv/stage, GAP    128
cnn_teacher      cnn_teacher (linear) SmallCNN width 32, depth 3, 2 convs/stage,       512
                                      2x2 average-pooled map (``pool_grid=2``)
small_vit        small_vit (linear)   SmallViT patch 4, dim 128, depth 4, 4 heads      128
resnet_teacher   small_resnet         SmallResNet widths 32-64-128-256, 1 basic block   1024
                 (linear)             per stage, 2x2 average-pooled map
resnet_teacher_s small_resnet         SmallResNet widths 8-16-32-64 (the smaller       256
                 (linear)             teacher of the backbone-pairs study)
===============  ===================  ===============================================  =======

The families mirror the paper: student-like CNNs get the MLP head of the EfficientNet student,
teacher-like backbones the linear head of the ViT teacher. The digits profile uses
``cnn_teacher`` as teacher and ``small_cnn_s`` as student (docs/models.md has the measurements;
``small_vit`` trains poorly in a CPU budget and is kept for architecture studies).
``resnet_teacher`` (1.23M parameters) is the larger teacher of issue #12
(``benchmarks/explore_standin.py``, results/benchmarks/explore_standin.md).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import load_strict, read_state_dict, register_backbone
from .heads import register_family_head


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_images(x: torch.Tensor, in_channels: int, who: str) -> None:
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{who} expects images (B, {in_channels}, H, W), got shape {tuple(x.shape)}")


# options of the CPU backbones that add no parameters (the pooling grid after the last stage): a
# weight file made with one value loads into a backbone built with another
# (:func:`brcd_lib.models.pretrain.load_committed_file`; the file's name says where it came from)
PARAMETER_FREE_OPTIONS = ("pool_grid",)


class SmallCNN(nn.Module):
    """A VGG-style conv net: ``depth`` stages of ``convs_per_stage`` x (conv3x3 - BN - ReLU),
    stage ``i`` with ``width * 2**i`` channels, 2x2 max-pooling (ceil mode) between stages, then
    adaptive average pooling to a ``pool_grid`` x ``pool_grid`` map, flattened (``pool_grid=1``
    is global average pooling; 2 keeps the coarse layout, which matters for digits).
    ``out_dim = width * 2**(depth - 1) * pool_grid**2``."""

    def __init__(self, *, width: int = 16, depth: int = 3, convs_per_stage: int = 1,
                 pool_grid: int = 1, in_channels: int = 3, family: str = "small_cnn"):
        super().__init__()
        _positive_int("width", width)
        _positive_int("depth", depth)
        _positive_int("convs_per_stage", convs_per_stage)
        _positive_int("pool_grid", pool_grid)
        _positive_int("in_channels", in_channels)
        self.in_channels = in_channels
        self.family = family
        self.parameter_free_options = PARAMETER_FREE_OPTIONS
        layers: list[nn.Module] = []
        c_in = in_channels
        for stage in range(depth):
            c_out = width * 2 ** stage
            for _ in range(convs_per_stage):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                           nn.ReLU(inplace=True)]
                c_in = c_out
            if stage < depth - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool_grid)
        self.out_dim = c_in * pool_grid ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, out_dim)."""
        _check_images(x, self.in_channels, "SmallCNN")
        return self.pool(self.features(x)).flatten(1)


class _BasicBlock(nn.Module):
    """ResNet basic block: conv3x3 - BN - ReLU - conv3x3 - BN, plus the input (a 1x1 conv - BN
    projection when the shape changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x), inplace=True)


class SmallResNet(nn.Module):
    """A small ResNet for 8-32 px images: a conv3x3 - BN - ReLU stem with ``widths[0]`` channels
    at full resolution, then one stage per entry of ``widths`` with ``blocks[i]`` basic blocks,
    the first block of every stage after the first with stride 2 (28 px: 28, 14, 7, 4), then
    adaptive average pooling to ``pool_grid`` x ``pool_grid``, flattened.
    ``out_dim = widths[-1] * pool_grid**2``. Most parameters sit in the last, low-resolution
    stage, so the parameter count grows much faster than the cost per image."""

    def __init__(self, *, widths: tuple[int, ...] = (32, 64, 128, 256),
                 blocks: tuple[int, ...] = (1, 1, 1, 1), pool_grid: int = 1, in_channels: int = 3,
                 family: str = "small_resnet"):
        super().__init__()
        widths, blocks = tuple(widths), tuple(blocks)
        if not widths or len(widths) != len(blocks):
            raise ValueError(f"widths and blocks need the same non-zero length, got {widths} and {blocks}")
        for i, (w, b) in enumerate(zip(widths, blocks)):
            _positive_int(f"widths[{i}]", w)
            _positive_int(f"blocks[{i}]", b)
        _positive_int("pool_grid", pool_grid)
        _positive_int("in_channels", in_channels)
        self.in_channels, self.family = in_channels, family
        self.parameter_free_options = PARAMETER_FREE_OPTIONS
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        c_in = widths[0]
        for i, (w, b) in enumerate(zip(widths, blocks)):
            layers = []
            for j in range(b):
                layers.append(_BasicBlock(c_in, w, stride=2 if (i > 0 and j == 0) else 1))
                c_in = w
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(pool_grid)
        self.out_dim = c_in * pool_grid ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, out_dim)."""
        _check_images(x, self.in_channels, "SmallResNet")
        return self.pool(self.stages(self.stem(x))).flatten(1)


class _Attention(nn.Module):
    """Multi-head self-attention written with explicit matrix products (so that
    ``FlopCounterMode`` counts it on every device; the fused CPU kernel is not counted)."""

    def __init__(self, *, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.attn_drop = nn.Dropout(dropout)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = self.attn_drop(torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1))
        y = attn @ v
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)) with GELU."""

    def __init__(self, *, dim: int, heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim=dim, heads=heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SmallViT(nn.Module):
    """A tiny Vision Transformer: ``patch_size`` patches, a class token, learned position
    embeddings for ``image_size`` (bicubically resized for other input sizes), ``depth`` pre-norm
    encoder layers (GELU MLP of ``mlp_ratio * dim``), final LayerNorm; returns the class token."""

    def __init__(self, *, image_size: int = 16, patch_size: int = 4, dim: int = 128, depth: int = 4,
                 heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.0, in_channels: int = 3,
                 family: str = "small_vit"):
        super().__init__()
        for name, value in (("image_size", image_size), ("patch_size", patch_size), ("dim", dim),
                            ("depth", depth), ("heads", heads), ("in_channels", in_channels)):
            _positive_int(name, value)
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.in_channels, self.patch_size, self.family = in_channels, patch_size, family
        self.grid = image_size // patch_size
        self.patch = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 1 + self.grid ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*[
            _Block(dim=dim, heads=heads, mlp_dim=int(dim * mlp_ratio), dropout=dropout)
            for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def _pos_embed(self, grid: int) -> torch.Tensor:
        if grid == self.grid:
            return self.pos
        cls, tokens = self.pos[:, :1], self.pos[:, 1:]
        tokens = tokens.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        tokens = F.interpolate(tokens, size=(grid, grid), mode="bicubic", align_corners=False)
        return torch.cat([cls, tokens.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) with H = W a multiple of ``patch_size`` -> (B, dim)."""
        _check_images(x, self.in_channels, "SmallViT")
        h, w = x.shape[-2:]
        if h != w or h % self.patch_size:
            raise ValueError(f"SmallViT needs square inputs whose side is a multiple of "
                             f"{self.patch_size}, got {h}x{w}")
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        tokens = self.blocks(tokens + self._pos_embed(h // self.patch_size))
        return self.norm(tokens[:, 0])


# --------------------------------------------------------------------------------------------
# registered sizes
# --------------------------------------------------------------------------------------------
SMALL_SIZES: dict[str, tuple[type[nn.Module], str, str, dict[str, Any]]] = {
    "small_cnn_s": (SmallCNN, "small_cnn", "student", {"width": 16, "depth": 3}),
    "small_cnn_m": (SmallCNN, "small_cnn", "student", {"width": 32, "depth": 3}),
    "cnn_teacher": (SmallCNN, "cnn_teacher", "teacher",
                    {"width": 32, "depth": 3, "convs_per_stage": 2, "pool_grid": 2}),
    "small_vit": (SmallViT, "small_vit", "teacher",
                  {"image_size": 16, "patch_size": 4, "dim": 128, "depth": 4, "heads": 4}),
    "resnet_teacher": (SmallResNet, "small_resnet", "teacher",
                       {"widths": (32, 64, 128, 256), "blocks": (1, 1, 1, 1), "pool_grid": 2}),
    "resnet_teacher_s": (SmallResNet, "small_resnet", "teacher",
                         {"widths": (8, 16, 32, 64), "blocks": (1, 1, 1, 1), "pool_grid": 2}),
}
"""name -> (class, family, role hint, default keyword arguments)."""

for _family, _head in (("small_cnn", "mlp"), ("cnn_teacher", "linear"), ("small_vit", "linear"),
                      ("small_resnet", "linear")):
    register_family_head(_family, _head)


def _register_small(name: str, cls: type[nn.Module], family: str, role_hint: str,
                    defaults: dict[str, Any]) -> None:
    def factory(*, pretrained: bool = False, weights_path: str | None = None, **kw: Any) -> nn.Module:
        if pretrained:
            raise ValueError(f"{name} has no ImageNet weights: pretrain it with "
                             f"brcd_lib.models.pretrain.ssl_pretrain or pass weights_path=...")
        if "family" in kw:
            raise ValueError(f"the family of {name} is fixed ({family!r})")
        model = cls(**{**defaults, **kw}, family=family)
        if weights_path is not None:
            load_strict(model, read_state_dict(weights_path), what=f"{name} (file {weights_path!r})")
        return model

    factory.__name__ = f"build_{name}"
    factory.__doc__ = f"{cls.__name__} {defaults}, family {family!r}."
    register_backbone(name, family=family, role_hint=role_hint)(factory)


for _name, (_cls, _fam, _role, _defaults) in SMALL_SIZES.items():
    _register_small(_name, _cls, _fam, _role, _defaults)

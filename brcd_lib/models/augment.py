"""Batched SimCLR-style augmentation of image tensors (used by the SimCLR stand-in).

Everything runs on whole batches of float tensors (no PIL, no per-image Python loop), with a
``torch.Generator`` for reproducibility. Per image, independently:

1. random resized crop: area fraction U(crop_scale), log aspect ratio U(log crop_ratio),
   resampled bilinearly to the input size (``affine_grid`` + ``grid_sample``, border padding);
2. horizontal flip with probability ``hflip_p``;
3. with probability ``jitter_p``: brightness, contrast and saturation factors drawn from
   U(1 - s, 1 + s) for s = ``brightness``, ``contrast``, ``saturation``, applied in that order
   (hue is not jittered);
4. grayscale with probability ``grayscale_p``;
5. Gaussian blur, 3x3 kernel, sigma U(blur_sigma), with probability ``blur_p``;
6. normalisation ``(x - mean) / std``.

The defaults follow the paper's training pipeline (method.md section 5) except hue jitter.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

_GRAY = (0.299, 0.587, 0.114)


def images_to_float(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) with C in {1, 3} -> float (N, 3, image_size, image_size) in [0, 1]
    (1-channel images repeated to 3 channels; bilinear resize when H != image_size)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be a uint8 tensor (N, 1 or 3, H, W), got {images.dtype} "
                         f"{tuple(images.shape)}")
    x = images.float() / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return x.contiguous()


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


class BatchAugment:
    """Callable ``aug(x, generator) -> augmented x`` for float images (B, 3, H, W) in [0, 1]."""

    def __init__(self, *, crop_scale: tuple[float, float] = (0.5, 1.0),
                 crop_ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip_p: float = 0.5,
                 jitter_p: float = 0.7, brightness: float = 0.4, contrast: float = 0.4,
                 saturation: float = 0.4, grayscale_p: float = 0.2, blur_p: float = 0.5,
                 blur_sigma: tuple[float, float] = (0.1, 2.0),
                 mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
                 std: tuple[float, float, float] = (0.5, 0.5, 0.5)):
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {crop_scale}")
        if not 0 < crop_ratio[0] <= crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < lo <= hi, got {crop_ratio}")
        for name, p in (("hflip_p", hflip_p), ("jitter_p", jitter_p), ("grayscale_p", grayscale_p),
                        ("blur_p", blur_p)):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {std}")
        self.crop_scale = tuple(float(v) for v in crop_scale)
        self.crop_ratio = tuple(float(v) for v in crop_ratio)
        self.hflip_p, self.jitter_p = float(hflip_p), float(jitter_p)
        self.brightness, self.contrast, self.saturation = float(brightness), float(contrast), float(saturation)
        self.grayscale_p, self.blur_p = float(grayscale_p), float(blur_p)
        self.blur_sigma = tuple(float(v) for v in blur_sigma)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    def params(self) -> dict[str, Any]:
        """All hyper-parameters (for cache keys and provenance)."""
        return dict(vars(self))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` per channel."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"BatchAugment expects float images (B, 3, H, W), got {tuple(x.shape)}")
        b = x.shape[0]

        def u(lo: float, hi: float, n: int = b) -> torch.Tensor:
            return (torch.rand(n, generator=generator) * (hi - lo) + lo).to(x.device, x.dtype)

        def coin(p: float) -> torch.Tensor:
            return (torch.rand(b, generator=generator) < p).to(x.device)

        # 1-2. random resized crop + flip
        area = u(*self.crop_scale)
        log_r = u(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]))
        sx = torch.sqrt(area * torch.exp(log_r)).clamp(max=1.0)
        sy = torch.sqrt(area / torch.exp(log_r)).clamp(max=1.0)
        cx = (u(-1.0, 1.0) * (1 - sx))
        cy = (u(-1.0, 1.0) * (1 - sy))
        flip = torch.where(coin(self.hflip_p), -1.0, 1.0).to(x.dtype)
        theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
        theta[:, 0, 0], theta[:, 0, 2] = sx * flip, cx
        theta[:, 1, 1], theta[:, 1, 2] = sy, cy
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        # 3. colour jitter
        jit = coin(self.jitter_p).view(b, 1, 1, 1)
        f_b = u(1 - self.brightness, 1 + self.brightness).view(b, 1, 1, 1)
        f_c = u(1 - self.contrast, 1 + self.contrast).view(b, 1, 1, 1)
        f_s = u(1 - self.saturation, 1 + self.saturation).view(b, 1, 1, 1)
        y = (x * f_b).clamp(0, 1)
        m = _gray(y).mean(dim=(2, 3), keepdim=True)
        y = ((y - m) * f_c + m).clamp(0, 1)
        g = _gray(y)
        y = ((y - g) * f_s + g).clamp(0, 1)
        x = torch.where(jit, y, x)
        # 4. grayscale
        x = torch.where(coin(self.grayscale_p).view(b, 1, 1, 1), _gray(x).expand_as(x), x)
        # 5. 3x3 Gaussian blur with a per-image sigma
        if self.blur_p > 0:
            sigma = u(*self.blur_sigma)
            offs = torch.tensor([-1.0, 0.0, 1.0], dtype=x.dtype, device=x.device)
            k1 = torch.exp(-(offs.view(1, 3) ** 2) / (2 * sigma.view(b, 1) ** 2))
            k1 = k1 / k1.sum(dim=1, keepdim=True)
            k2 = (k1.view(b, 3, 1) * k1.view(b, 1, 3)).repeat_interleave(3, dim=0).unsqueeze(1)
            h, w = x.shape[-2:]
            blurred = F.conv2d(F.pad(x.reshape(1, b * 3, h, w), (1, 1, 1, 1), mode="replicate"),
                               k2, groups=b * 3).view(b, 3, h, w)
            x = torch.where(coin(self.blur_p).view(b, 1, 1, 1), blurred, x)
        return self.normalize(x)

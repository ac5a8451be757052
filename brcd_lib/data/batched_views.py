"""The ``paper`` training transform in two halves: its random parameters drawn per image on the
CPU, then applied to a whole batch on any device (a CUDA GPU in the ``paper`` profile).

The per-image transform (:func:`brcd_lib.data.transforms.paper_train_transform`, torchvision
``v2``) draws its randomness from torch's global generator. :class:`ParamRecorder` runs that very
transform under ``torch.manual_seed(seed)`` on a small stand-in image whose kernels are replaced
by recorders, so the parameters it returns are exactly those the CPU transform would draw for the
same seed and image size (same calls, same order: torchvision's own ``forward`` control flow).
:func:`apply_params` then applies a batch of recorded parameters to ``uint8`` images with
batched tensor operations: crop + resize as two small matrix products per image, flip, colour
jitter in each image's own order, grayscale, 3x3 Gaussian blur with each image's sigma,
normalisation. It follows the ``uint8`` arithmetic of the CPU kernels (truncation after each
colour step, rounding after resize and blur), so its output matches the CPU transform's up to
the rounding of single pixels (``tests/test_batched_views.py`` measures how close).

Parameters of one view, as a float64 row of :data:`PARAM_FIELDS`: crop (top, left, height,
width), flip, jitter applied, the jitter order (4 slots), brightness, contrast, saturation and
hue factors, grayscale, blur applied and sigma.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

__all__ = ["PARAM_FIELDS", "ParamRecorder", "apply_params", "supports"]

PARAM_FIELDS = ("top", "left", "height", "width", "flip", "jitter", "order0", "order1", "order2",
                "order3", "brightness", "contrast", "saturation", "hue", "grayscale", "blur",
                "sigma")
_COL = {name: i for i, name in enumerate(PARAM_FIELDS)}
_KNOWN = (v2.RandomResizedCrop, v2.RandomHorizontalFlip, v2.RandomApply, v2.ColorJitter,
          v2.RandomGrayscale, v2.GaussianBlur, v2.ToDtype, v2.Normalize)


def supports(transform: Any) -> bool:
    """Whether ``transform`` (a ``v2.Compose``) is made only of the steps this module applies."""
    if not isinstance(transform, v2.Compose):
        return False
    for t in _flat(transform.transforms):
        if isinstance(t, v2.Transform) and not isinstance(t, _KNOWN):
            return False
    return True


def _flat(transforms) -> list:
    out = []
    for t in transforms:
        out.append(t)
        if isinstance(t, v2.RandomApply):
            out += _flat(t.transforms)
    return out


class ParamRecorder:
    """Draws the parameters of a ``v2.Compose`` training transform without transforming an image.

    A deep copy of the transform has every kernel call (``Transform.transform``) replaced by a
    recorder that notes the parameters and returns its input unchanged; calling the copy on a
    ``uint8`` stand-in of the image's size therefore consumes the global generator exactly as the
    real transform does. ``recorder(seed, height, width, views=2)`` returns ``(views, 17)``
    float64 rows: view ``v`` is the ``v``-th call after ``torch.manual_seed(seed)`` (as
    :class:`~brcd_lib.data.transforms.TwoViews` draws its two views)."""

    def __init__(self, transform: v2.Compose):
        if not supports(transform):
            raise ValueError(f"the batched views apply RandomResizedCrop, RandomHorizontalFlip, "
                             f"ColorJitter, RandomGrayscale, GaussianBlur, ToDtype and Normalize; "
                             f"{transform!r} has other steps: draw its views on the CPU "
                             "(augment='cpu')")
        self.transform = copy.deepcopy(transform)
        self._log: list[tuple[Any, dict]] = []
        for t in _flat(self.transform.transforms):
            if isinstance(t, v2.Transform) and not isinstance(t, v2.RandomApply):
                t.transform = self._recorder(t)

    def _recorder(self, t):
        def record(inpt, params):
            self._log.append((t, params))
            return inpt
        return record

    def _one(self, stand_in: torch.Tensor) -> torch.Tensor:
        self._log = []
        self.transform(stand_in)
        row = torch.zeros(len(PARAM_FIELDS), dtype=torch.float64)
        row[_COL["order0"]:_COL["order3"] + 1] = torch.arange(4, dtype=torch.float64)
        for t, p in self._log:
            if isinstance(t, v2.RandomResizedCrop):
                for k in ("top", "left", "height", "width"):
                    row[_COL[k]] = p[k]
            elif isinstance(t, v2.RandomHorizontalFlip):
                row[_COL["flip"]] = 1
            elif isinstance(t, v2.ColorJitter):
                row[_COL["jitter"]] = 1
                row[_COL["order0"]:_COL["order3"] + 1] = p["fn_idx"].to(torch.float64)
                for k in ("brightness", "contrast", "saturation", "hue"):
                    value = p[f"{k}_factor"]
                    row[_COL[k]] = math.nan if value is None else float(value)
            elif isinstance(t, v2.RandomGrayscale):
                row[_COL["grayscale"]] = 1
            elif isinstance(t, v2.GaussianBlur):
                row[_COL["blur"]] = 1
                row[_COL["sigma"]] = float(p["sigma"][0])
        return row

    def __call__(self, seed: int, height: int, width: int, *, views: int = 2,
                 channels: int = 3) -> torch.Tensor:
        stand_in = torch.zeros(channels, int(height), int(width), dtype=torch.uint8)
        torch.manual_seed(int(seed))
        return torch.stack([self._one(stand_in) for _ in range(views)])


def _settings(transform: v2.Compose) -> dict:
    """Output size, blur kernel and normalisation of a supported transform."""
    out = {"size": None, "kernel": 3, "mean": None, "std": None}
    for t in _flat(transform.transforms):
        if isinstance(t, v2.RandomResizedCrop):
            out["size"] = tuple(t.size)
        elif isinstance(t, v2.GaussianBlur):
            out["kernel"] = int(t.kernel_size[0])
        elif isinstance(t, v2.Normalize):
            out["mean"], out["std"] = tuple(t.mean), tuple(t.std)
    if out["size"] is None:
        raise ValueError(f"{transform!r} has no RandomResizedCrop: nothing sets the output size")
    return out


# ------------------------------------------------------------------------------------------------
# batched application
# ------------------------------------------------------------------------------------------------
def _resize_weights(start: torch.Tensor, length: torch.Tensor, n_in: int, n_out: int) -> torch.Tensor:
    """(B, n_out, n_in) float64 antialiased bilinear weights (torch's ``interpolate(antialias=True)``
    rule: a triangle filter widened by the downscale factor, normalised per output pixel) of
    the window [start, start + length) of each image, resampled to ``n_out`` pixels."""
    dev = start.device
    scale = (length / n_out).view(-1, 1, 1)                              # (B, 1, 1)
    support = torch.clamp(scale, min=1.0)
    centre = scale * (torch.arange(n_out, device=dev, dtype=torch.float64).view(1, -1, 1) + 0.5)
    j = torch.arange(n_in, device=dev, dtype=torch.float64).view(1, 1, -1) - start.view(-1, 1, 1)
    w = torch.clamp(1.0 - ((j - centre + 0.5) / support).abs(), min=0.0)
    w = torch.where((j >= 0) & (j < length.view(-1, 1, 1)), w, torch.zeros_like(w))
    return w / w.sum(dim=2, keepdim=True)


def _fixed_point(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The uint8 resize's integer weights: each image's weights scaled by 2^p (p the largest
    precision below 22 whose largest weight x 2^(p+1) stays under 2^15) and rounded; returns
    (integer weights as float64, 2^p per image)."""
    wmax = w.flatten(1).max(dim=1).values
    p = torch.zeros_like(wmax)
    for bits in range(22):  # the first precision whose next step overflows int16
        grow = torch.floor(0.5 + wmax * 2.0 ** (bits + 1)) < 2 ** 15
        p = torch.where(grow & (p == bits), p + 1, p)
    unit = (2.0 ** p).view(-1, 1, 1)
    return torch.floor(w * unit + 0.5), unit


def _resize_uint8(x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
    """Crop + resize of uint8-valued float64 images (B, C, H, W) as torch's native uint8 CPU
    kernel computes it: integer weights, a horizontal pass rounded to uint8, then a vertical one
    (exact integer arithmetic in float64)."""
    kx, ux = _fixed_point(wx)
    ky, uy = _fixed_point(wy)
    ux, uy = ux.view(-1, 1, 1, 1), uy.view(-1, 1, 1, 1)
    h = torch.matmul(x, kx.transpose(1, 2).unsqueeze(1))
    h = torch.floor((h + ux / 2) / ux).clamp_(0, 255)
    v = torch.matmul(ky.unsqueeze(1), h)
    return torch.floor((v + uy / 2) / uy).clamp_(0, 255)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """torchvision's luma of (B, 3, H, W) floats in the uint8 range, same operation order."""
    r, g, b = x.unbind(dim=1)
    return torch.add(torch.add(r.mul(0.2989), g, alpha=0.587), b, alpha=0.114).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """uint8 ``_blend``: ``x * ratio + other * (1 - ratio)``, clamped, truncated."""
    r = ratio.view(-1, 1, 1, 1)
    keep = (1.0 - ratio).float().view(-1, 1, 1, 1)
    return (x * r.float() + other * keep).clamp_(0, 255).floor_()


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Hue rotation by ``shift`` (fractions of a turn) of uint8-range images, back to uint8."""
    y = x.mul(1.0 / 255)
    r, g, b = y.unbind(dim=1)
    maxc, _ = y.max(dim=1)
    minc, _ = y.min(dim=1)
    eq = maxc == minc
    span = maxc - minc
    s = span / torch.where(eq, torch.ones_like(maxc), maxc)
    d = torch.where(eq, torch.ones_like(span), span)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(eq, torch.zeros_like(h), h)
    h = (h / 6.0 + 1.0).fmod(1.0)
    h = (h + shift.float().view(-1, 1, 1)).remainder(1.0)
    h6 = h * 6
    i = torch.floor(h6)
    f = h6 - i
    i = i.long().remainder(6)
    v = maxc
    p = ((1.0 - s) * v).clamp(0, 1)
    q = ((1.0 - s * f) * v).clamp(0, 1)
    t = ((s * f + (1.0 - s)) * v).clamp(0, 1)
    table = torch.stack([torch.stack(c, 0) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p),
                                                      (p, p, t, v, v, q))], 0)  # (3, 6, B, H, W)
    out = table.gather(1, i.unsqueeze(0).unsqueeze(0).expand(3, 1, *i.shape)).squeeze(1)
    return out.transpose(0, 1).mul(255 + 1.0 - 1e-3).floor_()


def _blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Gaussian blur with each image's sigma (torchvision's kernel: softmax of -(t / sigma)^2 on
    ``kernel`` points of [-(k - 1) / (2 sqrt 2), +(k - 1) / (2 sqrt 2)]), reflect padding, rounded."""
    b, c, h, w = x.shape
    lim = (kernel - 1) / (2.0 * math.sqrt(2.0))
    t = torch.linspace(-lim, lim, steps=kernel, dtype=torch.float32, device=x.device)
    k1 = torch.softmax(t.view(1, -1).div(sigma.float().view(-1, 1)).pow(2).neg(), dim=1)
    k2 = (k1.unsqueeze(2) * k1.unsqueeze(1)).repeat_interleave(c, dim=0).unsqueeze(1)
    pad = kernel // 2
    padded = F.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode="reflect")
    return F.conv2d(padded, k2, groups=b * c).view(b, c, h, w).round_()


def apply_params(images: torch.Tensor, params: torch.Tensor, transform: v2.Compose) -> torch.Tensor:
    """Apply ``params`` (B, 17) recorded for ``transform`` to ``images`` (B, C, H, W) ``uint8``
    (C = 1 or 3; any device): float32 (B, 3, size, size), normalised as the transform does."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be uint8 (B, 1 or 3, H, W), got {images.dtype} "
                         f"{tuple(images.shape)}")
    if params.shape != (images.shape[0], len(PARAM_FIELDS)):
        raise ValueError(f"params must be ({images.shape[0]}, {len(PARAM_FIELDS)}), got "
                         f"{tuple(params.shape)}")
    cfg = _settings(transform)
    dev = images.device
    p = params.to(dev, torch.float64)
    col = {k: p[:, i] for k, i in _COL.items()}
    x = images.to(torch.float64)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    _, _, h, w = x.shape
    out_h, out_w = cfg["size"]
    wy = _resize_weights(col["top"], col["height"], h, out_h)      # (B, out_h, h)
    wx = _resize_weights(col["left"], col["width"], w, out_w)      # (B, out_w, w)
    wx = torch.where(col["flip"].view(-1, 1, 1) > 0, wx.flip(1), wx)
    x = _resize_uint8(x, wy, wx).float()                           # (B, 3, out_h, out_w)
    jitter = col["jitter"] > 0
    for slot in range(4):
        for op, name in enumerate(("brightness", "contrast", "saturation", "hue")):
            factor = col[name]
            sel = (jitter & (col[f"order{slot}"] == op) & ~torch.isnan(factor)).nonzero().view(-1)
            if sel.numel() == 0:
                continue
            xs, f = x[sel], factor[sel]
            if name == "brightness":
                xs = (xs * f.float().view(-1, 1, 1, 1)).clamp_(0, 255).floor_()
            elif name == "contrast":
                mean = _gray(xs).floor_().mean(dim=(1, 2, 3), keepdim=True)
                xs = _blend(xs, mean, f)
            elif name == "saturation":
                xs = _blend(xs, _gray(xs).floor_(), f)
            else:
                xs = _hue(xs, f)
            x = x.index_copy(0, sel, xs)
    gray = (col["grayscale"] > 0).nonzero().view(-1)
    if gray.numel():
        x = x.index_copy(0, gray, _gray(x[gray]).floor_().expand(-1, 3, -1, -1))
    blur = (col["blur"] > 0).nonzero().view(-1)
    if blur.numel():
        x = x.index_copy(0, blur, _blur(x[blur], col["sigma"][blur], cfg["kernel"]))
    x = x.mul_(1.0 / 255)
    if cfg["mean"] is not None:
        mean = torch.as_tensor(cfg["mean"], dtype=x.dtype, device=dev).view(1, -1, 1, 1)
        std = torch.as_tensor(cfg["std"], dtype=x.dtype, device=dev).view(1, -1, 1, 1)
        x = x.sub_(mean).div_(std)
    return x.contiguous()

"""Image transforms (``torchvision.transforms.v2``) of the paper and of the small CPU profiles.

Every transform accepts a ``uint8`` tensor ``(C, H, W)`` with C = 1 or 3, or a PIL image, and
returns a plain ``float32`` tensor ``(3, size, size)``; one-channel images are repeated to three
channels first, so the same backbones serve greyscale and colour datasets. Randomness comes from
torch's global generator: ``torch.manual_seed`` makes a transform deterministic.

- ``paper`` (method.md section 5): train = RandomResizedCrop(224, scale 0.5-1), horizontal flip,
  ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.7, grayscale p 0.2, Gaussian blur (kernel 3, sigma
  0.1-2) with p 0.5, ImageNet normalisation; test = Resize(256) + CenterCrop(224), or a direct
  Resize((224, 224)) as the released code does for CIFAR-10 (``center_crop=False``).
- ``small``: the same recipe at a small size, for 8x8-32x32 images: no hue jitter and no
  grayscale (greyscale data), no flip by default (a flipped digit is another symbol),
  normalisation with mean 0.5 / std 0.5.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ..registry import Registry

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TwoViews",
    "ToRGBImage",
    "get_transforms",
    "list_transforms",
    "paper_test_transform",
    "paper_train_transform",
    "register_transforms",
    "resize_uint8_images",
    "small_test_transform",
    "small_train_transform",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


class ToRGBImage:
    """PIL image or ``uint8`` tensor ``(C, H, W)`` (C = 1 or 3) -> ``uint8`` 3-channel image tensor."""

    def __call__(self, image: Any) -> tv_tensors.Image:
        from PIL import Image

        if isinstance(image, Image.Image):
            tensor = TF.pil_to_tensor(image if image.mode == "RGB" else image.convert("RGB"))
        elif isinstance(image, torch.Tensor):
            if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
                raise ValueError(
                    "transforms take a uint8 tensor of shape (C, H, W) with C = 1 or 3, or a PIL "
                    f"image; got dtype {image.dtype} and shape {tuple(image.shape)} (scale float "
                    "images with (x * 255).round().to(torch.uint8) and put channels first)"
                )
            tensor = image.repeat(3, 1, 1) if image.shape[0] == 1 else image
        else:
            raise TypeError(f"transforms take a uint8 tensor (C, H, W) or a PIL image, got "
                            f"{type(image).__name__}")
        return tv_tensors.Image(tensor)

    def __repr__(self) -> str:
        return "ToRGBImage()"


class _PlainTensor:
    """Drop the ``tv_tensors.Image`` wrapper so callers get a plain ``torch.Tensor``."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return image.as_subclass(torch.Tensor)

    def __repr__(self) -> str:
        return "PlainTensor()"


def _finish(mean: Sequence[float], std: Sequence[float]) -> list[Any]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std)),
            _PlainTensor()]


def _check_size(size: int, what: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"{what} must be a positive int, got {size!r}")
    return size


def paper_train_transform(size: int = 224, *, crop_scale: tuple[float, float] = (0.5, 1.0),
                          flip_p: float = 0.5, jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
                          jitter_p: float = 0.7, grayscale_p: float = 0.2, blur_kernel: int = 3,
                          blur_sigma: tuple[float, float] = (0.1, 2.0), blur_p: float = 0.5,
                          mean: Sequence[float] = IMAGENET_MEAN,
                          std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """The released code's training augmentation (method.md section 5), defaults as in the paper."""
    _check_size(size)
    b, c, s, h = jitter
    return v2.Compose([
        ToRGBImage(),
        v2.RandomResizedCrop(size, scale=crop_scale, antialias=True),
        v2.RandomHorizontalFlip(p=flip_p),
        v2.RandomApply([v2.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h)], p=jitter_p),
        v2.RandomGrayscale(p=grayscale_p),
        v2.RandomApply([v2.GaussianBlur(blur_kernel, sigma=blur_sigma)], p=blur_p),
        *_finish(mean, std),
    ])


def paper_test_transform(size: int = 224, *, resize: int | None = None, center_crop: bool = True,
                         mean: Sequence[float] = IMAGENET_MEAN,
                         std: Sequence[float] = IMAGENET_STD) -> v2.Compose:
    """Evaluation transform: Resize(resize) + CenterCrop(size), or Resize((size, size)).

    ``resize=None`` keeps the paper's ratio 256 / 224 (so 256 at ``size=224``). With
    ``center_crop=False`` the image is resized straight to ``size x size``, as the released code
    does for CIFAR-10 (``resize`` is then ignored).
    """
    _check_size(size)
    if center_crop:
        short_side = round(size * 256 / 224) if resize is None else _check_size(resize, "resize")
        if short_side < size:
            raise ValueError(f"resize ({short_side}) must be >= size ({size}) for a center crop")
        geometry = [v2.Resize(short_side, antialias=True), v2.CenterCrop(size)]
    else:
        geometry = [v2.Resize((size, size), antialias=True)]
    return v2.Compose([ToRGBImage(), *geometry, *_finish(mean, std)])


def small_train_transform(size: int, *, crop_scale: tuple[float, float] = (0.5, 1.0),
                          degrees: float = 0.0, translate: float = 0.0, flip: bool = False,
                          jitter: tuple[float, float] = (0.4, 0.4), jitter_p: float = 0.7,
                          blur_kernel: int = 3, blur_sigma: tuple[float, float] = (0.1, 2.0),
                          blur_p: float = 0.5, mean: Sequence[float] = HALF,
                          std: Sequence[float] = HALF) -> v2.Compose:
    """Training augmentation for small (greyscale) images of the CPU profiles.

    RandomResizedCrop(size, scale 0.5-1); an optional RandomAffine (``degrees`` / ``translate``
    as a fraction of the side, off by default); horizontal flip only when ``flip`` (off: flips
    change a digit's identity); brightness/contrast jitter (no hue, no saturation) with p 0.7;
    Gaussian blur (kernel 3, sigma 0.1-2) with p 0.5; normalisation mean 0.5 / std 0.5.
    """
    _check_size(size)
    steps: list[Any] = [ToRGBImage(), v2.RandomResizedCrop(size, scale=crop_scale, antialias=True)]
    if degrees or translate:
        steps.append(v2.RandomAffine(degrees=degrees, translate=(translate, translate)))
    if flip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    brightness, contrast = jitter
    steps += [
        v2.RandomApply([v2.ColorJitter(brightness=brightness, contrast=contrast)], p=jitter_p),
        v2.RandomApply([v2.GaussianBlur(blur_kernel, sigma=blur_sigma)], p=blur_p),
        *_finish(mean, std),
    ]
    return v2.Compose(steps)


def small_test_transform(size: int, *, mean: Sequence[float] = HALF,
                         std: Sequence[float] = HALF) -> v2.Compose:
    """Evaluation transform of the small profiles: Resize((size, size)) and normalisation."""
    _check_size(size)
    return v2.Compose([ToRGBImage(), v2.Resize((size, size), antialias=True), *_finish(mean, std)])


class TwoViews:
    """Wrap a random transform ``t``: ``TwoViews(t)(x) == (t(x), t(x))`` (two independent draws)."""

    def __init__(self, transform: Callable[[Any], Any]) -> None:
        if not callable(transform):
            raise TypeError(f"TwoViews needs a callable transform, got {type(transform).__name__}")
        self.transform = transform

    def __call__(self, image: Any) -> tuple[Any, Any]:
        return self.transform(image), self.transform(image)

    def __repr__(self) -> str:
        return f"TwoViews({self.transform!r})"


# -- registry -----------------------------------------------------------------------------------
TransformFactory = Callable[..., Callable[[Any], torch.Tensor]]
TRANSFORMS: Registry = Registry("transform kind")


def register_transforms(kind: str, *, train: TransformFactory, test: TransformFactory) -> None:
    """Register a pair of factories ``factory(size=..., **options)`` under ``kind``: the entry's
    factory builds the training transform, its ``test`` metadata the evaluation transform."""
    if kind in TRANSFORMS:
        raise ValueError(f"transform kind {kind!r} is registered twice")
    TRANSFORMS.add(kind, train, test=test)


def list_transforms() -> list[str]:
    """Registered transform kinds, sorted."""
    return TRANSFORMS.names()


def get_transforms(kind: str, *, size: int, train: bool, **options: Any) -> Callable[[Any], torch.Tensor]:
    """The training (``train=True``) or evaluation transform of ``kind`` at ``size``.

    ``options`` go to the factory (e.g. ``center_crop=False`` for ``paper`` evaluation).
    """
    entry = TRANSFORMS.entry(kind)
    factory = entry.factory if train else entry.meta["test"]
    return factory(size=size, **options)


register_transforms("paper", train=paper_train_transform, test=paper_test_transform)
register_transforms("small", train=small_train_transform, test=small_test_transform)


# -- storage-time resizing ----------------------------------------------------------------------
def resize_uint8_images(images: torch.Tensor, size: int, *, chunk: int = 4096) -> torch.Tensor:
    """Bilinearly resize a ``uint8`` batch ``(n, C, H, W)`` to ``(n, C, size, size)`` (uint8).

    Returns ``images`` itself when it already has that size. Downscaling uses antialiasing.
    """
    _check_size(size)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"expected a uint8 tensor (n, C, H, W), got dtype {images.dtype} and "
                         f"shape {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if h == size and w == size:
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):  # bounded float memory for 60k-image pools
        block = F.interpolate(images[start:start + chunk].float(), size=(size, size),
                              mode="bilinear", align_corners=False, antialias=size < min(h, w))
        out[start:start + chunk] = block.round_().clamp_(0, 255).to(torch.uint8)
    return out

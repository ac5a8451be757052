"""The paper transform split in two (brcd_lib/data/batched_views.py): the parameters recorded for a
seed are the ones the per-image CPU transform draws, and the batched application on any device
reproduces the CPU transform's pixels (up to the rounding of single pixels)."""
from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from brcd_lib.data.batched_views import PARAM_FIELDS, ParamRecorder, apply_params, supports
from brcd_lib.data.transforms import TwoViews, paper_train_transform, small_train_transform
from brcd_lib.training.views import (CpuViews, DeviceViews, epoch_batches, epoch_seed,
                                     make_views, resolve_augment)

COL = {name: i for i, name in enumerate(PARAM_FIELDS)}
JITTER = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
NAMES = ("brightness", "contrast", "saturation", "hue")


def _images(n: int, size: int = 32, channels: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)


def _apply_one(image: torch.Tensor, row: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """The recorded parameters applied with torchvision's per-image functionals (an independent
    application: if it equals the transform's output, the parameters are the transform's)."""
    c = {k: row[i].item() for k, i in COL.items()}
    x = image.repeat(3, 1, 1) if image.shape[0] == 1 else image
    x = TF.resized_crop(x, int(c["top"]), int(c["left"]), int(c["height"]), int(c["width"]),
                        [size, size], antialias=True)
    if c["flip"]:
        x = TF.horizontal_flip(x)
    if c["jitter"]:
        for slot in range(4):
            op = int(c[f"order{slot}"])
            if not math.isnan(c[NAMES[op]]):
                x = JITTER[op](x, c[NAMES[op]])
    if c["grayscale"]:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if c["blur"]:
        x = TF.gaussian_blur(x, [3, 3], [c["sigma"], c["sigma"]])
    return TF.normalize(TF.to_dtype(x, torch.float32, scale=True), list(mean), list(std))


@pytest.mark.parametrize("channels", [3, 1])
def test_recorded_parameters_are_the_ones_the_cpu_transform_draws(channels):
    transform = paper_train_transform(64)
    recorder = ParamRecorder(transform)
    images = _images(24, size=20, channels=channels)
    mean, std = transform.transforms[-2].mean, transform.transforms[-2].std
    seen = torch.zeros(len(PARAM_FIELDS))
    for i in range(len(images)):
        seed = 1_000 + 7 * i
        torch.manual_seed(seed)
        expected = TwoViews(transform)(images[i])
        rows = recorder(seed, 20, 20, views=2)
        for view in range(2):
            got = _apply_one(images[i], rows[view], 64, mean, std)
            assert torch.equal(got, expected[view]), (i, view, rows[view])
            seen += (rows[view] != 0).float()
    # every random step fired in some image (else the test would not test it)
    for name in ("flip", "jitter", "grayscale", "blur"):
        assert seen[COL[name]] > 0, name


def test_recording_leaves_the_transform_alone_and_rejects_other_steps():
    transform = paper_train_transform(32)
    ParamRecorder(transform)
    torch.manual_seed(3)
    out = transform(_images(1)[0])
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32  # still a working transform
    assert supports(transform)
    assert not supports(small_train_transform(16, degrees=10.0))  # RandomAffine
    with pytest.raises(ValueError, match="augment='cpu'"):
        ParamRecorder(small_train_transform(16, degrees=10.0))


def _levels(x: torch.Tensor, transform) -> torch.Tensor:
    mean = torch.tensor(transform.transforms[-2].mean).view(1, 3, 1, 1)
    std = torch.tensor(transform.transforms[-2].std).view(1, 3, 1, 1)
    return (x * std + mean) * 255


def _cpu_views(transform, images, seeds):
    out = []
    for image, seed in zip(images, seeds):
        torch.manual_seed(seed)
        out += list(TwoViews(transform)(image))
    return torch.stack(out)


def test_batched_colour_steps_match_the_cpu_kernels():
    """Without resampling (crop = the whole image at its own size) the batched jitter, grayscale
    and blur follow the uint8 kernels: all but a few pixels (float rounding next to a
    truncation) are equal."""
    transform = paper_train_transform(32)
    recorder = ParamRecorder(transform)
    images = _images(64)
    rows = torch.cat([recorder(50 + i, 32, 32, views=1) for i in range(64)])
    rows[:, COL["top"]] = rows[:, COL["left"]] = 0
    rows[:, COL["height"]] = rows[:, COL["width"]] = 32
    mean, std = transform.transforms[-2].mean, transform.transforms[-2].std
    expected = torch.stack([_apply_one(images[i], rows[i], 32, mean, std) for i in range(64)])
    diff = (_levels(apply_params(images, rows, transform), transform)
            - _levels(expected, transform)).abs()
    assert float((diff < 0.5).float().mean()) >= 0.999
    assert float(diff.max()) <= 3.0


def test_batched_views_match_the_cpu_transform():
    """Crop + resize are computed as torch's uint8 CPU kernel computes them (integer weights,
    horizontal then vertical pass): on this CPU nearly every value is equal; on any CPU the
    views agree to a fraction of a grey level on average."""
    transform = paper_train_transform(224)
    recorder = ParamRecorder(transform)
    images = _images(12)
    seeds = [epoch_seed(5, 2, i) for i in range(12)]
    expected = _cpu_views(transform, images, seeds)
    rows = torch.cat([recorder(s, 32, 32, views=2) for s in seeds])
    got = apply_params(images.repeat_interleave(2, dim=0), rows, transform)
    assert got.shape == expected.shape == (24, 3, 224, 224)
    diff = (_levels(got, transform) - _levels(expected, transform)).abs()
    equal = float((diff < 0.5).float().mean())
    print(f"batched vs CPU views: {equal:.6f} of the values equal, mean |diff| "
          f"{float(diff.mean()):.5f} levels, max {float(diff.max()):.1f}")
    assert equal >= 0.75 and float(diff.mean()) <= 0.5


def test_device_views_draw_the_cpu_views_parameters_for_each_seed_epoch_and_image():
    transform = paper_train_transform(48)
    images = _images(10, size=24)

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return TwoViews(transform)(images[i]), i

    batches = epoch_batches(10, seed=3, epoch=1, batch_size=4)
    cpu = list(CpuViews(Pairs()).draw(seed=9, epoch=1, batches=batches))
    dev = list(DeviceViews(images, transform).draw(seed=9, epoch=1, batches=batches))
    assert len(cpu) == len(dev) == 2  # 10 // 4 full batches
    for ((c1, c2), ci), ((d1, d2), di) in zip(cpu, dev):
        assert torch.equal(ci, di)
        for c, d in ((c1, d1), (c2, d2)):
            diff = (_levels(c, transform) - _levels(d, transform)).abs()
            assert float(diff.mean()) <= 0.5
    # another epoch draws other views
    other = next(iter(DeviceViews(images, transform).draw(seed=9, epoch=2, batches=batches[:1])))
    assert not torch.equal(other[0][0], dev[0][0][0])


def test_augment_choice_is_checked():
    transform = paper_train_transform(32)
    images = _images(2)
    assert resolve_augment("auto", device="cpu", images=images, transform=transform) == "cpu"
    assert resolve_augment("auto", device="cuda", images=images, transform=transform) == "device"
    assert resolve_augment("auto", device="cuda", images=None, transform=transform) == "cpu"
    assert resolve_augment("device", device="cpu", images=images, transform=transform) == "device"
    with pytest.raises(ValueError, match="files, not an in-memory uint8 array"):
        resolve_augment("device", device="cpu", images=None, transform=transform)
    with pytest.raises(ValueError, match="must be one of auto, cpu, device"):
        resolve_augment("gpu", device="cpu", images=images, transform=transform)
    with pytest.raises(ValueError, match="augment"):
        from brcd_lib.config import TrainConfig
        TrainConfig(augment="gpu")


def test_make_views_picks_the_backend():
    from brcd_lib.data.base import ArrayImageSet

    ds = ArrayImageSet(images=_images(4), labels=torch.eye(4, dtype=torch.uint8).numpy())
    transform = paper_train_transform(32)
    assert isinstance(make_views(ds, transform, augment="cpu"), CpuViews)
    assert isinstance(make_views(ds, transform, augment="device"), DeviceViews)
    assert make_views(ds, transform).kind == "cpu"  # auto on the CPU

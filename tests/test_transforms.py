"""Tests of brcd_lib.data.transforms: shapes, dtypes, channel handling, determinism, registry."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision.transforms import v2

from brcd_lib.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TwoViews,
    get_transforms,
    list_transforms,
    paper_test_transform,
    paper_train_transform,
    resize_uint8_images,
    small_test_transform,
    small_train_transform,
)

torch.set_num_threads(1)


def _random_uint8(c, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (c, h, w), generator=g, dtype=torch.uint8)


def _inputs(h=20, w=24):
    gray = _random_uint8(1, h, w, seed=1)
    rgb = _random_uint8(3, h, w, seed=2)
    return {
        "tensor1": gray,
        "tensor3": rgb,
        "pil_L": Image.fromarray(gray[0].numpy(), mode="L"),
        "pil_RGB": Image.fromarray(rgb.permute(1, 2, 0).numpy(), mode="RGB"),
    }


FACTORIES = {
    "paper_train": lambda s: paper_train_transform(s),
    "paper_test": lambda s: paper_test_transform(s),
    "paper_test_resize": lambda s: paper_test_transform(s, center_crop=False),
    "small_train": lambda s: small_train_transform(s),
    "small_test": lambda s: small_test_transform(s),
}


@pytest.mark.parametrize("kind", sorted(FACTORIES))
@pytest.mark.parametrize("source", ["tensor1", "tensor3", "pil_L", "pil_RGB"])
def test_output_shape_and_dtype(kind, source):
    size = 16
    out = FACTORIES[kind](size)(_inputs()[source])
    assert type(out) is torch.Tensor  # a plain tensor, not a tv_tensors wrapper
    assert out.dtype == torch.float32
    assert out.shape == (3, size, size)
    assert torch.isfinite(out).all()


def test_paper_defaults_are_224():
    x = _random_uint8(3, 40, 30)
    assert paper_train_transform()(x).shape == (3, 224, 224)
    assert paper_test_transform()(x).shape == (3, 224, 224)
    resize = [t for t in paper_test_transform().transforms if isinstance(t, v2.Resize)][0]
    assert list(resize.size) == [256]
    assert any(isinstance(t, v2.CenterCrop) for t in paper_test_transform().transforms)
    assert not any(isinstance(t, v2.CenterCrop)
                   for t in paper_test_transform(center_crop=False).transforms)


def test_gray_is_repeated_to_three_identical_channels_golden():
    x = _random_uint8(1, 8, 8, seed=5)
    out = small_test_transform(8)(x)  # no resize at the native size: pure normalisation
    expected = np.empty((3, 8, 8), dtype=np.float64)
    for c in range(3):
        for i in range(8):
            for j in range(8):
                expected[c, i, j] = (int(x[0, i, j]) / 255.0 - 0.5) / 0.5
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)


def test_paper_test_no_crop_imagenet_normalisation_golden():
    x = _random_uint8(3, 6, 6, seed=9)
    out = paper_test_transform(6, center_crop=False)(x)
    for c in range(3):
        expected = (x[c].double() / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        np.testing.assert_allclose(out[c].numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("factory", [lambda: paper_train_transform(24), lambda: small_train_transform(12)])
def test_deterministic_under_manual_seed(factory):
    t = factory()
    x = _random_uint8(3, 28, 28, seed=3)
    torch.manual_seed(123)
    a = t(x)
    torch.manual_seed(123)
    b = t(x)
    assert torch.equal(a, b)
    draws = []
    for seed in range(4):
        torch.manual_seed(seed)
        draws.append(t(x))
    assert any(not torch.equal(draws[0], d) for d in draws[1:])


def test_two_views_are_independent_draws():
    x = _random_uint8(3, 28, 28, seed=4)
    views = TwoViews(small_train_transform(12))
    torch.manual_seed(0)
    v1, v2_ = views(x)
    assert v1.shape == v2_.shape == (3, 12, 12)
    assert not torch.equal(v1, v2_)
    torch.manual_seed(0)
    w1, w2 = views(x)
    assert torch.equal(v1, w1) and torch.equal(v2_, w2)
    with pytest.raises(TypeError, match="callable"):
        TwoViews(3)


def test_small_train_has_no_flip_by_default():
    kinds = lambda t: [type(s) for s in t.transforms]  # noqa: E731
    assert v2.RandomHorizontalFlip not in kinds(small_train_transform(16))
    assert v2.RandomHorizontalFlip in kinds(small_train_transform(16, flip=True))
    assert v2.RandomAffine in kinds(small_train_transform(16, translate=0.1))
    assert v2.RandomHorizontalFlip in kinds(paper_train_transform(16))


def test_registry():
    assert list_transforms() == ["paper", "small"]
    t = get_transforms("small", size=10, train=False)
    assert t(_random_uint8(1, 10, 10)).shape == (3, 10, 10)
    t = get_transforms("paper", size=32, train=False, center_crop=False)
    assert t(_random_uint8(3, 50, 40)).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="paper, small"):
        get_transforms("nope", size=10, train=True)


def test_bad_inputs_raise_clear_errors():
    t = small_test_transform(8)
    with pytest.raises(ValueError, match="uint8"):
        t(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        t(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        t(torch.zeros(2, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="PIL"):
        t(np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="size"):
        small_test_transform(0)
    with pytest.raises(ValueError, match="resize"):
        paper_test_transform(32, resize=16)


def test_resize_uint8_images():
    imgs = torch.full((2, 1, 8, 8), 77, dtype=torch.uint8)
    assert resize_uint8_images(imgs, 8) is imgs
    up = resize_uint8_images(imgs, 13)
    assert up.shape == (2, 1, 13, 13) and up.dtype == torch.uint8
    assert (up == 77).all()  # a constant image stays constant
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 255).to(torch.uint8)
    down = resize_uint8_images(checker[None, None].repeat(3, 1, 1, 1), 4, chunk=2)
    # a 0/255 checkerboard shrinks to mid-grey (each output blends equal shares of 0 and 255)
    assert down.shape == (3, 1, 4, 4)
    assert ((down.float() - 127.5).abs() <= 3).all()
    with pytest.raises(ValueError, match="uint8"):
        resize_uint8_images(imgs.float(), 4)


@settings(max_examples=20, deadline=None)
@given(c=st.sampled_from([1, 3]), h=st.integers(4, 40), w=st.integers(4, 40),
       size=st.integers(4, 24), train=st.booleans())
def test_any_input_size_gives_requested_output(c, h, w, size, train):
    t = get_transforms("small", size=size, train=train)
    out = t(_random_uint8(c, h, w))
    assert out.shape == (3, size, size) and out.dtype == torch.float32

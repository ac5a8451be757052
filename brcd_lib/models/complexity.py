"""Model size and compute: parameter counts and FLOPs per image.

Convention: **FLOPs = multiply-adds** (one multiply-add counts 1), the convention of the
torchvision model cards (their "GFLOPS" column, ``weights.meta["_ops"]``) and of most papers.
Counted: matrix products, convolutions and the two products of attention (``Q K^T`` and
``softmax(.) V``); not counted: element-wise operations, normalisation, activations, softmax.

The counts come from ``torch.utils.flop_counter.FlopCounterMode`` (which counts a multiply-add as
2 and is halved here). Two of its blind spots are closed while counting:
- ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` take a fused "fast path" in eval
  mode without gradients, a kernel the counter does not see (torchvision's ViT-B/16 would lose
  the QKV and output projections and the attention products); the fast path is switched off
  during the count (``torch.backends.mha.set_fastpath_enabled``) and restored afterwards;
- the CPU kernel of ``scaled_dot_product_attention``
  (``aten._scaled_dot_product_flash_attention_for_cpu``) has no formula in the counter; it gets
  the counter's own attention formula.
With both, torchvision's ViT-B/16, EfficientNet-B0, MobileNetV2 and ResNet-18 at 224 px match their
model cards (``tests/test_models.py``). A model on the ``meta`` device is counted without any
arithmetic (fast).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` when ``trainable_only``); shared
    parameters are counted once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def _input_shape(input_size: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(input_size, int):
        return (3, input_size, input_size)
    shape = tuple(int(v) for v in input_size)
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError(f"input_size must be an int side or (C, H, W), got {input_size!r}")
    return shape  # type: ignore[return-value]


def _cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """Counter FLOPs (2 per multiply-add) of the CPU attention kernel: the counter's formula for
    the other attention kernels (``Q K^T`` and ``P V``)."""
    return sdpa_flop_count(query, key, value)


def _custom_formulas() -> dict:
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    return {op: _cpu_attention_flops} if op is not None else {}


@contextlib.contextmanager
def _attention_fast_path_disabled() -> Iterator[None]:
    mha = getattr(torch.backends, "mha", None)
    if mha is None:  # pragma: no cover - torch < 2.1 has no switch
        yield
        return
    previous = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(previous)


def count_flops(model: nn.Module, input_size: int | Sequence[int]) -> int:
    """FLOPs, counted as **multiply-adds**, of one forward pass on one image of ``input_size``
    ((C, H, W) or an int side for 3 x side x side), in eval mode without gradients, attention
    included (module docstring); the model's mode is restored afterwards. The input is created on
    the device of the model's parameters (``meta`` works and is fastest)."""
    shape = _input_shape(input_size)
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    x = torch.zeros((1, *shape), device=device, dtype=dtype)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False, custom_mapping=_custom_formulas())
        with torch.no_grad(), _attention_fast_path_disabled(), counter:
            model(x)
    finally:
        model.train(was_training)
    total = int(counter.get_total_flops())
    return total // 2  # the counter's formulas count 2 per multiply-add

"""Model size and compute: parameter counts and FLOPs per image.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which counts a multiply-add as 2
FLOPs and covers matrix multiplications, convolutions and attention kernels (element-wise ops,
normalisation and activations are not counted).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


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


def count_flops(model: nn.Module, input_size: int | Sequence[int]) -> int:
    """FLOPs of one forward pass on one image of ``input_size`` ((C, H, W) or an int side for
    3 x side x side), in eval mode without gradients; the model's mode is restored afterwards."""
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
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())

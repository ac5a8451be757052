"""Hash heads (backbone features -> L real-valued logits) and the default head of each family.

Registered heads:

* ``linear`` -- ``Linear(in_dim, L)`` (the paper's ViT teacher and ResNet students).
* ``mlp``    -- ``Linear(in_dim, hidden) - ReLU - Linear(hidden, L)``, hidden 1000 by default (the
  paper's EfficientNet-B0 / MobileNetV2 students: 1000 -> 1000 -> L on the ImageNet logits).

A backbone *family* declares its default head with :func:`register_family_head`
(``vit -> linear``, ``imagenet_logits -> mlp``, ``resnet -> linear``; the CPU families in
``small.py`` declare theirs); :func:`default_head` looks it up.
"""
from __future__ import annotations

import numbers

from torch import nn

from ..registry import Registry

HEADS: Registry = Registry("head")
_FAMILY_HEADS: dict[str, str] = {}

DEFAULT_MLP_HIDDEN = 1000


def _check_dims(in_dim: int, code_length: int) -> None:
    if not isinstance(in_dim, int) or isinstance(in_dim, bool) or in_dim <= 0:
        raise ValueError(f"in_dim must be a positive int, got {in_dim!r}")
    if not isinstance(code_length, numbers.Integral) or isinstance(code_length, bool) or code_length <= 0:
        raise ValueError(f"code_length must be a positive int (e.g. 16, 32, 64), got {code_length!r}")


@HEADS.register("linear")
def linear_head(*, in_dim: int, code_length: int, hidden: int | None = None) -> nn.Module:
    """``Linear(in_dim, code_length)``; ``hidden`` must be None (a linear head has no hidden layer)."""
    _check_dims(in_dim, code_length)
    if hidden is not None:
        raise ValueError("the 'linear' head has no hidden layer; drop head_hidden or use head='mlp'")
    return nn.Linear(in_dim, code_length)


@HEADS.register("mlp")
def mlp_head(*, in_dim: int, code_length: int, hidden: int | None = None) -> nn.Module:
    """``Linear(in_dim, hidden) - ReLU - Linear(hidden, code_length)``; hidden defaults to 1000."""
    _check_dims(in_dim, code_length)
    hidden = DEFAULT_MLP_HIDDEN if hidden is None else hidden
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden <= 0:
        raise ValueError(f"head hidden size must be a positive int, got {hidden!r}")
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, code_length))


def create_head(name: str, *, in_dim: int, code_length: int, hidden: int | None = None) -> nn.Module:
    """Build the registered head ``name`` mapping ``in_dim`` features to ``code_length`` logits."""
    return HEADS.build(name, in_dim=in_dim, code_length=code_length, hidden=hidden)


def list_heads() -> list[str]:
    """Registered head names."""
    return HEADS.names()


def register_family_head(family: str, head: str) -> None:
    """Declare ``head`` as the default head of backbone family ``family``."""
    HEADS.entry(head)  # validates the head name
    old = _FAMILY_HEADS.get(family)
    if old is not None and old != head:
        raise ValueError(f"family {family!r} already defaults to head {old!r}, not {head!r}")
    _FAMILY_HEADS[family] = head


def default_head(family: str) -> str:
    """The default head of a backbone family; ``ValueError`` listing the known families."""
    try:
        return _FAMILY_HEADS[family]
    except KeyError:
        raise ValueError(
            f"no default head for backbone family {family!r}; known families: "
            f"{', '.join(sorted(_FAMILY_HEADS))}; pass head= explicitly"
        ) from None


for _family, _head in (("vit", "linear"), ("imagenet_logits", "mlp"), ("resnet", "linear")):
    register_family_head(_family, _head)

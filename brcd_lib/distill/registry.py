"""Name -> distiller class registry (``get_distiller("pkt")``, ``list_distillers()``)."""
from __future__ import annotations

from typing import Callable

from .base import FAMILIES, Distiller

_REGISTRY: dict[str, type[Distiller]] = {}


def register_distiller(name: str) -> Callable[[type[Distiller]], type[Distiller]]:
    def deco(cls: type[Distiller]) -> type[Distiller]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"distiller {name!r} is registered twice")
        if cls.family not in FAMILIES:
            raise ValueError(f"distiller {name!r}: family must be one of {FAMILIES}, got {cls.family!r}")
        if "label" not in vars(cls):
            raise ValueError(f"distiller {name!r} must set its display name (class attribute 'label')")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def list_distillers() -> list[str]:
    return sorted(_REGISTRY)


def distiller_class(name: str) -> type[Distiller]:
    """The registered distiller class ``name`` (its class attributes, e.g. ``needs_rotations``)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown distiller {name!r}; valid names: {', '.join(list_distillers())}"
        ) from None


def get_distiller(name: str, **kwargs) -> Distiller:
    """Build a registered distiller; keyword arguments override its paper defaults."""
    return distiller_class(name)(**kwargs)

"""The distiller catalogue: name -> class, with each method's metadata registered by the method.

``@register_distiller("kd")`` on a :class:`Distiller` subclass is all a
new method needs to appear in every grid, table and test of the kit: the methods of a profile
(:func:`list_methods`), their order in tables (family, then registration order) and their display
labels (:func:`method_label`) are read from here.

Families, in table order: ``none`` (the student without distillation), ``logit`` (KD),
``relation`` (SP, PKT, RKD), ``contrastive`` (CRD, SSKD, CRCD, PACKD), ``ours`` (BRCD).
"""
from __future__ import annotations

from typing import Callable

from ..registry import Registry
from .base import FAMILIES, Distiller

DISTILLERS: Registry = Registry("distiller")


def register_distiller(name: str, *, label: str | None = None,
                       family: str | None = None) -> Callable[[type[Distiller]], type[Distiller]]:
    """Class decorator: register a distiller under ``name``. Its metadata are class attributes of
    the distiller (``label``, ``family`` (one of :data:`FAMILIES`), ``n_views``,
    ``needs_rotations``, and the ``reads_labels`` property); ``label`` / ``family`` given here
    override them."""

    def deco(cls: type[Distiller]) -> type[Distiller]:
        fam = family if family is not None else cls.family
        if fam not in FAMILIES:
            raise ValueError(f"distiller {name!r}: family must be one of {', '.join(FAMILIES)}, "
                             f"got {fam!r}")
        if label is None and "label" not in vars(cls):
            raise ValueError(f"distiller {name!r} must set its display name (class attribute "
                             "'label', or register_distiller(..., label=...))")
        cls.name, cls.label, cls.family = name, label or cls.label, fam
        DISTILLERS.add(name, cls, label=cls.label, family=fam)
        return cls

    return deco


def list_distillers() -> list[str]:
    """Registered distiller names, sorted."""
    return DISTILLERS.names()


def list_methods() -> list[str]:
    """Registered distiller names in table order: by family (:data:`FAMILIES`), then in
    registration order. The default method list of every profile's main grid."""
    entries = DISTILLERS.entries()
    return [e.name for e in sorted(entries, key=lambda e: FAMILIES.index(e.meta["family"]))]


def method_label(name: str) -> str:
    """The display label of a registered distiller (``"none"`` -> ``"Student (no KD)"``); other
    names (teacher, shallow hashers) are returned as given."""
    return DISTILLERS.meta(name)["label"] if name in DISTILLERS else name


def distiller_class(name: str) -> type[Distiller]:
    """The registered distiller class ``name`` (its class attributes, e.g. ``needs_rotations``)."""
    return DISTILLERS.get(name)


def get_distiller(name: str, **kwargs) -> Distiller:
    """Build a registered distiller; keyword arguments override its paper defaults."""
    return distiller_class(name)(**kwargs)

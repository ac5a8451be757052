"""Distillers: BRCD, the eight KD baselines and `none`, behind one registry."""
from .base import DistillBatch, DistillContext, Distiller
from .registry import distiller_class, get_distiller, list_distillers, register_distiller
from . import none  # noqa: F401  (registers "none")
from . import brcd  # noqa: F401  (registers "brcd")
from . import baselines  # noqa: F401  (registers the eight KD baselines)

__all__ = ["DistillBatch", "DistillContext", "Distiller", "get_distiller", "list_distillers",
           "register_distiller"]

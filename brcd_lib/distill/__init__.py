"""Distillers: BRCD, the eight KD baselines and `none`, behind one registry."""
from .base import DistillBatch, DistillContext, Distiller
from .registry import (DISTILLERS, FAMILIES, distiller_class, get_distiller, list_distillers,
                       list_methods, method_label, register_distiller)
from ..registry import import_submodules
from . import none  # noqa: F401  (registers "none")
from . import baselines  # noqa: F401  (registers the eight KD baselines, in the paper's order)
from . import brcd  # noqa: F401  (registers "brcd")
from .brcd import BRCDDistiller, bit_masks, brcd_loss, offset_alpha

# every other module of this package too: a new method is one file with @register_distiller
import_submodules(__name__)

__all__ = ["DISTILLERS", "FAMILIES", "BRCDDistiller", "DistillBatch", "DistillContext", "Distiller",
           "bit_masks", "brcd_loss", "offset_alpha",
           "distiller_class", "get_distiller", "list_distillers", "list_methods", "method_label",
           "register_distiller"]

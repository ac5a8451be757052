"""brcd-kit: a reproducibility kit for BRCD (Bit-mask Robust Contrastive Knowledge Distillation
for Unsupervised Semantic Hashing, WWW 2024).

Public API: the retrieval metric, the BRCD loss and its masks, the registries of datasets,
backbones, hashing objectives, distillers and profiles. Names are imported on first use, so
``import brcd_lib`` itself loads nothing heavy, and the metric (``from brcd_lib import
map_at_k``) loads NumPy only, never torch (tests/test_metrics_inputs.py checks it).

Layers (docs/architecture.md), each importing only the ones before it:
shared leaves (``registry``, ``paths``, ``io``, ``config``, ``provenance``) -> core (``data``,
``models``, ``distill``, ``metrics``, ``analysis``) -> ``training`` -> ``experiments`` ->
``reporting``.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "map_at_k": "brcd_lib.metrics",
    "evaluate_paradigms": "brcd_lib.metrics",
    "brcd_loss": "brcd_lib.distill.brcd",
    "bit_masks": "brcd_lib.distill.brcd",
    "offset_alpha": "brcd_lib.distill.brcd",
    "BRCDDistiller": "brcd_lib.distill.brcd",
    "get_distiller": "brcd_lib.distill",
    "list_distillers": "brcd_lib.distill",
    "list_methods": "brcd_lib.distill",
    "get_dataset": "brcd_lib.data",
    "list_datasets": "brcd_lib.data",
    "build_hashing_network": "brcd_lib.models",
    "create_backbone": "brcd_lib.models",
    "get_objective": "brcd_lib.models",
    "list_backbones": "brcd_lib.models",
    "list_objectives": "brcd_lib.models",
    "get_profile": "brcd_lib.experiments.profiles",
    "list_profiles": "brcd_lib.experiments.profiles",
    "Experiment": "brcd_lib.experiments.experiment",
}

__all__ = [*_EXPORTS, "__version__"]


def _say_loading() -> None:
    """In a Jupyter kernel that has not loaded torch yet, one line before the kit's first heavy
    import (torch, pandas, matplotlib: several seconds on a busy CPU), so a notebook's setup
    cell is not silent while it loads."""
    import sys

    if "ipykernel" in sys.modules and "torch" not in sys.modules:
        print("loading brcd_lib (torch, pandas, matplotlib) ...", flush=True)


_say_loading()


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'brcd_lib' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

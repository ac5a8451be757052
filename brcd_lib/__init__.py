"""brcd-kit: a reproducibility kit for BRCD (Bit-mask Robust Contrastive Knowledge Distillation
for Unsupervised Semantic Hashing, WWW 2024).

Public API: the retrieval metric, the BRCD loss and its masks, the registries of datasets,
backbones, hashing objectives, distillers and profiles, and the experiment runner.
"""
from .metrics import evaluate_paradigms, map_at_k
from .distill import get_distiller, list_distillers
from .distill.brcd import BRCDDistiller, bit_masks, brcd_loss, offset_alpha
from .data import get_dataset, list_datasets
from .models import build_hashing_network, create_backbone, get_objective, list_backbones, list_objectives
from .profiles import get_profile, list_profiles

__version__ = "0.1.0"

__all__ = [
    "map_at_k", "evaluate_paradigms", "brcd_loss", "bit_masks", "offset_alpha", "BRCDDistiller",
    "get_distiller", "list_distillers", "get_dataset", "list_datasets", "build_hashing_network",
    "create_backbone", "get_objective", "list_backbones", "list_objectives", "get_profile",
    "list_profiles", "__version__",
]

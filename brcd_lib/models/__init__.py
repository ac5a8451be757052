"""Models: backbones (paper torchvision models and small CPU networks), hash heads, the hashing
network, binarisation layers, hashing objectives, SimCLR pretraining and complexity counters.

See docs/models.md.
"""
from __future__ import annotations

from .augment import BatchAugment, images_to_float
from .backbones import (TorchvisionBackbone, backbone_info, create_backbone, list_backbones,
                        register_backbone)
from .bihalf import BiHalf
from .cibhash import CIBHash, bernoulli_kl, nt_xent, symmetric_bernoulli_kl
from .complexity import count_flops, count_parameters
from .greedyhash import GreedyHash, greedy_penalty
from .hash_layers import bihalf, bihalf_codes, sign_pm1, sign_ste
from .heads import create_head, default_head, list_heads, register_family_head
from .network import HashingNetwork, build_hashing_network
from .objectives import (HashObjective, ObjectiveOutput, get_objective, list_objectives,
                         register_objective, similarity_preservation)
from .pretrain import STUDENT_SSL, TEACHER_SSL, ssl_pretrain
from .small import SmallCNN, SmallViT
from . import zoo  # noqa: F401  (registers the scaled-down library backbones)

__all__ = [
    "BatchAugment", "BiHalf", "CIBHash", "GreedyHash", "HashObjective", "HashingNetwork",
    "ObjectiveOutput", "STUDENT_SSL", "SmallCNN", "SmallViT", "TEACHER_SSL", "TorchvisionBackbone",
    "backbone_info", "bernoulli_kl", "bihalf", "bihalf_codes", "build_hashing_network",
    "count_flops", "count_parameters", "create_backbone", "create_head", "default_head",
    "get_objective", "greedy_penalty", "images_to_float", "list_backbones", "list_heads",
    "list_objectives", "nt_xent", "register_backbone", "register_family_head",
    "register_objective", "sign_pm1", "sign_ste", "similarity_preservation", "ssl_pretrain",
    "symmetric_bernoulli_kl",
]

"""Dataclass configurations for data, models, training and distillation, and their hashes.

Every result the kit writes is saved next to the config that produced it; ``config_hash`` is the
key of run caches ("a rerun with nothing changed reuses the finished run").
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any


# A field added after runs were cached carries this metadata: while it holds its default it is left
# out of ``config_hash``, so existing run caches stay valid; any other value is part of the hash.
SCHEMA_ADDITION = {"hash_when_default": False}


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, under which protocol. ``protocol`` holds dataset-specific overrides
    (e.g. ``{"subset": 60}`` for the smoke profile, ``{"validation": "upstream"}`` for list files)."""

    name: str = "digits"
    root: str | None = None
    split_seed: int = 0
    image_size: int = 16
    transform: str = "small"  # "small" (CPU profiles) or "paper" (224 px pipeline)
    test_transform_options: dict[str, Any] = field(default_factory=dict,
                                                   metadata=SCHEMA_ADDITION)  # {"center_crop": False}
    protocol: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackboneConfig:
    """A backbone and how it is pretrained. ``ssl_epochs > 0`` runs the SimCLR stand-in for
    ImageNet pretraining on the profile's unlabelled images (CPU profiles only)."""

    name: str = "small_cnn_s"
    pretrained: bool = False
    weights_path: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    ssl_epochs: int = 0
    ssl_batch_size: int = 256
    ssl_lr: float = 1e-3
    ssl_temperature: float = 0.5
    ssl_augment: dict[str, Any] = field(default_factory=dict)  # BatchAugment options; {} = defaults
    ssl_pool: str = "database"  # unlabelled images SimCLR sees: "database" or "train"
    # SimCLR learning-rate schedule per step ("constant" / "cosine") and precision ("fp32" /
    # "bf16" autocast); the committed weights (brcd_lib/weights) were made with cosine + bf16
    ssl_lr_schedule: str = field(default="constant", metadata=SCHEMA_ADDITION)
    ssl_precision: str = field(default="fp32", metadata=SCHEMA_ADDITION)
    # a committed weight file of brcd_lib/weights made by another profile's pretraining (e.g.
    # "fashion_teacher_resnet_teacher"), loaded instead of pretraining on this profile's images:
    # transferred weights, like the paper's ImageNet weights (ssl_* fields are then unused)
    committed_weights: str | None = field(default=None, metadata=SCHEMA_ADDITION)


@dataclass(frozen=True)
class ModelConfig:
    """A hashing network: backbone, head and hashing objective."""

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    objective: str = "cibhash"
    objective_kwargs: dict[str, Any] = field(default_factory=dict)
    head: str | None = None  # None = the backbone family's default head
    head_hidden: int | None = None
    freeze_backbone: bool = True
    # GPU speed options of the frozen backbone: "bf16" autocast, channels-last images
    backbone_precision: str = field(default="fp32", metadata=SCHEMA_ADDITION)
    channels_last: bool = field(default=False, metadata=SCHEMA_ADDITION)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and model selection (method.md section 5)."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    eval_every: int = 10
    patience: int = 5
    feature_views: int = 0  # >0: train the head on a cached bank of this many augmented views
    num_workers: int = 0  # data-loader workers of the online (uncached) pipeline
    pin_memory: bool = field(default=False, metadata=SCHEMA_ADDITION)  # pinned batches (GPU)
    # whose seed draws the augmentations of the view bank and of the online views: "split" (one
    # bank, or one sequence of fresh views, for every run, seeded by the split seed) or "run"
    # (each run seed draws its own)
    bank_seed: str = field(default="split", metadata=SCHEMA_ADDITION)
    # early stop when the count of non-improving validations "reaches" patience (kit) or
    # "exceeds" it (the released code: one validation later)
    stop_when: str = field(default="reaches", metadata=SCHEMA_ADDITION)
    # where the online pipeline (feature_views=0) draws its views: "cpu" (the per-image
    # transform in loader workers), "device" (each image's parameters drawn on the CPU, applied
    # batched on the training device) or "auto" ("device" on CUDA when it can); both draw the same
    # parameters from the same seeds (brcd_lib.training.views)
    augment: str = field(default="auto", metadata=SCHEMA_ADDITION)

    def __post_init__(self) -> None:
        """Check every field (the command line's ``--set`` and the flags land here too): whole
        numbers with their minimum, a positive finite learning rate. NumPy integers are accepted
        and stored as ``int``."""
        for name, minimum, meaning in _TRAIN_INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"TrainConfig.{name} must be an integer >= {minimum} ({meaning}), "
                                 f"got {type(value).__name__} {value!r}")
            if value < minimum:
                raise ValueError(f"TrainConfig.{name} must be an integer >= {minimum} ({meaning}), "
                                 f"got {value!r}")
            if type(value) is not int:
                object.__setattr__(self, name, int(value))
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) \
                or not lr > 0:
            raise ValueError(f"TrainConfig.lr must be a positive finite number (the Adam learning "
                             f"rate, e.g. 1e-3), got {lr!r}")
        if not isinstance(lr, (int, float)):  # e.g. numpy.float32 (numpy.float64 is a float)
            object.__setattr__(self, "lr", float(lr))
        if self.stop_when not in ("reaches", "exceeds"):
            raise ValueError(f"stop_when must be 'reaches' or 'exceeds', got {self.stop_when!r}")
        if self.bank_seed not in ("split", "run"):
            raise ValueError(f"TrainConfig.bank_seed must be 'split' or 'run', got {self.bank_seed!r}")
        if self.augment not in ("auto", "cpu", "device"):
            raise ValueError(f"TrainConfig.augment must be 'auto', 'cpu' or 'device', got "
                             f"{self.augment!r}")


_TRAIN_INT_FIELDS = (
    ("epochs", 1, "a run trains at least one epoch"),
    ("batch_size", 1, "images per step"),
    ("eval_every", 1, "validate every N epochs"),
    ("patience", 1, "validations without improvement before stopping"),
    ("feature_views", 0, "0 = fresh augmentations every step"),
    ("num_workers", 0, "data-loader processes"),
)


@dataclass(frozen=True)
class DistillConfig:
    """A distiller from the registry and its keyword arguments (paper defaults when empty)."""

    method: str = "none"
    kwargs: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) dataclass config."""
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, no whitespace) of configs and plain values."""

    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o):
            return dataclasses.asdict(o)
        if isinstance(o, (set, tuple)):
            return list(o)
        return str(o)

    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=default)


def hash_view(cfg: Any) -> Any:
    """What ``config_hash`` sees of a (nested) config: every field, except schema additions
    (``SCHEMA_ADDITION`` metadata) that hold their default."""
    if not (dataclasses.is_dataclass(cfg) and not isinstance(cfg, type)):
        return cfg
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if not f.metadata.get("hash_when_default", True) and value == _default(f):
            continue
        out[f.name] = hash_view(value)
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def config_hash(*parts: Any, length: int = 16) -> str:
    """SHA-256 (hex, truncated to ``length``) of the canonical JSON of ``parts``."""
    payload = canonical_json([hash_view(p) for p in parts])
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


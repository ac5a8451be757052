"""Seeded, saved and verified split indices.

A *split* is a dict of ``int64`` index arrays -- ``train``, ``val``, ``query``, ``database`` --
into the dataset's source pool(s) (which pool each array indexes is the dataset module's
business and is recorded in the file's metadata). It is drawn once with
``numpy.random.default_rng(seed)``, written atomically as an ``.npz`` file whose SHA-256 is kept in
a ``<file>.sha256`` sidecar, and reloaded on every later run, so caches keyed by training-set
position (teacher codes, k-means assignments) stay aligned with the images.

The ``.npz`` is written with fixed zip timestamps, so the same draw gives byte-identical files
(and the same ``split_hash``) on every machine.

Reloading verifies the file: a missing or mismatched sidecar hash, an unreadable archive,
metadata for another dataset/parameters/seed, or indices outside the pools all raise a
:class:`SplitIntegrityWarning` and the split is redrawn from the seed and saved again -- never used
silently.
"""
from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..io import atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file
from ..paths import cache_dir
from .base import SPLIT_NAMES

__all__ = [
    "LoadedSplit",
    "SplitIntegrityWarning",
    "default_split_dir",
    "draw_per_class",
    "load_or_create_split",
    "partition_per_class",
    "random_partition",
    "split_file_name",
]

SPLIT_FORMAT_VERSION = 1
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry; fixed for determinism
_MAX_NAME = 180

DrawFn = Callable[[np.random.Generator], Mapping[str, np.ndarray]]


class SplitIntegrityWarning(UserWarning):
    """A saved split file failed verification and was redrawn."""


@dataclass(frozen=True)
class LoadedSplit:
    """Index arrays of a split and where they came from.

    ``reused`` is True when the saved file was loaded, False when it was (re)drawn.
    """

    indices: dict[str, np.ndarray]
    split_hash: str
    path: Path
    reused: bool


def default_split_dir() -> Path:
    """``$BRCD_CACHE/splits`` when ``BRCD_CACHE`` is set, else ``<repo>/.cache/splits``."""
    return cache_dir("splits")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def split_file_name(dataset: str, params: Mapping[str, Any], seed: int) -> str:
    """File name of a split: dataset name, the split-defining parameters (sorted) and the seed.

    Characters outside ``[A-Za-z0-9._=+-]`` become ``-``; a name longer than the file-system-safe
    limit is shortened and made unique with a hash of the full key.
    """
    parts = [dataset] + [f"{k}={_fmt(params[k])}" for k in sorted(params)] + [f"seed={seed}"]
    key = "__".join(parts)
    name = re.sub(r"[^A-Za-z0-9._=+-]", "-", key)
    if len(name) > _MAX_NAME:
        name = f"{name[:_MAX_NAME - 17]}__{sha256_bytes(key.encode())[:15]}"
    return name + ".npz"


def _meta(dataset: str, params: Mapping[str, Any], seed: int,
          pool_sizes: Mapping[str, int] | None, pools: Mapping[str, str] | None) -> dict[str, Any]:
    return {
        "format": SPLIT_FORMAT_VERSION,
        "dataset": dataset,
        "params": {k: params[k] for k in sorted(params)},
        "seed": int(seed),
        "pool_sizes": dict(pool_sizes or {}),
        "pools": dict(pools or {}),
    }


def _npz_bytes(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> bytes:
    """An ``.npz`` archive (readable by ``np.load``) with fixed timestamps and entry order."""
    buf = io.BytesIO()
    entries = dict(arrays)
    entries["meta"] = np.array(json.dumps(meta, sort_keys=True, default=str))
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(entries):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(entries[key]), allow_pickle=False)
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def _read_sidecar(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return text.split()[0].lower() if text else None


def _verify(path: Path, sidecar: Path, meta_expected: Mapping[str, Any]) -> tuple[dict | None, str]:
    """Load and check a saved split; returns (indices or None, reason for rejection)."""
    recorded = _read_sidecar(sidecar)
    if recorded is None:
        return None, f"its hash file {sidecar.name} is missing or empty"
    actual = sha256_file(path)
    if actual != recorded:
        return None, f"its SHA-256 {actual} differs from the recorded {recorded}"
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable archive is rejected the same way
        return None, f"it cannot be read ({type(exc).__name__}: {exc})"
    try:
        meta = json.loads(str(data.pop("meta")))
    except Exception:  # noqa: BLE001
        return None, "its metadata is missing or unreadable"
    expected = json.loads(json.dumps(meta_expected, sort_keys=True, default=str))
    if meta != expected:
        return None, f"its metadata {meta} does not match the requested split {expected}"
    missing = [s for s in SPLIT_NAMES if s not in data]
    if missing:
        return None, f"it lacks the index arrays {missing}"
    pool_of = meta.get("pools", {})
    sizes = meta.get("pool_sizes", {})
    for split in SPLIT_NAMES:
        arr = data[split]
        if arr.dtype != np.int64 or arr.ndim != 1:
            return None, f"its {split!r} array is not a 1-D int64 array"
        size = sizes.get(pool_of.get(split, ""), None)
        if size is not None and arr.size and (arr.min() < 0 or arr.max() >= size):
            return None, f"its {split!r} indices fall outside the pool of {size} images"
    return data, ""


def load_or_create_split(*, dataset: str, params: Mapping[str, Any], seed: int,
                         split_dir: str | os.PathLike | None, draw: DrawFn,
                         pool_sizes: Mapping[str, int] | None = None,
                         pools: Mapping[str, str] | None = None) -> LoadedSplit:
    """Reload the saved split for (dataset, params, seed), or draw and save it.

    Args:
        dataset: dataset name (part of the file name and metadata).
        params: the parameters that define the split (part of the file name and metadata); leave
            out those that do not change the indices (image size, top-K).
        seed: seed of ``numpy.random.default_rng`` passed to ``draw``.
        split_dir: folder of split files; ``None`` = :func:`default_split_dir`.
        draw: ``draw(rng) -> {"train": idx, "val": idx, "query": idx, "database": idx}``.
        pool_sizes: ``{pool name: size}``, recorded and used to bound-check reloaded indices.
        pools: ``{split name: pool name}``, which pool each index array refers to.
    """
    folder = Path(split_dir) if split_dir is not None else default_split_dir()
    path = folder / split_file_name(dataset, params, seed)
    sidecar = path.with_name(path.name + ".sha256")
    meta = _meta(dataset, params, seed, pool_sizes, pools)

    if path.exists():
        data, reason = _verify(path, sidecar, meta)
        if data is not None:
            return LoadedSplit(indices={s: data[s] for s in SPLIT_NAMES},
                               split_hash=_read_sidecar(sidecar) or "", path=path, reused=True)
        warnings.warn(
            f"saved split {path} is rejected because {reason}; redrawing it from seed {seed} "
            "and saving it again (caches built on the old split, such as k-means assignments, "
            "must be rebuilt)",
            SplitIntegrityWarning, stacklevel=3,
        )

    drawn = draw(np.random.default_rng(seed))
    missing = [s for s in SPLIT_NAMES if s not in drawn]
    if missing:
        raise ValueError(f"the split draw of {dataset!r} returned no {missing} indices")
    indices = {s: np.ascontiguousarray(drawn[s], dtype=np.int64).reshape(-1) for s in SPLIT_NAMES}
    payload = _npz_bytes(indices, meta)
    atomic_write_bytes(path, payload)
    digest = sha256_bytes(payload)
    atomic_write_text(sidecar, f"{digest}  {path.name}\n")
    return LoadedSplit(indices=indices, split_hash=digest, path=path, reused=False)


# -- drawing helpers used by the dataset modules ------------------------------------------------
def _class_ids(labels_1d: np.ndarray) -> np.ndarray:
    ids = np.asarray(labels_1d)
    if ids.ndim != 1:
        raise ValueError(f"class ids must be a 1-D array, got shape {ids.shape}")
    return ids


def partition_per_class(rng: np.random.Generator, labels_1d: np.ndarray,
                        sizes: Mapping[str, int], *, rest: str | None = None,
                        candidates: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per class (in increasing class id), shuffle the members and cut consecutive blocks.

    ``sizes`` maps part name -> count per class, cut in the order given; ``rest`` (if not None) is
    the name of the part receiving each class's remaining members. ``candidates`` restricts the
    draw to those positions (default: all). Returns sorted ``int64`` index arrays. A class with
    too few members raises ``ValueError`` naming the class and the counts.
    """
    ids = _class_ids(labels_1d)
    pos = np.arange(ids.size, dtype=np.int64) if candidates is None else np.asarray(candidates, dtype=np.int64)
    need = sum(int(v) for v in sizes.values())
    if any(int(v) < 0 for v in sizes.values()):
        raise ValueError(f"per-class counts must be non-negative, got {dict(sizes)}")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in sizes}
    if rest is not None:
        parts[rest] = []
    for c in np.unique(ids[pos]):
        members = pos[ids[pos] == c]
        if members.size < need:
            raise ValueError(
                f"class {c} has {members.size} images but the protocol needs {need} per class "
                f"({dict(sizes)}); lower the per-class counts"
            )
        members = members[rng.permutation(members.size)]
        start = 0
        for k, v in sizes.items():
            parts[k].append(members[start:start + int(v)])
            start += int(v)
        if rest is not None:
            parts[rest].append(members[start:])
    return {k: np.sort(np.concatenate(v)) if v else np.zeros(0, dtype=np.int64)
            for k, v in parts.items()}


def draw_per_class(rng: np.random.Generator, labels_1d: np.ndarray, n_per_class: int, *,
                   candidates: np.ndarray | None = None) -> np.ndarray:
    """``n_per_class`` random members of every class (among ``candidates``), sorted ``int64``."""
    return partition_per_class(rng, labels_1d, {"draw": n_per_class},
                               candidates=candidates)["draw"]


def random_partition(rng: np.random.Generator, n: int, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Shuffle ``range(n)`` and cut consecutive blocks of the given sizes (sorted ``int64``)."""
    total = sum(int(v) for v in sizes.values())
    if any(int(v) < 0 for v in sizes.values()) or total > n:
        raise ValueError(f"cannot cut blocks {dict(sizes)} (total {total}) out of {n} images; "
                         "lower the sizes")
    perm = rng.permutation(n).astype(np.int64)
    out, start = {}, 0
    for k, v in sizes.items():
        out[k] = np.sort(perm[start:start + int(v)])
        start += int(v)
    return out

"""Crash-safe file writing and file hashing.

Every file the kit writes (split indices, k-means caches, checkpoints, result tables) goes through
these helpers: the content is written to a temporary file in the *same* folder, flushed to disk and
then renamed over the target with :func:`os.replace`, which is atomic on POSIX and Windows. A reader
therefore sees either the old file or the complete new one, never a half-written file, even when
the writer is killed.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = [
    "atomic_open",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_save",
    "atomic_write_json",
    "json_safe",
    "read_json",
    "sha256_bytes",
    "sha256_file",
]

PathLike = str | os.PathLike
_FILE_MODE = 0o644


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on a clean exit rename it to ``path``.

    ``mode`` must be a write mode (``"wb"`` or ``"w"``). Missing parent folders are created. If the
    ``with`` block raises, the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports mode 'wb' or 'w', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        if mode == "w":
            handle = os.fdopen(fd, mode, encoding=encoding or "utf-8", newline="")
        else:
            handle = os.fdopen(fd, mode)
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _FILE_MODE)  # mkstemp creates 0600 files; caches are shared
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes expects bytes, got {type(data).__name__}; "
                        "use atomic_write_text for str")
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (newlines are written as given); returns the path."""
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text expects str, got {type(text).__name__}; "
                        "use atomic_write_bytes for bytes")
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def atomic_write(path: PathLike, data: bytes | str) -> Path:
    """Write ``bytes`` or ``str`` (UTF-8) to ``path`` atomically; returns the path."""
    if isinstance(data, str):
        return atomic_write_text(path, data)
    return atomic_write_bytes(path, data)


def atomic_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj, path)`` through a temporary file and an atomic rename; returns the path.

    Save plain containers of tensors (state dicts, configs) so the file can be read back with
    ``torch.load(path, weights_only=True)``.
    """
    import torch  # local import: the io helpers must stay usable without torch loaded

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: PathLike, *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of the file at ``path`` (read in chunks of ``chunk_size`` bytes)."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars, tensors, tuples and dataclasses turned into JSON values."""
    import dataclasses

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # torch tensors, numpy arrays
        return obj.tolist()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj))
    return obj


def atomic_write_json(path: PathLike, obj: Any, *, indent: int | None = 1) -> Path:
    """Write ``json_safe(obj)`` to ``path`` atomically; returns the path."""
    import json

    return atomic_write_text(path, json.dumps(json_safe(obj), indent=indent) + "\n")


def read_json(path: PathLike) -> Any:
    """The JSON value in ``path``; an unreadable or damaged file raises ``ValueError`` naming it."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); delete or restore it") from exc

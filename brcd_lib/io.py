"""Crash-safe file writing, file hashing, file locks and clear storage errors.

Every file the kit writes (split indices, k-means caches, checkpoints, result tables, figures) goes
through these helpers: the content is written to a temporary file in the *same* folder
(``.<name>.<random>.tmp``), flushed to disk, given mode 0644 and then renamed over the target with
:func:`os.replace`, which is atomic on POSIX and Windows. A reader therefore sees either the old
file or the complete new one, never a half-written file, even when the writer is killed.

The temporary file is locked (``fcntl.flock``) while it is written, so that
:func:`remove_stale_temp_files` can tell the leftovers of a killed writer (unlocked, older than
this process) from a file another process is writing right now.

A write that fails because the disk is full, the folder is read-only or a file stands where a
folder should be raises :class:`StorageError`, whose message names the path and the fix.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

try:  # POSIX; elsewhere the locks are no-ops (the kit's CI runs on Linux)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "StorageError",
    "atomic_open",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_save",
    "atomic_write_json",
    "ensure_writable_dir",
    "file_lock",
    "json_safe",
    "read_json",
    "remove_stale_temp_files",
    "sha256_bytes",
    "sha256_file",
    "update_json",
    "FILE_MODE",
    "PROCESS_START",
]

PathLike = str | os.PathLike
FILE_MODE = 0o644
_FILE_MODE = FILE_MODE  # the old private name
PROCESS_START = time.time()
"""When this process imported the kit (a temporary file older than this and unlocked was left by
a process that died)."""

# errno values that mean "this location cannot take the file" (not a bug of the caller)
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}
_NOT_A_FOLDER = {errno.ENOTDIR, errno.EEXIST}


class StorageError(OSError):
    """A file or folder could not be written: disk full, read-only or foreign folder, or a file
    where a folder is expected. ``str(err)`` names the path, the reason and the fix."""

    def __init__(self, message: str, *, errno_: int | None = None, path: PathLike | None = None):
        super().__init__(errno_ or 0, message)
        self.message = message
        self.filename = None if path is None else os.fspath(path)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # picklable across worker processes
        return (_rebuild_storage_error, (self.message, self.errno, self.filename))


def _rebuild_storage_error(message, errno_, path):
    return StorageError(message, errno_=errno_, path=path)


_FIX = ("choose another location (caches: BRCD_CACHE or --cache-dir; results: --results-root or "
        "BRCD_RESULTS)")


def storage_error(exc: OSError, path: PathLike, *, action: str = "write") -> OSError:
    """``exc`` as a :class:`StorageError` naming ``path`` when it is a storage problem (no space,
    read-only, a file in the way); other errors are returned unchanged."""
    if isinstance(exc, StorageError):
        return exc
    code = exc.errno
    reason = exc.strerror or str(exc)
    if code in _NO_SPACE:
        msg = (f"cannot {action} {path}: no space left on the device ({reason}); free space there "
               f"or {_FIX}")
    elif code in _READ_ONLY:
        msg = (f"cannot {action} {path}: permission denied or read-only file system ({reason}); "
               f"make the folder writable or {_FIX}")
    elif code == errno.EFBIG:
        msg = (f"cannot {action} {path}: the file is larger than this process may write "
               f"({reason}; {_file_size_limit()}); raise the limit (`ulimit -f unlimited` in the "
               f"shell that starts the run) or {_FIX}")
    elif code in _NOT_A_FOLDER:
        blocker = _first_file_on_path(Path(path))
        where = f"{blocker} is a file, not a folder" if blocker else reason
        msg = f"cannot {action} {path}: {where}; move that file away or {_FIX}"
    else:
        return exc
    return StorageError(msg, errno_=code, path=path)


def _file_size_limit() -> str:
    """The process's file-size limit (``ulimit -f``) in words, or the file system's maximum."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    except (ImportError, OSError, ValueError):
        return "a file-size limit of the process or the file system's maximum file size"
    if soft == resource.RLIM_INFINITY:
        return "the file system's maximum file size; the process has no size limit"
    return f"the process's file-size limit, `ulimit -f`, is {soft} bytes"


def _first_file_on_path(path: Path) -> Path | None:
    """The first existing non-folder among ``path``'s ancestors (and ``path`` itself)."""
    for p in reversed([path, *path.parents]):
        if p.exists() and not p.is_dir():
            return p
    return None


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, folder, action="create folder") from exc


def ensure_writable_dir(path: PathLike, *, what: str = "folder") -> Path:
    """Create ``path`` if needed and check that a file can be written in it; returns it as an
    absolute path. A file in the way, a read-only or full location raises :class:`StorageError`
    naming ``what`` and the path (before any work is done)."""
    folder = Path(path).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise StorageError(f"{what} {folder} is a file, not a folder; move it away or choose "
                           f"another folder", errno_=errno.ENOTDIR, path=folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".brcd-write-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        err = storage_error(exc, folder, action=f"write to the {what}")
        raise err from exc
    return folder


def _lock_nb(fd: int) -> bool:
    """Try to take an exclusive lock on ``fd`` without waiting."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


class _RecordingWriter:
    """A file proxy that remembers the first ``OSError`` of ``write`` (``torch.save`` turns it
    into a ``RuntimeError``; the recorded error says what really happened)."""

    def __init__(self, handle: IO[bytes]):
        self._handle, self.error = handle, None

    def write(self, data) -> int:
        try:
            return self._handle.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self._handle.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on a clean exit rename it to ``path``.

    ``mode`` must be a write mode (``"wb"`` or ``"w"``). Missing parent folders are created. If the
    ``with`` block raises, the temporary file is removed and ``path`` is left untouched. A storage
    failure (disk full, read-only folder, a file in the way) raises :class:`StorageError`.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open supports mode 'wb' or 'w', got {mode!r}")
    target = Path(path)
    _mkdir(target.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise storage_error(exc, target) from exc
    _lock_nb(fd)  # held until the file is renamed (see remove_stale_temp_files)
    recorder = None
    try:
        if mode == "w":
            handle = os.fdopen(fd, mode, encoding=encoding or "utf-8", newline="")
        else:
            handle = os.fdopen(fd, mode)
        with handle:
            recorder = _RecordingWriter(handle)
            yield recorder if mode == "wb" else handle
            handle.flush()
            os.fsync(handle.fileno())
            os.chmod(tmp_name, FILE_MODE)  # mkstemp creates 0600 files; caches are shared
            os.replace(tmp_name, target)   # still locked: a sweeper never sees it unlocked
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        cause = exc if isinstance(exc, OSError) else getattr(recorder, "error", None)
        if isinstance(cause, OSError):
            err = storage_error(cause, target)
            if isinstance(err, StorageError) and err is not exc:
                raise err from exc
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


# ------------------------------------------------------------------------------------------------
# locks and locked read-modify-write
# ------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def file_lock(path: PathLike, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``<folder>/.<name>.lock`` (created if needed) for the
    ``with`` block; yields True, or False when ``blocking=False`` and another process holds it.
    The lock is released when the block ends or the process dies."""
    target = Path(path)
    _mkdir(target.parent)
    lock_path = target.parent / f".{target.name}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError as exc:
        raise storage_error(exc, lock_path) from exc
    try:
        if fcntl is None:
            yield True
        elif blocking:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        else:
            yield _lock_nb(fd)
    finally:
        os.close(fd)


def update_json(path: PathLike, update: Callable[[Any], Any], *,
                default: Callable[[], Any] = dict,
                on_damaged: Callable[[ValueError], Any] | None = None) -> Any:
    """Read-modify-write the JSON file ``path`` under :func:`file_lock`: ``update(value)``
    returns the new value (or changes ``value`` in place and returns None), which is written
    atomically; returns it. A missing file reads as ``default()``; a damaged one raises the
    :func:`read_json` error unless ``on_damaged(err)`` returns the value to start from."""
    with file_lock(path):
        if os.path.exists(path):
            try:
                value = read_json(path)
            except ValueError as err:
                if on_damaged is None:
                    raise
                value = on_damaged(err)
        else:
            value = default()
        new = update(value)
        value = value if new is None else new
        atomic_write_json(path, value)
        return value


# ------------------------------------------------------------------------------------------------
# leftovers of killed writers
# ------------------------------------------------------------------------------------------------
TEMP_PATTERNS = (
    re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$"),        # atomic_open: .<name>.<random>.tmp
    re.compile(r"^.+\.[A-Za-z0-9_]{8}\.tmp(\.png)?$"),  # older writers: <name>.<random>.tmp[.png]
    re.compile(r"^\.tmp_[A-Za-z0-9_]{8}\.pt$"),          # older SimCLR cache writer
    re.compile(r"^.+\.tmp\.ipynb$"),                     # the notebook runner's executing copy
    re.compile(r"^\.brcd-write-probe\.[A-Za-z0-9_]{8}\.tmp$"),
)


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of the kit's temporary file names (:data:`TEMP_PATTERNS`)."""
    return any(p.match(name) for p in TEMP_PATTERNS)


def remove_stale_temp_files(folders: Iterable[PathLike], *, older_than: float | None = None,
                            recursive: bool = True,
                            names: Callable[[str], bool] = is_temp_name) -> list[Path]:
    """Delete the kit's temporary files (file names accepted by ``names``, default
    :data:`TEMP_PATTERNS`) under ``folders`` that a killed writer left behind: modified before
    ``older_than`` (default: this process's start) and not locked by a live writer. Returns the
    removed paths; files it cannot remove are skipped."""
    cutoff = PROCESS_START if older_than is None else older_than
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        walker = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
        for root, _dirs, files in walker:
            for name in files:
                if not names(name):
                    continue
                path = Path(root) / name
                try:
                    if path.stat().st_mtime >= cutoff:
                        continue
                    fd = os.open(path, os.O_RDONLY)
                except OSError:
                    continue
                try:
                    if _lock_nb(fd):  # nobody is writing it
                        path.unlink()
                        removed.append(path)
                except OSError:
                    pass
                finally:
                    os.close(fd)
    return removed

"""One process trains a run at a time, across processes and cluster nodes: a lock file per run.

The run store (:mod:`brcd_lib.experiments.runstore`) may live on a file system that the nodes of
a cluster share (NFS, Lustre, GPFS, CephFS). ``flock`` is not dependable there, so a run's lock
is a plain file created with ``O_CREAT | O_EXCL`` (atomic on NFSv3 and later and on the parallel
file systems): ``<run folder>/train.lock``, holding the holder's host, pid, start time and a
random token. While it trains, the holder refreshes the file's modification time every
``heartbeat_s`` seconds from a daemon thread.

A process that finds the lock held waits (polling every ``poll_s`` seconds) and takes the lock
over when it is stale:

* its holder ran on this host and that pid is gone (a killed worker): at once;
* the file has not changed (content, modification time) for ``stale_after_s`` seconds, timed by
  the waiting process's own clock: its holder stopped refreshing it (a node that died, or lost
  the file system). Clocks of different machines are never compared.

Two waiters never both take a lock over: the takeover itself is guarded by a second ``O_EXCL``
file (``train.lock.takeover``, held for a moment; stale by the same rules), and its holder removes
the stale lock only if it is still the file it judged stale. Then every waiter races for the lock
again with ``O_EXCL``; one wins. A holder whose lock was taken over (it was frozen longer than
``stale_after_s``) logs an error and stops refreshing it; it removes the lock only while the lock
is its own.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from ..io import storage_error

__all__ = ["RunLock", "LockTimeout", "HEARTBEAT_S", "STALE_AFTER_S", "POLL_S", "pid_alive"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0
POLL_S = 0.5
LOCK_NAME = "train.lock"


class LockTimeout(TimeoutError):
    """The lock was still held, by a live holder, when the waiting time ran out."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie, which only waits to be reaped,
    counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: the signal test is all we have
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signature(path: str) -> tuple | None:
    """(modification time, content) of ``path``; None when it does not exist."""
    try:
        with open(path, "rb") as fh:
            content = fh.read()
        return os.stat(path).st_mtime_ns, content
    except FileNotFoundError:
        return None


def _holder(signature: tuple | None) -> dict:
    if signature is None:
        return {}
    try:
        value = json.loads(signature[1].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}  # being written, or damaged: judged by its changes alone
    return value if isinstance(value, dict) else {}


def describe_holder(holder: dict) -> str:
    if not holder:
        return "an unknown holder"
    return f"host {holder.get('host')} pid {holder.get('pid')} (since {holder.get('started')})"


class RunLock:
    """The lock of one run folder (a context manager: ``with RunLock(folder): ...``)."""

    def __init__(self, folder: str | os.PathLike, *, name: str = LOCK_NAME,
                 heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S,
                 poll_s: float = POLL_S):
        if not 0 < heartbeat_s < stale_after_s:
            raise ValueError(f"heartbeat_s ({heartbeat_s}) must be positive and below "
                             f"stale_after_s ({stale_after_s}): a live holder must refresh its "
                             "lock before waiters judge it stale")
        self.folder = str(folder)
        self.path = os.path.join(self.folder, name)
        self.heartbeat_s, self.stale_after_s, self.poll_s = heartbeat_s, stale_after_s, poll_s
        self.host = socket.gethostname()
        self.token: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, tuple[tuple, float]] = {}  # path -> (signature, first seen)

    # ------------------------------------------------------------------ acquiring
    def _create(self, path: str, token: str) -> bool:
        content = json.dumps({"host": self.host, "pid": os.getpid(), "token": token,
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as err:
            raise storage_error(err, path, action="create") from None
        try:
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _stale(self, path: str, signature: tuple) -> str | None:
        """Why the lock file ``path`` (seen as ``signature``) is stale, or None while it is live."""
        holder = _holder(signature)
        if holder.get("host") == self.host and isinstance(holder.get("pid"), int) \
                and holder["pid"] != os.getpid() and not pid_alive(holder["pid"]):
            return f"its holder, pid {holder['pid']} on this host, is gone"
        now = time.monotonic()
        seen = self._seen.get(path)
        if seen is None or seen[0] != signature:
            self._seen[path] = (signature, now)
            return None
        if now - seen[1] >= self.stale_after_s:
            return (f"it has not been refreshed for {now - seen[1]:.0f} s (its holder stopped: a "
                    "lost node or a frozen process)")
        return None

    def _take_over(self, signature: tuple, reason: str) -> None:
        guard = self.path + ".takeover"
        token = uuid.uuid4().hex
        if not self._create(guard, token):
            seen = _signature(guard)
            if seen is not None and self._stale(guard, seen):
                _remove_if(guard, seen)
            return
        try:
            if _remove_if(self.path, signature):
                log.warning("taking over the lock %s of %s: %s", self.path,
                            describe_holder(_holder(signature)), reason)
        finally:
            _remove_if_token(guard, token)

    def try_acquire(self) -> bool:
        """Take the lock if it is free or stale; True when this process holds it now."""
        token = uuid.uuid4().hex
        if self._create(self.path, token):
            self._start(token)
            return True
        signature = _signature(self.path)
        if signature is None:  # released between the two calls: try again
            return self.try_acquire()
        reason = self._stale(self.path, signature)
        if reason is not None:
            self._take_over(signature, reason)
            if self._create(self.path, token):
                self._start(token)
                return True
        return False

    def acquire(self, *, timeout: float | None = None, what: str | None = None) -> "RunLock":
        """Wait for the lock (``timeout`` seconds at most: :class:`LockTimeout`); ``what`` names
        the run in the message logged once when it has to wait."""
        start, told = time.monotonic(), False
        while not self.try_acquire():
            if not told:
                holder = _holder(_signature(self.path))
                log.warning("%s is being trained by %s (lock %s); waiting for it",
                            what or self.folder, describe_holder(holder), self.path)
                told = True
            if timeout is not None and time.monotonic() - start >= timeout:
                raise LockTimeout(f"{what or self.folder} is still locked by "
                                  f"{describe_holder(_holder(_signature(self.path)))} after "
                                  f"{timeout:.0f} s (lock {self.path}); delete the file if you "
                                  "know its holder is gone")
            time.sleep(self.poll_s)
        return self

    # ------------------------------------------------------------------ holding
    def _start(self, token: str) -> None:
        self.token = token
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="brcd-run-lock-heartbeat",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if _holder(_signature(self.path)).get("token") != self.token:
                log.error("the lock %s was taken over by %s while this process (pid %d) held it; "
                          "two processes may now train the same run", self.path,
                          describe_holder(_holder(_signature(self.path))), os.getpid())
                return
            try:
                os.utime(self.path)
            except OSError:
                pass  # the next beat tries again; waiters judge by what they see

    @property
    def held(self) -> bool:
        return self.token is not None

    def release(self) -> None:
        """Stop refreshing the lock and remove it if it is still this process's."""
        if self.token is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _remove_if_token(self.path, self.token)
        self.token, self._thread = None, None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _remove_if(path: str, signature: tuple) -> bool:
    """Remove ``path`` if it is still the file seen as ``signature``."""
    if _signature(path) != signature:
        return False
    try:
        os.remove(path)
    except FileNotFoundError:
        return False
    return True


def _remove_if_token(path: str, token: str) -> None:
    if _holder(_signature(path)).get("token") == token:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass

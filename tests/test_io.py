"""Tests of brcd_lib.io: atomic writes and SHA-256 of files."""
from __future__ import annotations

import hashlib
import os
import stat

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brcd_lib.io import (
    atomic_open,
    atomic_save,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    sha256_bytes,
    sha256_file,
)


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_atomic_write_bytes_roundtrip_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"
    out = atomic_write_bytes(target, b"\x00\x01payload")
    assert out == target
    assert target.read_bytes() == b"\x00\x01payload"
    assert _leftovers(target.parent) == []
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


def test_atomic_write_text_keeps_newlines(tmp_path):
    target = tmp_path / "t.txt"
    atomic_write_text(target, "line1\r\nline2\nü")
    assert target.read_bytes() == "line1\r\nline2\nü".encode("utf-8")


def test_atomic_write_dispatches_on_type(tmp_path):
    atomic_write(tmp_path / "s.txt", "text")
    atomic_write(tmp_path / "b.bin", b"bytes")
    assert (tmp_path / "s.txt").read_text() == "text"
    assert (tmp_path / "b.bin").read_bytes() == b"bytes"


def test_wrong_types_raise(tmp_path):
    with pytest.raises(TypeError, match="atomic_write_text"):
        atomic_write_bytes(tmp_path / "x", "not bytes")
    with pytest.raises(TypeError, match="atomic_write_bytes"):
        atomic_write_text(tmp_path / "x", b"not text")
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "a"):
            pass


def test_failed_write_leaves_old_file_untouched(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(target, "w") as f:
            f.write("half of the new content")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_content(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"first version, longer")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"


def test_atomic_save_loads_with_weights_only(tmp_path):
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "epoch": 3}
    path = atomic_save(state, tmp_path / "ckpt" / "model.pt")
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 3
    assert torch.equal(loaded["w"], state["w"])
    assert _leftovers(path.parent) == []


def test_sha256_file_matches_hashlib_with_small_chunks(tmp_path):
    data = bytes(range(256)) * 5 + b"tail"
    path = tmp_path / "d.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(path) == expected
    assert sha256_file(path, chunk_size=7) == expected
    assert sha256_bytes(data) == expected
    with pytest.raises(ValueError, match="chunk_size"):
        sha256_file(path, chunk_size=0)


def test_sha256_changes_with_one_byte(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"same-prefix-0")
    b.write_bytes(b"same-prefix-1")
    assert sha256_file(a) != sha256_file(b)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_roundtrip_property(tmp_path, data):
    path = tmp_path / "prop.bin"
    atomic_write_bytes(path, data)
    assert path.read_bytes() == data
    assert sha256_file(path, chunk_size=97) == hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------
# storage errors, locked updates, stale temporary files
# ------------------------------------------------------------------------------------------------
import errno  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from brcd_lib import io as kio  # noqa: E402
from brcd_lib.io import (StorageError, ensure_writable_dir, file_lock,  # noqa: E402
                         remove_stale_temp_files, update_json)

ROOT = Path(__file__).resolve().parents[1]


def test_a_file_in_the_way_is_a_storage_error_naming_it(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match=f"cannot create folder {blocker}/digits: {blocker} is "
                                           "a file, not a folder; move that file away"):
        atomic_write_text(blocker / "digits" / "x.txt", "y")
    with pytest.raises(StorageError, match=f"results root {blocker} is a file, not a folder"):
        ensure_writable_dir(blocker, what="results root")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_write_failures_become_storage_errors(tmp_path, monkeypatch, code):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    target = tmp_path / "cache" / "f.pt"
    real_replace = os.replace
    monkeypatch.setattr(kio.os, "replace", fail)
    with pytest.raises(StorageError) as err:
        atomic_save({"x": torch.zeros(3)}, target)
    monkeypatch.setattr(kio.os, "replace", real_replace)
    assert str(target) in str(err.value) and err.value.errno == code
    assert ("no space left" if code == errno.ENOSPC else "read-only") in str(err.value)
    assert not target.exists() and _leftovers(target.parent) == []


def test_torch_save_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    """torch.save turns the writer's OSError into a RuntimeError; atomic_save reports the OSError."""
    class Full:
        def __init__(self, handle):
            self.handle, self.n = handle, 0

        def write(self, data):
            self.n += len(data)
            if self.n > 500:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

    real = kio._RecordingWriter.__init__

    def wrapped(self, handle):
        real(self, Full(handle))

    monkeypatch.setattr(kio._RecordingWriter, "__init__", wrapped)
    with pytest.raises(StorageError, match="no space left on the device"):
        atomic_save({"x": torch.zeros(10_000)}, tmp_path / "big.pt")
    assert list(tmp_path.iterdir()) == []


def test_update_json_is_entry_by_entry_under_a_lock(tmp_path):
    """Two processes add 40 entries each to one file; every entry survives."""
    path = tmp_path / "log.json"
    code = ("import sys\nfrom brcd_lib.io import update_json\n"
            "for i in range(40):\n"
            "    update_json(sys.argv[1], lambda d, i=i: d.setdefault(sys.argv[2], []).append(i))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), name], env=env)
             for name in ("a", "b")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert json.loads(path.read_text()) in ({"a": list(range(40)), "b": list(range(40))},)


def test_update_json_on_a_damaged_file(tmp_path):
    path = tmp_path / "log.json"
    path.write_text('{"a": 1')
    with pytest.raises(ValueError, match=f"{path} is not valid JSON"):
        update_json(path, lambda d: d.update(b=2))
    assert update_json(path, lambda d: d.update(b=2), on_damaged=lambda err: {}) == {"b": 2}


def test_file_lock_non_blocking(tmp_path):
    target = tmp_path / "x.json"
    with file_lock(target) as first:
        assert first
        held = subprocess.run([sys.executable, "-c",
                               "import sys\nfrom brcd_lib.io import file_lock\n"
                               "with file_lock(sys.argv[1], blocking=False) as ok: print(ok)",
                               str(target)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=120)
    assert held.stdout.strip() == "False"


def test_stale_temporary_files_are_removed_live_ones_kept(tmp_path):
    old = time.time() - 3600
    stale = [tmp_path / ".model.pt.abcd1234.tmp", tmp_path / "sub" / "02_teachers.ipynb.tmp.ipynb",
             tmp_path / "sub" / "kmeans_x.npz.a1b2c3d4.tmp", tmp_path / "fig.png.zz99yy88.tmp.png"]
    for p in stale:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"half")
        os.utime(p, (old, old))
    young = tmp_path / ".young.pt.abcd1234.tmp"   # written after this process started
    young.write_bytes(b"x")
    foreign = tmp_path / "notes.tmp"                 # not one of the kit's names
    foreign.write_bytes(b"x")
    os.utime(foreign, (old, old))
    locked = tmp_path / ".locked.pt.zzzz9999.tmp"    # a live writer holds it
    locked.write_bytes(b"x")
    os.utime(locked, (old, old))
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, os, sys, time\nfd = os.open(sys.argv[1], os.O_RDWR)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\n"
                               "time.sleep(60)", str(locked)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        removed = remove_stale_temp_files([tmp_path])
    finally:
        holder.kill()
        holder.wait()
    assert sorted(removed) == sorted(stale)
    assert young.exists() and foreign.exists() and locked.exists()


def test_atomic_open_locks_its_temporary_file(tmp_path):
    target = tmp_path / "f.bin"
    with atomic_open(target, "wb") as f:
        f.write(b"data")
        (tmp,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        os.utime(tmp, (0, 0))  # looks old: only the lock protects it
        assert remove_stale_temp_files([tmp_path]) == []
    assert target.read_bytes() == b"data"

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

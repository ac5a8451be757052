"""Exact values of the code fingerprints (runstore ``_code_files``, ``code_fingerprint``,
``library_fingerprint``) on a small fake library tree: the expected digests are computed here
with hashlib over the documented normalisation (``ast.dump`` of the module, no docstrings, no
attributes; the bytes of a module that does not parse; name and bytes of each weights sidecar)."""
from __future__ import annotations

import ast
import hashlib
import re

import pytest

from brcd_lib.experiments import runstore


def _dump(text: str) -> str:
    return ast.dump(ast.parse(text), include_attributes=False)


_A = "x = 1\n"
_B = "def f():\n    return 2\n"
_C = "y = 3\n"
_Z = "z = 4\n"
_BAD = b"def (:\n"
_SIDECAR = b'{"sha256": "ab", "recipe": "r"}'


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "weights").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "a.py").write_text(_A)
    (tmp_path / "sub" / "b.py").write_text(_B)
    (tmp_path / "__pycache__" / "c.py").write_text(_C)
    (tmp_path / "zz.py").write_text(_Z)
    (tmp_path / "bad.py").write_bytes(_BAD)
    (tmp_path / "weights" / "m.json").write_bytes(_SIDECAR)
    (tmp_path / "weights" / "notes.txt").write_bytes(b"not a sidecar")
    (tmp_path / "models" / "b.py").write_text(_B)
    (tmp_path / "models" / "a.py").write_text(_A)
    (tmp_path / "models" / "notes.txt").write_text("not code")
    (tmp_path / "metrics.py").write_text(_Z)
    monkeypatch.setattr(runstore, "_PACKAGE", tmp_path)
    monkeypatch.setattr(runstore, "_FINGERPRINTS", {})
    monkeypatch.setattr(runstore, "CODE_PATHS",
                        {"teacher": ("models", "metrics.py"),
                         "student": ("models", "metrics.py", "sub")})
    return tmp_path


def _library_expected() -> str:
    h = hashlib.sha256()
    # models/ and metrics.py are in the fake tree too (for code_fingerprint); __pycache__/c.py
    # and weights/notes.txt are not hashed
    parts = []
    for rel in ["a.py", "bad.py", "metrics.py", "models/a.py", "models/b.py", "sub/b.py", "zz.py"]:
        parts.append(rel.encode() + b"\0")
        if rel == "bad.py":
            parts.append(_BAD + b"\0")
        else:
            text = {"a.py": _A, "metrics.py": _Z, "models/a.py": _A, "models/b.py": _B,
                    "sub/b.py": _B, "zz.py": _Z}[rel]
            parts.append(_dump(text).encode() + b"\0")
    parts.append(b"m.json" + b"\0" + _SIDECAR + b"\0")
    for p in parts:
        h.update(p)
    return h.hexdigest()[:16]


def test_library_fingerprint_exact(fake_package):
    got = runstore.library_fingerprint()
    assert got == _library_expected()
    assert len(got) == 16


def test_library_fingerprint_skips_pycache_only(fake_package):
    before = runstore.library_fingerprint()
    (fake_package / "__pycache__" / "c.py").write_text("y = 999\n")
    assert runstore.library_fingerprint() == before
    (fake_package / "zz.py").write_text("z = 5\n")
    assert runstore.library_fingerprint() != before


def test_code_files_exact(fake_package):
    assert runstore._code_files("teacher") == [
        fake_package / "models" / "a.py", fake_package / "models" / "b.py",
        fake_package / "metrics.py"]
    assert runstore._code_files("student") == [
        fake_package / "models" / "a.py", fake_package / "models" / "b.py",
        fake_package / "metrics.py", fake_package / "sub" / "b.py"]


def test_code_files_unknown_role_message():
    with pytest.raises(ValueError,
                       match="^" + re.escape("role must be one of teacher, student, got 'tutor'")
                       + "$"):
        runstore._code_files("tutor")


def test_code_fingerprint_exact(fake_package):
    h = hashlib.sha256()
    for rel, text in [("models/a.py", _A), ("models/b.py", _B), ("metrics.py", _Z)]:
        h.update(rel.encode() + b"\0")
        h.update(_dump(text).encode() + b"\0")
    got = runstore.code_fingerprint("teacher")
    assert got == h.hexdigest()[:16]
    assert runstore._FINGERPRINTS == {"teacher": h.hexdigest()[:16]}

"""Tests aimed at mutants that survived ``make mutation`` in config.canonical_json, the
constructors of the CRD / PACKD / KD / PKT / SSKD distillers (defaults, bounds, messages, the
attributes set before ``prepare``) and the run store's normalised-source cache.

Expected values are literals worked by hand, or built here with the standard library (``ast``),
never read back from brcd_lib."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from brcd_lib.config import canonical_json
from brcd_lib.distill.crd import ContrastiveDistiller
from brcd_lib.distill.kd import KDDistiller
from brcd_lib.distill.packd import PACKDDistiller
from brcd_lib.distill.pkt import PKTDistiller
from brcd_lib.distill.sskd import SSKDDistiller
from brcd_lib.experiments import runstore

# ---------------------------------------------------------------- config.canonical_json


def test_canonical_json_sorts_keys_without_whitespace():
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'


def test_canonical_json_sets_and_other_objects():
    assert canonical_json({"s": {5}}) == '{"s":[5]}'  # a set -> a list
    assert canonical_json(Path("a") / "b") == '"a/b"'  # anything else -> str(o)


# ---------------------------------------------------------------- ContrastiveDistiller

CRD = dict(embed_dim=4, n_negatives=3, temperature=0.1, momentum=0.5, inputs="codes", weight=1.0,
           eps=1e-7)


def test_contrastive_defaults_and_state_before_prepare():
    d = ContrastiveDistiller(**CRD)
    assert d.negatives == "uniform"
    assert d.n_data == 0
    assert d.class_labels is None and d.embed_s is None and d.embed_t is None
    assert d.memory_s is None and d.memory_t is None


@pytest.mark.parametrize("change, shown", [
    ({"embed_dim": 0}, "0, 3, 0.1"),
    ({"n_negatives": 0}, "4, 0, 0.1"),
    ({"temperature": 0.0}, "4, 3, 0.0"),
])
def test_contrastive_rejects_each_bound_alone(change, shown):
    with pytest.raises(ValueError) as err:
        ContrastiveDistiller(**{**CRD, **change})
    assert str(err.value) == ("need embed_dim >= 1, n_negatives >= 1, temperature > 0; got "
                              f"{shown}.")


def test_contrastive_accepts_the_smallest_sizes():
    d = ContrastiveDistiller(**{**CRD, "embed_dim": 1, "n_negatives": 1})
    assert (d.embed_dim, d.n_negatives) == (1, 1)


# ---------------------------------------------------------------- PACKDDistiller


def test_packd_defaults_and_state_before_prepare():
    d = PACKDDistiller()
    assert (d.mined_positives, d.sinkhorn_iters, d.sinkhorn_tol) == (0, 100, 0.1)
    assert d.class_labels is None and d.embed_s is None and d.embed_t is None and d.memory_t is None


PACKD_MSG = "embed_dim must be >= 1, temperature and sinkhorn_eps > 0."


@pytest.mark.parametrize("kwargs, message", [
    ({"views": 3}, "views must be 1 or 2 (a batch carries two views); got 3."),
    ({"mined_positives": 5, "n_negatives": 5},
     "mined_positives must lie in [0, n_negatives); got 5 with n_negatives=5."),
    ({"embed_dim": 0}, PACKD_MSG),
    ({"temperature": 0.0}, PACKD_MSG),
    ({"sinkhorn_eps": 0.0}, PACKD_MSG),
])
def test_packd_rejects_with_the_exact_message(kwargs, message):
    with pytest.raises(ValueError) as err:
        PACKDDistiller(**kwargs)
    assert str(err.value) == message


def test_packd_accepts_the_smallest_embedding():
    d = PACKDDistiller(embed_dim=1, mined_positives=4, n_negatives=5)
    assert (d.embed_dim, d.mined_positives) == (1, 4)


# ---------------------------------------------------------------- KD, PKT, SSKD


def test_kd_temperature_bound_and_message():
    with pytest.raises(ValueError) as err:
        KDDistiller(temperature=0)
    assert str(err.value) == "temperature must be > 0; got 0."
    assert KDDistiller(temperature=0.5).temperature == 0.5


def test_pkt_eps_bound_and_message():
    with pytest.raises(ValueError) as err:
        PKTDistiller(eps=0)
    assert str(err.value) == "eps must be > 0; got 0."


@pytest.mark.parametrize("kwargs, message", [
    ({"n_rotations": 1}, "n_rotations must be >= 2 (the unrotated copy plus others); got 1."),
    ({"temperature": 0}, "temperature must be > 0; got 0."),
    ({"keep_wrong_ratio": 1.5}, "keep_wrong_ratio must lie in [0, 1]; got 1.5."),
])
def test_sskd_rejects_with_the_exact_message(kwargs, message):
    with pytest.raises(ValueError) as err:
        SSKDDistiller(**kwargs)
    assert str(err.value) == message


# ---------------------------------------------------------------- runstore._normalised_source


def _reference(text: str) -> str:
    return ast.dump(ast.parse(text), include_attributes=False)


@pytest.fixture
def empty_cache(monkeypatch):
    """An empty per-content cache, so the code under test parses (other tests in the process may
    have seen the same bytes)."""
    cache: dict[str, str] = {}
    monkeypatch.setattr(runstore, "_NORMALISED", cache)
    return cache


def test_normalised_source_of_a_new_file(tmp_path, empty_cache):
    # bytes not seen before: parsed, cached under their SHA-256, served from the cache after
    path = tmp_path / "m.py"
    path.write_bytes(b"value_for_the_normalised_source_test = 41 + 1\n")
    want = _reference("value_for_the_normalised_source_test = 41 + 1\n")
    assert runstore._normalised_source(path) == want
    assert list(empty_cache.values()) == [want]
    assert runstore._normalised_source(path) == want


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_normalised_source_translates_newlines_inside_strings(tmp_path, newline, empty_cache):
    # Path.read_text turns \r\n and a lone \r into \n, inside string literals too
    path = tmp_path / "m.py"
    path.write_bytes(b'x = """a' + newline + b'b"""' + newline + b"y = 2" + newline)
    assert runstore._normalised_source(path) == _reference('x = """a\nb"""\ny = 2\n')

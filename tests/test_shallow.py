"""Tests of the shallow hashing baselines (LSH, ITQ)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from brcd_lib.metrics import map_at_k
from brcd_lib.models.shallow import (ITQHasher, LSHHasher, get_shallow_hasher, list_shallow_hashers,
                              lsh_codes)


def _data(seed=0, n=120, shape=(3, 4, 4)):
    return np.random.default_rng(seed).random((n,) + shape).astype(np.float32)


@pytest.mark.parametrize("name", ["lsh", "itq"])
def test_shapes_values_and_determinism(name):
    x = _data()
    a = get_shallow_hasher(name, code_length=16, seed=3).fit(x)
    codes = a.encode(x[:10])
    assert codes.shape == (10, 16) and codes.dtype == np.float32
    assert set(np.unique(codes)) <= {-1.0, 1.0}
    again = get_shallow_hasher(name, code_length=16, seed=3).fit(x).encode(x[:10])
    np.testing.assert_array_equal(codes, again)
    other = get_shallow_hasher(name, code_length=16, seed=4).fit(x).encode(x)
    assert not np.array_equal(a.encode(x), other)
    # torch input gives the same codes
    np.testing.assert_array_equal(a.encode(torch.from_numpy(x[:10])), codes)


def test_lsh_is_sign_of_gaussian_projection_of_centred_pixels():
    x = _data(1)
    flat = x.reshape(len(x), -1).astype(np.float64)
    w = np.random.default_rng(5).standard_normal((flat.shape[1], 8))
    expected = np.where((flat - flat.mean(0)) @ w >= 0, 1.0, -1.0)
    (got,) = lsh_codes(x, [x], code_length=8, seed=5)
    np.testing.assert_array_equal(got, expected)
    train_codes, test_codes = lsh_codes(x[:60], [x[:60], x[60:]], code_length=8, seed=5)
    assert train_codes.shape == (60, 8) and test_codes.shape == (60, 8)


def test_itq_loss_non_increasing_and_rotation_orthogonal():
    x = _data(2, n=200)
    itq = ITQHasher(code_length=12, seed=0, n_iter=50).fit(x)
    loss = np.array(itq.loss_history_)
    assert loss.shape == (51,)
    assert np.all(np.diff(loss) <= 1e-9 * loss[0])
    assert loss[-1] < loss[0]
    r = itq.rotation_
    np.testing.assert_allclose(r.T @ r, np.eye(12), atol=1e-10)
    # the PCA directions are orthonormal too, and codes are sign(V R)
    np.testing.assert_allclose(itq.pca_.T @ itq.pca_, np.eye(12), atol=1e-8)
    flat = x.reshape(len(x), -1).astype(np.float64)
    v = (flat - flat.mean(0)) @ itq.pca_
    np.testing.assert_array_equal(itq.encode(x), np.where(v @ r >= 0, 1.0, -1.0))


def test_itq_pca_via_gram_matrix_when_fewer_items_than_features():
    x = _data(3, n=20, shape=(50,))  # 20 items, 50 features
    itq = ITQHasher(code_length=8, seed=0).fit(x)
    flat = x.reshape(20, -1).astype(np.float64)
    centred = flat - flat.mean(0)
    _, vecs = np.linalg.eigh(centred.T @ centred)
    top = vecs[:, ::-1][:, :8]
    # same subspace as the covariance eigenvectors (up to sign)
    np.testing.assert_allclose(np.abs(np.sum(top * itq.pca_, axis=0)), np.ones(8), atol=1e-8)


def test_itq_beats_random_codes_on_digits():
    digits = load_digits()
    x, y = digits.data.astype(np.float32), digits.target
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(x))
    query, db = perm[:300], perm[300:]
    itq = ITQHasher(code_length=32, seed=0).fit(x[db])
    itq_map = map_at_k(itq.encode(x[query]), itq.encode(x[db]), y[query], y[db])
    rand_q = np.where(rng.random((300, 32)) < 0.5, 1.0, -1.0)
    rand_db = np.where(rng.random((len(db), 32)) < 0.5, 1.0, -1.0)
    rand_map = map_at_k(rand_q, rand_db, y[query], y[db])
    assert itq_map > rand_map + 0.1
    lsh = LSHHasher(code_length=32, seed=0).fit(x[db])
    assert map_at_k(lsh.encode(x[query]), lsh.encode(x[db]), y[query], y[db]) > rand_map


def test_errors():
    x = _data(4, n=30, shape=(10,))
    with pytest.raises(ValueError, match="input dimension"):
        ITQHasher(code_length=11, seed=0).fit(x)
    with pytest.raises(ValueError, match="training items"):
        ITQHasher(code_length=8, seed=0).fit(x[:5])
    with pytest.raises(ValueError, match="valid names: itq, lsh"):
        get_shallow_hasher("sh", code_length=8)
    with pytest.raises(RuntimeError, match="before fit"):
        LSHHasher(code_length=8, seed=0).encode(x)
    with pytest.raises(ValueError, match="features"):
        LSHHasher(code_length=8, seed=0).fit(x).encode(x[:, :5])
    with pytest.raises(ValueError, match="code_length"):
        LSHHasher(code_length=0)
    with pytest.raises(TypeError):
        LSHHasher(8)  # keyword-only
    assert list_shallow_hashers() == ["itq", "lsh"]

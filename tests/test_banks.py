"""View banks: each augmented image has its own seed, so a bank does not depend on batch size or
loader workers, and one draw of augmented images serves every backbone and rotation."""
from __future__ import annotations

import torch
from torch import nn

from brcd_lib.data import get_dataset
from brcd_lib.data.transforms import get_transforms
from brcd_lib.training.encode import compute_features
from brcd_lib.training.features import FeatureStore, SeededView, item_seed


class Net(nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 8))

    @torch.no_grad()
    def features(self, x):
        return self.backbone(x)


def _train(tmp_path):
    ds = get_dataset("digits", split_dir=tmp_path / "s", subset=40, n_query=10, n_val=10,
                     n_train_per_class=4)
    return ds.train.with_transform(get_transforms("small", size=16, train=True))


def test_item_seeds_differ():
    seeds = {item_seed(s, v, i) for s in range(3) for v in range(4) for i in range(50)}
    assert len(seeds) == 3 * 4 * 50


def test_seeded_view_ignores_batching_and_workers(tmp_path):
    train = _train(tmp_path)
    view = SeededView(train, seed=3, view=1)
    a = compute_features(lambda x: x, view, batch_size=7, progress=False)
    b = compute_features(lambda x: x, view, batch_size=64, num_workers=2, progress=False)
    c = torch.stack([view[i][0] for i in reversed(range(len(view)))]).flip(0)
    assert torch.equal(a, b) and torch.equal(a, c)
    other = compute_features(lambda x: x, SeededView(train, seed=3, view=2), progress=False)
    assert not torch.equal(a, other)


def test_one_draw_serves_backbones_and_rotations(tmp_path, monkeypatch):
    train = _train(tmp_path)
    store = FeatureStore(cache_dir=str(tmp_path / "c"))
    calls = []
    original = store.augmented

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(store, "augmented", counting)
    kw = dict(n_views=3, seed=0, split_hash="h", transform_desc="t", progress=False)
    first, second = Net(1), Net(2)
    one = store.views(first, train, **kw)
    two = store.views(second, train, **kw)
    rot = store.views(first, train, rotation=1, **kw)
    assert one.shape == (3, len(train), 8) and not torch.equal(rot, one)
    images = original(train, n_views=3, seed=0, split_hash="h", transform_desc="t", progress=False)
    assert torch.allclose(two[1], second.features(images[1]), atol=1e-6)
    assert torch.allclose(rot[2], first.features(torch.rot90(images[2], 1, dims=(2, 3))), atol=1e-6)
    assert len(calls) == 3 and store._augmented is not None  # drawn once, reused from memory

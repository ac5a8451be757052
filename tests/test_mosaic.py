"""The multi-label mosaic protocol on generated Fashion-MNIST files: sizes, labels that are the
classes of the items shown, no test item in the database, saved and reloaded composition."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brcd_lib.data import class_names, get_dataset
from brcd_lib.data.mosaic import compose_mosaics, draw_composition

from fakes import write_fake_fashion


def test_composition_keeps_one_item_and_marks_empty_tiles():
    comp = draw_composition(np.random.default_rng(0), n=500, n_items=7, tiles=2, empty_p=0.9)
    assert comp.shape == (500, 4) and comp.max() < 7
    assert ((comp >= 0).sum(1) >= 1).all() and (comp == -1).any()


def test_labels_are_the_classes_of_the_items_shown():
    items = torch.arange(1, 4, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 1, 2, 2).clone()
    ids = np.array([2, 5, 2])
    comp = np.array([[0, -1, 1, -1], [2, 2, -1, -1]])
    images, labels = compose_mosaics(items, ids, comp, tiles=2, n_classes=6)
    assert images.shape == (2, 1, 4, 4)
    assert labels[0].tolist() == [0, 0, 1, 0, 0, 1] and labels[1].tolist() == [0, 0, 1, 0, 0, 0]
    assert images[0, 0, :2, :2].eq(1).all() and images[0, 0, :2, 2:].eq(0).all()
    assert images[0, 0, 2:, :2].eq(2).all()


def test_protocol_on_fake_files(tmp_path):
    write_fake_fashion(tmp_path / "fm", gz=True, n_train_per_class=6, n_test=40)
    kw = dict(root=tmp_path / "fm", split_dir=tmp_path / "s", n_database=50, n_train=20, n_val=5,
              n_query=10, top_k=30)
    ds = get_dataset("fashion_mosaic", **kw)
    assert (len(ds.train), len(ds.val), len(ds.query), len(ds.database)) == (20, 5, 10, 50)
    assert ds.top_k == 30 and ds.n_classes == 10 and ds.database.images.shape[1:] == (1, 28, 28)
    counts = ds.database.labels.sum(1)
    assert counts.min() >= 1 and counts.max() <= 4 and (counts > 1).any()
    assert set(ds.train.source_index) <= set(ds.database.source_index)  # train drawn from the database
    again = get_dataset("fashion_mosaic", **kw)
    assert again.split_hash == ds.split_hash
    assert torch.equal(again.query.images, ds.query.images)
    assert ds.protocol["composition_sha256"] and ds.protocol["labels_per_image_database"]
    assert class_names("fashion_mosaic")[0] == "T-shirt/top"
    with pytest.raises(ValueError, match="n_train"):
        get_dataset("fashion_mosaic", **{**kw, "n_train": 60})
    with pytest.raises(ValueError, match="multiple of tiles"):
        get_dataset("fashion_mosaic", **{**kw, "image_size": 27})

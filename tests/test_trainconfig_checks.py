"""TrainConfig's own checks, called directly (the fault suite reaches them only through the
command line, with whole numbers): the exact messages for a float, a bool and a too-small count,
a NumPy integer and a NumPy float32 learning rate stored as Python int / float, a bad learning
rate, and every accepted ``augment`` value. Expected messages are literals."""
from __future__ import annotations

import math

import numpy as np
import pytest

from brcd_lib.config import TrainConfig


@pytest.mark.parametrize("value, shown", [(1.5, "float 1.5"), (True, "bool True"),
                                          ("3", "str '3'")])
def test_a_count_that_is_not_a_whole_number_is_refused_by_name(value, shown):
    with pytest.raises(ValueError) as err:
        TrainConfig(epochs=value)
    assert str(err.value) == ("TrainConfig.epochs must be an integer >= 1 (a run trains at least "
                              f"one epoch), got {shown}")


def test_a_count_below_its_minimum_is_refused_by_name():
    with pytest.raises(ValueError) as err:
        TrainConfig(feature_views=-1)
    assert str(err.value) == ("TrainConfig.feature_views must be an integer >= 0 (0 = fresh "
                              "augmentations every step), got -1")


def test_numpy_values_are_stored_as_python_numbers():
    cfg = TrainConfig(epochs=np.int64(7), batch_size=np.int32(16), lr=np.float32(0.25))
    assert type(cfg.epochs) is int and cfg.epochs == 7
    assert type(cfg.batch_size) is int and cfg.batch_size == 16
    assert type(cfg.lr) is float and cfg.lr == 0.25
    plain = TrainConfig(lr=2)  # a Python int learning rate is kept as given
    assert type(plain.lr) is int and plain.lr == 2


@pytest.mark.parametrize("lr", [0.0, -1e-3, math.inf, math.nan, True, "1e-3"])
def test_a_bad_learning_rate_is_refused_by_name(lr):
    with pytest.raises(ValueError) as err:
        TrainConfig(lr=lr)
    assert str(err.value) == ("TrainConfig.lr must be a positive finite number (the Adam learning "
                              f"rate, e.g. 1e-3), got {lr!r}")


@pytest.mark.parametrize("augment", ["auto", "cpu", "device"])
def test_every_augment_place_is_accepted(augment):
    assert TrainConfig(augment=augment).augment == augment


@pytest.mark.parametrize("augment", ["CPU", "gpu", ""])
def test_another_augment_place_is_refused_by_name(augment):
    with pytest.raises(ValueError) as err:
        TrainConfig(augment=augment)
    assert str(err.value) == ("TrainConfig.augment must be 'auto', 'cpu' or 'device', got "
                              f"{augment!r}")

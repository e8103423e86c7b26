"""Random initial values are drawn only for the variables the file does not fill,
and the loaded model is the one Keras alone would give."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np

from gradaudit.load import loader
from gradaudit.load.deferred_init import deferred_random_init, keras_classes_only


def _mlp() -> keras.Model:
    inputs = keras.Input((8,), name="x")
    hidden = keras.layers.Dense(16, activation="relu", name="h")(inputs)
    hidden = keras.layers.BatchNormalization(name="bn")(hidden)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))


def test_a_loaded_model_has_the_files_weights_exactly(tmp_path: Path) -> None:
    path = tmp_path / "m.keras"
    keras.utils.set_random_seed(1)
    _mlp().save(path)
    deferred = loader._keras_load(path, "keras", unsafe=False, defer_init=True)
    plain = loader._keras_load(path, "keras", unsafe=False)
    assert len(deferred.weights) == len(plain.weights) == 8
    for ours, theirs in zip(deferred.weights, plain.weights, strict=True):
        assert np.array_equal(ours.numpy(), theirs.numpy())


def test_a_variable_never_assigned_gets_its_initializers_values() -> None:
    initializer = keras.initializers.GlorotUniform(seed=7)
    with deferred_random_init():
        left = keras.layers.Dense(5, kernel_initializer=initializer)
        left.build((None, 4))
        right = keras.layers.Dense(5, kernel_initializer=initializer)
        right.build((None, 4))
        assert not np.any(left.kernel.numpy())  # zeros until the file fills it
        right.kernel.assign(np.ones((4, 5), "float32"))
    reference = keras.layers.Dense(5, kernel_initializer=initializer)
    reference.build((None, 4))
    assert np.array_equal(left.kernel.numpy(), reference.kernel.numpy())
    assert np.array_equal(right.kernel.numpy(), np.ones((4, 5)))


def test_only_keras_classes_defer(tmp_path: Path) -> None:
    path = tmp_path / "m.keras"
    _mlp().save(path)
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    assert keras_classes_only(config)
    config["config"]["layers"][1]["module"] = "my_layers"
    assert not keras_classes_only(config)
    config["config"]["layers"][1].update(module="keras.layers", registered_name="pkg>Dense")
    assert not keras_classes_only(config)

"""Real architectures, saved by Keras and audited by the CLI, come out clean.

False positives matter as much as misses: attention, recurrent, convolutional
and Keras application models with random weights must not get errors or
warnings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import keras
import pytest
from keras import layers

from tests.conftest import run_cli


def transformer_block() -> keras.Model:
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = layers.Embedding(500, 32, name="embed")(tokens)
    attended = layers.MultiHeadAttention(num_heads=4, key_dim=8, name="attention")(x, x)
    x = layers.LayerNormalization(name="norm_1")(x + attended)
    ffn = layers.Dense(64, activation="relu", name="ffn_1")(x)
    x = layers.LayerNormalization(name="norm_2")(x + layers.Dense(32, name="ffn_2")(ffn))
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(tokens, layers.Dense(3, activation="softmax", name="probs")(x))


def bidirectional_gru() -> keras.Model:
    tokens = keras.Input((20,), dtype="int32", name="tokens")
    x = layers.Embedding(300, 16, name="embed")(tokens)
    x = layers.Bidirectional(layers.GRU(16, return_sequences=True), name="bigru")(x)
    x = layers.GlobalMaxPooling1D(name="pool")(x)
    return keras.Model(tokens, layers.Dense(1, activation="sigmoid", name="prob")(x))


def small_cnn() -> keras.Model:
    image = keras.Input((28, 28, 1), name="image")
    x = layers.Conv2D(16, 3, activation="relu", name="conv_1")(image)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv_2")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(image, layers.Dense(10, activation="softmax", name="probs")(x))


def mobilenet_v3_small() -> keras.Model:
    return keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), weights=None, classes=10, include_preprocessing=False)


@pytest.mark.parametrize(
    "build", [transformer_block, bidirectional_gru, small_cnn, mobilenet_v3_small],
    ids=lambda build: build.__name__,
)
def test_real_architecture_is_clean(tmp_path: Path, build: Callable[[], keras.Model]) -> None:
    keras.utils.set_random_seed(0)
    path = tmp_path / f"{build.__name__}.keras"
    build().save(path)
    result = run_cli("audit", str(path), "-f", "json", "--fail-on", "warning", "--samples", "128")
    (model,) = json.loads(result.stdout)["models"]
    serious = [(f["code"], f["layer"], f["message"]) for f in model["findings"]
               if f["severity"] != "info"]
    assert serious == []
    assert result.exit_code == 0
    assert any(row["grad_rms"] for row in model["layers"])

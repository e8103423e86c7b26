"""The benchmark models, built with random weights and saved once to a cache folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers


def mlp() -> keras.Model:
    features = keras.Input((256,), name="features")
    x = features
    for i in range(4):
        x = layers.Dense(512, activation="relu", name=f"hidden_{i}")(x)
    return keras.Model(features, layers.Dense(10, activation="softmax", name="probs")(x))


def lstm_text() -> keras.Model:
    tokens = keras.Input((64,), dtype="int32", name="tokens")
    x = layers.Embedding(20000, 64, name="embedding")(tokens)
    x = layers.LSTM(128, name="lstm")(x)
    return keras.Model(tokens, layers.Dense(5, activation="softmax", name="probs")(x))


MOBILENET_V2_INPUT = (96, 96, 3)
RESNET50_INPUT = (64, 64, 3)


def mobilenet_v2() -> keras.Model:
    return keras.applications.MobileNetV2(input_shape=MOBILENET_V2_INPUT, weights=None)


def resnet50() -> keras.Model:
    return keras.applications.ResNet50(input_shape=RESNET50_INPUT, weights=None)


LARGE_INPUT = (224, 224, 3)


def densenet121() -> keras.Model:
    return keras.applications.DenseNet121(input_shape=LARGE_INPUT, weights=None)


def efficientnet_b0() -> keras.Model:
    return keras.applications.EfficientNetB0(input_shape=LARGE_INPUT, weights=None)


MODELS: dict[str, Callable[[], keras.Model]] = {
    "mlp": mlp,
    "lstm_text": lstm_text,
    "mobilenet_v2": mobilenet_v2,
    "resnet50": resnet50,
    "densenet121": densenet121,
    "efficientnet_b0": efficientnet_b0,
}

# Part of the cached file's name, so a file built at another input shape is never reused.
SHAPES: dict[str, tuple[int, ...]] = {
    "mobilenet_v2": MOBILENET_V2_INPUT,
    "resnet50": RESNET50_INPUT,
    "densenet121": LARGE_INPUT,
    "efficientnet_b0": LARGE_INPUT,
}


def saved(name: str, cache: Path) -> Path:
    """The model's .keras file in ``cache``, built (seed 0) if it is not there yet."""
    shape = SHAPES.get(name)
    suffix = "_" + "x".join(map(str, shape)) if shape else ""
    path = cache / f"{name}{suffix}.keras"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(0)
        MODELS[name]().save(path)
    return path


SMALL_MODELS = 40


def small_folder(cache: Path) -> Path:
    """A folder of SMALL_MODELS small MLPs (16 → 32 → 32 → 4, relu; seeds 0…39), built
    once: the many-small-files case, where start-up and per-file costs dominate."""
    folder = cache / f"small_x{SMALL_MODELS}"
    if len(list(folder.glob("*.keras"))) != SMALL_MODELS:
        folder.mkdir(parents=True, exist_ok=True)
        for seed in range(SMALL_MODELS):
            keras.utils.set_random_seed(seed)
            inputs = keras.Input((16,), name="features")
            x = layers.Dense(32, activation="relu", name="hidden_0")(inputs)
            x = layers.Dense(32, activation="relu", name="hidden_1")(x)
            keras.Model(inputs, layers.Dense(4, name="out")(x)).save(
                folder / f"small_{seed:02d}.keras")
    return folder

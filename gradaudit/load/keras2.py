"""Keras 2 ``.h5`` files through ``tf_keras``, Keras 2 as a package.

Keras 3's legacy loader rebuilds many Keras 2 files, but not all: it rejects
arguments Keras 3 dropped (``LSTM(time_major=False)``), cannot locate some
classes inside wrappers (a Bidirectional LSTM), and reads an old Sequential's
``batch_input_shape`` with an extra axis. ``tf_keras`` is the code that wrote
these files, so a file whose ``keras_version`` says 1.x or 2.x is loaded with
it first, and with Keras 3's legacy loader only if that fails. The same gates
run before either: the config pre-scan (no Lambda, no foreign module), the
weight datasets' sizes, and the variables the config declares, counted by
building the model inside a TensorFlow 1 graph, where a variable is an op
whose value is never allocated.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gradaudit.errors import first_line

KERAS2_VERSIONS = ("1.", "2.")


def keras2_version(path: Path) -> str | None:
    """The ``keras_version`` an HDF5 model file was written by, if it is Keras 1 or 2."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("keras_version")
    except (OSError, ValueError, KeyError, RuntimeError, TypeError):
        return None  # the loaders say what is wrong with the file
    version = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return version if isinstance(version, str) and version.startswith(KERAS2_VERSIONS) else None


def package() -> Any:
    """``tf_keras``, imported (quietly, like TensorFlow) on first use."""
    from gradaudit.runtime import import_tensorflow

    import_tensorflow()
    import tf_keras

    return tf_keras


def declared_params(config: dict[str, Any]) -> int:
    """Elements of every variable the config declares, without allocating any."""
    import tensorflow as tf

    tf_keras = package()
    with tf.Graph().as_default():
        model = tf_keras.models.model_from_config(config)
        return sum(math.prod(int(d or 0) for d in v.shape) for v in model.weights)


def load(path: Path) -> Any:
    """The model as ``tf_keras`` loads it (architecture and weights, not compiled)."""
    import h5py

    tf_keras = package()
    with h5py.File(path, "r") as handle:
        return tf_keras.models.load_model(handle, compile=False)


def failure(exc: BaseException) -> str:
    """A tf_keras failure in one line, for the report's note or the error."""
    return f"tf_keras could not load it: {first_line(exc)}"

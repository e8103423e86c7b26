"""Size limits checked before anything large is allocated.

A config can declare a Dense layer of 10^12 units or an input of 10^12
elements in a few bytes, and an HDF5 dataset can declare a shape far larger
than the file. Keras allocates such variables while it builds the model and
reads such datasets whole, so the sizes are measured first:

- the variables the config declares, by building the model inside a Keras
  ``StatelessScope`` that records each variable's shape and never creates its
  value (the same deserialisation code as the real load, so nothing is guessed);
- the weight datasets in the file, from their HDF5 shapes (metadata only);
- one probe sample: the elements of every input (a larger batch is made smaller).
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gradaudit.errors import AuditError, reported_as


def check_declared_params(count: int, max_params: int) -> None:
    """Refuse a config whose variables add up to more than ``max_params`` elements."""
    if count > max_params:
        raise AuditError(
            f"the model config declares {count} parameters, more than --max-params "
            f"{max_params}; refusing to build it"
        )


def declared_params(config: dict[str, Any], fmt: str, *, unsafe: bool) -> int:
    """Elements of every variable the config declares, without allocating any."""
    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.backend.common.stateless_scope import StatelessScope

    # A copy: Keras appends the deferred variables to this very list.
    pending = list(global_state.get_global_attribute("uninitialized_variables") or [])
    rng_states = random.getstate(), np.random.get_state()
    try:
        with StatelessScope(initialize_variables=False), _stateful_states_deferred():
            model = _model_from_config(copy.deepcopy(config), fmt, unsafe=unsafe)
            return sum(math.prod(int(d) for d in v.shape) for v in model.weights)
    finally:
        # Deferred variables must never be initialised later by another scope,
        # and building must not move the RNGs the probe is seeded from.
        global_state.set_global_attribute("uninitialized_variables", pending)
        random.setstate(rng_states[0])
        np.random.set_state(rng_states[1])


@contextlib.contextmanager
def _stateful_states_deferred() -> Iterator[None]:
    """A stateful RNN makes its state variables (one row per sample of its fixed batch)
    from values, which a ``StatelessScope`` refuses; while counting, they are made from
    an initializer of the same shape. They are not weights: the count is the same."""
    from keras.src import backend, tree
    from keras.src.layers.rnn.rnn import RNN
    from keras.src.utils import tracking

    original = RNN._create_state_variables

    def deferred(self: Any, batch_size: int) -> None:
        with backend.name_scope(self.name, caller=self):
            self.states = tree.map_structure(
                lambda value: backend.Variable(
                    "zeros", shape=value.shape, dtype=self.variable_dtype, trainable=False,
                    name="rnn_state"),
                self.get_initial_state(batch_size))

    # Untracked, as Keras's own: the states must not join the layer's variables.
    RNN._create_state_variables = tracking.no_automatic_dependency_tracking(deferred)
    try:
        yield
    finally:
        RNN._create_state_variables = original


def _model_from_config(config: dict[str, Any], fmt: str, *, unsafe: bool) -> Any:
    """The config → model step of Keras's loader for ``fmt``, and nothing else."""
    from keras.src.saving import serialization_lib
    from keras.src.saving.serialization_lib import ObjectSharingScope

    from gradaudit.load import keras2_ops

    if fmt == "keras":
        config["compile_config"] = None  # as Keras does with compile=False
        with ObjectSharingScope():
            return serialization_lib.deserialize_keras_object(config, safe_mode=not unsafe)
    return keras2_ops.legacy_model_from_config(config, safe_mode=not unsafe)


def check_checkpoint_variables(path: Path, max_params: int) -> None:
    """Refuse a SavedModel whose variables/ index declares more than ``max_params`` values.

    Reads the checkpoint's index only (shapes, no values), before TensorFlow
    restores anything.
    """
    import tensorflow as tf

    prefix = path / "variables" / "variables"
    if not (path / "variables" / "variables.index").exists():
        return  # the loader reports the missing variables with its own reason
    with reported_as("damaged variables/ index ({reason})"):
        shapes = tf.train.load_checkpoint(str(prefix)).get_variable_to_shape_map()
    count = sum(math.prod(shape) for shape in shapes.values())
    if count > max_params:
        raise AuditError(
            f"the SavedModel's variables declare {count} values, more than "
            f"--max-params {max_params}"
        )


def check_weight_datasets(path: Path, fmt: str, max_params: int) -> int:
    """Refuse a file whose weight datasets declare more than ``max_params`` elements;
    else their count (the model's parameters, for ``--no-probe``)."""
    from gradaudit.load import h5read

    # A .keras archive stores the member uncompressed: h5read reads it in place, where a
    # ZipExtFile re-reads the member from its start at every backward seek of HDF5's
    # metadata walk (3.8 s of 100 MB for ResNet50, against 0.03 s in place).
    with reported_as("damaged weights in the file ({reason})"), \
            h5read.weights_file(path, fmt) as handle:
        if handle is None:
            return 0
        count = (_dataset_elements(handle, skip=("optimizer",)) if fmt == "keras"
                 else _dataset_elements(handle.get("model_weights", handle), skip=()))
    if count > max_params:
        raise AuditError(
            f"the weight datasets in the file declare {count} values, more than "
            f"--max-params {max_params}"
        )
    return count


def _dataset_elements(group: Any, skip: Iterable[str]) -> int:
    import h5py

    total = 0

    def visit(name: str, item: Any) -> None:
        nonlocal total
        if isinstance(item, h5py.Dataset) and name.split("/")[0] not in skip:
            total += math.prod(item.shape or ())

    group.visititems(visit)
    return total


def check_input_elements(shapes: Iterable[tuple[int, ...]], max_input_elements: int) -> None:
    """Refuse a model of which one sample (every input) holds over ``max_input_elements``
    values; a larger batch is made smaller instead (:mod:`gradaudit.probe.memory`)."""
    count = sum(math.prod(shape) for shape in shapes)
    if count > max_input_elements:
        raise AuditError(one_sample_over(count, max_input_elements))


def one_sample_over(input_elements: int, max_input_elements: int) -> str:
    """Why a model is refused whose one sample holds more input values than the limit."""
    return (f"one sample of the model's inputs holds {input_elements} values, more than "
            f"--max-input-elements {max_input_elements}; raise the limit")

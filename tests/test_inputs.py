"""Random inputs follow the model's signature."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gradaudit.errors import AuditError
from gradaudit.model.keras_graph import KerasModel
from gradaudit.model.specs import DEFAULT_DIM
from gradaudit.probe.random_inputs import random_batches


def test_token_inputs_use_the_embedding_vocabulary_and_default_length() -> None:
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(77, 4)(tokens)
    model = keras.Model(tokens, keras.layers.GlobalAveragePooling1D()(x))
    (spec,) = KerasModel(model).input_specs()
    assert (spec.name, spec.shape, spec.dtype, spec.vocab) == (
        "tokens", (DEFAULT_DIM,), "int32", 77)
    batches = list(random_batches([spec], samples=100, batch_size=64, seed=0))
    assert [b[0].shape for b in batches] == [(64, DEFAULT_DIM), (36, DEFAULT_DIM)]
    values = np.concatenate([b[0] for b in batches])
    assert values.min() >= 0 and values.max() < 77


def test_embedding_inside_a_nested_sequential_is_found() -> None:
    inner = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(9, 2)])
    tokens = keras.Input((5,), dtype="int32", name="ids")
    model = keras.Model(tokens, inner(tokens))
    assert KerasModel(model).input_specs()[0].vocab == 9


def test_integer_input_without_embedding_asks_for_real_inputs() -> None:
    ids = keras.Input((3,), dtype="int32", name="ids")
    model = keras.Model(ids, keras.layers.Dense(1)(keras.ops.cast(ids, "float32")))
    with pytest.raises(AuditError, match="input 'ids' is int32 but feeds no Embedding"):
        KerasModel(model).input_specs()


def test_batches_are_reproducible_per_seed() -> None:
    spec = KerasModel(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])).input_specs()
    first = next(random_batches(spec, 8, 8, seed=1))[0]
    again = next(random_batches(spec, 8, 8, seed=1))[0]
    other = next(random_batches(spec, 8, 8, seed=2))[0]
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.dtype == np.float32

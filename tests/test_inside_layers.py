"""Layers inside wrappers and custom layer classes, and activations inside a custom call.

Ground truth is built in: a bias of -100 keeps a ReLU unit inactive on every
input, and each faulty model has a healthy twin (bias 0) that must stay clean.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

import gradaudit

DEAD = -100.0


class Block(keras.layers.Layer):
    """ops.relu(x @ w + b): an activation no ``activation`` attribute shows."""

    def __init__(self, units: int = 16, dead: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units, self.dead = units, dead

    def build(self, input_shape: Any) -> None:
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")
        bias = np.r_[np.full(self.dead, DEAD), np.zeros(self.units - self.dead)]
        self.b = self.add_weight(shape=(self.units,), name="b",
                                 initializer=keras.initializers.Constant(bias))

    def call(self, x: Any) -> Any:
        return ops.relu(x @ self.w + self.b)


class Stack(keras.layers.Layer):
    """A Dense sublayer, then two activations of its own: relu and tanh."""

    def __init__(self, bias: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner = keras.layers.Dense(8, activation="relu", name="inner",
                                        bias_initializer=keras.initializers.Constant(bias))

    def call(self, x: Any) -> Any:
        return ops.tanh(ops.relu(self.inner(x) - 0.5))


def _findings(model: keras.Model) -> set[tuple[str, str, str]]:
    return {(f.code, str(f.severity), f.layer) for f in gradaudit.audit(model).findings}


def _time_distributed(bias: float) -> keras.Model:
    inputs = keras.Input((5, 4))
    dense = keras.layers.Dense(6, activation="relu", name="inner",
                               bias_initializer=keras.initializers.Constant(bias))
    hidden = keras.layers.TimeDistributed(dense, name="td")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden))


def test_a_dead_layer_inside_timedistributed_is_judged_like_an_unwrapped_one() -> None:
    assert _findings(_time_distributed(DEAD)) == {
        ("GA102", "error", "td/inner"), ("GA202", "error", "td/inner"),
        ("GA202", "error", "out")}
    assert _findings(_time_distributed(0.0)) == set()


def _with_block(dead: int) -> keras.Model:
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(Block(dead=dead,
                                                                         name="block")(inputs)))


def test_a_relu_inside_a_custom_call_is_judged_on_the_layer_with_its_op() -> None:
    report = gradaudit.audit(_with_block(dead=12))
    (finding,) = report.findings
    assert (finding.code, finding.layer, finding.metrics["op"]) == ("GA101", "block", "Relu")
    assert finding.metrics["dead_units"] == 12 and finding.metrics["units"] == 16
    row = next(row for row in report.layers if row.name == "block")
    assert (row.activation, row.units, row.dead_units) == ("relu", 16, 12)
    assert _findings(_with_block(dead=0)) == set()


def _with_stack(bias: float) -> keras.Model:
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(Stack(bias, name="stack")(inputs)))


def test_a_custom_layers_sublayer_and_each_of_its_own_activations_are_judged() -> None:
    report = gradaudit.audit(_with_stack(DEAD))
    names = [row.name for row in report.layers]
    assert names == ["stack", "stack/Relu", "stack/Tanh", "stack/inner", "out"]
    found = {(f.code, f.layer, f.metrics.get("op")) for f in report.findings}
    assert ("GA102", "stack/inner", None) in found
    assert ("GA102", "stack/Relu", "Relu") in found  # fed only by the dead sublayer
    assert _findings(_with_stack(0.0)) == set()

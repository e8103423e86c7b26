"""A user's own Keras code, as ``--import`` loads it: a registered layer and function.

The tests copy this file to a temporary directory under the module name they
want (``mylayers.py``, ``corpus_layers.py``): the registered names follow the
module's name (``mylayers>Block``), so two copies never take each other's
place in Keras's registry. ``model(dead)`` builds the model they save with it.

``Block`` computes ``relu(x @ w + b)`` in its own ``call``, with the bias of its
first ``dead`` units at -100: on standard-normal inputs those units never fire,
while the others (bias 0) fire on about half of the samples. With 12 of 16
dead that is GA101 on ``block``; with none the model is healthy.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package=__name__)
class Block(keras.layers.Layer):
    """``relu(x @ w + b)``, the first ``dead`` of ``units`` biased to -100."""

    def __init__(self, units: int = 16, dead: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units, self.dead = units, dead

    def build(self, input_shape: Any) -> None:
        bias = [-100.0] * self.dead + [0.0] * (self.units - self.dead)
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w",
                                 initializer="glorot_uniform")
        self.b = self.add_weight(shape=(self.units,), name="b",
                                 initializer=keras.initializers.Constant(bias))

    def call(self, x: Any) -> Any:
        return ops.relu(ops.matmul(x, self.w) + self.b)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "dead": self.dead}


@keras.saving.register_keras_serializable(package=__name__)
def halve(x: Any) -> Any:
    """A registered activation (Keras writes its module as 'builtins')."""
    return x * 0.5


def model(dead: int) -> keras.Model:
    """features [8] → block (16 units, ``dead`` of them dead) → out [1], seeded."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="features")
    outputs = keras.layers.Dense(1, activation=halve, name="out")(
        Block(16, dead, name="block")(inputs))
    return keras.Model(inputs, outputs, name=f"user_block_{dead}")



@keras.saving.register_keras_serializable(package=__name__)
class Branchy(keras.Model):
    """A subclassed model: ``hidden`` (ReLU, bias ``bias``: -100 kills every unit) and a
    ``side`` branch through ``stop_gradient`` (GA201), both into ``out``."""

    def __init__(self, bias: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bias = bias
        self.hidden = keras.layers.Dense(8, activation="relu", name="hidden",
                                         bias_initializer=keras.initializers.Constant(bias))
        self.side = keras.layers.Dense(4, name="side")
        self.out = keras.layers.Dense(1, name="out")

    def call(self, x: Any) -> Any:
        return self.out(ops.concatenate([self.hidden(x), ops.stop_gradient(self.side(x))],
                                        axis=-1))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bias": self.bias}


@keras.saving.register_keras_serializable(package=__name__)
class Scaled(keras.Model):
    """``out(x) * scale``: ``scale`` is the model's own variable, owned by none of its layers."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.out = keras.layers.Dense(3, name="out")
        self.scale = self.add_weight(shape=(3,), name="scale", initializer="ones")

    def call(self, x: Any) -> Any:
        return self.out(x) * self.scale


def subclassed(model: keras.Model, built: bool) -> keras.Model:
    """``model``, called once on 5 features when ``built`` (its file then has a build
    config and weights), else as constructed (its file has neither)."""
    if built:
        model(ops.zeros((1, 5)))
    return model

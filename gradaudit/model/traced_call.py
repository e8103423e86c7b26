"""Activations applied inside a custom layer's ``call``, found by tracing it.

``ops.relu(x @ w + b)`` in a user's layer class leaves no ``activation``
attribute to read. Tracing the layer's ``call`` to a graph shows its ReLU,
ReLU6, sigmoid and tanh ops, as a SavedModel's graph does. Only the layer's
*own* ops count: those of its sublayers sit under the sublayer's name scope
(``inner/Relu``) and are judged on the sublayer. During the probe the call is
traced again on the batch's real inputs, and the same ops, in the same order,
hand back their outputs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

from gradaudit.model.interface import Tensor
from gradaudit.model.rules import ACTIVATION_OPS, UnitRule


@dataclass(frozen=True)
class CallActivation:
    """One activation op of a layer's own call: its op name (``Relu_1``) and rule."""

    op: str
    activation: str
    rule: UnitRule


class TracedCall:
    """A custom layer's own activation ops, and a way to fetch their outputs."""

    def __init__(self, layer: Any, sublayers: Sequence[str]) -> None:
        self._call = type(layer).call.__get__(layer)  # never a probe's recording wrapper
        self._scopes = [re.compile(re.escape(name) + r"(_\d+)?") for name in sublayers]
        self._fetch = tf.function(self._own_outputs, autograph=False)  # writes no temp files
        self._traced_ops: list[tuple[str, str]] = []  # (name, type), set while tracing
        self.activations = self._discover(layer)

    def fetch(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Tensor]:
        """The outputs of :attr:`activations` for one call's arguments."""
        return list(self._fetch(args, kwargs))

    def _discover(self, layer: Any) -> tuple[CallActivation, ...]:
        """Trace the call on the input specs of the layer's first use in the graph."""
        nodes = getattr(layer, "_inbound_nodes", None)
        if not nodes:
            return ()
        arguments = nodes[0].arguments
        args = keras.tree.map_structure(_spec, arguments.args)
        kwargs = keras.tree.map_structure(_spec, arguments.kwargs)
        try:
            self._fetch.get_concrete_function(args, kwargs)
        except Exception:  # a call that cannot be traced is judged as before: not at all
            return ()
        return tuple(CallActivation(name, *ACTIVATION_OPS[op_type])
                     for name, op_type in self._traced_ops)

    def _own_outputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Tensor]:
        graph = tf.compat.v1.get_default_graph()
        before = len(graph.get_operations())
        self._call(*args, **kwargs)
        own = [op for op in graph.get_operations()[before:]
               if op.type in ACTIVATION_OPS and self._own(op.name)]
        self._traced_ops = [(op.name, op.type) for op in own]
        return [op.outputs[0] for op in own]

    def _own(self, op_name: str) -> bool:
        """Not inside a sublayer's name scope (``inner/Relu``, ``inner_1/Relu``)."""
        scope = op_name.split("/")[0] if "/" in op_name else None
        return scope is None or not any(pattern.fullmatch(scope) for pattern in self._scopes)


def _spec(value: Any) -> Any:
    if keras.utils.is_keras_tensor(value):
        return tf.TensorSpec(value.shape, value.dtype)
    return value

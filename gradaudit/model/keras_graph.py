"""A Keras model as an :class:`~gradaudit.model.interface.AuditedModel`: its layers at
any depth, their activations, which variables they own, its inputs, and where
its graph cuts gradient paths.

Layer names are qualified relative to the audited model: a layer ``enc_dead``
inside a nested model ``encoder`` is ``encoder/enc_dead``. We descend into what
the person who built the model put together: nested *models* (functional,
Sequential, subclassed), wrappers (``TimeDistributed``, ``Bidirectional``: ``td/dense``)
and the sublayers of their own layer classes (``block/inner``), but not into the
internals of a Keras layer (an LSTM's cell, a MultiHeadAttention's
projections): those are one layer to them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import keras

from gradaudit.errors import AuditError
from gradaudit.model.interface import LayerInfo, RunResult, Tensor, Variable
from gradaudit.model.rules import (
    NON_DIFFERENTIABLE_OPS,
    RELU_FAMILY,
    SATURATING,
    UnitRule,
    snake,
)
from gradaudit.model.specs import DEFAULT_DIM, InputSpec
from gradaudit.model.traced_call import TracedCall

KERAS_MODULES = ("keras.", "tf_keras.")


@dataclass(frozen=True)
class _Placed:
    """A Keras layer, the models that enclose it (from the audited one down), and
    the layer of the innermost model's graph that holds it (itself, or the wrapper
    or custom layer it sits in): where a search of the graph starts."""

    layer: Any
    owners: tuple[Any, ...]
    anchor: Any


class KerasModel:
    """A ``keras.Model`` (functional, Sequential or nested) as the probe sees it."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._placed: dict[str, _Placed] = {}
        self._traced: dict[str, tuple[TracedCall, int]] = {}  # name → (its layer's call, op index)
        layers: list[LayerInfo] = []
        self._collect(model, prefix="", owners=(model,), anchor=None, frozen_by=None, out=layers)
        self._layers = tuple(layers)
        # Depth order puts a layer before what it holds: the innermost holder wins,
        # and a custom layer keeps the variables it creates itself.
        self._owner_of = {id(v): info.name for info in self._layers for v in info.weights}

    @property
    def name(self) -> str:
        return str(self.model.name)

    @property
    def layers(self) -> tuple[LayerInfo, ...]:
        return self._layers

    @property
    def weights(self) -> list[Variable]:
        return list(self.model.weights)

    @property
    def trainable_variables(self) -> list[Variable]:
        return list(self.model.trainable_variables)

    @property
    def state_variables(self) -> list[Variable]:
        return list(self.model.non_trainable_variables)

    @property
    def notes(self) -> tuple[str, ...]:
        return ()

    @property
    def prefers_tracing(self) -> bool:
        """Trace the probe step with ``tf.function`` only for recurrent models.

        Measured (benchmarks/README.md): an eager RNN loop costs 2-3x a traced
        step, while for feed-forward models tracing costs as much as it saves over
        the few batches of a probe (or more, for small models).
        """
        recurrent = (keras.layers.RNN, keras.layers.Bidirectional)
        return any(isinstance(p.layer, recurrent) for p in self._placed.values())

    def input_specs(self, synthesise: bool = True) -> list[InputSpec]:
        """Read the model's inputs; AuditError if they cannot be synthesised.

        With ``synthesise=False`` (the user supplies the inputs) inputs that random
        data cannot fill, such as integer inputs without an Embedding, are accepted.
        """
        tensors = getattr(self.model, "inputs", None)
        if not tensors:
            raise AuditError(
                "the model does not record its input shapes (a subclassed model "
                "that was never built?); random inputs cannot be made for it"
            )
        return [_input_spec(tensor, synthesise) for tensor in tensors]

    def run(self, inputs: list[Tensor], *, training: bool,
            watched: Sequence[LayerInfo]) -> RunResult:
        activations: dict[str, list[Tensor]] = {}
        calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {}
        with self._capturing(watched, activations, calls):
            outputs = self.model(_structured(self.model, inputs), training=training)
        for name, arguments in calls.items():  # after the capture: the trace calls sublayers
            traced, index = self._traced[name]
            for args, kwargs in arguments:
                activations.setdefault(name, []).append(traced.fetch(args, kwargs)[index])
        return RunResult(outputs=keras.tree.flatten(outputs), activations=activations)

    def owner_of(self, variable: Variable) -> str | None:
        return self._owner_of.get(id(variable))

    def cut_of(self, layer: LayerInfo) -> str | None:
        """The first operations after the layer through which no gradient passes.

        Walks the Keras functional graph from the layer towards the outputs of its
        model, and on through enclosing models. Returns ``None`` when no graph is
        recorded (subclassed models) or no cutting operation is found.
        """
        placed = self._placed[layer.name]
        starts = [t for node in placed.anchor._inbound_nodes for t in node.output_tensors]
        return _cut_through(list(placed.owners), starts)

    def input_cut(self, index: int) -> str | None:
        inputs = getattr(self.model, "inputs", None) or []
        return _cut_through([self.model], [inputs[index]]) if index < len(inputs) else None

    def _collect(self, parent: Any, prefix: str, owners: tuple[Any, ...], anchor: Any,
                 frozen_by: str | None, out: list[LayerInfo]) -> None:
        for layer in _sublayers(parent):
            name = prefix + layer.name
            activation, rule = activation_of(layer)
            frozen = frozen_by or (name if is_frozen(layer) else None)
            children = _sublayers(layer)
            self._placed[name] = _Placed(layer, owners, anchor or layer)
            info = LayerInfo(
                name=name, type=type(layer).__name__, activation=activation, unit_rule=rule,
                depth_index=len(out), weights=tuple(layer.weights),
                trainable_weights=tuple(layer.trainable_weights), trainable=bool(layer.trainable),
                children=tuple(f"{name}/{child.name}" for child in children), frozen_by=frozen,
            )
            if rule is None and not _is_keras(layer):
                self._watch_call(layer, info, [child.name for child in children], out)
            else:
                out.append(info)
            if isinstance(layer, keras.Model):
                self._collect(layer, name + "/", (*owners, layer), None, frozen, out)
            elif children:
                self._collect(layer, name + "/", owners, anchor or layer, frozen, out)

    def _watch_call(self, layer: Any, info: LayerInfo, sublayers: list[str],
                    out: list[LayerInfo]) -> None:
        """Add ``info`` to ``out``, judged on the activation its own call applies, if one;
        with several, each is an entry of its own after it (``block/Relu_1``)."""
        traced = TracedCall(layer, sublayers)
        found = traced.activations
        if len(found) == 1:
            info = replace(info, activation=found[0].activation, unit_rule=found[0].rule,
                           op=found[0].op)
            self._traced[info.name] = (traced, 0)
        out.append(info)
        if len(found) > 1:
            for index, call in enumerate(found):
                name = f"{info.name}/{call.op}"
                out.append(LayerInfo(
                    name=name, type=call.op, activation=call.activation, unit_rule=call.rule,
                    depth_index=len(out), weights=(), trainable_weights=(),
                    trainable=info.trainable, frozen_by=info.frozen_by, op=call.op))
                self._placed[name] = self._placed[info.name]
                self._traced[name] = (traced, index)

    @contextlib.contextmanager
    def _capturing(self, watched: Sequence[LayerInfo], captured: dict[str, list[Tensor]],
                   calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]],
                   ) -> Iterator[None]:
        """Wrap each watched layer's ``call`` so its outputs land in ``captured`` (or, for
        activations inside a custom layer's call, its arguments in ``calls``); undo on exit."""
        wrapped = []
        try:
            for info in watched:
                layer = self._placed[info.name].layer
                if info.name in self._traced:
                    arguments = calls.setdefault(info.name, [])
                    previous = vars(layer).get("call", layer.call)
                    object.__setattr__(layer, "call", _arguments(previous, arguments))
                elif "call" not in vars(layer):
                    sink = captured.setdefault(info.name, [])
                    object.__setattr__(layer, "call", _recording(layer.call, sink))
                else:
                    continue
                if layer not in wrapped:
                    wrapped.append(layer)
            yield
        finally:
            for layer in wrapped:
                object.__delattr__(layer, "call")

    def output_layer(self, index: int) -> str:
        """The layer whose call returns the ``index``-th output, inside a nested model
        that returns it (``encoder/out``); ``output_<index>`` if no outputs are recorded."""
        outputs, prefix = getattr(self.model, "outputs", None) or [], ""
        if index >= len(outputs):
            return f"output_{index}"
        operation, _, position = outputs[index]._keras_history  # Keras 2's has 3 fields too
        while isinstance(operation, keras.Model) and getattr(operation, "outputs", None):
            prefix += f"{operation.name}/"
            operation, _, position = operation.outputs[position]._keras_history
        return prefix + str(operation.name)


def _sublayers(layer: Any) -> list[Any]:
    """The layers a model, a wrapper or a user's own layer class is made of.

    A Keras layer's own parts (an LSTM's cell …) are not listed: they are that layer.
    """
    if isinstance(layer, keras.Model):
        return [child for child in layer.layers
                if not isinstance(child, keras.layers.InputLayer)]
    wrapper = isinstance(layer, (keras.layers.Wrapper, keras.layers.Bidirectional))
    if wrapper or not _is_keras(layer):
        return list(layer._flatten_layers(include_self=False, recursive=False))
    return []


def _is_keras(layer: Any) -> bool:
    """A class of Keras's own, not one the model's author wrote."""
    return type(layer).__module__.startswith(KERAS_MODULES)


def _arguments(call: Any, sink: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> Any:
    def recorded(*args: Any, **kwargs: Any) -> Any:
        sink.append((args, kwargs))
        return call(*args, **kwargs)

    return recorded


def _recording(call: Any, sink: list[Tensor]) -> Any:
    def recorded(*args: Any, **kwargs: Any) -> Any:
        output = call(*args, **kwargs)
        sink.append(output)
        return output

    return recorded


def _structured(model: Any, tensors: list[Tensor]) -> Any:
    """Arrange input tensors the way the model's inputs were declared (list, dict …)."""
    structure = getattr(model, "_inputs_struct", None)
    if structure is not None:
        return keras.tree.pack_sequence_as(structure, tensors)
    return tensors if len(tensors) > 1 else tensors[0]


def is_frozen(layer: Any) -> bool:
    """Has weights and none of them will be trained (``trainable=False``)."""
    return not layer.trainable and bool(layer.weights)


def activation_of(layer: Any) -> tuple[str | None, UnitRule | None]:
    """The activation a layer applies last, and how to judge its units.

    Only layers whose output *is* the activation's output get a rule: Dense,
    convolutions, Activation and ReLU layers. Recurrent layers also carry an
    ``activation`` attribute, but their output is not that function's output.
    """
    if isinstance(layer, keras.layers.ReLU):
        if layer.negative_slope:
            return "leaky_relu", None
        high = math.inf if layer.max_value is None else float(layer.max_value)
        name = "relu6" if high == 6.0 else "relu"
        return name, UnitRule("relu", 0.0, high)
    function = getattr(layer, "activation", None)
    if not callable(function) or isinstance(layer, keras.layers.RNN):
        return None, None
    name = getattr(function, "__name__", None) or type(function).__name__
    if name in RELU_FAMILY:
        return name, UnitRule("relu", 0.0, RELU_FAMILY[name])
    if name in SATURATING:
        low, high = SATURATING[name]
        return name, UnitRule("saturating", low, high)
    return name, None


# --- inputs -------------------------------------------------------------------

def _input_spec(tensor: Any, synthesise: bool) -> InputSpec:
    name = _input_name(tensor)
    shape = tuple(DEFAULT_DIM if d is None else int(d) for d in tensor.shape[1:])
    dtype = str(tensor.dtype)
    vocab = None
    if "int" in dtype:
        vocab = _embedding_vocab(tensor)
        if vocab is None and synthesise:
            raise AuditError(
                f"input '{name}' is {dtype} but feeds no Embedding layer, so "
                "its valid value range is unknown; audit with real inputs (--inputs FILE)"
            )
    elif "float" not in dtype and synthesise:
        raise AuditError(
            f"input '{name}' has dtype {dtype}, which gradaudit cannot "
            "synthesise; audit with real inputs (--inputs FILE)"
        )
    declared = tuple(None if d is None else int(d) for d in tensor.shape[1:])
    return InputSpec(name=name, shape=shape, dtype=dtype, vocab=vocab, declared=declared)


def _input_name(tensor: Any) -> str:
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return getattr(operation, "name", None) or str(getattr(tensor, "name", "input"))


def _embedding_vocab(tensor: Any) -> int | None:
    """``input_dim`` of the Embedding layer(s) that read ``tensor`` directly.

    Looks through nested models too: a Sequential whose first layer is an
    Embedding consumes its input through that layer. With several consumers
    the smallest vocabulary keeps every id valid for all of them.
    """
    vocabs: list[int] = []
    frontier = [tensor]
    while frontier:
        current = frontier.pop()
        operation = current._keras_history.operation
        for node in operation._outbound_nodes:
            if not any(t is current for t in node.input_tensors):
                continue
            consumer = node.operation
            if isinstance(consumer, keras.layers.Embedding):
                vocabs.append(int(consumer.input_dim))
            elif isinstance(consumer, keras.Model) and getattr(consumer, "inputs", None):
                frontier.extend(consumer.inputs)
    return min(vocabs) if vocabs else None


# --- where the graph cuts gradient paths ------------------------------------

def _cut_through(owners: list[Any], starts: list[Any]) -> str | None:
    cuts: list[str] = []
    while owners:
        model = owners.pop()
        outputs = getattr(model, "outputs", None)
        if not outputs or not starts:
            break
        found, reached_output = _walk_graph(starts, {id(t) for t in outputs})
        cuts.extend(c for c in found if c not in cuts)
        if not reached_output:
            break
        starts = [t for node in model._inbound_nodes for t in node.output_tensors]
    return ", ".join(cuts) if cuts else None


def _walk_graph(starts: list[Any], output_ids: set[int]) -> tuple[list[str], bool]:
    """Breadth-first from ``starts``; stop a path at its first cutting operation."""
    cuts: list[str] = []
    reached_output = False
    frontier = list(starts)
    seen: set[int] = set()
    while frontier:
        tensor = frontier.pop(0)
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if id(tensor) in output_ids:
            reached_output = True
        history = getattr(tensor, "_keras_history", None)
        if history is None or history.operation is None:
            continue
        for node in history.operation._outbound_nodes:
            if not any(t is tensor for t in node.input_tensors):
                continue
            cut = _cut_name(node, tensor)
            if cut:
                if cut not in cuts:
                    cuts.append(cut)
            else:
                frontier.extend(node.output_tensors)
    return cuts, reached_output


def _cut_name(node: Any, tensor: Any) -> str | None:
    op_type = type(node.operation).__name__
    if op_type in NON_DIFFERENTIABLE_OPS:
        return snake(op_type)
    if op_type == "Where" and node.input_tensors and node.input_tensors[0] is tensor:
        return "where (condition)"
    dtypes = [str(t.dtype) for t in node.output_tensors]
    if dtypes and not any(_is_float(d) for d in dtypes):
        return f"cast to {dtypes[0]}" if op_type == "Cast" else snake(op_type)
    return None


def _is_float(dtype: str) -> bool:
    return "float" in dtype or "complex" in dtype

"""A Keras model as an :class:`~gradaudit.model.interface.AuditedModel`: its layers at
any depth, their activations, which variables they own, its inputs, and where
its graph cuts gradient paths.

The same code reads Keras 3 models (``keras``) and Keras 2 models (``tf_keras``,
for files Keras 3 cannot rebuild): their layer classes are looked up in the
package the model was built with, and the few attributes that differ (a graph
node's layer is ``operation`` in Keras 3, ``layer`` in Keras 2) are read by name.

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
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import keras

from gradaudit.errors import AuditError
from gradaudit.model.interface import LayerGraph, LayerInfo, RunResult, Tensor, Variable
from gradaudit.model.rules import (
    NON_DIFFERENTIABLE_OPS,
    RELU_FAMILY,
    SATURATING,
    UnitRule,
    snake,
)
from gradaudit.model.specs import (
    InputShapes,
    InputSpec,
    check_shape_names,
    resolve_shape,
)
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

    def __init__(self, model: Any, notes: tuple[str, ...] = ()) -> None:
        self.model = model
        self.k = keras_package(model)
        self.notes = notes
        self._input_keys: list[str] = []  # a subclassed model called with a dict
        self._collect_layers()

    def _collect_layers(self) -> None:
        """The layers at any depth and the variables each owns, as the model holds them now."""
        self._placed: dict[str, _Placed] = {}
        self._traced: dict[str, tuple[TracedCall, int]] = {}  # name → (its layer's call, op index)
        layers: list[LayerInfo] = []
        self._collect(self.model, prefix="", owners=(self.model,), anchor=None, frozen_by=None,
                      out=layers)
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
    def prefers_tracing(self) -> bool:
        """Trace the probe step with ``tf.function`` only for recurrent models.

        Measured (benchmarks/README.md): an eager RNN loop costs 2-3x a traced
        step, while for feed-forward models tracing costs as much as it saves over
        the few batches of a probe (or more, for small models).
        """
        recurrent = (self.k.layers.RNN, self.k.layers.Bidirectional)
        return any(isinstance(p.layer, recurrent) for p in self._placed.values())

    def input_specs(self, synthesise: bool = True, shapes: InputShapes = ()) -> list[InputSpec]:
        """Read the model's inputs; AuditError if they cannot be synthesised.

        A functional model records its input tensors; a subclassed one only the
        shapes it was built with (its build config), whose first axis is the batch.
        With ``synthesise=False`` (the user supplies the inputs) inputs that random
        data cannot fill, such as integer inputs without an Embedding, are accepted.
        """
        tensors = getattr(self.model, "inputs", None)
        if tensors:
            names = [_input_name(tensor) for tensor in tensors]
            check_shape_names(shapes, names)
            stateful = self._stateful
            return [replace(_input_spec(self.k, tensor, synthesise, shapes, names),
                            batch=_fixed_axis(tensor) if stateful else None)
                    for tensor in tensors]
        built = self._built_shapes()
        names = list(built) or ["input"]
        check_shape_names(shapes, names)
        dtype = dtype_name(getattr(self.model, "input_dtype", None) or "float32")
        specs = [InputSpec(name=name, shape=resolve_shape(name, built.get(name), shapes, names),
                           dtype=dtype, declared=built.get(name) or ())
                 for name in names]
        if not self.model.built:
            self._build(specs[0])
        return specs

    def _build(self, spec: InputSpec) -> None:
        """Build a subclassed model saved before it was built, from ``--input-shape``, and
        collect its layers again: before, they had no variables to own, and every
        gradient the probe measured would have belonged to no layer."""
        import numpy as np

        self.model(np.zeros((1, *spec.shape), spec.dtype), training=False)
        self._collect_layers()
        self.notes += (
            f"built with input shape {list(spec.shape)} (--input-shape) before its variables "
            "were read: it had never been built, so its weights are Keras's initial values "
            "(a file saved unbuilt holds none)",)

    @property
    def _stateful(self) -> bool:
        """A layer keeps a state per sample between calls (``stateful=True``): the batch
        size the model declares is the only one it runs with."""
        return any(getattr(p.layer, "stateful", False) is True for p in self._placed.values())

    def _built_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """Input name → shape without the batch axis, from a subclassed model's build config."""
        config = self.model.get_build_config() if hasattr(self.model, "get_build_config") else None
        shape = (config or {}).get("input_shape")
        if isinstance(shape, dict):
            self._input_keys = list(shape)
            return {str(key): _tail(value) for key, value in shape.items()}
        return {"input": _tail(shape)} if isinstance(shape, (list, tuple)) else {}

    def run(self, inputs: list[Tensor], *, training: bool,
            watched: Sequence[LayerInfo]) -> RunResult:
        activations: dict[str, list[Tensor]] = {}
        calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {}
        arranged = (dict(zip(self._input_keys, inputs, strict=True)) if self._input_keys
                    else _structured(self.model, inputs))
        with self._capturing(watched, activations, calls):
            outputs = self.model(arranged, training=training)
        for name, arguments in calls.items():  # after the capture: the trace calls sublayers
            traced, index = self._traced[name]
            for args, kwargs in arguments:
                activations.setdefault(name, []).append(traced.fetch(args, kwargs)[index])
        return RunResult(outputs=keras.tree.flatten(outputs), activations=activations)

    def output_elements(self, specs: Sequence[InputSpec]) -> int | None:
        """Every graph layer's recorded outputs, per sample, in a functional model whose
        inputs are as declared (fully known); None otherwise. A nested model counts
        through its own layers; what a wrapper or custom layer computes inside is
        counted as its output."""
        if not getattr(self.model, "inputs", None) or any(
                spec.shape != spec.declared for spec in specs):
            return None
        return _graph_output_elements(self.k, self.model)

    def owner_of(self, variable: Variable) -> str | None:
        return self._owner_of.get(id(variable))

    def cut_of(self, layer: LayerInfo) -> str | None:
        """The first operations after the layer through which no gradient passes.

        Walks the Keras functional graph from the layer towards the outputs of its
        model, and on through enclosing models. Where an enclosing model records no
        graph (a subclassed model) and none was found before it, the cut is in that
        model's call, and is named so; ``None`` when no cutting operation is found.
        """
        placed = self._placed[layer.name]
        starts = [t for node in placed.anchor._inbound_nodes for t in _tensors(node.output_tensors)]
        return _cut_through(list(placed.owners), starts) or self._in_blind_call(placed.owners)

    def _in_blind_call(self, owners: tuple[Any, ...]) -> str | None:
        """The call of the innermost enclosing model that records no graph (a subclassed
        model), where :func:`_cut_through` stopped: a cut it did not see is in there."""
        blind = next((m for m in reversed(owners) if not getattr(m, "outputs", None)), None)
        if blind is None:
            return None
        name = next((n for n, p in self._placed.items() if p.layer is blind), self.name)
        return f"an operation in {name}'s call (a subclassed model records no graph of it)"

    def input_cut(self, index: int) -> str | None:
        inputs = getattr(self.model, "inputs", None) or []
        return _cut_through([self.model], [inputs[index]]) if index < len(inputs) else None

    def _collect(self, parent: Any, prefix: str, owners: tuple[Any, ...], anchor: Any,
                 frozen_by: str | None, out: list[LayerInfo]) -> None:
        for layer in _sublayers(self.k, parent):
            name = prefix + layer.name
            activation, rule = activation_of(self.k, layer)
            frozen = frozen_by or (name if is_frozen(layer) else None)
            children = _sublayers(self.k, layer)
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
            if isinstance(layer, self.k.Model):
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

    def layer_graph(self) -> LayerGraph:
        """Which layer feeds which, read from the functional graphs (a Sequential's layer
        order) of the model and every nested model; Keras operations that are no layer
        (``keras.ops.stop_gradient``) are looked through. A nested model's name feeds its
        first layers and its output layers feed what it feeds, and so does a Keras wrapper
        (``TimeDistributed``, ``Bidirectional``: its output is its layers'); a custom layer
        feeds the layers (and activation ops) inside it, which feed what it feeds, and
        still feeds that itself (its call may compute more). A shared layer is one name
        with the edges of all its calls."""
        feeds: dict[str, list[str]] = {name: [] for name in self._placed}
        names = {id(p.layer): n for n, p in reversed(self._placed.items())}
        exits: dict[str, list[str]] = {}  # a nested model → its output layers
        first = set(names.values())  # a shared nested model is read once
        for model, prefix in [(self.model, "")] + [
                (p.layer, n) for n, p in self._placed.items()
                if isinstance(p.layer, self.k.Model) and n in first]:
            exits[prefix] = _model_edges(self.k, model, prefix, names, feeds)
        wrapper = (self.k.layers.Wrapper, self.k.layers.Bidirectional)
        exits.update({info.name: list(info.children) for info in self._layers
                      if isinstance(self._placed[info.name].layer, wrapper)})
        for name, placed in self._placed.items():  # outer first: exits see outer successors
            if name in exits:
                inside = [s for s in feeds[name] if s.startswith(name + "/")]
                onward, feeds[name] = [s for s in feeds[name] if s not in inside], inside
                for inner in exits[name] or [name]:
                    feeds[inner] += onward
                if exits[name]:
                    continue
            holder = names.get(id(placed.anchor))
            if holder is not None and holder != name:
                feeds[name] += [s for s in feeds[holder] if not s.startswith(holder + "/")]
                feeds[holder].append(name)
        return {name: tuple(dict.fromkeys(targets)) for name, targets in feeds.items()}

    def output_layer(self, index: int) -> str:
        """The layer whose call returns the ``index``-th output, inside a nested model
        that returns it (``encoder/out``); ``output_<index>`` if no outputs are recorded."""
        outputs, prefix = getattr(self.model, "outputs", None) or [], ""
        if index >= len(outputs):
            return f"output_{index}"
        operation, _, position = outputs[index]._keras_history  # Keras 2's has 3 fields too
        while isinstance(operation, self.k.Model) and getattr(operation, "outputs", None):
            prefix += f"{operation.name}/"
            operation, _, position = operation.outputs[position]._keras_history
        return prefix + str(operation.name)


# What a layer keeps for its gradient beyond its outputs, per sample, in copies of
# the tensor named. Measured on this project's machine (slope of peak RSS over the
# batch, TensorFlow 2.21, CPU, traced step): an LSTM of 256 units holds 6.3 to 11
# copies of units × steps per sample (500 steps, 64 features in; 400 steps, 32 in;
# the traced step's allocations vary from run to run), a MultiHeadAttention of 8
# heads over 256 positions 4.4 to 6.3 copies of its scores (heads × queries ×
# keys). The estimate multiplies these by TAPE_FACTOR (2, probe/memory.py): 6 and 4
# copies here cover what was measured.
RECURRENT_STEP_COPIES = {"LSTM": 6, "GRU": 5, "SimpleRNN": 2, "ConvLSTM1D": 6,
                         "ConvLSTM2D": 6, "ConvLSTM3D": 6}
"""Per time step, copies of one step's output a recurrent layer keeps (its gates)."""
ATTENTION_SCORE_COPIES = 4
"""Copies of the attention scores (logits, softmax, their gradients) kept per sample."""
ATTENTION_LAYERS = frozenset({"MultiHeadAttention", "GroupedQueryAttention", "Attention",
                              "AdditiveAttention"})


def _model_edges(k: Any, model: Any, prefix: str, names: dict[int, str],
                 feeds: dict[str, list[str]]) -> list[str]:
    """Add the edges between ``model``'s own layers to ``feeds`` (its inputs are
    ``prefix``, the nested model's own name; nothing for the audited one) and give the
    layers that compute its outputs."""
    members = {id(layer) for layer in model.layers}

    def sources(tensor: Any, seen: set[int]) -> list[str]:
        """The layers of ``model`` whose outputs flow into ``tensor``, through operations
        that are no layer; ``prefix`` for the model's inputs."""
        if id(tensor) in seen:
            return []
        seen.add(id(tensor))
        history = getattr(tensor, "_keras_history", None)
        operation = _producer(history)
        if operation is None or isinstance(operation, k.layers.InputLayer):
            return [prefix] if prefix else []
        if id(operation) in members:
            return [names[id(operation)]] if id(operation) in names else []
        nodes = getattr(operation, "_inbound_nodes", [])
        index = getattr(history, "node_index", 0)
        if not isinstance(index, int) or index >= len(nodes):
            return []
        return [s for t in _tensors(nodes[index].input_tensors) for s in sources(t, seen)]

    if isinstance(model, k.Sequential):
        chain = [names[id(layer)] for layer in _sublayers(k, model) if id(layer) in names]
        for before, after in zip([prefix, *chain], chain, strict=False):
            if before:
                feeds[before].append(after)
        return chain[-1:]
    if not getattr(model, "outputs", None):
        return []  # a subclassed model: its call records no graph, nothing is linked
    for layer in _sublayers(k, model):
        name = names.get(id(layer))
        if name is None:
            continue
        nodes = getattr(layer, "_inbound_nodes", None) or getattr(layer, "inbound_nodes", [])
        for node in nodes:
            for source in dict.fromkeys(s for t in _tensors(node.input_tensors)
                                        for s in sources(t, set())):
                feeds[source].append(name)
    return list(dict.fromkeys(s for t in model.outputs for s in sources(t, set())
                              if s != prefix))


def _graph_output_elements(k: Any, model: Any) -> int | None:
    """Per-sample values of the outputs of every node of ``model``'s graph, nested
    models' graphs included, and what recurrent and attention layers keep inside;
    None if a shape beyond the batch axis is unknown."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, k.Model) and getattr(layer, "inputs", None):
            inner = _graph_output_elements(k, layer)
            if inner is None:
                return None
            total += inner
            continue
        nodes = getattr(layer, "_inbound_nodes", None) or getattr(layer, "inbound_nodes", [])
        for node in nodes:
            outputs = _known_shapes(getattr(node, "output_tensors", None))
            inputs = _known_shapes(getattr(node, "input_tensors", None))
            if outputs is None or inputs is None:
                return None
            total += sum(math.prod(shape) for shape in outputs) + _kept_inside(layer, inputs)
    return total


def _known_shapes(tensors: Any) -> list[tuple[int, ...]] | None:
    """The tensors' shapes without the batch axis, or None if an axis is unknown."""
    shapes = []
    for tensor in _tensors(tensors):
        tail = _tail(tensor.shape)
        known = tuple(d for d in tail if d is not None)
        if len(known) < len(tail):
            return None
        shapes.append(known)
    return shapes


def _kept_inside(layer: Any, inputs: list[tuple[int, ...]]) -> int:
    """Values one call of ``layer`` keeps inside for its gradient, beyond its outputs:
    a recurrent layer's gates at every time step, an attention layer's scores."""
    inner = getattr(layer, "forward_layer", None), getattr(layer, "backward_layer", None)
    if all(inner):  # Bidirectional: each direction keeps its own
        return sum(_recurrent(direction, inputs) for direction in inner)
    if type(layer).__name__ in ATTENTION_LAYERS and inputs and inputs[0]:
        heads = next((int(getattr(layer, name)) for name in
                      ("num_heads", "_num_heads", "num_query_heads")
                      if isinstance(getattr(layer, name, None), int)), 1)
        keys = inputs[1] if len(inputs) > 1 and inputs[1] else inputs[0]
        return ATTENTION_SCORE_COPIES * heads * inputs[0][0] * keys[0]
    return _recurrent(layer, inputs)


def _recurrent(layer: Any, inputs: list[tuple[int, ...]]) -> int:
    """A recurrent layer's gates at every step: steps × one step's output × copies."""
    copies = RECURRENT_STEP_COPIES.get(type(layer).__name__)
    cell = getattr(layer, "cell", None)
    units = getattr(cell, "units", None) or getattr(cell, "filters", None)
    if copies is None or not inputs or not inputs[0] or not isinstance(units, int):
        return 0
    steps, step_inputs = inputs[0][0], inputs[0][1:-1]  # ConvLSTM: spatial axes per step
    return copies * steps * math.prod(step_inputs) * units


def keras_package(model: Any) -> Any:
    """``keras``, or ``tf_keras`` for a model built by Keras 2 (already imported then)."""
    if type(model).__module__.startswith("tf_keras.") and "tf_keras" in sys.modules:
        return sys.modules["tf_keras"]
    return keras


def _sublayers(k: Any, layer: Any) -> list[Any]:
    """The layers a model, a wrapper or a user's own layer class is made of.

    A Keras layer's own parts (an LSTM's cell …) are not listed: they are that layer.
    """
    if isinstance(layer, k.Model):
        return [child for child in layer.layers if not isinstance(child, k.layers.InputLayer)]
    wrapper = isinstance(layer, (k.layers.Wrapper, k.layers.Bidirectional))
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
    structure = getattr(model, "_inputs_struct", None)  # Keras 3
    if structure is None:
        structure = getattr(model, "_nested_inputs", None)  # Keras 2
    if structure is not None:
        return keras.tree.pack_sequence_as(structure, tensors)
    return tensors if len(tensors) > 1 else tensors[0]


def is_frozen(layer: Any) -> bool:
    """Has weights and none of them will be trained (``trainable=False``)."""
    return not layer.trainable and bool(layer.weights)


def activation_of(k: Any, layer: Any) -> tuple[str | None, UnitRule | None]:
    """The activation a layer applies last, and how to judge its units.

    Only layers whose output *is* the activation's output get a rule: Dense,
    convolutions, Activation and ReLU layers. Recurrent layers also carry an
    ``activation`` attribute, but their output is not that function's output.
    """
    if isinstance(layer, k.layers.ReLU):
        if layer.negative_slope:
            return "leaky_relu", None
        high = math.inf if layer.max_value is None else float(layer.max_value)
        name = "relu6" if high == 6.0 else "relu"
        return name, UnitRule("relu", 0.0, high)
    function = getattr(layer, "activation", None)
    if not callable(function) or isinstance(layer, k.layers.RNN):
        return None, None
    name = getattr(function, "__name__", None) or type(function).__name__
    if name in RELU_FAMILY:
        return name, UnitRule("relu", 0.0, RELU_FAMILY[name])
    if name in SATURATING:
        low, high = SATURATING[name]
        return name, UnitRule("saturating", low, high)
    return name, None


# --- inputs -------------------------------------------------------------------

def _tail(shape: Any) -> tuple[int | None, ...]:
    """A built shape without its batch axis."""
    return tuple(None if d is None else int(d) for d in list(shape)[1:])


def _input_spec(k: Any, tensor: Any, synthesise: bool, shapes: InputShapes,
                names: list[str]) -> InputSpec:
    name = _input_name(tensor)
    declared = tuple(None if d is None else int(d) for d in tensor.shape[1:])
    shape = resolve_shape(name, declared, shapes, names)
    dtype = dtype_name(tensor.dtype)
    vocab = _embedding_vocab(k, tensor)  # Keras 2 models often feed ids as float32
    if "int" in dtype:
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
    return InputSpec(name=name, shape=shape, dtype=dtype, vocab=vocab, declared=declared)


def _fixed_axis(tensor: Any) -> int | None:
    """The batch size an input tensor declares, None where any is accepted."""
    batch = tensor.shape[0]
    return None if batch is None else int(batch)


def _input_name(tensor: Any) -> str:
    operation = _producer(getattr(tensor, "_keras_history", None))
    return getattr(operation, "name", None) or str(getattr(tensor, "name", "input"))


def _producer(history_or_node: Any) -> Any:
    """The layer of a tensor's history or of a graph node (Keras 3 ``operation``,
    Keras 2 ``layer``); None for neither."""
    operation = getattr(history_or_node, "operation", None)
    return operation if operation is not None else getattr(history_or_node, "layer", None)


def dtype_name(dtype: Any) -> str:
    """``float32`` for a Keras 3 dtype string and for a ``tf.DType`` (Keras 2) alike."""
    return str(getattr(dtype, "name", dtype))


def _embedding_vocab(k: Any, tensor: Any) -> int | None:
    """``input_dim`` of the Embedding layer(s) that read ``tensor`` directly.

    Looks through nested models too: a Sequential whose first layer is an
    Embedding consumes its input through that layer. With several consumers
    the smallest vocabulary keeps every id valid for all of them.
    """
    vocabs: list[int] = []
    frontier = [tensor]
    while frontier:
        current = frontier.pop()
        operation = _producer(current._keras_history)
        for node in operation._outbound_nodes:
            if not any(t is current for t in _tensors(node.input_tensors)):
                continue
            consumer = _producer(node)
            if isinstance(consumer, k.layers.Embedding):
                vocabs.append(int(consumer.input_dim))
            elif isinstance(consumer, k.Model) and getattr(consumer, "inputs", None):
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
        starts = [t for node in model._inbound_nodes for t in _tensors(node.output_tensors)]
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
        operation = _producer(getattr(tensor, "_keras_history", None))
        if operation is None:
            continue
        for node in operation._outbound_nodes:
            if not any(t is tensor for t in _tensors(node.input_tensors)):
                continue
            cut = _cut_name(node, tensor)
            if cut:
                if cut not in cuts:
                    cuts.append(cut)
            else:
                frontier.extend(_tensors(node.output_tensors))
    return cuts, reached_output


def _cut_name(node: Any, tensor: Any) -> str | None:
    operation = _producer(node)
    op_type = type(operation).__name__
    if op_type == "TFOpLambda":  # Keras 2: a TensorFlow function by its API name
        op_type = _camel(str(getattr(operation, "symbol", "")).split(".")[-1])
    if op_type in NON_DIFFERENTIABLE_OPS:
        return snake(op_type)
    inputs = _tensors(node.input_tensors)
    if op_type == "Where" and inputs and inputs[0] is tensor:
        return "where (condition)"
    dtypes = [dtype_name(t.dtype) for t in _tensors(node.output_tensors)]
    if dtypes and not any(_is_float(d) for d in dtypes):
        return f"cast to {dtypes[0]}" if op_type == "Cast" else snake(op_type)
    return None


def _is_float(dtype: str) -> bool:
    return "float" in dtype or "complex" in dtype


def _tensors(value: Any) -> list[Any]:
    """A node's tensors as a list (Keras 2 gives a single tensor unwrapped)."""
    return list(keras.tree.flatten(value))


def _camel(name: str) -> str:
    """``stop_gradient`` → ``StopGradient``, as Keras 3 names the op class."""
    return "".join(part.capitalize() for part in name.split("_"))

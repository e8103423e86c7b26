"""What a loaded model is made of: its layers at any depth, their activations,
which variables they own, and where its graph cuts gradient paths.

Layer names are qualified relative to the audited model: a layer ``enc_dead``
inside a nested model ``encoder`` is ``encoder/enc_dead``. We descend into
nested *models* (functional, Sequential, subclassed) but not into the internals
of a single layer (an LSTM's cell, a MultiHeadAttention's projections): those
are one layer to the person who built the model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import keras

from gradaudit.model.rules import (
    NON_DIFFERENTIABLE_OPS,
    RELU_FAMILY,
    SATURATING,
    UnitRule,
)


@dataclass(frozen=True)
class LayerInfo:
    """One layer at any depth, with the facts the checks need."""

    name: str
    layer: Any
    type: str
    activation: str | None
    unit_rule: UnitRule | None
    is_container: bool
    owners: tuple[Any, ...]  # models from the audited one down to the direct parent
    depth_index: int
    frozen_by: str | None = None
    """The outermost frozen layer this one is or sits inside; None if not frozen."""

    @property
    def frozen_root(self) -> bool:
        """Frozen itself, not only as part of a frozen enclosing model."""
        return self.frozen_by == self.name


@dataclass(frozen=True)
class ModelStructure:
    """The audited model's layers in depth order and its variables' owners."""

    model: Any
    layers: tuple[LayerInfo, ...]
    owner_of: dict[int, str]  # id(variable) -> qualified name of the leaf layer

    def layer(self, name: str) -> LayerInfo:
        return next(info for info in self.layers if info.name == name)

    def cut_of(self, info: LayerInfo) -> str | None:
        """The operations that cut ``info``'s path to the outputs (see find_cut)."""
        return find_cut(info)

    def input_cut(self, index: int) -> str | None:
        """The operations that cut the ``index``-th input's paths (see find_input_cut)."""
        return find_input_cut(self.model, index)


def describe(model: Any) -> ModelStructure:
    """Walk ``model`` and every nested model inside it."""
    layers: list[LayerInfo] = []
    _collect(model, prefix="", owners=(model,), frozen_by=None, out=layers)
    owner_of: dict[int, str] = {}
    for info in layers:
        if info.is_container:
            continue
        for variable in info.layer.weights:
            owner_of.setdefault(id(variable), info.name)
    return ModelStructure(model=model, layers=tuple(layers), owner_of=owner_of)


def _collect(
    model: Any, prefix: str, owners: tuple[Any, ...], frozen_by: str | None,
    out: list[LayerInfo],
) -> None:
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        name = prefix + layer.name
        is_container = isinstance(layer, keras.Model)
        activation, rule = activation_of(layer)
        frozen = frozen_by or (name if is_frozen(layer) else None)
        out.append(
            LayerInfo(
                name=name, layer=layer, type=type(layer).__name__,
                activation=activation, unit_rule=rule, is_container=is_container,
                owners=owners, depth_index=len(out), frozen_by=frozen,
            )
        )
        if is_container:
            _collect(layer, prefix=name + "/", owners=owners + (layer,), frozen_by=frozen,
                     out=out)


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


def variable_label(variable: Any) -> str:
    """A variable's short name within its layer (``kernel``, ``bias``, …)."""
    return str(getattr(variable, "name", "")).split("/")[-1].split(":")[0]


def param_count(variables: list[Any]) -> int:
    return int(sum(math.prod(v.shape) for v in variables))


# --- where the graph cuts gradient paths ------------------------------------

def find_cut(info: LayerInfo) -> str | None:
    """The first operations after ``info``'s layer through which no gradient passes.

    Walks the Keras functional graph from the layer towards the outputs of its
    model, and on through enclosing models. Returns ``None`` when no graph is
    recorded (subclassed models) or no cutting operation is found.
    """
    starts = [t for node in info.layer._inbound_nodes for t in node.output_tensors]
    return _cut_through(list(info.owners), starts)


def find_input_cut(model: Any, index: int) -> str | None:
    """Like :func:`find_cut`, for the model's ``index``-th input."""
    inputs = getattr(model, "inputs", None) or []
    return _cut_through([model], [inputs[index]]) if index < len(inputs) else None


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
        return _snake(op_type)
    if op_type == "Where" and node.input_tensors and node.input_tensors[0] is tensor:
        return "where (condition)"
    dtypes = [str(t.dtype) for t in node.output_tensors]
    if dtypes and not any(_is_float(d) for d in dtypes):
        return f"cast to {dtypes[0]}" if op_type == "Cast" else _snake(op_type)
    return None


def _is_float(dtype: str) -> bool:
    return "float" in dtype or "complex" in dtype


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()

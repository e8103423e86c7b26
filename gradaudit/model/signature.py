"""SavedModel directories: scanned, loaded with ``tf.saved_model.load``, probed by signature.

No Keras objects are rebuilt: the chosen signature function is called under a
``GradientTape`` and differentiated with respect to the restored trainable
variables, with the same random-cotangent objective as Keras models. Layers
are recovered from variable names (``dense_3/kernel:0`` → ``dense_3``; nested
``outer/inner/kernel:0`` → ``outer/inner``), or, for variables without a
scope, from the path of their owner in the SavedModel's object graph. Dead and
saturated units come from the activation ops of the inlined serving graph
(:mod:`gradaudit.model.flat_graph`). Signatures run as they were traced, which
for Keras exports is inference mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from gradaudit.errors import AuditError, first_line
from gradaudit.model.keras_graph import LayerInfo, ModelStructure, is_frozen
from gradaudit.model.specs import DEFAULT_DIM, InputSpec

# Attributes of restored objects that list variables owned elsewhere.
VARIABLE_LISTS = frozenset({
    "variables", "trainable_variables", "non_trainable_variables",
    "_variables", "_trainable_variables", "_non_trainable_variables",
})


@dataclass(frozen=True)
class RestoredModel:
    """The audited signature with the variables it reads: the 'model' of the report."""

    name: str
    signature: str
    function: Any  # the signature's ConcreteFunction
    root: Any  # the object tf.saved_model.load returned (keeps variables alive)

    @property
    def weights(self) -> list[Any]:
        return list(self.function.variables)

    @property
    def trainable_variables(self) -> list[Any]:
        return list(self.function.trainable_variables)

    trainable_weights = trainable_variables

    @property
    def non_trainable_weights(self) -> list[Any]:
        trainable = {id(v) for v in self.trainable_variables}
        return [v for v in self.weights if id(v) not in trainable]


@dataclass(frozen=True)
class RestoredLayer:
    """The variables of one layer as recovered from their names."""

    name: str
    weights: tuple[Any, ...]

    @property
    def trainable_weights(self) -> list[Any]:
        return [v for v in self.weights if v.trainable]

    @property
    def non_trainable_weights(self) -> list[Any]:
        return [v for v in self.weights if not v.trainable]

    @property
    def trainable(self) -> bool:
        return bool(self.trainable_weights)

    def call(self, output: Any) -> Any:
        """The layer's output as fetched from the graph (the probe observes it here)."""
        return output


@dataclass(frozen=True)
class GraphStructure(ModelStructure):
    """A ModelStructure whose cuts are searched in the flat graph, not a Keras graph."""

    graph: Any = None  # FlatGraph, or None when the function could not be inlined
    activations: tuple[Any, ...] = ()
    notes: tuple[str, ...] = ()

    def cut_of(self, info: LayerInfo) -> str | None:
        if self.graph is None:
            return None
        return ", ".join(self.graph.cuts_from_variables(list(info.layer.weights))) or None

    def input_cut(self, index: int) -> str | None:
        if self.graph is None:
            return None
        return ", ".join(self.graph.cuts_from_input(index)) or None


def input_specs(model: RestoredModel, synthesise: bool = True) -> list[InputSpec]:
    """The signature's inputs in keyword order; random data can fill only float inputs.

    With ``synthesise=False`` (``--inputs`` supplies the data) any dtype is accepted.
    """
    _, keywords = model.function.structured_input_signature
    specs = []
    for name, spec in sorted(keywords.items()):
        dtype = spec.dtype.name
        if synthesise and not spec.dtype.is_floating:
            raise AuditError(
                f"signature '{model.signature}' input '{name}' has dtype {dtype}, which "
                "gradaudit cannot synthesise for a SavedModel; audit with real inputs"
            )
        if spec.shape.rank is None or spec.shape.rank == 0:
            raise AuditError(f"signature '{model.signature}' input '{name}' has no batch axis")
        if spec.shape[0] is not None:
            raise AuditError(
                f"signature '{model.signature}' input '{name}' has a fixed batch size "
                f"({spec.shape[0]}); gradaudit needs a variable batch axis"
            )
        declared = tuple(None if d is None else int(d) for d in spec.shape[1:])
        shape = tuple(DEFAULT_DIM if d is None else d for d in declared)
        specs.append(InputSpec(name=name, shape=shape, dtype=dtype, declared=declared))
    return specs


def describe(model: RestoredModel) -> GraphStructure:
    """Layers from variable names, and their output activations from the flat graph."""
    from gradaudit.model.flat_graph import FlatGraph

    owners = _object_paths(model.root)
    grouped: dict[str, list[Any]] = {}
    for variable in model.weights:
        grouped.setdefault(_layer_name(variable, owners), []).append(variable)
    notes = [f"signature '{model.signature}' probed as traced (Keras exports trace "
             "inference mode; --inference has no effect)"]
    try:
        graph = FlatGraph(model.function)
    except Exception as exc:  # grappler or the importer rejected the function
        graph, found = None, []
        notes.append(f"dead/saturated unit checks skipped: the serving graph could not be "
                     f"inlined ({first_line(exc)})")
    else:
        found, unclaimed = graph.activations(list(grouped))
        if unclaimed:
            notes.append(f"{len(unclaimed)} activation op(s) not judged (not the single "
                         f"output activation of a layer with variables): "
                         f"{', '.join(unclaimed[:5])}" + (" …" if len(unclaimed) > 5 else ""))
    by_layer = {a.layer: a for a in found}
    layers = []
    for index, (name, variables) in enumerate(grouped.items()):
        activation = by_layer.get(name)
        layer = RestoredLayer(name, tuple(variables))
        layers.append(LayerInfo(
            name=name, layer=layer, type="restored",
            activation=activation.name if activation else None,
            unit_rule=activation.rule if activation else None, is_container=False,
            owners=(model,), depth_index=index, frozen_by=name if is_frozen(layer) else None,
        ))
    owner_of = {id(v): info.name for info in layers for v in info.layer.weights}
    return GraphStructure(model=model, layers=tuple(layers), owner_of=owner_of, graph=graph,
                          activations=tuple(found), notes=tuple(notes))


def _layer_name(variable: Any, owners: dict[int, str]) -> str:
    name = str(variable.name).split(":")[0]
    if "/" in name:
        return name.rsplit("/", 1)[0]
    return owners.get(id(variable)) or name


def _object_paths(root: Any) -> dict[int, str]:
    """id(variable) → path of the object holding it in the restored object graph."""
    paths: dict[int, str] = {}
    seen: set[int] = set()
    frontier: list[tuple[Any, str]] = [(root, "")]
    while frontier:
        node, path = frontier.pop(0)
        if id(node) in seen:
            continue
        seen.add(id(node))
        children = getattr(node, "_trackable_children", None)
        if children is None:
            continue
        for key, child in sorted(children().items()):
            if key in VARIABLE_LISTS or key.startswith("__"):
                continue
            if isinstance(child, tf.Variable):
                paths.setdefault(id(child), path or "(root)")
            else:
                frontier.append((child, f"{path}/{key}" if path else key))
    return paths


class Runner:
    """The signature as :func:`gradaudit.probe.probe` calls a Keras model.

    Inputs in, outputs out (a dict, flattened in key order). Each watched
    layer's output, fetched from the flat graph for the same batch, is handed
    to that layer's ``call``, which is where the probe observes layer outputs.
    Signature functions keep no state, so there is nothing to restore.
    """

    non_trainable_variables: tuple[Any, ...] = ()

    def __init__(self, model: RestoredModel, structure: GraphStructure,
                 specs: list[InputSpec]) -> None:
        self.trainable_variables = model.trainable_variables
        self._function = model.function
        self._names = [spec.name for spec in specs]
        self._layers = [structure.layer(a.layer).layer for a in structure.activations]
        ops = [a.op for a in structure.activations]
        self._fetch = structure.graph.fetcher(ops) if ops else None

    def __call__(self, inputs: Any, training: bool = False) -> Any:
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        outputs = self._function(**dict(zip(self._names, tensors)))
        if self._fetch is not None:
            for layer, value in zip(self._layers, self._fetch(tensors)):
                layer.call(value)
        return outputs

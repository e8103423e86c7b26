"""A SavedModel signature as an :class:`~gradaudit.model.interface.AuditedModel`.

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

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from gradaudit.errors import AuditError, first_line
from gradaudit.history.batchnorm import BatchNormStats
from gradaudit.model.flat_graph import Activation, FlatGraph
from gradaudit.model.graph_batchnorm import read_graph_batchnorm
from gradaudit.model.interface import (
    LayerGraph,
    LayerInfo,
    RunResult,
    Tensor,
    Variable,
    variable_label,
)
from gradaudit.model.specs import InputShapes, InputSpec, check_shape_names, resolve_shape

# Attributes of restored objects that list variables owned elsewhere.
VARIABLE_LISTS = frozenset({
    "variables", "trainable_variables", "non_trainable_variables",
    "_variables", "_trainable_variables", "_non_trainable_variables",
})


class SignatureModel:
    """The audited signature with the variables it reads: the 'model' of the report.

    Signature functions keep no state, so there is nothing to restore after a probe.
    """

    state_variables: tuple[Variable, ...] = ()
    prefers_tracing = False

    def __init__(self, name: str, signature: str, function: Any, root: Any) -> None:
        self.name = name
        self.signature = signature
        self._function = function
        self._root = root  # keeps the restored variables alive
        _, keywords = function.structured_input_signature
        self._input_names = sorted(keywords)
        notes = [f"signature '{signature}' probed as traced (Keras exports trace "
                 "inference mode; --inference has no effect)"]
        grouped = self._group_variables()
        self._graph: FlatGraph | None
        found: list[Activation] = []
        try:
            self._graph = FlatGraph(function)
        except Exception as exc:  # grappler or the importer rejected the function
            self._graph = None
            notes.append(f"dead/saturated unit checks skipped: the serving graph could not "
                         f"be inlined ({first_line(exc)})")
        else:
            found, unclaimed = self._graph.activations(list(grouped))
            if unclaimed:
                notes.append(f"{len(unclaimed)} activation op(s) not judged (not the single "
                             f"output activation of a layer with variables): "
                             f"{', '.join(unclaimed[:5])}" + (" …" if len(unclaimed) > 5 else ""))
        self.notes = tuple(notes)
        self._activations: dict[str, Activation] = {a.layer: a for a in found}
        self._layers = tuple(self._layer(index, name, variables)
                             for index, (name, variables) in enumerate(grouped.items()))
        self._owner_of = {id(v): info.name for info in self._layers for v in info.weights}
        ops = [a.op for a in found]
        self._fetch = self._graph.fetcher(ops) if self._graph is not None and ops else None
        self._fetched = [a.layer for a in found]

    @property
    def layers(self) -> tuple[LayerInfo, ...]:
        return self._layers

    @property
    def weights(self) -> list[Variable]:
        return list(self._function.variables)

    @property
    def trainable_variables(self) -> list[Variable]:
        return list(self._function.trainable_variables)

    def input_specs(self, synthesise: bool = True, shapes: InputShapes = ()) -> list[InputSpec]:
        """The signature's inputs in keyword order; random data can fill only float inputs.

        With ``synthesise=False`` (``--inputs`` supplies the data) any dtype is accepted.
        """
        _, keywords = self._function.structured_input_signature
        check_shape_names(shapes, self._input_names)
        return [self._input_spec(name, keywords[name], synthesise, shapes)
                for name in self._input_names]

    def run(self, inputs: list[Tensor], *, training: bool,
            watched: Sequence[LayerInfo]) -> RunResult:
        """Call the signature (as traced: ``training`` cannot change it); each watched
        layer's output is fetched from the flat graph for the same batch."""
        outputs = self._function(**dict(zip(self._input_names, inputs, strict=False)))
        activations: dict[str, list[Tensor]] = {}
        if self._fetch is not None:
            wanted = {info.name for info in watched}
            for layer, value in zip(self._fetched, self._fetch(inputs), strict=False):
                if layer in wanted:
                    activations[layer] = [value]
        return RunResult(outputs=tf.nest.flatten(outputs), activations=activations)

    def output_elements(self, specs: Sequence[InputSpec]) -> int | None:
        return None  # a signature records no per-layer shapes: the one-sample run counts

    def owner_of(self, variable: Variable) -> str | None:
        return self._owner_of.get(id(variable))

    def cut_of(self, layer: LayerInfo) -> str | None:
        if self._graph is None:
            return None
        return ", ".join(self._graph.cuts_from_variables(list(layer.weights))) or None

    def input_cut(self, index: int) -> str | None:
        if self._graph is None:
            return None
        return ", ".join(self._graph.cuts_from_input(index)) or None

    def _input_spec(self, name: str, spec: Any, synthesise: bool,
                    shapes: InputShapes) -> InputSpec:
        dtype = spec.dtype.name
        where = f"signature '{self.signature}' input '{name}'"
        if synthesise and not spec.dtype.is_floating:
            raise AuditError(f"{where} has dtype {dtype}, which gradaudit cannot synthesise "
                             "for a SavedModel; audit with real inputs")
        if spec.shape.rank is None or spec.shape.rank == 0:
            raise AuditError(f"{where} has no batch axis")
        if spec.shape[0] is not None:
            raise AuditError(f"{where} has a fixed batch size ({spec.shape[0]}); gradaudit "
                             "needs a variable batch axis")
        declared = tuple(None if d is None else int(d) for d in spec.shape[1:])
        shape = resolve_shape(name, declared, shapes, self._input_names)
        return InputSpec(name=name, shape=shape, dtype=dtype, declared=declared)

    def _group_variables(self) -> dict[str, list[Variable]]:
        """Variables by layer name, in the signature's order."""
        owners = _object_paths(self._root)
        grouped: dict[str, list[Variable]] = {}
        for variable in self._function.variables:
            grouped.setdefault(_layer_name(variable, owners), []).append(variable)
        return grouped

    def _layer(self, index: int, name: str, variables: list[Variable]) -> LayerInfo:
        activation = self._activations.get(name)
        trainable = tuple(v for v in variables if v.trainable)
        return LayerInfo(
            name=name, type="restored", activation=activation.name if activation else None,
            unit_rule=activation.rule if activation else None, depth_index=index,
            weights=tuple(variables), trainable_weights=trainable, trainable=bool(trainable),
            frozen_by=None if trainable or not variables else name,
        )

    def batchnorm(self) -> BatchNormStats:
        """The BN statistics the serving graph reads, for GA103
        (:mod:`gradaudit.model.graph_batchnorm`); a note where the graph could not be read."""
        held = [info.name for info in self._layers
                if {"moving_mean", "moving_variance"} <= {variable_label(v) for v in info.weights}]
        if self._graph is None:
            return BatchNormStats(notes=tuple(
                f"BatchNormalization {name}: the serving graph could not be inlined: GA103 "
                "not judged" for name in held))
        return read_graph_batchnorm(self._graph, self.owner_of,
                                    [info.name for info in self._layers], held)

    def layer_graph(self) -> LayerGraph:
        """Empty: a signature's variables are grouped by owner, with no order between
        them the graph would vouch for, so no finding is linked to another."""
        return {}

    def output_layer(self, index: int) -> str:
        """The ``index``-th output key: :meth:`run` flattens the output dict in key order."""
        return str(sorted(self._function.structured_outputs)[index])


def _layer_name(variable: Variable, owners: dict[int, str]) -> str:
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

"""The serving function as one flat graph: activation ops by layer, and where paths are cut.

A SavedModel's serving function calls nested functions (one per Keras call);
``convert_variables_to_constants_v2_as_graph`` runs grappler's function
inlining, so every op comes to the top level under its name scope
(``StatefulPartitionedCall/model/dead/Relu``) and each captured variable
becomes a Const named after the function's capture placeholder. That graph is
read for structure and run (pruned) to fetch activation outputs; the variables'
values are only copied, never changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from gradaudit.model.rules import (
    ACTIVATION_OPS,
    NON_DIFFERENTIABLE_OPS,
    UnitRule,
    snake,
)

CUT_OPS = NON_DIFFERENTIABLE_OPS | {"ArgMax", "ArgMin"}
# Ops that read only a tensor's shape: no value flows on, so neither a path nor a cut.
SHAPE_OPS = frozenset({"Shape", "ShapeN", "Size", "Rank"})
PASS_OPS = frozenset({"Identity", "Cast", "ReadVariableOp"})
"""Ops between a variable's frozen value and its use that leave the value as it is."""
CALL_PREFIX = re.compile(r"^(StatefulPartitionedCall|PartitionedCall)(_\d+)?/")


@dataclass(frozen=True)
class Activation:
    """The one activation op whose output is a layer's output."""

    layer: str
    op: Any  # tf.Operation in the flat graph
    name: str
    rule: UnitRule


class FlatGraph:
    """The inlined, frozen graph of one concrete function."""

    def __init__(self, function: Any) -> None:
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2_as_graph,
        )

        frozen, graph_def = convert_variables_to_constants_v2_as_graph(function)
        self._wrapped = tf.compat.v1.wrap_function(
            lambda: tf.compat.v1.import_graph_def(graph_def, name=""), []
        )
        self.graph = self._wrapped.graph
        self._feeds = [self.graph.get_tensor_by_name(t.name) for t in frozen.inputs]
        handles = {id(v.handle): v for v in function.variables}
        self._const_of = {
            id(handles[id(outer)]): inner.op.name
            for outer, inner in function.graph.captures
            if id(outer) in handles
        }
        self._variable_at = {inner.op.name: handles[id(outer)]
                             for outer, inner in function.graph.captures
                             if id(outer) in handles}

    def activations(self, layers: list[str]) -> tuple[list[Activation], list[str]]:
        """Each layer's output activation, and the activation ops no layer can claim.

        An op belongs to the layer whose name parts match its scope most deeply
        (exact or with a Keras uniquifying suffix: ``dead_1`` is ``dead``). A
        layer counts only when exactly one such op's output leaves its scope,
        i.e. is the layer's output; otherwise it is not judged.
        """
        claimed: dict[str, list[tuple[Any, str]]] = {}
        unclaimed = []
        for op in self.graph.get_operations():
            if op.type not in ACTIVATION_OPS:
                continue
            match = scope_owner(op.name.split("/")[:-1], layers)
            if match is None:
                unclaimed.append(display_name(op.name))
                continue
            layer, scope = match
            if any(not c.name.startswith(scope) for t in op.outputs for c in t.consumers()):
                claimed.setdefault(layer, []).append((op, scope))
        found = []
        for layer, ops in claimed.items():
            if len(ops) == 1:
                op = ops[0][0]
                name, rule = ACTIVATION_OPS[op.type]
                found.append(Activation(layer, op, name, rule))
            else:
                unclaimed += [display_name(op.name) for op, _ in ops]
        return found, sorted(unclaimed)

    def fetcher(self, ops: list[Any]) -> Callable[[list[np.ndarray]], list[tf.Tensor]]:
        """A function from one input batch to the outputs of ``ops``."""
        pruned = self._wrapped.prune(feeds=self._feeds, fetches=[op.outputs[0] for op in ops])
        return lambda batch: list(pruned(*[tf.constant(x) for x in batch]))

    def variable_read(self, tensor: Any) -> Any:
        """The captured variable whose value ``tensor`` is (through reads, identities and
        casts), or None for anything computed."""
        source = through(tensor).op
        return self._variable_at.get(source.name) if source.type == "Const" else None

    def cuts_from_variables(self, variables: list[Any]) -> list[str]:
        names = [self._const_of[id(v)] for v in variables if id(v) in self._const_of]
        return self._cuts([self.graph.get_operation_by_name(n) for n in names])

    def cuts_from_input(self, index: int) -> list[str]:
        return self._cuts([self._feeds[index].op]) if index < len(self._feeds) else []

    def _cuts(self, starts: list[Any]) -> list[str]:
        """Breadth-first towards the outputs; a path stops at its first cutting op."""
        cuts: list[str] = []
        seen: set[str] = set()
        frontier = list(starts)
        while frontier:
            op = frontier.pop(0)
            if op.name in seen:
                continue
            seen.add(op.name)
            for consumer in (c for t in op.outputs for c in t.consumers()):
                cut = _cut_name(consumer)
                if cut and cut not in cuts:
                    cuts.append(cut)
                elif not cut and consumer.type not in SHAPE_OPS:
                    frontier.append(consumer)
        return cuts


def through(tensor: Any) -> Any:
    """The tensor ``tensor`` passes on unchanged (through reads, identities and casts)."""
    while tensor.op.type in PASS_OPS and tensor.op.inputs:
        tensor = tensor.op.inputs[0]
    return tensor


def scope_owner(scope: list[str], layers: list[str]) -> tuple[str, str] | None:
    """(layer, its scope prefix) for the layer that matches ``scope`` most deeply."""
    best: tuple[tuple[int, int, int], str, str] | None = None
    for layer in layers:
        parts = layer.split("/")
        for start in range(len(scope) - len(parts) + 1):
            window = scope[start : start + len(parts)]
            exact = [_same(w, p) for w, p in zip(window, parts, strict=False)]
            if not all(exact):
                continue
            end = start + len(parts)
            score = (end, sum(e == 2 for e in exact), len(parts))
            if best is None or score > best[0]:
                best = (score, layer, "/".join(scope[:end]) + "/")
    return None if best is None else (best[1], best[2])


def _same(component: str, part: str) -> int:
    """2 for an exact match, 1 for ``part`` plus a uniquifying ``_N`` suffix, else 0."""
    if component == part:
        return 2
    return 1 if re.fullmatch(re.escape(part) + r"_\d+", component) else 0


def _cut_name(op: Any) -> str | None:
    """``stop_gradient (model/cut/StopGradient)`` for an op no gradient passes, else None."""
    dtype = op.outputs[0].dtype if op.outputs else None
    if op.type in CUT_OPS:
        label = snake(op.type)
    elif op.type == "Cast" and dtype is not None and not (dtype.is_floating or dtype.is_complex):
        label = f"cast to {dtype.name}"
    else:
        return None
    return f"{label} ({display_name(op.name)})"


def display_name(name: str) -> str:
    """An op name without the inlined call's prefix: ``model/cut/StopGradient``."""
    return CALL_PREFIX.sub("", name)


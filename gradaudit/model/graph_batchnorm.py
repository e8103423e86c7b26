"""GA103 for a SavedModel: the BatchNormalization statistics its serving graph reads.

A SavedModel has no model config, but its serving function still computes each BN
from the layer's four variables, in one of the two forms exports give (measured):
tf_keras (Keras 2) writes a ``FusedBatchNormV3`` (x, scale, offset, mean, variance);
Keras 3 (``tf.saved_model.save`` and ``model.export``) writes ``tf.nn.batch_normalization``'s
arithmetic, ``x * inv + (offset - mean * inv)`` with ``inv = rsqrt(variance + eps) *
scale``. Either is found in the inlined graph (:class:`~gradaudit.model.flat_graph.FlatGraph`:
nested function bodies come to the top level), in the two patterns the ``.keras`` reader
finds in a config (:mod:`gradaudit.history.batchnorm`): a linear Conv/Dense output →
BN → ``Relu``/``Relu6`` (after), and ``Relu``/``Relu6`` → BN (before). Each input is
followed back to the captured variable it reads, whose value is read; the result is the
same :class:`~gradaudit.history.batchnorm.BatchNormStats`, judged by the same
:func:`gradaudit.checks.batchnorm.judge`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import permutations
from typing import Any

import numpy as np
import tensorflow as tf

from gradaudit.history.batchnorm import BatchNorm, BatchNormStats
from gradaudit.model.flat_graph import (
    PASS_OPS,
    FlatGraph,
    display_name,
    scope_owner,
    through,
)
from gradaudit.model.interface import Variable

FUSED_OPS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
LINEAR_OPS = frozenset({
    "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput",
    "Conv3DBackpropInputV2", "MatMul", "BatchMatMulV2", "Einsum", "BiasAdd"})
"""Ops whose output is a linear layer's (a Keras 3 Dense adds its bias with AddV2: see
:func:`_linear`)."""
RELU_OPS = {"Relu": ("relu", (0.0, math.inf)), "Relu6": ("relu6", (0.0, 6.0))}


@dataclass(frozen=True)
class _Norm:
    """One BN computation: its input, its output op and its four inputs (None: no
    scale or offset)."""

    x: Any
    output: Any
    scale: Any
    offset: Any
    mean: Any
    variance: Any


def read_graph_batchnorm(graph: FlatGraph, owner: Callable[[Variable], str | None],
                         layers: list[str], batchnorms: list[str]) -> BatchNormStats:
    """The BN statistics the serving ``graph`` shows for ReLU-family ops; ``owner`` names a
    variable's layer among ``layers`` (those with variables), ``batchnorms`` are the ones
    holding moving statistics (each one the graph does not judge gets a note saying why)."""
    found: list[BatchNorm] = []
    why: dict[str, str] = {}
    for norm in _norms(graph):
        mean, variance = graph.variable_read(norm.mean), graph.variable_read(norm.variance)
        if mean is None or variance is None:
            continue  # not a BN layer's moving statistics: nothing the file recorded
        layer = owner(mean) or str(mean.name)
        vectors = _vectors([_value(graph, norm.scale), _value(graph, norm.offset),
                            mean.numpy(), variance.numpy()])
        if vectors is None:
            why[layer] = ("its gamma or beta is computed in the graph, or its statistics are "
                          "not one finite value per channel each")
            continue
        why.setdefault(layer, "its serving graph shows it neither between a linear "
                              "Conv/Dense and a Relu/Relu6 nor after a Relu/Relu6")
        for target, after in _targets(norm):
            name = _layer_name(target, layer, norm.output, layers)
            activation, active = RELU_OPS[target.type]
            found.append(BatchNorm(layer=layer, target=name, after=after, active=active,
                                   activation=activation, **vectors))
    judged = {bn.layer for bn in found}
    notes = [f"BatchNormalization {name}: " + why.get(
        name, "the serving graph computes no batch normalisation from its variables in a "
        "form GA103 reads (FusedBatchNorm, or tf.nn.batch_normalization's arithmetic; a BN "
        "folded into the weights of an inference-only export leaves nothing to read)")
        + ": GA103 not judged" for name in batchnorms if name not in judged]
    return BatchNormStats(layers=tuple(found), notes=tuple(notes))


def _norms(graph: FlatGraph) -> Iterator[_Norm]:
    for op in graph.graph.get_operations():
        if op.type in FUSED_OPS and not op.get_attr("is_training"):
            x, scale, offset, mean, variance = op.inputs[:5]
            yield _Norm(x, op, scale, offset, mean, variance)
        elif op.type in ("AddV2", "Add") and (norm := _decomposed(op)) is not None:
            yield norm


def _decomposed(op: Any) -> _Norm | None:
    """``x * inv + (offset - mean * inv)`` (without offset: ``+ (-mean) * inv``), with
    ``inv = rsqrt(variance + eps) [* scale]``: tf.nn.batch_normalization as Keras 3 exports it."""
    for product, shift in permutations(op.inputs):
        if product.op.type != "Mul" or shift.op.type not in ("Sub", "Mul"):
            continue
        offset, centred = shift.op.inputs if shift.op.type == "Sub" else (None, shift)
        if centred.op.type != "Mul":
            continue
        for x, inv in permutations(product.op.inputs):
            if not any(inv is t for t in centred.op.inputs):
                continue
            mean = next(t for t in centred.op.inputs if t is not inv)
            if offset is None and mean.op.type != "Neg":
                continue
            mean = mean if offset is not None else mean.op.inputs[0]
            if inv.op.type == "Rsqrt":
                scale, root = None, inv.op
            else:
                pair = [t for t in inv.op.inputs if t.op.type == "Rsqrt"]
                if inv.op.type != "Mul" or not pair:
                    continue
                scale, root = next(t for t in inv.op.inputs if t is not pair[0]), pair[0].op
            summed = root.inputs[0].op
            if summed.type not in ("AddV2", "Add"):
                continue
            variance = next((t for t in summed.inputs if t.op.type != "Const"), None)
            if variance is not None:
                return _Norm(x, op, scale, offset, mean, variance)
    return None


def _targets(norm: _Norm) -> Iterator[tuple[Any, bool]]:
    """(ReLU-family op, after?) for either pattern around ``norm``."""
    source = through(norm.x).op
    if source.type in RELU_OPS:
        yield source, False
    elif _linear(source):
        for consumer in _consumers(norm.output.outputs[0]):
            if consumer.type in RELU_OPS:
                yield consumer, True


def _linear(op: Any) -> bool:
    return op.type in LINEAR_OPS or (op.type in ("AddV2", "Add") and any(
        through(t).op.type in LINEAR_OPS for t in op.inputs))


def _consumers(tensor: Any) -> Iterator[Any]:
    for consumer in tensor.consumers():
        if consumer.type in PASS_OPS:
            yield from _consumers(consumer.outputs[0])
        else:
            yield consumer


def _value(graph: FlatGraph, tensor: Any) -> Any:
    """A BN scale or offset: the variable it reads, else the constant it is (tf_keras
    passes ones for ``scale=False``); None where the graph has none, NaN where it is
    computed (so the BN is not read)."""
    if tensor is None:
        return None
    variable = graph.variable_read(tensor)
    if variable is not None:
        return variable.numpy()
    constant = tf.get_static_value(tensor)
    return math.nan if constant is None else constant


def _vectors(values: list[Any]) -> dict[str, np.ndarray] | None:
    """gamma, beta, mean, variance as flat float64 (gamma 1, beta 0 where the graph has
    none; a scalar constant broadcast); None unless one finite value per channel each."""
    size = int(np.size(values[2]))
    read = [None if v is None else np.broadcast_to(np.asarray(v, np.float64), np.shape(v) or (
        size,)).reshape(-1) for v in values]
    gamma, beta, mean, variance = read
    present = [v for v in read if v is not None]
    if mean is None or variance is None or not size or any(
            v.size != size or not np.isfinite(v).all() for v in present):
        return None
    return {"gamma": np.ones(mean.size) if gamma is None else gamma,
            "beta": np.zeros(mean.size) if beta is None else beta,
            "mean": mean, "variance": variance}


def _layer_name(target: Any, bn: str, bn_op: Any, layers: list[str]) -> str:
    """The Keras layer of a ReLU op: the layer with variables whose scope holds it
    (``conv2_1/Relu`` → ``conv2``), else its own scope without the suffix a trace added,
    the one the BN's scope shows (``act1_1/Relu`` → ``act1`` where ``bn1`` is ``bn1_1``)."""
    scope = display_name(target.name).split("/")[:-1]
    if not scope:
        return display_name(target.name)
    owned = scope_owner(scope, layers)
    if owned is not None and owned[1].rstrip("/").split("/") == scope:
        return owned[0]
    suffix = next((part[len(bn):] for part in display_name(bn_op.name).split("/")
                   if re.fullmatch(re.escape(bn) + r"_\d+", part)), "")
    last = scope[-1]
    return last[: -len(suffix)] if suffix and last.endswith(suffix) else last

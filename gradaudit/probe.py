"""The tape: one forward and backward pass per probe batch, statistics reduced
as they stream.

The objective is ``mean over samples of sum over outputs of <output, c>`` with
one fixed random cotangent ``c`` per output (seeded normal). A plain
``sum(output)`` would be constant for a softmax and would make a healthy
classifier look dead; averaging over samples keeps gradient magnitudes the same
at any number of samples. Layer outputs are captured by wrapping the ``call``
of the layers that need them for the duration of the probe only; per-unit
statistics are folded into small per-layer vectors after each batch and the
batch's tensors are dropped.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gradaudit.structure import LayerInfo, UnitRule


@dataclass
class UnitStats:
    """Per-unit activity of one layer, accumulated over all probe batches."""

    rule: UnitRule
    units: int
    observations: int = 0  # samples × positions seen per unit
    ever_active: np.ndarray | None = None  # relu family: bool per unit
    saturated: np.ndarray | None = None  # saturating: count per unit

    def dead_units(self) -> int:
        return int(self.units - np.count_nonzero(self.ever_active))

    def saturated_units(self, min_fraction: float) -> int:
        if not self.observations:
            return 0
        return int(np.count_nonzero(self.saturated >= min_fraction * self.observations))


@dataclass
class GradStats:
    """What the tape said about one variable or input over all batches."""

    connected: bool = True
    nonzero: bool = False
    finite: bool = True
    rms: float | None = None  # RMS of the mean gradient over all samples


@dataclass
class ProbeResult:
    samples: int
    units: dict[str, UnitStats]
    variables: list[tuple[Any, GradStats]]
    inputs: list[GradStats]
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)


def probe(
    model: Any,
    watched: list[LayerInfo],
    batches: Iterable[list[np.ndarray]],
    *,
    seed: int,
    saturation_eps: float,
    training: bool = True,
) -> ProbeResult:
    """Run the model over ``batches`` under a GradientTape and reduce statistics.

    ``watched`` are the layers whose outputs are judged per unit (those with a
    unit rule); every trainable variable and every float input gets gradient
    statistics. With ``training`` the layers behave as the optimizer sees them
    (BatchNormalization on batch statistics, Dropout active); the model's
    non-trainable state (moving statistics, RNG state) is restored afterwards,
    so probing leaves the model as it found it.
    """
    variables = list(model.trainable_variables)
    var_stats = [GradStats() for _ in variables]
    totals: list[tf.Tensor | None] = [None] * len(variables)
    input_stats: list[GradStats] = []
    unit_stats: dict[str, UnitStats] = {}
    cotangents: list[np.ndarray | None] = []
    cotangent_rng = np.random.default_rng([seed, 1])
    samples = 0
    output_shapes: list[tuple[int, ...]] = []

    with _capture_outputs(watched) as captured, _restoring(model.non_trainable_variables):
        for batch in batches:
            n = int(batch[0].shape[0])
            tensors = [tf.constant(x) for x in batch]
            floats = [t for t in tensors if t.dtype.is_floating]
            with tf.GradientTape() as tape:
                tape.watch(floats)
                outputs = tf.nest.flatten(model(_structured(model, tensors), training=training))
                if not cotangents:
                    cotangents = [
                        cotangent_rng.standard_normal(tuple(o.shape[1:])).astype("float32")
                        if o.dtype.is_floating else None
                        for o in outputs
                    ]
                    output_shapes = [tuple(o.shape[1:]) for o in outputs]
                objective = _objective(outputs, cotangents)
            grads = tape.gradient(objective, variables + floats)
            _fold_gradients(grads[: len(variables)], var_stats, totals, n)
            if not input_stats:
                input_stats = [GradStats() for _ in floats]
            _fold_gradients(grads[len(variables):], input_stats, None, n)
            for info in watched:
                for output in captured.pop(info.name, ()):
                    _fold_units(unit_stats, info, output, saturation_eps)
            samples += n
            captured.clear()

    for stats, total in zip(var_stats, totals):
        if total is not None and samples:
            mean = total / samples
            stats.rms = float(tf.sqrt(tf.reduce_mean(tf.square(mean))))
    return ProbeResult(
        samples=samples, units=unit_stats, variables=list(zip(variables, var_stats)),
        inputs=input_stats, output_shapes=output_shapes,
    )


def _structured(model: Any, tensors: list[tf.Tensor]) -> Any:
    """Arrange input tensors the way the model's inputs were declared (list, dict …)."""
    structure = getattr(model, "_inputs_struct", None)
    if structure is not None:
        return keras.tree.pack_sequence_as(structure, tensors)
    return tensors if len(tensors) > 1 else tensors[0]


def _objective(outputs: list[tf.Tensor], cotangents: list[np.ndarray | None]) -> tf.Tensor:
    terms = []
    for output, cotangent in zip(outputs, cotangents):
        if cotangent is None:
            continue  # integer/bool outputs carry no gradient
        n = tf.shape(output)[0]
        product = tf.cast(output, tf.float32) * cotangent
        terms.append(tf.reduce_mean(tf.reduce_sum(tf.reshape(product, [n, -1]), axis=1)))
    return tf.add_n(terms) if terms else tf.constant(0.0)


def _fold_gradients(
    grads: list[Any], stats: list[GradStats], totals: list[Any] | None, n: int
) -> None:
    for i, grad in enumerate(grads):
        if grad is None:
            stats[i].connected = False
            continue
        if isinstance(grad, tf.IndexedSlices):  # Embedding: sum duplicate rows
            grad = tf.convert_to_tensor(grad)
        grad = tf.cast(grad, tf.float32)
        if not bool(tf.reduce_all(tf.math.is_finite(grad))):
            stats[i].finite = False
        if bool(tf.reduce_any(tf.not_equal(grad, 0.0))):
            stats[i].nonzero = True
        if totals is not None:
            totals[i] = grad * n if totals[i] is None else totals[i] + grad * n


def _fold_units(
    unit_stats: dict[str, UnitStats], info: LayerInfo, output: Any, eps: float
) -> None:
    if not isinstance(output, tf.Tensor) or not output.dtype.is_floating:
        return
    values = tf.cast(output, tf.float32)
    if values.shape.rank == 1:
        values = values[:, None]
    units = int(values.shape[-1])
    values = tf.reshape(values, [-1, units])
    rule = info.unit_rule
    stats = unit_stats.get(info.name)
    if stats is None:
        stats = unit_stats[info.name] = UnitStats(rule=rule, units=units)
    stats.observations += int(values.shape[0])
    if rule.kind == "relu":
        active = tf.logical_and(tf.not_equal(values, 0.0), values < rule.high)
        seen = tf.reduce_any(active, axis=0).numpy()
        stats.ever_active = seen if stats.ever_active is None else stats.ever_active | seen
    else:
        near = tf.logical_or(values <= rule.low + eps, values >= rule.high - eps)
        count = tf.reduce_sum(tf.cast(near, tf.int64), axis=0).numpy()
        stats.saturated = count if stats.saturated is None else stats.saturated + count


@contextlib.contextmanager
def _restoring(variables: list[Any]) -> Iterator[None]:
    """Put the values of ``variables`` back on exit (training mode updates them)."""
    saved = [tf.identity(v) for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


@contextlib.contextmanager
def _capture_outputs(watched: list[LayerInfo]) -> Iterator[dict[str, list[Any]]]:
    """Wrap each watched layer's ``call`` so its outputs are collected; undo on exit."""
    captured: dict[str, list[Any]] = {}

    def wrap(info: LayerInfo) -> None:
        original = info.layer.call

        def call(*args: Any, **kwargs: Any) -> Any:
            output = original(*args, **kwargs)
            captured.setdefault(info.name, []).append(output)
            return output

        object.__setattr__(info.layer, "call", call)

    wrapped = []
    try:
        for info in watched:
            if "call" not in vars(info.layer):
                wrap(info)
                wrapped.append(info.layer)
        yield captured
    finally:
        for layer in wrapped:
            object.__delattr__(layer, "call")


def rms(values: Any) -> float:
    """Root mean square of a weight tensor, as a Python float."""
    array = np.asarray(values, dtype=np.float64)
    return math.sqrt(float(np.mean(np.square(array)))) if array.size else 0.0

"""GA411–GA413: each output's head read with its loss and metrics; GA412 from the layer order.

Pure functions over plain data, no TensorFlow: ``--no-probe`` gives the same findings.

- :func:`check` judges every output of a compiled file — the activation it ends in, its
  units, the loss (``from_logits``) and metrics — against one table,
  :data:`~gradaudit.model.head_table.HEAD_LOSS`: the first row that fits gives the
  finding. ``gradaudit explain GA412`` and the README print that same table.
- :func:`architecture` reads the model config alone (compiled or not): affine layers
  that collapse into one linear map, a Dropout or BatchNormalization around a
  sigmoid/softmax head, a squashing activation applied twice. It walks back from each
  output along the layers' first inputs, as :mod:`gradaudit.history.compile_info` does.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from gradaudit.history import compile_info
from gradaudit.history.training_types import CompileConfig, Head, TrainingState
from gradaudit.model.head_table import (
    ACCURACY,
    BINARY_LOSSES,
    CLASS_METRICS,
    HEAD_LOSS,
    HEAD_RANGES,
    PROBABILITY_ACTIVATIONS,
    REGRESSION_LOSSES,
    SIGMOIDS,
    Output,
    Pairing,
)
from gradaudit.report.catalogue import finding
from gradaudit.report.types import Finding, Severity

AFFINE = frozenset({
    "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose",
    "Conv2DTranspose", "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D",
    "DepthwiseConv1D", "DepthwiseConv2D", "Convolution1D", "Convolution2D", "Convolution3D",
})
"""Layers that compute an affine map of their input before their activation."""
KEEPING = frozenset({
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity",
})
"""Shape-keeping layers that apply no nonlinearity (a linear Activation counts too)."""
NOISE = KEEPING - {"ActivityRegularization", "Identity"}
NORMALISING = frozenset({"BatchNormalization"})
ACTIVATION_LAYERS = frozenset({"Activation", *compile_info.ACTIVATION_LAYERS})
SQUASHING = frozenset({*PROBABILITY_ACTIVATIONS, "tanh"})
"""Activations that make no sense twice in a row: the second squashes a squashed value."""
MAX_CHAIN = 256
"""Layers walked back from an output; a hostile config cannot make the walk longer."""


# --- head, loss and metrics ---------------------------------------------------------


def check(state: TrainingState) -> list[Finding]:
    """GA411–GA413: each output layer against the loss compiled for it."""
    compiled = state.compile
    if compiled is None:
        return []
    findings = []
    # Output name (the compile config's key) → the layer a finding is reported on.
    outputs = {head.output: head.layer for head in state.heads} or {
        name: name for name in compiled.losses}
    with_loss = [layer for name, layer in outputs.items()
                 if compiled.losses.get(name) and compiled.loss_weights.get(name, 1.0) != 0]
    for name, layer in outputs.items():
        loss = compiled.losses.get(name)
        weight = compiled.loss_weights.get(name, 1.0)
        if loss and weight == 0:
            findings.append(finding(
                "GA413", layer,
                f"the loss weight of this output is 0: its {_loss_name(loss)} contributes "
                "nothing, and what only this output uses does not train",
                loss=_loss_name(loss), loss_weight=weight))
        elif not loss and with_loss:
            findings.append(finding(
                "GA413", layer,
                f"this output has no loss (while {', '.join(with_loss)} have): what only this "
                "output uses does not train", loss=None, loss_weight=weight))
    for head in state.heads:
        mismatch = _judged(_output(head, compiled))
        if mismatch is not None:
            findings.append(mismatch)
    return findings


def _loss_name(name: str) -> str:
    """``keras.losses.BinaryCrossentropy`` or ``binary_crossentropy`` → ``binary_crossentropy``."""
    base = name.rsplit(".", 1)[-1]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower()


def _output(head: Head, compiled: CompileConfig) -> Output:
    raw = compiled.losses.get(head.output)
    loss = _loss_name(raw) if raw else None
    metrics = compiled.metrics.get(head.output, ())
    return Output(
        layer=head.layer, activation=(head.activation or "linear").lower(), units=head.units,
        loss=loss, from_logits=compiled.from_logits.get(head.output, False), metrics=metrics,
        accuracy=_accuracy(metrics, head.units, loss, by_loss=compiled.accuracy_by_loss))


def _accuracy(metrics: tuple[str, ...], units: int | None, loss: str | None, *,
              by_loss: bool) -> str | None:
    """What ``accuracy`` resolves to, by Keras's rule (``get_metric`` in
    ``keras/src/trainers/compile_utils.py``): binary for one output unit, sparse
    categorical for class ids (what a sparse crossentropy takes), else categorical
    (labels shaped like the output). Old writers also took binary under a binary
    crossentropy (``by_loss``); tf_keras saves the name it resolved."""
    resolved = [m for m in metrics if m.endswith("_accuracy")]
    if resolved:
        return resolved[0]
    if not ACCURACY & set(metrics):
        return None
    if units == 1 or (by_loss and loss in BINARY_LOSSES):
        return "binary_accuracy"
    if loss == "sparse_categorical_crossentropy":
        return "sparse_categorical_accuracy"
    return "categorical_accuracy"


def _judged(output: Output) -> Finding | None:
    """GA411 or GA412 from the first row of :data:`HEAD_LOSS` that fits, or None."""
    if output.loss is None and not (output.activation == "softmax" and output.units == 1):
        return None
    pairing = next((p for p in HEAD_LOSS if p.fits(output)), None)
    if pairing is None:
        return None
    units = "" if output.units is None else (
        f" over {output.units} unit{'s' if output.units != 1 else ''}")
    shown = f"{output.activation}{units}"
    if output.loss is not None:
        shown += f" into {output.loss} (from_logits={output.from_logits})"
    message = f"{shown}: {pairing.verdict}{_metric_note(output, pairing)}; use {pairing.instead}"
    return finding(pairing.code, output.layer, message, activation=output.activation,
                    units=output.units, loss=output.loss, from_logits=output.from_logits,
                    metrics=list(output.metrics), accuracy=output.accuracy)


def _metric_note(output: Output, pairing: Pairing) -> str:
    """What the metrics add: the accuracy a softmax under a binary loss reports, the
    metric that shows a sigmoid head is a classifier."""
    if pairing.loss == "binary crossentropy" and output.accuracy == "binary_accuracy":
        chance = 1 - 1 / (output.units or 2)
        return (f"; its accuracy metric is binary accuracy, the mean over the {output.units} "
                f"units, ≈{chance:.2f} for a model that predicts no class at all")
    if pairing.loss == "binary crossentropy" and output.accuracy is not None:
        return (f"; its accuracy metric resolves to {output.accuracy} (Keras 3 and tf.keras ≥ "
                "2.2 choose it from the label shape; Keras ≤ 2.3 chose binary accuracy here)")
    if output.loss in REGRESSION_LOSSES and output.activation in SIGMOIDS:
        shown = [m for m in output.metrics if m in ACCURACY
                 or m.endswith("accuracy") or m in CLASS_METRICS]
        return f" (the metrics {', '.join(shown)} show a classifier)"
    return ""


def unreachable_labels(state: TrainingState, labels: Mapping[str, np.ndarray]
                       ) -> list[Finding]:
    """GA412 where the user's labels (``--inputs``, by output name) lie outside what a
    bounded head (:data:`HEAD_RANGES`) can output, under a regression loss: those targets
    cannot be reached, and the loss drives the head into its flat ends chasing them.
    Probability losses get no finding here: their labels are checked before the probe."""
    compiled = state.compile
    if compiled is None:
        return []
    findings = []
    for head in state.heads:
        raw = compiled.losses.get(head.output)
        activation = (head.activation or "linear").lower()
        given = labels.get(head.output)
        if (given is None or raw is None or _loss_name(raw) not in REGRESSION_LOSSES
                or activation not in HEAD_RANGES or not given.size):
            continue
        low, high = HEAD_RANGES[activation]
        values = np.asarray(given, dtype=np.float64)
        outside = float(np.mean((values < low) | (values > high)))
        if outside == 0.0:
            continue
        reach = f"[{low:g}, {high:g}]".replace("inf", "∞")
        findings.append(finding(
            "GA412", head.layer,
            f"{activation} head under {_loss_name(raw)}: {outside:.0%} of the supplied "
            f"labels lie outside {reach}, what it can output (labels in "
            f"[{values.min():g}, {values.max():g}]): unreachable targets, chased into the "
            "head's flat ends; use a linear head, or scale the labels into its range",
            activation=activation, loss=_loss_name(raw), head_range=[low, high],
            label_range=[float(values.min()), float(values.max())],
            share_outside=round(outside, 4)))
    return findings


# --- the architecture alone -----------------------------------------------------------


def architecture(config: Any) -> list[Finding]:
    """GA412 from the layer order in the model ``config``: what no loss can repair.

    Info: two or more affine layers (Dense, Conv) with only shape-keeping linear layers
    between them collapse into one linear map. Warning: a Dropout or BatchNormalization
    between the last affine layer and its separate sigmoid/softmax, or after the head;
    a squashing activation applied twice in a row.
    """
    found: dict[tuple[str, str], Finding] = {}
    for path, layer, model in compile_info.outputs(config):
        prefix = path[: len(path) - len(_name(layer))]
        chain = list(reversed(list(_chain(model, layer))))  # input side first
        for item in (*_collapses(chain, prefix), *_around_head(chain, prefix),
                     *_twice(chain, prefix)):
            found.setdefault((item.layer, item.message), item)
    return list(found.values())


def _chain(model: Any, layer: Any) -> Iterator[dict[str, Any]]:
    """From the output layer back along first inputs, to the input or a loop."""
    seen: set[int] = set()
    for _ in range(MAX_CHAIN):
        if not isinstance(layer, dict) or id(layer) in seen:
            return
        seen.add(id(layer))
        yield layer
        layer = compile_info.input_layer(model, layer)


def _name(layer: dict[str, Any]) -> str:
    inner = layer.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    return name if isinstance(name, str) else "?"


def _class(layer: dict[str, Any]) -> str:
    name = layer.get("class_name")
    return name if isinstance(name, str) else ""


def _keeps(layer: dict[str, Any]) -> bool:
    """Shape-keeping and linear: a Dropout, a linear Activation."""
    return _class(layer) in KEEPING or (
        _class(layer) == "Activation" and compile_info.activation_of(layer) == "linear")


def _nonlinear(layer: dict[str, Any]) -> str | None:
    """The nonlinearity a layer applies (its activation), None for a linear one."""
    activation = compile_info.activation_of(layer)
    return None if activation in (None, "linear") else activation


def _collapses(chain: list[dict[str, Any]], prefix: str) -> Iterator[Finding]:
    """Runs of ≥ 2 affine layers, all but the last linear, joined by linear layers only."""
    run: list[dict[str, Any]] = []
    for layer in [*chain, {}]:  # {}: ends the last run
        if _class(layer) in AFFINE:
            run.append(layer)
            if _nonlinear(layer) is None:
                continue
        elif run and _keeps(layer):
            continue
        if len(run) >= 2:
            names = [prefix + _name(lay) for lay in run]
            shown = [f"{prefix}{_name(lay)} ({_class(lay)})" for lay in run]
            kinds = ", ".join(shown if len(shown) <= 4 else [
                *shown[:2], f"… {len(shown) - 3} more", shown[-1]])
            yield dataclasses.replace(finding(
                "GA412", names[-1],
                f"{kinds} follow one another with no nonlinearity between them: they "
                "collapse into one linear map; put an activation between them, or drop one",
                layers=names), severity=Severity.INFO)
        run = []


def _around_head(chain: list[dict[str, Any]], prefix: str) -> Iterator[Finding]:
    """A Dropout or BatchNormalization between the last affine layer and its separate
    sigmoid/softmax, or after the head: in the layers from the last affine one out."""
    tail: list[dict[str, Any]] = []
    for layer in reversed(chain):
        kind = _class(layer)
        if kind not in AFFINE | NOISE | NORMALISING | ACTIVATION_LAYERS | KEEPING:
            break
        tail.insert(0, layer)
        if kind in AFFINE:
            break
    squash = next((i for i, lay in enumerate(tail)
                   if _nonlinear(lay) in PROBABILITY_ACTIVATIONS), None)
    if squash is None:
        return
    head = f"{_nonlinear(tail[squash])} head {prefix}{_name(tail[squash])}"
    for i, layer in enumerate(tail):
        kind = _class(layer)
        if i == squash or not (kind in NOISE or kind in NORMALISING) or (
                i < squash and _class(tail[0]) not in AFFINE):
            continue
        where = f"after the {head}" if i > squash else (
            f"between {prefix}{_name(tail[0])} and its {head}")
        effect = ("zeroes some outputs and scales the rest by 1/(1 - rate) in training"
                  if kind in NOISE else "rescales them by batch statistics")
        yield finding(
            "GA412", prefix + _name(layer),
            f"{kind} {where}: it {effect}, so the loss no longer reads the "
            f"{'probabilities' if i > squash else 'logits'} the model computes; move it "
            f"before {prefix}{_name(tail[0])}", activation=_nonlinear(tail[squash]))


def _twice(chain: list[dict[str, Any]], prefix: str) -> Iterator[Finding]:
    """A squashing activation applied to a squashed value, with only linear
    shape-keeping layers between (Dense(softmax) → Activation('softmax'))."""
    before: dict[str, Any] | None = None
    for layer in chain:
        activation = _nonlinear(layer)
        if activation in SQUASHING and before is not None and _class(layer) in ACTIVATION_LAYERS:
            yield finding(
                "GA412", prefix + _name(layer),
                f"{activation} applied to the {_nonlinear(before)} output of "
                f"{prefix}{_name(before)}: the values are squashed twice, and the gradient "
                "shrinks with each; keep one", activation=activation)
        if activation in SQUASHING:
            before = layer
        elif activation is not None or not _keeps(layer):
            before = None

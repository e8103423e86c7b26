"""Unknown input axes sized so that no layer's output is empty.

Every unknown (None) axis starts at ``DEFAULT_DIM`` (32). An audio CNN that
pools its time axis six times turns 32 frames into none: global pooling then
returns NaN, and every gradient is NaN — findings about the probe, not the
model. So before probing, one sample runs in inference mode (nothing in the
model changes) with the unknown axes at 32, then 64, 128 … up to ``MAX_DIM``,
until no layer's output and no model output has an empty axis and the model
runs at all (a convolution wider than its input raises instead). Axes given
with ``--input-shape`` are the user's and are never changed, only checked.

The same one-sample pass counts the values every layer outputs for one sample,
from which :mod:`.memory` estimates a probe step's memory; a model whose graph
records every layer's output shape (a functional model with its input shapes
known) is counted from those shapes instead, without a run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import tensorflow as tf

from gradaudit.errors import AuditError, first_line
from gradaudit.model.interface import AuditedModel
from gradaudit.model.specs import DEFAULT_DIM, InputSpec, fixed_batch
from gradaudit.options import Options
from gradaudit.probe.random_inputs import random_batches

MAX_DIM = 4096
"""The largest size tried for an unknown axis (128 times the default)."""


@dataclass(frozen=True)
class Sized:
    """The specs to probe with, a note when the unknown axes had to grow, and the
    values the model's layers and outputs hold for one sample of them."""

    specs: list[InputSpec]
    output_elements: int
    note: str | None = None


@dataclass(frozen=True)
class _Trial:
    """One sample through the model: what is empty or failed (None: nothing), and the
    values its layers and outputs hold."""

    problem: str | None
    output_elements: int = 0


def size_unknown_axes(model: AuditedModel, specs: list[InputSpec], options: Options) -> Sized:
    """The smallest doubling of the unknown axes at which nothing in the model is empty."""
    given = {name for name, _ in options.input_shape}
    growable = {spec.name for spec in specs if None in spec.declared
                and spec.name not in given and not (None in given and len(specs) == 1)}
    if not growable:
        counted = model.output_elements(specs)
        if counted is not None:  # every axis known and declared: nothing to size or check
            return Sized(specs, counted)
        trial = _one_sample(model, specs, options)
        # Sized by the user: checked. Fully declared: the probe says what fails.
        if trial.problem is not None and any(None in spec.declared for spec in specs):
            raise AuditError(f"{trial.problem} with the --input-shape given")
        return Sized(specs, trial.output_elements)
    size, first_problem = DEFAULT_DIM, None
    while True:
        shaped = [replace(spec, shape=tuple(size if d is None else d for d in spec.declared))
                  if spec.name in growable else spec for spec in specs]
        trial = _one_sample(model, shaped, options)
        problem = trial.problem
        if problem is None:
            break
        first_problem = first_problem or problem
        # One sample over --max-input-elements is refused; a batch is made smaller.
        elements = sum(math.prod(2 * size if d is None else d for d in spec.declared)
                       if spec.name in growable else math.prod(spec.shape) for spec in specs)
        if size * 2 > MAX_DIM or elements > options.limits.max_input_elements:
            raise AuditError(f"{problem} with every unknown input axis at {size}; give the "
                             "input's shape with --input-shape (without the batch axis)")
        size *= 2
    if size == DEFAULT_DIM:
        return Sized(shaped, trial.output_elements)
    return Sized(shaped, trial.output_elements,
                 note=f"unknown input axes sized {size}, not {DEFAULT_DIM}: at "
                      f"{DEFAULT_DIM}, {first_problem}")


def output_elements(model: AuditedModel, specs: list[InputSpec], options: Options) -> int:
    """The values the model's layers and outputs hold for one sample of ``specs``
    (shaped by the user's data: nothing to size), 0 if it cannot run."""
    counted = model.output_elements(specs)
    return counted if counted is not None else _one_sample(model, specs, options).output_elements


def _one_sample(model: AuditedModel, specs: list[InputSpec], options: Options) -> _Trial:
    """One sample of ``specs`` through the model in inference mode, every leaf layer watched
    (one batch of the size a stateful model fixes, counted per sample)."""
    n = fixed_batch(specs) or 1
    (batch,) = random_batches(specs, n, n, options.seed, options.input_dist, options.input_range)
    watched = [info for info in model.layers if info.op is None and not info.is_container]
    try:
        result = model.run([tf.constant(x) for x in batch], training=False, watched=watched)
    except Exception as exc:  # e.g. a VALID convolution wider than its input
        return _Trial(f"the model cannot run ({first_line(exc)})")
    named = [(f"layer '{name}' gives an empty output", value)
             for name, values in result.activations.items() for value in values]
    named += [(f"output {index} is empty", output) for index, output in enumerate(result.outputs)]
    shapes = [(what, tuple(value.shape)) for what, value in named]
    problem = next((f"{what} {shape[1:]}" for what, shape in shapes if 0 in shape), None)
    return _Trial(problem, sum(math.prod(shape) for _, shape in shapes) // n)

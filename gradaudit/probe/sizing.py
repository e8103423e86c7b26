"""Unknown input axes sized so that no layer's output is empty.

Every unknown (None) axis starts at ``DEFAULT_DIM`` (32). An audio CNN that
pools its time axis six times turns 32 frames into none: global pooling then
returns NaN, and every gradient is NaN — findings about the probe, not the
model. So before probing, one sample runs in inference mode (nothing in the
model changes) with the unknown axes at 32, then 64, 128 … up to ``MAX_DIM``,
until no layer's output and no model output has an empty axis and the model
runs at all (a convolution wider than its input raises instead). Axes given
with ``--input-shape`` are the user's and are never changed, only checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import tensorflow as tf

from gradaudit.errors import AuditError, first_line
from gradaudit.model.interface import AuditedModel
from gradaudit.model.specs import DEFAULT_DIM, InputSpec
from gradaudit.options import Options
from gradaudit.probe.random_inputs import random_batches

MAX_DIM = 4096
"""The largest size tried for an unknown axis (128 times the default)."""


@dataclass(frozen=True)
class Sized:
    """The specs to probe with, and a note when the unknown axes had to grow."""

    specs: list[InputSpec]
    note: str | None = None


def size_unknown_axes(model: AuditedModel, specs: list[InputSpec], options: Options) -> Sized:
    """The smallest doubling of the unknown axes at which nothing in the model is empty."""
    given = {name for name, _ in options.input_shape}
    growable = {spec.name for spec in specs if None in spec.declared
                and spec.name not in given and not (None in given and len(specs) == 1)}
    if not growable:
        if any(None in spec.declared for spec in specs):  # sized by the user: check only
            problem = _empty_output(model, specs, options)
            if problem is not None:
                raise AuditError(f"{problem} with the --input-shape given")
        return Sized(specs)
    size, first_problem = DEFAULT_DIM, None
    while True:
        trial = [replace(spec, shape=tuple(size if d is None else d for d in spec.declared))
                 if spec.name in growable else spec for spec in specs]
        problem = _empty_output(model, trial, options)
        if problem is None:
            break
        first_problem = first_problem or problem
        batch = min(options.batch_size, options.samples)
        elements = batch * sum(math.prod(2 * size if d is None else d for d in spec.declared)
                               if spec.name in growable else math.prod(spec.shape)
                               for spec in specs)
        if size * 2 > MAX_DIM or elements > options.limits.max_input_elements:
            raise AuditError(f"{problem} with every unknown input axis at {size}; give the "
                             "input's shape with --input-shape (without the batch axis)")
        size *= 2
    if size == DEFAULT_DIM:
        return Sized(specs)
    return Sized(trial, note=f"unknown input axes sized {size}, not {DEFAULT_DIM}: at "
                             f"{DEFAULT_DIM}, {first_problem}")


def _empty_output(model: AuditedModel, specs: list[InputSpec], options: Options) -> str | None:
    """What is empty (or fails) when one sample of ``specs`` runs, or None."""
    (batch,) = random_batches(specs, 1, 1, options.seed, options.input_dist, options.input_range)
    watched = [info for info in model.layers if info.op is None and not info.is_container]
    try:
        result = model.run([tf.constant(x) for x in batch], training=False, watched=watched)
    except Exception as exc:  # e.g. a VALID convolution wider than its input
        return f"the model cannot run ({first_line(exc)})"
    for name, values in result.activations.items():
        for value in values:
            if 0 in tuple(value.shape):
                return f"layer '{name}' gives an empty output {tuple(value.shape)[1:]}"
    for index, output in enumerate(result.outputs):
        if 0 in tuple(output.shape):
            return f"output {index} is empty {tuple(output.shape)[1:]}"
    return None

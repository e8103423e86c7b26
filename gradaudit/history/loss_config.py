"""Each output's compiled loss, in the order the model returns its outputs, for the
probe's objective.

:mod:`.compile_info` reads each loss once, as written (:class:`LossSpec`: the class
or function name and the object's config — label smoothing, reduction, ``delta`` …);
the checks read its name and ``from_logits``, the probe rebuilds it whole. Nothing
here imports TensorFlow or Keras, and nothing here is rebuilt:
:mod:`gradaudit.probe.objective` does that, from Keras's own losses or a class an
``--import``ed module registered, never from a module path the file names (a model
file is untrusted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradaudit.history.compile_info import heads, output_names
from gradaudit.history.training_types import CompileConfig, LossSpec


@dataclass(frozen=True)
class CompiledLosses:
    """A model's outputs (names in output order) with their losses and head sizes."""

    outputs: tuple[str, ...]
    losses: dict[str, LossSpec]
    """Only the outputs that have a loss."""
    classes: dict[str, int | None]
    """Output name → its head's units (the classes a label may name), where known."""
    notes: tuple[str, ...] = ()


def compiled_losses(config: Any, compiled: CompileConfig | None,
                    notes: tuple[str, ...] = ()) -> CompiledLosses:
    """The losses ``compiled`` gives the outputs of the model ``config`` describes (none
    when it is None: the probe then differentiates the projection)."""
    outputs = output_names(config)
    classes = {head.output: head.units for head in heads(config)}
    return CompiledLosses(_run_order(config, outputs),
                          {} if compiled is None else dict(compiled.specs), classes, notes)


def _run_order(config: Any, outputs: list[str]) -> tuple[str, ...]:
    """``outputs`` in the order the model returns them: Keras flattens a dict of outputs
    by sorted key (``keras.tree.flatten``), whatever order the config lists them in."""
    inner = config.get("config") if isinstance(config, dict) else None
    declared = inner.get("output_layers") if isinstance(inner, dict) else None
    if not isinstance(declared, dict) or len(declared) != len(outputs):
        return tuple(outputs)
    by_key = dict(zip(declared, outputs, strict=True))
    return tuple(by_key[key] for key in sorted(by_key))

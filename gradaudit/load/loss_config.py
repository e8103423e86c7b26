"""Each output's compiled loss as plain data, for the probe's objective.

:mod:`.compile_info` keeps what the head/loss checks need (the loss's name and
``from_logits``); the probe rebuilds the loss itself, so it needs all of it: the
class or function name as written and the object's config (label smoothing,
reduction, ``delta`` …). Nothing here imports TensorFlow or Keras, and nothing
here is rebuilt: :mod:`gradaudit.probe.objective` does that, from Keras's own
losses or a class an ``--import``ed module registered, never from a module path
the file names (a model file is untrusted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradaudit.load.compile_info import (
    MAX_NAME,
    Garbled,
    _canonical,
    _is_object,
    _per_output,
    _weight,
    heads,
    output_names,
)


@dataclass(frozen=True)
class LossSpec:
    """One output's loss as the compile config states it."""

    name: str
    """Canonical snake-case name (``binary_crossentropy``), what labels are drawn for."""
    written: str
    """The name to rebuild from: a loss class (``BinaryCrossentropy``), a loss function
    (``mse``) or a registered name (``my_pkg>FocalLoss``)."""
    is_class: bool
    config: dict[str, Any] = field(default_factory=dict)
    """The loss object's config (empty for a function)."""
    weight: float = 1.0


@dataclass(frozen=True)
class CompiledLosses:
    """A model's outputs (names in output order) with their losses and head sizes."""

    outputs: tuple[str, ...]
    losses: dict[str, LossSpec]
    """Only the outputs that have a loss."""
    classes: dict[str, int | None]
    """Output name → its head's units (the classes a label may name), where known."""
    notes: tuple[str, ...] = ()


def compiled_losses(config: Any, raw_compile: Any, notes: tuple[str, ...] = ()
                    ) -> CompiledLosses:
    """The losses ``raw_compile`` gives the outputs of the model ``config`` describes."""
    outputs = output_names(config)
    specs, problems = loss_specs(raw_compile, outputs)
    classes = {head.output: head.units for head in heads(config)}
    return CompiledLosses(_run_order(config, outputs), specs, classes,
                          notes + tuple(problems))


def _run_order(config: Any, outputs: list[str]) -> tuple[str, ...]:
    """``outputs`` in the order the model returns them: Keras flattens a dict of outputs
    by sorted key (``keras.tree.flatten``), whatever order the config lists them in."""
    inner = config.get("config") if isinstance(config, dict) else None
    declared = inner.get("output_layers") if isinstance(inner, dict) else None
    if not isinstance(declared, dict) or len(declared) != len(outputs):
        return tuple(outputs)
    by_key = dict(zip(declared, outputs, strict=True))
    return tuple(by_key[key] for key in sorted(by_key))


def loss_specs(raw: Any, outputs: list[str]) -> tuple[dict[str, LossSpec], list[str]]:
    """Output name → its loss, for the outputs that have one, and notes.

    A config that cannot be read gives no losses and a note (the probe then uses the
    projection), never an exception.
    """
    if not isinstance(raw, dict) or raw.get("loss") is None:
        return {}, []
    try:
        losses = _per_output(raw.get("loss"), outputs, "loss")
        weights = _per_output(raw.get("loss_weights"), outputs, "loss_weights")
        specs = {name: _spec(item, _weight(weights.get(name)))
                 for name, item in losses.items() if item is not None}
    except Garbled as garbled:
        return {}, [f"the compiled loss cannot be read ({garbled}): the probe differentiates "
                    "a random projection of the outputs"]
    return specs, []


def file_losses(path: str, fmt: str, config: dict[str, Any] | None) -> CompiledLosses | None:
    """The losses a ``.keras`` (``compile_config``) or legacy ``.h5`` (``training_config``)
    file was compiled with; None for a SavedModel."""
    if config is None or fmt not in ("keras", "h5"):
        return None
    notes: list[str] = []
    if fmt == "keras":
        raw = config.get("compile_config")
    else:
        from gradaudit.load.training_state import _h5_attributes

        try:
            raw, _ = _h5_attributes(Path(path), notes)
        except Exception as exc:  # a hostile file may make h5py fail anywhere
            notes = [f"the training config cannot be read ({type(exc).__name__})"]
            raw = None
    return compiled_losses(config, raw, tuple(notes))


def _spec(item: Any, weight: float) -> LossSpec:
    if isinstance(item, str):
        return LossSpec(_canonical(item), item[:MAX_NAME], False, weight=weight)
    if not _is_object(item):
        raise Garbled(f"a loss is a {type(item).__name__}, not a name or a loss object")
    config = item.get("config")
    if item["class_name"] == "function":
        if not isinstance(config, str):
            raise Garbled("a loss function is saved without its name")
        return LossSpec(_canonical(config), config[:MAX_NAME], False, weight=weight)
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise Garbled(f"the config of loss {item['class_name'][:MAX_NAME]} is not a mapping")
    registered = item.get("registered_name")
    written = registered if isinstance(registered, str) and registered else item["class_name"]
    return LossSpec(_canonical(item["class_name"]), written[:MAX_NAME], True, dict(config),
                    weight)

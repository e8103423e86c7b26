"""What a trained file says about its training: the optimizer state and the compile config.

Keras saves the optimizer's slots (Adam's first and second moments, RMSprop's
mean square, SGD's momentum) and its iteration count with the weights, and the
compile config (loss, ``from_logits``, loss weights, optimizer settings) with
the model. Both are read here from the file alone — h5py and json, no
TensorFlow, nothing of the file executed — so ``--no-probe`` can answer in
about a second. Every slot is mapped to the trainable variable it belongs to
(by name where the file names it, otherwise by order and shape); where that is
ambiguous, or anything in the file is malformed, the state is returned with a
note saying what was wrong and the training checks skip what they cannot trust.

Slots are reduced to per-unit vectors as they are read (see :class:`VariableState`),
one variable at a time and a block of rows at a time, never held whole: a large
model's optimizer state is two or three times its weights.

- ``.keras``: ``model.weights.h5`` → ``optimizer/vars/0, 1, …`` (a
  LossScaleOptimizer's inner optimizer: ``optimizer/inner_optimizer/vars``) and
  ``config.json`` → ``compile_config``.
- legacy ``.h5``: ``optimizer_weights`` (its ``weight_names`` give the order and
  the names) and the ``training_config`` attribute.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from gradaudit.errors import AuditError, first_line
from gradaudit.history import compile_info, optimizer_slots, slot_mapping
from gradaudit.history.optimizer_slots import Optimizer
from gradaudit.history.slot_mapping import Slot
from gradaudit.history.trainable_vars import Block, Unmapped, h5_blocks, keras_blocks
from gradaudit.history.training_types import (
    OPTIMIZERS,
    CompileConfig,
    Head,
    TrainingState,
    VariableState,
)
from gradaudit.load import archive, h5read, limits
from gradaudit.load.prescan import read_model_config
from gradaudit.options import Limits

__all__ = ["OPTIMIZERS", "CompileConfig", "Head", "TrainingState", "VariableState",
           "read_training_state", "trainable_by_layer", "trainable_params"]

LSO_OWN_VARIABLES = 4
"""A Keras 3 LossScaleOptimizer's own variables before its inner optimizer's:
iteration, learning_rate, step_counter, dynamic_scale."""
UNIQUIFIER = re.compile(r"_\d+$")


def read_training_state(path: str, fmt: str, *, max_params: int = Limits().max_params,
                        config: dict[str, Any] | None = None) -> TrainingState:
    """The training evidence in a ``.keras`` or ``.h5`` file (fmt "keras" | "h5").

    Never raises for a malformed or hostile file: what cannot be read becomes a
    note. Sizes are checked before anything is read into memory: the archive as
    the loader checks it, the model's weight datasets against ``max_params``; a
    slot is read only when its shape is its variable's. A caller that has run
    those gates and read the model ``config`` passes it, so neither is done twice.
    """
    try:
        return _read(Path(path), fmt, max_params, config)
    except Exception as exc:  # a hostile file may make h5py or json fail anywhere
        return TrainingState(notes=(f"the training state could not be read ({first_line(exc)})",))


def trainable_params(path: str, fmt: str, config: dict[str, Any]) -> int | None:
    """The trainable parameters of a ``.keras`` or ``.h5`` model, from its config's
    ``trainable`` flags and its weight datasets (h5py, nothing run): what a file saved
    without compile, which holds no optimizer state, says. None when it cannot tell
    (a subclassed model's config lists no layers). ``config`` is past the size gates."""
    by_layer = trainable_by_layer(path, fmt, config)
    return None if by_layer is None else sum(by_layer.values())


def trainable_by_layer(path: str, fmt: str, config: dict[str, Any]) -> dict[str, int] | None:
    """:func:`trainable_params` per layer (qualified name), for rows typed from the file."""
    file = Path(path)
    with h5read.weights_file(file, fmt) as handle:
        if handle is None:
            return None
        try:
            blocks = (keras_blocks(config, handle) if fmt == "keras"
                      else h5_blocks(config, h5read.group(handle, "model_weights")))
        except Unmapped:
            return None
    counts: dict[str, int] = {}
    for weight in (w for block in blocks for w in block.flat()):
        counts[weight.layer] = counts.get(weight.layer, 0) + math.prod(weight.shape)
    return counts


def _read(path: Path, fmt: str, max_params: int,
          checked: dict[str, Any] | None) -> TrainingState:
    if fmt not in ("keras", "h5"):
        return TrainingState(notes=("the optimizer state of a SavedModel is not read",))
    try:
        config = checked if checked is not None else _gated_config(path, fmt, max_params)
    except AuditError as exc:
        return TrainingState(notes=(f"the training state is not read: {exc}",))
    notes: list[str] = []
    version = None
    if fmt == "keras":
        raw_compile = config.get("compile_config")
    else:
        raw_compile, version = _h5_attributes(path, notes)
    outputs = compile_info.output_names(config)
    heads = tuple(compile_info.heads(config))
    compiled, problems = compile_info.compile_config(raw_compile, outputs, keras_version=version)
    notes += problems
    raw_optimizer = (raw_compile.get("optimizer" if fmt == "keras" else "optimizer_config")
                     if isinstance(raw_compile, dict) else None)
    optimizer, problem = optimizer_slots.optimizer_of(raw_optimizer)
    notes += [problem] if problem else []
    base = TrainingState(compile=compiled, heads=heads, keras_version=version)
    if optimizer is None:
        if isinstance(raw_compile, dict) and not problem:
            notes.append("the compile config names no optimizer")
        return _with(base, notes=notes)
    try:
        if checked is None:
            limits.check_weight_datasets(path, fmt, max_params)
    except AuditError as exc:
        notes.append(f"the optimizer state is not read: {exc}")
        return _with(base, optimizer_config=optimizer.config, notes=notes)
    flavor = "keras3" if fmt == "keras" or (version or "").startswith("3.") else (
        "tf_keras" if optimizer.config.get("is_legacy_optimizer") is False else "legacy")
    with h5read.weights_file(path, fmt) as handle:
        if handle is None:
            notes.append("the archive holds no model.weights.h5")
            return _with(base, optimizer_config=optimizer.config, notes=notes)
        reader = _keras_slots if fmt == "keras" else _h5_slots
        return reader(handle, config, optimizer, flavor, base, notes)


def _gated_config(path: Path, fmt: str, max_params: int) -> dict[str, Any]:
    """The model config, after the archive checks the loader runs (AuditError)."""
    if fmt == "keras":
        archive.check_archive(path, max_params)
    return read_model_config(path, fmt)


def _with(state: TrainingState, **changes: Any) -> TrainingState:
    """``state`` with ``changes``; ``notes``, when given, are every note so far."""
    if "notes" in changes:
        changes["notes"] = tuple(changes["notes"])
    return replace(state, **changes)


def _h5_attributes(path: Path, notes: list[str]) -> tuple[Any, str | None]:
    """The ``training_config`` (decoded JSON, or None) and ``keras_version`` of an HDF5 file."""
    with h5read.weights_file(path, "h5") as handle:
        raw = h5read.text(h5read.attr(handle, "training_config"))
        version = h5read.text(h5read.attr(handle, "keras_version"))
    if raw is None:
        return None, version
    try:
        return json.loads(raw), version
    except (ValueError, RecursionError):
        notes.append("the training_config attribute is not valid JSON: the compile config "
                     "and optimizer are not read")
        return None, version


# --- .keras -------------------------------------------------------------------------------

def _keras_slots(weights: Any, config: dict[str, Any], optimizer: Optimizer, flavor: str,
                 base: TrainingState, notes: list[str]) -> TrainingState:
    path = "optimizer/inner_optimizer/vars" if optimizer.wrapped else "optimizer/vars"
    store, skip = h5read.group(weights, path), 0
    if optimizer.wrapped and not h5read.members(store):
        # Seen after a legacy .h5 save of the same model: all in optimizer/vars.
        store, skip = h5read.group(weights, "optimizer/vars"), LSO_OWN_VARIABLES
    if store is None:
        return _untrained(base, optimizer, notes)
    keys = h5read.members(store)
    datasets = [h5read.dataset(store, str(i)) for i in range(len(keys))]
    if sorted(keys) != sorted(str(i) for i in range(len(keys))) or None in datasets:
        notes.append("the optimizer variables in model.weights.h5 are not numeric datasets "
                     "0, 1, …: the optimizer state is not read")
        return _with(base, optimizer=optimizer.name, optimizer_config=optimizer.config,
                     notes=notes)
    lr_raw = optimizer.config.get("learning_rate")
    has_rate = isinstance(lr_raw, (int, float)) and not isinstance(lr_raw, bool)
    iterations = _iterations(datasets[skip] if len(datasets) > skip else None, notes)
    rate = h5read.scalar(datasets[skip + 1]) if has_rate and len(datasets) > skip + 1 else None
    tail = 1 if optimizer.name == "Nadam" else 0  # its u_product
    first = skip + 1 + int(has_rate)
    slots = [Slot(None, h5read.shape(d), d) for d in datasets[first : len(datasets) - tail]]
    state = _with(base, optimizer=optimizer.name, optimizer_config=optimizer.config,
                  learning_rate=rate if rate is not None else _config_rate(optimizer))
    return _judged(state, notes, optimizer, flavor, slots, iterations,
                   lambda: keras_blocks(config, weights), named=False)


# --- legacy .h5 ---------------------------------------------------------------------------

def _h5_slots(handle: Any, config: dict[str, Any], optimizer: Optimizer, flavor: str,
              base: TrainingState, notes: list[str]) -> TrainingState:
    group = h5read.group(handle, "optimizer_weights")
    if group is None:
        return _untrained(base, optimizer, notes)
    names = h5read.texts(group, "weight_names")
    state = _with(base, optimizer=optimizer.name, optimizer_config=optimizer.config,
                  learning_rate=_config_rate(optimizer))
    if names is None:
        notes.append("optimizer_weights lists no weight_names: the optimizer state is not read")
        return _with(state, notes=notes)
    slots: list[Slot] = []
    iterations = rate = None
    for name in names:
        data = h5read.dataset(group, name)
        if data is None:
            notes.append(f"optimizer weight {name[:80]} is missing or not numbers: "
                         "the optimizer state is not read")
            return _with(state, notes=notes)
        short = name.removesuffix(":0")
        token = UNIQUIFIER.sub("", short.split("/")[-1])
        if h5read.shape(data) == () and token in optimizer_slots.BOOKKEEPING_NAMES:
            if token in optimizer_slots.ITERATION_NAMES:
                iterations = data  # the last one: a wrapper's own come before its inner's
            elif token in optimizer_slots.LEARNING_RATE_NAMES:
                rate = h5read.scalar(data)
            continue
        slots.append(Slot(short, h5read.shape(data), data))
    if rate is not None:
        state = _with(state, learning_rate=rate)
    if iterations is None:
        notes.append("the optimizer state names no iteration count")
    steps = _iterations(iterations, notes) if iterations is not None else None
    return _judged(state, notes, optimizer, flavor, slots, steps,
                   lambda: h5_blocks(config, h5read.group(handle, "model_weights")),
                   named=True)


# --- common -------------------------------------------------------------------------------

def _untrained(base: TrainingState, optimizer: Optimizer, notes: list[str]) -> TrainingState:
    notes.append(f"compiled with {optimizer.name}, but the file holds no optimizer state "
                 "(never trained, or saved without it)")
    return _with(base, optimizer_config=optimizer.config,
                 learning_rate=_config_rate(optimizer), notes=notes)


def _config_rate(optimizer: Optimizer) -> float | None:
    for key in ("learning_rate", "lr"):
        value = optimizer.config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _iterations(data: Any, notes: list[str]) -> int | None:
    value = h5read.scalar(data)
    if value is None or not value.is_integer() or value < 0:
        notes.append("the optimizer's iteration count is not a whole number ≥ 0")
        return None
    return int(value)


def _judged(state: TrainingState, notes: list[str], optimizer: Optimizer, flavor: str,
            slots: list[Slot], iterations: int | None, blocks_of: Callable[[], list[Block]],
            *, named: bool) -> TrainingState:
    """Map the slots to the trainable variables and reduce each variable's slots.

    ``named``: the file names its slots (a legacy ``.h5``), so they are matched by
    name first, and unnamed counters may lead the list.
    """
    spec = optimizer.spec
    hyper, problem = optimizer_slots.hyperparameters(optimizer)
    switches, other = optimizer_slots.flags(optimizer)
    if switches and switches["accumulate"] and iterations is not None:
        # The counter counts micro-steps; the slots change once per accumulated step.
        iterations //= int(optimizer.config["gradient_accumulation_steps"])
    state = _with(state, iterations=iterations)
    if spec is None:
        notes.append(f"gradaudit does not read the slots of optimizer {optimizer.name} "
                     f"(it reads {', '.join(sorted(OPTIMIZERS))}): no per-unit history")
        return _with(state, notes=notes)
    if hyper is None or switches is None:
        return _with(state, notes=[*notes, problem or other or ""])
    candidates = optimizer_slots.layouts(optimizer, hyper, switches, flavor)
    if not candidates[0][0]:
        notes.append(f"{optimizer.name} without momentum keeps no state per variable: "
                     "no per-unit history")
        return _with(state, notes=notes)
    if not slots:
        if iterations:
            notes.append("the optimizer state holds no slots although it took "
                         f"{iterations} steps: no per-unit history")
        return _with(state, notes=notes)
    try:
        blocks = blocks_of()
    except Unmapped as exc:
        notes.append(f"{exc}: the optimizer slots are not mapped")
        return _with(state, notes=notes)
    by_name = slot_mapping.by_name([w for b in blocks for w in b.flat()], slots,
                                 optimizer_slots.tokens(spec)) if named else None
    mapped, problems = by_name or slot_mapping.by_order(
        blocks, slots, candidates, droppable=2 if named else 0)
    notes += problems
    variables = _reduced(mapped, optimizer, hyper, iterations, legacy=flavor == "legacy",
                         notes=notes)
    return _with(state, variables=variables, notes=notes)


def _reduced(mapped: slot_mapping.Mapped, optimizer: Optimizer, hyper: dict[str, float],
             iterations: int | None, *, legacy: bool, notes: list[str]
             ) -> tuple[VariableState, ...]:
    """Each mapped variable's slots reduced per unit; what cannot be read is a note."""
    spec = optimizer.spec
    assert spec is not None
    slotless = [f"{w.layer}/{w.label}" for w, kinds in mapped if not kinds]
    if slotless and legacy:
        notes.append(f"no optimizer slots for {slot_mapping.some(slotless)}: a legacy "
                     "optimizer makes none for a variable that never got a gradient, so they "
                     "are taken as never updated")
    elif slotless:
        notes.append(f"no optimizer slots name {slot_mapping.some(slotless)}: not trainable "
                     "when the optimizer was built, or not saved")
    variables, broken = [], []
    for weight, kinds in mapped:
        if not kinds and legacy:
            arrays = optimizer_slots.untouched(spec, hyper, weight.shape)
        elif missing := [kind for kind in spec.used if kind not in kinds]:
            if kinds:
                notes.append(f"no {'/'.join(missing)} slot for {weight.layer}/{weight.label}")
            continue
        else:
            arrays = {kind: kinds[kind].data for kind in spec.used}
        try:
            found = optimizer_slots.reduce(spec, hyper, arrays, iterations, layer=weight.layer,
                                           label=weight.label, shape=weight.shape)
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            notes.append(f"the slots of {weight.layer}/{weight.label} cannot be read "
                         f"({first_line(exc)})")
            continue
        if not found.finite:
            broken.append(f"{weight.layer}/{weight.label}")
        variables.append(found)
    if broken:
        notes.append(f"optimizer slots hold NaN, Inf or a negative second moment: "
                     f"{slot_mapping.some(broken)} (not judged)")
    return tuple(variables)

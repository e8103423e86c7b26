"""The training state of a model in memory, read from its live Keras 3 optimizer.

``gradaudit.audit(model)``, and so ``GradAuditCallback`` while ``fit`` runs,
report stalled units as an audit of the saved file would: the same
:class:`~gradaudit.load.training_state.TrainingState`, its slots reduced by the
same function (:func:`~gradaudit.load.training_state.reduce_slots`). Reading
copies the slots and changes nothing. The compile config is not read: the head
and loss checks (GA411–GA414) are the saved file's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import keras

from gradaudit.load.training_state import TrainingState, reduce_slots
from gradaudit.model.interface import AuditedModel, variable_label

SLOT_NAMES: dict[str, dict[str, str]] = {
    "Adam": {"m": "momentum", "v": "velocity"},
    "AdamW": {"m": "momentum", "v": "velocity"},
    "Nadam": {"m": "momentum", "v": "velocity"},
    "Adamax": {"m": "momentum", "u": "norm"},
    "RMSprop": {"v": "velocity"},
    "SGD": {"m": "momentum"},
    "Lion": {"m": "momentum"},
    "Adagrad": {"v": "accumulator"},
}
"""Keras 3's slot names by role (``SLOT_ROLES``): the slot of variable ``h1/kernel``
is the optimizer variable ``h1_kernel_momentum``."""


def live_training_state(model: AuditedModel, keras_model: Any) -> TrainingState | None:
    """The state of ``keras_model.optimizer``; None when the model is not compiled or
    its optimizer is not Keras 3's (a ``tf_keras`` model)."""
    optimizer = getattr(keras_model, "optimizer", None)
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        return None
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    name = type(inner).__name__
    config = inner.get_config()
    state = TrainingState(
        optimizer=name, optimizer_config=config,
        iterations=int(keras.ops.convert_to_numpy(inner.iterations)),
        learning_rate=float(keras.ops.convert_to_numpy(inner.learning_rate)))
    if name not in SLOT_NAMES:
        return replace(state, notes=(f"optimizer {name}: its slots are not understood; the "
                                     "training checks skip them",))
    if not inner.built:  # no step taken yet: no slots
        return state
    named = {variable.name: variable for variable in inner.variables}
    repeated = {n for n, count in Counter(v.name for v in inner.variables).items() if count > 1}
    states, notes = [], []
    for variable in model.trainable_variables:
        prefix = variable.path.replace("/", "_")
        slot_names = {role: f"{prefix}_{suffix}" for role, suffix in SLOT_NAMES[name].items()}
        if repeated & set(slot_names.values()):
            notes.append(f"{variable.path}: several optimizer slots have its name; not judged")
            continue
        slots = {role: keras.ops.convert_to_numpy(named[slot])
                 for role, slot in slot_names.items() if slot in named}
        try:
            states.append(reduce_slots(
                name, config, state.iterations or 0, layer=model.owner_of(variable) or model.name,
                variable=variable_label(variable), shape=tuple(variable.shape), slots=slots))
        except ValueError as exc:
            notes.append(str(exc))
    return replace(state, variables=tuple(states), notes=tuple(notes))

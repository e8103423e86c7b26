"""The training state of a model in memory, read from its live Keras 3 optimizer.

``gradaudit.audit(model)``, and so ``GradAuditCallback`` while ``fit`` runs,
report stalled units as an audit of the saved file would: the same
:class:`~gradaudit.history.training_state.TrainingState`, its slots reduced by the
same code as a file's (:func:`gradaudit.history.optimizer_slots.reduce`). Reading
copies the slots and changes nothing. The compile config is not read: the head
and loss checks (GA411–GA414) are the saved file's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import keras

from gradaudit.history import optimizer_slots
from gradaudit.history.training_state import TrainingState
from gradaudit.model.interface import AuditedModel, variable_label


def live_training_state(model: AuditedModel, keras_model: Any) -> TrainingState | None:
    """The state of ``keras_model.optimizer``; None when the model is not compiled or
    its optimizer is not Keras 3's (a ``tf_keras`` model)."""
    optimizer = getattr(keras_model, "optimizer", None)
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        return None
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer's
    config = inner.get_config()
    state = TrainingState(
        optimizer=type(inner).__name__, optimizer_config=config,
        iterations=int(keras.ops.convert_to_numpy(inner.iterations)),
        learning_rate=float(keras.ops.convert_to_numpy(inner.learning_rate)))
    found, problem = optimizer_slots.optimizer_of(
        {"class_name": type(inner).__name__, "config": config})
    hyper, hyper_problem = (None, None) if found is None else optimizer_slots.hyperparameters(
        found)
    if found is None or found.spec is None or hyper is None:
        why = problem or hyper_problem or "its slots are not understood"
        return replace(state, notes=(f"optimizer {state.optimizer}: {why}; the training "
                                     "checks skip them",))
    if not inner.built:  # no step taken yet: no slots
        return state
    named = {variable.name: variable for variable in inner.variables}
    repeated = {n for n, count in Counter(v.name for v in inner.variables).items() if count > 1}
    states, notes = [], []
    for variable in model.trainable_variables:
        prefix = variable.path.replace("/", "_")
        slots: dict[str, Any] = {}
        for kind in found.spec.used:  # Keras 3 names a slot <variable path>_<token>
            names = [f"{prefix}_{token}" for token in found.spec.tokens[kind]]
            hits = [name for name in names if name in named and name not in repeated]
            if hits:
                slots[kind] = keras.ops.convert_to_numpy(named[hits[0]])
        if len(slots) < len(found.spec.used):
            notes.append(f"{variable.path}: its optimizer slots are missing or ambiguous; "
                         "not judged")
            continue
        try:
            states.append(optimizer_slots.reduce(
                found.spec, hyper, slots, state.iterations,
                layer=model.owner_of(variable) or model.name,
                label=variable_label(variable), shape=tuple(variable.shape)))
        except (ValueError, TypeError) as exc:
            notes.append(str(exc))
    return replace(state, variables=tuple(states), notes=tuple(notes))

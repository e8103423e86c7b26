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
one variable at a time, never held whole: a large model's optimizer state is two
or three times its weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OPTIMIZERS = frozenset({
    "Adam", "AdamW", "Nadam", "Adamax", "RMSprop", "SGD", "Adagrad", "Lion",
    "LossScaleOptimizer",
})
"""Optimizer classes whose slots are understood; any other is a note, never a guess."""


@dataclass(frozen=True)
class VariableState:
    """What the optimizer slots of one trainable variable say, per unit.

    A unit is an output channel: the last axis of a kernel, an entry of a bias.
    ``activity`` is the slot statistic that shrinks by ``decay`` at every step in
    which the unit got no gradient, reduced over the unit's weights by their
    maximum (a unit is quiet only when every one of its weights is):

    - Adam, AdamW, Nadam: ``|m| / (√v + ε)``, decay ``β1 / √β2`` (≈ 0.9005);
      Adamax: ``|m| / (u + ε)``, decay ``β1 / β2``. A ratio, so ``relative`` is
      False: it is compared with an absolute threshold (live ≈ 0.3, silent for
      k steps ≈ 0.3 · decay^k).
    - RMSprop: ``√mean_square``, decay ``√ρ``; SGD with momentum: ``|momentum|``,
      decay ``momentum``; Lion: ``|m|``, decay ``β2``. Magnitudes, so ``relative``
      is True: compared with a reference over the model's units.
    - Adagrad and plain SGD keep nothing that decays: ``activity`` is None.
    """

    layer: str
    """Qualified layer name, as in the report (``encoder/dense``)."""
    variable: str
    """The variable's label in its layer (``kernel``, ``bias``, or ``var0`` …)."""
    shape: tuple[int, ...]
    activity: np.ndarray | None
    decay: float | None
    relative: bool
    grad_rms: float | None
    """RMS of the gradient over training, from the second moment, bias-corrected
    (``√(mean v / (1 - β2^t))``); None where the optimizer keeps no second moment."""
    nonzero: bool
    """Whether any slot entry is non-zero: all zero after ≥ 1 step means the variable
    never received a gradient (GA403)."""
    finite: bool = True
    """False when a slot holds NaN or Inf; such a variable is not judged."""


@dataclass(frozen=True)
class CompileConfig:
    """The compile config as saved: loss per output, ``from_logits``, loss weights."""

    losses: dict[str, str | None]
    """Output layer name → loss name (``binary_crossentropy``, …; None: no loss)."""
    from_logits: dict[str, bool]
    """Output layer name → the loss's ``from_logits`` (False where not given)."""
    loss_weights: dict[str, float]
    """Output layer name → loss weight (1.0 where not given)."""


@dataclass(frozen=True)
class Head:
    """An output layer of the model, as the loss sees it (GA411–GA413 judge the pair)."""

    layer: str
    """Qualified name of the layer producing the output."""
    activation: str | None
    """Its activation (``softmax``, ``sigmoid``, ``linear``, …); None where unknown."""
    units: int | None
    """Width of the output's last axis; None where unknown."""


@dataclass(frozen=True)
class TrainingState:
    """The training evidence of one file; fields are None where the file has none."""

    optimizer: str | None = None
    """Optimizer class name (the inner one for a LossScaleOptimizer)."""
    optimizer_config: dict[str, Any] = field(default_factory=dict)
    """Its saved config: learning_rate, beta_1, beta_2, rho, momentum, clipnorm, …"""
    iterations: int | None = None
    learning_rate: float | None = None
    variables: tuple[VariableState, ...] = ()
    compile: CompileConfig | None = None
    heads: tuple[Head, ...] = ()
    """The model's output layers, in output order (empty where unknown)."""
    notes: tuple[str, ...] = ()
    """What could not be read or mapped, in words (the report shows them)."""


SLOT_ROLES: dict[str, tuple[str, ...]] = {
    "Adam": ("m", "v"), "AdamW": ("m", "v"), "Nadam": ("m", "v"), "Adamax": ("m", "u"),
    "RMSprop": ("v",), "SGD": ("m",), "Lion": ("m",), "Adagrad": ("v",),
}
"""The slots :func:`reduce_slots` reads, by role: ``m`` the first moment (Adam's m,
SGD's and Lion's momentum), ``v`` the second (Adam's v, RMSprop's mean square,
Adagrad's accumulator), ``u`` Adamax's infinity norm. Other slots (RMSprop's
momentum and mean gradient, AMSGrad's v̂) say nothing the reduction needs. SGD
without momentum keeps no slot at all."""

HYPERPARAMETERS: dict[str, dict[str, float]] = {
    "Adam": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "AdamW": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "Nadam": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "Adamax": {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "RMSprop": {"rho": 0.9},
    "SGD": {"momentum": 0.0},
    "Lion": {"beta_2": 0.99},
    "Adagrad": {"initial_accumulator_value": 0.1},
}
"""Keras's defaults (Keras 3 and Keras 2 agree) for what a saved config leaves out."""


def reduce_slots(optimizer: str, config: Mapping[str, Any], iterations: int, *, layer: str,
                 variable: str, shape: tuple[int, ...],
                 slots: Mapping[str, np.ndarray]) -> VariableState:
    """One trainable variable's optimizer slots, by role (:data:`SLOT_ROLES`), as a
    :class:`VariableState`.

    The one place where slots become per-unit activity, the decay per silent step
    and the gradient RMS over training: the file reader and the live optimizer
    (``GradAuditCallback``) both call it, so a file and the model it was saved
    from give the same figures. ``config`` is the optimizer's saved config (Keras's
    defaults fill what it leaves out). ValueError, saying what is wrong, for an
    optimizer not in :data:`SLOT_ROLES`, a missing slot, a slot of another shape
    or a hyperparameter out of its range: the caller turns it into a note.
    """
    where = f"{layer}/{variable}"
    if optimizer not in SLOT_ROLES:
        raise ValueError(f"{where}: the slots of optimizer {optimizer!r} are not understood")
    settings = {key: _hyperparameter(config, key, default, where)
                for key, default in HYPERPARAMETERS[optimizer].items()}
    roles = SLOT_ROLES[optimizer] if optimizer != "SGD" or settings["momentum"] else ()
    missing = [role for role in roles if role not in slots]
    if missing:
        raise ValueError(f"{where}: {optimizer} keeps a {' and '.join(missing)} slot per "
                         "variable; none was found")
    arrays = {}
    for role in roles:
        array = np.asarray(slots[role])
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{where}: its {role} slot holds {array.dtype}, not numbers")
        if array.shape != shape:
            raise ValueError(f"{where}: its {role} slot has shape {array.shape}, the variable "
                             f"{shape}")
        if array.size == 0:
            raise ValueError(f"{where}: the variable holds no values")
        arrays[role] = array.astype(np.result_type(array.dtype, np.float32), copy=False)
    nonzero = any(bool(np.any(a != 0)) for a in arrays.values())
    if not all(bool(np.isfinite(a).all()) for a in arrays.values()):
        return VariableState(layer, variable, shape, None, None, False, None, nonzero,
                             finite=False)
    statistic, decay, relative = _activity(optimizer, arrays, settings)
    return VariableState(
        layer=layer, variable=variable, shape=shape,
        activity=None if statistic is None else _per_unit(statistic), decay=decay,
        relative=relative, grad_rms=_grad_rms(optimizer, arrays, settings, iterations),
        nonzero=nonzero)


def _hyperparameter(config: Mapping[str, Any], key: str, default: float, where: str) -> float:
    """``config[key]`` (Keras's default when absent or null), checked to lie in its range:
    decay rates in (0, 1), momentum in [0, 1), ε and the initial accumulator ≥ 0."""
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: optimizer setting {key} = {value!r} is not a number")
    number = float(value)
    low_open = key.startswith(("beta", "rho"))
    high = math.inf if key in ("epsilon", "initial_accumulator_value") else 1.0
    if not (number > 0 if low_open else number >= 0) or not number < high:
        raise ValueError(f"{where}: optimizer setting {key} = {value!r} is out of range")
    return number


def _activity(optimizer: str, slots: dict[str, np.ndarray], settings: dict[str, float]
              ) -> tuple[np.ndarray | None, float | None, bool]:
    """The per-weight statistic that shrinks at every step without a gradient, its decay
    per such step, and whether it is a magnitude (compared with a reference over the
    model) rather than a ratio (see :class:`VariableState`)."""
    if optimizer in ("Adam", "AdamW", "Nadam"):
        ratio = _ratio(slots["m"], np.sqrt(slots["v"]) + settings["epsilon"])
        return ratio, settings["beta_1"] / math.sqrt(settings["beta_2"]), False
    if optimizer == "Adamax":
        ratio = _ratio(slots["m"], slots["u"] + settings["epsilon"])
        return ratio, settings["beta_1"] / settings["beta_2"], False
    if optimizer == "RMSprop":
        return np.sqrt(slots["v"]), math.sqrt(settings["rho"]), True
    if optimizer == "Lion":
        return np.abs(slots["m"]), settings["beta_2"], True
    if optimizer == "SGD" and "m" in slots:
        return np.abs(slots["m"]), settings["momentum"], True
    return None, None, False  # Adagrad, plain SGD: nothing decays


def _ratio(first: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``|first| / scale``, 0 where the scale is 0 (ε = 0 and no gradient yet)."""
    ratio: np.ndarray = np.divide(np.abs(first), scale, out=np.zeros_like(scale),
                                  where=scale > 0)
    return ratio


def _per_unit(statistic: np.ndarray) -> np.ndarray:
    """The maximum over each unit's weights: a unit (the last axis) is quiet only
    when all of them are. A scalar variable is one unit."""
    units = statistic.shape[-1] if statistic.ndim else 1
    return np.asarray(statistic.reshape(-1, units).max(axis=0))


def _grad_rms(optimizer: str, slots: dict[str, np.ndarray], settings: dict[str, float],
              iterations: int) -> float | None:
    """RMS of the gradient over training from the second moment, bias-corrected for the
    zero it starts from; None without a second moment or before the first step."""
    if iterations < 1 or "v" not in slots:
        return None
    mean_square = float(np.mean(slots["v"], dtype=np.float64))
    if optimizer == "Adagrad":  # a sum of squares over the steps, from its initial value
        return math.sqrt(max(mean_square - settings["initial_accumulator_value"], 0.0)
                         / iterations)
    decay = settings["rho"] if optimizer == "RMSprop" else settings["beta_2"]
    return math.sqrt(mean_square / (1 - decay ** iterations))


def read_training_state(path: str, fmt: str) -> TrainingState:
    """The training evidence in a ``.keras`` or ``.h5`` file (fmt "keras" | "h5").

    Never raises for a malformed or hostile file: what cannot be read becomes a
    note. Sizes are checked before anything is read into memory.
    """
    raise NotImplementedError  # being written: issue 13, part 1

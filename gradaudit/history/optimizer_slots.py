"""What each optimizer keeps per trainable variable, where it stores it, and what
its slots say about the gradients it saw.

Layouts are read from the optimizers' sources (Keras 3.15 ``keras/src/optimizers``,
tf_keras 2.21 ``tf_keras/src/optimizers`` and ``…/legacy``, Keras ≤ 2.3):

- Keras 3: ``variables`` is ``[iteration, learning_rate]`` (no learning rate
  variable when it is a schedule), then the base class's slots, each kind for
  every variable in turn (EMA ``average`` if ``use_ema``, ``gradient_accumulator``
  if ``gradient_accumulation_steps``), then the optimizer's own from
  ``add_optimizer_variables``: called with several names it *interleaves* them
  per variable (Adam, AdamW, Nadam: momentum, velocity; Adamax: momentum, norm),
  called once per name it groups them (RMSprop: every velocity, then every
  momentum if ``momentum > 0``, then every average_gradient if ``centered``;
  Adam's velocity_hat when ``amsgrad``; SGD's momentum if ``momentum != 0``;
  Adagrad's accumulator; Lion's momentum). Nadam ends with a scalar ``u_product``.
- tf_keras's optimizers (``is_legacy_optimizer: false``): ``[iteration]`` and the
  same order (Adam's ``m``, ``v`` interleaved).
- tf_keras's legacy optimizers and Keras ≤ 2.3: every kind grouped (all ``m``,
  then all ``v``); Keras 2.1–2.3 Adam keeps a ``vhat`` per variable even without
  AMSGrad, of shape (1,).

Update rules (same sources): Adam ``m ← β1 m + (1-β1) g``, ``v ← β2 v + (1-β2) g²``;
Adamax ``u ← max(β2 u, |g|)``; RMSprop ``v ← ρ v + (1-ρ) g²``; SGD ``m ← μ m - lr g``;
Lion ``m ← β2 m + (1-β2) g``; Adagrad ``acc ← acc + g²`` from
``initial_accumulator_value``. With ``g = 0`` each shrinks by its factor per step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradaudit.history.training_types import VariableState
from gradaudit.load import h5read

Layout = tuple[tuple[str, ...], ...]
"""Slot kinds in storage order: a group of several kinds is interleaved per
variable, a group of one kind holds it for every variable in turn."""

ADAM_TOKENS: dict[str, tuple[str, ...]] = {
    "m": ("m", "momentum"), "v": ("v", "velocity"), "vhat": ("vhat", "velocity_hat")}
BASE_TOKENS: dict[str, tuple[str, ...]] = {"ema": ("average",), "gacc": ("gradient_accumulator",)}


@dataclass(frozen=True)
class Spec:
    """One optimizer class: the slots it reads and how their statistic decays."""

    name: str
    used: tuple[str, ...]
    """Slot kinds the statistics are computed from."""
    tokens: Mapping[str, tuple[str, ...]]
    """Slot kind → the names files give it (``Adam/m/…``, ``…_momentum``)."""
    interleaved: bool
    """Whether Keras 3 and tf_keras interleave ``used`` per variable."""


SPECS = {spec.name: spec for spec in (
    Spec("Adam", ("m", "v"), ADAM_TOKENS, True),
    Spec("AdamW", ("m", "v"), ADAM_TOKENS, True),
    Spec("Nadam", ("m", "v"), ADAM_TOKENS, True),
    Spec("Adamax", ("m", "u"), {"m": ("m", "momentum"), "u": ("u", "v", "norm")}, True),
    Spec("RMSprop", ("v",), {"v": ("rms", "velocity", "accumulator"), "mom": ("momentum",),
                             "mg": ("mg", "average_gradient")}, False),
    Spec("SGD", ("mom",), {"mom": ("m", "momentum", "moment")}, False),
    Spec("Adagrad", ("acc",), {"acc": ("accumulator",)}, False),
    Spec("Lion", ("m",), {"m": ("m", "momentum")}, False),
)}
ALIASES = {name.lower(): name for name in SPECS}
WRAPPERS = frozenset({"lossscaleoptimizer", "lossscaleoptimizerv3", "lossscaleoptimizerv1"})
KERAS_MODULES = ("keras", "tf_keras")

ITERATION_NAMES = frozenset({"iteration", "iterations", "iter"})
LEARNING_RATE_NAMES = frozenset({"learning_rate", "lr"})
BOOKKEEPING_NAMES = ITERATION_NAMES | LEARNING_RATE_NAMES | {
    "momentum_cache", "m_schedule", "variable", "u_product", "step_counter", "dynamic_scale",
    "loss_scale", "current_loss_scale", "good_steps", "decay", "beta_1", "beta_2", "rho",
}
"""Scalar optimizer variables that are not slots (counters, schedules, loss scale)."""

# Hyperparameters: Keras 3 default, and the range in which the statistics make sense.
UNIT_OPEN = (0.0, 1.0, False)  # [0, 1)
HYPER = {
    "beta_1": (0.9, (0.0, 1.0, True)),
    "beta_2": (0.999, (0.0, 1.0, False)),
    "epsilon": (1e-7, (0.0, math.inf, True)),
    "rho": (0.9, UNIT_OPEN),
    "momentum": (0.0, (0.0, 1.0, True)),
    "initial_accumulator_value": (0.0, (0.0, math.inf, True)),
}
NEEDS = {
    "Adam": ("beta_1", "beta_2", "epsilon"), "AdamW": ("beta_1", "beta_2", "epsilon"),
    "Nadam": ("beta_1", "beta_2", "epsilon"), "Adamax": ("beta_1", "beta_2", "epsilon"),
    "RMSprop": ("rho", "momentum"), "SGD": ("momentum",),
    "Adagrad": ("initial_accumulator_value",), "Lion": ("beta_1", "beta_2"),
}
LION_BETA_2 = 0.99


@dataclass(frozen=True)
class Optimizer:
    """The optimizer a file was compiled with, as its config says."""

    name: str
    """Canonical class name (the inner one of a loss-scale wrapper), or the class
    name as saved when it is not understood."""
    config: dict[str, Any]
    spec: Spec | None
    wrapped: bool
    """Inside a LossScaleOptimizer."""


def optimizer_of(raw: Any) -> tuple[Optimizer | None, str | None]:
    """The optimizer in a compile config's ``optimizer`` / ``optimizer_config`` entry."""
    if raw is None:
        return None, None
    if isinstance(raw, str):  # compile(optimizer="adam") in an old file
        raw = {"class_name": raw, "config": {}}
    if not isinstance(raw, dict) or not isinstance(raw.get("class_name"), str):
        return None, "the compile config's optimizer is not a class name and config"
    config = raw.get("config", {})
    if not isinstance(config, dict):
        return None, f"the optimizer {_short(raw['class_name'])}'s config is not a mapping"
    key = raw["class_name"].split(">")[-1].lower()
    module = raw.get("module")
    foreign = isinstance(module, str) and not module.startswith(KERAS_MODULES)
    if key in WRAPPERS and not foreign:
        inner, problem = optimizer_of(config.get("inner_optimizer"))
        if inner is None:
            return None, problem or "a LossScaleOptimizer without an inner optimizer"
        return Optimizer(inner.name, inner.config, inner.spec, wrapped=True), problem
    name = ALIASES.get(key) if not foreign else None
    if name is None:
        return Optimizer(_short(raw["class_name"]), config, None, wrapped=False), None
    return Optimizer(name, config, SPECS[name], wrapped=False), None


def _short(text: str) -> str:
    return text[:80]


def hyperparameters(optimizer: Optimizer) -> tuple[dict[str, float] | None, str | None]:
    """The hyperparameters the statistics need, checked; (None, why) if one is garbled."""
    values: dict[str, float] = {}
    for key in NEEDS.get(optimizer.name, ()):
        default, (low, high, closed) = HYPER[key]
        if optimizer.name == "Lion" and key == "beta_2":
            default = LION_BETA_2
        raw = optimizer.config.get(key)
        if raw is None:  # Keras ≤ 2.3 saved epsilon=None for "backend default"
            values[key] = default
            continue
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not (
                low <= raw <= high if closed else low <= raw < high):
            return None, (f"the {optimizer.name} config's {key} = {_short(repr(raw))} is not a "
                          f"number in [{low}, {high}{']' if closed else ')'}: "
                          "the optimizer slots are not judged")
        values[key] = float(raw)
    if optimizer.name in ("Adam", "AdamW", "Nadam", "Adamax") and values["beta_2"] == 0.0:
        return None, f"the {optimizer.name} config's beta_2 is 0: the slots are not judged"
    return values, None


def flags(optimizer: Optimizer) -> tuple[dict[str, bool] | None, str | None]:
    """The switches that decide which slots exist (amsgrad, centered, EMA …)."""
    config = optimizer.config
    found = {}
    for key in ("amsgrad", "centered", "use_ema"):
        value = config.get(key, False)
        if not isinstance(value, bool):
            return None, (f"the {optimizer.name} config's {key} = {_short(repr(value))} is "
                          "not true or false: the optimizer slots are not mapped")
        found[key] = value
    steps = config.get("gradient_accumulation_steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                              or steps < 0):
        return None, (f"the {optimizer.name} config's gradient_accumulation_steps = "
                      f"{_short(repr(steps))} is not a whole number ≥ 0: the slots are not "
                      "mapped")
    found["accumulate"] = bool(steps)
    return found, None


def layouts(optimizer: Optimizer, hyper: dict[str, float], switches: dict[str, bool],
            flavor: str) -> list[tuple[Layout, frozenset[str]]]:
    """The slot layouts the file may hold, most likely first, each with the kinds
    whose shapes are not the variable's (Keras ≤ 2.3 Adam's (1,) placeholders).

    ``flavor``: "keras3", "tf_keras" (its optimizers since 2.11) or "legacy"
    (tf_keras's legacy optimizers, Keras ≤ 2.3).
    """
    spec = optimizer.spec
    assert spec is not None
    base: list[tuple[str, ...]] = []
    if switches["use_ema"] and flavor != "legacy":
        base.append(("ema",))
    if switches["accumulate"] and flavor == "keras3":
        base.append(("gacc",))
    own: list[tuple[str, ...]]
    if spec.name == "RMSprop":
        own = [("v",), *([("mom",)] if hyper["momentum"] > 0 else []),
               *([("mg",)] if switches["centered"] else [])]
    elif spec.name == "SGD":
        own = [("mom",)] if hyper["momentum"] != 0 else []
    elif spec.interleaved and flavor != "legacy":
        own = [spec.used]
    else:
        own = [(kind,) for kind in spec.used]
    adam = spec.name in ("Adam", "AdamW")
    if adam and switches["amsgrad"]:
        own.append(("vhat",))
    layout = (*base, *own)
    if adam and not switches["amsgrad"] and flavor == "legacy":
        return [(layout, frozenset()), ((*layout, ("vhat",)), frozenset({"vhat"}))]
    return [(layout, frozenset())]


def expand(layout: Layout, count: int) -> list[tuple[str, int]]:
    """(kind, variable index) of every slot in storage order."""
    order = []
    for kinds in layout:
        if len(kinds) > 1:
            order += [(kind, i) for i in range(count) for kind in kinds]
        else:
            order += [(kinds[0], i) for i in range(count)]
    return order


def tokens(spec: Spec) -> dict[str, str]:
    """A slot's name in a file → its kind, for this optimizer."""
    return {token: kind for kind, names in [*spec.tokens.items(), *BASE_TOKENS.items()]
            for token in names}


def untouched(spec: Spec, hyper: dict[str, float], shape: tuple[int, ...]) -> dict[str, Any]:
    """The slots of a variable that never got a gradient, as views that hold no memory:
    zeros (Adagrad: its initial accumulator value)."""
    start = hyper.get("initial_accumulator_value", 0.0) if spec.name == "Adagrad" else 0.0
    return {kind: np.broadcast_to(np.float32(start), shape) for kind in spec.used}


def decay_of(name: str, hyper: dict[str, float]) -> float | None:
    if name in ("Adam", "AdamW", "Nadam"):
        return hyper["beta_1"] / math.sqrt(hyper["beta_2"])
    if name == "Adamax":
        return hyper["beta_1"] / hyper["beta_2"]
    if name == "RMSprop":
        return math.sqrt(hyper["rho"])
    if name == "SGD":
        return hyper["momentum"]
    if name == "Lion":
        return hyper["beta_2"]
    return None


def reduce(spec: Spec, hyper: dict[str, float], slots: dict[str, Any], iterations: int | None,
           *, layer: str, label: str, shape: tuple[int, ...]) -> VariableState:
    """One variable's slots reduced per unit, read a block of rows at a time."""
    name = spec.name
    arrays = [slots[kind] for kind in spec.used]
    units = shape[-1] if shape else 1
    flat = len(shape) <= 1  # a bias: the rows of a block are its units
    pieces: list[np.ndarray] = []
    peak = np.zeros(units) if not flat else None
    total = 0.0
    finite, nonzero = True, False
    start = hyper.get("initial_accumulator_value", 0.0)
    if name == "Adagrad":  # the accumulator starts at this value, as stored
        start = float(np.asarray(start, dtype=arrays[0].dtype))
    with np.errstate(all="ignore"):
        for parts in _zipped(arrays):
            finite = finite and all(bool(np.isfinite(p).all()) for p in parts)
            if name == "Adagrad":
                nonzero = nonzero or bool((parts[0] != start).any())
            else:
                nonzero = nonzero or any(bool(p.any()) for p in parts)
            if name in ("Adam", "AdamW", "Nadam", "RMSprop"):
                finite = finite and bool((parts[-1] >= 0).all())  # a second moment
            second = parts[-1] if name in ("Adam", "AdamW", "Nadam", "RMSprop") else (
                parts[0] - start if name == "Adagrad" else None)
            if second is not None:
                total += float(second.sum())
            stat = _statistic(name, parts, hyper)
            if stat is None:
                continue
            if flat:
                pieces.append(stat.reshape(-1))
            else:
                assert peak is not None
                peak = np.maximum(peak, stat.reshape(-1, units).max(axis=0))
    activity = None
    if finite and name != "Adagrad":
        activity = np.concatenate(pieces) if flat else peak
    size = max(1, math.prod(shape))
    return VariableState(
        layer=layer, variable=label, shape=shape, activity=activity,
        decay=decay_of(name, hyper), relative=name in ("RMSprop", "SGD", "Lion"),
        grad_rms=_grad_rms(name, hyper, total / size, iterations) if finite else None,
        nonzero=nonzero, finite=finite)


def _zipped(arrays: list[Any]) -> Iterator[list[np.ndarray]]:
    for parts in zip(*(h5read.blocks(a) for a in arrays), strict=True):
        yield list(parts)


def _statistic(name: str, parts: list[np.ndarray], hyper: dict[str, float]) -> np.ndarray | None:
    stat: np.ndarray
    if name in ("Adam", "AdamW", "Nadam"):
        stat = np.abs(parts[0]) / (np.sqrt(parts[1]) + hyper["epsilon"])
    elif name == "Adamax":
        stat = np.abs(parts[0]) / (parts[1] + hyper["epsilon"])
    elif name == "RMSprop":
        stat = np.sqrt(parts[0])
    elif name in ("SGD", "Lion"):
        stat = np.abs(parts[0])
    else:
        return None
    return stat


def _grad_rms(name: str, hyper: dict[str, float], mean: float,
              iterations: int | None) -> float | None:
    """The gradient's RMS over training from the mean second moment, bias-corrected."""
    if iterations is None or iterations <= 0:
        return None
    if name in ("Adam", "AdamW", "Nadam", "RMSprop"):
        factor = hyper["rho"] if name == "RMSprop" else hyper["beta_2"]
        correction = -math.expm1(iterations * math.log(factor)) if factor > 0 else 1.0
        return math.sqrt(max(mean, 0.0) / correction)
    if name == "Adagrad":
        return math.sqrt(max(mean, 0.0) / iterations)
    return None

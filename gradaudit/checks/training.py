"""GA401–GA404, GA411–GA414: what the optimizer state and compile config in the file say.

Pure functions over :class:`~gradaudit.history.training_state.TrainingState`: no
model runs, so ``--no-probe`` gives these findings from the file alone.

**Stalled units.** A unit's ``activity`` (see ``VariableState``) shrinks by
``decay`` at every step in which it gets no gradient, so ``activity ≈ live ·
decay^k`` after ``k`` silent steps. A unit is stalled when its activity is below
the threshold — ``stall_ratio`` for Adam's scale-free ``|m| / √v``,
``stall_relative`` × the most active unit of the model for a magnitude (RMSprop,
SGD momentum; a layer's own median is no reference when most of its units are
dead) — and the file's iterations are enough for a live unit to have decayed
that far. With fewer steps (a short run) only units whose slots are exactly zero
count: they never got a gradient at all. ``live`` is the median activity of the
model's units above the threshold (the model's own level), or 1 (a ratio) / the
most active unit (a magnitude) when none is.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from gradaudit.checks import heads
from gradaudit.history.training_state import TrainingState, VariableState
from gradaudit.options import USUAL_LEARNING_RATES, Thresholds
from gradaudit.report.catalogue import finding
from gradaudit.report.types import Finding, Severity

CLIPS = ("clipnorm", "clipvalue", "global_clipnorm")
_TINY = float(np.finfo(np.float32).smallest_subnormal)
"""The smallest positive slot value float32 holds: an activity of 0 is at most this."""


@dataclass(frozen=True)
class LayerHistory:
    """One layer's training history, for the "Training history" table and JSON."""

    layer: str
    steps: int
    """Optimizer iterations the file records."""
    units: int
    stalled_units: int
    """Units whose gradient fell below the stall threshold in the last steps before
    the save: to nothing, or to a trickle the state cannot tell from nothing."""
    steps_since_gradient: float | None
    """Estimated steps since a stalled unit last got a gradient, if it got none since
    (median over the layer's stalled units); None when none is stalled or the
    optimizer cannot tell."""
    train_grad_rms: float | None
    """RMS of the gradient over training, from the second moment, bias-corrected."""
    silent_units: int = 0
    """The stalled units the state shows got no gradient: slots exactly zero, or (a
    ratio: Adam's) decayed at the no-gradient rate to the clock's floor (see
    :class:`_Clock`). A magnitude (RMSprop's √v, SGD's momentum) forgets within tens
    of steps, so it cannot tell a trickle from nothing: only exact zeros count."""

    @property
    def stalled_fraction(self) -> float:
        return self.stalled_units / self.units if self.units else 0.0


@dataclass(frozen=True)
class _Clock:
    """The model-wide scale on which every unit's activity is read."""

    threshold: float
    """Below this a unit is stalled, once ``window`` steps have passed."""
    live: float
    """The activity of a live unit."""
    decay: float | None
    """Per silent step; None when the slot does not shrink without a gradient (no clock)."""
    window: float | None
    """Silent steps a live unit needs to fall below ``threshold``; None: no clock."""
    relative: bool = False
    """A magnitude (RMSprop, SGD, Lion), judged against the most active unit."""
    log_fade: np.ndarray | None = None
    """``log(activity / live)`` after ``k`` silent steps, k = 0, 1, …: the decay, and
    the level the unit started from when it stopped (a slot is still warming up
    early in training: Adam's uncorrected |m|/√v is higher then, RMSprop's √v and
    SGD's momentum lower). Non-increasing; None: no clock."""

    @property
    def floor(self) -> float:
        """Below this a stalled unit is silent: it has kept decaying at the no-gradient
        rate for ``window`` steps past ``threshold`` (a trickle of gradient levels off
        well above it; measured on adam_dying's recipe: at 1e-4 to 7e-4, against 3e-6)."""
        if self.decay is None or self.window is None or self.relative:
            return 0.0
        return float(self.threshold * self.decay ** self.window)


@dataclass(frozen=True)
class _Units:
    """One layer's per-unit activity and all its variable states."""

    layer: str
    activity: np.ndarray
    variables: tuple[VariableState, ...]


def history(state: TrainingState, thresholds: Thresholds) -> tuple[LayerHistory, ...]:
    """Per layer with optimizer state, in the file's order.

    Only layers whose slots decay (not Adagrad, plain SGD, or NaN/Inf slots) have
    a history; none has one before the first step.
    """
    steps = state.iterations or 0
    rows = _units(state)
    if steps < 1 or not rows:
        return ()
    clock = _clock(rows, thresholds, state, steps)
    result = []
    for row in rows:
        stalled = row.activity[_stalled(row.activity, clock, steps)]
        silent = stalled[stalled <= clock.floor]
        result.append(LayerHistory(
            layer=row.layer, steps=steps, units=row.activity.size,
            stalled_units=int(stalled.size),
            steps_since_gradient=_steps_since(stalled, clock, steps),
            train_grad_rms=_grad_rms(row.variables), silent_units=int(silent.size)))
    return tuple(result)


def check(state: TrainingState, thresholds: Thresholds, model: str = "") -> list[Finding]:
    """GA401–GA404 from the optimizer state, GA411–GA414 from the compile config.

    ``model`` names the model for the findings about it as a whole (GA404, GA414),
    as GA302 does.
    """
    trained = _trained(state, thresholds, model)
    return [*trained, *_settings(state, thresholds, model, _harm(state, trained)),
            *heads.check(state)]


def _trained(state: TrainingState, thresholds: Thresholds, model: str) -> list[Finding]:
    """GA401–GA403 from the optimizer state, or GA404 when it has no history."""
    steps = state.iterations or 0
    if steps < 1 or not any(_has_slots(v) for v in state.variables):
        return [_no_history(state, model)]
    never = dict(_never_updated(state))
    trained: list[Finding] = [
        finding("GA403", layer,
                f"the {state.optimizer} slots of {_join(labels)} are exactly zero after "
                f"{steps} steps: never received a gradient in training",
                variables=labels, steps=steps, optimizer=state.optimizer)
        for layer, labels in never.items()]
    groups = _by_layer(state.variables)
    for row in history(state, thresholds):
        if row.stalled_units == 0:
            continue
        if never.get(row.layer) == [v.variable for v in groups[row.layer] if _has_slots(v)]:
            continue  # GA403 says more: not one step ever reached the layer
        fraction = row.stalled_fraction
        said = _stall_words(row, state, thresholds)
        metrics = dict(units=row.units, stalled_units=row.stalled_units,
                       stalled_fraction=round(fraction, 4), steps=steps,
                       steps_since_gradient=row.steps_since_gradient,
                       optimizer=state.optimizer, silent_units=row.silent_units)
        if row.stalled_units == row.units:
            trained.append(finding(
                "GA402", row.layer, f"all {row.units} units {said}, per the "
                f"{state.optimizer} state", **metrics))
        elif fraction >= thresholds.dead_warn:
            trained.append(finding(
                "GA401", row.layer, f"{row.stalled_units} of {row.units} units "
                f"({fraction:.0%}) {said}, per the {state.optimizer} state", **metrics))
    return trained


def _stall_words(row: LayerHistory, state: TrainingState, thresholds: Thresholds) -> str:
    """What the state shows of a layer's stalled units: "received no gradient" only for
    silent ones (exact zeros, or decayed to the floor); the rest by how far their
    gradient fell, which is what the threshold measures."""
    when = "in the last steps before the save"
    ago = row.steps_since_gradient
    if row.silent_units == row.stalled_units:
        since = "" if ago is None else (
            f" (the median one last got one ≈{ago:.0f} of {row.steps} steps ago)")
        return f"received no gradient {when}{since}"
    relative = next((v.relative for v in state.variables if v.layer == row.layer), False)
    fell = (f"their gradient fell below {thresholds.stall_relative:g}× the model's most "
            "active unit's" if relative else
            f"their gradient fell ≥{1 / thresholds.stall_ratio:,.0f}× below their own past "
            f"level (|m|/√v < {thresholds.stall_ratio:g})")
    since = "" if ago is None else f" (≈{ago:.0f} of {row.steps} steps ago, if none since)"
    silent = (f"; {row.silent_units} of them received no gradient at all"
              if row.silent_units else "")
    return f"stalled {when}: {fell}{since}{silent}"


# --- the optimizer state -------------------------------------------------------


def _has_slots(variable: VariableState) -> bool:
    """Whether the optimizer keeps a slot for this variable (plain SGD keeps none)."""
    return variable.activity is not None or variable.grad_rms is not None


def _by_layer(variables: Sequence[VariableState]) -> dict[str, list[VariableState]]:
    """Variable states grouped by layer, in the file's order."""
    groups: dict[str, list[VariableState]] = {}
    for variable in variables:
        groups.setdefault(variable.layer, []).append(variable)
    return groups


def _units(state: TrainingState) -> list[_Units]:
    """Per layer, the activity of each unit: the largest over the layer's variables.

    A unit is quiet only when every weight of it is. The layer's units are those of
    its first judged variable; a variable with another unit count (rare: a custom
    layer's own weights) is left out of the per-unit view, not guessed into it.
    """
    rows = []
    for layer, variables in _by_layer(state.variables).items():
        judged = [np.ravel(np.asarray(v.activity, dtype=np.float64)) for v in variables
                  if v.finite and v.activity is not None and v.decay is not None]
        if judged:
            width = judged[0].size
            activity = np.maximum.reduce([a for a in judged if a.size == width])
            rows.append(_Units(layer, activity, tuple(variables)))
    return rows


def _clock(rows: Sequence[_Units], thresholds: Thresholds, state: TrainingState,
           steps: int) -> _Clock:
    """The threshold, live level, decay and fade for the model, from all of its units."""
    first = next(v for row in rows for v in row.variables
                 if v.finite and v.activity is not None and v.decay is not None)
    every = np.concatenate([row.activity for row in rows])
    if first.relative:
        reference = float(every.max())
        threshold, fallback = thresholds.stall_relative * reference, reference
    else:
        threshold, fallback = thresholds.stall_ratio, 1.0
    live_units = every[every >= threshold]
    live = float(np.median(live_units)) if live_units.size else fallback
    decay = first.decay if first.decay is not None and 0.0 < first.decay < 1.0 else None
    if decay is None or not live > threshold > 0.0:
        return _Clock(threshold, live, decay, None, first.relative)
    return _Clock(threshold, live, decay, math.log(threshold / live) / math.log(decay),
                  first.relative, _log_fade(state, decay, steps))


MAX_CLOCK_STEPS = 100_000
"""Silent steps the fade is tabulated for; a longer silence reads as this many."""


def _log_fade(state: TrainingState, decay: float, steps: int) -> np.ndarray:
    """``log(activity / live)`` of a unit silent for the last ``k`` steps, k = 0 …
    ``steps``: it stopped at step ``s = steps - k`` at the level live units had then,
    ``live · w(s) / w(steps)``, and decayed ``decay^k`` since. ``w`` is the slot's
    warm-up from its zero start (Keras keeps the moments uncorrected): Adam
    ``(1 - β1^s) / √(1 - β2^s)``, RMSprop ``√(1 - ρ^s)``, SGD ``1 - μ^s``."""
    k = np.arange(min(steps, MAX_CLOCK_STEPS) + 1, dtype=np.float64)
    warm = _warmup(state)
    fade = k * math.log(decay) + np.log(warm(np.maximum(steps - k, 1.0)) / warm(
        np.array([float(steps)])))
    return np.minimum.accumulate(fade)


def _warmup(state: TrainingState) -> Callable[[np.ndarray], np.ndarray]:
    """The level of a slot after ``s`` steps of a steady gradient, relative to its
    limit, for the optimizer of ``state`` (1 where it is not known)."""
    config = state.optimizer_config

    def rate(key: str) -> float | None:
        value = _number(config.get(key))
        return value if value is not None and 0.0 <= value < 1.0 else None

    beta_1, beta_2, rho, momentum = (rate(k) for k in ("beta_1", "beta_2", "rho", "momentum"))
    if state.optimizer in ("Adam", "AdamW", "Nadam") and beta_1 is not None \
            and beta_2 is not None:
        return lambda s: (1 - beta_1 ** s) / np.sqrt(1 - beta_2 ** s)
    if state.optimizer == "RMSprop" and rho is not None:
        return lambda s: np.sqrt(1 - rho ** s)
    if state.optimizer == "SGD" and momentum is not None:
        return lambda s: 1 - momentum ** s
    return np.ones_like


def _stalled(activity: np.ndarray, clock: _Clock, steps: int) -> np.ndarray:
    """Units with no gradient in the last steps: exactly zero slots after any step;
    below the threshold only when ``steps`` could have brought a live unit there."""
    decayed = clock.window is not None and steps >= clock.window
    return np.asarray((activity == 0.0) | (decayed & (activity < clock.threshold)))


def _steps_since(silent: np.ndarray, clock: _Clock, steps: int) -> float | None:
    """Median over silent units of the ``k`` whose fade reaches their activity (see
    :func:`_log_fade`), at most ``steps``; exactly zero slots count as silent all along."""
    if not silent.size or clock.log_fade is None:
        return None
    level = np.log(np.maximum(silent, _TINY) / clock.live)
    found = np.searchsorted(-clock.log_fade, -level).astype(np.float64)
    since = np.where(silent > 0.0, np.minimum(found, steps), steps)
    return float(round(float(np.median(since))))


def _grad_rms(variables: Sequence[VariableState]) -> float | None:
    """The layer's gradient RMS over training: its variables' RMS, weighted by size."""
    known = [(math.prod(v.shape), v.grad_rms) for v in variables
             if v.finite and v.grad_rms is not None]
    total = sum(size for size, _ in known)
    if not total:
        return None
    return math.sqrt(sum(size * rms * rms for size, rms in known) / total)


def _never_updated(state: TrainingState) -> Iterator[tuple[str, list[str]]]:
    """(layer, variables) whose slots are exactly zero: not one step ever reached them."""
    for layer, variables in _by_layer(state.variables).items():
        labels = [v.variable for v in variables if v.finite and _has_slots(v) and not v.nonzero]
        if labels:
            yield layer, labels


def _no_history(state: TrainingState, model: str) -> Finding:
    """GA404, with the reason the training checks were skipped."""
    if state.iterations is not None and state.iterations >= 1:
        why = (f"the {state.optimizer} state could not be used ({'; '.join(state.notes)})"
               if state.notes else
               f"{state.optimizer} keeps no per-variable state that shows which units got "
               f"a gradient ({state.iterations} steps taken)")
    elif state.iterations == 0:
        why = "the optimizer has taken no step (iterations = 0): compiled, never trained"
    elif state.compile is None and state.optimizer is None:
        why = "the model was saved uncompiled: no optimizer state, no compile config"
    else:
        why = "the file holds no optimizer state (saved without the optimizer?)"
    return finding("GA404", model, f"no training history: {why}; the training checks were "
                   "skipped", optimizer=state.optimizer, iterations=state.iterations)


# --- the optimizer settings ----------------------------------------------------


def _settings(state: TrainingState, thresholds: Thresholds, model: str,
              harm: Sequence[tuple[str, str | None]]) -> list[Finding]:
    """GA414: a learning rate ≤ 0 or a clip that stops learning (error); a rate far from
    the usual one: a warning when ``harm`` (the file's evidence) agrees, else info."""
    findings = []
    rate = _learning_rate(state)
    if rate is not None and rate <= 0:
        effect = "no step moves the weights" if rate == 0 else "every step climbs the loss"
        findings.append(finding(
            "GA414", model, f"learning rate {rate:g}: {effect}",
            optimizer=state.optimizer, learning_rate=rate))
    elif rate is not None and state.optimizer in USUAL_LEARNING_RATES:
        findings += _far_rate(state, rate, thresholds, model, harm)
    findings += _zero_clips(state, model)
    return findings


def _far_rate(state: TrainingState, rate: float, thresholds: Thresholds, model: str,
              harm: Sequence[tuple[str, str | None]]) -> list[Finding]:
    """A rate far above the usual one with harm in the file (warning), or far off on
    its own (info: a fine-tuning rate is far below on purpose)."""
    assert state.optimizer is not None
    usual, source = USUAL_LEARNING_RATES[state.optimizer]
    ratio = max(rate / usual, usual / rate)
    side = "above" if rate > usual else "below"
    said = f"learning rate {rate:g} is {ratio:.0f}× {side} the usual {usual:g} for " \
        f"{state.optimizer} ({source})"
    metrics = dict(optimizer=state.optimizer, learning_rate=rate, usual=usual, source=source)
    if side == "above" and harm and ratio > thresholds.learning_rate_harm_factor:
        return [dataclasses.replace(finding(
            "GA414", model, f"{said}, and the file shows what a too-high rate does: "
            f"{'; '.join(text for text, _ in harm)}",
            evidence=[text for text, _ in harm],
            layers=[layer for _, layer in harm if layer is not None], **metrics),
            severity=Severity.WARNING)]
    if ratio > thresholds.learning_rate_factor:
        return [dataclasses.replace(finding(
            "GA414", model, f"{said}; {_no_harm(state)}", evidence=[], **metrics),
            severity=Severity.INFO)]
    return []


def _no_harm(state: TrainingState) -> str:
    """Why a far rate is only info: what the file was searched for, or that it has nothing."""
    if any(_has_slots(v) for v in state.variables):
        return "the optimizer state shows no harm from it (no stalled units, no NaN or Inf)"
    return "the file holds no per-unit optimizer state that could show harm from it"


def _harm(state: TrainingState, trained: Sequence[Finding]) -> list[tuple[str, str | None]]:
    """What in the file a too-high learning rate would explain, each with the layer it is
    on (the GA414 finding names them, so the diagnosis links their findings to it):
    stalled units (GA401, GA402) and optimizer slots holding NaN or Inf."""
    harm: list[tuple[str, str | None]] = [
        (f"{f.metrics['stalled_units']} of {f.metrics['units']} units of {f.layer} stalled",
         f.layer) for f in trained if f.code in ("GA401", "GA402")]
    broken = [f"{v.layer}/{v.variable}" for v in state.variables if not v.finite]
    if broken:
        harm.append((f"NaN or Inf in the optimizer slots of {_join(broken)}", None))
    return harm


def _zero_clips(state: TrainingState, model: str) -> list[Finding]:
    """GA414 for a clip of 0 the writer's optimizer applies: an error unless the optimizer
    state shows gradients reached the weights, which the evidence wins (then info)."""
    if not _zero_clip_zeroes(state.optimizer_config, state.keras_version):
        return []
    moved = [v for v in state.variables if v.nonzero]
    findings = []
    for key in CLIPS:
        if _number(state.optimizer_config.get(key)) != 0:
            continue
        if moved:
            findings.append(dataclasses.replace(finding(
                "GA414", model,
                f"{key} = 0 in the optimizer config, which a Keras 2 optimizer_v2 would apply "
                f"as a clip to zero, but the {state.optimizer} state shows gradients reached "
                f"the weights (non-zero slots in {len(moved)} of {len(state.variables)} "
                "variables): the clip was not applied",
                optimizer=state.optimizer, setting=key, moved_variables=len(moved)),
                severity=Severity.INFO))
        else:
            findings.append(finding(
                "GA414", model,
                f"{key} = 0 in a Keras 2 optimizer (optimizer_v2) clips every gradient to "
                "zero: no step moves the weights",
                optimizer=state.optimizer, setting=key))
    return findings


def _learning_rate(state: TrainingState) -> float | None:
    """The rate to judge: a schedule's initial rate (its end may be 0 by design), else
    the rate the file's variable holds, else the configured one."""
    configured = state.optimizer_config.get("learning_rate", state.optimizer_config.get("lr"))
    if isinstance(configured, dict):
        schedule = configured.get("config")
        return _number(schedule.get("initial_learning_rate")) if isinstance(schedule, dict) \
            else None
    return state.learning_rate if state.learning_rate is not None else _number(configured)


def _zero_clip_zeroes(config: dict[str, object], keras_version: str | None) -> bool:
    """Whether the optimizer applies a clip of 0 and so zeroes every gradient.

    tf.keras's optimizer_v2 (TensorFlow ≤ 2.10, ``tf_keras.optimizers.legacy``) does;
    Keras 3, the newer tf_keras optimizers and standalone Keras ≤ 2.3 skip a clip that
    is not > 0. optimizer_v2 configs say ``is_legacy_optimizer: true`` (TensorFlow ≥
    2.11) or, older, carry ``decay`` and ``learning_rate`` — as standalone Keras 2.3
    did, which only the file's ``keras_version`` (no ``-tf``, below 2.4) tells apart.
    """
    if _standalone_keras(keras_version):
        return False
    if "is_legacy_optimizer" in config:
        return config["is_legacy_optimizer"] is True
    return "decay" in config and "learning_rate" in config


def _standalone_keras(version: str | None) -> bool:
    """Whether ``keras_version`` names standalone Keras (≤ 2.3): tf.keras wrote
    ``2.x.y-tf``, and from 2.4 on Keras was tf.keras (tf_keras writes ``2.21.0``)."""
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (match is not None and "-tf" not in (version or "")
            and (int(match[1]), int(match[2])) < (2, 4))


def _number(value: object) -> float | None:
    """A finite real number from a config value, else None (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _join(names: Sequence[str]) -> str:
    return ", ".join(names)

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


def read_training_state(path: str, fmt: str) -> TrainingState:
    """The training evidence in a ``.keras`` or ``.h5`` file (fmt "keras" | "h5").

    Never raises for a malformed or hostile file: what cannot be read becomes a
    note. Sizes are checked before anything is read into memory.
    """
    raise NotImplementedError  # being written: issue 13, part 1

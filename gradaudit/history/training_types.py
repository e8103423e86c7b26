"""The training evidence of a file, as plain data: what the readers in
:mod:`gradaudit.history.training_state` return and the training checks judge.

Kept apart from the readers so that they can build these values without an
import cycle; :mod:`~gradaudit.history.training_state` re-exports every name.
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

    A unit is an output channel: the last axis of a kernel, an entry of a bias
    (a scalar variable is one unit). ``activity`` is the slot statistic that
    shrinks by ``decay`` at every step in which the unit got no gradient,
    reduced over the unit's weights by their maximum (a unit is quiet only when
    every one of its weights is):

    - Adam, AdamW, Nadam: ``|m| / (√v + ε)``, decay ``β1 / √β2`` (≈ 0.9005);
      Adamax: ``|m| / (u + ε)``, decay ``β1 / β2``. A ratio, so ``relative`` is
      False: it is compared with an absolute threshold (live ≈ 0.3, silent for
      k steps ≈ 0.3 · decay^k).
    - RMSprop: ``√mean_square``, decay ``√ρ``; SGD with momentum: ``|momentum|``,
      decay ``momentum``; Lion: ``|m|``, decay ``β2``. Magnitudes, so ``relative``
      is True: compared with a reference over the model's units.
    - Adagrad keeps nothing that decays: ``activity`` is None. (Plain SGD keeps
      no slot at all, so its variables have no state.)
    """

    layer: str
    """Qualified layer name, as in the report (``encoder/dense``)."""
    variable: str
    """The variable's label in its layer (``kernel``, ``bias``, or ``var0`` …)."""
    shape: tuple[int, ...]
    activity: np.ndarray | None
    """Per unit (length: the last axis, 1 for a scalar); None for Adagrad and
    where a slot is not finite."""
    decay: float | None
    relative: bool
    grad_rms: float | None
    """RMS of the gradient over training, from the second moment, bias-corrected
    (``√(mean v / (1 - β2^t))``, RMSprop with ρ; Adagrad: ``√((mean acc - acc₀) / t)``);
    None where the optimizer keeps no second moment (SGD, Lion, Adamax), the
    iteration count is unknown or a slot is not finite."""
    nonzero: bool
    """Whether any slot entry is non-zero (Adagrad: differs from its initial
    value): all zero after ≥ 1 step means the variable never received a
    gradient (GA403)."""
    finite: bool = True
    """False when a slot holds NaN or Inf (or a second moment is negative, which no
    training gives); such a variable is not judged."""


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

    @property
    def from_logits(self) -> bool:
        """Whether the loss reads logits (validated a bool when the spec is read)."""
        return self.config.get("from_logits", False) is True


@dataclass(frozen=True)
class CompileConfig:
    """The compile config as saved: loss per output, ``from_logits``, loss weights, metrics.

    Keyed by output name: the name of the layer that gives the output at the
    top level of the model (a nested model's name when the output comes from
    inside one; :attr:`Head.layer` names the layer inside).
    """

    losses: dict[str, str | None]
    """Output name → loss name, canonical (``binary_crossentropy``, ``mean_squared_error``
    for ``mse``, a loss class in snake case; None: no loss for that output)."""
    from_logits: dict[str, bool]
    """Output name → the loss's ``from_logits`` (False where not given)."""
    loss_weights: dict[str, float]
    """Output name → loss weight (1.0 where not given)."""
    metrics: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Output name → metric names as compiled (``accuracy``, ``auc``; tf_keras saves the
    one it resolved, ``categorical_accuracy``); absent where none."""
    accuracy_by_loss: bool = False
    """Whether the writer resolved ``accuracy`` from the loss (standalone Keras ≤ 2.3,
    tf.keras ≤ 2.1: binary accuracy under a binary crossentropy), not from the shapes."""
    specs: dict[str, LossSpec] = field(default_factory=dict)
    """Output name → its loss as written, for the probe to rebuild (outputs with a loss
    only); ``losses`` and ``from_logits`` are the names and flags the checks read of it."""


@dataclass(frozen=True)
class Head:
    """The layer that produces one model output, as its config declares it."""

    output: str
    """The output's name: the key of this output in :class:`CompileConfig`."""
    layer: str
    """Qualified name of the layer that computes it (``decoder/probs``)."""
    activation: str | None
    """The activation the output ends in (``softmax``, ``sigmoid``, ``linear`` …), also
    through a separate Activation layer and a Dropout after it; None if not known."""
    units: int | None
    """Size of its last axis (Dense ``units``, Conv ``filters``); None if not known."""


@dataclass(frozen=True)
class TrainingState:
    """The training evidence of one file; fields are None where the file has none."""

    optimizer: str | None = None
    """Optimizer class name (the inner one for a LossScaleOptimizer); None when the
    file holds no optimizer state (the compiled optimizer is then in a note)."""
    optimizer_config: dict[str, Any] = field(default_factory=dict)
    """Its saved config: learning_rate, beta_1, beta_2, rho, momentum, clipnorm, …"""
    iterations: int | None = None
    learning_rate: float | None = None
    variables: tuple[VariableState, ...] = ()
    compile: CompileConfig | None = None
    notes: tuple[str, ...] = ()
    """What could not be read or mapped, in words (the report shows them)."""
    heads: tuple[Head, ...] = ()
    """The layers producing the model's outputs, in output order (for GA411–GA413)."""
    keras_version: str | None = None
    """The ``keras_version`` a legacy ``.h5`` records of its writer (``2.3.1`` for
    standalone Keras, ``2.x.y-tf`` for old tf.keras): which optimizer applied the config."""

"""GA401–GA404, GA411–GA414: what the optimizer state and compile config in the file say.

Pure functions over :class:`~gradaudit.load.training_state.TrainingState`: no
model runs, so ``--no-probe`` gives these findings from the file alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradaudit.load.training_state import TrainingState
from gradaudit.options import Thresholds
from gradaudit.report.types import Finding


@dataclass(frozen=True)
class LayerHistory:
    """One layer's training history, for the "Training history" table and JSON."""

    layer: str
    steps: int
    """Optimizer iterations the file records."""
    units: int
    stalled_units: int
    """Units that received no gradient during the last steps before the save."""
    steps_since_gradient: float | None
    """Estimated steps since a stalled unit last got a gradient (median over the
    layer's stalled units); None when none is stalled or the optimizer cannot tell."""
    train_grad_rms: float | None
    """RMS of the gradient over training, from the second moment, bias-corrected."""

    @property
    def stalled_fraction(self) -> float:
        return self.stalled_units / self.units if self.units else 0.0


def history(state: TrainingState, thresholds: Thresholds) -> tuple[LayerHistory, ...]:
    """Per layer with optimizer state, in the file's order."""
    raise NotImplementedError  # being written: issue 13, part 2


def check(state: TrainingState, thresholds: Thresholds) -> list[Finding]:
    """GA401–GA404 from the optimizer state, GA411–GA414 from the compile config."""
    raise NotImplementedError  # being written: issue 13, part 2

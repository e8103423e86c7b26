"""A hand-built training state of ``fixtures/dead_relu.keras`` as if it had been trained,
and what issue 13's reader and checks would say of it, for the report, CLI and
callback tests (no TensorFlow here: fresh processes import it too).

``install(monkeypatch.setattr)`` puts the three functions in place on
``gradaudit.pipeline`` (``install(setattr)`` in a fresh process).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gradaudit.checks.training import LayerHistory
from gradaudit.history.training_state import CompileConfig, TrainingState, VariableState
from gradaudit.options import Thresholds
from gradaudit.report.types import Finding, Severity

STEPS = 504


def _variable(layer: str, name: str, shape: tuple[int, ...]) -> VariableState:
    return VariableState(layer=layer, variable=name, shape=shape,
                         activity=np.full(shape[-1], 0.3), decay=0.9, relative=False,
                         grad_rms=0.01, nonzero=True)


STATE = TrainingState(
    optimizer="Adam", optimizer_config={"learning_rate": 0.05}, iterations=STEPS,
    learning_rate=0.05,
    variables=(_variable("pre", "kernel", (8, 16)), _variable("pre", "bias", (16,)),
               _variable("dead", "kernel", (16, 16)), _variable("dead", "bias", (16,)),
               _variable("out", "kernel", (16, 4)), _variable("out", "bias", (4,))),
    compile=CompileConfig(losses={"out": "mean_squared_error"}, from_logits={"out": False},
                          loss_weights={"out": 1.0}))
HISTORY = (
    LayerHistory("pre", STEPS, 16, 9, 212.0, 0.0123456789),
    LayerHistory("dead", STEPS, 16, 16, 480.25, 1e-9),
    LayerHistory("out", STEPS, 4, 0, None, 0.25),
    LayerHistory("gone", STEPS, 3, 0, None, 0.5),  # a layer the model does not list
)
FINDINGS = [
    Finding("GA402", Severity.ERROR, "dead", "all 16 units stalled in training",
            {"units": 16, "stalled_units": 16}),
    Finding("GA401", Severity.WARNING, "pre", "9 of 16 units stalled in training",
            {"units": 16, "stalled_units": 9}),
]


def read_training_state(path: str, fmt: str, **gated: Any) -> TrainingState:
    return STATE


def history(state: TrainingState, thresholds: Thresholds) -> tuple[LayerHistory, ...]:
    return HISTORY if state.variables else ()


def check(state: TrainingState, thresholds: Thresholds, model: str = "") -> list[Finding]:
    return list(FINDINGS) if state.variables else []


def install(set_attribute: Callable[[Any, str, Any], None]) -> None:
    """These three in place of the reader's and the checks' on ``gradaudit.pipeline``."""
    from gradaudit import pipeline

    for function in (read_training_state, history, check):
        set_attribute(pipeline, function.__name__, function)

"""The training state of a model in memory, from its live optimizer: what
``gradaudit.audit(model)`` and ``GradAuditCallback`` report besides the probe.

The reduction itself is ``optimizer_slots.reduce`` (tested with the file reader); here:
the slots are found for every trainable variable, under the report's layer names,
and the callback carries the history into its reports and TensorBoard. The checks
of issue 13 part 2 are stood in for by a count of units below an activity of 1e-3.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import gradaudit
from gradaudit.checks.training import LayerHistory
from gradaudit.history.live_state import live_training_state
from gradaudit.history.training_state import TrainingState
from gradaudit.keras import GradAuditCallback
from gradaudit.model.keras_graph import KerasModel
from gradaudit.options import Thresholds
from tests.test_callback import _events

QUIET = 1e-3


def _mlp(learning_rate: float) -> tuple[keras.Model, np.ndarray]:
    """The issue's MLP (20 → 64 → 64 → 1, ReLU) on positive features; its training data."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal((1000, 20))).astype("float32")
    y = (x.sum(axis=1) > 16).astype("float32")
    inputs = keras.Input((20,), name="features")
    h = keras.layers.Dense(64, activation="relu", name="h1")(inputs)
    h = keras.layers.Dense(64, activation="relu", name="h2")(h)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="out")(h))
    model.compile(keras.optimizers.Adam(learning_rate), "binary_crossentropy")
    model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    return model, x


def _quiet_history(state: TrainingState, thresholds: Thresholds) -> tuple[LayerHistory, ...]:
    """Per layer, the kernel's units whose activity is below QUIET (a stand-in for part 2)."""
    return tuple(
        LayerHistory(v.layer, state.iterations or 0, len(v.activity),
                     int((v.activity < QUIET).sum()), None, v.grad_rms)
        for v in state.variables if v.variable == "kernel" and v.activity is not None)


@pytest.fixture(scope="module")
def dying() -> tuple[keras.Model, np.ndarray]:
    return _mlp(0.05)


def test_every_trainable_variable_has_its_slots_under_its_layer_name(
        dying: tuple[keras.Model, np.ndarray]) -> None:
    model, x = dying
    state = live_training_state(KerasModel(model), model)
    assert state is not None and state.notes == ()
    assert (state.optimizer, state.iterations) == ("Adam", 4 * 32)
    assert state.learning_rate == pytest.approx(0.05)
    assert [(v.layer, v.variable, v.shape) for v in state.variables] == [
        ("h1", "kernel", (20, 64)), ("h1", "bias", (64,)), ("h2", "kernel", (64, 64)),
        ("h2", "bias", (64,)), ("out", "kernel", (64, 1)), ("out", "bias", (1,))]
    # The units that never fire on the training data stand apart in the slots.
    h1 = keras.Model(model.inputs, model.get_layer("h1").output)(x).numpy()
    never_active = (h1 > 0).sum(axis=0) == 0
    activity = state.variables[0].activity
    assert activity is not None and 10 < never_active.sum() < 64
    assert activity[never_active].max() < activity[~never_active].min() / 100


def test_a_model_without_a_trained_optimizer() -> None:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))
    assert live_training_state(KerasModel(model), model) is None  # not compiled
    model.compile(keras.optimizers.RMSprop(1e-3), "mse")
    assert live_training_state(KerasModel(model), model) == TrainingState(
        optimizer="RMSprop", optimizer_config=model.optimizer.get_config(), iterations=0,
        learning_rate=pytest.approx(1e-3))
    model.compile(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1, momentum=0.9)),
                  "mse")
    model.fit(np.ones((4, 4)), np.ones((4, 2)), verbose=0)
    state = live_training_state(KerasModel(model), model)
    assert state is not None and state.optimizer == "SGD" and state.iterations == 1
    assert [v.decay for v in state.variables] == [0.9, 0.9]
    model.compile(keras.optimizers.Ftrl(), "mse")
    model.fit(np.ones((4, 4)), np.ones((4, 2)), verbose=0)
    state = live_training_state(KerasModel(model), model)
    assert state is not None and state.variables == ()
    assert state.notes == ("optimizer Ftrl: its slots are not understood; the training checks "
                           "skip them",)


def test_the_api_and_the_callback_report_the_live_history(
        dying: tuple[keras.Model, np.ndarray], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    from gradaudit import pipeline

    monkeypatch.setattr(pipeline, "history", _quiet_history)
    model, x = dying
    report = gradaudit.audit(model, x[:64])
    assert report.training is not None and report.training.iterations == 4 * 32
    assert report.checks_run == ("GA1", "GA2", "GA3", "GA4")
    h1 = next(row for row in report.layers if row.name == "h1")
    assert h1.train_units == 64 and h1.stalled_units is not None and h1.stalled_units > 10

    callback = GradAuditCallback(inputs=x[:64], log_dir=tmp_path)
    model.fit(x, x[:, :1] > 1, epochs=2, batch_size=32, verbose=0, callbacks=[callback])
    assert [r.training.iterations for r in callback.reports.values() if r.training] == [
        5 * 32, 6 * 32]
    scalars = _events(tmp_path / "gradaudit")
    assert set(scalars["stalled_fraction/h1"]) == {0, 1}
    assert scalars["train_grad_rms/h2"][1] > 0

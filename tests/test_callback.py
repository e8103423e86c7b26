"""GradAuditCallback on a real ``fit``: a ReLU layer killed by a huge learning
rate is caught when it dies, and auditing does not change how training goes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import gradaudit
from gradaudit.keras import GradAuditCallback

DIED = [("GA102", "hidden"), ("GA202", "hidden"), ("GA202", "out")]


def _regression(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A linear target; 256 training rows and a held-out batch of 64."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((320, 8)).astype("float32")
    y = (x @ rng.standard_normal((8, 1))).astype("float32")
    return x[:256], y[:256], x[256:]


def _codes(report: gradaudit.Report) -> list[tuple[str, str]]:
    return [(f.code, f.layer) for f in report.findings]


def _events(directory: Path) -> dict[str, dict[int, float]]:
    """Scalars written under ``directory``: tag → step → value."""
    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                scalars.setdefault(value.tag, {})[event.step] = float(
                    tf.make_ndarray(value.tensor))
    return scalars


def test_a_relu_layer_dying_under_a_huge_learning_rate_stops_training(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    keras.utils.set_random_seed(0)
    x, y, held_out = _regression()
    inputs = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(hidden))
    model.compile(keras.optimizers.Adam(learning_rate=30.0), "mae")
    # Alive before training: no probe finding. Compiled, never trained, the training
    # checks (issue 13) say so (GA404) and note the huge learning rate (GA414: info,
    # nothing in the state shows harm yet).
    assert _codes(gradaudit.audit(model, held_out)) == [
        ("GA404", model.name), ("GA414", model.name)]

    callback = GradAuditCallback(inputs=held_out, fail_on="error", log_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="gradaudit"):
        history = model.fit(x, y, epochs=20, batch_size=32, shuffle=False, verbose=0,
                            callbacks=[callback])

    stopped = callback.stopped_epoch
    assert stopped is not None and history.epoch == list(range(stopped + 1))
    assert sorted(callback.reports) == history.epoch  # audited after every epoch
    # The learning rate (GA414) is in every report; the probe's findings besides it.
    rate = ("GA414", model.name)
    assert all(rate in _codes(r) for r in callback.reports.values())
    probe = {e: [c for c in _codes(r) if c != rate] for e, r in callback.reports.items()}
    died = [e for e, codes in probe.items() if ("GA102", "hidden") in codes]
    assert died == [stopped] and probe[stopped] == DIED
    assert probe[0] == []  # alive after the first epoch …
    dying = [e for e, codes in probe.items() if codes == [("GA101", "hidden")]]
    assert dying and dying == list(range(dying[0], stopped))  # … partly dead, then dead
    assert np.isfinite(history.history["loss"]).all()  # dead, not diverged to NaN

    # Logged: each finding when it first appears, at its severity's level, and the stop.
    # Epochs: 1-based as the progress bar, then Keras's index, which the data uses.
    rate_logs = [(r.levelname, r.getMessage()) for r in caplog.records if "GA414" in r.getMessage()]
    assert rate_logs[0][0] == "INFO" and rate_logs[0][1].startswith(  # no harm shown yet
        f"epoch 1 (index 0): info GA414 {model.name}: learning rate 30 ")
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= 30]
    assert logged[0][0] == "WARNING" and logged[0][1].startswith(
        f"epoch {dying[0] + 1} (index {dying[0]}): warning GA101 hidden: ")
    assert [(level, text.split(":")[0] + ":" + text.split(":")[1]) for level, text in
            logged[1:]] == (
        [("ERROR", f"epoch {stopped + 1} (index {stopped}): error {code} {layer}")
         for code, layer in DIED]
        + [("ERROR", f"epoch {stopped + 1} (index {stopped}): stopping training")])

    # TensorBoard: per-layer scalars at step = epoch.
    scalars = _events(tmp_path / "gradaudit")
    assert scalars["dead_fraction/hidden"][0] < 0.5  # below GA101's threshold
    assert scalars["dead_fraction/hidden"][stopped] == 1.0
    assert scalars["grad_rms/hidden"][0] > 0 and scalars["grad_rms/hidden"][stopped] == 0.0
    assert scalars["findings/error"] == {e: (3.0 if e == stopped else 0.0)
                                         for e in history.epoch}
    assert "dead_fraction/out" not in scalars  # a linear layer has no dead units


def _fit(audit_every: int | None) -> tuple[list[np.ndarray], list[np.ndarray], int, Any]:
    """Fit a Dropout + BatchNorm model; weights, optimizer state and train-step traces."""
    keras.utils.set_random_seed(1)
    x, y, held_out = _regression(1)
    inputs = keras.Input((8,), name="features")
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    h = keras.layers.BatchNormalization(name="norm")(h)
    h = keras.layers.Dropout(0.3, name="drop")(h)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(h))
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    traces = []
    step = model.train_step

    def counting_step(data: Any) -> Any:  # Python runs only while tf.function traces
        traces.append(1)
        return step(data)

    model.train_step = counting_step
    callbacks = [] if audit_every is None else [
        GradAuditCallback(audit_every, inputs=held_out, fail_on="error")]
    model.fit(x, y, epochs=4, batch_size=32, shuffle=False, verbose=0, callbacks=callbacks)
    optimizer = [v.numpy() for v in model.optimizer.variables]
    return [w.numpy() for w in model.weights], optimizer, len(traces), callbacks


def test_auditing_during_fit_changes_nothing_about_training() -> None:
    weights, optimizer, traces, _ = _fit(None)
    audited_weights, audited_optimizer, audited_traces, (callback,) = _fit(2)
    assert sorted(callback.reports) == [1, 3]  # every_n_epochs=2: after epochs 2 and 4
    assert callback.stopped_epoch is None
    assert all(r.findings == () for r in callback.reports.values())
    assert audited_traces == traces > 0  # the compiled train step was not retraced
    assert len(audited_weights) == len(weights) == 8  # incl. moving mean/variance
    pairs = zip(weights + optimizer, audited_weights + audited_optimizer, strict=True)
    for before, after in pairs:
        np.testing.assert_array_equal(before, after)

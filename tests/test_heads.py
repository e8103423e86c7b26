"""Head, loss and task read together (issue 18 §2): GA411/GA412 from the file.

Every model is built, compiled (or not) and saved by Keras itself in the test's
``tmp_path`` — Keras 3 ``.keras``, and a legacy ``.h5`` by tf_keras for Keras 2's
``training_config`` — then audited with ``--no-probe`` (the file alone) and, for the
architecture findings, once with the probe too. Each verdict has a healthy twin that
must give no GA41x finding at all.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from keras import layers

from gradaudit.history.compile_info import accuracy_by_loss
from gradaudit.history.training_state import CompileConfig, Head, TrainingState
from gradaudit.model.head_table import HEAD_LOSS, table_markdown, table_text
from gradaudit.options import Options
from gradaudit.pipeline import audit_path
from gradaudit.probe.supplied import read_inputs_file
from gradaudit.report.catalogue import lookup
from gradaudit.report.types import Finding
from tests.conftest import ROOT

Build = Callable[[], keras.Model]


def _mlp(*tail: layers.Layer, units: int = 16, name: str = "model") -> keras.Model:
    """features (8) -> hidden (units, relu) -> the tail layers."""
    x = keras.Input((8,), name="features")
    y = layers.Dense(units, activation="relu", name="hidden")(x)
    for layer in tail:
        y = layer(y)
    return keras.Model(x, y, name=name)


def _saved(tmp_path: Path, model: keras.Model, loss: Any = None,
           metrics: list[str] | None = None) -> Path:
    """``model`` compiled with ``loss`` (None: not compiled) and saved as .keras."""
    if loss is not None:
        model.compile(keras.optimizers.Adam(1e-3), loss, metrics=metrics)
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    return path


def _ga41(path: Path, *, probe: bool = False) -> dict[tuple[str, str, str], Finding]:
    """(code, layer, severity) → finding, for every GA41x finding of the audit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = audit_path(str(path), Options(no_probe=not probe, samples=16))
    return {(f.code, f.layer, str(f.severity)): f for f in report.findings
            if f.code.startswith("GA41")}


# --- head against loss, from the compile config ---------------------------------------

HEAD_LOSS_CASES: list[tuple[str, Build, Any, list[str] | None, set[tuple[str, str, str]],
                            str]] = [
    # softmax over 10 classes under binary_crossentropy, and its twin
    ("softmax_bce", lambda: _mlp(layers.Dense(10, activation="softmax", name="out")),
     "binary_crossentropy", ["accuracy"], {("GA412", "out", "warning")},
     "independent Bernoullis"),
    ("softmax_cce", lambda: _mlp(layers.Dense(10, activation="softmax", name="out")),
     "categorical_crossentropy", ["accuracy"], set(), ""),
    # a separate softmax after a Dense(n): read through the Activation layer
    ("act_softmax_bce", lambda: _mlp(layers.Dense(10, name="logits"),
                                     layers.Activation("softmax", name="out")),
     "binary_crossentropy", None, {("GA412", "out", "warning")}, "independent Bernoullis"),
    ("act_softmax_cce", lambda: _mlp(layers.Dense(10, name="logits"),
                                     layers.Softmax(name="out")),
     "categorical_crossentropy", None, set(), ""),
    # sigmoids over several classes under a categorical crossentropy, and the twin
    ("sigmoid_cce", lambda: _mlp(layers.Dense(10, activation="sigmoid", name="out")),
     "categorical_crossentropy", None, {("GA412", "out", "warning")}, "renormalises"),
    ("sigmoid_bce", lambda: _mlp(layers.Dense(10, activation="sigmoid", name="out")),
     "binary_crossentropy", ["accuracy"], set(), ""),
    # one unit under a class crossentropy: the loss is constant
    ("sigmoid1_cce", lambda: _mlp(layers.Dense(1, activation="sigmoid", name="out")),
     "categorical_crossentropy", None, {("GA411", "out", "error")}, "the loss is constant"),
    ("sigmoid1_scce", lambda: _mlp(layers.Dense(1, activation="sigmoid", name="out")),
     "sparse_categorical_crossentropy", None, {("GA411", "out", "error")},
     "the loss is constant"),
    ("sigmoid1_bce", lambda: _mlp(layers.Dense(1, activation="sigmoid", name="out")),
     "binary_crossentropy", ["accuracy"], set(), ""),
    # a linear head into a probability loss, and logits declared as such
    ("linear_cce", lambda: _mlp(layers.Dense(10, name="out")),
     "categorical_crossentropy", None, {("GA412", "out", "warning")}, "clipped"),
    ("linear_bce", lambda: _mlp(layers.Dense(3, activation="tanh", name="out")),
     "binary_crossentropy", None, {("GA412", "out", "warning")}, "clipped"),
    ("logits_cce", lambda: _mlp(layers.Dense(10, name="out")),
     keras.losses.CategoricalCrossentropy(from_logits=True), None, set(), ""),
    ("softmax_from_logits", lambda: _mlp(layers.Dense(10, activation="softmax", name="out")),
     keras.losses.CategoricalCrossentropy(from_logits=True), None,
     {("GA412", "out", "warning")}, "a second time"),
    # a classifier under a regression loss; a regression head and a sigmoid decoder
    ("softmax_mse", lambda: _mlp(layers.Dense(10, activation="softmax", name="out")),
     "mse", None, {("GA412", "out", "warning")}, "saturates"),
    ("softmax_poisson", lambda: _mlp(layers.Dense(10, activation="softmax", name="out")),
     "poisson", None, {("GA412", "out", "warning")}, "saturates"),
    ("sigmoid_mae_acc", lambda: _mlp(layers.Dense(1, activation="sigmoid", name="out")),
     "mae", ["accuracy"], {("GA412", "out", "warning")}, "show a classifier"),
    ("sigmoid_mse_decoder", lambda: _mlp(layers.Dense(64, activation="sigmoid", name="out")),
     "mse", None, set(), ""),
    ("linear_mse", lambda: _mlp(layers.Dense(1, name="out")), "mse", ["mae"], set(), ""),
]


@pytest.mark.parametrize(("name", "build", "loss", "metrics", "expected", "says"),
                         HEAD_LOSS_CASES, ids=[case[0] for case in HEAD_LOSS_CASES])
def test_head_against_loss_in_a_saved_file(tmp_path: Path, name: str, build: Build, loss: Any,
                                           metrics: list[str] | None,
                                           expected: set[tuple[str, str, str]],
                                           says: str) -> None:
    model = build()
    model.name = name
    found = _ga41(_saved(tmp_path, model, loss, metrics))
    assert set(found) == expected
    for item in found.values():
        assert says in item.message


def test_softmax_under_binary_crossentropy_names_what_accuracy_is(tmp_path: Path) -> None:
    """Keras 3 resolves ``accuracy`` from the shapes (``get_metric``): one-hot labels
    shaped like the 10-unit output give categorical accuracy, not binary."""
    path = _saved(tmp_path, _mlp(layers.Dense(10, activation="softmax", name="out")),
                  "binary_crossentropy", ["accuracy"])
    (item,) = _ga41(path).values()
    assert item.message.startswith(
        "softmax over 10 units into binary_crossentropy (from_logits=False): independent")
    assert "resolves to categorical_accuracy" in item.message
    assert item.metrics["accuracy"] == "categorical_accuracy"
    assert item.message.endswith("use categorical_crossentropy (one-hot labels) or "
                                 "sparse_categorical_crossentropy (class ids)")


def test_old_keras_resolved_accuracy_by_the_loss() -> None:
    """Standalone Keras ≤ 2.3 took binary accuracy under binary_crossentropy."""
    assert [accuracy_by_loss(v) for v in ("2.2.4", "2.3.1", "2.2.4-tf", "2.3.0-tf", "2.4.0",
                                          "2.21.0", "3.15.1", None, "garbled")] == [
        True, True, True, False, False, False, False, False, False]
    compiled = CompileConfig(losses={"out": "binary_crossentropy"}, from_logits={},
                             loss_weights={}, metrics={"out": ("accuracy",)},
                             accuracy_by_loss=True)
    state = TrainingState(compile=compiled, heads=(Head("out", "out", "softmax", 10),))
    from gradaudit.checks.heads import check

    (item,) = check(state)
    assert (item.code, item.layer) == ("GA412", "out")
    assert "binary accuracy, the mean over the 10 units, ≈0.90" in item.message


def _tf_keras_h5(tmp_path: Path, loss: str, name: str) -> Path:
    """features -> hidden (16, relu) -> out (10, softmax), fit one step by tf_keras."""
    import numpy as np
    import tf_keras

    x = tf_keras.Input((8,), name="features")
    h = tf_keras.layers.Dense(16, activation="relu", name="hidden")(x)
    model = tf_keras.Model(x, tf_keras.layers.Dense(10, activation="softmax", name="out")(h))
    model.compile(tf_keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    rng = np.random.default_rng(0)
    labels = np.eye(10, dtype="float32")[rng.integers(0, 10, 32)]
    model.fit(rng.normal(size=(32, 8)).astype("float32"), labels, epochs=1, verbose=0)
    path = tmp_path / f"{name}.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "HDF5 is a legacy format"
        model.save(path)
    return path


def test_keras2_h5_softmax_under_binary_crossentropy(tmp_path: Path) -> None:
    """tf_keras's training_config holds the accuracy it resolved (categorical)."""
    found = _ga41(_tf_keras_h5(tmp_path, "binary_crossentropy", "softmax_bce"))
    assert set(found) == {("GA412", "out", "warning")}
    (item,) = found.values()
    assert "independent Bernoullis" in item.message
    assert item.metrics["accuracy"] == "categorical_accuracy"
    assert _ga41(_tf_keras_h5(tmp_path, "categorical_crossentropy", "softmax_cce")) == {}


# --- the architecture alone ------------------------------------------------------------

ARCHITECTURE_CASES: list[tuple[str, Build, Any, set[tuple[str, str, str]], str]] = [
    ("stacked_linear", lambda: _mlp(layers.Dense(32, name="a"), layers.Dense(16, name="b"),
                                    layers.Dense(10, activation="softmax", name="out")),
     None, {("GA412", "out", "info")}, "a (Dense), b (Dense), out (Dense) follow"),
    ("linear_dropout_linear", lambda: _mlp(layers.Dense(32, name="a"),
                                           layers.Dropout(0.2, name="drop"),
                                           layers.Dense(1, name="out")),
     "mse", {("GA412", "out", "info")}, "collapse into one linear map"),
    ("dense_bn_relu_dense", lambda: _mlp(layers.Dense(32, name="a"),
                                         layers.BatchNormalization(name="bn"),
                                         layers.ReLU(name="relu"),
                                         layers.Dense(10, activation="softmax", name="out")),
     "categorical_crossentropy", set(), ""),
    ("bottleneck_then_relu", lambda: _mlp(layers.Dense(4, name="bottleneck"),
                                          layers.Activation("relu", name="act"),
                                          layers.Dense(1, name="out")),
     None, set(), ""),
    ("dropout_before_softmax", lambda: _mlp(layers.Dense(10, name="logits"),
                                            layers.Dropout(0.3, name="drop"),
                                            layers.Activation("softmax", name="out")),
     "categorical_crossentropy", {("GA412", "drop", "warning")}, "between logits and its"),
    ("bn_after_head", lambda: _mlp(layers.Dense(10, activation="softmax", name="probs"),
                                   layers.BatchNormalization(name="bn")),
     None, {("GA412", "bn", "warning")}, "after the softmax head probs"),
    ("softmax_twice", lambda: _mlp(layers.Dense(10, activation="softmax", name="probs"),
                                   layers.Activation("softmax", name="out")),
     "categorical_crossentropy", {("GA412", "out", "warning")}, "squashed twice"),
    ("softmax_once", lambda: _mlp(layers.Dense(10, name="logits"),
                                  layers.Activation("softmax", name="out")),
     None, set(), ""),
]


@pytest.mark.parametrize(("name", "build", "loss", "expected", "says"), ARCHITECTURE_CASES,
                         ids=[case[0] for case in ARCHITECTURE_CASES])
def test_architecture(tmp_path: Path, name: str, build: Build, loss: Any,
                      expected: set[tuple[str, str, str]], says: str) -> None:
    model = build()
    model.name = name
    found = _ga41(_saved(tmp_path, model, loss))
    assert set(found) == expected
    for item in found.values():
        assert says in item.message


def test_dropout_after_the_head_is_read_through(tmp_path: Path) -> None:
    """Dense(softmax) -> Dropout: the head is still a softmax (for the loss), and the
    Dropout after it is a finding of its own on the same layer."""
    model = _mlp(layers.Dense(10, activation="softmax", name="probs"),
                 layers.Dropout(0.5, name="drop"), name="dropout_after_head")
    found = _ga41(_saved(tmp_path, model, "binary_crossentropy"))
    assert set(found) == {("GA412", "drop", "warning")}
    messages = [f.message for f in _all_ga41(tmp_path / "dropout_after_head.keras")]
    assert len(messages) == 2
    assert any(m.startswith("softmax over 10 units into binary_crossentropy") for m in messages)
    assert any(m.startswith("Dropout after the softmax head probs") for m in messages)


def _all_ga41(path: Path) -> list[Finding]:
    report = audit_path(str(path), Options(no_probe=True))
    return [f for f in report.findings if f.code.startswith("GA41")]


def test_architecture_with_the_probe_on_an_uncompiled_file(tmp_path: Path) -> None:
    """No compile config, no training state: the findings come with the probe's too."""
    model = _mlp(layers.Dense(32, name="a"), layers.Dense(10, name="b"),
                 layers.Activation("softmax", name="once"), name="probed")
    path = _saved(tmp_path, model)
    assert set(_ga41(path, probe=True)) == {("GA412", "b", "info")}
    assert set(_ga41(path)) == {("GA412", "b", "info")}


def test_a_nested_model_is_walked_inside(tmp_path: Path) -> None:
    inner = _mlp(layers.Dense(10, name="logits"), layers.Dropout(0.2, name="drop"),
                 layers.Activation("sigmoid", name="probs"), name="inner")
    x = keras.Input((8,), name="features")
    model = keras.Model(x, inner(x), name="outer")
    found = _ga41(_saved(tmp_path, model, "binary_crossentropy"))
    assert set(found) == {("GA412", "inner/drop", "warning")}


# --- one table, printed in three places -----------------------------------------------


def test_the_table_is_what_explain_and_the_docs_print() -> None:
    assert table_text() in lookup("GA412").explanation
    page = (ROOT / "docs" / "ga4xx-training.md").read_text(encoding="utf-8")  # generated
    assert table_markdown() in page.split("\n## GA412\n", 1)[1].split("\n## ", 1)[0]
    assert {p.code for p in HEAD_LOSS} == {"GA411", "GA412"}


# --- supplied labels against a bounded head ---------------------------------------------

@pytest.mark.parametrize(("activation", "scale", "expected"), [
    ("tanh", 3.0, {("GA412", "out", "warning")}),  # N(0, 3): ~74% beyond ±1
    ("tanh", 0.3, set()),  # the healthy twin: every label within (-1, 1)
    ("sigmoid", 3.0, {("GA412", "out", "warning")}),
    (None, 3.0, set()),  # a linear regression head reaches any target
])
def test_supplied_labels_a_bounded_head_cannot_reach(
        tmp_path: Path, activation: str | None, scale: float,
        expected: set[tuple[str, str, str]]) -> None:
    model = _mlp(layers.Dense(2, activation=activation, name="out"),
                 name=f"head_{activation}_{scale:g}")
    path = _saved(tmp_path, model, "mse")
    rng = np.random.default_rng(0)
    labels = np.clip(rng.normal(0.0, scale, (64, 2)), -0.99, 0.99) if scale < 1 else (
        rng.normal(0.0, scale, (64, 2)))
    data = tmp_path / "data.npz"
    np.savez(data, features=rng.standard_normal((64, 8)).astype("float32"),
             y=labels.astype("float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = audit_path(str(path), Options(samples=64),
                            read_inputs_file(data, 64))
    found = {(f.code, f.layer, str(f.severity)): f for f in report.findings
             if f.code.startswith("GA41")}
    assert set(found) == expected
    if expected:
        finding = found[("GA412", "out", "warning")]
        low, high = (0.0, 1.0) if activation == "sigmoid" else (-1.0, 1.0)
        truth = float(np.mean((labels < low) | (labels > high)))  # measured, not written down
        assert finding.metrics["share_outside"] == pytest.approx(truth, abs=1e-4)
        assert finding.metrics["head_range"] == [low, high]
        assert f"{truth:.0%} of the supplied labels lie outside" in finding.message

"""GA206: an output that is the same on every probe sample and that no weight moves.

The one-unit softmax fixture is the known answer (tests/test_ground_truth.py);
here: a flat output whose gradients are rounding noise rather than exact zeros
(before GA206 the audit passed; the noise is reported as the zero it is), an output
constant only up to rounding, constant outputs whose cause lies upstream (not GA206), which
layer is named, and a SavedModel signature's output key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import pytest

from gradaudit.model.keras_graph import KerasModel
from gradaudit.options import Options
from gradaudit.pipeline import audit_model, audit_path
from gradaudit.report.types import Finding, ModelReport, Severity

# Keras warns each time a one-unit softmax is called: these models have it on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis")


def _audit(model: Any) -> ModelReport:
    return audit_model(KerasModel(model), Options())


def _findings(report: ModelReport) -> set[tuple[str, str]]:
    return {(f.code, f.layer) for f in report.findings}


def _constant(report: ModelReport) -> list[Finding]:
    return [f for f in report.findings if f.code == "GA206"]


def _classifier(head: Any, name: str = "model") -> Any:
    """features → Dense(16, relu) 'hidden' → Dense(1) 'logit' → ``head(logit)``."""
    keras.utils.set_random_seed(0)
    features = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(features)
    logit = keras.layers.Dense(1, name="logit")(hidden)
    return keras.Model(features, head(logit), name=name)


def test_flat_output_with_rounding_noise_gradients_fails_the_audit() -> None:
    """exp(x - logsumexp(x)) over one unit (a hand-written softmax) is exactly 1.0, but its
    gradients are rounding noise, not zeros: GA206 sees it, and the noise that only the
    flat output sends back ('logit') is the zero it is in exact arithmetic (GA202). A
    healthy second output keeps the shared layer's gradients alive."""
    keras.utils.set_random_seed(0)
    features = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(features)
    logit = keras.layers.Dense(1, name="logit")(hidden)
    flat = keras.ops.exp(logit - keras.ops.logsumexp(logit, axis=-1, keepdims=True))
    healthy = keras.layers.Dense(3, activation="softmax", name="probs")(hidden)
    model = keras.Model(features, [healthy, flat])
    report = _audit(model)
    (finding,) = _constant(report)
    assert finding.severity == Severity.ERROR
    assert finding.layer == KerasModel(model).output_layer(1) and finding.layer.startswith("exp")
    assert finding.metrics["output"] == 1
    assert finding.metrics["spread"] == 0.0 and finding.metrics["magnitude"] == 1.0
    assert 0 < finding.metrics["sensitivity"] < 1e-6  # rounding noise, not exact zero
    assert [f.layer for f in report.findings if f.code == "GA202"] == ["logit"]
    assert report.samples == 256  # a constant output needs every sample, like a dead unit


def test_output_constant_up_to_rounding_is_constant() -> None:
    """sigmoid(x) + sigmoid(-x) is 1 in exact arithmetic, 1 ± 2 float32 epsilons here."""
    report = _audit(_classifier(lambda x: keras.ops.sigmoid(x) + keras.ops.sigmoid(-x)))
    (finding,) = _constant(report)
    assert 0 < finding.metrics["spread"] < 16 * 2.0**-23


@pytest.mark.parametrize("head", [
    lambda x: keras.layers.Dense(1, activation="sigmoid", name="out",
                                 bias_initializer=keras.initializers.Constant(100.0))(x),
    lambda x: keras.layers.Dense(1, activation="softmax", name="out")(x),
])
def test_saturated_sigmoid_and_one_unit_softmax_outputs(head: Any) -> None:
    assert ("GA206", "out") in _findings(_audit(_classifier(head)))


def test_dead_relu_output_layer_is_both_dead_and_constant() -> None:
    """A dead ReLU output layer is the layer at fault and its output is flat: GA102 says
    why, GA206 that the model's prediction is constant."""
    out = keras.layers.Dense(2, activation="relu", name="out",
                             bias_initializer=keras.initializers.Constant(-100.0))
    findings = _findings(_audit(_classifier(out)))
    assert {("GA102", "out"), ("GA206", "out")} <= findings


@pytest.mark.parametrize("name", ["dead_relu.keras", "deep_sigmoid.keras", "frozen_base.keras"])
def test_output_constant_because_of_upstream_is_not_reported(name: str) -> None:
    """These outputs are exactly constant in float32 (after a dead layer, a vanished
    gradient, a frozen random base whose features shrink to 1e-10), but their own
    layer's weights still move them: the cause is upstream, reported there or expected."""
    from gradaudit.probe.random_inputs import random_batches
    from gradaudit.probe.tape import probe
    from tests.conftest import FIXTURES

    model = KerasModel(keras.saving.load_model(FIXTURES / name, compile=False))
    result = probe(model, random_batches(model.input_specs(), 256, 64, seed=0), Options())
    (stats,) = result.outputs.values()
    assert stats.constant and not stats.flat
    assert stats.sensitivity is not None and stats.sensitivity > 1e-2


def test_output_of_a_nested_model_is_named_inside_it() -> None:
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, activation="softmax",
                                                                    name="probs")], name="inner")
    features = keras.Input((8,), name="features")
    model = keras.Model(features, inner(keras.layers.Dense(8, name="pre")(features)))
    assert KerasModel(model).output_layer(0) == "inner/probs"
    assert ("GA206", "inner/probs") in _findings(_audit(model))


def test_savedmodel_output_is_named_by_its_signature_key(tmp_path: Path) -> None:
    model = _classifier(lambda x: keras.layers.Dense(1, activation="softmax", name="out")(x))
    model.export(str(tmp_path / "export"), verbose=False)
    report = audit_path(str(tmp_path / "export"), Options())
    assert [f.layer for f in _constant(report)] == ["output_0"]

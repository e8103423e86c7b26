"""Every fixture has a built-in fault (or none) and a known answer.

Assertions are on the exact code, severity and layer: misses and false
positives both fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import findings_at_least

HEALTHY = [
    "healthy_mlp.keras", "healthy_mlp.h5", "lstm_text.keras", "frozen_base.keras",
    "multi_io.keras", "batchnorm.keras", "frozen_layer.keras", "keras2_sequential.h5",
    "two_unit_softmax.keras",
]


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_models_have_no_errors_or_warnings(audited: dict[str, Any], name: str) -> None:
    assert findings_at_least(audited[name], "warning") == set()


# Fixtures whose error and warning findings are known exactly.
EXACT = {
    "dead_relu.keras": {
        ("GA102", "error", "dead"),
        ("GA202", "error", "pre"),  # upstream of the dead layer
        ("GA202", "error", "dead"),
        ("GA202", "error", "out"),  # its kernel only ever sees zeros
    },
    "partly_dead.keras": {("GA101", "warning", "partial")},
    "nested_dead.keras": {
        ("GA102", "error", "encoder/enc_dead"),
        ("GA202", "error", "encoder/enc_hidden"),
        ("GA202", "error", "encoder/enc_dead"),
        ("GA202", "error", "head"),
    },
    "saturated_sigmoid.keras": {
        ("GA111", "warning", "sat"),
        ("GA204", "warning", "sat"),  # saturation starves it of gradient
    },
    "stop_gradient.keras": {("GA201", "error", "cut")},
    "int_cast.keras": {("GA201", "error", "before_cast")},
    "argmax.keras": {("GA201", "error", "scores")},
    "where_never.keras": {("GA202", "error", "never_chosen")},
    "unused_input.keras": {("GA211", "warning", "unused")},
    "no_trainable.keras": {("GA302", "error", "no_trainable")},
    "keras2_functional.h5": {  # written by Keras 2 (tf_keras)
        ("GA102", "error", "dead"),
        ("GA202", "error", "hidden"),
        ("GA202", "error", "bn"),
        ("GA202", "error", "dead"),
        ("GA202", "error", "probs"),
    },
    "nan_grad.keras": {("GA205", "error", "rooted")},
    "one_unit_softmax.keras": {
        # A softmax over one unit is 1.0 on every sample; the gradients before it are
        # zero in exact arithmetic (exact zeros with oneDNN, rounding noise with Eigen):
        # GA202 either way, caused by GA206 (tests/test_onednn.py).
        ("GA206", "error", "probs"),
        ("GA202", "error", "hidden1"),
        ("GA202", "error", "hidden2"),
        ("GA202", "error", "probs"),
    },
    "nan_weight.keras": {
        ("GA303", "error", "bad"),
        ("GA205", "error", "hidden"),  # NaN flows back from 'bad'
        ("GA205", "error", "out"),
    },
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_faulty_fixture_findings_are_exact(audited: dict[str, Any], name: str) -> None:
    assert findings_at_least(audited[name], "warning") == EXACT[name]


def _layers(model: dict[str, Any], code: str) -> list[str]:
    return [f["layer"] for f in model["findings"] if f["code"] == code]


def test_deep_sigmoid_stack_vanishes_towards_the_input(audited: dict[str, Any]) -> None:
    model = audited["deep_sigmoid.keras"]
    vanishing = _layers(model, "GA204")
    assert vanishing[0] == "sig_01"
    assert "sig_20" not in vanishing and "out" not in vanishing
    assert vanishing == [f"sig_{i:02d}" for i in range(1, len(vanishing) + 1)]
    assert {f["code"] for f in model["findings"]} == {"GA204"}
    assert all(f["severity"] == "warning" for f in model["findings"])


def test_deep_linear_stack_explodes_at_every_depth(audited: dict[str, Any]) -> None:
    model = audited["exploding.keras"]
    exploding = _layers(model, "GA203")
    assert exploding == [f"lin_{i:02d}" for i in range(1, 13)] + ["out"]
    assert {f["code"] for f in model["findings"]} == {"GA203", "GA412"}
    # The linear stack also collapses into one linear map (info, from the config alone).
    (collapse,) = [f for f in model["findings"] if f["code"] == "GA412"]
    assert (collapse["layer"], collapse["severity"]) == ("out", "info")
    assert collapse["metrics"]["layers"] == [f"lin_{i:02d}" for i in range(1, 13)] + ["out"]
    first = next(f for f in model["findings"] if f["layer"] == "lin_01")
    assert first["metrics"]["relative_update"] > 1e6


@pytest.mark.parametrize(
    ("name", "layer", "cut"),
    [
        ("stop_gradient.keras", "cut", "stop_gradient"),
        ("int_cast.keras", "before_cast", "cast to int32"),
        ("argmax.keras", "scores", "argmax"),
    ],
)
def test_disconnection_names_the_cutting_operation(
    audited: dict[str, Any], name: str, layer: str, cut: str
) -> None:
    (finding,) = [f for f in audited[name]["findings"] if f["code"] == "GA201"]
    assert finding["layer"] == layer
    assert finding["metrics"]["cut_at"] == cut
    assert finding["metrics"]["variables"] == ["kernel", "bias"]
    assert cut in finding["message"]


def test_unused_input_is_named_by_input_name(audited: dict[str, Any]) -> None:
    (finding,) = [f for f in audited["unused_input.keras"]["findings"] if f["code"] == "GA211"]
    assert finding["metrics"]["cut_at"] == "unused"


def test_dead_layer_figures(audited: dict[str, Any]) -> None:
    layers = {row["name"]: row for row in audited["dead_relu.keras"]["layers"]}
    assert layers["dead"]["dead_fraction"] == 1.0
    assert layers["dead"]["dead_units"] == 16
    assert layers["pre"]["dead_fraction"] < 0.5
    partial = {row["name"]: row for row in audited["partly_dead.keras"]["layers"]}["partial"]
    assert (partial["dead_units"], partial["units"]) == (14, 20)
    (warning,) = audited["partly_dead.keras"]["findings"]
    assert warning["metrics"]["dead_fraction"] == 0.7


def test_zero_gradient_message_points_at_the_dead_layer(audited: dict[str, Any]) -> None:
    pre = next(f for f in audited["dead_relu.keras"]["findings"]
               if f["code"] == "GA202" and f["layer"] == "pre")
    assert pre["metrics"]["dead_layers"] == ["dead"]
    assert "dead" in pre["message"]


def test_one_unit_softmax_output_is_constant_and_flat(audited: dict[str, Any]) -> None:
    (finding,) = [f for f in audited["one_unit_softmax.keras"]["findings"]
                  if f["code"] == "GA206"]
    metrics = finding["metrics"]
    assert (metrics["output"], metrics["spread"], metrics["samples"]) == (0, 0.0, 256)
    assert metrics["magnitude"] == pytest.approx(1.0)
    assert metrics["sensitivity"] < 1e-6  # rounding noise, not a gradient


def test_frozen_layer_is_info_only(audited: dict[str, Any]) -> None:
    findings = audited["frozen_layer.keras"]["findings"]
    assert [(f["code"], f["severity"], f["layer"]) for f in findings] == [
        ("GA301", "info", "frozen")
    ]


def test_frozen_base_is_reported_once_as_a_whole(audited: dict[str, Any]) -> None:
    findings = audited["frozen_base.keras"]["findings"]
    assert [(f["code"], f["layer"]) for f in findings] == [("GA301", "mobilenetv2_0.35_32")]


def test_no_trainable_model_also_lists_its_frozen_layers(audited: dict[str, Any]) -> None:
    infos = findings_at_least(audited["no_trainable.keras"], "info") - findings_at_least(
        audited["no_trainable.keras"], "warning")
    assert infos == {("GA301", "info", "hidden"), ("GA301", "info", "probs")}


def test_every_catalogue_code_is_triggered_by_some_fixture(audited: dict[str, Any]) -> None:
    from gradaudit.report.catalogue import CATALOGUE

    seen = {f["code"] for model in audited.values() for f in model["findings"]}
    # The training checks (GA4xx) do not run in the audit yet (issue 13); their fixtures
    # are in fixtures/trained/, and tests/test_training_checks.py triggers every code.
    # GA412 also reads the layer order of every file, compiled or not (issue 18).
    # GA103's fixtures are trained ones in fixtures/trained/ (bn_*); tests/test_batchnorm.py.
    assert seen == {rule.code for rule in CATALOGUE if not rule.code.startswith("GA4")
                    and rule.code != "GA103"} | {"GA412"}


def test_deep_sigmoid_underflow_is_reported_as_vanishing_not_dead(tmp_path) -> None:
    """60 sigmoid layers: the first gradients underflow to exact zeros in float32."""
    import json

    import keras

    from tests.conftest import run_cli

    keras.utils.set_random_seed(0)
    x = features = keras.Input((8,), name="features")
    for k in range(60):
        x = keras.layers.Dense(8, activation="sigmoid", name=f"s{k:02d}")(x)
    path = tmp_path / "underflow.keras"
    keras.Model(features, keras.layers.Dense(2, name="out")(x)).save(path)
    result = run_cli("audit", str(path), "-f", "json", "--samples", "64")
    findings = json.loads(result.stdout)["models"][0]["findings"]
    zero = [f for f in findings if f["code"] == "GA202"]
    assert zero and zero[0]["layer"] == "s00"
    assert all(f["metrics"]["underflow"] and "underflowed" in f["message"] for f in zero)
    vanishing = {f["layer"] for f in findings if f["code"] == "GA204"}
    assert {f["layer"] for f in zero} <= vanishing
    assert "s59" not in vanishing and "out" not in vanishing
    assert not [f for f in findings if f["code"] not in {"GA202", "GA204"}]


def test_early_stop_changes_no_verdict(audited) -> None:
    """Stopping once every verdict is decided gives the findings of a full run."""
    import json

    from tests.conftest import LOADABLE, run_cli

    full = json.loads(run_cli("audit", "-f", "json", "--all-samples", *map(str, LOADABLE)).stdout)
    for model in full["models"]:
        early = audited[Path(model["path"]).name]
        assert model["summary"]["samples"] == 256
        assert {(f["code"], f["layer"]) for f in early["findings"]} == {
            (f["code"], f["layer"]) for f in model["findings"]}, model["path"]
    stopped = {name for name, model in audited.items() if model["summary"]["samples"] < 256}
    assert {"healthy_mlp.keras", "lstm_text.keras", "multi_io.keras"} <= stopped
    assert "dead_relu.keras" not in stopped  # dead units stay undecided until the end
    assert "one_unit_softmax.keras" not in stopped  # so does a constant output

"""Keras 2 files through tf_keras: files Keras 3 cannot rebuild get the same audit.

The fixtures keras2_bilstm.h5 and keras2_td_dead.h5 were written by tf_keras
with LSTM layers, whose `time_major` argument Keras 3 rejects
(fixtures/make_fixtures.py proves Keras 3 refuses both).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import pytest
import tf_keras

import gradaudit
from tests.conftest import FIXTURES, run_cli


def _audit(*args: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli("audit", "--format", "json", "-q", *args)
    return result.exit_code, json.loads(result.stdout), result.stderr


def _codes(model: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(f["code"], f["severity"], f["layer"]) for f in model["findings"]}


def test_a_dead_layer_inside_timedistributed_of_a_keras2_file_is_found() -> None:
    code, document, _ = _audit(str(FIXTURES / "keras2_td_dead.h5"))
    (model,) = document["models"]
    assert code == 1
    assert _codes(model) == {("GA102", "error", "td/dense"), ("GA202", "error", "td/dense"),
                             ("GA202", "error", "lstm"), ("GA202", "error", "out")}
    assert model["notes"] == ["loaded with tf_keras, Keras 2 (the file was written by "
                              "Keras 2.21.0)"]


def test_a_healthy_keras2_text_model_with_float_token_inputs_is_clean() -> None:
    code, document, _ = _audit(str(FIXTURES / "keras2_bilstm.h5"))
    (model,) = document["models"]
    assert code == 0 and model["findings"] == []
    assert model["summary"]["inputs_source"]["token_ids"] == {"embedding_input": 500}
    names = [row["name"] for row in model["layers"]]
    assert names == ["embedding", "bilstm", "bilstm/forward_lstm", "bilstm/backward_lstm", "out"]


def test_a_keras2_model_in_memory_gets_the_same_findings_as_its_file() -> None:
    model = tf_keras.models.load_model(FIXTURES / "keras2_td_dead.h5", compile=False)
    report = gradaudit.audit(model)
    assert {(f.code, f.layer) for f in report.findings} == {
        ("GA102", "td/dense"), ("GA202", "td/dense"), ("GA202", "lstm"), ("GA202", "out")}


def test_a_keras2_lambda_layer_is_still_refused(tmp_path: Path) -> None:
    inputs = tf_keras.Input((4,), name="features")
    hidden = tf_keras.layers.Lambda(lambda x: x * 2, name="payload")(inputs)
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(1)(hidden))
    path = tmp_path / "lambda.h5"
    model.save(path)
    code, document, stderr = _audit(str(path))
    assert code == 2 and document["models"] == []
    assert "refused to load: Lambda layer 'payload'" in stderr


def test_a_keras2_file_neither_route_loads_gives_the_reason_of_the_furthest(
        tmp_path: Path) -> None:
    """tf_keras builds the model and fails on the weights; Keras 3 fails on the config."""
    path = tmp_path / "broken.h5"
    path.write_bytes((FIXTURES / "keras2_td_dead.h5").read_bytes())
    with h5py.File(path, "r+") as handle:
        del handle["model_weights"]["out"]
    code, document, stderr = _audit(str(path))
    assert code == 2 and document["models"] == []
    (line,) = stderr.strip().splitlines()
    assert line.startswith(f"gradaudit: error: {path}: Keras could not load the model: ")
    assert "time_major" not in line  # Keras 3's reason: it did not get as far


@pytest.mark.parametrize("name", ["keras2_bilstm.h5", "keras2_td_dead.h5"])
def test_keras2_sizes_are_checked_before_allocation(name: str) -> None:
    code, _, stderr = _audit(str(FIXTURES / name), "--max-params", "100")
    assert code == 2
    assert "more than --max-params 100" in stderr


def test_same_seed_same_keras2_report() -> None:
    path = str(FIXTURES / "keras2_td_dead.h5")
    first, second = run_cli("audit", path, "-q"), run_cli("audit", path, "-q")
    assert first.stdout == second.stdout


def test_a_keras2_custom_layer_no_route_knows_says_what_to_import(tmp_path: Path) -> None:
    """Both routes fail while building; the one naming the class wins the tie."""

    @tf_keras.saving.register_keras_serializable(package="theirs")
    class Scale(tf_keras.layers.Layer):  # type: ignore[misc]
        def call(self, x: Any) -> Any:
            return x * 2.0

    inputs = tf_keras.Input((4,), name="features")
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(1)(Scale(name="scale")(inputs)))
    path = tmp_path / "custom.h5"
    model.save(path)
    # As a fresh process would see it; tf_keras's own registrations (its optimizers,
    # ``Custom>Adam``) come back afterwards, for the tests that load a trained file.
    registry = tf_keras.saving.get_custom_objects()
    before = dict(registry)
    registry.clear()
    try:
        code, _, stderr = _audit(str(path))
    finally:
        registry.clear()
        registry.update(before)
        registry.pop("theirs>Scale", None)
    assert code == 2
    assert "Scale" in stderr and "--import" in stderr, stderr

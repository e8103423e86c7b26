"""The probe's objective: the compiled loss where the model has one, else a random projection.

Models are built, compiled and saved by Keras in tmp_path; every verdict comes from a
real probe (real gradients through Keras's own losses).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from gradaudit import audit
from gradaudit.formats import Format, render
from gradaudit.history.compile_info import compile_config
from gradaudit.history.loss_config import CompiledLosses
from gradaudit.probe.objective import build
from gradaudit.report import json_io
from tests.conftest import FIXTURES, run_cli


def _save(model: keras.Model, path: Path, **compile_args: Any) -> Path:
    if compile_args:
        model.compile(optimizer="adam", **compile_args)
    model.save(path)
    return path


def _sigmoid_head(stddev: float = 1e5) -> keras.Model:
    """features(8) → head: Dense(1, sigmoid) with kernel std ``stddev``: pre-activations
    of std ≈ 2.8 × stddev, so the sigmoid is exactly 0 or 1 in float32 on every sample."""
    x = keras.Input((8,), name="features")
    y = keras.layers.Dense(1, activation="sigmoid", name="head", kernel_initializer=(
        keras.initializers.RandomNormal(stddev=stddev, seed=1)))(x)
    return keras.Model(x, y, name="sigmoid_head")


@pytest.fixture(scope="module")
def saturated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saturated sigmoid head compiled with binary crossentropy."""
    path = tmp_path_factory.mktemp("objective") / "saturated.keras"
    return _save(_sigmoid_head(), path, loss="binary_crossentropy")


def _audit(*args: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli("audit", "--format", "json", "-q", *args)
    return result.exit_code, json.loads(result.stdout) if result.stdout else {}, result.stderr


def _codes(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(f["code"], f["layer"], f["severity"])
            for m in document["models"] for f in m["findings"]}


@pytest.mark.parametrize("samples", ["64", "256"])
def test_saturated_sigmoid_head_under_crossentropy_gets_no_ga202(saturated: Path,
                                                                 samples: str) -> None:
    """fit differentiates binary crossentropy through the sigmoid's logits: the gradient
    is large, so the loss objective reports no zero gradient; the projection, which
    differentiates the saturated sigmoid itself, does."""
    _, loss, _ = _audit(str(saturated), "--samples", samples)
    _, projection, _ = _audit(str(saturated), "--samples", samples,
                              "--objective", "projection")
    assert loss["models"][0]["summary"]["objective"] == "loss"
    assert projection["models"][0]["summary"]["objective"] == "projection"
    assert not {c for c in _codes(loss) if c[0] == "GA202"}
    assert ("GA202", "head", "error") in _codes(projection)
    head = next(row for row in loss["models"][0]["layers"] if row["name"] == "head")
    assert head["grad_rms"] > 1e-2


def test_uncompiled_file_gets_the_projection_and_forcing_loss_is_a_note(tmp_path: Path) -> None:
    path = _save(_sigmoid_head(stddev=0.05), tmp_path / "plain.keras")
    code, document, _ = _audit(str(path), "--samples", "64", "--objective", "loss")
    model = document["models"][0]
    assert code == 0
    assert model["summary"]["objective"] == "projection"
    assert "objectives" not in model["summary"]
    assert any("no compiled loss" in note for note in model["notes"])


def test_table_header_names_the_objective(saturated: Path) -> None:
    loss = run_cli("audit", "-q", "--samples", "64", str(saturated))
    projection = run_cli("audit", "-q", "--samples", "64", "--objective", "projection",
                         str(saturated))
    assert "objective: compiled loss (binary_crossentropy)" in loss.stdout
    assert "objective: random projection" in projection.stdout


def test_config_key_objective(saturated: Path, tmp_path: Path) -> None:
    config = tmp_path / "gradaudit.toml"
    config.write_text('objective = "projection"\n')
    _, document, _ = _audit(str(saturated), "--samples", "64", "--config", str(config))
    assert document["models"][0]["summary"]["objective"] == "projection"
    config.write_text('objective = "logits"\n')
    code, _, stderr = _audit(str(saturated), "--config", str(config))
    assert code == 2
    assert "expected one of loss, projection" in stderr


def test_mixed_outputs_report_objectives_and_round_trip(tmp_path: Path) -> None:
    """One output with a loss, one without: summary.objectives says which is which, and
    the JSON reads back as the run it was written from."""
    x = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, activation="relu", name="trunk")(x)
    scores = keras.layers.Dense(3, activation="softmax", name="scores")(h)
    value = keras.layers.Dense(1, name="value")(h)
    model = keras.Model(x, [scores, value], name="two_heads")
    path = _save(model, tmp_path / "two.keras",
                 loss=["categorical_crossentropy", None])
    code, document, _ = _audit(str(path), "--samples", "64")
    summary = document["models"][0]["summary"]
    assert code == 0
    assert summary["objective"] == "loss"
    assert summary["objectives"] == {"scores": "loss", "value": "projection"}
    run = json_io.read(render(json_io.read(json.dumps(document)), Format.JSON))
    assert json_io.read(json_io.write(run)) == run
    assert run.models[0].objectives == {"scores": "loss", "value": "projection"}


def test_zero_loss_weight_output_gets_zero_gradient_as_in_training() -> None:
    """The aux output's loss weight is 0: training sends aux_hidden and aux exactly zero
    gradient (their Adam slots are zero, GA403), and so does the loss objective."""
    _, document, _ = _audit(str(FIXTURES / "trained" / "loss_weight_zero.keras"))
    probe = {c for c in _codes(document) if c[0].startswith("GA2")}
    assert probe == {("GA202", "aux_hidden", "error"), ("GA202", "aux", "error")}


def test_healthy_trained_fixture_stays_clean_under_the_loss() -> None:
    _, document, _ = _audit(str(FIXTURES / "trained" / "healthy.keras"))
    assert document["models"][0]["summary"]["objective"] == "loss"
    assert not {c for c in _codes(document) if c[0][:3] in ("GA1", "GA2")}


# --- labels ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """features(4) → Dense(3, softmax) under categorical crossentropy."""
    x = keras.Input((4,), name="features")
    y = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    path = tmp_path_factory.mktemp("labels") / "classifier.keras"
    return _save(keras.Model(x, y, name="classifier"), path, loss="categorical_crossentropy")


def _inputs(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, features=np.random.default_rng(0).standard_normal((32, 4)), **arrays)
    return path


def test_supplied_one_hot_labels_are_used(classifier: Path, tmp_path: Path) -> None:
    labels = np.eye(3, dtype="float32")[np.arange(32) % 3]
    code, document, _ = _audit(str(classifier), "--inputs", str(_inputs(tmp_path, y=labels)))
    model = document["models"][0]
    assert code == 0
    assert model["summary"]["objective"] == "loss"
    assert [i["name"] for i in model["summary"]["inputs"]] == ["features"]


@pytest.mark.parametrize(("labels", "found"), [
    (np.arange(32) % 3, "found integer class ids"),
    (np.full((32, 3), 2.0), "found values in [2, 2]"),
    (np.ones((32, 5)), "found shape (32, 5) for 3 classes"),
])
def test_labels_that_do_not_fit_the_loss_exit_2_in_one_line(
        classifier: Path, tmp_path: Path, labels: np.ndarray, found: str) -> None:
    code, _, stderr = _audit(str(classifier), "--inputs", str(_inputs(tmp_path, y=labels)))
    assert code == 2
    assert "Traceback" not in stderr
    line = next(line for line in stderr.splitlines() if "labels" in line)
    assert "output 'probs'" in line and "categorical_crossentropy" in line and found in line


def test_one_hot_into_sparse_and_ids_out_of_range_exit_2(tmp_path: Path) -> None:
    x = keras.Input((4,), name="features")
    y = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    path = _save(keras.Model(x, y), tmp_path / "sparse.keras",
                 loss="sparse_categorical_crossentropy")
    for labels, found in ((np.eye(3)[np.arange(32) % 3], "found one-hot rows"),
                          (np.arange(32) % 4, "found ids in [0, 3] for 3 classes")):
        code, _, stderr = _audit(str(path), "--inputs", str(_inputs(tmp_path, y=labels)))
        assert code == 2, stderr
        assert found in stderr and "sparse_categorical_crossentropy" in stderr
    code, _, stderr = _audit(str(path), "--inputs", str(_inputs(tmp_path, y=np.arange(32) % 3)))
    assert code == 0, stderr


def test_labels_for_a_model_without_loss_are_a_note(tmp_path: Path) -> None:
    path = _save(_sigmoid_head(stddev=0.05), tmp_path / "plain.keras")
    data = tmp_path / "data.npz"
    features = np.random.default_rng(0).standard_normal((16, 8))
    np.savez(data, features=features, y=np.zeros((16, 1)))
    code, document, _ = _audit(str(path), "--inputs", str(data))
    assert code == 0
    assert any("labels in the inputs are ignored" in n for n in document["models"][0]["notes"])


def test_binary_labels_outside_0_1_exit_2(saturated: Path, tmp_path: Path) -> None:
    data = tmp_path / "data.npz"
    np.savez(data, features=np.zeros((16, 8)), y=np.full((16, 1), 3.0))
    code, _, stderr = _audit(str(saturated), "--inputs", str(data))
    assert code == 2
    assert "labels for output 'head' do not fit its loss binary_crossentropy" in stderr


# --- rebuilding losses -------------------------------------------------------------------

def test_loss_objects_keep_their_config_and_weight() -> None:
    raw = {"loss": {"class_name": "BinaryCrossentropy", "config": {
        "reduction": "auto", "name": "binary_crossentropy", "from_logits": True,
        "label_smoothing": 0.1, "axis": -1, "fn": "binary_crossentropy"}},
        "loss_weights": [0.5]}
    compiled, notes = compile_config(raw, ["out"])
    assert notes == [] and compiled is not None
    assert compiled.losses == {"out": "binary_crossentropy"}
    assert compiled.from_logits == {"out": True}
    spec = compiled.specs["out"]
    assert (spec.name, spec.written, spec.is_class, spec.weight) == (
        "binary_crossentropy", "BinaryCrossentropy", True, 0.5)
    assert spec.config["label_smoothing"] == 0.1


def test_a_loss_outside_keras_and_not_registered_is_projected_with_a_note() -> None:
    """A file naming a loss class that is not Keras's and that no --import registered:
    the projection, with a note; the module the file names is never imported."""
    raw = {"loss": {"module": "os", "class_name": "system", "registered_name": "system",
                    "config": {"command": "echo owned"}}}
    compiled, _ = compile_config(raw, ["head"])
    assert compiled is not None
    objective = build(CompiledLosses(("head",), compiled.specs, {"head": 1}), None, 0, {})
    assert not objective.uses_loss
    assert "cannot be rebuilt" in objective.notes[0] and "system" in objective.notes[0]


def test_live_compiled_model_uses_its_loss() -> None:
    model = _sigmoid_head()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    report = audit(model, samples=64)
    projected = audit(model, samples=64, objective="projection")
    assert report.objective == "loss"
    assert not [f for f in report.findings if f.code == "GA202"]
    assert [f.layer for f in projected.findings if f.code == "GA202"] == ["head"]


CUSTOM_LOSS = '''
import keras


@keras.saving.register_keras_serializable(package="objtest")
class HalfSquare(keras.losses.Loss):
    def call(self, y_true, y_pred):
        return 0.5 * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)
'''


def test_a_loss_registered_by_an_import_is_used(tmp_path: Path) -> None:
    module = tmp_path / "objtest_losses.py"
    module.write_text(CUSTOM_LOSS)
    spec = importlib.util.spec_from_file_location("objtest_losses", module)
    assert spec is not None and spec.loader is not None
    losses = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(losses)  # registers objtest>HalfSquare, as the saving script did
    path = _save(_sigmoid_head(stddev=0.05), tmp_path / "custom.keras",
                 loss=losses.HalfSquare())
    code, document, stderr = _audit(str(path), "--samples", "32", "--import", str(module))
    assert code == 0, (stderr, document.get("errors"))
    model = document["models"][0]
    assert model["summary"]["objective"] == "loss"
    assert not [note for note in model["notes"] if "cannot be rebuilt" in note]


def test_losses_for_another_number_of_outputs_are_reported_as_the_projection() -> None:
    """The report never says "loss" where the probe projected: a compile config naming
    two outputs does not apply to a model that returns one."""
    compiled, _ = compile_config({"loss": "mse"}, ["a", "b"])
    assert compiled is not None
    objective = build(CompiledLosses(("a", "b"), compiled.specs, {}), None, 0, {})
    assert objective.uses_loss and objective.applied(2) is objective
    applied = objective.applied(1)
    assert not applied.uses_loss
    assert applied.kinds(["a", "b"]) == {}
    assert "names 2 outputs and the model returns 1" in applied.notes[-1]

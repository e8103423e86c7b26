"""SavedModel directories (three writers) and the Keras 2 .h5 twin: same model, same findings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, run_cli

SAVEDMODELS = FIXTURES / "savedmodels"
# The stop_dead model as each writer saved it (see fixtures/make_fixtures.py).
WRITERS = {
    "tf_save": (SAVEDMODELS / "tf_save", "savedmodel"),  # tf.saved_model.save, Keras 3
    "export": (SAVEDMODELS / "export", "savedmodel"),  # Keras 3 model.export
    "keras2": (SAVEDMODELS / "keras2", "savedmodel"),  # tf_keras save_format="tf"
    "keras2_h5": (FIXTURES / "keras2_stop_dead.h5", "h5"),  # tf_keras legacy .h5
}
EXPECTED = {("GA201", "error", "cut"), ("GA102", "error", "dead"), ("GA202", "error", "dead")}


@pytest.fixture(scope="module")
def stop_dead() -> dict[str, dict[str, Any]]:
    """The four files audited in one run, as JSON, keyed by writer."""
    paths = [str(path) for path, _ in WRITERS.values()]
    result = run_cli("audit", "--format", "json", "--samples", "128", *paths)
    assert result.exit_code == 1, result.stderr
    models = {m["path"]: m for m in json.loads(result.stdout)["models"]}
    return {writer: models[str(path)] for writer, (path, _) in WRITERS.items()}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_stop_gradient_and_dead_relu_found_on_the_right_layers(
    stop_dead: dict[str, dict[str, Any]], writer: str
) -> None:
    model = stop_dead[writer]
    assert model["format"] == WRITERS[writer][1]
    assert {(f["code"], f["severity"], f["layer"]) for f in model["findings"]} == EXPECTED
    assert model["summary"]["params"] == {"total": 203, "trainable": 203, "non_trainable": 0,
                                          "measured": 203}
    dead = next(row for row in model["layers"] if row["name"] == "dead")
    assert (dead["activation"], dead["units"], dead["dead_units"]) == ("relu", 4, 4)
    shared = next(row for row in model["layers"] if row["name"] == "shared")
    assert shared["dead_units"] == 0 and shared["grad_rms"] > 0


@pytest.mark.parametrize("writer", list(WRITERS))
def test_the_cut_names_the_stop_gradient_op(
    stop_dead: dict[str, dict[str, Any]], writer: str
) -> None:
    (finding,) = [f for f in stop_dead[writer]["findings"] if f["code"] == "GA201"]
    assert finding["metrics"]["variables"] == ["kernel", "bias"]
    cut = finding["metrics"]["cut_at"]
    if WRITERS[writer][1] == "h5":
        assert cut == "stop_gradient"  # as for .keras: the Keras op layer
    else:  # the graph op itself, by its node name
        assert cut.startswith("stop_gradient (") and cut.endswith("StopGradient)"), cut


def test_savedmodel_notes_say_which_signature_ran(stop_dead: dict[str, dict[str, Any]]) -> None:
    for writer in ("tf_save", "export", "keras2"):
        notes = stop_dead[writer]["notes"]
        assert len(notes) == 1 and notes[0].startswith("signature 'serving_default' probed")


def test_table_shows_the_signature_note_and_the_cut() -> None:
    result = run_cli("audit", str(SAVEDMODELS / "export"), "--samples", "64")
    assert result.exit_code == 1
    assert f"{SAVEDMODELS / 'export'} (savedmodel)" in result.stdout
    assert "note: signature 'serving_default' probed as traced" in result.stdout
    assert "stop_gradient (stop_dead_1/StopGradient)" in result.stdout


def test_signature_option_chooses_the_function() -> None:
    result = run_cli("audit", str(SAVEDMODELS / "export"), "--signature", "serve",
                     "--samples", "64", "--format", "json")
    assert result.exit_code == 1
    (model,) = json.loads(result.stdout)["models"]
    assert model["notes"][0].startswith("signature 'serve' probed")
    assert {(f["code"], f["layer"]) for f in model["findings"]} == {
        (code, layer) for code, _, layer in EXPECTED}


def test_unknown_signature_is_exit_2_listing_what_is_there() -> None:
    result = run_cli("audit", str(SAVEDMODELS / "export"), "--signature", "nope")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"gradaudit: error: {SAVEDMODELS / 'export'}: no signature 'nope' in the SavedModel "
        "(it has: serve, serving_default)")


def test_write_file_payload_is_refused_and_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the payload writes gradaudit_marker.txt into the cwd
    result = run_cli("audit", str(SAVEDMODELS / "write_file"), "-q")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "refused to load: the SavedModel contains unsafe ops: WriteFile (touches files)" in line
    assert "in function __inference_serve_" in line and "--unsafe" in line
    assert not (tmp_path / "gradaudit_marker.txt").exists()


def test_unsafe_runs_the_payload_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The override works, and proves the refused fixture's payload is live."""
    monkeypatch.chdir(tmp_path)
    result = run_cli("audit", str(SAVEDMODELS / "write_file"), "--unsafe", "--format", "json",
                     "--samples", "8")
    assert result.exit_code == 0, result.stderr
    (model,) = json.loads(result.stdout)["models"]
    assert model["unsafe"] is True
    assert [row["name"] for row in model["layers"]] == ["dense"]
    assert (tmp_path / "gradaudit_marker.txt").read_text() == "payload ran"


def _copy(tmp_path: Path, name: str = "tf_save") -> Path:
    target = tmp_path / name
    shutil.copytree(SAVEDMODELS / name, target)
    return target


def _one_error_line(path: Path) -> str:
    result = run_cli("audit", str(path), "-q")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "Traceback" not in result.stderr and result.stdout == ""  # said once, on stderr
    return line


def test_empty_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert str(tmp_path / "empty") in _one_error_line(tmp_path / "empty")


def test_corrupt_saved_model_pb_is_one_line(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    (directory / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff garbage")
    assert _one_error_line(directory).endswith("damaged saved_model.pb (DecodeError)")


def test_missing_variables_is_one_line(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    shutil.rmtree(directory / "variables")
    assert "variables/variables.index is missing" in _one_error_line(directory)


def _save_module(path: Path, spec: Any, nested: bool = False) -> Path:
    import tensorflow as tf

    class Inner(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.ones((3, 2)), name="w")  # no scope in its name

    class Model(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Inner()

        @tf.function(input_signature=[spec])
        def serve(self, x):
            x = tf.strings.to_number(x) if x.dtype == tf.string else x
            return {"y": tf.matmul(tf.reshape(x, (-1, 3)), self.inner.w)}

    module = Model()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def test_string_input_without_data_is_one_line(tmp_path: Path) -> None:
    import tensorflow as tf

    path = _save_module(tmp_path / "strings", tf.TensorSpec((None, 3), tf.string, name="x"))
    assert _one_error_line(path).endswith(
        "signature 'serving_default' input 'x' has dtype string, which gradaudit cannot "
        "synthesise for a SavedModel; audit with real inputs")


def test_unscoped_variables_are_named_from_the_object_graph(tmp_path: Path) -> None:
    import tensorflow as tf

    path = _save_module(tmp_path / "module", tf.TensorSpec((None, 3), tf.float32, name="x"))
    result = run_cli("audit", str(path), "--format", "json", "--samples", "8")
    assert result.exit_code == 0, result.stderr
    (model,) = json.loads(result.stdout)["models"]
    assert [row["name"] for row in model["layers"]] == ["inner"]
    assert model["findings"] == []


def test_max_params_is_checked_from_the_checkpoint_index_before_loading() -> None:
    path = str(SAVEDMODELS / "tf_save")
    refused = run_cli("audit", path, "--max-params", "100", "-q")
    assert refused.exit_code == 2
    (line,) = [line for line in refused.stderr.splitlines() if line.strip()]
    assert line.startswith(f"gradaudit: error: {path}: the SavedModel's variables declare ")
    assert "--max-params 100" in line
    assert run_cli("audit", path, "--max-params", "1000", "-q").exit_code == 1

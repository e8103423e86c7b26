"""--inputs FILE (.npz/.npy) and --input-dist/--input-range change what the probe sees."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from gradaudit.model.specs import InputSpec
from gradaudit.probe.random_inputs import random_batches
from tests.conftest import FIXTURES, run_cli


@pytest.fixture(scope="module")
def gate_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ReLU layer "gate": all-positive kernel, zero bias.

    Alive on standard-normal inputs (about half of the samples have a positive
    sum), dead on all-negative data: every pre-activation is then negative.
    """
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="features")
    h = keras.layers.Dense(8, activation="relu", name="gate",
                           kernel_initializer=keras.initializers.Constant(0.5))(x)
    model = keras.Model(x, keras.layers.Dense(2, name="out")(h), name="gate_model")
    path = tmp_path_factory.mktemp("gate") / "gate.keras"
    model.save(path)
    return path


def _negative(rows: int = 100) -> np.ndarray:
    return -np.abs(np.random.default_rng(1).standard_normal((rows, 4))) - 0.1


def _audit(*args: str) -> tuple[int, dict, str]:
    result = run_cli("audit", "--format", "json", "-q", *args)
    return result.exit_code, json.loads(result.stdout) if result.stdout else {}, result.stderr


def _codes(document: dict) -> set[tuple[str, str]]:
    return {(f["code"], f["layer"]) for m in document["models"] for f in m["findings"]}


def test_random_normal_inputs_find_the_gate_alive(gate_model: Path) -> None:
    code, document, _ = _audit(str(gate_model), "--samples", "64")
    assert (code, _codes(document)) == (0, set())
    assert document["models"][0]["summary"]["inputs_source"] == {
        "kind": "random", "seed": 0, "distribution": "normal"}


@pytest.mark.parametrize("kind", ["npz-by-name", "npz-positional", "npy"])
def test_real_negative_data_finds_the_gate_dead(gate_model: Path, tmp_path: Path,
                                                kind: str) -> None:
    data = _negative()
    if kind == "npz-by-name":
        path = tmp_path / "data.npz"
        np.savez(path, features=data)
    elif kind == "npz-positional":
        path = tmp_path / "data.npz"
        np.savez(path, data)
    else:
        path = tmp_path / "data.npy"
        np.save(path, data)
    code, document, _ = _audit(str(gate_model), "--inputs", str(path), "--samples", "40",
                               "--all-samples")
    assert code == 1
    assert ("GA102", "gate") in _codes(document)
    summary = document["models"][0]["summary"]
    # --samples caps the rows used; the report says where the inputs came from.
    assert summary["inputs_source"] == {"kind": "file", "path": str(path), "rows": 40}
    assert summary["samples"] == 40


def test_the_table_names_the_inputs_file(gate_model: Path, tmp_path: Path) -> None:
    path = tmp_path / "data.npy"
    np.save(path, _negative(10))
    result = run_cli("audit", str(gate_model), "--inputs", str(path), "-q")
    assert f"inputs from: file {path} (10 rows)" in result.stdout.splitlines()[2]


def test_uniform_range_changes_the_verdict_too(gate_model: Path) -> None:
    code, document, _ = _audit(str(gate_model), "--input-range=-2,-1", "--samples", "32")
    assert code == 1 and ("GA102", "gate") in _codes(document)
    assert document["models"][0]["summary"]["inputs_source"] == {
        "kind": "random", "seed": 0, "distribution": "uniform", "range": [-2.0, -1.0]}


def test_uniform_batches_stay_in_range_and_token_ids_are_unaffected() -> None:
    specs = [InputSpec("image", (3,), "float32"), InputSpec("ids", (2,), "int32", vocab=5)]
    image, ids = next(random_batches(specs, 500, 500, seed=0, dist="uniform",
                                     value_range=(0.0, 255.0)))
    assert image.min() >= 0 and image.max() < 255 and image.max() > 200
    assert ids.min() >= 0 and ids.max() < 5


# --- mismatches: exit 2, one line naming the input, expected and found -----------

@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"features": np.zeros((5, 3), "float32")},
         "input 'features' expects shape (None, 4) float32, found (5, 3) float32"),
        ({"features": np.zeros((5, 4, 1), "float32")},
         "input 'features' expects shape (None, 4) float32, found (5, 4, 1) float32"),
        ({"features": np.zeros((5, 4), "complex64")},
         "input 'features' expects shape (None, 4) float32, found (5, 4) complex64 "
         "(which does not cast to float32)"),
        ({"features": np.zeros((5, 4)), "extra": np.zeros((5, 4))},
         "holds 2 array(s) (extra, features) but the model has 1 input(s) (features)"),
        ({"a": np.zeros((5, 4)), "b": np.zeros((4, 4))},
         "arrays have different numbers of rows (a: 5, b: 4)"),
    ],
)
def test_mismatched_inputs_are_exit_2_with_one_clear_line(
    gate_model: Path, tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    result = run_cli("audit", str(gate_model), "--inputs", str(path), "-q")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("gradaudit: error: ") and message in line and str(path) in line
    assert "Traceback" not in result.stdout + result.stderr


def test_an_unreadable_inputs_file_is_exit_2_before_any_model_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / "notes.npz"
    path.write_text("not numpy\n")
    result = run_cli("audit", str(FIXTURES / "healthy_mlp.keras"), "--inputs", str(path))
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"gradaudit: error: --inputs {path}: not a NumPy .npy/.npz file")


def test_multi_input_model_by_input_names(tmp_path: Path) -> None:
    path = tmp_path / "pair.npz"
    rng = np.random.default_rng(0)
    np.savez(path, right=rng.standard_normal((20, 6)), left=rng.standard_normal((20, 12)))
    code, document, _ = _audit(str(FIXTURES / "multi_io.keras"), "--inputs", str(path))
    assert code == 0 and document["models"][0]["summary"]["inputs_source"]["rows"] == 20
    npy = tmp_path / "one.npy"
    np.save(npy, rng.standard_normal((20, 12)))
    result = run_cli("audit", str(FIXTURES / "multi_io.keras"), "--inputs", str(npy), "-q")
    assert result.exit_code == 2
    assert "holds 1 array(s) (arr_0) but the model has 2 input(s) (left, right)" in result.stderr


def test_one_inputs_file_for_a_directory_audits_the_models_that_fit(
    gate_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(gate_model, folder / "gate.keras")
    shutil.copy(FIXTURES / "healthy_mlp.keras", folder / "wide.keras")
    data = tmp_path / "data.npy"
    np.save(data, _negative(16))
    code, document, _ = _audit(str(folder), "--inputs", str(data))
    assert code == 2
    assert [Path(m["path"]).name for m in document["models"]] == ["gate.keras"]
    assert ("GA102", "gate") in _codes(document)
    (error,) = document["errors"]
    assert error["path"] == str(folder / "wide.keras")
    expected = "input 'features' expects shape (None, 20) float32, found (16, 4) float64"
    assert expected in error["error"]


def test_the_report_shows_the_shape_of_the_data_given(tmp_path: Path) -> None:
    """An unknown axis is the data's, not the 32 random inputs would get."""
    inputs = keras.Input((None, 3), name="frames")
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(
        keras.layers.Dense(4, activation="relu")(inputs))))
    path = tmp_path / "seq.keras"
    model.save(path)
    data = tmp_path / "frames.npy"
    np.save(data, np.ones((8, 100, 3), "float32"))
    result = run_cli("audit", str(path), "--inputs", str(data), "--format", "json", "-q")
    (report,) = json.loads(result.stdout)["models"]
    assert report["summary"]["inputs"][0]["shape"] == [100, 3]


def test_a_text_file_given_as_inputs_is_named_not_a_numpy_file(tmp_path: Path) -> None:
    text = tmp_path / "inputs.txt"
    text.write_text("1,2,3\n")
    result = run_cli("audit", str(FIXTURES / "healthy_mlp.keras"), "--inputs", str(text), "-q")
    assert result.exit_code == 2
    assert "not a NumPy .npy/.npz file" in result.stderr and "pickled" not in result.stderr

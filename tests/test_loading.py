"""Loading treats the file as untrusted: the config is read and walked first."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import h5py
import pytest

from gradaudit.errors import MAX_REASON, AuditError, first_line
from gradaudit.load import config_tree
from gradaudit.load.detect import detect_format
from gradaudit.load.loader import load_model
from gradaudit.load.prescan import LAMBDA_TAG, read_model_config, unsafe_references
from tests.conftest import FIXTURES


def _layer(class_name: str, name: str, **extra: object) -> dict:
    return {"module": "keras.layers", "class_name": class_name,
            "config": {"name": name, **extra}}


def test_scan_finds_lambda_nested_inside_nested_models() -> None:
    inner = {"module": "keras", "class_name": "Sequential",
             "config": {"name": "inner", "layers": [_layer("Lambda", "hidden_payload")]}}
    outer = {"module": "keras", "class_name": "Sequential",
             "config": {"name": "outer", "layers": [_layer("Dense", "d"), inner]}}
    assert unsafe_references(outer) == [
        "Lambda layer 'hidden_payload' (runs Python code stored in the file)"
    ]


def test_a_refused_lambda_is_reported_once_but_a_lambda_activation_is_found() -> None:
    bytecode = {"class_name": LAMBDA_TAG, "config": {"code": "4wAAAA==", "defaults": None}}
    config = {"module": "keras", "class_name": "Sequential", "config": {"layers": [
        _layer("Lambda", "payload", function=bytecode),
        _layer("Dense", "d", activation=bytecode),
    ]}}
    assert unsafe_references(config) == [
        "Lambda layer 'payload' (runs Python code stored in the file)",
        "a Python lambda stored in the file (bytecode that would run)",
    ]


def test_config_walk_takes_any_depth_and_stops_where_told() -> None:
    depth = 100_000  # far past Python's recursion limit
    tree: dict[str, Any] = _layer("Lambda", "deep")
    for _ in range(depth):
        tree = {"config": {"layers": [tree]}}
    assert unsafe_references(tree) == ["Lambda layer 'deep' (runs Python code stored in the file)"]

    visited: list[dict[str, Any]] = []

    def visit(node: dict[str, Any]) -> bool:
        visited.append(node)
        return len(visited) < 10

    config_tree.walk(tree, visit)
    assert len(visited) == 10


def test_scan_finds_modules_outside_keras_anywhere_in_the_tree() -> None:
    initializer = {"module": "os", "class_name": "function", "config": "system"}
    config = {"module": "keras", "class_name": "Functional",
              "config": {"layers": [_layer("Dense", "d", kernel_initializer=initializer)]}}
    assert unsafe_references(config) == ["a reference to Python module 'os'"]


def test_scan_accepts_a_plain_keras_config() -> None:
    config = read_model_config(FIXTURES / "multi_io.keras", "keras")
    assert unsafe_references(config) == []


def test_h5_lambda_is_found_in_the_legacy_config() -> None:
    config = read_model_config(FIXTURES / "lambda_payload.h5", "h5")
    assert any("Lambda layer 'payload'" in r for r in unsafe_references(config))


def test_an_empty_h5_model_config_is_a_clear_reason(tmp_path: Path) -> None:
    path = tmp_path / "empty_config.h5"
    shutil.copy(FIXTURES / "healthy_mlp.h5", path)
    with h5py.File(path, "a") as handle:
        handle.attrs["model_config"] = h5py.Empty("f")
    with pytest.raises(AuditError, match="model_config attribute holds no text"):
        read_model_config(path, "h5")


def test_detect_format_by_content(tmp_path: Path) -> None:
    assert detect_format(FIXTURES / "healthy_mlp.keras") == "keras"
    assert detect_format(FIXTURES / "healthy_mlp.h5") == "h5"
    saved_model = tmp_path / "export"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"")
    assert detect_format(saved_model) == "savedmodel"


def test_savedmodel_with_an_empty_saved_model_pb_is_refused_with_a_clear_reason(
    tmp_path: Path,
) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(AuditError, match=r"saved_model\.pb holds no MetaGraph"):
        load_model(str(tmp_path))


def test_tf_op_lambda_naming_stop_gradient_is_allowed_any_other_is_refused() -> None:
    config = read_model_config(FIXTURES / "keras2_stop_dead.h5", "h5")
    assert unsafe_references(config) == []
    (layer,) = [x for x in config["config"]["layers"] if x["class_name"] == "TFOpLambda"]
    layer["config"]["function"] = "io.write_file"
    assert unsafe_references(config) == [
        "TFOpLambda layer 'tf.stop_gradient' (runs Python code stored in the file)"]


def _with_config(tmp_path: Path, edit) -> Path:
    """A copy of healthy_mlp.keras whose config.json was changed by ``edit``."""
    source = zipfile.ZipFile(FIXTURES / "healthy_mlp.keras")
    target = tmp_path / "edited.keras"
    with zipfile.ZipFile(target, "w") as out:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            out.writestr(item, data)
    return target


def test_module_outside_keras_refused_before_keras_sees_it(tmp_path: Path) -> None:
    def point_activation_at_os(config: dict) -> None:
        dense = config["config"]["layers"][1]
        dense["config"]["activation"] = {
            "module": "os", "class_name": "function", "config": "system",
            "registered_name": "function"}

    with pytest.raises(AuditError, match="module 'os'"):
        load_model(str(_with_config(tmp_path, point_activation_at_os)))


def test_unknown_layer_class_is_a_clear_load_error(tmp_path: Path) -> None:
    def rename_class(config: dict) -> None:
        config["config"]["layers"][1]["class_name"] = "NoSuchLayer"

    with pytest.raises(AuditError, match="Keras could not load the model"):
        load_model(str(_with_config(tmp_path, rename_class)))


def test_subclassed_model_is_refused_as_custom_code(tmp_path: Path) -> None:
    import keras

    @keras.saving.register_keras_serializable(package="gradaudit_tests")
    class Tiny(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Tiny()
    model(keras.ops.ones((1, 3)))
    path = tmp_path / "tiny.keras"
    model.save(path)
    with pytest.raises(AuditError, match="reference to Python module"):
        load_model(str(path))


# --- load errors keep their reason -------------------------------------------------------

def test_a_keras_error_quoting_a_whole_layer_config_keeps_its_cause(tmp_path: Path) -> None:
    """Keras names the layer, quotes its config, and gives the cause last (a Keras 2 era
    file whose Conv1D was saved with a lambda activation, recorded by name only)."""
    import keras

    keras.Sequential([keras.Input((10, 3)), keras.layers.Conv1D(4, 3, name="conv1d_462"),
                      keras.layers.Dense(1)]).save(tmp_path / "conv.h5")
    with h5py.File(tmp_path / "conv.h5", "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        (conv,) = [x for x in config["config"]["layers"] if x["class_name"] == "Conv1D"]
        conv["config"]["activation"] = "<lambda>"
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(AuditError) as refused:
        load_model(str(tmp_path / "conv.h5"))
    assert str(refused.value) == (
        "Keras could not load the model: Error when deserializing class 'Conv1D' using "
        "config={'name': 'conv1d_462', 'trainable': True, …}. Exception encountered: Could "
        "not interpret activation function identifier: <lambda>")


def test_a_long_reason_is_cut_in_the_middle_never_at_its_end() -> None:
    cause = "the unknown activation '<lambda>'"
    exc = ValueError("Could not build: " + "x" * 2000 + " because of " + cause)
    line = first_line(exc)
    assert len(line) <= MAX_REASON and line.startswith("Could not build: xx")
    assert " … " in line and line.endswith(cause)


def test_quoted_configs_are_shortened_to_their_first_items() -> None:
    config = {"name": "odd {name", "units": 4, "nested": {"a": [1] * 50}, "tail": "z" * 80}
    exc = TypeError(f"Error when deserializing class 'Dense' using config={config}.\n\n"
                    f"Exception encountered: Could not locate class 'Block'. Full object config: "
                    f"{config}")
    assert first_line(exc) == (
        "Error when deserializing class 'Dense' using config={'name': 'odd {name', "
        "'units': 4, …}. Exception encountered: Could not locate class 'Block'. Full "
        "object config: {'name': 'odd {name', 'units': 4, …}")


def test_other_multi_line_messages_keep_their_first_line() -> None:
    exc = RuntimeError("Graph execution error:\n\nDetected at node 'x' defined at:\n  File y")
    assert first_line(exc) == "Graph execution error:"
    assert first_line(KeyError()) == "KeyError"


def test_the_graph_file_of_a_savedmodel_names_its_directory() -> None:
    graph = FIXTURES / "savedmodels" / "export" / "saved_model.pb"
    with pytest.raises(AuditError, match="audit its directory"):
        load_model(str(graph))

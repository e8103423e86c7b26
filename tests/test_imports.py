"""``--import``: the user's own registered layer class, audited with a known answer.

The model (tests/data/user_layers.py, saved by Keras as ``mylayers``) has a
custom ``Block`` whose ``call`` computes ``relu(x @ w + b)`` with 12 of its 16
biases at -100: GA101 on ``block``, nothing else; its twin with no dead unit
is clean. Without ``--import`` the file is refused with how to proceed; with
it, the pre-scan accepts exactly what the imported module registered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import pytest

import gradaudit
from gradaudit.errors import AuditError
from gradaudit.load.imports import NOTHING, Provided, import_modules
from gradaudit.load.prescan import unsafe_references
from tests.conftest import ROOT, UserModels, run_cli

DEAD_BLOCK = [("GA101", "warning", "block")]
REFUSED_WITHOUT_IMPORT = (
    "refused to load: a reference to Python module 'builtins' (registered name "
    "'mylayers>halve'); a reference to Python module 'mylayers' (registered name "
    "'mylayers>Block'). For your own layer classes, pass --import with the module that "
    "registers them (a module name or a .py file)")


def _findings(model: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(f["code"], f["severity"], f["layer"]) for f in model["findings"]]


def _audit_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("audit", *args, "-q", "-f", "json")
    assert result.stderr == "", result.stderr
    (model,) = json.loads(result.stdout)["models"]
    return result.exit_code, model


# --- ground truth ------------------------------------------------------------------------

def test_the_dead_units_of_a_custom_layer_are_found_with_import_of_its_file(
    user_models: UserModels,
) -> None:
    module = str(user_models.module)
    code, model = _audit_json(str(user_models.dead), "--import", module, "--fail-on", "warning")
    assert code == 1
    assert _findings(model) == DEAD_BLOCK
    metrics = model["findings"][0]["metrics"]
    assert (metrics["units"], metrics["dead_units"], metrics["op"]) == (16, 12, "Relu")
    assert model["summary"]["imports"] == [module] and model["unsafe"] is False
    assert _audit_json(str(user_models.dead), "--import", module)[0] == 0  # a warning


def test_its_healthy_twin_stays_clean(user_models: UserModels) -> None:
    code, model = _audit_json(str(user_models.healthy), "--import", str(user_models.module),
                              "--fail-on", "info")
    assert (code, model["findings"]) == (0, [])
    assert [row["dead_units"] for row in model["layers"] if row["name"] == "block"] == [0]


@pytest.mark.parametrize("where", ["cwd", "PYTHONPATH"])
def test_a_module_name_is_imported_from_the_current_directory_or_pythonpath(
    user_models: UserModels, where: str, tmp_path: Path
) -> None:
    """The real console script, whose sys.path starts at its bin directory, not the cwd."""
    code_dir = user_models.module.parent
    cwd, extra = (code_dir, []) if where == "cwd" else (tmp_path, [str(code_dir)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *extra])}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("gradaudit")), "audit", str(user_models.dead),
         "--import", "mylayers", "-f", "json", "--samples", "64", "-q"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert (proc.returncode, proc.stderr) == (0, "")
    (model,) = json.loads(proc.stdout)["models"]
    assert _findings(model) == DEAD_BLOCK and model["summary"]["imports"] == ["mylayers"]


def test_the_python_api_takes_imports(user_models: UserModels) -> None:
    report = gradaudit.audit(user_models.dead, imports=[str(user_models.module)])
    assert [(f.code, f.layer) for f in report.findings] == [("GA101", "block")]
    assert report.summary["imports"] == [str(user_models.module)]
    with pytest.raises(ValueError, match="imports= applies to model files"):
        gradaudit.audit(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]),
                        imports=["mylayers"])
    with pytest.raises(AuditError, match="--import no_such_module_q: ModuleNotFoundError"):
        gradaudit.audit(user_models.dead, imports=["no_such_module_q"])


# --- refusals ----------------------------------------------------------------------------

def test_without_import_the_refusal_says_to_import_the_module(user_models: UserModels) -> None:
    result = run_cli("audit", str(user_models.dead), "-q")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"gradaudit: error: {user_models.dead}: {REFUSED_WITHOUT_IMPORT}"]


def test_unsafe_without_import_cannot_find_the_class_and_says_so(
    user_models: UserModels, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--unsafe skips the pre-scan, but Keras finds the class only in its registry."""
    registry = keras.saving.get_custom_objects()
    monkeypatch.delitem(registry, "mylayers>Block")  # as in a process that never imported it
    result = run_cli("audit", str(user_models.dead), "-q", "--unsafe")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "Exception encountered: Could not locate class 'Block'." in line
    assert line.endswith("(if it is your own, pass --import with the module that registers it)")


PROVIDED = Provided(frozenset({"mylayers"}), {
    "mylayers>Block": "mylayers", "mylayers>halve": "mylayers", "mylayers>Lambda": "mylayers"})


def _class(module: str, registered: str, class_name: str = "Block") -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "registered_name": registered,
            "config": {"name": "n"}}


def _function(module: str, name: str) -> dict[str, Any]:
    return {"module": module, "class_name": "function", "config": name,
            "registered_name": "function"}


@pytest.mark.parametrize(("node", "refused"), [
    (_class("mylayers", "mylayers>Block"), []),
    (_function("builtins", "mylayers>halve"), []),  # how Keras writes a registered activation
    (_function("mylayers", "mylayers>halve"), []),
    (_class("os", "mylayers>Block"),
     ["a reference to Python module 'os' (registered name 'mylayers>Block')"]),
    (_class("mylayers", "mylayers>Evil"),
     ["a reference to 'mylayers>Evil' in module 'mylayers', which the imported module does "
      "not register"]),
    (_function("mylayers", "system"),
     ["a reference to 'system' in module 'mylayers', which the imported module does not "
      "register"]),
    (_function("builtins", "exec"), ["a reference to Python module 'builtins'"]),
    (_function("os", "mylayers>halve"),
     ["a reference to Python module 'os' (registered name 'mylayers>halve')"]),
    (_class("mylayers", "mylayers>Lambda", "Lambda"),
     ["Lambda layer 'n' (runs Python code stored in the file)"]),
])
def test_the_prescan_accepts_exactly_what_the_imports_registered(
    node: dict[str, Any], refused: list[str]
) -> None:
    assert unsafe_references({"layers": [node]}, PROVIDED) == refused
    assert unsafe_references({"layers": [node]}, NOTHING) != []


# --- bad imports -------------------------------------------------------------------------

@pytest.mark.parametrize(("tail", "error"), [
    ("raise RuntimeError('boom')", "RuntimeError: boom"),
    ("import no_such_dependency_q", "ModuleNotFoundError: No module named 'no_such_dependency_q'"),
    ("import sys\nsys.exit(3)", "SystemExit: 3"),
    ("def broken(:\n    pass", "SyntaxError: "),
])
def test_a_module_whose_import_fails_is_one_line_and_nothing_is_audited(
    user_models: UserModels, tmp_path: Path, tail: str, error: str
) -> None:
    broken = tmp_path / "half_done.py"
    broken.write_text("import keras\n\n@keras.saving.register_keras_serializable("
                      "package='half_done')\nclass Half(keras.layers.Layer):\n    pass\n\n"
                      f"print('imported')\n{tail}\n")
    result = run_cli("audit", str(user_models.healthy), "--import", str(user_models.module),
                     "--import", str(broken), "-q")
    assert (result.exit_code, result.stdout) == (2, "")
    (line,) = result.stderr.replace("imported\n", "").splitlines()
    assert line.startswith(f"gradaudit: error: --import {broken}: {error}")
    assert "half_done>Half" not in keras.saving.get_custom_objects()  # taken out again
    assert "half_done" not in sys.modules


@pytest.mark.parametrize(("spec", "error"), [
    ("no_such_module_q", "ModuleNotFoundError: No module named 'no_such_module_q'"),
    ("nowhere/mylayers2.py", "no such file"),
    ("{tmp}/json.py", "a module named 'json' is already imported"),
])
def test_a_module_that_cannot_be_imported_is_one_line(
    user_models: UserModels, tmp_path: Path, spec: str, error: str
) -> None:
    (tmp_path / "json.py").write_text("")
    spec = spec.format(tmp=tmp_path)
    result = run_cli("audit", str(user_models.healthy), "--import", spec, "-q")
    assert (result.exit_code, result.stdout) == (2, "")
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"gradaudit: error: --import {spec}: {error}")


SUBLAYER_MODULE = '''
import keras


@keras.saving.register_keras_serializable(package="sublayers")
class Wrapped(keras.layers.Layer):
    """A layer of one's own holding an unnamed Dense: Keras names it as it is made."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(units, activation="relu")

    def build(self, shape):
        self.dense.build(shape)

    def call(self, x):
        return self.dense(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
'''


def test_an_unnamed_sublayer_has_the_same_name_in_a_batch_as_alone(tmp_path: Path) -> None:
    # Keras numbers generated names per process (dense, dense_1 …); the worker audits
    # file after file, so each load starts the counters afresh, and a finding's id
    # (code:layer, what baselines and diffs match) does not depend on the batch.
    module = tmp_path / "sublayers.py"
    module.write_text(SUBLAYER_MODULE)
    import_modules([str(module)])
    import sublayers  # type: ignore[import-not-found]

    paths = []
    for name in ("first", "second"):
        inputs = keras.Input((4,))
        outputs = keras.layers.Dense(1, name="out")(sublayers.Wrapped(8, name="wrap")(inputs))
        paths.append(tmp_path / f"{name}.keras")
        keras.Model(inputs, outputs).save(paths[-1])

    def names(*files: Path) -> list[list[str]]:
        result = run_cli("audit", *map(str, files), "--import", str(module), "-f", "json",
                         "--samples", "8", "--fail-on", "never", "-q")
        return [[layer["name"] for layer in m["layers"]]
                for m in json.loads(result.stdout)["models"]]

    batch = names(*paths)
    assert batch[0] == batch[1] == names(paths[1])[0]

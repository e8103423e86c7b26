"""Runs that should not fail, or not mislead: an unbuilt subclassed model is built before
its variables are read, and no table says a variable gets a gradient the probe did not
measure (issue 18 §3, §4)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import keras
import pytest

from tests.conftest import UserModels, run_cli


def _audit(path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = run_cli("audit", str(path), "-f", "json", "-q", *args)
    assert "Traceback" not in result.stderr, result.stderr
    models = json.loads(result.stdout)["models"] if result.stdout else [{}]
    return result.exit_code, models[0], result.stderr


def _findings(model: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(f["code"], f["severity"], f["layer"]) for f in model["findings"]}


# --- an unbuilt subclassed model --------------------------------------------------------

BRANCHY_FINDINGS = {("GA102", "error", "hidden"), ("GA202", "error", "hidden"),
                    ("GA201", "error", "side")}


@pytest.fixture(scope="module")
def subclassed(user_models: UserModels, tmp_path_factory: pytest.TempPathFactory,
               ) -> dict[str, Path]:
    """tests/data/user_layers.py's subclassed models, saved built and unbuilt."""
    module = sys.modules["mylayers"]
    root = tmp_path_factory.mktemp("subclassed")
    paths = {}
    for name, model, built in [("built", module.Branchy(-100.0, name="branchy"), True),
                               ("unbuilt", module.Branchy(-100.0, name="branchy"), False),
                               ("alive", module.Branchy(0.0, name="branchy"), False),
                               ("scaled", module.Scaled(name="scaled"), True)]:
        keras.utils.set_random_seed(0)
        paths[name] = root / f"{name}.keras"
        module.subclassed(model, built).save(paths[name])
    return paths


def test_an_unbuilt_subclassed_model_gets_the_findings_of_its_built_twin(
        subclassed: dict[str, Path], user_models: UserModels) -> None:
    args = ("--import", str(user_models.module), "--input-shape", "5")
    code, built, _ = _audit(subclassed["built"], *args)
    assert code == 1 and _findings(built) == BRANCHY_FINDINGS
    code, unbuilt, _ = _audit(subclassed["unbuilt"], *args)
    assert code == 1 and _findings(unbuilt) == BRANCHY_FINDINGS
    assert unbuilt["summary"]["params"] == built["summary"]["params"] == {
        "total": 85, "trainable": 85, "non_trainable": 0, "measured": 85}
    assert [(row["name"], row["params"]) for row in unbuilt["layers"]] == [
        (row["name"], row["params"]) for row in built["layers"]]
    assert any(note.startswith("built with input shape [5] (--input-shape) before its "
                               "variables were read") for note in unbuilt["notes"])


def test_its_live_unbuilt_twin_keeps_only_the_cut_branch(
        subclassed: dict[str, Path], user_models: UserModels) -> None:
    code, model, _ = _audit(subclassed["alive"], "--import", str(user_models.module),
                            "--input-shape", "5")
    assert code == 1 and _findings(model) == {("GA201", "error", "side")}


def _disconnected_line(path: Path, *args: str) -> str:
    result = run_cli("audit", str(path), "-q", *args)
    return next(line for line in result.stdout.splitlines()
                if line.startswith("Disconnected paths"))


def test_the_table_says_every_variable_gets_a_gradient_only_when_all_were_measured(
        subclassed: dict[str, Path], user_models: UserModels) -> None:
    module = ("--import", str(user_models.module))
    # `scale` (3 values) belongs to none of the model's layers: the tape measured its
    # gradient, but no check judged it, so the table must not vouch for it.
    code, model, _ = _audit(subclassed["scaled"], *module)
    assert code == 0 and model["findings"] == []
    assert model["summary"]["params"] == {"total": 21, "trainable": 21, "non_trainable": 0,
                                          "measured": 18}
    assert ("the gradients of 3 of the 21 trainable parameters were not judged (owned by "
            "no layer of the model): scaled/scale") in model["notes"]
    assert _disconnected_line(subclassed["scaled"], *module) == (
        "Disconnected paths: none (found among the 18 of 21 trainable parameters whose "
        "gradient the probe measured).")
    assert _disconnected_line(user_models.healthy, *module) == (
        "Disconnected paths: none (every trainable variable and input gets a gradient).")

"""Runs that should not fail, or not mislead: an unbuilt subclassed model is built before
its variables are read, and no table says a variable gets a gradient the probe did not
measure (issue 18 §3, §4)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import keras
import pytest

from tests.conftest import FIXTURES, FreshRun, UserModels, run_cli, run_fresh


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


# --- a stateful recurrent model: batches of the size it declares --------------------------

STATEFUL_NOTE = ("batches of 200, the batch size the model declares (its stateful layers keep "
                 "a state per sample); --samples 256 rounded up to 400, whole batches")


def _stateful_keras3(path: Path, bias: float) -> Path:
    """``batch_shape=(200, 10, 3)`` → stateful LSTM(8) → ``head`` (ReLU, bias ``bias``) → out."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(batch_shape=(200, 10, 3), name="seq")
    x = keras.layers.LSTM(8, stateful=True, name="lstm")(inputs)
    x = keras.layers.Dense(4, activation="relu", name="head",
                           bias_initializer=keras.initializers.Constant(bias))(x)
    keras.Model(inputs, keras.layers.Dense(1, name="out")(x), name="stateful").save(path)
    return path


def _stateful_keras2(path: Path, bias: float) -> Path:
    """The same in Keras 2 (tf_keras), declared by ``batch_input_shape`` and saved as .h5."""
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(0)
    tf_keras.Sequential([
        tf_keras.layers.LSTM(8, stateful=True, batch_input_shape=(200, 10, 3), name="lstm"),
        tf_keras.layers.Dense(4, activation="relu", name="head",
                              bias_initializer=tf_keras.initializers.Constant(bias)),
        tf_keras.layers.Dense(1, name="out")], name="stateful").save(path)
    return path


DEAD_HEAD = {("GA102", "error", "head"), ("GA202", "error", "head"),
             ("GA202", "error", "lstm"), ("GA202", "error", "out")}


@pytest.mark.parametrize("build", [_stateful_keras3, _stateful_keras2])
def test_a_stateful_model_is_probed_in_batches_of_the_size_it_declares(
        build: Any, tmp_path: Path) -> None:
    suffix = ".keras" if build is _stateful_keras3 else ".h5"
    code, dead, _ = _audit(build(tmp_path / f"dead{suffix}", -100.0), "--all-samples")
    assert code == 1 and _findings(dead) == DEAD_HEAD
    assert dead["summary"]["batch_size"] == 200 and dead["summary"]["samples"] == 400
    assert STATEFUL_NOTE in dead["notes"]
    code, healthy, _ = _audit(build(tmp_path / f"healthy{suffix}", 0.0))
    assert code == 0 and healthy["findings"] == [], healthy["findings"]
    assert healthy["summary"]["batch_size"] == 200 and STATEFUL_NOTE in healthy["notes"]


def test_a_stateful_batch_over_a_limit_is_exit_2_with_one_line(tmp_path: Path) -> None:
    path = _stateful_keras3(tmp_path / "stateful.keras", 0.0)
    result = run_cli("audit", str(path), "-q", "--max-input-elements", "1000")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert result.stderr == (
        f"gradaudit: error: {path}: the model's stateful layers run only in batches of 200, "
        "and 200 samples of the model's inputs hold 6000 values, over --max-input-elements "
        "1000\n")


# --- --max-input-elements: a smaller batch, refused only when one sample is over ---------

@pytest.mark.parametrize(("fixture", "expected"), [
    ("dead_relu.keras", {("GA102", "error", "dead"), ("GA202", "error", "pre"),
                         ("GA202", "error", "dead"), ("GA202", "error", "out")}),
    ("healthy_mlp.keras", set()),
])
def test_a_batch_over_max_input_elements_is_made_smaller_with_the_same_findings(
        fixture: str, expected: set[tuple[str, str, str]]) -> None:
    path = FIXTURES / fixture
    _, whole, _ = _audit(path, "--all-samples")
    inputs = sum(math.prod(i["shape"]) for i in whole["summary"]["inputs"])
    limit = 64 * inputs // 5  # a fifth of the 64-sample batch: batches of 12
    _, smaller, _ = _audit(path, "--all-samples", "--max-input-elements", str(limit))
    assert _findings(whole) == _findings(smaller) == expected
    assert whole["summary"]["batch_size"] == 64 and smaller["summary"]["batch_size"] == 12
    assert (f"batches of 12, not 64: 64 samples of the model's inputs hold {64 * inputs} "
            f"values, over --max-input-elements {limit}") in smaller["notes"]
    assert whole["summary"]["samples"] == smaller["summary"]["samples"] == 256


def test_one_sample_over_max_input_elements_is_exit_2_with_one_line() -> None:
    path = FIXTURES / "dead_relu.keras"  # 8 input values per sample
    result = run_cli("audit", str(path), "-q", "--max-input-elements", "7")
    assert result.exit_code == 2 and result.stderr == (
        f"gradaudit: error: {path}: one sample of the model's inputs holds 8 values, more "
        "than --max-input-elements 7; raise the limit\n")


def test_the_batch_names_the_limit_that_made_it_smaller() -> None:
    from gradaudit.errors import AuditError
    from gradaudit.probe.memory import StepEstimate, choose_batch

    estimate = StepEstimate(per_sample=10, fixed=100, input_elements=4)
    by_memory = choose_batch(estimate, 64, budget=1_355, held=1_000, max_input_elements=200)
    assert by_memory.batch_size == 25 and "--max-memory" in str(by_memory.note)
    by_elements = choose_batch(estimate, 64, budget=1_355, held=1_000, max_input_elements=80)
    assert by_elements.note == ("batches of 20, not 64: 64 samples of the model's inputs "
                                "hold 256 values, over --max-input-elements 80")
    assert choose_batch(estimate, 64, budget=10_000, held=1_000,
                        max_input_elements=256).note is None
    with pytest.raises(AuditError, match="one sample of the model's inputs holds 4 values"):
        choose_batch(estimate, 64, budget=10_000, held=1_000, max_input_elements=3)


# --- without matplotlib ------------------------------------------------------------------

WITHOUT_MATPLOTLIB = "import sys\nsys.modules['matplotlib'] = None  # as if not installed\n"


def _cli_without_matplotlib(*args: str) -> FreshRun:
    return run_fresh(WITHOUT_MATPLOTLIB + "from gradaudit.cli import app\n"
                     f"app({list(args)!r}, prog_name='gradaudit')", watch=("matplotlib",))


def test_html_without_matplotlib_renders_without_the_picture_and_says_how_to_add_it(
        tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    fresh = _cli_without_matplotlib("audit", str(FIXTURES / "dead_relu.keras"), "-f", "html",
                                    "-o", str(page), "-q")
    assert "EXIT 1" in fresh.stdout and "Traceback" not in fresh.stderr, fresh.stderr
    text = page.read_text(encoding="utf-8")
    assert "<img" not in text and "GA102" in text and "<h3>Layers</h3>" in text
    assert ("<p>No picture: matplotlib is not installed. To add it: pip install "
            "&#x27;gradaudit[plot]&#x27; (in a clone of gradaudit&#x27;s repository: pip "
            "install -e &#x27;.[plot]&#x27;).</p>") in text


def test_plot_without_matplotlib_names_both_install_commands(tmp_path: Path) -> None:
    target = tmp_path / "flow.png"
    fresh = _cli_without_matplotlib("audit", str(FIXTURES / "dead_relu.keras"), "--plot",
                                    str(target))
    assert "EXIT 2" in fresh.stdout and not target.exists()
    assert fresh.stderr.splitlines()[-1] == (
        "gradaudit: error: --plot needs matplotlib, which is not installed: pip install "
        "'gradaudit[plot]' (in a clone of gradaudit's repository: pip install -e '.[plot]')")


def test_html_with_matplotlib_still_embeds_the_picture(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = run_cli("audit", str(FIXTURES / "dead_relu.keras"), "-f", "html", "-o", str(page),
                     "-q")
    assert result.exit_code == 1
    text = page.read_text(encoding="utf-8")
    assert 'src="data:image/png;base64,' in text and "No picture" not in text


def test_supplied_inputs_must_fill_whole_stateful_batches(tmp_path: Path) -> None:
    import numpy as np

    path = _stateful_keras3(tmp_path / "stateful.keras", 0.0)
    rows = np.random.default_rng(0).standard_normal((400, 10, 3)).astype("float32")
    np.savez(tmp_path / "seq.npz", seq=rows)
    code, model, _ = _audit(path, "--inputs", str(tmp_path / "seq.npz"), "--samples", "400")
    assert code == 0 and model["summary"]["batch_size"] == 200
    result = run_cli("audit", str(path), "-q", "--inputs", str(tmp_path / "seq.npz"))
    assert result.exit_code == 2 and result.stderr == (
        f"gradaudit: error: {path}: the model runs only in batches of 200, the batch size "
        "the model declares (its stateful layers keep a state per sample); the 256 rows of "
        "--inputs (at most --samples) are not a multiple of 200\n")

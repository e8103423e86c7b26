"""Subclassed models, --input-shape, and unknown axes sized so nothing is empty."""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np
import pytest

import gradaudit
from gradaudit.model.specs import parse_input_shape
from tests.conftest import FIXTURES, run_cli

HEALTHY = str(FIXTURES / "healthy_mlp.keras")
MULTI = str(FIXTURES / "multi_io.keras")


class Net(keras.Model):
    """A subclassed model: no functional graph, only the shape it was built with."""

    def __init__(self, bias: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="relu", name="hidden",
                                         bias_initializer=keras.initializers.Constant(bias))
        self.out = keras.layers.Dense(1, name="out")

    def call(self, x: Any) -> Any:
        return self.out(self.hidden(x))


def _built(bias: float) -> Net:
    model = Net(bias, name="net")
    model(np.zeros((2, 5), "float32"))
    return model


def test_a_built_subclassed_model_is_audited_from_its_build_shape() -> None:
    report = gradaudit.audit(_built(-100.0))
    assert [(i.name, i.shape) for i in report.inputs] == [("input", (5,))]
    assert {(f.code, f.layer) for f in report.findings} == {
        ("GA102", "hidden"), ("GA202", "hidden"), ("GA202", "out")}
    assert gradaudit.audit(_built(0.0)).findings == ()


def test_a_subclassed_model_never_built_asks_for_input_shape() -> None:
    with pytest.raises(gradaudit.AuditError, match="--input-shape"):
        gradaudit.audit(Net(name="net"))


def _audio(frames: int | None) -> keras.Model:
    """Pools the time axis six times: 32 frames leave nothing after the sixth pool."""
    inputs = keras.Input((frames, 40, 1), name="mel")
    x = inputs
    for i in range(6):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D((2, 1), name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(x),
                       name="audio")


def test_unknown_axes_grow_until_no_layer_output_is_empty() -> None:
    report = gradaudit.audit(_audio(None))
    assert [i.shape for i in report.inputs] == [(64, 40, 1)]
    assert report.findings == ()
    (note,) = report.notes
    assert note.startswith("unknown input axes sized 64, not 32: at 32,")


def test_same_seed_same_report_for_a_sized_model() -> None:
    keras.utils.set_random_seed(0)
    model = _audio(None)
    assert gradaudit.audit(model).to_json() == gradaudit.audit(model).to_json()


@pytest.mark.parametrize(("text", "parsed"), [
    ("128,40,1", (None, (128, 40, 1))), ("mel=64,40,1", ("mel", (64, 40, 1))), ("5", (None, (5,)))])
def test_input_shape_parses(text: str, parsed: tuple[str | None, tuple[int, ...]]) -> None:
    assert parse_input_shape(text) == parsed


@pytest.mark.parametrize("text", ["", "a,b", "0,3", "=4", "mel=", "-1"])
def test_a_bad_input_shape_is_exit_2_naming_the_form(text: str) -> None:
    result = run_cli("audit", HEALTHY, "--input-shape", text, "-q")
    assert result.exit_code == 2
    assert "expected SHAPE or NAME=SHAPE" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("path", "args", "message"), [
    (HEALTHY, ["--input-shape", "21"], "does not fit input 'features', declared (20)"),
    (HEALTHY, ["--input-shape", "nope=20"], "the model has no input 'nope' (it has: features)"),
    (MULTI, ["--input-shape", "12"], "needs NAME=SHAPE: the model has 2 inputs (left, right)"),
])
def test_an_input_shape_that_does_not_fit_is_exit_2(path: str, args: list[str],
                                                    message: str) -> None:
    result = run_cli("audit", path, *args, "-q")
    assert result.exit_code == 2
    assert message in result.stderr, result.stderr


def test_an_input_shape_that_fits_is_used() -> None:
    result = run_cli("audit", MULTI, "--input-shape", "left=12", "--format", "json", "-q")
    assert result.exit_code == 0, result.stderr
    (model,) = json.loads(result.stdout)["models"]
    assert [i["shape"] for i in model["summary"]["inputs"]] == [[12], [6]]


def test_input_shape_sizes_an_unknown_axis_and_is_never_grown() -> None:
    report = gradaudit.audit(_audio(None), input_shape=["mel=128,40,1"])
    assert [i.shape for i in report.inputs] == [(128, 40, 1)]
    assert report.notes == ()
    with pytest.raises(gradaudit.AuditError, match="with the --input-shape given"):
        gradaudit.audit(_audio(None), input_shape=["mel=16,40,1"])

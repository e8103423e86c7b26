"""Report shape, formats and the exit-code function."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from typing import Any

import keras
import pytest

from gradaudit.formats import Format, render
from gradaudit.report.types import (
    AuditRun,
    FailOn,
    Finding,
    LoadError,
    ModelReport,
    Severity,
    exit_code,
)
from tests.conftest import FIXTURES, ROOT


def _report(*severities: Severity) -> ModelReport:
    findings = tuple(Finding(code="GA999", severity=s, layer="x", message="m") for s in severities)
    return ModelReport(path="m.keras", format="keras", model_name="m", params_total=1,
                       params_trainable=1, params_non_trainable=0, samples=1, seed=0,
                       inputs=(), layers=(), findings=findings)


@pytest.mark.parametrize(
    ("severities", "fail_on", "code"),
    [
        ((), FailOn.INFO, 0),
        ((Severity.INFO,), FailOn.INFO, 1),
        ((Severity.INFO,), FailOn.WARNING, 0),
        ((Severity.WARNING,), FailOn.WARNING, 1),
        ((Severity.WARNING,), FailOn.ERROR, 0),
        ((Severity.ERROR, Severity.INFO), FailOn.ERROR, 1),
        ((Severity.ERROR,), FailOn.NEVER, 0),
    ],
)
def test_exit_code_is_a_pure_function_of_findings_and_fail_on(
    severities: tuple[Severity, ...], fail_on: FailOn, code: int
) -> None:
    assert exit_code(AuditRun(models=(_report(*severities),), errors=()), fail_on) == code


def test_any_load_error_is_exit_2_even_with_fail_on_never() -> None:
    run = AuditRun(models=(_report(),), errors=(LoadError("bad.h5", "damaged"),))
    assert exit_code(run, FailOn.NEVER) == 2


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_renders_a_run_with_models_and_errors(fmt: Format) -> None:
    run = AuditRun(models=(_report(Severity.ERROR),), errors=(LoadError("bad.h5", "damaged"),))
    text = render(run, fmt)
    assert "m.keras" in text and "bad.h5" in text
    # The table leaves the reason to the CLI's one stderr line: printed once, not twice.
    assert ("damaged" in text) == (fmt is not Format.TABLE)


def test_json_shape(audited: dict[str, Any]) -> None:
    model = audited["batchnorm.keras"]
    assert set(model) >= {"path", "format", "summary", "layers", "findings"}
    summary = model["summary"]
    assert set(summary) >= {"params", "layers", "samples", "seed"}
    assert set(summary["params"]) == {"total", "trainable", "non_trainable", "measured"}
    assert (summary["samples"], summary["seed"]) == (64, 0)  # healthy: decided after one batch
    assert summary["layers"] == len(model["layers"])
    dense = next(row for row in model["layers"] if row["name"] == "dense")
    assert {"name", "type", "activation", "params", "trainable", "dead_fraction",
            "saturated_fraction", "grad_rms"} <= set(dense)
    assert dense["type"] == "Dense" and dense["activation"] == "linear"
    assert dense["grad_rms"] > 0
    act = next(row for row in model["layers"] if row["name"] == "act")
    assert act["dead_fraction"] == 0.0


def test_json_top_level(audited: dict[str, Any]) -> None:
    from gradaudit import __version__
    from tests.conftest import run_cli

    document = json.loads(run_cli("audit", "-f", "json", "--samples", "8",
                                  str(FIXTURES / "healthy_mlp.keras")).stdout)
    assert document["gradaudit"] == __version__
    assert set(document) == {"gradaudit", "shard", "models", "errors"}
    assert document["shard"] is None  # every file audited (no --shard)


@pytest.mark.parametrize("name", ["frozen_base.keras", "batchnorm.keras", "frozen_layer.keras",
                                  "keras2_sequential.h5", "keras2_functional.h5"])
def test_param_counts_equal_keras_own_counts(audited: dict[str, Any], name: str) -> None:
    model = keras.saving.load_model(FIXTURES / name, compile=False)
    params = audited[name]["summary"]["params"]
    assert params["total"] == model.count_params()
    assert params["trainable"] == sum(int(w.numpy().size) for w in model.trainable_weights)
    assert params["non_trainable"] == sum(int(w.numpy().size) for w in model.non_trainable_weights)


def test_batchnorm_moving_statistics_are_listed_as_non_trainable(audited: dict[str, Any]) -> None:
    bn = next(row for row in audited["batchnorm.keras"]["layers"] if row["name"] == "bn")
    assert (bn["params"], bn["non_trainable_params"], bn["trainable"]) == (64, 32, True)


@pytest.mark.parametrize(
    ("name", "non_trainable"), [("keras2_sequential.h5", 592), ("keras2_functional.h5", 48)]
)
def test_keras2_files_match_the_writers_count(
    audited: dict[str, Any], name: str, non_trainable: int
) -> None:
    """Counts recorded by tf_keras when the fixture was written (fixtures/README.md)."""
    assert audited[name]["format"] == "h5"
    assert audited[name]["summary"]["params"]["non_trainable"] == non_trainable


def test_report_package_imports_neither_formats_nor_tensorflow() -> None:
    """Report data is what formats read: it must not depend on them (no import cycle),
    not even through an import inside a function, nor on TensorFlow."""
    sources = sorted((ROOT / "gradaudit" / "report").glob("*.py"))
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for path in sources for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    forbidden = ("gradaudit.formats", "tensorflow", "keras")
    assert not {m for m in imported if m and m.startswith(forbidden)}
    code = ("import sys\n"
            + "".join(f"import gradaudit.report.{path.stem}\n" for path in sources)
            + f"print([m for m in {forbidden!r} if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout == "[]\n", proc.stdout + proc.stderr


def _batchnorm_stack() -> keras.Model:
    """Three trainable BatchNormalization layers, a frozen one and a frozen Dense."""
    inputs = keras.Input((8,), name="features")
    x = inputs
    for i in range(4):
        x = keras.layers.Dense(16, activation="relu", name=f"dense_{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn_{i}", trainable=i < 3)(x)
    outputs = keras.layers.Dense(2, name="head", trainable=False)(x)
    return keras.Model(inputs, outputs)


def test_routine_batchnorm_rows_are_one_table_line_and_frozen_layers_keep_theirs() -> None:
    from gradaudit import audit

    report = audit(_batchnorm_stack(), samples=32)
    table = report.to_table()
    section = table.split("Non-trainable parameters:\n")[1].split("\n\n")[0].splitlines()
    assert [line.split() for line in section[2:]] == [
        ["bn_3", "64", "frozen", "(trainable=False)"],
        ["head", "34", "frozen", "(trainable=False)"],
        ["3", "BatchNormalization", "layers", "96", "non-trainable", "weights:",
         "moving_mean,", "moving_variance"],
    ]
    rows = {row["name"]: row["non_trainable_reason"] for row in json.loads(report.to_json())
            ["models"][0]["layers"] if row["non_trainable_reason"]}
    assert rows == {**{f"bn_{i}": "non-trainable weights: moving_mean, moving_variance"
                       for i in range(3)},
                    "bn_3": "frozen (trainable=False)", "head": "frozen (trainable=False)"}


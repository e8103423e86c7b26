"""Training forensics in the report, the CLI, the formats and the picture (issue 13, part 3).

The reader and the checks (parts 1 and 2) are stood in for by the hand-built state
of ``tests/training_states.py``: ``dead_relu.keras`` as if trained with Adam, its
``dead`` layer stalled, 9 of ``pre``'s 16 units stalled, and a layer ``gone`` the
model does not list.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradaudit.formats import Format, render
from gradaudit.load.config_layers import ConfigLayer, config_layer, model_name
from gradaudit.load.detect import detect_format
from gradaudit.load.prescan import read_model_config
from gradaudit.options import Options
from gradaudit.report.json_io import read, write
from gradaudit.report.types import (
    TRAINING_CHECKS,
    AuditRun,
    LayerRow,
    ModelReport,
    TrainingSummary,
)
from tests import training_states
from tests.conftest import FIXTURES, GOLDEN, ROOT, run_cli, run_fresh
from tests.test_json_io import _assert_same

DEAD = str(FIXTURES / "dead_relu.keras")


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> None:
    training_states.install(monkeypatch.setattr)


def _rendered(fmt: Format = Format.TABLE) -> str:
    """DEAD's probed report as the CLI prints it, audited in this process: the CLI probes
    in a worker process, where this test's stand-in training state is not installed."""
    from gradaudit.pipeline import audit_paths

    return render(audit_paths([DEAD], Options()), fmt)


def _model(result: Any) -> dict[str, Any]:
    (model,) = json.loads(result.stdout)["models"]
    return dict(model)


# The report


def test_the_training_state_joins_the_probe_report(trained: None) -> None:
    from gradaudit.pipeline import audit_paths

    (model,) = audit_paths([DEAD], Options()).models
    rows = {row.name: row for row in model.layers}
    assert (rows["pre"].train_units, rows["pre"].stalled_units, rows["pre"].stalled_fraction,
            rows["pre"].steps_since_gradient, rows["pre"].train_grad_rms) == (
        16, 9, 0.5625, 212.0, 0.0123457)
    assert rows["dead"].stalled_fraction == 1.0 and rows["dead"].steps_since_gradient == 480.2
    assert rows["out"].units is None and rows["out"].train_units == 4  # the probe's stay
    assert model.checks_run == ("GA1", "GA2", "GA3", "GA4")
    assert model.training is not None and model.training.loss == {"out": "mean_squared_error"}
    assert any("does not list: gone" in note for note in model.notes)
    # Most severe first, then by depth, the training findings among the probe's.
    assert [(f.code, f.layer) for f in model.findings] == [
        ("GA202", "pre"), ("GA102", "dead"), ("GA202", "dead"), ("GA402", "dead"),
        ("GA202", "out"), ("GA401", "pre")]


def test_json_keys_and_round_trip(trained: None) -> None:
    text = _rendered(Format.JSON)
    (model,) = json.loads(text)["models"]
    assert model["summary"]["training"] == {
        "optimizer": "Adam", "iterations": 504, "learning_rate": 0.05,
        "loss": {"out": "mean_squared_error"}, "from_logits": {"out": False},
        "loss_weights": {"out": 1.0}}
    assert model["summary"]["checks_run"] == ["GA1", "GA2", "GA3", "GA4"]
    dead = next(row for row in model["layers"] if row["name"] == "dead")
    assert {key: dead[key] for key in ("stalled_units", "stalled_fraction", "train_grad_rms")} \
        == {"stalled_units": 16, "stalled_fraction": 1.0, "train_grad_rms": 1e-9}
    run = read(text)
    assert write(run) == text


def test_a_training_summary_with_non_finite_numbers_reads_back() -> None:
    row = LayerRow("d", "Dense", None, 3, 3, 0, True, None, None, None, None, None,
                   train_units=2, stalled_units=1, stalled_fraction=0.5,
                   steps_since_gradient=math.inf, train_grad_rms=0.1)
    model = ModelReport("m.keras", "keras", "m", 3, 3, 0, 0, 0, (), (row,), (),
                        training=TrainingSummary("SGD", 3, math.inf, {"a": None}, {"a": True},
                                                 {"a": math.nan}),
                        checks_run=TRAINING_CHECKS)
    run = AuditRun(models=(model,), errors=())
    _assert_same(read(write(run)), run)
    assert '"learning_rate": "inf"' in write(run)


# The formats


def test_the_table_has_a_training_history_only_when_the_file_has_one(trained: None) -> None:
    table = _rendered()
    assert "training: Adam, 504 steps, learning rate 0.05, out: mean_squared_error\n" in table
    history = table[table.index("Training history:"):table.index("Findings:")]
    assert history.splitlines()[1].split() == [
        "layer", "optimizer", "steps", "units", "stalled", "units", "stalled", "%", "steps",
        "since", "gradient", "(est.)", "gradient", "RMS", "(training)"]
    assert history.splitlines()[3].split() == ["pre", "504", "16", "9", "56%", "212", "0.0123"]
    assert history.splitlines()[4].split() == ["dead", "504", "16", "16", "100%", "480", "1e-09"]
    assert "Dead activations:" in table  # the probe's tables stay


def test_no_training_history_no_table() -> None:
    table = run_cli("audit", DEAD).stdout
    assert "Training history" not in table and "training:" not in table


def test_html_and_markdown_show_the_training_state(trained: None) -> None:
    page = _rendered(Format.HTML)
    assert "<h3>Training history</h3>" in page and "<td>gone</td>" not in page
    assert "training: Adam, 504 steps" in page
    markdown = _rendered(Format.MARKDOWN)
    assert "Training: Adam, 504 steps, learning rate 0.05, out: mean_squared_error." in markdown


def test_the_picture_draws_the_training_profile_beside_the_probes(trained: None) -> None:
    from gradaudit.formats import plot
    from gradaudit.pipeline import audit_paths

    (model,) = audit_paths([DEAD], Options()).models
    grad_ax, unit_ax = plot.figure([model]).subfigs[0].axes
    lines = {line.get_label(): list(line.get_ydata()) for line in grad_ax.get_lines()}
    assert lines["gradient RMS over training"] == [0.0123457, 1e-9, 0.25]
    assert "stalled in training" in unit_ax.get_legend_handles_labels()[1]
    untrained = replace(model, training=None, layers=tuple(
        replace(row, train_units=None, train_grad_rms=None) for row in model.layers))
    grad_ax, unit_ax = plot.figure([untrained]).subfigs[0].axes
    assert [line.get_label() for line in grad_ax.get_lines()] == ["gradient RMS", "zero gradient"]
    assert unit_ax.get_legend_handles_labels()[1] == ["dead", "saturated"]


# --no-probe


def test_no_probe_reads_the_file_without_tensorflow() -> None:
    fresh = run_fresh(
        "import json\nfrom tests import training_states\n"
        "training_states.install(setattr)\n"
        "from gradaudit.cli import app\n"
        f"app(['audit', {DEAD!r}, '--no-probe', '--format', 'json'], prog_name='gradaudit')\n")
    assert fresh.imported == [], fresh.stdout + fresh.stderr
    document = json.loads(fresh.stdout[:fresh.stdout.rindex("EXIT")])
    (model,) = document["models"]
    assert "EXIT 1" in fresh.stdout  # GA402 is an error
    assert model["summary"]["checks_run"] == ["GA4"] and model["summary"]["samples"] == 0
    assert model["summary"]["params"] == {"total": 484, "trainable": 484, "non_trainable": 0,
                                          "measured": None}
    assert [(row["name"], row["type"], row["activation"], row["params"], row["stalled_units"])
            for row in model["layers"]] == [
        ("pre", "Dense", "relu", 144, 9), ("dead", "Dense", "relu", 272, 16),
        ("out", "Dense", "linear", 68, 0)]
    assert [(f["code"], f["layer"]) for f in model["findings"]] == [
        ("GA402", "dead"), ("GA401", "pre")]


def test_no_probe_table_shows_no_probe_tables(trained: None) -> None:
    result = run_cli("audit", DEAD, "--no-probe")
    assert result.exit_code == 1
    assert ("params: 484 total, 484 trainable, 0 non-trainable | no probe (--no-probe): only "
            "the checks that read the file ran\n") in result.stdout
    assert "Dead activations" not in result.stdout and "Training history:" in result.stdout


def test_junit_skips_the_rules_that_did_not_run(trained: None) -> None:
    import xml.etree.ElementTree as ET

    from gradaudit.report.catalogue import CATALOGUE

    root = ET.fromstring(run_cli("audit", DEAD, "--no-probe", "--format", "junit").stdout)
    (suite,) = root.findall("testsuite")
    skipped = [c.get("name").split()[0] for c in suite.iter("testcase")
               if c.find("skipped") is not None]
    assert skipped == [rule.code for rule in CATALOGUE if not rule.code.startswith("GA4")]
    assert suite.get("skipped") == root.get("skipped") == str(len(skipped))
    probed = ET.fromstring(_rendered(Format.JUNIT))
    assert probed.get("skipped") is None and not list(probed.iter("skipped"))


def test_no_probe_on_a_file_saved_without_compile() -> None:
    result = run_cli("audit", DEAD, "--no-probe", "--format", "json")
    model = _model(result)
    assert result.exit_code == 0 and model["layers"] == [] and model["findings"] == []
    assert model["summary"]["checks_run"] == [] and model["summary"]["training"] is None
    assert model["notes"] == [
        "the file holds no training state (saved without compile): nothing to check"]


def test_no_probe_from_config_and_api(tmp_path: Path, trained: None) -> None:
    import gradaudit

    config = tmp_path / "gradaudit.toml"
    config.write_text("no_probe = true\n", encoding="utf-8")
    by_config = _model(run_cli("audit", DEAD, "--config", str(config), "--format", "json"))
    assert by_config["summary"]["checks_run"] == ["GA4"]
    report = gradaudit.audit(DEAD, no_probe=True)
    assert report.checks_run == ("GA4",) and not report.probed
    with pytest.raises(ValueError, match="no inputs"):
        gradaudit.audit(DEAD, np.zeros((4, 8), "float32"), no_probe=True)
    config.write_text("no_probe = 1\n", encoding="utf-8")
    bad = run_cli("audit", DEAD, "--config", str(config))
    assert bad.exit_code == 2 and "key 'no_probe': bad value 1: expected true or false" \
        in bad.stderr


def test_the_config_types_every_layer_the_probe_names() -> None:
    document = json.loads((GOLDEN / "audit.json").read_text(encoding="utf-8"))
    for model in document["models"]:
        if model["format"] == "savedmodel":
            continue
        path = ROOT / model["path"]
        config = read_model_config(path, detect_format(path))
        assert model_name(config, "?") == model["model"]
        for row in model["layers"]:  # nested, wrapped, Bidirectional (bilstm/forward_lstm)
            layer = config_layer(config, row["name"])
            assert layer is not None and layer.type == row["type"], (path.name, row["name"])


def test_a_deeply_nested_config_costs_what_the_name_costs() -> None:
    node: dict[str, Any] = {"class_name": "Dense", "config": {"name": "x", "activation": "relu"}}
    for _ in range(100_000):
        node = {"class_name": "TimeDistributed", "config": {"name": "t", "layer": node}}
    config = {"config": {"name": "m", "layers": [node, "junk", {"config": []}]}}
    assert config_layer(config, "t/t/x") is None and config_layer(config, "junk") is None
    assert config_layer(config, "/".join(["t"] * 100_000 + ["x"])) == ConfigLayer("Dense", "relu")


def test_no_probe_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    saved = run_cli("audit", str(FIXTURES / "savedmodels" / "export"), "--no-probe")
    assert saved.exit_code == 2 and "a SavedModel directory has none it can read" in saved.stderr
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((4, 8), "float32"))
    both = run_cli("audit", DEAD, "--no-probe", "--inputs", str(inputs))
    assert both.exit_code == 2
    assert both.stderr.startswith("gradaudit: error: --inputs feeds the probe; --no-probe")

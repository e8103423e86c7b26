"""Diagnosis (issue 19): every finding linked to its root cause, the causes ranked, a fix each.

Real fixtures with a known answer (the dead ReLU stack, the one-unit softmax, the
stop_gradient branch, the frozen block, the saturated sigmoid stacks) and their healthy
twins; the linking rules on plain report data (shared-layer cycles, undecidable causes,
a 1,000-layer chain); the formats, the exit code, --select/--ignore and baselines.
"""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fixtures.make_fixtures import build_dead_stack, reset_seed
from gradaudit.checks.causes import diagnose
from gradaudit.options import Options
from gradaudit.report.json_io import read, write
from gradaudit.report.types import AuditRun, Finding, LayerRow, ModelReport, Severity
from tests.conftest import FIXTURES, ROOT, run_cli

STACK = str(FIXTURES / "dead_stack.keras")
BEFORE = [f"relu_{i:02d}" for i in range(1, 12)]  # the layers before relu_12


def _audit(name: str, **options: Any) -> ModelReport:
    from gradaudit.pipeline import audit_path

    return audit_path(str(FIXTURES / name), Options(**options))


def _links(report: ModelReport) -> dict[str, str | None]:
    return {f.id: f.caused_by for f in report.findings}


@pytest.fixture(scope="module")
def stack() -> ModelReport:
    return _audit("dead_stack.keras")


def test_dead_stack_has_one_root_cause_the_first_dead_layer(stack: ModelReport) -> None:
    links = _links(stack)
    assert links["GA102:relu_12"] is None
    assert all(links[f"GA202:{layer}"] == "relu_12" for layer in BEFORE)
    # relu_13 and relu_14 are fed only relu_12's zeros: consequences, not causes.
    for layer in ("relu_13", "relu_14"):
        assert links[f"GA102:{layer}"] == "relu_12" and links[f"GA202:{layer}"] == "relu_12"
    assert links["GA202:relu_12"] == links["GA202:out"] == "relu_12"
    assert [f.id for f in stack.findings if f.caused_by is None] == ["GA102:relu_12"]
    (cause,) = stack.diagnosis
    assert (cause.layer, cause.codes) == ("relu_12", ("GA102",))
    assert set(cause.explains) == set(links) - {"GA102:relu_12"}
    assert f"{stack.params_trainable:,} of {stack.params_trainable:,}" in cause.summary
    assert "He normal" in cause.fix and "LeakyReLU" in cause.fix


def test_healthy_twin_of_the_stack_has_an_empty_diagnosis(tmp_path: Path) -> None:
    from gradaudit.pipeline import audit_path

    reset_seed()
    path = tmp_path / "healthy_stack.keras"
    build_dead_stack(dead=()).save(path)
    report = audit_path(str(path), Options())
    assert report.diagnosis == ()
    assert not [f for f in report.findings if f.severity >= Severity.WARNING]
    assert all(f.caused_by is None and f.id == f"{f.code}:{f.layer}" for f in report.findings)


@pytest.mark.parametrize("name", ["healthy_mlp.keras", "healthy_mlp.h5", "frozen_layer.keras",
                                  "frozen_base.keras"])
def test_healthy_and_frozen_models_have_an_empty_diagnosis(name: str) -> None:
    report = _audit(name, samples=32)
    assert report.diagnosis == ()
    # A frozen block alone is information: its GA301 is its own root, explains nothing.
    assert all(f.caused_by is None for f in report.findings)
    if "frozen" in name:
        assert [f.code for f in report.findings] == ["GA301"]


def test_one_unit_softmax_head_is_the_first_root_cause() -> None:
    report = _audit("one_unit_softmax.keras")
    assert _links(report) == {"GA206:probs": None, "GA202:hidden1": "probs",
                              "GA202:hidden2": "probs", "GA202:probs": "probs"}
    assert [(c.layer, c.codes) for c in report.diagnosis] == [("probs", ("GA206",))]
    assert "Dense(1, activation='sigmoid')" in report.diagnosis[0].fix


def test_one_unit_softmax_under_its_loss_explains_the_constant_output() -> None:
    report = _audit("trained/softmax_one_unit.keras")
    assert _links(report) == {"GA206:out": "out", "GA411:out": None}
    assert [(c.layer, c.codes, c.explains) for c in report.diagnosis] == [
        ("out", ("GA411",), ("GA206:out",))]


def test_stop_gradient_cut_is_the_root_of_its_never_updated_rows() -> None:
    assert _links(_audit("stop_gradient.keras")) == {"GA201:cut": None}
    report = _audit("trained/stop_gradient.keras")
    assert _links(report) == {"GA201:cut": None, "GA403:cut": "cut"}
    (cause,) = report.diagnosis
    assert (cause.layer, cause.codes, cause.explains) == ("cut", ("GA201",), ("GA403:cut",))
    assert "stop_gradient after 'cut'" in cause.fix


@pytest.mark.parametrize("no_probe", [False, True])
def test_a_too_high_rate_is_the_root_of_the_layers_it_stalled(no_probe: bool) -> None:
    """GA414 names the stalled layers as its evidence: their GA401 are its consequences,
    and its fix quotes the file's rate against the optimizer's usual one."""
    report = _audit("trained/adam_dying.keras", no_probe=no_probe)
    assert _links(report) == {"GA414:adam_dying": None, "GA401:h1": "adam_dying"}
    assert [(c.layer, c.codes, c.explains) for c in report.diagnosis] == [
        ("adam_dying", ("GA414",), ("GA401:h1",))]
    assert report.diagnosis[0].fix.startswith(
        "lower the learning rate from 0.05 toward Adam's usual 0.001")


def test_a_stalled_layer_without_a_setting_to_blame_quotes_the_files_rate() -> None:
    """A stalled layer that is its own root cause (no GA414 names it) gets the fix that
    quotes the file's rate."""
    from gradaudit.checks.causes import fix
    from gradaudit.report.types import Finding, Severity

    report = _audit("trained/adam_dying.keras", no_probe=True)
    stalled = Finding("GA401", Severity.WARNING, "h1", "stalled", {})
    assert fix(stalled, report).startswith("lower the learning rate (0.05 in the file)")


def test_deep_sigmoid_vanishing_starts_at_the_last_vanishing_layer() -> None:
    report = _audit("deep_sigmoid.keras")
    links = _links(report)
    assert links["GA204:sig_15"] is None
    assert all(links[f"GA204:sig_{i:02d}"] == "sig_15" for i in range(1, 15))
    assert [(c.layer, c.codes, len(c.explains)) for c in report.diagnosis] == [
        ("sig_15", ("GA204",), 14)]


def test_saturated_sigmoid_explains_its_own_vanishing_gradient() -> None:
    report = _audit("saturated_sigmoid.keras")
    assert _links(report) == {"GA111:sat": None, "GA204:sat": "sat"}
    assert [(c.layer, c.codes, c.explains) for c in report.diagnosis] == [
        ("sat", ("GA111",), ("GA204:sat",))]


def test_nested_model_links_across_its_boundary() -> None:
    report = _audit("nested_dead.keras")
    assert _links(report) == {"GA202:encoder/enc_hidden": "encoder/enc_dead",
                              "GA102:encoder/enc_dead": None,
                              "GA202:encoder/enc_dead": "encoder/enc_dead",
                              "GA202:head": "encoder/enc_dead"}


def test_a_dead_layer_inside_a_keras2_wrapper_explains_the_rows_around_it() -> None:
    report = _audit("keras2_td_dead.h5")
    assert _links(report) == {"GA202:lstm": "td/dense", "GA102:td/dense": None,
                              "GA202:td/dense": "td/dense", "GA202:out": "td/dense"}


def test_an_exploding_gradient_is_rooted_where_it_starts() -> None:
    report = _audit("exploding.keras")
    links = _links(report)
    assert links["GA203:out"] is None
    assert all(links[f"GA203:lin_{i:02d}"] == "out" for i in range(1, 13))
    assert [c.layer for c in report.diagnosis] == ["out"]


def test_shared_layer_and_recurrent_layer_graph_has_no_hang_and_no_duplicates() -> None:
    import keras

    from gradaudit.model.keras_graph import KerasModel
    from gradaudit.pipeline import audit_model

    reset_seed()
    x = keras.Input((5, 4), name="seq")
    h = keras.layers.LSTM(8, name="lstm")(x)
    shared = keras.layers.Dense(8, activation="relu", name="shared")
    inner = keras.Sequential([keras.layers.Dense(8, name="inner_dense")], name="block")
    h = shared(inner(shared(h)))  # shared is called on what it feeds: a cycle of names
    model = keras.Model(x, keras.layers.Dense(2, name="out")(h))
    audited = KerasModel(model)
    assert audited.layer_graph() == {
        "lstm": ("shared",), "shared": ("block", "out"), "block": ("block/inner_dense",),
        "block/inner_dense": ("shared",), "out": ()}
    report = audit_model(audited, Options(samples=16))
    ids = [f.id for f in report.findings]
    assert len(ids) == len(set(ids))


# --- the rules on plain report data --------------------------------------------------

def _row(name: str, params: int = 10, type_: str = "Dense") -> LayerRow:
    return LayerRow(name, type_, "relu", params, params, 0, True, 4, None, None, None, None)


def _report(rows: list[LayerRow], findings: list[tuple[str, str, dict[str, Any]]]) -> ModelReport:
    made = tuple(Finding(code, Severity.ERROR if code not in ("GA204", "GA301") else
                         Severity.WARNING if code == "GA204" else Severity.INFO,
                         layer, "m", metrics) for code, layer, metrics in findings)
    return ModelReport("m.keras", "keras", "m", sum(r.params for r in rows),
                       sum(r.params for r in rows), 0, 8, 0, (), tuple(rows), made)


def test_two_dead_layers_feeding_one_merge_leave_its_zero_input_undecided() -> None:
    rows = [_row("a"), _row("b"), _row("merge", 0, "Concatenate"), _row("out")]
    report = _report(rows, [("GA102", "a", {}), ("GA102", "b", {}), ("GA202", "out", {})])
    graph = {"a": ("merge",), "b": ("merge",), "merge": ("out",), "out": ()}
    linked = diagnose(report, graph)
    assert _links(linked) == {"GA102:a": None, "GA102:b": None, "GA202:out": None}
    assert [c.layer for c in linked.diagnosis] == ["out", "a", "b"]  # most params, then depth


def test_a_cycle_through_a_shared_layer_stays_undecided_and_terminates() -> None:
    rows = [_row("pre"), _row("shared"), _row("dead")]
    report = _report(rows, [("GA202", "pre", {}), ("GA202", "shared", {}),
                            ("GA102", "dead", {})])
    graph = {"pre": ("shared",), "shared": ("dead", "shared"), "dead": ("shared",)}
    assert _links(diagnose(report, graph)) == {"GA202:pre": None, "GA202:shared": None,
                                               "GA102:dead": None}


def test_a_cut_explains_the_rows_before_it_on_the_same_cut_only() -> None:
    rows = [_row("a"), _row("b"), _row("c")]
    report = _report(rows, [("GA201", "a", {"cut_at": "argmax"}),
                            ("GA201", "b", {"cut_at": "stop_gradient"}),
                            ("GA201", "c", {"cut_at": "stop_gradient"})])
    chain = {"a": ("b",), "b": ("c",), "c": ()}
    assert _links(diagnose(report, chain)) == {"GA201:a": None, "GA201:b": "c", "GA201:c": None}


def test_rows_inside_a_frozen_block_are_its_consequences_without_a_graph() -> None:
    rows = [_row("base", 0, "Functional"), _row("base/conv"), _row("head")]
    report = _report(rows, [("GA301", "base", {}), ("GA403", "base/conv", {}),
                            ("GA202", "head", {})])
    linked = diagnose(report, {})
    assert _links(linked) == {"GA301:base": None, "GA403:base/conv": "base", "GA202:head": None}
    assert "unfreeze 'base'" in next(c for c in linked.diagnosis if c.layer == "base").fix


def test_a_repeated_code_on_one_layer_gets_a_numbered_id() -> None:
    report = _report([_row("d")], [("GA412", "d", {}), ("GA412", "d", {})])
    assert [f.id for f in diagnose(report, {}).findings] == ["GA412:d", "GA412:d#2"]


def test_a_thousand_layer_chain_links_every_layer_to_the_dead_one() -> None:
    names = [f"l{i:04d}" for i in range(1000)]
    graph = {a: (b,) for a, b in itertools.pairwise(names)} | {names[-1]: ()}
    findings = [("GA202", name, {}) for name in names[:-2]] + [("GA102", names[-2], {})]
    linked = diagnose(_report([_row(n) for n in names], findings), graph)
    assert {f.caused_by for f in linked.findings if f.code == "GA202"} == {names[-2]}
    assert len(linked.diagnosis) == 1 and len(linked.diagnosis[0].explains) == 998


# --- formats, gates, baselines ----------------------------------------------------------

def test_table_opens_with_the_diagnosis_and_folds_consequences() -> None:
    result = run_cli("audit", STACK, "-q")
    assert result.exit_code == 1
    text = result.stdout
    assert text.index("Diagnosis") < text.index("Dead activations") < text.index("Findings:")
    assert "  1. relu_12 [GA102]: Fully dead ReLU layer; 15 layers get no gradient" in text
    findings = text[text.index("Findings:"):]
    assert "+ 15 layers get no gradient because of it: GA102, GA202" in findings
    assert "relu_01" not in findings
    verbose = run_cli("audit", STACK, "-q", "--verbose").stdout
    assert all(layer in verbose[verbose.index("Findings:"):] for layer in BEFORE)


def test_markdown_and_html_show_the_diagnosis_before_the_findings() -> None:
    for fmt, diagnosis, findings in (("markdown", "### Diagnosis", "### Findings"),
                                     ("html", "<h3>Diagnosis</h3>", "<h3>Findings</h3>")):
        text = run_cli("audit", STACK, "-q", "--format", fmt).stdout
        assert text.index(diagnosis) < text.index(findings), fmt


def test_sarif_points_each_consequence_at_its_cause(tmp_path: Path) -> None:
    import jsonschema

    text = run_cli("audit", STACK, "-q", "--format", "sarif").stdout
    document = json.loads(text)
    schema = ROOT / "tests" / "data" / "sarif-schema-2.1.0.json"
    jsonschema.validate(document, json.loads(schema.read_text(encoding="utf-8")))
    results = document["runs"][0]["results"]
    related = {r["locations"][0]["logicalLocations"][0]["name"] + ":" + r["ruleId"]:
               r.get("relatedLocations") for r in results}
    assert related["relu_12:GA102"] is None
    assert all(related[f"{layer}:GA202"][0]["logicalLocations"][0]["name"] == "relu_12"
               for layer in BEFORE)


def test_junit_has_one_failure_per_root_cause_with_its_consequences() -> None:
    root = ET.fromstring(run_cli("audit", STACK, "-q", "--format", "junit").stdout)
    failures = root.findall(".//failure")
    assert [f.get("type") for f in failures] == ["GA102"]
    assert (failures[0].text or "").count("explains error") == 17


def test_gates_select_ignore_and_baselines_keep_their_meaning(tmp_path: Path) -> None:
    ignored = run_cli("audit", STACK, "-q", "--format", "json", "--ignore", "GA102")
    assert ignored.exit_code == 1  # the consequences still fail the run
    (model,) = json.loads(ignored.stdout)["models"]
    assert model["diagnosis"] == [] and {f["code"] for f in model["findings"]} == {"GA202"}
    assert run_cli("audit", STACK, "-q", "--fail-on", "never").exit_code == 0
    baseline = tmp_path / "baseline.json"
    assert run_cli("audit", STACK, "-q", "--write-baseline", str(baseline)).exit_code == 1
    keys = {f["id"] for f in json.loads(baseline.read_text())["models"][0]["findings"]}
    assert "GA202:relu_01" in keys
    known = run_cli("audit", STACK, "-q", "--format", "json", "--baseline", str(baseline))
    assert known.exit_code == 0
    (model,) = json.loads(known.stdout)["models"]
    assert model["findings"] == [] and model["diagnosis"] == []


def test_json_round_trip_and_merge_keep_ids_causes_and_diagnosis(stack: ModelReport,
                                                                  tmp_path: Path) -> None:
    run = AuditRun(models=(stack,), errors=())
    assert read(write(run)) == run
    document = json.loads(write(run))
    assert document["models"][0]["diagnosis"][0]["explains"][0] == "GA202:relu_01"
    assert document["models"][0]["findings"][0]["caused_by"] == "relu_12"
    shard = tmp_path / "shard.json"
    shard.write_text(write(run), encoding="utf-8")
    merged = run_cli("merge", str(shard), "--format", "json", "-q")
    assert merged.stdout == write(run)
    # A report written before ids existed gets the same ids on reading.
    for finding in document["models"][0]["findings"]:
        del finding["id"], finding["caused_by"]
    old = read(json.dumps(document)).models[0]
    assert [f.id for f in old.findings] == [f.id for f in stack.findings]
    assert replace(old, findings=stack.findings) == stack

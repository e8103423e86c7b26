"""``gradaudit diff OLD NEW``: new, gone and changed findings between two versions of a model.

The pairs are real: the trained MLPs of ``fixtures/trained`` (healthy.keras, and
adam_dying.keras trained at a too-high rate: worse one way, better the other), a
binary classifier whose two-unit softmax became a one-unit one (worse), a model
against its own JSON report (the same), and partly_dead.keras (14 of 20 units dead)
against copies with 19 and 11 dead units built here (changed, and not changed enough).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gradaudit.formats.diff import DiffFormat, render
from gradaudit.options import Options, Thresholds
from gradaudit.report import json_io
from gradaudit.report.diff import Diff, compare
from gradaudit.report.types import AuditRun, FailOn, Severity
from tests.conftest import FIXTURES, run_cli, run_cli_fresh

TRAINED = FIXTURES / "trained"


def _diff(*args: str) -> tuple[int, dict, str]:
    result = run_cli("diff", *args, "--format", "json")
    return result.exit_code, json.loads(result.stdout or "{}"), result.stderr


def _ids(entries: list[dict]) -> list[tuple[str, str]]:
    return [(e["id"], e["severity"]) for e in entries]


def test_a_retrain_that_killed_units_is_worse_and_gates_at_its_severity() -> None:
    code, document, stderr = _diff(str(TRAINED / "healthy.keras"),
                                   str(TRAINED / "adam_dying.keras"), "--no-probe",
                                   "--fail-on", "warning")
    diff = document["diff"]
    assert _ids(diff["new"]) == [("GA414:adam_dying", "warning"), ("GA401:h1", "warning")]
    assert diff["gone"] == diff["changed"] == diff["notes"] == []
    assert diff["new"][1]["model"] == str(TRAINED / "adam_dying.keras")
    assert diff["new"][1]["metrics"]["units"] == 32  # the report's own finding shape
    assert code == 1
    assert stderr.strip() == "gradaudit: diff: 2 new, 0 gone, 0 changed; exit 1"
    # --select filters both sides.
    _, selected, _ = _diff(str(TRAINED / "healthy.keras"), str(TRAINED / "adam_dying.keras"),
                           "--no-probe", "--select", "GA401")
    assert _ids(selected["diff"]["new"]) == [("GA401:h1", "warning")]
    # Warnings do not fail the default gate (error).
    assert run_cli("diff", str(TRAINED / "healthy.keras"), str(TRAINED / "adam_dying.keras"),
                   "--no-probe", "-q").exit_code == 0


def test_the_reverse_is_better_and_passes_any_gate() -> None:
    code, document, _ = _diff(str(TRAINED / "adam_dying.keras"), str(TRAINED / "healthy.keras"),
                              "--no-probe", "--fail-on", "info")
    assert document["diff"]["new"] == []
    assert _ids(document["diff"]["gone"]) == [("GA414:adam_dying", "warning"),
                                              ("GA401:h1", "warning")]
    assert code == 0


def test_a_finding_on_the_model_matches_whatever_the_model_is_called() -> None:
    # GA414's layer is the model's name (adam_dying, sgd_dying): still the same finding.
    # h1 is stalled in both (62% and 69%: under the 0.2 change), h2 only in NEW.
    code, document, _ = _diff(str(TRAINED / "adam_dying.keras"),
                              str(TRAINED / "sgd_dying.keras"), "--no-probe",
                              "--fail-on", "warning")
    assert _ids(document["diff"]["new"]) == [("GA401:h2", "warning")]
    assert document["diff"]["gone"] == document["diff"]["changed"] == []
    assert code == 1


@pytest.fixture(scope="module")
def partly(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """partly_dead.keras (14 of 20 units of "partial" dead) and the same model with 19 and
    with 11 dead units."""
    from fixtures.make_fixtures import DEAD_BIAS, build_partly_dead, reset_seed

    root = tmp_path_factory.mktemp("partly")
    paths = {"partly_dead": FIXTURES / "partly_dead.keras"}
    for name, dead in (("mostly_dead", 19), ("less_dead", 11)):
        reset_seed()
        model = build_partly_dead()
        bias = np.zeros(20, dtype="float32")
        bias[:dead] = DEAD_BIAS
        model.get_layer("partial").bias.assign(bias)
        paths[name] = root / f"{name}.keras"
        model.save(paths[name])
    return paths


@pytest.fixture(scope="module")
def runs(partly: dict[str, Path]) -> dict[str, AuditRun]:
    """Each model audited in this process, one run per model."""
    from gradaudit.pipeline import audit_paths

    paths = {**partly, **{name: FIXTURES / f"{name}.keras" for name in (
        "dead_relu", "healthy_mlp", "two_unit_softmax", "one_unit_softmax")}}
    audited = audit_paths([str(p) for p in paths.values()], Options())
    assert not audited.errors
    return {name: replace(audited, models=(model,))
            for name, model in zip(paths, audited.models, strict=True)}


def test_a_layer_that_lost_more_units_is_changed_with_its_figures(
        runs: dict[str, AuditRun]) -> None:
    diff = compare(runs["partly_dead"], runs["mostly_dead"], Thresholds())
    assert diff.new == diff.gone == ()
    (change,) = diff.changed
    assert (change.new.id, change.old.severity, change.new.severity) == (
        "GA101:partial", Severity.WARNING, Severity.WARNING)
    # 19 dead units of 20 instead of 14, and the one left alive carries a gradient RMS
    # over the layer more than 10× smaller.
    assert change.figures["dead_fraction"] == (0.7, 0.95)
    old_rms, new_rms = change.figures["grad_rms"]
    assert old_rms is not None and new_rms is not None and old_rms / new_rms >= 10
    assert set(change.figures) == {"dead_fraction", "grad_rms"}
    # A finding OLD has too, at the same severity, does not fail the gate.
    assert diff.exit_code(FailOn.WARNING) == 0
    # 14 → 11 dead units (70% → 55%) is under the 0.2 change; a lower threshold sees it.
    assert compare(runs["partly_dead"], runs["less_dead"], Thresholds()).changed == ()
    (smaller,) = compare(runs["partly_dead"], runs["less_dead"],
                         Thresholds(diff_fraction_change=0.1)).changed
    assert smaller.figures == {"dead_fraction": (0.7, 0.55)}  # the RMS moved less than 10×


def test_a_classifier_whose_output_became_constant_is_worse(
        runs: dict[str, AuditRun]) -> None:
    worse = compare(runs["two_unit_softmax"], runs["one_unit_softmax"], Thresholds())
    roots = [(e.finding.id, e.finding.severity) for e in worse.new
             if e.finding.caused_by is None]
    assert roots == [("GA206:probs", Severity.ERROR)]
    # Its consequences (GA202 on the layers before it, caused by probs) are there with
    # oneDNN's kernels, which give an exactly zero gradient, and not without them.
    assert {(e.finding.code, e.finding.caused_by) for e in worse.new} <= {
        ("GA206", None), ("GA202", "probs")}
    assert worse.gone == worse.changed == worse.notes == ()
    assert worse.exit_code(FailOn.ERROR) == 1
    assert worse.exit_code(FailOn.NEVER) == 0
    better = compare(runs["one_unit_softmax"], runs["two_unit_softmax"], Thresholds())
    assert [e.finding.id for e in better.gone] == [e.finding.id for e in worse.new]
    assert better.new == () and better.exit_code(FailOn.INFO) == 0


def test_a_severity_that_crosses_the_gate_fails_it(runs: dict[str, AuditRun]) -> None:
    (model,) = runs["partly_dead"].models
    raised = model.keeping([replace(f, severity=Severity.ERROR) for f in model.findings])
    diff = compare(runs["partly_dead"], replace(runs["partly_dead"], models=(raised,)),
                   Thresholds())
    (change,) = diff.changed
    assert change.figures == {}
    assert diff.exit_code(FailOn.ERROR) == 1
    assert diff.exit_code(FailOn.WARNING) == 0  # already over the gate in OLD


def test_unrelated_models_are_compared_by_layer_name_with_a_note(
        runs: dict[str, AuditRun]) -> None:
    diff = compare(runs["healthy_mlp"], runs["dead_relu"], Thresholds())
    assert [f.finding.id for f in diff.new] == ["GA202:pre", "GA102:dead", "GA202:dead",
                                                 "GA202:out"]
    assert diff.notes == (
        f"{FIXTURES / 'healthy_mlp.keras'} and {FIXTURES / 'dead_relu.keras'} have different "
        "layers (0 of 3 and 3 layer names shared): findings are matched by layer name",)


def test_sides_audited_otherwise_get_a_note(runs: dict[str, AuditRun]) -> None:
    (model,) = runs["partly_dead"].models
    other = replace(runs["partly_dead"], models=(replace(model, seed=3),))
    assert compare(runs["partly_dead"], other, Thresholds()).notes == (
        f"{model.path}: OLD was probed with seed 0 and NEW with seed 3: gradient RMS moves "
        "with the seed alone (up to 9× measured), so compare with the same --seed",)


def test_a_probed_report_against_no_probe_says_why_findings_are_gone(
        runs: dict[str, AuditRun], tmp_path: Path) -> None:
    report = tmp_path / "partly_dead.json"
    report.write_text(json_io.write(runs["partly_dead"]), encoding="utf-8")
    model = FIXTURES / "partly_dead.keras"
    code, document, _ = _diff(str(report), str(model), "--no-probe", "--fail-on", "info")
    assert [e["id"] for e in document["diff"]["gone"]] == ["GA101:partial"]
    assert document["diff"]["notes"] == [
        f"{model}: OLD ran checks GA1, GA2, GA3 and NEW none (no probe, no training state) "
        "(--no-probe on one side?): findings of checks that ran on one side only are new or "
        "gone"]
    assert code == 0


def test_reports_of_several_models_pair_them_by_path(runs: dict[str, AuditRun]) -> None:
    def run(*names: str) -> AuditRun:
        return AuditRun(tuple(m for name in names for m in runs[name].models), ())

    diff = compare(run("partly_dead", "healthy_mlp"), run("dead_relu", "partly_dead"),
                   Thresholds())
    dead_relu, healthy = (str(FIXTURES / name) for name in ("dead_relu.keras",
                                                            "healthy_mlp.keras"))
    assert [(e.model, e.finding.id) for e in diff.new] == [
        (dead_relu, "GA202:pre"), (dead_relu, "GA102:dead"), (dead_relu, "GA202:dead"),
        (dead_relu, "GA202:out")]
    assert diff.gone == diff.changed == ()
    assert diff.notes == (f"{healthy} is only in OLD: its findings are gone",
                          f"{dead_relu} is only in NEW: its findings are new")
    table = render(diff, DiffFormat.TABLE)
    assert table.splitlines()[3].split() == ["model", "severity", "code", "layer", "message"]


def test_every_format_shows_the_three_lists(runs: dict[str, AuditRun]) -> None:
    diff = compare(runs["partly_dead"], runs["mostly_dead"], Thresholds())
    table = render(diff, DiffFormat.TABLE)
    assert "Changed:" in table and "dead 70% → 95%" in table
    assert "New in NEW: none." in table
    markdown = render(diff, DiffFormat.MARKDOWN)
    old_rms, new_rms = diff.changed[0].figures["grad_rms"]
    assert (f"| `GA101` | `partial` | warning | dead 70% → 95%; gradient RMS "
            f"{old_rms:.3g} → {new_rms:.3g} |") in markdown
    document = json.loads(render(diff, DiffFormat.JSON))
    (changed,) = document["diff"]["changed"]
    assert changed["figures"] == {"dead_fraction": {"old": 0.7, "new": 0.95},
                                  "grad_rms": {"old": old_rms, "new": new_rms}}
    assert changed["old"]["id"] == changed["new"]["id"] == "GA101:partial"
    assert render(Diff((), (), ()), DiffFormat.TABLE) == (
        "gradaudit diff: 0 new, 0 gone, 0 changed\n\nNew in NEW: none.\n\n"
        "Gone from OLD: none.\n\nChanged: none.\n")


def test_models_audited_by_the_cli_against_a_report(runs: dict[str, AuditRun],
                                                    partly: dict[str, Path],
                                                    tmp_path: Path) -> None:
    """Through the worker: a model against its own report is the same; a model file that
    lost units against the report of the one before is changed."""
    report = tmp_path / "partly_dead.json"
    report.write_text(json_io.write(runs["partly_dead"]), encoding="utf-8")
    code, document, stderr = _diff(str(report), str(partly["mostly_dead"]), "--fail-on", "info")
    assert [(c["new"]["id"], c["figures"]["dead_fraction"])
            for c in document["diff"]["changed"]] == [("GA101:partial", {"old": 0.7, "new": 0.95})]
    assert document["diff"]["new"] == document["diff"]["gone"] == []
    assert code == 0, stderr
    code, document, _ = _diff(str(report), str(partly["partly_dead"]), "--fail-on", "info")
    assert document["diff"] == {"new": [], "gone": [], "changed": [], "notes": []}
    assert code == 0


def test_the_thresholds_come_from_the_config_file(runs: dict[str, AuditRun],
                                                   tmp_path: Path) -> None:
    """Two reports (no model is run): 70% → 55% dead is changed at a 0.1 threshold only."""
    for name in ("partly_dead", "less_dead"):
        (tmp_path / f"{name}.json").write_text(json_io.write(runs[name]), encoding="utf-8")
    sides = [str(tmp_path / "partly_dead.json"), str(tmp_path / "less_dead.json")]
    config = tmp_path / "gradaudit.toml"
    config.write_text("diff_fraction_change = 0.1\n", encoding="utf-8")
    assert _diff(*sides)[1]["diff"]["changed"] == []
    (changed,) = _diff(*sides, "--config", str(config))[1]["diff"]["changed"]
    assert changed["figures"] == {"dead_fraction": {"old": 0.7, "new": 0.55}}


def test_an_unreadable_side_exits_2_with_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.json"
    text.write_text("{not json", encoding="utf-8")
    failed = tmp_path / "failed.json"
    failed.write_text(json_io.write(AuditRun((), ())).replace(
        '"errors": []', '"errors": [{"path": "x.keras", "error": "truncated"}]'),
        encoding="utf-8")
    healthy = str(TRAINED / "healthy.keras")
    for side, message in (
            (text, f"{text}: not a JSON file"),
            (tmp_path / "missing.keras", f"{tmp_path / 'missing.keras'}: "),
            (failed, f"{failed}: the report has a file that could not be audited "
                     "(x.keras: truncated)")):
        result = run_cli("diff", healthy, str(side), "--no-probe")
        assert result.exit_code == 2
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"gradaudit: error: {message}"), line


def test_two_reports_are_compared_without_tensorflow(tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    for path, model in ((old, "healthy"), (new, "adam_dying")):
        result = run_cli("audit", str(TRAINED / f"{model}.keras"), "--no-probe", "-q",
                         "--format", "json", "--output", str(path))
        assert result.exit_code == 0
    fresh = run_cli_fresh("diff", str(old), str(new), "--fail-on", "warning", "-q")
    assert "EXIT 1" in fresh.stdout
    assert fresh.imported == []


def test_the_table_folds_a_new_root_causes_consequences_under_it() -> None:
    # adam_dying's GA401 on h1 is a consequence of its GA414 (the too-high rate).
    args = (str(TRAINED / "healthy.keras"), str(TRAINED / "adam_dying.keras"), "--no-probe")
    table = run_cli("diff", *args, "-q").stdout
    _, document, _ = _diff(*args)
    assert [e["caused_by"] for e in document["diff"]["new"]] == [None, "adam_dying"]
    assert "+ 1 layer gets findings because of it: GA401" in table
    assert "GA401   h1" not in table  # folded: not a row of its own
    assert len(document["diff"]["new"]) == 2  # JSON keeps both

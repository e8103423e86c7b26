"""--write-baseline records findings; --baseline reports only new ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradaudit.report.baseline import apply, finding_key
from gradaudit.report.types import AuditRun, Finding, ModelReport, Severity
from tests.conftest import FIXTURES, run_cli

DEAD = str(FIXTURES / "dead_relu.keras")


def test_a_baseline_silences_known_findings_and_keeps_new_ones(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    first = run_cli("audit", DEAD, "--samples", "32", "--write-baseline", str(baseline), "-q")
    assert first.exit_code == 1  # writing a baseline does not change this run's verdict
    recorded = json.loads(baseline.read_text())
    assert len(recorded["models"][0]["findings"]) == 4

    # Same findings, different messages (other sample count), path spelled differently.
    again = run_cli("audit", f"{FIXTURES}/../fixtures/dead_relu.keras", "--samples", "16",
                    "--baseline", str(baseline), "-f", "json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)["models"][0]["findings"] == []
    assert again.stderr.rstrip().endswith("exit 0; 4 known finding(s) in --baseline")

    # Drop one recorded finding: it is new again and fails the run.
    recorded["models"][0]["findings"] = [
        f for f in recorded["models"][0]["findings"] if f["code"] != "GA102"]
    baseline.write_text(json.dumps(recorded))
    result = run_cli("audit", DEAD, "--samples", "16", "--baseline", str(baseline), "-f", "json",
                     "-q")
    assert result.exit_code == 1
    findings = json.loads(result.stdout)["models"][0]["findings"]
    assert [(f["code"], f["layer"]) for f in findings] == [
        ("GA102", "dead")]


def test_keys_ignore_messages_and_normalise_paths() -> None:
    first = Finding("GA102", Severity.ERROR, "dead", "16 of 16 units on 256 samples")
    second = Finding("GA102", Severity.ERROR, "dead", "16 of 16 units on 64 samples")
    assert finding_key("./m/../a.keras", first) == finding_key("a.keras", second)
    assert finding_key("a.keras", first) != finding_key("b.keras", first)
    model = ModelReport("a.keras", "keras", "a", 1, 1, 0, 1, 0, (), (), (first,))
    run, suppressed = apply(AuditRun((model,), ()), frozenset({finding_key("a.keras", second)}))
    assert suppressed == 1 and run.models[0].findings == ()


@pytest.mark.parametrize(("content", "reason"), [
    (None, "no such file"),
    ("{not json", "not a JSON file"),
    ('{"models": [{"findings": []}]}', "not a gradaudit JSON report"),
])
def test_a_bad_baseline_is_exit_2(tmp_path: Path, content: str | None, reason: str) -> None:
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    result = run_cli("audit", DEAD, "--baseline", str(path))
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"gradaudit: error: --baseline {path}: {reason}")

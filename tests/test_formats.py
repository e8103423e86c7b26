"""Every output format over one shared, real run; SARIF against the official schema."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gradaudit.formats import Format, render
from gradaudit.options import Options
from gradaudit.report.catalogue import CATALOGUE
from gradaudit.report.types import AuditRun, FailOn, Finding, ModelReport, Severity
from tests.conftest import FIXTURES, ROOT, run_cli

# The official OASIS schema, shipped with the tests (source and licence: tests/data/README.md).
SCHEMA = ROOT / "tests" / "data" / "sarif-schema-2.1.0.json"
NAMES = ("dead_relu.keras", "frozen_layer.keras", "healthy_mlp.keras", "partly_dead.keras")


@pytest.fixture(scope="module")
def run() -> AuditRun:
    """One real audit: four fixtures (errors, info, clean, warning) and a missing file."""
    from gradaudit.pipeline import audit_paths

    audited = audit_paths([str(FIXTURES / n) for n in NAMES] + ["missing.keras"],
                          Options(samples=32))
    return replace(audited, fail_on=FailOn.ERROR)


def _validate_sarif(text: str) -> dict[str, Any]:
    import jsonschema

    document = json.loads(text)
    jsonschema.validate(document, json.loads(SCHEMA.read_text(encoding="utf-8")))
    return document


def test_every_format_member_has_a_renderer(run: AuditRun) -> None:
    for fmt in Format:
        text = render(run, fmt)
        assert text.endswith("\n") and "missing.keras" in text


def test_sarif_is_valid_and_has_one_result_per_finding(run: AuditRun) -> None:
    document = _validate_sarif(render(run, Format.SARIF))
    (sarif_run,) = document["runs"]
    rules = sarif_run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [c.code for c in CATALOGUE]
    assert rules[1]["shortDescription"]["text"] == "Fully dead ReLU layer"
    expected = [(m.path, f.code, f.layer, str(f.severity)) for m in run.models for f in m.findings]
    level = {"error": "error", "warning": "warning", "info": "note"}
    got = [(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], r["ruleId"],
            r["locations"][0]["logicalLocations"][0]["name"], r["level"])
           for r in sarif_run["results"]]
    # Absolute paths become file: URIs; relative ones stay relative (next test).
    assert got == [(Path(p).as_uri(), c, layer, level[s]) for p, c, layer, s in expected]
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in sarif_run["results"])
    (invocation,) = sarif_run["invocations"]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["message"]["text"] == "missing.keras: no such file or directory"


def test_sarif_uses_relative_posix_uris_for_relative_paths() -> None:
    finding = Finding("GA102", Severity.ERROR, "dead", "m")
    model = ModelReport("models\\sub dir\\a.keras", "keras", "a", 1, 1, 0, 1, 0, (), (),
                        (finding,))
    document = _validate_sarif(render(AuditRun((model,), ()), Format.SARIF))
    location = document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "models/sub%20dir/a.keras"
    assert document["runs"][0]["invocations"][0]["executionSuccessful"] is True


@pytest.mark.parametrize(("fail_on", "failing"), [
    (FailOn.ERROR, {"dead_relu.keras": {"GA102"}}),
    (FailOn.WARNING, {"dead_relu.keras": {"GA102"}, "partly_dead.keras": {"GA101"}}),
    (FailOn.INFO, {"dead_relu.keras": {"GA102"}, "partly_dead.keras": {"GA101"},
                   "frozen_layer.keras": {"GA301"}}),
    (FailOn.NEVER, {}),
])
def test_junit_parses_back_with_failures_at_or_over_fail_on(
    run: AuditRun, fail_on: FailOn, failing: dict[str, set[str]]
) -> None:
    root = ET.fromstring(render(replace(run, fail_on=fail_on), Format.JUNIT))
    suites = root.findall("testsuite")
    assert [Path(s.get("name")).name for s in suites] == [*NAMES, "missing.keras"]
    assert int(root.get("tests")) == len(NAMES) * len(CATALOGUE) + 1
    assert int(root.get("errors")) == 1
    found = {
        Path(s.get("name")).name: {c.get("name").split()[0] for c in s.iter("testcase")
                                   if c.find("failure") is not None}
        for s in suites[:-1]
    }
    assert {k: v for k, v in found.items() if v} == failing
    assert int(root.get("failures")) == sum(map(len, failing.values()))
    error = suites[-1].find("testcase/error")
    assert error is not None and error.get("message") == "no such file or directory"


def test_junit_keeps_findings_below_the_gate_as_output(run: AuditRun) -> None:
    root = ET.fromstring(render(run, Format.JUNIT))
    case = next(c for c in root.iter("testcase")
                if c.get("classname").endswith("partly_dead.keras")
                and c.get("name").startswith("GA101"))
    assert case.find("failure") is None
    assert case.findtext("system-out", "").startswith("warning partial: ")


def test_markdown_has_a_summary_row_per_file_and_escapes_cells(run: AuditRun) -> None:
    text = render(run, Format.MARKDOWN)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| file | format | errors | warnings | infos | status |"
    statuses = {Path(r.split(" | ")[0][2:]).name: r.split(" | ")[-1].rstrip(" |")
                for r in rows[1:6]}
    assert statuses == {"dead_relu.keras": "fail", "frozen_layer.keras": "pass",
                        "healthy_mlp.keras": "pass", "partly_dead.keras": "pass",
                        "missing.keras": "error"}
    assert "| error | GA102 | `dead` |" in text
    odd = Finding("GA102", Severity.ERROR, "a|b", "line one\nline | two")
    model = ModelReport("m.keras", "keras", "m", 1, 1, 0, 1, 0, (), (), (odd,))
    assert "| error | GA102 | `a\\|b` | line one line \\| two |" in render(
        AuditRun((model,), ()), Format.MARKDOWN)


def _snippet(marker: str) -> str:
    """The YAML block after ``<!-- marker -->`` in the CI page (docs/ci.md)."""
    page = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\n```yaml\n(.*?)```", page, re.S)
    assert match, f"docs/ci.md has no YAML block after <!-- {marker} -->"
    return match.group(1)


def test_the_docs_github_actions_snippet_produces_valid_sarif(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    snippet = _snippet("github-actions-sarif")
    (command,) = [line.split("run: ", 1)[1] for line in snippet.splitlines()
                  if "run: gradaudit audit" in line]
    upload = re.search(r"sarif_file: (\S+)", snippet)
    assert "github/codeql-action/upload-sarif" in snippet and upload
    (tmp_path / "models").mkdir()
    for name in ("dead_relu.keras", "healthy_mlp.keras"):
        shutil.copy(FIXTURES / name, tmp_path / "models" / name)
    monkeypatch.chdir(tmp_path)
    args = shlex.split(command)[1:]
    result = run_cli(*args, "--samples", "32")
    assert result.exit_code == 1  # findings: the upload step runs anyway (if: always())
    document = _validate_sarif((tmp_path / upload.group(1)).read_text())
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in document["runs"][0]["results"]}
    assert uris == {"models/dead_relu.keras"}  # relative to the checkout, as GitHub needs


def test_the_docs_shard_matrix_uses_shard_and_merge() -> None:
    snippet = _snippet("github-actions-shards")
    shards = re.search(r"shard: \[([\d, ]+)\]", snippet)
    assert shards and [int(s) for s in shards.group(1).split(",")] == [1, 2, 3, 4]
    assert "--shard ${{ matrix.shard }}/4" in snippet and "--format json" in snippet
    assert "gradaudit merge shard-*.json" in snippet


def test_pre_commit_hook_runs_gradaudit_on_model_files() -> None:
    text = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    fields = dict(re.findall(r"^\s*-?\s*(\w+): (.+)$", text, re.M))
    assert fields["id"] == "gradaudit" and fields["language"] == "python"
    assert fields["require_serial"] == "true"
    pattern = re.compile(fields["files"])
    assert all(pattern.search(p) for p in ("a.keras", "m/b.h5", "c.hdf5"))
    assert not any(pattern.search(p) for p in ("train.py", "model.keras.py", "notes.h5.txt"))
    entry = shlex.split(fields["entry"])
    assert entry[:2] == ["gradaudit", "audit"]
    result = run_cli(*entry[1:], str(FIXTURES / "healthy_mlp.keras"), "--samples", "8")
    assert (result.exit_code, result.stderr) == (0, "")

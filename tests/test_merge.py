"""--shard K/N over CI runners, then `gradaudit merge` into one report and exit code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, run_cli, run_cli_fresh

NAMES = ["dead_relu.keras", "frozen_layer.keras", "healthy_mlp.keras", "partly_dead.keras",
         "stop_gradient.keras"]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("shards")
    models = root / "models"
    models.mkdir()
    for name in NAMES:
        shutil.copy(FIXTURES / name, models / name)
    (models / "broken.keras").write_bytes(b"PK\x03\x04 truncated")
    common = ["--samples", "32", "--format", "json", "--fail-on", "never", "-q"]
    whole = run_cli("audit", str(models), *common)
    shards = []
    for k in (1, 2, 3):
        out = root / f"shard-{k}.json"
        result = run_cli("audit", str(models), "--shard", f"{k}/3", "--output", str(out), *common)
        shards.append((result.exit_code, out))
    return {"root": root, "whole": whole, "shards": shards}


def _paths(document: dict) -> list[str]:
    return [m["path"] for m in document["models"]] + [e["path"] for e in document["errors"]]


def test_shards_are_disjoint_and_cover_every_file(sharded: dict) -> None:
    parts = [_paths(json.loads(out.read_text())) for _, out in sharded["shards"]]
    everything = sorted(p for part in parts for p in part)
    assert everything == sorted(_paths(json.loads(sharded["whole"].stdout)))
    assert len(everything) == len(set(everything)) == len(NAMES) + 1
    assert sorted(len(part) for part in parts) == [2, 2, 2]
    # The shard that met the broken file exits 2; the others 0 (--fail-on never).
    assert sorted(code for code, _ in sharded["shards"]) == [0, 0, 2]


def test_merge_equals_auditing_everything_on_one_machine(sharded: dict) -> None:
    reports = [str(out) for _, out in reversed(sharded["shards"])]  # any order
    merged = run_cli("merge", *reports, "--format", "json", "--fail-on", "never")
    assert merged.exit_code == sharded["whole"].exit_code == 2
    whole = json.loads(sharded["whole"].stdout)
    assert json.loads(merged.stdout) == {**whole, "models": sorted(
        whole["models"], key=lambda m: m["path"])}
    assert merged.stderr.splitlines()[-1].startswith(
        f"gradaudit: {len(NAMES)} model(s) audited, 1 failed;")


def test_merge_renders_every_format_and_applies_fail_on(sharded: dict) -> None:
    reports = [str(out) for _, out in sharded["shards"]]
    table = run_cli("merge", *reports, "-q")
    assert "Summary:" in table.stdout and "broken.keras" in table.stdout
    assert "Non-trainable parameters:" in table.stdout
    assert "frozen (trainable=False)" in table.stdout  # reasons survive the JSON round trip
    for fmt in ("markdown", "sarif", "junit"):
        assert run_cli("merge", *reports, "-f", fmt, "-q").exit_code == 2


def test_merge_without_errors_follows_fail_on(sharded: dict, tmp_path: Path) -> None:
    document = json.loads(sharded["shards"][0][1].read_text())
    document["errors"] = []
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(document))
    worst = {f["severity"] for m in document["models"] for f in m["findings"]}
    assert run_cli("merge", str(clean), "--fail-on", "never", "-q").exit_code == 0
    expected = 1 if worst & {"error"} else 0
    assert run_cli("merge", str(clean), "-q").exit_code == expected
    assert run_cli("merge", str(clean), "--fail-on", "info", "-q").exit_code == (1 if worst else 0)


@pytest.mark.parametrize(("content", "reason"), [
    (None, "no such file"),
    ("[1, 2]", "not a gradaudit JSON report (no 'gradaudit' key)"),
    ('{"gradaudit": "0.1.0", "models": [{"path": "a"}], "errors": []}',
     "not a gradaudit JSON report (KeyError"),
])
def test_a_bad_report_is_exit_2_with_one_line(tmp_path: Path, content: str | None,
                                              reason: str) -> None:
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    result = run_cli("merge", str(path))
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"gradaudit: error: {path}: {reason}")


def test_merge_does_not_import_tensorflow(sharded: dict) -> None:
    reports = [str(out) for _, out in sharded["shards"]]
    fresh = run_cli_fresh("merge", *reports, "-q")
    assert "EXIT 2" in fresh.stdout and fresh.imported == [], fresh.stdout + fresh.stderr


def test_the_same_shard_given_twice_is_refused_not_counted_twice(sharded: dict) -> None:
    _, first = sharded["shards"][0]
    result = run_cli("merge", str(first), str(first), "-q")
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "is also in" in line and "appear in one report only" in line

"""Golden reports: the table and JSON of every fixture, and a merge of two shards.

Refactoring must not change what users see or script against. The files under
``tests/golden/`` were recorded from a real audit; re-record them only for a
change of behaviour that the commit message names:

    GRADAUDIT_RECORD_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GOLDEN, ROOT, GoldenRun, audit_every_fixture, run_cli

RECORD = os.environ.get("GRADAUDIT_RECORD_GOLDEN") == "1"


def _compare(name: str, text: str) -> None:
    path = GOLDEN / name
    if RECORD:
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}; record with GRADAUDIT_RECORD_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden report"


def test_table_report_is_unchanged(golden_run: GoldenRun) -> None:
    _compare("audit.txt", golden_run.table)


def test_json_report_is_unchanged(golden_run: GoldenRun) -> None:
    _compare("audit.json", golden_run.json_text)


def test_merge_of_two_shards_is_unchanged(golden_run: GoldenRun, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    document = json.loads(golden_run.json_text)
    shards = []
    for index in range(2):
        part: dict[str, Any] = dict(document, models=document["models"][index::2],
                                    errors=document["errors"][index::2])
        shard = tmp_path / f"shard-{index + 1}.json"
        shard.write_text(json.dumps(part), encoding="utf-8")
        shards.append(str(shard))
    monkeypatch.chdir(ROOT)
    for fmt, name in (("json", "merge.json"), ("table", "merge.txt")):
        result = run_cli("merge", *shards, "--format", fmt, "-q")
        assert result.exit_code == 2, result.stderr  # the golden run has refused files
        _compare(name, result.stdout)


def test_the_same_seed_gives_byte_identical_reports(golden_run: GoldenRun,
                                                    tmp_path: Path) -> None:
    """A second audit of every fixture in the same process: nothing may drift."""
    again = audit_every_fixture(tmp_path / "again.json")
    assert again.table == golden_run.table
    assert again.json_text == golden_run.json_text

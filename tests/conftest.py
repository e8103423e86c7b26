"""Shared test helpers: the committed fixture models and one audit of them all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gradaudit.cli import app

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
LOADABLE = sorted(
    p for p in [*FIXTURES.glob("*.keras"), *FIXTURES.glob("*.h5")]
    if not p.name.startswith("lambda_payload")
)


def run_cli(*args: str) -> Any:
    """Invoke the real CLI in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="session")
def audited() -> dict[str, dict[str, Any]]:
    """Every loadable fixture audited once, in one run, as JSON, keyed by file name."""
    result = run_cli("audit", "--format", "json", *map(str, LOADABLE))
    assert result.exit_code == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["errors"] == []
    return {Path(model["path"]).name: model for model in document["models"]}


def findings_at_least(model: dict[str, Any], severity: str) -> set[tuple[str, str, str]]:
    order = {"info": 1, "warning": 2, "error": 3}
    return {
        (f["code"], f["severity"], f["layer"])
        for f in model["findings"]
        if order[f["severity"]] >= order[severity]
    }

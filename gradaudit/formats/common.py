"""Pieces several formats share: per-file status, finding rows, where the inputs came from."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from gradaudit.report.types import (
    AuditRun,
    FailOn,
    Finding,
    ModelReport,
    Severity,
    fails,
)

SUMMARY_HEADERS = ["file", "format", "errors", "warnings", "infos", "status"]
FINDING_HEADERS = ["severity", "code", "layer", "message"]


def gate(run: AuditRun) -> FailOn:
    """The run's --fail-on, or the default when the run does not record one."""
    return run.fail_on if run.fail_on is not None else FailOn.ERROR


def status(model: ModelReport, fail_on: FailOn) -> str:
    """"fail" if the model has a finding at/over ``fail_on``, else "pass"."""
    return "fail" if fails(model.worst, fail_on) else "pass"


def summary_rows(run: AuditRun) -> list[list[Any]]:
    """One row per file: path, format, counts per severity, pass/fail/error."""
    fail_on = gate(run)
    rows: list[list[Any]] = [
        [m.path, m.format, m.count(Severity.ERROR), m.count(Severity.WARNING),
         m.count(Severity.INFO), status(m, fail_on)]
        for m in run.models
    ]
    rows += [[e.path, "-", "-", "-", "-", "error"] for e in run.errors]
    return rows


def finding_rows(findings: Iterable[Finding],
                 layer: Callable[[str], str] = str) -> list[list[str]]:
    """One row per finding under FINDING_HEADERS; ``layer`` dresses the layer name
    (Markdown sets it as code)."""
    return [[str(f.severity), f.code, layer(f.layer), f.message] for f in findings]


def inputs_text(source: dict[str, Any]) -> str:
    """``summary.inputs_source`` in words; empty when the report does not say."""
    if source.get("kind") == "file":
        return f"file {source['path']} ({source['rows']} rows)"
    if source.get("kind") == "arrays":  # passed to gradaudit.audit
        return f"arrays ({source['rows']} rows)"
    if source.get("kind") == "random":
        bounds = source.get("range")
        shape = f"uniform [{bounds[0]:g}, {bounds[1]:g})" if bounds else source["distribution"]
        ids = "".join(f"; {name}: token ids in [0, {vocab})"
                      for name, vocab in source.get("token_ids", {}).items())
        return f"random {shape}, seed {source['seed']}{ids}"
    return ""

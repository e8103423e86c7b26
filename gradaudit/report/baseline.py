"""Baselines: report only findings that are not already recorded.

A baseline is any gradaudit JSON report (``--write-baseline FILE`` writes one).
Like bandit, findings are matched without their message, whose numbers (unit
counts, gradient norms) change with samples and seeds: a finding is the same
when its model path and id (``code:layer``, numbered on a repeat) are the
same. Paths are compared as written in the report, normalised
(``./a/../b.keras`` = ``b.keras``, ``\\`` = ``/``), so run the audit
from the same directory with the same path arguments that wrote the baseline.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace
from pathlib import Path

from gradaudit.errors import AuditError
from gradaudit.report import json_io
from gradaudit.report.types import AuditRun, Finding

Key = tuple[str, str]  # (normalised model path, finding id)


def finding_key(model_path: str, finding: Finding) -> Key:
    """What makes a finding "the same" across runs: not its message, whose numbers vary."""
    return (normalise_path(model_path), finding.id)


def read_keys(path: Path) -> frozenset[Key]:
    """The finding keys recorded in a JSON report; AuditError if it is not one."""
    try:
        recorded = json_io.read_file(path)
    except AuditError as exc:
        raise AuditError(f"--baseline {exc}") from None
    return frozenset(finding_key(m.path, f) for m in recorded.models for f in m.findings)


def apply(run: AuditRun, known: frozenset[Key]) -> tuple[AuditRun, int]:
    """The run without findings in ``known``, and how many were suppressed."""
    suppressed = 0
    models = []
    for model in run.models:
        fresh = [f for f in model.findings if finding_key(model.path, f) not in known]
        suppressed += len(model.findings) - len(fresh)
        models.append(model.keeping(fresh))
    return replace(run, models=tuple(models)), suppressed


def normalise_path(path: str) -> str:
    """A model path as reports compare it: ``./a/../b.keras`` = ``b.keras``, ``\\`` = ``/``."""
    return posixpath.normpath(path.replace("\\", "/"))

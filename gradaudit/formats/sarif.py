"""SARIF 2.1.0 for GitHub code scanning and other SARIF viewers.

One result per finding, its rule taken from the catalogue (name, title,
explanation, fix, default level); the location is the model file, with the
layer as a logical location. A model file has no source lines: the region is
line 1, because GitHub code scanning requires ``region.startLine``. Severity
maps like bandit's: error → error, warning → warning, info → note. Files that
could not be audited become error notifications of a failed invocation.
``partialFingerprints`` hash (code, layer), so alerts stay the same alert when
the model is saved again or messages change. A finding explained by another
(``caused_by``) has a ``relatedLocations`` entry naming its root cause's layer.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from gradaudit import __version__
from gradaudit.report.catalogue import CATALOGUE
from gradaudit.report.types import AuditRun, Finding, ModelReport, Severity

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
RULE_INDEX = {rule.code: index for index, rule in enumerate(CATALOGUE)}


def render(run: AuditRun) -> str:
    document = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": _driver()},
            "invocations": [_invocation(run)],
            "results": [_result(m, f) for m in run.models for f in m.findings],
        }],
    }
    return json.dumps(document, indent=2) + "\n"


def _driver() -> dict[str, Any]:
    return {
        "name": "gradaudit",
        "version": __version__,
        "informationUri": "https://pypi.org/project/gradaudit/",
        "rules": [
            {
                "id": rule.code,
                "name": rule.name,
                "shortDescription": {"text": rule.title},
                "fullDescription": {"text": rule.explanation},
                "help": {"text": f"{rule.explanation}\n\nFix: {rule.fix}"},
                "defaultConfiguration": {"level": LEVELS[rule.severity]},
            }
            for rule in CATALOGUE
        ],
    }


def _invocation(run: AuditRun) -> dict[str, Any]:
    return {
        "executionSuccessful": not run.errors,
        "toolExecutionNotifications": [
            {"level": "error", "message": {"text": f"{error.path}: {error.error}"},
             "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(error.path)}}}]}
            for error in run.errors
        ],
    }


def _result(model: ModelReport, finding: Finding) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "level": LEVELS[finding.severity],
        "message": {"text": f"{finding.layer}: {finding.message}"},
        "locations": [{
            "physicalLocation": {"artifactLocation": {"uri": _uri(model.path)},
                                 "region": {"startLine": 1}},
            "logicalLocations": [{"name": finding.layer, "kind": "member"}],
        }],
        "partialFingerprints": {"primaryLocationLineHash": _fingerprint(finding)},
    }
    if finding.caused_by is not None:  # a consequence points at its root cause
        result["relatedLocations"] = [{
            "id": 1,
            "message": {"text": f"root cause: {finding.caused_by}"},
            "physicalLocation": {"artifactLocation": {"uri": _uri(model.path)},
                                 "region": {"startLine": 1}},
            "logicalLocations": [{"name": finding.caused_by, "kind": "member"}],
        }]
    if finding.code in RULE_INDEX:
        result["ruleIndex"] = RULE_INDEX[finding.code]
    return result


def _uri(path: str) -> str:
    """A relative URI with forward slashes (as GitHub expects), or a file: URI."""
    pure = PureWindowsPath(path) if "\\" in path else PurePosixPath(path)
    return pure.as_uri() if pure.is_absolute() else quote(pure.as_posix())


def _fingerprint(finding: Finding) -> str:
    return hashlib.sha256(f"{finding.code}:{finding.layer}".encode()).hexdigest()[:16]

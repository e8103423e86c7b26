"""``gradaudit merge``: per-shard JSON reports → one run (no TensorFlow needed).

Shards of ``--shard K/N`` each write a JSON report; merging reads them back
into report objects, so every format, the summary and the exit code are the
same as if one machine had audited every file. Models and errors are sorted by
path (shards interleave the file list); an error reported by several shards
(a directory with no model files is seen by all of them) is kept once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradaudit.errors import AuditError
from gradaudit.report.types import (
    AuditRun,
    Finding,
    InputRow,
    LayerRow,
    LoadError,
    ModelReport,
    Severity,
)

LAYER_FIELDS = tuple(name for name in LayerRow.__dataclass_fields__
                     if name != "non_trainable_reason")


def merge(paths: Sequence[Path]) -> AuditRun:
    """Read every JSON report and combine them; AuditError naming a bad file."""
    models: list[ModelReport] = []
    errors: dict[tuple[str, str], LoadError] = {}
    for path in paths:
        document = _read(path)
        try:
            models += [_model(entry) for entry in document["models"]]
            for entry in document["errors"]:
                errors.setdefault((entry["path"], entry["error"]),
                                  LoadError(entry["path"], entry["error"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditError(f"{path}: not a gradaudit JSON report ({type(exc).__name__}: "
                             f"{exc})") from None
    return AuditRun(models=tuple(sorted(models, key=lambda m: m.path)),
                    errors=tuple(sorted(errors.values(), key=lambda e: e.path)))


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuditError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(document, dict) or "gradaudit" not in document:
        raise AuditError(f"{path}: not a gradaudit JSON report (no 'gradaudit' key)")
    return document


def _model(entry: dict[str, Any]) -> ModelReport:
    summary = entry["summary"]
    return ModelReport(
        path=entry["path"],
        format=entry["format"],
        model_name=entry["model"],
        params_total=summary["params"]["total"],
        params_trainable=summary["params"]["trainable"],
        params_non_trainable=summary["params"]["non_trainable"],
        samples=summary["samples"],
        seed=summary["seed"],
        inputs=tuple(InputRow(i["name"], tuple(i["shape"]), i["dtype"])
                     for i in summary["inputs"]),
        layers=tuple(_layer(row) for row in entry["layers"]),
        findings=tuple(
            Finding(code=f["code"], severity=Severity.parse(f["severity"]), layer=f["layer"],
                    message=f["message"], metrics=f.get("metrics", {}))
            for f in entry["findings"]
        ),
        unsafe=entry.get("unsafe", False),
        inputs_source=summary.get("inputs_source", {}),
    )


def _layer(row: dict[str, Any]) -> LayerRow:
    return LayerRow(**{k: row[k] for k in LAYER_FIELDS},
                    non_trainable_reason=row.get("non_trainable_reason"))

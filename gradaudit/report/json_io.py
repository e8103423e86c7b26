"""The JSON report, written and read back in one place.

The document is what users script against (see README) and what ``gradaudit
merge`` and ``--baseline`` read, so writing and reading live side by side:
a field added to one cannot be forgotten by the other. Reading gives back
every field that was written (``read(write(run)) == run``, up to
``AuditRun.fail_on``, which the document does not carry).

Strict JSON has no NaN/Inf: non-finite floats are written as the strings
Python spells them (``"nan"``, ``"inf"``, ``"-inf"``) and read back as
floats where a number belongs: the float fields of a layer row, the
top-level values of a finding's ``metrics`` and the learning rate and loss
weights of ``summary.training``.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, fields, replace
from pathlib import Path
from typing import Any, get_args, get_type_hints

from gradaudit import __version__
from gradaudit.errors import AuditError
from gradaudit.report.types import (
    PROBE_CHECKS,
    AuditRun,
    Cause,
    Finding,
    InputRow,
    LayerRow,
    LoadError,
    ModelReport,
    Severity,
    ShardInfo,
    TrainingSummary,
    finding_ids,
)

_NON_FINITE = frozenset(str(value) for value in (math.nan, math.inf, -math.inf))
"""How ``write`` spells non-finite floats."""
_FLOAT_FIELDS = frozenset(name for name, hint in get_type_hints(LayerRow).items()
                          if float in (get_args(hint) or (hint,)))
_OPTIONAL_LAYER_FIELDS = frozenset(f.name for f in fields(LayerRow) if f.default is not MISSING)
"""Fields with a default: missing from reports written before they existed."""


def write(run: AuditRun) -> str:
    """The run as ``gradaudit audit --format json`` prints it."""
    document = {
        "gradaudit": __version__,
        "shard": None if run.shard is None else asdict(run.shard),
        "models": [_model_entry(model) for model in run.models],
        "errors": [{"path": e.path, "error": e.error} for e in run.errors],
    }
    return dumps(document)


def dumps(document: dict[str, Any]) -> str:
    """A JSON document as gradaudit prints it: indented, non-finite floats as strings."""
    return json.dumps(_finite(document), indent=2) + "\n"


def summary(model: ModelReport) -> dict[str, Any]:
    """The ``summary`` object of a model's entry: params, layers, samples, counts."""
    return {
        "params": {
            "total": model.params_total,
            "trainable": model.params_trainable,
            "non_trainable": model.params_non_trainable,
            "measured": model.params_measured,
        },
        "layers": len(model.layers),
        "samples": model.samples,
        "batch_size": model.batch_size,
        "seed": model.seed,
        "objective": model.objective,
        **({} if model.objectives is None else {"objectives": dict(model.objectives)}),
        "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype}
                   for i in model.inputs],
        "findings": {str(s): model.count(s) for s in reversed(Severity)},
        "inputs_source": model.inputs_source,
        "imports": list(model.imports),
        "checks_run": list(model.checks_run),
        "training": None if model.training is None else asdict(model.training),
    }


def read(text: str) -> AuditRun:
    """The run a JSON report describes; AuditError saying why it is not one."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AuditError(f"not a JSON file ({exc})") from None
    if not isinstance(document, dict) or "gradaudit" not in document:
        raise AuditError("not a gradaudit JSON report (no 'gradaudit' key)")
    try:
        return AuditRun(
            models=tuple(_model(entry) for entry in document["models"]),
            errors=tuple(LoadError(e["path"], e["error"]) for e in document["errors"]),
            shard=_shard(document.get("shard")),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise AuditError(f"not a gradaudit JSON report ({type(exc).__name__}: {exc})") from None


def read_file(path: Path) -> AuditRun:
    """``read`` of a file; the AuditError names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AuditError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"{path}: not a JSON file ({exc})") from None
    try:
        return read(text)
    except AuditError as exc:
        raise AuditError(f"{path}: {exc}") from None


def _model_entry(model: ModelReport) -> dict[str, Any]:
    return {
        "path": model.path,
        "format": model.format,
        "model": model.model_name,
        "unsafe": model.unsafe,
        "summary": summary(model),
        "layers": [{f.name: getattr(row, f.name) for f in fields(row)} for row in model.layers],
        "findings": [finding_entry(f) for f in model.findings],
        "diagnosis": [{"layer": c.layer, "codes": list(c.codes), "explains": list(c.explains),
                       "summary": c.summary, "fix": c.fix} for c in model.diagnosis],
        "notes": list(model.notes),
    }


def finding_entry(finding: Finding) -> dict[str, Any]:
    """A finding as the report writes it (``gradaudit diff`` writes the same)."""
    return {
        "id": finding.id,
        "code": finding.code,
        "severity": str(finding.severity),
        "layer": finding.layer,
        "message": finding.message,
        "metrics": finding.metrics,
        "caused_by": finding.caused_by,
    }


def _finite(value: Any) -> Any:
    """Non-finite floats as strings, anywhere in the document."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _number(value: Any) -> Any:
    """A non-finite float that ``write`` spelled as a string, as the float again."""
    return float(value) if isinstance(value, str) and value in _NON_FINITE else value


def _model(entry: dict[str, Any]) -> ModelReport:
    summary = entry["summary"]
    return ModelReport(
        path=entry["path"],
        format=entry["format"],
        model_name=entry["model"],
        params_total=summary["params"]["total"],
        params_trainable=summary["params"]["trainable"],
        params_non_trainable=summary["params"]["non_trainable"],
        params_measured=summary["params"].get("measured"),
        samples=summary["samples"],
        batch_size=summary.get("batch_size"),
        seed=summary["seed"],
        inputs=tuple(InputRow(i["name"], tuple(i["shape"]), i["dtype"])
                     for i in summary["inputs"]),
        layers=tuple(_layer(row) for row in entry["layers"]),
        findings=_findings(entry["findings"]),
        diagnosis=tuple(Cause(c["layer"], tuple(c["codes"]), tuple(c["explains"]),
                              c["summary"], c["fix"]) for c in entry.get("diagnosis", ())),
        unsafe=entry.get("unsafe", False),
        inputs_source=summary.get("inputs_source", {}),
        notes=tuple(entry.get("notes", ())),
        imports=tuple(summary.get("imports", ())),
        training=_training(summary.get("training")),
        checks_run=tuple(summary.get("checks_run", PROBE_CHECKS)),
        objective=summary.get("objective", "projection"),
        objectives=summary.get("objectives"),
    )


def _shard(entry: dict[str, Any] | None) -> ShardInfo | None:
    """``"shard"``: null (or absent, before it existed) when the run audited every file."""
    if entry is None:
        return None
    return ShardInfo(index=entry["index"], total=entry["total"],
                     source=dict(entry.get("source", {})), system=entry.get("system"))


def _training(entry: dict[str, Any] | None) -> TrainingSummary | None:
    if entry is None:
        return None
    weights = entry.get("loss_weights")
    return TrainingSummary(
        optimizer=entry["optimizer"], iterations=entry["iterations"],
        learning_rate=_number(entry["learning_rate"]), loss=entry.get("loss"),
        from_logits=entry.get("from_logits"),
        loss_weights=None if weights is None else {k: _number(v) for k, v in weights.items()})


def _layer(row: dict[str, Any]) -> LayerRow:
    values: dict[str, Any] = {}
    for f in fields(LayerRow):
        value = row.get(f.name) if f.name in _OPTIONAL_LAYER_FIELDS else row[f.name]
        values[f.name] = _number(value) if f.name in _FLOAT_FIELDS else value
    return LayerRow(**values)


def _findings(entries: list[dict[str, Any]]) -> tuple[Finding, ...]:
    """The findings, with the ids a report written before ids existed would have had."""
    findings = [Finding(code=e["code"], severity=Severity.parse(e["severity"]),
                        layer=e["layer"], message=e["message"],
                        metrics={k: _number(v) for k, v in e.get("metrics", {}).items()},
                        caused_by=e.get("caused_by")) for e in entries]
    ids = finding_ids(findings)
    return tuple(replace(f, id=e.get("id") or given)
                 for f, e, given in zip(findings, entries, ids, strict=True))

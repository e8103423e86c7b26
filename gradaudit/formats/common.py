"""Pieces several formats share: per-file status, finding rows, where the inputs came from,
what the training state says."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gradaudit.report.types import (
    AuditRun,
    Cause,
    FailOn,
    Finding,
    ModelReport,
    Severity,
    ShardInfo,
    TrainingSummary,
    consequence_text,
    fails,
)

SUMMARY_HEADERS = ["file", "format", "errors", "warnings", "infos", "status"]
FINDING_HEADERS = ["severity", "code", "layer", "message"]
DIAGNOSIS_HEADERS = ["layer", "root cause", "what it explains", "fix"]
TRAINING_HEADERS = ["layer", "optimizer steps", "units", "stalled units", "stalled %",
                    "steps since gradient (est.)", "gradient RMS (training)"]
NO_PROBE = "no probe (--no-probe): only the checks that read the file ran"


def gate(run: AuditRun) -> FailOn:
    """The run's --fail-on, or the default when the run does not record one."""
    return run.fail_on if run.fail_on is not None else FailOn.ERROR


def shard_text(shard: ShardInfo) -> str:
    """``shard 2 of 4 (from CI_NODE_INDEX=2, CI_NODE_TOTAL=4, GitLab)``: the slice a run
    audited, for the formats a person reads."""
    source = ", ".join(f"{name}={value}" for name, value in shard.source.items())
    return f"shard {shard.index} of {shard.total}" + (
        f" (from {source}, {shard.system})" if source else "")


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


def finding_rows(findings: Iterable[Finding], layer: Callable[[str], str] = str,
                 folded: Sequence[Cause] = ()) -> list[list[str]]:
    """One row per finding under FINDING_HEADERS; ``layer`` dresses the layer name
    (Markdown sets it as code). The consequences each of the ``folded`` causes explains
    are one line under its first root finding (``+ 17 layers get no gradient …``)."""
    findings = list(findings)
    hidden = {i for cause in folded for i in cause.explains}
    by_id = {f.id: f for f in findings}
    pending = {cause.layer: cause for cause in folded if cause.explains}
    rows = []
    for f in findings:
        if f.id in hidden:
            continue
        rows.append([str(f.severity), f.code, layer(f.layer), f.message])
        cause = pending.pop(f.layer, None) if f.caused_by is None else None
        if cause is not None:
            effects = [by_id[i] for i in cause.explains if i in by_id]
            rows.append(["", "", layer(f.layer), f"+ {consequence_text(effects)}"])
    return rows


def model_finding_rows(model: ModelReport, verbose: bool,
                       layer: Callable[[str], str] = str) -> list[list[str]]:
    """The Findings table of a model: every finding with ``verbose`` (``--verbose``), else
    each root cause's consequences folded into one line."""
    return finding_rows(model.findings, layer, () if verbose else model.diagnosis)


def diagnosis_rows(model: ModelReport, layer: Callable[[str], str] = str) -> list[list[str]]:
    """One row per root cause under DIAGNOSIS_HEADERS, most important first."""
    return [[layer(c.layer), ", ".join(c.codes), c.summary, c.fix] for c in model.diagnosis]


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


def training_text(training: TrainingSummary) -> str:
    """``summary.training`` in words: optimizer, steps, learning rate, loss per output."""
    parts = [training.optimizer or "optimizer unknown"]
    if training.iterations is not None:
        parts.append(f"{training.iterations:,} steps")
    if training.learning_rate is not None:
        parts.append(f"learning rate {training.learning_rate:g}")
    for output, loss in (training.loss or {}).items():
        logits = " from logits" if (training.from_logits or {}).get(output) else ""
        weight = (training.loss_weights or {}).get(output, 1.0)
        parts.append(f"{output}: {loss or 'no loss'}{logits}"
                     + (f" × {weight:g}" if weight != 1 else ""))
    return ", ".join(parts)


def training_rows(model: ModelReport) -> list[list[Any]]:
    """The training history, one row per layer with optimizer state, under TRAINING_HEADERS."""
    steps = model.training.iterations if model.training is not None else None
    return [
        [row.name, "" if steps is None else f"{steps:,}", row.train_units, row.stalled_units,
         "" if row.stalled_fraction is None else f"{row.stalled_fraction:.0%}",
         "" if row.steps_since_gradient is None else f"{row.steps_since_gradient:.0f}",
         "" if row.train_grad_rms is None else f"{row.train_grad_rms:.3g}"]
        for row in model.layers
        if row.train_units is not None
    ]

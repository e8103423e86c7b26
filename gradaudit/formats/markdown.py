"""Markdown for pull-request comments and GitHub's step summary ($GITHUB_STEP_SUMMARY).

A summary table of every file, then the findings of each model that has any.
Cells are escaped so that a layer name or message cannot break the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from gradaudit.formats.common import (
    DIAGNOSIS_HEADERS,
    FINDING_HEADERS,
    NO_PROBE,
    SUMMARY_HEADERS,
    diagnosis_rows,
    gate,
    inputs_text,
    model_finding_rows,
    shard_text,
    summary_rows,
    training_text,
)
from gradaudit.report.types import AuditRun, ModelReport


def render(run: AuditRun) -> str:
    lines = ["# gradaudit report", "",
             f"{len(run.models)} model(s) audited, {len(run.errors)} failed; "
             f"status judged at `--fail-on {gate(run).value}`.", ""]
    if run.shard is not None:
        lines += [f"This report is {_cell(shard_text(run.shard))}.", ""]
    lines += table_lines(SUMMARY_HEADERS, summary_rows(run))
    for model in run.models:
        lines += ["", *_model_section(model, run.verbose)]
    if run.errors:
        lines += ["", "## Could not audit", ""]
        lines += [f"- `{_cell(e.path)}`: {_cell(e.error)}" for e in run.errors]
    return "\n".join(lines) + "\n"


def _model_section(model: ModelReport, verbose: bool = False) -> list[str]:
    lines = [f"## `{_cell(model.path)}` ({model.format})", ""]
    if model.unsafe:
        lines += ["**Loaded with `--unsafe`: code from the file may have run.**", ""]
    source = inputs_text(model.inputs_source)
    probe = (f"{model.samples} probe samples" + (f" ({source})" if source else "")
             if model.probed else NO_PROBE)
    lines += [f"{probe}; {model.params_total:,} parameters, {model.params_trainable:,} "
              "trainable.", ""]
    if model.training is not None:
        lines += [f"Training: {_cell(training_text(model.training))}.", ""]
    if not model.findings:
        return [*lines, "No findings."]
    if model.diagnosis:
        lines += ["### Diagnosis", "",
                  *table_lines(DIAGNOSIS_HEADERS, diagnosis_rows(model, _code)),
                  "", "### Findings", ""]
    return lines + table_lines(FINDING_HEADERS, model_finding_rows(model, verbose, _code))


def _code(name: str) -> str:
    return f"`{name}`"


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")

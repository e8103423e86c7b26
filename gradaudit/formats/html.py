"""One self-contained HTML page: per model the findings, the layers, the training
history and the gradient-flow plot (embedded as a base64 PNG, so the file travels alone)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape

from tabulate import tabulate

from gradaudit import __version__
from gradaudit.formats import plot
from gradaudit.formats.common import (
    DIAGNOSIS_HEADERS,
    FINDING_HEADERS,
    NO_PROBE,
    SUMMARY_HEADERS,
    TRAINING_HEADERS,
    diagnosis_rows,
    inputs_text,
    model_finding_rows,
    shard_text,
    summary_rows,
    training_rows,
    training_text,
)
from gradaudit.report.types import AuditRun, ModelReport

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; }
.error { color: #b00; }
"""

LAYER_HEADERS = ["layer", "type", "activation", "params", "units", "dead %", "saturated %",
                 "gradient RMS", "trainable", "findings"]


def render(run: AuditRun) -> str:
    body = [f"<h1>gradaudit {escape(__version__)} report</h1>"]
    if run.shard is not None:
        body.append(f"<p>This report is {escape(shard_text(run.shard))}.</p>")
    if len(run.models) + len(run.errors) > 1:
        body += ["<h2>Summary</h2>", _table(summary_rows(run), SUMMARY_HEADERS)]
    body += [_model_section(model, run.verbose) for model in run.models]
    body += [f'<section><h2>{escape(e.path)}</h2><p class="error">ERROR: {escape(e.error)}'
             "</p></section>" for e in run.errors]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>gradaudit report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _model_section(model: ModelReport, verbose: bool = False) -> str:
    inputs = ", ".join(f"{i.name} {list(i.shape)} {i.dtype}" for i in model.inputs)
    facts = [f"params: {model.params_total:,} total, {model.params_trainable:,} trainable, "
             f"{model.params_non_trainable:,} non-trainable"]
    facts += ([f"inputs: {inputs}", f"samples: {model.samples} (seed {model.seed})"]
              if model.probed else [NO_PROBE])
    if model.inputs_source:
        facts.append(f"inputs from: {inputs_text(model.inputs_source)}")
    if model.training is not None:
        facts.append(f"training: {training_text(model.training)}")
    facts += [f"note: {note}" for note in model.notes]
    if model.unsafe:
        facts.append("UNSAFE: loaded with --unsafe, code from the file may have run")
    findings = model_finding_rows(model, verbose)
    parts = [
        f"<section>\n<h2>{escape(model.path)} ({escape(model.format)})</h2>",
        "<ul>" + "".join(f"<li>{escape(fact)}</li>" for fact in facts) + "</ul>",
    ]
    if model.diagnosis:
        parts += ["<h3>Diagnosis</h3>", _table(diagnosis_rows(model), DIAGNOSIS_HEADERS)]
    parts += [
        "<h3>Findings</h3>",
        _table(findings, FINDING_HEADERS) if findings else "<p>No findings.</p>",
        "<h3>Gradient flow</h3>",
        _picture(model),
        "<h3>Layers</h3>",
        _table(_layer_rows(model), LAYER_HEADERS),
    ]
    history = training_rows(model)
    if history:
        parts += ["<h3>Training history</h3>", _table(history, TRAINING_HEADERS)]
    parts.append("</section>")
    return "\n".join(parts)


def _picture(model: ModelReport) -> str:
    """The gradient-flow plot as an embedded PNG; without matplotlib, how to add it (the
    rest of the page needs none)."""
    if not plot.available():
        return (f"<p>No picture: matplotlib is not installed. To add it: "
                f"{escape(plot.INSTALL_HINT)}.</p>")
    image = base64.b64encode(plot.png([model])).decode("ascii")
    return f'<img alt="gradient flow of {escape(model.path)}" src="data:image/png;base64,{image}">'


def _layer_rows(model: ModelReport) -> list[list[object]]:
    codes: dict[str, list[str]] = {}
    for finding in model.findings:
        codes.setdefault(finding.layer, []).append(finding.code)
    return [
        [row.name, row.type, row.activation or "", row.params,
         "" if row.units is None else row.units, _percent(row.dead_fraction),
         _percent(row.saturated_fraction),
         "" if row.grad_rms is None else f"{row.grad_rms:.3g}",
         "yes" if row.trainable else "no", " ".join(codes.get(row.name, []))]
        for row in model.layers
    ]


def _percent(fraction: float | None) -> str:
    return "" if fraction is None else f"{fraction:.0%}"


def _table(rows: Sequence[Sequence[object]], headers: list[str]) -> str:
    """An HTML table; tabulate escapes every cell."""
    return str(tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True))

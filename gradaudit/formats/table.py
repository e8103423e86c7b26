"""The human report: a header, three tables (four with a training history) and the findings
per model; a summary for batches."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from gradaudit.formats.common import (
    FINDING_HEADERS,
    NO_PROBE,
    SUMMARY_HEADERS,
    TRAINING_HEADERS,
    diagnosis_rows,
    inputs_text,
    model_finding_rows,
    summary_rows,
    training_rows,
    training_text,
)
from gradaudit.report.types import AuditRun, Finding, LayerRow, ModelReport

UNSAFE_BANNER = "  [UNSAFE: loaded with --unsafe, code from the file may have run]"
MOVING_STATISTICS = "non-trainable weights: moving_mean, moving_variance"
"""The reason a normalization layer (BatchNormalization, Keras 3 or 2) is listed."""
MIN_GROUP = 2
"""Routine rows of one layer type from this many on are one row."""
DISCONNECTION_CODES = {"GA201": "no gradient", "GA202": "zero gradient", "GA211": "no gradient"}


def render(run: AuditRun) -> str:
    """The models' blocks and, for several paths, a summary in which a path that could
    not be audited has status "error". Its reason is not repeated here: the CLI prints
    it on stderr, once (and JSON carries it for scripts)."""
    blocks = [_model_block(model, run.verbose) for model in run.models]
    if len(run.models) + len(run.errors) > 1:
        blocks.append("Summary:\n" + tabulate(summary_rows(run), headers=SUMMARY_HEADERS))
    return "\n\n".join(blocks) + "\n" if blocks else ""


def _model_block(report: ModelReport, verbose: bool = False) -> str:
    inputs = ", ".join(f"{i.name} {list(i.shape)} {i.dtype}" for i in report.inputs)
    probe = (f"inputs: {inputs} | samples: {report.samples} (seed {report.seed})"
             if report.probed else NO_PROBE)
    lines = [
        f"{report.path} ({report.format})"
        + (UNSAFE_BANNER if report.unsafe else ""),
        f"params: {report.params_total:,} total, {report.params_trainable:,} trainable, "
        f"{report.params_non_trainable:,} non-trainable | {probe}",
    ]
    if report.inputs_source:
        lines.append(f"inputs from: {inputs_text(report.inputs_source)}")
    if report.probed:
        lines.append(f"objective: {_objective_text(report)}")
    if report.training is not None:
        lines.append(f"training: {training_text(report.training)}")
    lines += [f"note: {note}" for note in report.notes]
    if report.diagnosis:
        lines += ["", "Diagnosis (root causes, most important first):"]
        lines += [f"  {n}. {layer} [{codes}]: {summary}. Fix: {fix}."
                  for n, (layer, codes, summary, fix) in enumerate(diagnosis_rows(report), 1)]
    # The BN column only where the BN statistics show dead units (GA103's figures): a
    # healthy model's table stays as it was; --no-probe shows the section once they judged.
    batchnorm = any(row.bn_dead_units for row in report.layers)
    if report.probed or any(row.bn_dead_units is not None for row in report.layers):
        lines += _section("Dead activations", _dead_rows(report, batchnorm),
                          ["layer", "activation", "units", "dead units", "dead %", "note",
                           *(["BN-dead %"] if batchnorm else [])],
                          "no ReLU-family layer has dead units"
                          if any(row.dead_units is not None or row.bn_dead_units is not None
                                 for row in report.layers)
                          else "no ReLU-family layer to judge")
    if report.probed:
        lines += _section("Non-trainable parameters", _non_trainable_rows(report),
                          ["layer", "params", "why"], "every parameter is trainable")
        lines += _section("Disconnected paths", _disconnected_rows(report),
                          ["layer / input", "variables", "gradient", "cut at / cause"],
                          _connected_text(report))
    history = training_rows(report)
    if history:
        lines += _section("Training history", history, TRAINING_HEADERS, "")
    lines += _section("Findings", model_finding_rows(report, verbose), FINDING_HEADERS,
                      "no findings")
    return "\n".join(lines)


def _objective_text(report: ModelReport) -> str:
    """``compiled loss (binary_crossentropy)``, per output where they differ, or
    ``random projection``."""
    if report.objective != "loss":
        return "random projection"
    losses = report.training.loss if report.training is not None else None
    kinds = report.objectives or dict.fromkeys(losses or {}, "loss")
    named = {output: (losses or {}).get(output) or "loss" if kind == "loss"
             else "random projection" for output, kind in kinds.items()}
    if len(set(named.values())) == 1:
        return f"compiled loss ({next(iter(named.values()))})" if named else "compiled loss"
    return "compiled loss (" + "; ".join(f"{o}: {n}" for o, n in named.items()) + ")"


def _section(title: str, rows: Sequence[Sequence[object]], headers: list[str],
             empty: str) -> list[str]:
    if not rows:
        return ["", f"{title}: none ({empty})."]
    return ["", f"{title}:", tabulate(rows, headers=headers, tablefmt="simple")]


def _dead_rows(report: ModelReport, batchnorm: bool) -> list[list[object]]:
    """Layers the probe measured dead units in; with ``batchnorm``, also those the BN
    statistics show dead (GA103), in a last column: ``6 (38%)``."""
    return [
        [row.name, row.activation, row.units, row.dead_units,
         "" if row.dead_fraction is None or row.dead_units is None
         else f"{row.dead_fraction:.0%}", "" if row.trainable else "frozen: not judged",
         *([] if not batchnorm else [_bn_dead(row)])]
        for row in report.layers
        if row.dead_units or (batchnorm and row.bn_dead_units)
    ]


def _bn_dead(row: LayerRow) -> str:
    if row.bn_dead_units is None or row.bn_dead_fraction is None:
        return ""
    return f"{row.bn_dead_units} ({row.bn_dead_fraction:.0%})"


def _non_trainable_rows(report: ModelReport) -> list[list[object]]:
    """One row per layer with non-trainable parameters, except routine moving statistics:
    a ResNet's or DenseNet's hundred BatchNormalization layers are one row per layer type,
    after the rows that may need a look (a frozen layer, other non-trainable weights)."""
    listed = [row for row in report.layers if row.non_trainable_reason]
    routine: dict[str, list[LayerRow]] = {}
    for row in filter(_routine, listed):
        routine.setdefault(row.type, []).append(row)
    groups = {kind: rows for kind, rows in routine.items() if len(rows) >= MIN_GROUP}
    table: list[list[object]] = [
        [row.name, f"{row.non_trainable_params:,}", row.non_trainable_reason]
        for row in listed
        if not (_routine(row) and row.type in groups)
    ]
    table += [[f"{len(rows)} {kind} layers",
               f"{sum(row.non_trainable_params for row in rows):,}", MOVING_STATISTICS]
              for kind, rows in groups.items()]
    return table


def _routine(row: LayerRow) -> bool:
    """A trainable layer whose only non-trainable weights are moving statistics."""
    return row.trainable and row.non_trainable_reason == MOVING_STATISTICS


def _connected_text(report: ModelReport) -> str:
    """What no disconnected path means: every variable gets a gradient only where the
    probe measured every one (a report read from JSON older than ``params.measured``
    does not say so)."""
    measured = report.params_measured
    if measured == report.params_trainable:
        return "every trainable variable and input gets a gradient"
    if measured is None:
        return "no cut path found; the report does not say which variables were measured"
    return (f"found among the {measured:,} of {report.params_trainable:,} trainable "
            "parameters whose gradient the probe measured")


def _disconnected_rows(report: ModelReport) -> list[list[object]]:
    return [
        [f.layer, ", ".join(f.metrics.get("variables", [])) or "-",
         DISCONNECTION_CODES[f.code], _cause(f)]
        for f in report.findings
        if f.code in DISCONNECTION_CODES
    ]


def _cause(finding: Finding) -> str:
    if "cut_at" in finding.metrics:
        return str(finding.metrics["cut_at"])
    if finding.metrics.get("underflow"):
        return "underflow (vanishing, GA204)"
    dead = finding.metrics.get("dead_layers")
    return f"dead layer: {', '.join(dead)}" if dead else "-"

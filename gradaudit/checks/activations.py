"""GA101, GA102, GA111: units whose derivative is zero where the model is used.

Frozen layers (and layers inside a frozen model) are not judged: training
cannot revive their units, and a frozen pre-trained base is expected to keep
whatever dead channels it has. Their figures still appear in the report.
"""

from __future__ import annotations

from gradaudit.options import Thresholds
from gradaudit.probe.evidence import Evidence
from gradaudit.report.catalogue import finding
from gradaudit.report.types import Finding


def check(evidence: Evidence, thresholds: Thresholds) -> list[Finding]:
    findings = []
    samples = evidence.probe.samples
    for layer in evidence.layers:
        units = layer.units
        if units is None or layer.info.frozen_by:
            continue
        name, activation = layer.info.name, layer.info.activation
        op = {"op": layer.info.op} if layer.info.op else {}  # judged inside a custom call
        if layer.dead_units is not None and layer.dead_fraction is not None:
            dead, fraction = layer.dead_units, layer.dead_fraction
            metrics = dict(activation=activation, units=units.units, dead_units=dead,
                           dead_fraction=round(fraction, 4), samples=samples, **op)
            if layer.fully_dead:
                findings.append(finding(
                    "GA102", name,
                    f"all {units.units} units of this {activation} layer are inactive on "
                    f"every one of {samples} probe samples: no gradient passes it",
                    **metrics))
            elif fraction >= thresholds.dead_warn:
                findings.append(finding(
                    "GA101", name,
                    f"{dead} of {units.units} {activation} units ({fraction:.0%}) never "
                    f"activate on {samples} probe samples",
                    **metrics))
        elif layer.saturated_units is not None and layer.saturated_fraction is not None:
            saturated, fraction = layer.saturated_units, layer.saturated_fraction
            if fraction >= thresholds.saturation_units:
                findings.append(finding(
                    "GA111", name,
                    f"{saturated} of {units.units} {activation} units ({fraction:.0%}) "
                    f"are within {thresholds.saturation_eps:g} of their bounds on "
                    f"≥{thresholds.saturation_samples:.0%} of samples; their derivative "
                    "is close to zero",
                    activation=activation, units=units.units, saturated_units=saturated,
                    saturated_fraction=round(fraction, 4), samples=samples, **op))
    return findings

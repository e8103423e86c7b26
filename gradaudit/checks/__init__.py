"""Checks turn per-layer evidence into findings, one module per family."""

from __future__ import annotations

from collections.abc import Callable

from gradaudit.checks import activations, gradients, outputs, parameters
from gradaudit.options import Thresholds
from gradaudit.probe.evidence import Evidence
from gradaudit.report.types import Finding

Check = Callable[[Evidence, Thresholds], list[Finding]]

FAMILIES: tuple[Check, ...] = (
    activations.check, gradients.check, outputs.check, parameters.check)


def run_checks(evidence: Evidence, thresholds: Thresholds) -> list[Finding]:
    """All findings, sorted: most severe first, then by depth, then by code."""
    depth = {layer.info.name: layer.info.depth_index for layer in evidence.layers}
    findings = [f for family in FAMILIES for f in family(evidence, thresholds)]
    return sorted(findings, key=lambda f: (-f.severity, depth.get(f.layer, -1), f.code, f.layer))

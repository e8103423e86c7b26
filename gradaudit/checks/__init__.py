"""Checks turn per-layer evidence into findings, one module per family.

The probe's families (activations, gradients, outputs, parameters) are imported when they
run: their evidence comes from the probe, which imports TensorFlow, while
``checks.training`` must import without it (``--no-probe``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from gradaudit.options import Thresholds
from gradaudit.report.types import Finding

if TYPE_CHECKING:
    from gradaudit.probe.evidence import Evidence


def run_checks(evidence: Evidence, thresholds: Thresholds) -> list[Finding]:
    """All findings of the probe's families, in report order (:func:`ordered`)."""
    from gradaudit.checks import activations, gradients, outputs, parameters

    depth = {layer.info.name: layer.info.depth_index for layer in evidence.layers}
    families = (activations.check, gradients.check, outputs.check, parameters.check)
    return ordered([f for family in families for f in family(evidence, thresholds)], depth)


def ordered(findings: Iterable[Finding], depth: Mapping[str, int]) -> list[Finding]:
    """Most severe first, then by the layer's depth (the model and its inputs first),
    then by code: the order of every report."""
    return sorted(findings, key=lambda f: (-f.severity, depth.get(f.layer, -1), f.code, f.layer))

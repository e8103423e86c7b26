"""GA301, GA302, GA303: what the weights themselves say."""

from __future__ import annotations

import numpy as np

from gradaudit.model.interface import param_count, variable_label
from gradaudit.options import Thresholds
from gradaudit.probe.evidence import Evidence
from gradaudit.report.catalogue import finding
from gradaudit.report.types import Finding


def check(evidence: Evidence, thresholds: Thresholds) -> list[Finding]:
    model = evidence.model
    findings = []
    if not model.trainable_variables:
        findings.append(finding(
            "GA302", model.name,
            f"none of the model's {param_count(model.weights)} parameters is trainable: "
            "training cannot change anything",
            params=param_count(model.weights)))
    for layer in evidence.layers:
        info = layer.info
        if info.frozen_root:
            params = param_count(info.weights)
            findings.append(finding(
                "GA301", info.name,
                f"{info.type} with {params:,} parameters is frozen (trainable=False)",
                params=params))
        if not info.is_container:
            bad = {
                variable_label(v): int(np.size(a) - np.count_nonzero(np.isfinite(a)))
                for v in info.weights
                for a in [v.numpy()]
            }
            bad = {label: count for label, count in bad.items() if count}
            if bad:
                listed = ", ".join(f"{label} ({count})" for label, count in bad.items())
                findings.append(finding(
                    "GA303", info.name,
                    f"NaN/Inf values in weights: {listed}",
                    variables=sorted(bad), non_finite_values=sum(bad.values())))
    return findings


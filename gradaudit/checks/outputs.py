"""GA206: a model output that is the same on every probe sample and flat.

Such an output does not depend on the inputs and the gradient it sends back is
zero up to rounding: the weights before it get exact zeros (GA202) or rounding
noise, which no gradient rule can tell from a small healthy gradient. Only the
output's range says it. An output that is constant because what feeds it is
constant (a dead layer, a gradient that vanished on the way, a frozen base whose
features shrink to nothing) is not flat: its own layer's weights still move it,
and the cause lies upstream (GA102, GA202, GA204), not in the layer computing
the output.
"""

from __future__ import annotations

from gradaudit.options import Thresholds
from gradaudit.probe.evidence import Evidence
from gradaudit.report.catalogue import finding
from gradaudit.report.types import Finding


def check(evidence: Evidence, thresholds: Thresholds) -> list[Finding]:
    samples = evidence.probe.samples
    return [
        finding(
            "GA206", output.layer,
            f"model output {output.index} is the same on all {samples} probe samples "
            f"(largest spread {stats.spread:.2g} at magnitude {stats.magnitude:.3g}) and no "
            f"weight moves it beyond rounding (largest gradient {stats.sensitivity:.2g}): "
            "it does not depend on the inputs, and the gradient it sends back is zero",
            output=output.index, spread=stats.spread, magnitude=stats.magnitude,
            sensitivity=stats.sensitivity, samples=samples)
        for output in evidence.flat_outputs
        for stats in [output.stats]
    ]

"""Probe statistics regrouped per layer: the facts both checks and reports read.

Each fact is computed here once (dead and saturated units, a layer's gradient
RMS, the layer behind each model output), so a check and the report row that
shows it cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gradaudit.model.interface import AuditedModel, LayerInfo, Variable, variable_label
from gradaudit.options import Thresholds
from gradaudit.probe.tape import GradStats, OutputStats, ProbeResult, UnitStats, rms


@dataclass(frozen=True)
class VariableEvidence:
    label: str  # "kernel", "bias", …
    variable: Variable
    size: int
    grad: GradStats

    @property
    def judged_size(self) -> int:
        """The values the gradient RMS is over: the looked-up rows of an Embedding."""
        if self.grad.rows is None:
            return self.size
        return self.size // max(int(self.variable.shape[0]), 1) * self.grad.rows


@dataclass(frozen=True)
class LayerEvidence:
    info: LayerInfo
    variables: tuple[VariableEvidence, ...]  # trainable variables it owns
    units: UnitStats | None
    dead_units: int | None = None
    """ReLU family: units that never fired on any probe sample."""
    saturated_units: int | None = None
    """Sigmoid/tanh family: units near a bound on ≥ ``saturation_samples`` of observations."""

    @property
    def dead_fraction(self) -> float | None:
        return None if self.dead_units is None or self.units is None else (
            self.dead_units / self.units.units)

    @property
    def saturated_fraction(self) -> float | None:
        return None if self.saturated_units is None or self.units is None else (
            self.saturated_units / self.units.units)

    @property
    def fully_dead(self) -> bool:
        """No unit fired: no gradient passes the layer (frozen or not)."""
        return self.units is not None and self.dead_units == self.units.units

    @property
    def grad_rms(self) -> float | None:
        """RMS of the mean gradient over all the layer's trainable variables."""
        measured = [(rms, v.judged_size) for v in self.variables
                    if (rms := v.grad.rms) is not None]
        size = sum(n for _, n in measured)
        if not size:
            return None
        return math.sqrt(sum(rms**2 * n for rms, n in measured) / size)

    @property
    def weight_rms(self) -> float:
        arrays = [v.variable.numpy() for v in self.variables]
        return rms(np.concatenate([a.ravel() for a in arrays])) if arrays else 0.0


@dataclass(frozen=True)
class OutputEvidence:
    index: int  # among the model's outputs
    layer: str  # the layer that computes it (AuditedModel.output_layer)
    stats: OutputStats


@dataclass(frozen=True)
class Evidence:
    model: AuditedModel
    probe: ProbeResult
    layers: tuple[LayerEvidence, ...]  # leaves and containers, depth order
    inputs: tuple[tuple[str, int, GradStats], ...]
    """Differentiable inputs: (name, index among the model's inputs, what the tape said)."""
    outputs: tuple[OutputEvidence, ...]  # float outputs, in output order

    def owning(self) -> list[LayerEvidence]:
        """Layers that own trainable variables themselves (a nested model owns none)."""
        return [e for e in self.layers if e.variables]

    @property
    def flat_outputs(self) -> list[OutputEvidence]:
        """Outputs that are constant and send back no gradient beyond rounding."""
        return [output for output in self.outputs if output.stats.flat]


def gather(
    model: AuditedModel, result: ProbeResult, float_inputs: list[tuple[str, int]],
    token_ids: set[str], thresholds: Thresholds,
) -> Evidence:
    """``float_inputs`` are the float inputs in the order the probe watched them;
    those in ``token_ids`` only index an Embedding and are never judged."""
    by_layer: dict[str, list[VariableEvidence]] = {}
    for variable, grad in result.variables:
        owner = model.owner_of(variable)
        if owner is None:
            continue
        by_layer.setdefault(owner, []).append(
            VariableEvidence(
                label=variable_label(variable), variable=variable,
                size=int(math.prod(variable.shape)), grad=grad,
            )
        )
    layers = tuple(
        _layer(info, tuple(by_layer.get(info.name, ())), result.units.get(info.name), thresholds)
        for info in model.layers
    )
    inputs = tuple((name, index, stats) for (name, index), stats
                   in zip(float_inputs, result.inputs, strict=True) if name not in token_ids)
    outputs = tuple(OutputEvidence(index, model.output_layer(index), stats)
                    for index, stats in sorted(result.outputs.items()))
    return Evidence(model=model, probe=result, layers=layers, inputs=inputs, outputs=outputs)


def _layer(info: LayerInfo, variables: tuple[VariableEvidence, ...], units: UnitStats | None,
           thresholds: Thresholds) -> LayerEvidence:
    if units is None:
        return LayerEvidence(info, variables, None)
    if units.rule.kind == "relu":
        return LayerEvidence(info, variables, units, dead_units=units.dead_units())
    return LayerEvidence(info, variables, units,
                         saturated_units=units.saturated_units(thresholds.saturation_samples))

"""Probe statistics regrouped per layer: the facts both checks and reports read."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradaudit.model.keras_graph import LayerInfo, ModelStructure, variable_label
from gradaudit.probe.tape import GradStats, ProbeResult, UnitStats, rms


@dataclass(frozen=True)
class VariableEvidence:
    label: str  # "kernel", "bias", …
    variable: Any
    size: int
    grad: GradStats


@dataclass(frozen=True)
class LayerEvidence:
    info: LayerInfo
    variables: tuple[VariableEvidence, ...]  # trainable variables it owns
    units: UnitStats | None

    @property
    def grad_rms(self) -> float | None:
        """RMS of the mean gradient over all the layer's trainable variables."""
        measured = [v for v in self.variables if v.grad.rms is not None]
        size = sum(v.size for v in measured)
        if not size:
            return None
        return math.sqrt(sum(v.grad.rms**2 * v.size for v in measured) / size)

    @property
    def weight_rms(self) -> float:
        arrays = [v.variable.numpy() for v in self.variables]
        return rms(np.concatenate([a.ravel() for a in arrays])) if arrays else 0.0


@dataclass(frozen=True)
class Evidence:
    structure: ModelStructure
    probe: ProbeResult
    layers: tuple[LayerEvidence, ...]  # leaves and containers, depth order
    float_inputs: tuple[tuple[str, int], ...]  # (name, index among model inputs), probe order

    def leaves(self) -> list[LayerEvidence]:
        return [e for e in self.layers if not e.info.is_container]


def gather(
    structure: ModelStructure, result: ProbeResult, float_inputs: list[tuple[str, int]]
) -> Evidence:
    by_layer: dict[str, list[VariableEvidence]] = {}
    for variable, grad in result.variables:
        owner = structure.owner_of.get(id(variable))
        if owner is None:
            continue
        by_layer.setdefault(owner, []).append(
            VariableEvidence(
                label=variable_label(variable), variable=variable,
                size=int(math.prod(variable.shape)), grad=grad,
            )
        )
    layers = tuple(
        LayerEvidence(
            info=info,
            variables=tuple(by_layer.get(info.name, ())),
            units=result.units.get(info.name),
        )
        for info in structure.layers
    )
    return Evidence(
        structure=structure, probe=result, layers=layers, float_inputs=tuple(float_inputs)
    )

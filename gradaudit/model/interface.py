"""What the probe, the evidence and the checks need of a model, declared once.

Every way of loading a model (a Keras graph, a SavedModel signature) gives an
:class:`AuditedModel`; nothing downstream knows which it is. The model's
layers are plain :class:`LayerInfo` records, and one call, :meth:`AuditedModel.run`,
runs a batch and hands back the outputs with the activations the probe asked
for, so the probe never patches objects it does not know.

``Tensor`` and ``Variable`` name the TensorFlow/Keras boundary: they are
TensorFlow's (or Keras's) own objects, which carry no type information.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gradaudit.model.rules import UnitRule
from gradaudit.model.specs import InputShapes, InputSpec

Tensor = Any
"""A TensorFlow tensor (eager or symbolic)."""
Variable = Any
"""A TensorFlow or Keras variable."""


@dataclass(frozen=True, eq=False)
class LayerInfo:
    """One layer at any depth, with the facts the checks need.

    ``name`` is qualified from the audited model down (``encoder/enc_dead``).
    Compared by identity: a layer is itself, whatever its figures.
    """

    name: str
    type: str
    activation: str | None
    unit_rule: UnitRule | None
    depth_index: int
    weights: tuple[Variable, ...]
    trainable_weights: tuple[Variable, ...]
    trainable: bool
    children: tuple[str, ...] = ()
    """Qualified names of the layers directly inside (a nested model's layers)."""
    frozen_by: str | None = None
    """The outermost frozen layer this one is or sits inside; None if not frozen."""
    op: str | None = None
    """The graph op judged, for an activation applied inside a custom layer's call."""

    @property
    def is_container(self) -> bool:
        """A nested model: its figures are its children's."""
        return bool(self.children)

    @property
    def non_trainable_weights(self) -> tuple[Variable, ...]:
        trainable = {id(v) for v in self.trainable_weights}
        return tuple(v for v in self.weights if id(v) not in trainable)

    @property
    def frozen_root(self) -> bool:
        """Frozen itself, not only as part of a frozen enclosing model."""
        return self.frozen_by == self.name


LayerGraph = dict[str, tuple[str, ...]]
"""Qualified layer name → the layers it feeds, towards the outputs (a nested model's
name is its entry, feeding its first layers; a wrapper feeds the layers inside it).
Only what the model shows: an empty graph links nothing (``checks.causes``)."""


@dataclass(frozen=True)
class RunResult:
    """One batch through the model: its outputs, flat, and the watched layers' outputs."""

    outputs: list[Tensor]
    activations: dict[str, list[Tensor]] = field(default_factory=dict)
    """Qualified layer name → that layer's outputs in this batch (a shared layer has several)."""


class AuditedModel(Protocol):
    """A model the probe can run and the checks can read."""

    @property
    def name(self) -> str: ...

    @property
    def layers(self) -> tuple[LayerInfo, ...]:
        """Leaves and containers, in depth order."""
        ...

    @property
    def weights(self) -> Sequence[Variable]: ...

    @property
    def trainable_variables(self) -> Sequence[Variable]: ...

    @property
    def state_variables(self) -> Sequence[Variable]:
        """Non-trainable state a training-mode run may change (moving statistics); the
        probe puts it back afterwards."""
        ...

    @property
    def notes(self) -> tuple[str, ...]:
        """How the model is probed, where that differs from the usual (for the report)."""
        ...

    @property
    def prefers_tracing(self) -> bool:
        """Whether a ``tf.function``-traced probe step is faster than an eager one."""
        ...

    def input_specs(self, synthesise: bool = True, shapes: InputShapes = ()) -> list[InputSpec]:
        """The inputs in call order, shaped by ``shapes`` (``--input-shape``) where given;
        AuditError when random data cannot fill one and ``synthesise`` (no user data)
        is asked for, or when ``shapes`` do not fit."""
        ...

    def output_elements(self, specs: Sequence[InputSpec]) -> int | None:
        """The values the model's layers output for one sample of ``specs``, read from
        the shapes the model records, without running it; None where only a run can
        tell (the probe then runs one sample)."""
        ...

    def run(self, inputs: list[Tensor], *, training: bool,
            watched: Sequence[LayerInfo]) -> RunResult:
        """Run one batch; capture the outputs of the ``watched`` layers."""
        ...

    def owner_of(self, variable: Variable) -> str | None:
        """The qualified name of the leaf layer that owns ``variable``."""
        ...

    def cut_of(self, layer: LayerInfo) -> str | None:
        """The operations that cut ``layer``'s paths to the outputs, if the model shows them."""
        ...

    def input_cut(self, index: int) -> str | None:
        """The operations that cut the ``index``-th input's paths to the outputs."""
        ...

    def output_layer(self, index: int) -> str:
        """The qualified name of the layer that computes the ``index``-th output of
        :meth:`run` (for a signature, its output key): where a finding about that output
        is reported."""
        ...

    def layer_graph(self) -> LayerGraph:
        """Which layer feeds which (:data:`LayerGraph`), for linking findings to their
        causes; empty where the model records no graph of its layers."""
        ...


def variable_label(variable: Variable) -> str:
    """A variable's short name within its layer (``kernel``, ``bias``, …)."""
    return str(getattr(variable, "name", "")).split("/")[-1].split(":")[0]


def param_count(variables: Sequence[Variable]) -> int:
    return int(sum(math.prod(v.shape) for v in variables))

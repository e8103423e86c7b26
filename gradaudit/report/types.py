"""Findings and reports: plain frozen data, no TensorFlow.

Everything downstream of the probe (formats, JSON, exit code) works on these
types only, so they can be built in tests without a model. They render
nothing themselves: ``formats`` renders them and ``json_io`` writes and reads
them, so the data does not depend on its readers.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any


class Severity(enum.IntEnum):
    """Ordered severities: a higher value is more severe."""

    INFO = 1
    WARNING = 2
    ERROR = 3

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.strip().upper()]


@dataclass(frozen=True)
class Finding:
    """One problem found in one layer (or input) of one model."""

    code: str
    severity: Severity
    layer: str
    message: str
    metrics: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    """Stable within a report: ``code:layer`` (``GA202:d3``), ``#2`` … on a repeat
    (:func:`finding_ids`); what a baseline matches."""
    caused_by: str | None = None
    """The layer of this finding's root cause (``checks.causes``); None for a root cause."""


def finding_ids(findings: Sequence[Finding]) -> tuple[str, ...]:
    """Each finding's id in report order: ``code:layer``, a repeat of the same code on
    the same layer numbered ``#2``, ``#3`` … (deterministic, since the order is)."""
    seen: dict[str, int] = {}
    ids = []
    for f in findings:
        base = f"{f.code}:{f.layer}"
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return tuple(ids)


NO_GRADIENT = frozenset({"GA201", "GA202", "GA403"})
"""Codes of rows that get no gradient (or never got one in training)."""


def consequence_text(effects: Sequence[Finding]) -> str:
    """``17 layers get no gradient because of it: GA202, GA403``: what a root cause
    explains, in the diagnosis's summary and the formats' folded line alike."""
    layers = len({f.layer for f in effects})
    codes = sorted({f.code for f in effects})
    what = ("no gradient" if NO_GRADIENT & set(codes)
            else "a vanishing gradient" if codes == ["GA204"] else "findings")
    return (f"{layers} layer{'s get' if layers != 1 else ' gets'} {what} because of it: "
            + ", ".join(codes))


@dataclass(frozen=True)
class Cause:
    """A root cause (``models[].diagnosis``): the layer, its root codes, the ids of the
    findings it explains, what it is in words and the fix."""

    layer: str
    codes: tuple[str, ...]
    explains: tuple[str, ...]
    summary: str
    fix: str


@dataclass(frozen=True)
class LayerRow:
    """Per-layer figures for the report; ``None`` where a figure does not apply."""

    name: str
    type: str
    activation: str | None
    params: int
    trainable_params: int
    non_trainable_params: int
    trainable: bool
    units: int | None
    dead_units: int | None
    dead_fraction: float | None
    saturated_fraction: float | None
    grad_rms: float | None
    non_trainable_reason: str | None = None
    train_units: int | None = None
    """Units (output channels) the optimizer state has for this layer; the fields below
    are None where the file holds no training state for it."""
    stalled_units: int | None = None
    """Units that received no gradient during the last steps before the save."""
    stalled_fraction: float | None = None
    steps_since_gradient: float | None = None
    """Estimated optimizer steps since a stalled unit last got a gradient (median)."""
    train_grad_rms: float | None = None
    """Gradient RMS over training, from the optimizer's second moment."""
    bn_dead_units: int | None = None
    """Units (channels) of this ReLU-family layer that the BatchNormalization next to it
    shows dead on the training data (GA103); None where no BN statistics speak for it."""
    bn_dead_fraction: float | None = None


@dataclass(frozen=True)
class InputRow:
    """A model input as probed."""

    name: str
    shape: tuple[int, ...]
    dtype: str


PROBE_CHECKS = ("GA1", "GA2", "GA3")
"""The code families the probe gives: activations, gradients, parameters (``checks_run``)."""
TRAINING_CHECKS = ("GA4",)
"""The code family the file's optimizer state and compile config give."""
STATISTICS_CHECKS = ("GA103",)
"""The check the file's BatchNormalization statistics give: in GA1 with the probe,
listed on its own in ``checks_run`` when it ran without (``--no-probe``)."""


@dataclass(frozen=True)
class TrainingSummary:
    """What the optimizer state and compile config say about training (``summary.training``).

    The per-output dicts are keyed by output layer name; None where the file has no
    compile config.
    """

    optimizer: str | None
    iterations: int | None
    learning_rate: float | None
    loss: dict[str, str | None] | None = None
    from_logits: dict[str, bool] | None = None
    loss_weights: dict[str, float] | None = None


@dataclass(frozen=True)
class ModelReport:
    """Everything gradaudit found out about one model file."""

    path: str
    format: str
    model_name: str
    params_total: int
    params_trainable: int
    params_non_trainable: int
    samples: int
    seed: int
    inputs: tuple[InputRow, ...]
    layers: tuple[LayerRow, ...]
    findings: tuple[Finding, ...]
    unsafe: bool = False
    inputs_source: dict[str, Any] = field(default_factory=dict)
    """Where the probe inputs came from: random (seed, distribution) or a file (path, rows)."""
    notes: tuple[str, ...] = ()
    """How the model was probed, where that differs from the usual (SavedModel signatures)."""
    imports: tuple[str, ...] = ()
    """The ``--import`` modules, as given: the user's code the model was loaded with."""
    training: TrainingSummary | None = None
    """None when the model carries no training state (saved without compile, a SavedModel)."""
    checks_run: tuple[str, ...] = PROBE_CHECKS
    """The code families whose checks ran: the probe's, the training state's, or both."""
    batch_size: int | None = None
    """Samples per probe step, as used: ``--batch-size``, or fewer to fit ``--max-memory``
    (None when no model ran)."""
    params_measured: int | None = None
    """Trainable parameters whose gradient the probe measured and the checks judged (owned
    by a layer the report lists); None when no model ran. Below ``params_trainable``, no
    table may say every variable gets a gradient."""
    objective: str = "projection"
    """What the probe differentiated: "loss" (the compiled loss, on at least one output)
    or "projection" (a random projection of every output)."""
    objectives: dict[str, str] | None = None
    """Output name → "loss" or "projection", only where the outputs differ."""
    diagnosis: tuple[Cause, ...] = ()
    """The root causes, most important first (``checks.causes``); empty for a model with
    no finding at warning or above."""

    def keeping(self, findings: Sequence[Finding]) -> ModelReport:
        """This report with only ``findings`` (a subset of its own, after ``--select``/
        ``--ignore`` or a baseline): a cause keeps the consequences that remain and goes
        when none of its root findings does."""
        kept = {f.id for f in findings}
        roots = {(f.layer, f.code) for f in findings if f.caused_by is None}
        diagnosis = tuple(
            replace(cause, codes=codes, explains=tuple(i for i in cause.explains if i in kept))
            for cause in self.diagnosis
            for codes in [tuple(c for c in cause.codes if (cause.layer, c) in roots)]
            if codes)
        return replace(self, findings=tuple(findings), diagnosis=diagnosis)

    @property
    def probed(self) -> bool:
        """Whether a model was run (False with ``--no-probe``)."""
        return set(PROBE_CHECKS) <= set(self.checks_run)

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def ok(self, fail_on: FailOn | str = "error") -> bool:
        """True when no finding is at or above ``fail_on`` (what exit code 0 means)."""
        return not fails(self.worst, FailOn(fail_on.lower()))


@dataclass(frozen=True)
class LoadError:
    """A path that could not be audited, with a reason a person can act on."""

    path: str
    error: str


@dataclass(frozen=True)
class ShardInfo:
    """The slice of the file list a run audited (``--shard K/N`` or ``--shard auto``)."""

    index: int
    """1-based, whatever the CI system counts from."""
    total: int
    source: dict[str, str] = field(default_factory=dict)
    """The CI variables ``--shard auto`` read, as set (``{"CI_NODE_INDEX": "2", …}``);
    empty for ``--shard K/N``."""
    system: str | None = None
    """The CI system those variables are of (GitLab, CircleCI …); None for K/N."""


@dataclass(frozen=True)
class AuditRun:
    """The result of one ``gradaudit audit`` invocation over one or more paths."""

    models: tuple[ModelReport, ...]
    errors: tuple[LoadError, ...]
    fail_on: FailOn | None = None
    """The gate the run is judged by, for formats that show pass/fail (None: not given)."""
    verbose: bool = False
    """Formats list every finding, consequences too, rather than fold them under their
    root cause (``--verbose``; not in the JSON, which always has every finding)."""
    shard: ShardInfo | None = None
    """The slice this run audited; None when it audited every file (a merge too)."""


class FailOn(str, enum.Enum):
    """The lowest severity that makes the run fail (exit code 1)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    NEVER = "never"


def exit_code(run: AuditRun, fail_on: FailOn) -> int:
    """2 if any path failed, else 1 if a finding is at/over ``fail_on``, else 0."""
    if run.errors:
        return 2
    return 1 if any(fails(m.worst, fail_on) for m in run.models) else 0


def fails(severity: Severity | None, fail_on: FailOn) -> bool:
    """Whether a finding (or a model's worst finding) of ``severity`` fails the run."""
    if severity is None or fail_on is FailOn.NEVER:
        return False
    return severity >= Severity.parse(fail_on.value)

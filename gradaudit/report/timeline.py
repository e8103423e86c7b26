"""Checkpoint timelines (``gradaudit timeline``): the checkpoints of one run in training
order, each layer's figures per checkpoint, and the checkpoints between which a layer
died or revived.

Pure data from reports (no TensorFlow): the files are grouped by architecture by
:func:`gradaudit.load.checkpoints.plan` and audited in the worker, where
:mod:`gradaudit.load.checkpoints` swaps the weights of one built model. The
order is the optimizer's step count stored in each file (``iterations``), never the
file name (``ckpt-10`` sorts before ``ckpt-9``); a file without one is placed by its
modification time, with a note. Checkpoints of different architectures (configs that
differ) form separate series, each ordered and compared on its own.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass

from gradaudit.options import Thresholds
from gradaudit.report.types import (
    AuditRun,
    FailOn,
    LayerRow,
    LoadError,
    ModelReport,
    Severity,
    exit_code,
    fails,
)

JUMPING = ("dead_fraction", "stalled_fraction", "bn_dead_fraction")
"""The figures whose jump between consecutive checkpoints is an event: units dead on
the probe, stalled in the optimizer state, or dead by the BatchNorm statistics (GA103)."""
DIED, REVIVED = "died", "revived"


def figures(row: LayerRow) -> dict[str, float | None]:
    """One layer's figures at one checkpoint (None where the audit has none)."""
    return {"dead_fraction": row.dead_fraction, "stalled_fraction": row.stalled_fraction,
            "bn_dead_fraction": row.bn_dead_fraction, "grad_rms": row.grad_rms}


@dataclass(frozen=True)
class Checkpoint:
    """One file of the run: its place (series), step and learning rate from its optimizer
    state, its report, or why it could not be audited."""

    path: str
    series: int
    mtime: float
    report: ModelReport | None = None
    error: str | None = None

    @property
    def step(self) -> int | None:
        training = None if self.report is None else self.report.training
        return None if training is None else training.iterations

    @property
    def learning_rate(self) -> float | None:
        training = None if self.report is None else self.report.training
        return None if training is None else training.learning_rate

    def layers(self) -> dict[str, dict[str, float | None]]:
        """Layer name → its figures, in the model's order; {} when unreadable."""
        rows = () if self.report is None else self.report.layers
        return {row.name: figures(row) for row in rows}


@dataclass(frozen=True)
class Event:
    """A layer whose dead or stalled fraction jumped between two consecutive checkpoints
    of a series: ``figures`` maps each figure that jumped to its (before, after)."""

    layer: str
    before: str
    after: str
    what: str
    figures: dict[str, tuple[float, float]]

    @property
    def severity(self) -> Severity:
        """A layer lost is a warning (``--fail-on warning`` fails the run); one that
        came back is info."""
        return Severity.WARNING if self.what == DIED else Severity.INFO


@dataclass(frozen=True)
class Timeline:
    """Checkpoints in training order (series after series), the events, the notes."""

    checkpoints: tuple[Checkpoint, ...]
    events: tuple[Event, ...]
    notes: tuple[str, ...] = ()

    @property
    def run(self) -> AuditRun:
        """The checkpoints' audits as one run (their findings and errors)."""
        return AuditRun(
            models=tuple(c.report for c in self.checkpoints if c.report is not None),
            errors=tuple(LoadError(c.path, c.error) for c in self.checkpoints
                         if c.error is not None))

    def layer_names(self) -> list[str]:
        """Every layer of every checkpoint, in order of first appearance."""
        names: dict[str, None] = {}
        for checkpoint in self.checkpoints:
            names.update(dict.fromkeys(checkpoint.layers()))
        return list(names)


def timeline_exit_code(timeline: Timeline, fail_on: FailOn) -> int:
    """As ``audit``'s (2: a checkpoint could not be audited; 1: a finding at or over
    ``fail_on``), with each event counted as a finding of its severity."""
    code = exit_code(timeline.run, fail_on)
    if code == 0 and any(fails(e.severity, fail_on) for e in timeline.events):
        return 1
    return code


@dataclass(frozen=True)
class Plan:
    """The files to audit grouped by architecture, each group in the order given (the
    order of training is known once their step counts are read), and those whose
    architecture could not be read (:func:`gradaudit.load.checkpoints.plan`)."""

    series: tuple[tuple[str, ...], ...]
    unreadable: tuple[LoadError, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def paths(self) -> list[str]:
        """Series after series: the worker keeps one model built per architecture."""
        return [path for paths in self.series for path in paths]


def assemble(planned: Plan, run: AuditRun, thresholds: Thresholds) -> Timeline:
    """The timeline of ``run``, the audits of ``planned.paths``: each series in
    training order, the unreadable files in the first, the events between neighbours."""
    reports = {m.path: m for m in run.models}
    errors = {e.path: e.error for e in (*planned.unreadable, *run.errors)}
    series = [list(paths) for paths in planned.series] or [[]]
    series[0] += [e.path for e in planned.unreadable]
    checkpoints: list[Checkpoint] = []
    events: list[Event] = []
    notes = list(planned.notes)
    for index, paths in enumerate(series):
        ordered, note = in_order([
            Checkpoint(path, index, _mtime(path), reports.get(path), errors.get(path))
            for path in paths])
        checkpoints += ordered
        notes += [note] if note else []
        events += changes(ordered, thresholds.timeline_jump)
    return Timeline(tuple(checkpoints), tuple(events), tuple(notes))


def _mtime(path: str) -> float:
    """When the file was last written; 0 (first) for a path that is gone."""
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def in_order(checkpoints: Sequence[Checkpoint]) -> tuple[list[Checkpoint], str | None]:
    """``checkpoints`` by the optimizer's step count (ties by modification time, then
    path); each one without a count goes before the first counted one saved after it,
    and the note names the readable ones so placed."""
    counted = sorted((c for c in checkpoints if c.step is not None),
                     key=lambda c: (c.step, c.mtime, c.path))
    pending = sorted((c for c in checkpoints if c.step is None),
                     key=lambda c: (c.mtime, c.path))
    ordered: list[Checkpoint] = []
    for checkpoint in counted:
        while pending and pending[0].mtime <= checkpoint.mtime:
            ordered.append(pending.pop(0))
        ordered.append(checkpoint)
    ordered += pending
    by_time = [c.path for c in checkpoints if c.step is None and c.report is not None]
    note = None if not by_time else (
        f"no optimizer step count in {', '.join(by_time)} (saved without its optimizer): "
        "placed by modification time")
    return ordered, note


def changes(checkpoints: Sequence[Checkpoint], jump: float) -> list[Event]:
    """The events between consecutive audited checkpoints of one series: a dead or
    stalled fraction up by ``jump`` or more ("died") or down by as much ("revived")."""
    audited = [c for c in checkpoints if c.report is not None]
    events = []
    for before, after in itertools.pairwise(audited):
        then, now = before.layers(), after.layers()
        for layer in (name for name in now if name in then):
            moved: dict[str, dict[str, tuple[float, float]]] = {DIED: {}, REVIVED: {}}
            for name in JUMPING:
                old, new = then[layer][name], now[layer][name]
                if old is None or new is None:
                    continue
                delta = round(new - old, 4)  # the fractions are rounded to 4 places
                if abs(delta) >= jump:
                    moved[DIED if delta > 0 else REVIVED][name] = (old, new)
            events += [Event(layer, before.path, after.path, what, jumped)
                       for what, jumped in moved.items() if jumped]
    return events

"""``gradaudit diff OLD NEW``: what a retrain (or any new version of a model) changed.

Both sides are audit runs (a model audited now, or a JSON report read back), so the
comparison needs no TensorFlow. Findings are matched as a baseline matches them, by
their id (``code:layer``, numbered on a repeat), with one difference: a finding on the
model itself (its layer is the model's name, e.g. GA414) matches whatever the model is
called on the other side. A finding only in NEW is **new**, only in OLD **gone**; one in
both is **changed** when its severity differs or a figure of its layer moved by more
than ``Thresholds.diff_fraction_change`` (dead %, stalled %) or
``Thresholds.diff_rms_factor`` (gradient RMS, probe or training).

Models are paired by path when a side holds several (two JSON reports of a folder);
two single models are paired whatever their paths. Layers are matched by name, so two
unrelated models can be compared: the diff then says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gradaudit.options import Thresholds
from gradaudit.report.baseline import normalise_path
from gradaudit.report.types import AuditRun, FailOn, Finding, LayerRow, ModelReport, fails

MODEL = "<model>"
"""The layer key of a finding on the model itself, whatever the model is called."""
FRACTIONS = ("dead_fraction", "stalled_fraction")
RMS = ("grad_rms", "train_grad_rms")


@dataclass(frozen=True)
class Entry:
    """A finding new in NEW or gone from OLD, and the model (path) it is in."""

    model: str
    finding: Finding


@dataclass(frozen=True)
class Change:
    """A finding in both, with what moved: the severity and/or figures (old, new)."""

    model: str
    old: Finding
    new: Finding
    figures: dict[str, tuple[float | None, float | None]]


@dataclass(frozen=True)
class Diff:
    """The three lists, and notes on how the sides were matched."""

    new: tuple[Entry, ...]
    gone: tuple[Entry, ...]
    changed: tuple[Change, ...]
    notes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    """The models compared (NEW's path, or OLD's for a model only in OLD)."""

    def exit_code(self, fail_on: FailOn) -> int:
        """1 when NEW has a finding at or above ``fail_on`` that OLD has not at or above
        it (new, or changed up across the gate), else 0."""
        worse = any(fails(e.finding.severity, fail_on) for e in self.new) or any(
            fails(c.new.severity, fail_on) and not fails(c.old.severity, fail_on)
            for c in self.changed)
        return 1 if worse else 0


def compare(old: AuditRun, new: AuditRun, thresholds: Thresholds) -> Diff:
    """The diff of two runs (their errors are the caller's: a side that failed is no side)."""
    pairs, notes = _pairs(old.models, new.models)
    added: list[Entry] = []
    gone: list[Entry] = []
    changed: list[Change] = []
    paths = [next(m.path for m in (after, before) if m is not None) for before, after in pairs]
    for (before, after), path in zip(pairs, paths, strict=True):
        olds = _keyed(before)
        news = _keyed(after)
        added += [Entry(path, f) for key, f in news.items() if key not in olds]
        gone += [Entry(path, f) for key, f in olds.items() if key not in news]
        if before is not None and after is not None:
            changed += [change for key, f in news.items() if key in olds
                        for change in [_change(before, after, olds[key], f, thresholds)]
                        if change is not None]
            notes += _mismatch(before, after)
    return Diff(tuple(added), tuple(gone), tuple(changed), tuple(notes), tuple(paths))


def _pairs(old: Sequence[ModelReport], new: Sequence[ModelReport],
           ) -> tuple[list[tuple[ModelReport | None, ModelReport | None]], list[str]]:
    """Two single models pair up; otherwise models pair by normalised path."""
    if len(old) == 1 and len(new) == 1:
        return [(old[0], new[0])], []
    olds = {normalise_path(m.path): m for m in old}
    news = {normalise_path(m.path): m for m in new}
    notes = [f"{m.path} is only in OLD: its findings are gone" for p, m in olds.items()
             if p not in news]
    notes += [f"{m.path} is only in NEW: its findings are new" for p, m in news.items()
              if p not in olds]
    return [(olds.get(p), news.get(p)) for p in sorted(olds.keys() | news.keys())], notes


def _keyed(model: ModelReport | None) -> dict[str, Finding]:
    """The model's findings by id, a finding on the model itself keyed as MODEL."""
    if model is None:
        return {}
    return {f.id.replace(f"{f.code}:{model.model_name}", f"{f.code}:{MODEL}", 1)
            if f.layer == model.model_name else f.id: f for f in model.findings}


def _change(before: ModelReport, after: ModelReport, old: Finding, new: Finding,
            thresholds: Thresholds) -> Change | None:
    """The Change when the severity or a figure of the finding's layer moved enough."""
    rows = (_row(before, old.layer), _row(after, new.layer))
    figures = {name: values for name in (*FRACTIONS, *RMS)
               for values in [(_figure(rows[0], name), _figure(rows[1], name))]
               if _moved(name, *values, thresholds)}
    if not figures and old.severity == new.severity:
        return None
    return Change(after.path, old, new, figures)


def _row(model: ModelReport, layer: str) -> LayerRow | None:
    return next((row for row in model.layers if row.name == layer), None)


def _figure(row: LayerRow | None, name: str) -> float | None:
    value = None if row is None else getattr(row, name)
    return None if value is None else float(value)


def _moved(name: str, old: float | None, new: float | None, thresholds: Thresholds) -> bool:
    """Whether a figure moved by more than its threshold; a figure one side lacks has not
    (nothing to compare), a non-finite one has when the other is finite."""
    if old is None or new is None or (math.isnan(old) and math.isnan(new)):
        return False
    if not (math.isfinite(old) and math.isfinite(new)):
        return old != new
    if name in FRACTIONS:
        return abs(new - old) >= thresholds.diff_fraction_change
    if old == 0 or new == 0:  # an RMS that is 0 on one side only: a gradient cut or restored
        return old != new
    return max(new / old, old / new) >= thresholds.diff_rms_factor


def _families(model: ModelReport) -> str:
    return ", ".join(model.checks_run) or "none (no probe, no training state)"


def _mismatch(before: ModelReport, after: ModelReport) -> list[str]:
    """Notes that make the diff readable: unrelated models, different checks."""
    notes = []
    old_layers = [(r.name, r.type) for r in before.layers]
    new_layers = [(r.name, r.type) for r in after.layers]
    if old_layers and new_layers and old_layers != new_layers:  # none listed: not probed
        shared = len({n for n, _ in old_layers} & {n for n, _ in new_layers})
        notes.append(f"{before.path} and {after.path} have different layers ({shared} of "
                     f"{len(old_layers)} and {len(new_layers)} layer names shared): findings "
                     "are matched by layer name")
    if before.probed and after.probed and before.seed != after.seed:
        notes.append(f"{after.path}: OLD was probed with seed {before.seed} and NEW with seed "
                     f"{after.seed}: gradient RMS moves with the seed alone (up to 9× "
                     "measured), so compare with the same --seed")
    if set(before.checks_run) != set(after.checks_run):
        notes.append(f"{after.path}: OLD ran checks {_families(before)} and NEW "
                     f"{_families(after)} (--no-probe on one side?): findings of checks that "
                     "ran on one side only are new or gone")
    return notes

"""``gradaudit diff`` in a table, JSON or Markdown: the findings new in NEW, gone from
OLD and changed, each in the report's own shape (``json_io.finding_entry``); the table
and Markdown fold a root cause's consequences under it, as ``audit`` does."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

from tabulate import tabulate

from gradaudit.formats.common import FINDING_HEADERS
from gradaudit.formats.markdown import table_lines
from gradaudit.report import json_io
from gradaudit.report.diff import FRACTIONS, Change, Diff, Entry
from gradaudit.report.types import Finding, consequence_text


class DiffFormat(str, enum.Enum):
    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"


CHANGE_HEADERS = ["code", "layer", "severity", "what moved"]
FIGURES = {"dead_fraction": "dead", "stalled_fraction": "stalled", "grad_rms": "gradient RMS",
           "train_grad_rms": "gradient RMS (training)"}
"""How the table and Markdown name the figures of ``report.diff`` (JSON keeps the keys)."""


def render(diff: Diff, fmt: DiffFormat) -> str:
    renderers: dict[DiffFormat, Callable[[Diff], str]] = {
        DiffFormat.TABLE: _table, DiffFormat.JSON: _json, DiffFormat.MARKDOWN: _markdown}
    return renderers[fmt](diff)


def counts(diff: Diff) -> str:
    """``2 new, 0 gone, 1 changed``: the status line's and the headings' summary."""
    return f"{len(diff.new)} new, {len(diff.gone)} gone, {len(diff.changed)} changed"


def _json(diff: Diff) -> str:
    document = {"diff": {
        "new": [_entry(e) for e in diff.new],
        "gone": [_entry(e) for e in diff.gone],
        "changed": [{"model": c.model, "old": json_io.finding_entry(c.old),
                     "new": json_io.finding_entry(c.new),
                     "figures": {name: {"old": old, "new": new}
                                 for name, (old, new) in c.figures.items()}}
                    for c in diff.changed],
        "notes": list(diff.notes),
    }}
    return json_io.dumps(document)


def _entry(entry: Entry) -> dict[str, Any]:
    return {"model": entry.model, **json_io.finding_entry(entry.finding)}


def _table(diff: Diff) -> str:
    lines = [f"gradaudit diff: {counts(diff)}"]
    for title, rows, headers in _sections(diff, str):
        lines += ["", f"{title}: none." if not rows else f"{title}:"]
        if rows:
            lines.append(tabulate(rows, headers=headers, tablefmt="simple"))
    if diff.notes:
        lines += ["", *[f"Note: {note}" for note in diff.notes]]
    return "\n".join(lines) + "\n"


def _markdown(diff: Diff) -> str:
    lines = ["# gradaudit diff", "", f"{counts(diff)}."]
    for title, rows, headers in _sections(diff, lambda name: f"`{name}`"):
        lines += ["", f"## {title}", ""]
        lines += table_lines(headers, rows) if rows else ["None."]
    if diff.notes:
        lines += ["", *[f"> {note}" for note in diff.notes]]
    return "\n".join(lines) + "\n"


def _sections(diff: Diff, code: Callable[[str], str],
              ) -> list[tuple[str, list[list[str]], list[str]]]:
    """(title, rows, headers) of new, gone and changed; a model column when the diff
    compared several models."""
    several = len(diff.models) > 1
    model = ["model"] if several else []

    def entries(found: Sequence[Entry]) -> list[list[str]]:
        # As audit's table folds them: a consequence listed in the same section as its
        # root cause is one "+ …" line under it (JSON keeps every finding).
        roots = {(e.model, e.finding.layer) for e in found if e.finding.caused_by is None}
        effects: dict[tuple[str, str], list[Finding]] = {}
        for e in found:
            if e.finding.caused_by is not None and (e.model, e.finding.caused_by) in roots:
                effects.setdefault((e.model, e.finding.caused_by), []).append(e.finding)
        folded = {id(f) for fs in effects.values() for f in fs}
        rows = []
        for e in found:
            if id(e.finding) in folded:
                continue
            rows.append([*([e.model] if several else []), str(e.finding.severity),
                         code(e.finding.code), code(e.finding.layer), e.finding.message])
            caused = effects.pop((e.model, e.finding.layer), None)
            if caused is not None and e.finding.caused_by is None:
                rows.append([*([""] if several else []), "", "", code(e.finding.layer),
                             f"+ {consequence_text(caused)}"])
        return rows

    changes = [[*([c.model] if several else []), code(c.new.code), code(c.new.layer),
                _severity(c), _moved(c)] for c in diff.changed]
    return [("New in NEW", entries(diff.new), [*model, *FINDING_HEADERS]),
            ("Gone from OLD", entries(diff.gone), [*model, *FINDING_HEADERS]),
            ("Changed", changes, [*model, *CHANGE_HEADERS])]


def _severity(change: Change) -> str:
    old, new = str(change.old.severity), str(change.new.severity)
    return new if old == new else f"{old} → {new}"


def _moved(change: Change) -> str:
    return "; ".join(f"{FIGURES[name]} {_value(name, old)} → {_value(name, new)}"
                     for name, (old, new) in change.figures.items()) or "severity"


def _value(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if name in FRACTIONS else f"{value:.3g}"

"""``gradaudit timeline`` output: the table (one row per checkpoint, a column pair per
layer that matters, the events under it), the JSON, and the picture (per-layer curves
over the checkpoints, the events marked).

A row per checkpoint keeps 50 checkpoints readable where a column each would not; the
layers shown are those with an event, else those with a finding (at most
``MAX_LAYERS``: the JSON has every layer).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from gradaudit.formats.plot import COLOURS, DPI, require, titles
from gradaudit.report import json_io
from gradaudit.report.timeline import JUMPING, Checkpoint, Event, Timeline

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_LAYERS = 4
"""Layers shown in the table (up to three columns each); more would wrap a terminal."""
SHORT = {"dead_fraction": "dead", "stalled_fraction": "stalled",
         "bn_dead_fraction": "BN-dead", "grad_rms": "grad RMS"}


def shown_layers(timeline: Timeline) -> list[str]:
    """The layers that matter: with an event, else with a finding at some checkpoint."""
    names = timeline.layer_names()
    evented = {e.layer for e in timeline.events}
    flagged = {f.layer for m in timeline.run.models for f in m.findings}
    return [n for n in names if n in evented] or [n for n in names if n in flagged]


def table(timeline: Timeline) -> str:
    """The table, series after series, then the events and the notes."""
    layers = shown_layers(timeline)
    names = titles([c.path for c in timeline.checkpoints])
    blocks = []
    series = sorted({c.series for c in timeline.checkpoints})
    for index in series:
        rows = [c for c in timeline.checkpoints if c.series == index]
        title = (f"Series {index + 1} of {len(series)}: " if len(series) > 1 else "") + (
            f"{len(rows)} checkpoint(s) in training order")
        blocks.append(title + ":\n" + _series_table(rows, layers[:MAX_LAYERS], names))
    if len(layers) > MAX_LAYERS:
        blocks.append(f"{len(layers) - MAX_LAYERS} more layer(s) with events or findings: "
                      f"{', '.join(layers[MAX_LAYERS:])} (--format json has every layer)")
    elif not layers:
        blocks.append(f"No layer died or revived and none has a finding: the "
                      f"{len(timeline.layer_names())} layers' figures are in --format json.")
    if timeline.events:
        blocks.append("Events (a dead, stalled or BN-dead fraction that moved by the "
                      "timeline_jump threshold or more):\n" + tabulate(
                          [_event_row(e, names) for e in timeline.events],
                          headers=["layer", "what", "between", "figures"]))
    else:
        blocks.append("Events: none.")
    if timeline.notes:
        blocks.append("Notes:\n" + "\n".join(f"- {note}" for note in timeline.notes))
    return "\n\n".join(blocks) + "\n"


def _series_table(rows: Sequence[Checkpoint], layers: Sequence[str],
                  names: dict[str, str]) -> str:
    """A column per layer and figure that some checkpoint has: a Dense relu layer's
    dead and stalled fractions, a separate ReLU layer's dead and BN-dead ones."""
    per_row = [checkpoint.layers() for checkpoint in rows]
    columns = [(layer, figure) for layer in layers for figure in JUMPING
               if any(figures.get(layer, {}).get(figure) is not None for figures in per_row)]
    headers = ["checkpoint", "step", "learning rate", "findings"] + [
        f"{layer} {SHORT[figure]}" for layer, figure in columns]
    body = [[names[checkpoint.path], _text(checkpoint.step), _text(checkpoint.learning_rate),
             _findings(checkpoint),
             *(_percent(figures.get(layer, {}).get(figure)) for layer, figure in columns)]
            for checkpoint, figures in zip(rows, per_row, strict=True)]
    return tabulate(body, headers=headers, disable_numparse=True,
                    colalign=("left", "right", "right", "left") + ("right",) * len(columns))


def _findings(checkpoint: Checkpoint) -> str:
    if checkpoint.error is not None:
        return f"unreadable: {checkpoint.error}"
    report = checkpoint.report
    if report is None or report.worst is None:
        return "-"
    return f"{report.worst}: " + " ".join(sorted({f.code for f in report.findings}))


def _event_row(event: Event, names: dict[str, str]) -> list[str]:
    moved = ", ".join(f"{SHORT[name]} {_percent(old)} → {_percent(new)}"
                      for name, (old, new) in event.figures.items())
    return [event.layer, event.what, f"{names[event.before]} → {names[event.after]}", moved]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def as_dict(timeline: Timeline) -> dict[str, Any]:
    """``{"timeline": {"checkpoints", "layers", "events", "notes"}}``: a layer's list has
    one entry per checkpoint, None where that checkpoint has no such layer."""
    per_checkpoint = [c.layers() for c in timeline.checkpoints]
    return {"timeline": {
        "checkpoints": [{
            "path": c.path, "step": c.step, "learning_rate": c.learning_rate,
            "series": c.series, "error": c.error,
            "findings": [] if c.report is None else [
                {"code": f.code, "severity": str(f.severity), "layer": f.layer,
                 "message": f.message} for f in c.report.findings]}
            for c in timeline.checkpoints],
        "layers": {name: [layers.get(name) for layers in per_checkpoint]
                   for name in timeline.layer_names()},
        "events": [{"layer": e.layer, "before": e.before, "after": e.after, "what": e.what,
                    "figures": {k: list(v) for k, v in e.figures.items()}}
                   for e in timeline.events],
        "notes": list(timeline.notes),
    }}


def to_json(timeline: Timeline) -> str:
    """The JSON text; a non-finite gradient RMS spelled as a string, as in ``audit``'s."""
    return json.dumps(json_io._finite(as_dict(timeline)), indent=2) + "\n"


PANELS = (("dead_fraction", "dead fraction", False),
          ("stalled_fraction", "stalled fraction", False),
          ("grad_rms", "gradient RMS", True))
"""The curves drawn, one panel each: figure, axis label, log scale."""


def png(timeline: Timeline) -> bytes:
    """The per-layer curves over the checkpoints as PNG bytes (deterministic)."""
    buffer = io.BytesIO()
    figure(timeline).savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def figure(timeline: Timeline) -> Figure:
    """One panel per figure, a line per layer, x the checkpoints in training order (step
    as label); each event a band between its two checkpoints, labelled."""
    require("--plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    checkpoints = timeline.checkpoints
    x = list(range(len(checkpoints)))
    fig = Figure(figsize=(max(7.0, min(40.0, 2.0 + 0.35 * len(x))), 9.0),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(PANELS), 1, sharex=True)
    per_checkpoint = [c.layers() for c in checkpoints]
    for ax, (name, label, log) in zip(axes, PANELS, strict=True):
        for k, layer in enumerate(timeline.layer_names()):  # a layer's colour in every panel
            points = [(i, value) for i, figures in enumerate(per_checkpoint)
                      for value in [figures.get(layer, {}).get(name)] if value is not None]
            if points and (not log or any(v > 0 for _, v in points)):
                ax.plot(*zip(*points, strict=True), "o-", label=layer, ms=3, color=f"C{k % 10}")
        if log:
            ax.set_yscale("log")
        else:
            ax.set_ylim(-0.02, 1.05)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8)
    where = {c.path: i for i, c in enumerate(checkpoints)}
    spans: dict[tuple[str, str, str], list[Event]] = {}
    for event in timeline.events:
        spans.setdefault((event.before, event.after, event.what), []).append(event)
    for (before, after, what), events in spans.items():
        colour = COLOURS[events[0].severity]
        for ax in axes:
            ax.axvspan(where[before], where[after], color=colour, alpha=0.12, lw=0)
        layers = ", ".join(dict.fromkeys(e.layer for e in events))
        axes[0].annotate(f"{layers} {what}", ((where[before] + where[after]) / 2, 1.0),
                         xycoords=("data", "axes fraction"), xytext=(0, 3),
                         textcoords="offset points", ha="center", va="bottom",
                         fontsize=8, color=colour)
    axes[-1].set_xticks(x, [_text(c.step) if c.step is not None else titles(
        [c.path])[c.path] for c in checkpoints], rotation=60, ha="right", fontsize=8)
    axes[-1].set_xlabel("checkpoint (optimizer step)")
    fig.suptitle(f"timeline of {len(checkpoints)} checkpoints: {len(timeline.events)} "
                 "event(s)", fontsize=11)
    return fig

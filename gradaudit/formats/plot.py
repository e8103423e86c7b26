"""The gradient-flow picture: per layer, in depth order, gradient RMS on a log
scale above the dead / saturated fraction of units, with findings marked. When the
model has a training history, its gradient RMS over training (from the optimizer
state) is drawn beside the probe's, and its stalled units beside the dead ones.

This is the plot people draw by hand when a network stops learning. It is
drawn from a report alone (no TensorFlow), so merged JSON reports plot too.
matplotlib is an optional extra (``pip install 'gradaudit[plot]'``); it is used
through its object-oriented API with the Agg canvas, leaving pyplot's global
state (and a notebook's backend) alone.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from gradaudit.errors import AuditError
from gradaudit.report.types import Finding, LayerRow, ModelReport, Severity

if TYPE_CHECKING:
    from matplotlib.figure import Figure, SubFigure

INSTALL_HINT = ("pip install 'gradaudit[plot]' (in a clone of gradaudit's repository: "
                "pip install -e '.[plot]')")
COLOURS = {Severity.ERROR: "#d62728", Severity.WARNING: "#ff7f0e", Severity.INFO: "#1f77b4"}
DPI = 100
HEIGHT = 5.5  # inches per model
MAX_WIDTH = 40.0  # inches; beyond it tick labels are thinned
DISCONNECTED = "GA201"  # a variable with no gradient at all: no RMS to draw
ZERO = "GA202"  # a variable whose gradient is exactly zero, though the layer's RMS may not be


def available() -> bool:
    """Whether matplotlib can be imported (the ``plot`` extra is installed)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def require(what: str) -> None:
    """AuditError naming ``what`` (``--plot``, ``plotting``) if matplotlib is missing."""
    if not available():
        raise AuditError(f"{what} needs matplotlib, which is not installed: {INSTALL_HINT}")


def png(models: Sequence[ModelReport]) -> bytes:
    """The picture of ``models`` (stacked, one panel pair each) as PNG bytes."""
    buffer = io.BytesIO()
    # No "Software" metadata: the same report gives the same bytes.
    figure(models).savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def figure(models: Sequence[ModelReport]) -> Figure:
    """A matplotlib Figure of ``models`` (Jupyter shows it inline)."""
    require("plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    widest = max((len(_plotted(m)) for m in models), default=1)
    width = min(MAX_WIDTH, max(7.0, 2.5 + 0.4 * widest))
    fig = Figure(figsize=(width, HEIGHT * max(len(models), 1)), layout="constrained")
    FigureCanvasAgg(fig)
    panels: list[SubFigure] = (
        list(fig.subfigures(len(models), 1, squeeze=False)[:, 0]) if models else [])
    names = titles([model.path for model in models])
    for panel, model in zip(panels, models, strict=True):
        _draw(panel, model, names[model.path])
    return fig


def titles(paths: Sequence[str]) -> dict[str, str]:
    """Each path's file name, or as many trailing parts as tell it from the other paths
    in the picture (``run1/model.keras``): a long path in a title is cut off on the left."""
    parts = {path: PurePath(path.replace("\\", "/")).parts or (path,) for path in paths}
    titles: dict[str, str] = {}
    for path, own in parts.items():
        keep = 1
        while keep < len(own) and any(other[-keep:] == own[-keep:]
                                      for key, other in parts.items() if key != path):
            keep += 1
        titles[path] = "/".join(own[-keep:])
    return titles


def _plotted(model: ModelReport) -> list[LayerRow]:
    """Layers with something to show: own trainable variables, judged units or a finding.

    A nested model's row (``encoder`` above ``encoder/dense``) counts its
    layers' parameters, not its own: it is drawn only when a finding names it.
    """
    flagged = {f.layer for f in model.findings}
    names = [row.name for row in model.layers]
    containers = {name for name in names if any(n.startswith(name + "/") for n in names)}
    return [row for row in model.layers if row.name in flagged or (
        row.name not in containers and (row.trainable_params or row.units is not None))]


def _draw(panel: Figure | SubFigure, model: ModelReport, title: str) -> None:
    rows = _plotted(model)
    by_layer: dict[str, list[Finding]] = {}
    for finding in model.findings:
        by_layer.setdefault(finding.layer, []).append(finding)
    grad_ax, unit_ax = panel.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    counts = ", ".join(f"{model.count(s)} {s}" for s in reversed(Severity))
    panel.suptitle(f"{title}: gradient flow ({counts})", fontsize=11)
    x = list(range(len(rows)))
    _gradients(grad_ax, x, rows, [{f.code for f in by_layer.get(row.name, [])} for row in rows])
    _fractions(unit_ax, x, rows)
    for i, row in enumerate(rows):
        found = by_layer.get(row.name)
        if found:
            worst = max(f.severity for f in found)
            for ax in (grad_ax, unit_ax):
                ax.axvspan(i - 0.5, i + 0.5, color=COLOURS[worst], alpha=0.15, lw=0)
            codes = " ".join(sorted({f.code for f in found}))
            grad_ax.annotate(codes, (i, 1.0), xycoords=("data", "axes fraction"),
                             xytext=(0, 3), textcoords="offset points", rotation=90,
                             ha="center", va="bottom", fontsize=8, color=COLOURS[worst])
    step = max(1, math.ceil(len(rows) / (MAX_WIDTH / 0.25)))
    unit_ax.set_xticks(x[::step], [r.name for r in rows][::step], rotation=60, ha="right",
                       fontsize=8 if len(rows) < 40 else 6)
    for label, row in zip(unit_ax.get_xticklabels(), rows[::step], strict=False):
        found = by_layer.get(row.name)
        if found:
            label.set_color(COLOURS[max(f.severity for f in found)])
    unit_ax.set_xlim(-0.5, max(len(rows), 1) - 0.5)
    elsewhere = sorted({f"{f.code} {f.layer}" for f in model.findings
                        if f.layer not in {r.name for r in rows}})
    if elsewhere:  # inputs (GA211) and the model as a whole (GA302)
        panel.supxlabel("not on a plotted layer: " + ", ".join(elsewhere), fontsize=8)


PROFILES = (("grad_rms", "o-", "#1f77b4", "gradient RMS"),
            ("train_grad_rms", "s--", "#2ca02c", "gradient RMS over training"))
"""The RMS profiles drawn: the probe's, and training's from the optimizer state."""


def _gradients(ax: Any, x: list[int], rows: list[LayerRow], codes: list[set[str]]) -> None:
    """Gradient RMS (log), the probe's and training's; zero, missing and non-finite probe
    gradients get their own markers. A layer whose kernel gets a zero gradient while its
    bias does not (GA202) has a non-zero RMS, and the zero-gradient marker as well.
    ``codes`` are each row's finding codes."""
    values = [row.grad_rms for row in rows]
    profiles = [(style, colour, label, [getattr(row, field) for row in rows])
                for field, style, colour, label in PROFILES]
    positive = [v for *_, profile in profiles for v in profile if _measured(v)]
    low = min(positive) / 30 if positive else 1e-8
    high = max(positive) * 30 if positive else 1.0
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    for style, colour, label, profile in profiles:
        measured = [(i, v) for i, v in zip(x, profile, strict=True) if _measured(v)]
        if measured:
            ax.plot(*zip(*measured, strict=True), style, color=colour, label=label)
    markers: tuple[tuple[str, str, Callable[[float | None, set[str]], bool]], ...] = (
        ("zero gradient", "v", lambda v, found: v == 0 or ZERO in found),
        ("no gradient", "x", lambda v, found: v is None and DISCONNECTED in found),
        ("NaN/Inf gradient", "*", lambda v, found: v is not None and not math.isfinite(v)),
    )
    for label, marker, test in markers:
        hits = [i for i, v, found in zip(x, values, codes, strict=True) if test(v, found)]
        if hits:
            ax.plot(hits, [low * 1.5] * len(hits), marker, ls="none", ms=9,
                    color="#d62728", label=label, clip_on=False)
    ax.set_ylabel("gradient RMS")
    ax.grid(True, which="major", axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)


def _measured(value: float | None) -> bool:
    """Whether a gradient RMS can sit on a log axis."""
    return value is not None and math.isfinite(value) and value > 0


FRACTIONS = (("dead_fraction", "#7f7f7f", "dead"),
             ("saturated_fraction", "#9467bd", "saturated"),
             ("stalled_fraction", "#2ca02c", "stalled in training"))
"""The unit fractions drawn side by side; stalled only for a model with a training history."""


def _fractions(ax: Any, x: list[int], rows: list[LayerRow]) -> None:
    """Dead fraction (ReLU family), saturated fraction (sigmoid/tanh) and, with a training
    history, the fraction of units stalled in training, per layer."""
    bars = [(field, colour, label) for field, colour, label in FRACTIONS
            if field != "stalled_fraction" or any(row.train_units is not None for row in rows)]
    width = 0.8 / len(bars)
    for k, (field, colour, label) in enumerate(bars):
        offset = (k - (len(bars) - 1) / 2) * width
        ax.bar([i + offset for i in x], [getattr(row, field) or 0.0 for row in rows], width,
               color=colour, label=label)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction of units")
    ax.legend(loc="upper left", fontsize=8)

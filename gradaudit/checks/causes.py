"""Cause and consequence: which finding explains which, and the root causes ranked.

A pure function of a finished report's findings, the model's layer graph
(:data:`~gradaudit.model.interface.LayerGraph`) and its per-layer figures; no TensorFlow.
The links follow the evidence only, and a finding whose cause cannot be decided stays a
root cause (``caused_by`` None), never a guessed link:

- inside a frozen layer (GA301), the rows without gradient (GA201, GA202, GA403) are the
  freeze's;
- stalled units in training (GA401, GA402) on a layer that a too-high learning rate's
  GA414 names as its evidence (``metrics.layers``) are that setting's;
- a layer whose every input is exactly zero because the layers feeding it are fully dead
  (GA102, through layers that keep a zero a zero) is their consequence: its own dead units,
  zero gradients, vanishing or never-updated rows;
- on one layer, GA101 and GA102 explain its GA103 (the BN statistics' view of the same
  dead units); GA102 its own zero, vanishing and never-updated rows, GA111 and
  GA412 its vanishing gradient, GA201 and GA402 its never-updated rows, GA411 and GA206
  its zero gradients (GA411 also the GA206 it causes);
- before a layer, on every path to the outputs: a fully dead layer or a constant output
  (GA102, GA206, GA411) explains zero, vanishing and never-updated rows; a cut (GA201)
  the other GA201 rows with the same cut and their never-updated rows; a fully stalled
  layer in training (GA402) stalled and never-updated rows; a head/loss mismatch, a
  saturated layer or a vanishing gradient (GA412, GA111, GA204) the vanishing gradients
  reached through layers without trainable parameters or with a vanishing gradient too;
  an exploding gradient (GA203) the exploding gradients reached the same way (it grows
  layer by layer towards the inputs from where it starts).

Each rule is one sweep over the graph (forward for zero inputs, backward for "every path
through it"), so linking is linear in the model's size; layers on a cycle (a shared layer
called on its own output) are never reached by a sweep and keep their findings as roots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from gradaudit.model.interface import LayerGraph
from gradaudit.report.catalogue import BY_CODE
from gradaudit.report.types import (
    NO_GRADIENT,
    Cause,
    Finding,
    ModelReport,
    Severity,
    consequence_text,
    finding_ids,
)

LOST = NO_GRADIENT | {"GA204"}
"""Rows whose trainable parameters count as explained: no or vanishing gradient."""
ZERO_KEEPING = frozenset({
    "Flatten", "Reshape", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianDropout", "Permute", "RepeatVector", "ReLU", "Identity",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "ZeroPadding1D", "ZeroPadding2D",
    "ZeroPadding3D", "UpSampling1D", "UpSampling2D", "UpSampling3D", "Concatenate", "Add",
    "Average", "Maximum", "Multiply", "ActivityRegularization",
})
"""Layer types whose output is exactly zero when every input is (no weights, f(0) = 0)."""
ZERO_INPUT = frozenset({"GA101", "GA102", "GA202", "GA204", "GA403"})
"""What a layer fed only zeros shows because of it."""
OWN: Mapping[str, frozenset[str]] = {
    "GA102": frozenset({"GA202", "GA204", "GA403", "GA103"}),
    "GA101": frozenset({"GA103"}),
    "GA411": frozenset({"GA206", "GA202", "GA403"}),
    "GA206": frozenset({"GA202", "GA403"}),
    "GA201": frozenset({"GA403"}),
    "GA402": frozenset({"GA403"}),
    "GA111": frozenset({"GA204"}),
    "GA412": frozenset({"GA204"}),
}
"""A root code → the codes it explains on its own layer (GA103, dead units the BN
statistics show, is evidence of the same dead units the probe measured)."""
STALLED = frozenset({"GA401", "GA402"})
"""Stalled units in training, which a too-high learning rate (GA414) explains when its
finding names their layer as its evidence."""


@dataclass(frozen=True)
class _Kind:
    """A way a layer explains findings before it on every path through it."""

    blockers: tuple[str, ...]
    """Its codes, the layer's own root first where it has several."""
    explains: frozenset[str]
    through_trainable: bool
    """Whether it reaches past a layer with trainable parameters and none of ``blockers``
    (a dead layer zeroes every gradient before it; a vanishing one only its own path)."""


KINDS = (
    _Kind(("GA102", "GA411", "GA206"), frozenset({"GA202", "GA403", "GA204"}), True),
    _Kind(("GA201",), frozenset({"GA201", "GA403"}), True),
    _Kind(("GA402",), frozenset({"GA401", "GA402", "GA403"}), True),
    _Kind(("GA412", "GA111", "GA204"), frozenset({"GA204"}), False),
    _Kind(("GA203",), frozenset({"GA203"}), False),
)


def diagnose(report: ModelReport, graph: LayerGraph) -> ModelReport:
    """``report`` with every finding's ``id`` and ``caused_by`` and its diagnosis."""
    ids = finding_ids(report.findings)
    causes = _Links(report, graph).causes()
    findings = tuple(replace(f, id=i, caused_by=c)
                     for f, i, c in zip(report.findings, ids, causes, strict=True))
    return replace(report, findings=findings, diagnosis=_diagnosis(report, findings))


class _Links:
    """The cause of each finding of one report, decided once per finding."""

    def __init__(self, report: ModelReport, graph: LayerGraph) -> None:
        self.findings = report.findings
        self.graph = graph
        self.rows = {row.name: row for row in report.layers}
        self.at: dict[str, list[int]] = {}
        for k, f in enumerate(self.findings):
            self.at.setdefault(f.layer, []).append(k)
        self.frozen = [f.layer for f in self.findings if f.code == "GA301"]
        self.cause: dict[int, str | None] = {}
        self.reach: list[dict[str, str | None]] = [{} for _ in KINDS]
        self.zero = self._zero_inputs()

    def causes(self) -> list[str | None]:
        """Backward over the graph: a layer's findings are decided once every layer it
        feeds has been; then the findings on layers the graph does not order."""
        for layer in _reverse_topological(self.graph):
            for i, kind in enumerate(KINDS):
                self.reach[i][layer] = self._through(layer, kind, i)
            for k in self.at.get(layer, ()):
                self._decide(k)
        return [self._decide(k) for k in range(len(self.findings))]

    def _first(self, layer: str, codes: Iterable[str]) -> int | None:
        """The layer's first finding of the first of ``codes`` it has."""
        return next((k for code in codes for k in self.at.get(layer, ())
                     if self.findings[k].code == code), None)

    def _root(self, k: int) -> str:
        """The layer of finding ``k``'s root cause (its own when it is one)."""
        return self._decide(k) or self.findings[k].layer

    def _decide(self, k: int) -> str | None:
        if k not in self.cause:
            self.cause[k] = None  # a finding is never its own cause, even through a loop
            f = self.findings[k]
            self.cause[k] = (self._in_frozen(f)
                             or (self.zero.get(f.layer) if f.code in ZERO_INPUT else None)
                             or self._named_by_setting(f)
                             or self._on_own_layer(f) or self._before(f))
        return self.cause[k]

    def _in_frozen(self, finding: Finding) -> str | None:
        """The frozen layer (GA301) a row without gradient sits in or is."""
        if finding.code not in NO_GRADIENT:
            return None
        return next((layer for layer in self.frozen if finding.layer == layer
                     or finding.layer.startswith(layer + "/")), None)

    def _named_by_setting(self, finding: Finding) -> str | None:
        """The model-wide GA414 (a learning rate far too high) that names this stalled
        layer as its evidence (``metrics.layers``)."""
        if finding.code not in STALLED:
            return None
        return next((f.layer for f in self.findings if f.code == "GA414"
                     and finding.layer in f.metrics.get("layers", ())), None)

    def _on_own_layer(self, finding: Finding) -> str | None:
        """The root of the finding on the same layer that explains this one (:data:`OWN`)."""
        for code, explained in OWN.items():
            k = self._first(finding.layer, (code,)) if finding.code in explained else None
            if k is not None:
                return self._root(k)
        return None

    def _before(self, finding: Finding) -> str | None:
        """The root cause every path from the finding's layer meets first, of a kind that
        explains it (for a cut, the same cut)."""
        for i, kind in enumerate(KINDS):
            cause = self.reach[i].get(finding.layer) if finding.code in kind.explains else None
            if cause is not None and (finding.code != "GA201" or self._cut(cause)
                                      == finding.metrics.get("cut_at")):
                return cause
        return None

    def _cut(self, layer: str) -> object:
        k = self._first(layer, ("GA201",))
        return None if k is None else self.findings[k].metrics.get("cut_at")

    def _through(self, layer: str, kind: _Kind, i: int) -> str | None:
        """The one root cause of ``kind`` that every path from ``layer`` meets first;
        None when there is none, or not one."""
        found: set[str | None] = set()
        for target in self.graph.get(layer, ()):
            k = self._first(target, kind.blockers)
            row = self.rows.get(target)
            if k is not None:
                found.add(self._root(k))
            elif kind.through_trainable or (row is not None and not row.trainable_params):
                found.add(self.reach[i].get(target))
            else:
                return None
            if None in found or len(found) > 1:
                return None
        return next(iter(found), None)

    def _zero_inputs(self) -> dict[str, str]:
        """Layer → the first fully dead layer upstream, where every input of the layer is
        exactly zero because of it (through :data:`ZERO_KEEPING` layers); forward sweep."""
        zero_in: dict[str, str] = {}
        zero_out: dict[str, str] = {}
        feeders = _feeders(self.graph)
        for layer in _topological(self.graph, feeders):
            sources = {zero_out.get(p) for p in feeders.get(layer, ())}
            source = sources.pop() if len(sources) == 1 else None
            if source is not None:
                zero_in[layer] = source
            row = self.rows.get(layer)
            if self._first(layer, ("GA102",)) is not None:
                zero_out[layer] = source or layer
            elif source is not None and row is not None and row.type in ZERO_KEEPING:
                zero_out[layer] = source
        return zero_in


def _feeders(graph: LayerGraph) -> dict[str, list[str]]:
    """Layer → the layers that feed it."""
    feeders: dict[str, list[str]] = {}
    for layer, targets in graph.items():
        for target in targets:
            feeders.setdefault(target, []).append(layer)
    return feeders


def _topological(graph: LayerGraph, feeders: Mapping[str, list[str]]) -> list[str]:
    """Layers in an order where each comes after every layer feeding it (Kahn); a layer
    on or after a cycle is left out."""
    nodes = list(dict.fromkeys([*graph, *feeders]))
    waiting = {n: len(set(feeders.get(n, ()))) for n in nodes}
    ready = [n for n in nodes if not waiting[n]]
    order = []
    while ready:
        layer = ready.pop()
        order.append(layer)
        for target in dict.fromkeys(graph.get(layer, ())):
            waiting[target] -= 1
            if not waiting[target]:
                ready.append(target)
    return order


def _reverse_topological(graph: LayerGraph) -> list[str]:
    """Layers in an order where each comes after every layer it feeds; a layer on or
    before a cycle is left out."""
    backwards = {n: tuple(dict.fromkeys(f)) for n, f in _feeders(graph).items()}
    return _topological(backwards, {n: list(t) for n, t in graph.items()})


def _diagnosis(report: ModelReport, findings: Sequence[Finding]) -> tuple[Cause, ...]:
    """One entry per layer with a root finding, when it or what it explains is at warning
    or above; ranked by severity, then the trainable parameters it leaves without a
    usable gradient, then depth (the model's order)."""
    rows = {row.name: row for row in report.layers}
    depth = {row.name: i for i, row in enumerate(report.layers)}
    roots: dict[str, list[Finding]] = {}
    explained: dict[str, list[Finding]] = {}
    for f in findings:
        if f.caused_by is None:
            roots.setdefault(f.layer, []).append(f)
        else:
            explained.setdefault(f.caused_by, []).append(f)
    ranked = []
    for layer, own in roots.items():
        effects = explained.get(layer, [])
        worst = max(f.severity for f in [*own, *effects])
        if worst < Severity.WARNING:
            continue
        lost = {f.layer for f in [*own, *effects] if f.code in LOST}
        params = sum(rows[name].trainable_params for name in lost if name in rows)
        key = (-worst, -params, depth.get(layer, -1), layer)
        ranked.append((key, _cause(report, own, effects, params)))
    return tuple(cause for _, cause in sorted(ranked, key=lambda pair: pair[0]))


def _cause(report: ModelReport, own: list[Finding], effects: list[Finding],
           params: int) -> Cause:
    main = own[0]
    summary = BY_CODE[main.code].title if main.code in BY_CODE else main.code
    if effects:
        summary += f"; {consequence_text(effects)}"
    if params:
        share = params / report.params_trainable if report.params_trainable else 0.0
        summary += (f"; {params:,} of {report.params_trainable:,} trainable parameters "
                    f"({share:.0%}) get no or a vanishing gradient because of it")
    return Cause(layer=main.layer, codes=tuple(dict.fromkeys(f.code for f in own)),
                 explains=tuple(f.id for f in effects), summary=summary,
                 fix=fix(main, report))


def fix(finding: Finding, report: ModelReport) -> str:
    """The fix for a root cause in one line, concrete for the case (the longer text is
    the catalogue's, ``gradaudit explain CODE``)."""
    layer, code, metrics = finding.layer, finding.code, finding.metrics
    rate = report.training.learning_rate if report.training is not None else None
    lower = (f"lower the learning rate ({rate:g} in the file)" if rate is not None
             else "lower the learning rate")
    row = next((r for r in report.layers if r.name == layer), None)
    if code in ("GA102", "GA101", "GA401", "GA402"):
        return (f"{lower}, re-initialise '{layer}' with He normal, use LeakyReLU or ELU, add "
                "BatchNormalization before the activation, and check the input scale")
    if code in ("GA411", "GA206") and (metrics.get("activation") == "softmax"
                                       or (row is not None and row.activation == "softmax")):
        return (f"replace the one-unit softmax of '{layer}' by Dense(1, activation='sigmoid') "
                "with binary_crossentropy, or Dense(n_classes, activation='softmax') with "
                "categorical_crossentropy")
    if code == "GA201":
        return (f"remove the {metrics.get('cut_at', 'cutting operation')} after '{layer}' "
                "(or keep the path float) so the gradient reaches it")
    if code == "GA301":
        return f"unfreeze '{layer}' (trainable=True) or remove it from the path to the loss"
    if code in ("GA111", "GA204"):
        return (f"standardise the inputs, use ReLU-family activations before '{layer}' or "
                "normalisation between layers (Glorot/He initialisation)")
    if code == "GA414" and metrics.get("usual") is not None and rate is not None:
        return (f"lower the learning rate from {rate:g} toward {metrics['optimizer']}'s usual "
                f"{metrics['usual']:g}, or warm it up; re-initialise the stalled layers")
    if code == "GA412":
        return f"pair the head '{layer}' with its loss: `gradaudit explain GA412` lists the pairs"
    rule = BY_CODE.get(code)
    return rule.fix.split(". ")[0].rstrip(".") if rule is not None else ""

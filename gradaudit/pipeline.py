"""The pipeline: path → model → inputs → probe statistics → findings → report.

Beside the probe, independent of it, the file's training state (optimizer
state, compile config) gives the training history and the GA4xx findings
(:func:`with_training`); ``--no-probe`` gives only those (:func:`audit_file`),
without TensorFlow.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradaudit.checks import batchnorm, heads, ordered
from gradaudit.checks.training import LayerHistory, check, history
from gradaudit.errors import AuditError, reported_as
from gradaudit.history.batchnorm import BatchNormStats, read_batchnorm
from gradaudit.history.training_state import (
    TrainingState,
    read_training_state,
    trainable_by_layer,
)
from gradaudit.load import config_layers, limits
from gradaudit.load.prescan import checked_config
from gradaudit.model.interface import (
    AuditedModel,
    LayerGraph,
    Variable,
    param_count,
    variable_label,
)
from gradaudit.options import Options, Thresholds
from gradaudit.report.types import (
    STATISTICS_CHECKS,
    TRAINING_CHECKS,
    AuditRun,
    InputRow,
    LayerRow,
    LoadError,
    ModelReport,
    TrainingSummary,
)

if TYPE_CHECKING:
    import numpy as np

    from gradaudit.history.loss_config import CompiledLosses
    from gradaudit.load.loader import LoadedModel
    from gradaudit.model.specs import InputSpec
    from gradaudit.probe.evidence import Evidence, LayerEvidence
    from gradaudit.probe.supplied import SuppliedInputs


Step = Callable[[str], None]
"""Told the step an audit is in (``loading``, ``probing batch 2/4`` …), for progress."""


def audit_paths(
    paths: Sequence[str], options: Options, supplied: SuppliedInputs | None = None,
    progress: Callable[[str, str], None] | None = None,
) -> AuditRun:
    """Audit every path in one process; a failing path does not stop the others.

    ``supplied`` inputs (``--inputs``) replace random ones for every model;
    ``progress`` is told each path with the step its audit is in, ``loading`` first.
    """
    reports, errors = [], []
    for path in paths:
        on_step = None if progress is None else functools.partial(progress, path)
        try:
            reports.append(audit_path(path, options, supplied, on_step=on_step))
        except AuditError as exc:
            errors.append(LoadError(path=path, error=str(exc)))
    return AuditRun(models=tuple(reports), errors=tuple(errors))


def audit_path(
    path: str, options: Options, supplied: SuppliedInputs | None = None, *,
    on_step: Step | None = None, loaded: LoadedModel | None = None,
) -> ModelReport:
    """Load one file and audit it; AuditError with a reason if it cannot be. ``loaded``:
    the file's model, already loaded (a timeline swaps a checkpoint's weights in)."""
    if on_step is not None:
        on_step("reading" if options.no_probe else "loading")
    if options.no_probe:
        return audit_file(path, options)
    from gradaudit.history.loss_config import compiled_losses
    from gradaudit.load.loader import load_model

    with _quiet_library_output():
        if loaded is None:
            loaded = load_model(path, unsafe=options.unsafe, limits=options.limits,
                                signature=options.signature, imports=options.imports,
                                seed=options.seed)
        training = file_training_state(path, loaded.format, loaded.config)
        losses = None if training is None else compiled_losses(loaded.config,
                                                               training.compile)
        return audit_model(loaded.model, options, path=path, fmt=loaded.format,
                           unsafe=loaded.unsafe, supplied=supplied, on_step=on_step,
                           training=training, losses=losses, config=loaded.config,
                           batchnorm=_loaded_batchnorm(path, loaded))


def audit_checkpoint(
    path: str, options: Options, supplied: SuppliedInputs | None = None, *,
    on_step: Step | None = None,
) -> ModelReport:
    """:func:`audit_path` for ``gradaudit timeline``: the model built for the previous
    checkpoint of the same architecture is reused, this file's weights swapped in
    (:func:`gradaudit.load.checkpoints.load_checkpoint`)."""
    if options.no_probe:
        return audit_path(path, options, supplied, on_step=on_step)
    from gradaudit.load.checkpoints import load_checkpoint

    if on_step is not None:
        on_step("loading")
    with _quiet_library_output():
        loaded = load_checkpoint(path, options)
    return audit_path(path, options, supplied, on_step=on_step, loaded=loaded)


def audit_model(
    model: AuditedModel, options: Options, *, path: str = "", fmt: str = "keras",
    unsafe: bool = False, supplied: SuppliedInputs | None = None,
    on_step: Step | None = None, training: TrainingState | None = None,
    losses: CompiledLosses | None = None, config: dict[str, Any] | None = None,
    batchnorm: BatchNormStats | None = None,
) -> ModelReport:
    """Inputs → probe → evidence → checks → report, for any loaded model; then the
    ``training`` state's history and findings (:func:`with_training`), the ``batchnorm``
    statistics' dead units (:func:`with_batchnorm`), the architecture's
    from the model ``config`` where there is one, and the diagnosis (:func:`finished`).
    The probe differentiates the compiled ``losses`` where there are any
    (``options.objective``)."""
    from gradaudit.checks import run_checks
    from gradaudit.probe import objective as objective_mod
    from gradaudit.probe.evidence import gather
    from gradaudit.probe.tape import probe

    step = on_step or (lambda _: None)
    # Before anything runs: supplied labels that do not fit the loss are a usage error.
    objective = objective_mod.build(losses, options.objective, options.seed,
                                    supplied.labels if supplied is not None else {})
    step("sizing")
    planned = _plan_inputs(model, options, supplied)
    with reported_as("running the model on probe inputs failed: {reason}"):
        result = probe(model, planned.batches, options, objective=objective,
                       on_batch=lambda samples: step(f"probing batch "
                       f"{math.ceil(samples / planned.batch_size)}/{planned.batch_count}"))
    objective = objective.applied(result.returned)
    kinds = objective.kinds(list(losses.outputs) if losses is not None else [])
    step("checks")
    specs = planned.specs
    float_inputs = [(spec.name, i) for i, spec in enumerate(specs) if spec.is_float]
    token_ids = {spec.name for spec in specs if spec.is_token_ids}
    evidence = gather(model, result, float_inputs, token_ids, options.thresholds)
    findings = run_checks(evidence, options.thresholds)
    total, trainable = param_count(model.weights), param_count(model.trainable_variables)
    unjudged = _unjudged(model, evidence)
    report = ModelReport(
        path=path,
        format=fmt,
        model_name=model.name,
        params_total=total,
        params_trainable=trainable,
        params_non_trainable=total - trainable,
        samples=result.samples,
        batch_size=planned.batch_size,
        seed=options.seed,
        inputs=tuple(InputRow(s.name, s.shape, s.dtype) for s in specs),
        layers=tuple(_layer_row(layer) for layer in evidence.layers),
        findings=tuple(findings),
        unsafe=unsafe,
        inputs_source=planned.source,
        notes=model.notes + planned.notes + objective.notes
        + _unjudged_note(unjudged, trainable),
        imports=options.imports,
        params_measured=trainable - param_count(unjudged),
        objective="loss" if objective.uses_loss else "projection",
        objectives=kinds if len(set(kinds.values())) > 1 else None,
    )
    labels = {} if losses is None else {
        name: given for name, given in zip(losses.outputs, objective.labels, strict=False)
        if given is not None}
    trained = with_training(report, training, options.thresholds, labels)
    return finished(with_batchnorm(trained, batchnorm, options.thresholds, config),
                    config, model.layer_graph())


def finished(report: ModelReport, config: dict[str, Any] | None,
             graph: LayerGraph) -> ModelReport:
    """The last step of every audit, once the probe's and the training state's findings
    are in: the architecture's findings (:func:`with_architecture`), then every finding
    linked to its root cause along ``graph`` and the causes ranked
    (:func:`gradaudit.checks.causes.diagnose`)."""
    from gradaudit.checks.causes import diagnose

    return diagnose(with_architecture(report, config), graph)


def _unjudged(model: AuditedModel, evidence: Evidence) -> list[Variable]:
    """Trainable variables whose gradient no check judged: owned by no layer the model
    lists (a subclassed model's own weight), or created after the probe began."""
    judged = {id(v.variable) for layer in evidence.layers for v in layer.variables}
    return [v for v in model.trainable_variables if id(v) not in judged]


def _unjudged_note(unjudged: list[Variable], trainable: int) -> tuple[str, ...]:
    if not unjudged:
        return ()
    names = ", ".join(str(getattr(v, "path", None) or v.name) for v in unjudged)
    return (f"the gradients of {param_count(unjudged):,} of the {trainable:,} trainable "
            f"parameters were not judged (owned by no layer of the model): {names}",)


@dataclass(frozen=True)
class _PlannedInputs:
    """What the probe is fed: the inputs' specs, the batches (drawn as they are used),
    where they come from, and the batch size chosen to fit the memory budget."""

    specs: list[InputSpec]
    batches: Iterator[list[np.ndarray]]
    source: dict[str, Any]
    batch_size: int
    batch_count: int
    notes: tuple[str, ...]


def _plan_inputs(model: AuditedModel, options: Options,
                 supplied: SuppliedInputs | None) -> _PlannedInputs:
    """Random inputs sized so nothing in the model is empty, or the user's; in batches
    that keep a probe step inside ``--max-memory`` and ``--max-input-elements``, or of
    the one size a stateful model declares."""
    from gradaudit.model.specs import fixed_batch
    from gradaudit.probe import random_inputs
    from gradaudit.probe.memory import batch_within, default_budget
    from gradaudit.probe.sizing import output_elements, size_unknown_axes

    specs = model.input_specs(synthesise=supplied is None, shapes=options.input_shape)
    fixed = fixed_batch(specs)
    notes: tuple[str, ...] = ()
    if supplied is None:
        # Before any random input is drawn: the one-sample pass below draws some.
        limits.check_input_elements([spec.shape for spec in specs],
                                    options.limits.max_input_elements)
        sized = size_unknown_axes(model, specs, options)
        specs, elements, rows = sized.specs, sized.output_elements, options.samples
        notes += (sized.note,) if sized.note else ()
    else:
        specs, arrays = supplied.matched(specs)
        elements, rows = output_elements(model, specs, options), supplied.rows
    if fixed is not None:
        rows, note = _whole_batches(fixed, rows, supplied is not None)
        notes += (note,)
    choice = batch_within(options.max_memory or default_budget(),
                          fixed or min(options.batch_size, rows), specs, elements,
                          param_count(model.trainable_variables),
                          options.limits.max_input_elements)
    if fixed is not None and choice.reason is not None:
        raise AuditError(f"the model's stateful layers run only in batches of {fixed}, "
                         f"and {choice.reason}")
    notes += (choice.note,) if choice.note else ()
    size = choice.batch_size
    if supplied is None:
        dist, value_range = options.input_dist, options.input_range
        batches = random_inputs.random_batches(specs, rows, size, options.seed, dist,
                                               value_range)
        source = random_inputs.random_source(specs, options.seed, dist, value_range)
    else:
        batches, source = supplied.batches(arrays, size), supplied.source
    return _PlannedInputs(specs, batches, source, size, math.ceil(rows / size), notes)


def _whole_batches(fixed: int, rows: int, supplied: bool) -> tuple[int, str]:
    """The samples to probe in whole batches of the ``fixed`` size a stateful model
    declares, and the note that says so; AuditError for supplied rows that do not fill them."""
    why = f"batches of {fixed}, the batch size the model declares (its stateful layers " \
          "keep a state per sample)"
    if supplied:
        if rows % fixed:
            raise AuditError(f"the model runs only in {why}; the {rows} rows of --inputs "
                             f"(at most --samples) are not a multiple of {fixed}")
        return rows, why
    whole = math.ceil(rows / fixed) * fixed
    return whole, why + ("" if whole == rows else
                         f"; --samples {rows} rounded up to {whole}, whole batches")


def _layer_row(layer: LayerEvidence) -> LayerRow:
    info = layer.info
    non_trainable = info.non_trainable_weights
    reason = None
    if info.frozen_root:
        reason = "frozen (trainable=False)"
    elif non_trainable and not info.is_container and info.frozen_by is None:
        labels = ", ".join(sorted({variable_label(v) for v in non_trainable}))
        reason = f"non-trainable weights: {labels}"
    grad_rms = layer.grad_rms
    return LayerRow(
        name=info.name, type=info.type, activation=info.activation,
        params=param_count(info.weights), trainable_params=param_count(info.trainable_weights),
        non_trainable_params=param_count(non_trainable), trainable=info.trainable,
        units=layer.units.units if layer.units is not None else None,
        dead_units=layer.dead_units, dead_fraction=_rounded(layer.dead_fraction),
        saturated_fraction=_rounded(layer.saturated_fraction),
        grad_rms=_significant(grad_rms), non_trainable_reason=reason,
    )


def _rounded(fraction: float | None) -> float | None:
    return None if fraction is None else round(fraction, 4)


def _significant(value: float | None) -> float | None:
    """Six significant digits: what a report needs, and stable across platforms."""
    return None if value is None else float(f"{value:.6g}")


@contextlib.contextmanager
def _quiet_library_output() -> Iterator[None]:
    """Keep Keras/TensorFlow chatter off stdout, where the report goes."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        yield


# Training forensics (issue 13): what the file's optimizer state and compile config
# say about the gradients training saw. Read from the file, not from the probe.

def file_training_state(path: str, fmt: str,
                        config: dict[str, Any] | None) -> TrainingState | None:
    """The training state in a .keras or .h5 file; None for a SavedModel or a file
    saved without compile (no optimizer state, no compile config). ``config`` is the
    model config read past the size gates, which are not run again."""
    if fmt not in ("keras", "h5") or config is None:
        return None
    state = read_training_state(path, fmt, config=config)
    # A file saved without compile says nothing about training: no GA404 on every
    # inference-only file. One compiled but never trained still gets it.
    compiled = state.compile is not None and any(state.compile.losses.values())
    return None if state.optimizer is None and not compiled else state


def with_training(report: ModelReport, state: TrainingState | None,
                  thresholds: Thresholds,
                  labels: Mapping[str, np.ndarray] | None = None) -> ModelReport:
    """``report`` with the training history on its layers (matched by name), the
    training summary, the state's notes and the GA4xx findings among the others; the
    user's ``labels`` (by output name) are read against the heads they train."""
    if state is None:
        return report
    histories = {h.layer: h for h in history(state, thresholds)}
    depth = {row.name: i for i, row in enumerate(report.layers)}
    unmatched = [layer for layer in histories if layer not in depth]
    notes = state.notes + ((
        f"optimizer state for layers the model does not list: {', '.join(unmatched)}",)
        if unmatched else ())
    compiled = state.compile
    return replace(
        report,
        layers=tuple(_with_history(row, histories.get(row.name)) for row in report.layers),
        findings=tuple(ordered(
            [*report.findings, *check(state, thresholds, report.model_name),
             *heads.unreachable_labels(state, labels or {})], depth)),
        notes=report.notes + notes,
        training=TrainingSummary(
            optimizer=state.optimizer, iterations=state.iterations,
            learning_rate=state.learning_rate,
            loss=None if compiled is None else dict(compiled.losses),
            from_logits=None if compiled is None else dict(compiled.from_logits),
            loss_weights=None if compiled is None else dict(compiled.loss_weights)),
        checks_run=report.checks_run + TRAINING_CHECKS,
    )


def _with_history(row: LayerRow, layer: LayerHistory | None) -> LayerRow:
    if layer is None:
        return row
    since = layer.steps_since_gradient
    return replace(row, train_units=layer.units, stalled_units=layer.stalled_units,
                   stalled_fraction=_rounded(layer.stalled_fraction),
                   steps_since_gradient=None if since is None else round(since, 1),
                   train_grad_rms=_significant(layer.train_grad_rms))


def audit_file(path: str, options: Options) -> ModelReport:
    """``--no-probe``: the checks that read the file, no model built or run, no TensorFlow.

    The gates that guard reading stay (archive members, weight dataset sizes); the
    ones that guard running code do not apply, since nothing runs. The layers are
    those the optimizer state covers, typed from the config, with the trainable
    parameters the state holds; the model's parameters are the file's weight datasets,
    the trainable ones those the config's ``trainable`` flags leave (the state's when
    the config cannot tell: a subclassed model).
    """
    file = Path(path)
    fmt, config = checked_config(file, options.limits.max_params,
                                 "--no-probe reads the training state of .keras and .h5 "
                                 "files; a SavedModel directory has none it can read")
    total = limits.check_weight_datasets(file, fmt, options.limits.max_params)
    state = file_training_state(path, fmt, config)
    rows = () if state is None else _state_rows(state, config)
    by_layer = trainable_by_layer(path, fmt, config)  # also without compile or optimizer state
    trainable = (sum(by_layer.values()) if by_layer is not None
                 else sum(row.trainable_params for row in rows))
    batchnorms = read_batchnorm(path, fmt, config)
    report = ModelReport(
        path=path, format=fmt, model_name=config_layers.model_name(config, file.stem),
        params_total=total, params_trainable=trainable,
        params_non_trainable=max(total - trainable, 0), samples=0, seed=options.seed,
        inputs=(), layers=rows, findings=(), checks_run=(),
        notes=() if state is not None else (
            "the file holds no training state (saved without compile): "
            + ("only its BatchNormalization statistics are checked" if batchnorms.layers
               else "nothing to check"),))
    trained = with_training(report, state, options.thresholds)
    return finished(with_batchnorm(trained, batchnorms, options.thresholds, config,
                                   by_layer or {}), config, {})


def with_architecture(report: ModelReport, config: dict[str, Any] | None) -> ModelReport:
    """``report`` with GA412's findings from the layer order in the model ``config``
    (:func:`gradaudit.checks.heads.architecture`), compiled or not."""
    found = [] if config is None else heads.architecture(config)
    depth = {row.name: i for i, row in enumerate(report.layers)}
    return replace(report, findings=tuple(ordered([*report.findings, *found], depth)))


def _state_rows(state: TrainingState, config: dict[str, Any]) -> tuple[LayerRow, ...]:
    """One row per layer with optimizer state, in the state's order, typed from ``config``."""
    params: dict[str, int] = {}
    for variable in state.variables:
        params[variable.layer] = params.get(variable.layer, 0) + math.prod(variable.shape)
    rows = []
    for name, count in params.items():
        layer = config_layers.config_layer(config, name) or config_layers.ConfigLayer("", None)
        rows.append(LayerRow(
            name=name, type=layer.type, activation=layer.activation, params=count,
            trainable_params=count, non_trainable_params=0, trainable=True, units=None,
            dead_units=None, dead_fraction=None, saturated_fraction=None, grad_rms=None))
    return tuple(rows)


# BatchNorm statistics (issue 20): the ReLU units a BN layer's saved statistics show dead
# on the training data. Read from the file, not from the probe, so --no-probe has them too.

def with_batchnorm(report: ModelReport, stats: BatchNormStats | None, thresholds: Thresholds,
                   config: dict[str, Any] | None,
                   params: Mapping[str, int] | None = None) -> ModelReport:
    """``report`` with ``bn_dead_units`` on the ReLU-family layers the BN ``stats`` speak for
    (a row typed from ``config``, with its trainable ``params``, for a layer the report does
    not list: ``--no-probe``), GA103 among the findings and the notes of what was not read."""
    if stats is None:
        return report
    judged = {result.layer: result for result in batchnorm.judge(stats, thresholds)}
    rows = list(report.layers)
    listed = {row.name for row in rows}
    for name, result in judged.items():
        if name not in listed:
            layer = config_layers.config_layer(config or {}, name) or (
                config_layers.ConfigLayer("", None))
            count = (params or {}).get(name, 0)
            rows.append(LayerRow(
                name=name, type=layer.type, activation=layer.activation or result.activation,
                params=count, trainable_params=count, non_trainable_params=0, trainable=True,
                units=result.units, dead_units=None, dead_fraction=None,
                saturated_fraction=None, grad_rms=None))
    rows = [row if row.name not in judged else replace(
        row, bn_dead_units=judged[row.name].dead_units,
        bn_dead_fraction=_rounded(judged[row.name].dead_fraction)) for row in rows]
    depth = {row.name: i for i, row in enumerate(rows)}
    found = [result.finding for result in judged.values() if result.finding is not None]
    ran = () if not stats.layers or "GA1" in report.checks_run else STATISTICS_CHECKS
    return replace(report, layers=tuple(rows), notes=report.notes + stats.notes,
                   findings=tuple(ordered([*report.findings, *found], depth)),
                   checks_run=tuple(sorted(report.checks_run + ran)))


def _loaded_batchnorm(path: str, loaded: LoadedModel) -> BatchNormStats:
    """The BN statistics of a loaded file: a ``.keras`` or ``.h5`` file's weights, or the
    variables a SavedModel's serving graph reads them from (the probe has loaded it)."""
    from gradaudit.model.signature import SignatureModel

    if isinstance(loaded.model, SignatureModel):
        return loaded.model.batchnorm()
    return read_batchnorm(path, loaded.format, loaded.config)

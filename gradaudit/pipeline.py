"""The pipeline: path → model → inputs → probe statistics → findings → report."""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from gradaudit.errors import AuditError, reported_as
from gradaudit.load.limits import check_input_elements
from gradaudit.options import Options, Thresholds
from gradaudit.report.types import AuditRun, InputRow, LayerRow, LoadError, ModelReport
from gradaudit.runtime import import_tensorflow

if TYPE_CHECKING:
    from gradaudit.probe.supplied import SuppliedInputs


def audit_paths(
    paths: Sequence[str], options: Options, supplied: SuppliedInputs | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> AuditRun:
    """Audit every path in one process; a failing path does not stop the others.

    ``supplied`` inputs (``--inputs``) replace random ones for every model;
    ``progress`` is told each path before it is audited (with 0) and after each
    probe batch (with the samples probed so far).
    """
    import_tensorflow()
    reports, errors = [], []
    for path in paths:
        on_batch = None
        if progress is not None:
            progress(path, 0)
            on_batch = functools.partial(progress, path)
        try:
            reports.append(audit_path(path, options, supplied, on_batch=on_batch))
        except AuditError as exc:
            errors.append(LoadError(path=path, error=str(exc)))
    return AuditRun(models=tuple(reports), errors=tuple(errors))


def audit_path(
    path: str, options: Options, supplied: SuppliedInputs | None = None, *,
    on_batch: Callable[[int], None] | None = None,
) -> ModelReport:
    """Load one file and audit it; AuditError with a reason if it cannot be."""
    import keras

    from gradaudit.load.loader import load_model

    with _quiet_library_output():
        # Layers created without an explicit seed (Dropout …) draw theirs from
        # the global RNGs while loading: seed them so reports are reproducible.
        keras.utils.set_random_seed(options.seed)
        loaded = load_model(path, unsafe=options.unsafe, limits=options.limits,
                            signature=options.signature)
        audit = audit_signature if loaded.format == "savedmodel" else audit_model
        return audit(loaded.model, options, path=path, fmt=loaded.format,
                     unsafe=loaded.unsafe, supplied=supplied, on_batch=on_batch)


def audit_model(
    model: Any, options: Options, *, path: str = "", fmt: str = "keras", unsafe: bool = False,
    supplied: SuppliedInputs | None = None, on_batch: Callable[[int], None] | None = None,
) -> ModelReport:
    """Probe a Keras model in memory and build its report."""
    from gradaudit.model import specs as inputs
    from gradaudit.model.keras_graph import describe

    structure = describe(model)
    specs = inputs.input_specs(model, synthesise=supplied is None)
    return _audit(model, structure, specs, options, path=path, fmt=fmt, unsafe=unsafe,
                  supplied=supplied, on_batch=on_batch)


def audit_signature(
    model: Any, options: Options, *, path: str = "", fmt: str = "savedmodel",
    unsafe: bool = False, supplied: SuppliedInputs | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ModelReport:
    """Probe a SavedModel signature (a savedmodel.RestoredModel) and build its report."""
    from gradaudit.model import signature as savedmodel

    structure = savedmodel.describe(model)
    specs = savedmodel.input_specs(model, synthesise=supplied is None)
    runner = savedmodel.Runner(model, structure, specs)
    return _audit(runner, structure, specs, options, path=path, fmt=fmt, unsafe=unsafe,
                  supplied=supplied, notes=structure.notes, on_batch=on_batch)


def _audit(
    runnable: Any, structure: Any, specs: list[Any], options: Options, *, path: str, fmt: str,
    unsafe: bool, supplied: SuppliedInputs | None, notes: tuple[str, ...] = (),
    on_batch: Callable[[int], None] | None = None,
) -> ModelReport:
    """Inputs → probe → evidence → checks → report, for anything ``probe`` can call."""
    from gradaudit.checks import run_checks
    from gradaudit.probe import random_inputs
    from gradaudit.probe.evidence import gather
    from gradaudit.probe.tape import probe

    model = structure.model
    watched = [info for info in structure.layers if info.unit_rule is not None]
    if supplied is None:
        check_input_elements([spec.shape for spec in specs],
                             min(options.batch_size, options.samples),
                             options.limits.max_input_elements)
        batches = random_inputs.random_batches(specs, options.samples, options.batch_size, options.seed,
                                        options.input_dist, options.input_range)
        source = random_inputs.random_source(options.seed, options.input_dist, options.input_range)
    else:
        batches, source = supplied.batches(specs, options.batch_size), supplied.source
    with reported_as("running the model on probe inputs failed: {reason}"):
        result = probe(runnable, watched, batches, seed=options.seed,
                       saturation_eps=options.thresholds.saturation_eps,
                       saturation_samples=options.thresholds.saturation_samples,
                       max_samples=options.samples, training=not options.inference,
                       early_stop=not options.all_samples, compiled=_prefers_tracing(structure),
                       on_batch=on_batch)
    float_inputs = [(spec.name, i) for i, spec in enumerate(specs) if spec.is_float]
    evidence = gather(structure, result, float_inputs)
    findings = run_checks(evidence, options.thresholds)
    return ModelReport(
        path=path,
        format=fmt,
        model_name=model.name,
        params_total=_count(model.weights),
        params_trainable=_count(model.trainable_weights),
        params_non_trainable=_count(model.non_trainable_weights),
        samples=result.samples,
        seed=options.seed,
        inputs=tuple(InputRow(s.name, s.shape, s.dtype) for s in specs),
        layers=tuple(_layer_row(layer, options.thresholds) for layer in evidence.layers),
        findings=tuple(findings),
        unsafe=unsafe,
        inputs_source=source,
        notes=notes,
    )


def _prefers_tracing(structure: Any) -> bool:
    """Trace the probe step with ``tf.function`` only for recurrent models.

    Measured (benchmarks/README.md): an eager RNN loop costs 2-3x a traced
    step, while for feed-forward models tracing costs as much as it saves over
    the few batches of a probe (or more, for small models).
    """
    import keras

    recurrent = (keras.layers.RNN, keras.layers.Bidirectional)
    return any(isinstance(getattr(info, "layer", None), recurrent) for info in structure.layers)


def _layer_row(layer: Any, thresholds: Thresholds) -> LayerRow:
    from gradaudit.model.keras_graph import variable_label

    info = layer.info
    weights = info.layer.weights
    non_trainable = info.layer.non_trainable_weights
    units = layer.units
    dead_units = dead_fraction = saturated_fraction = None
    if units is not None and units.rule.kind == "relu":
        dead_units = units.dead_units()
        dead_fraction = round(dead_units / units.units, 4)
    elif units is not None:
        saturated_fraction = round(units.saturated_units(thresholds.saturation_samples) / units.units, 4)
    reason = None
    if info.frozen_root:
        reason = "frozen (trainable=False)"
    elif non_trainable and not info.is_container and info.frozen_by is None:
        labels = ", ".join(sorted({variable_label(v) for v in non_trainable}))
        reason = f"non-trainable weights: {labels}"
    grad_rms = layer.grad_rms
    return LayerRow(
        name=info.name, type=info.type, activation=info.activation,
        params=_count(weights), trainable_params=_count(info.layer.trainable_weights),
        non_trainable_params=_count(non_trainable), trainable=bool(info.layer.trainable),
        units=units.units if units is not None else None, dead_units=dead_units,
        dead_fraction=dead_fraction, saturated_fraction=saturated_fraction,
        grad_rms=None if grad_rms is None else float(f"{grad_rms:.6g}"),
        non_trainable_reason=reason,
    )


def _count(variables: Any) -> int:
    from gradaudit.model.keras_graph import param_count

    return param_count(list(variables))



@contextlib.contextmanager
def _quiet_library_output() -> Iterator[None]:
    """Keep Keras/TensorFlow chatter off stdout, where the report goes."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        yield

"""The pipeline: path → model → inputs → probe statistics → findings → report."""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from gradaudit.errors import AuditError, reported_as
from gradaudit.load.limits import check_input_elements
from gradaudit.model.interface import AuditedModel, param_count, variable_label
from gradaudit.options import Options
from gradaudit.report.types import AuditRun, InputRow, LayerRow, LoadError, ModelReport
from gradaudit.runtime import import_tensorflow

if TYPE_CHECKING:
    from gradaudit.probe.evidence import LayerEvidence
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
                            signature=options.signature, imports=options.imports)
        return audit_model(loaded.model, options, path=path, fmt=loaded.format,
                           unsafe=loaded.unsafe, supplied=supplied, on_batch=on_batch)


def audit_model(
    model: AuditedModel, options: Options, *, path: str = "", fmt: str = "keras",
    unsafe: bool = False, supplied: SuppliedInputs | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ModelReport:
    """Inputs → probe → evidence → checks → report, for any loaded model."""
    from gradaudit.checks import run_checks
    from gradaudit.probe import random_inputs
    from gradaudit.probe.evidence import gather
    from gradaudit.probe.sizing import size_unknown_axes
    from gradaudit.probe.tape import probe

    specs = model.input_specs(synthesise=supplied is None, shapes=options.input_shape)
    notes = model.notes
    if supplied is None:
        sized = size_unknown_axes(model, specs, options)
        specs, notes = sized.specs, notes + ((sized.note,) if sized.note else ())
        check_input_elements([spec.shape for spec in specs],
                             min(options.batch_size, options.samples),
                             options.limits.max_input_elements)
        batches = random_inputs.random_batches(specs, options.samples, options.batch_size,
                                               options.seed, options.input_dist,
                                               options.input_range)
        source = random_inputs.random_source(specs, options.seed, options.input_dist,
                                             options.input_range)
    else:
        specs, batches = supplied.batches(specs, options.batch_size)
        source = supplied.source
    with reported_as("running the model on probe inputs failed: {reason}"):
        result = probe(model, batches, options, on_batch=on_batch)
    float_inputs = [(spec.name, i) for i, spec in enumerate(specs) if spec.is_float]
    token_ids = {spec.name for spec in specs if spec.is_token_ids}
    evidence = gather(model, result, float_inputs, token_ids, options.thresholds)
    findings = run_checks(evidence, options.thresholds)
    total, trainable = param_count(model.weights), param_count(model.trainable_variables)
    return ModelReport(
        path=path,
        format=fmt,
        model_name=model.name,
        params_total=total,
        params_trainable=trainable,
        params_non_trainable=total - trainable,
        samples=result.samples,
        seed=options.seed,
        inputs=tuple(InputRow(s.name, s.shape, s.dtype) for s in specs),
        layers=tuple(_layer_row(layer) for layer in evidence.layers),
        findings=tuple(findings),
        unsafe=unsafe,
        inputs_source=source,
        notes=notes,
        imports=options.imports,
    )


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
        grad_rms=None if grad_rms is None else float(f"{grad_rms:.6g}"),
        non_trainable_reason=reason,
    )


def _rounded(fraction: float | None) -> float | None:
    return None if fraction is None else round(fraction, 4)


@contextlib.contextmanager
def _quiet_library_output() -> Iterator[None]:
    """Keep Keras/TensorFlow chatter off stdout, where the report goes."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        yield

"""The Python API: ``audit(model_or_path, inputs=None, ...) -> Report``.

For people who do not start from a saved file: a notebook, a model library's
test suite, a training loop (``gradaudit.keras``). It runs the pipeline of the
CLI (``pipeline.py``) and its code selection (``selection.py``), so a model gets
the same findings from both. Nothing here imports TensorFlow until a model is
audited.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradaudit.formats import Format, render
from gradaudit.load.imports import parse_imports
from gradaudit.model.specs import parse_input_shape
from gradaudit.options import ObjectiveKind, Options, Thresholds
from gradaudit.probe.memory import parse_size
from gradaudit.probe.supplied import SuppliedInputs, array_inputs, read_inputs_file
from gradaudit.report import json_io
from gradaudit.report.selection import Selection, parse_codes
from gradaudit.report.types import AuditRun, ModelReport

if TYPE_CHECKING:
    import keras

    from gradaudit.history.loss_config import CompiledLosses
    from gradaudit.probe.supplied import Arrays

    Inputs = str | os.PathLike[str] | Arrays
    """A file (.npz/.npy), one array, arrays in input order, or arrays by input name."""

IN_MEMORY = "in-memory"
"""``Report.format`` of a model passed as an object rather than a file."""


class Report(ModelReport):
    """A model's report with the renderings a notebook wants at hand.

    The report data (``report.types``) renders nothing, so that formats can
    depend on it and not the other way round; the API adds these for people
    who would otherwise have to import ``formats`` and wrap the report in a run.
    """

    @classmethod
    def of(cls, model: ModelReport) -> Report:
        """``model`` as a Report (same fields)."""
        return cls(**{f.name: getattr(model, f.name) for f in fields(model)})

    @property
    def summary(self) -> dict[str, Any]:
        """The ``summary`` object of the JSON report: params, layers, samples, counts."""
        return json_io.summary(self)

    def to_json(self) -> str:
        """This model as ``gradaudit audit --format json`` prints it."""
        return self._render(Format.JSON)

    def to_table(self) -> str:
        """This model as ``gradaudit audit`` prints it."""
        return self._render(Format.TABLE)

    def _render(self, fmt: Format) -> str:
        return render(AuditRun(models=(self,), errors=()), fmt)


def audit(
    model_or_path: keras.Model | str | os.PathLike[str],
    inputs: Inputs | None = None,
    *,
    samples: int = Options.samples,
    batch_size: int = Options.batch_size,
    seed: int = Options.seed,
    select: str | Sequence[str] | None = Options.select,
    ignore: str | Sequence[str] | None = Options.ignore,
    inference: bool = Options.inference,
    unsafe: bool = Options.unsafe,
    imports: str | Sequence[str] = Options.imports,
    thresholds: Thresholds | None = None,
    input_shape: Sequence[str] = (),
    no_probe: bool = Options.no_probe,
    max_memory: int | str | None = Options.max_memory,
    objective: ObjectiveKind | None = Options.objective,
) -> Report:
    """Audit one model (a ``keras.Model`` or a model file) and return its report.

    ``inputs`` replaces the random probe inputs with your data: an .npz/.npy
    file as for ``--inputs``, one array (single-input model), a list of arrays
    in input order, or a dict keyed by input name; the first axis is samples,
    capped at ``samples``. ``select``/``ignore`` take codes or prefixes like
    ``--select``/``--ignore`` (``"GA1,GA201"`` or ``["GA1", "GA201"]``).
    ``input_shape`` takes ``--input-shape`` values (``["mel=128,40,1"]``).
    A model object is probed as it is (its weights and moving statistics are
    left unchanged), and a compiled one's live optimizer state gives the training
    history as a saved file's would; a file is loaded with the same safety gates
    as the CLI, after ``imports`` (as ``--import``: your modules, whose registered
    layer classes the file may then name) are imported. ``no_probe=True`` (a file
    only, no ``inputs``) runs only the checks that read the file, without
    TensorFlow, as ``--no-probe``. ``max_memory`` (bytes, or ``"4GiB"`` as for
    ``--max-memory``) caps what a probe step may bring the process to.
    ``objective`` ("loss" or "projection", as ``--objective``) chooses what the probe
    differentiates; by default a compiled model's (or file's) loss, with labels drawn
    from the seed or given in ``inputs`` under ``y`` / ``y:<output>``.

    Raises ``AuditError`` (one-line reason) when the model or the inputs cannot
    be audited, ``ValueError`` for a bad argument.
    """
    options = Options(samples=samples, batch_size=batch_size, seed=seed, inference=inference,
                      unsafe=unsafe, imports=parse_imports(imports),
                      thresholds=thresholds or Thresholds(),
                      select=parse_codes(select), ignore=parse_codes(ignore),
                      input_shape=tuple(parse_input_shape(text) for text in input_shape),
                      no_probe=no_probe, objective=_objective(objective),
                      max_memory=parse_size(max_memory) if isinstance(max_memory, str)
                      else max_memory)
    selection = Selection(options.select, options.ignore)
    supplied = _supplied(inputs, samples)
    if isinstance(model_or_path, (str, os.PathLike)):
        from gradaudit.pipeline import audit_path

        if no_probe and supplied is not None:
            raise ValueError("no_probe=True runs no model: it takes no inputs")
        report = audit_path(os.fspath(model_or_path), options, supplied)
    elif options.imports:
        raise ValueError("imports= applies to model files: a model object's classes are "
                         "already loaded")
    elif no_probe:
        raise ValueError("no_probe=True reads a model file; a model object is probed")
    else:
        report = _audit_object(model_or_path, options, supplied)
    return Report.of(selection.apply(AuditRun(models=(report,), errors=())).models[0])


def _audit_object(model: Any, options: Options, supplied: SuppliedInputs | None) -> ModelReport:
    from gradaudit.history.live_state import live_training_state
    from gradaudit.model.keras_graph import KerasModel, keras_package
    from gradaudit.pipeline import audit_model

    if not isinstance(model, keras_package(model).Model):  # Keras 3, or Keras 2 (tf_keras)
        raise TypeError(f"expected a keras.Model or a model file path, got "
                        f"{type(model).__name__}")
    audited = KerasModel(model)
    return audit_model(audited, options, path=f"<{model.name}>", fmt=IN_MEMORY,
                       supplied=supplied, training=live_training_state(audited, model),
                       losses=_live_losses(model))


def _live_losses(model: Any) -> CompiledLosses | None:
    """A compiled model's losses, read from its compile config as a saved file's are (so
    a model and its file get the same objective); None when it is not compiled."""
    from gradaudit.history import compile_info
    from gradaudit.history.loss_config import compiled_losses

    try:
        raw = model.get_compile_config() if hasattr(model, "get_compile_config") else None
        if not raw:
            return None
        config = {"class_name": type(model).__name__, "config": model.get_config()}
    except Exception as exc:  # a subclassed model's get_config may raise anything
        return compiled_losses(None, None, (f"the compile config cannot be read "
                                            f"({type(exc).__name__}): the probe "
                                            "differentiates a random projection",))
    compiled, notes = compile_info.compile_config(raw, compile_info.output_names(config))
    return compiled_losses(config, compiled, tuple(notes))


def _objective(value: str | None) -> ObjectiveKind | None:
    """``objective=`` checked as the config key is (ValueError)."""
    from gradaudit.settings import PARSERS

    return None if value is None else PARSERS["objective"](value)  # type: ignore[return-value]


def _supplied(inputs: Inputs | None, samples: int) -> SuppliedInputs | None:
    """``inputs`` as the pipeline's supplied inputs (None: random inputs)."""
    if inputs is None:
        return None
    if isinstance(inputs, (str, os.PathLike)):
        return read_inputs_file(Path(inputs), samples)
    return array_inputs(inputs, samples)

"""The Python API: ``audit(model_or_path, inputs=None, ...) -> Report``.

For people who do not start from a saved file: a notebook, a model library's
test suite, a training loop (``gradaudit.keras``). It runs the pipeline of the
CLI (``pipeline.py``) and its code selection (``selection.py``), so a model gets
the same findings from both. Nothing here imports TensorFlow until a model is
audited.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from gradaudit.errors import AuditError
from gradaudit.formats import Format, render
from gradaudit.options import Options, Thresholds
from gradaudit.probe.supplied import SuppliedInputs
from gradaudit.probe.supplied import load as load_inputs
from gradaudit.report import json_io
from gradaudit.report.selection import Selection, prefix, split_codes
from gradaudit.report.types import AuditRun, ModelReport

if TYPE_CHECKING:
    import keras

    Inputs = Union[str, os.PathLike[str], np.ndarray, Sequence[np.ndarray],
                   Mapping[str, np.ndarray]]
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
    samples: int = 256,
    batch_size: int = 64,
    seed: int = 0,
    select: str | Sequence[str] | None = None,
    ignore: str | Sequence[str] | None = None,
    inference: bool = False,
    unsafe: bool = False,
    thresholds: Thresholds | None = None,
) -> Report:
    """Audit one model (a ``keras.Model`` or a model file) and return its report.

    ``inputs`` replaces the random probe inputs with your data: an .npz/.npy
    file as for ``--inputs``, one array (single-input model), a list of arrays
    in input order, or a dict keyed by input name; the first axis is samples,
    capped at ``samples``. ``select``/``ignore`` take codes or prefixes like
    ``--select``/``--ignore`` (``"GA1,GA201"`` or ``["GA1", "GA201"]``).
    A model object is probed as it is (its weights and moving statistics are
    left unchanged); a file is loaded with the same safety gates as the CLI.

    Raises ``AuditError`` (one-line reason) when the model or the inputs cannot
    be audited, ``ValueError`` for a bad argument.
    """
    options = Options(samples=samples, batch_size=batch_size, seed=seed, inference=inference,
                      unsafe=unsafe, thresholds=thresholds or Thresholds())
    selection = Selection(_prefixes(select), _prefixes(ignore))
    supplied = _supplied(inputs, samples)
    if isinstance(model_or_path, (str, os.PathLike)):
        from gradaudit.pipeline import audit_path
        from gradaudit.runtime import import_tensorflow

        import_tensorflow()
        report = audit_path(os.fspath(model_or_path), options, supplied)
    else:
        report = _audit_object(model_or_path, options, supplied)
    return Report.of(selection.apply(AuditRun(models=(report,), errors=())).models[0])


def _audit_object(model: Any, options: Options, supplied: SuppliedInputs | None) -> ModelReport:
    import keras

    from gradaudit.pipeline import audit_model

    if not isinstance(model, keras.Model):
        raise TypeError(f"expected a keras.Model or a model file path, got "
                        f"{type(model).__name__}")
    return audit_model(model, options, path=f"<{model.name}>", fmt=IN_MEMORY,
                       supplied=supplied)


def _prefixes(codes: str | Sequence[str] | None) -> tuple[str, ...]:
    """Codes or prefixes, normalised and checked against the catalogue (ValueError)."""
    parts = split_codes(codes) if isinstance(codes, str) else list(codes or ())
    return tuple(prefix(code) for code in parts)


class ArrayInputs(SuppliedInputs):
    """Arrays passed to ``audit`` rather than read from a file.

    Checked and batched exactly as ``--inputs`` data; only the report's
    ``summary.inputs_source`` differs (``{"kind": "arrays", "rows": n}``).
    """

    @property
    def source(self) -> dict[str, Any]:
        return {"kind": "arrays", "rows": self.rows}


def _supplied(inputs: Inputs | None, samples: int) -> SuppliedInputs | None:
    """``inputs`` as the pipeline's supplied inputs (None: random inputs)."""
    if inputs is None:
        return None
    if isinstance(inputs, (str, os.PathLike)):
        return load_inputs(Path(inputs), samples)
    arrays = _named_arrays(inputs)
    counts = {len(a) if a.ndim else 0 for a in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        shapes = ", ".join(f"{key}: {a.shape}" for key, a in arrays.items())
        raise AuditError(f"inputs need the same number of rows (> 0) in every array; "
                         f"found {shapes}")
    rows = min(samples, counts.pop())
    arrays = {key: a[:rows] for key, a in arrays.items()}
    return ArrayInputs(path="(arrays)", arrays=arrays, rows=rows)


def _named_arrays(inputs: Any) -> dict[str, Any]:
    """Keyed as an .npz would be: by input name, or ``arr_0 …`` in input order."""
    if isinstance(inputs, Mapping):
        return {str(key): np.asarray(value) for key, value in inputs.items()}
    if isinstance(inputs, (list, tuple)):
        return {f"arr_{i}": np.asarray(value) for i, value in enumerate(inputs)}
    return {"arr_0": np.asarray(inputs)}

"""User-supplied probe inputs (``--inputs FILE`` or arrays): read once, check per model, batch.

Random inputs find structural faults; a unit that is dead only on the user's
real data distribution needs that data. An ``.npz`` holds one array per input,
keyed by the model's input names or ``arr_0 …`` in input order; an ``.npy``
holds the single input of a single-input model. Every array is checked against
the model's input spec (count, shape without the batch axis, dtype castable,
token ids below the vocabulary) before anything is probed, so a mismatch is one
clear error instead of a failure deep inside the model. Files are read with
``allow_pickle=False``: an inputs file cannot run code.

Labels for the compiled loss (:mod:`gradaudit.probe.objective`) may come with the
inputs: key ``y`` for a single-output model, ``y:<output name>`` for several. They
are not model inputs and take no part in matching the inputs.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from gradaudit.errors import AuditError
from gradaudit.model.specs import InputSpec

Arrays = np.ndarray | Sequence[np.ndarray] | Mapping[str, np.ndarray]
"""Probe inputs given as arrays: one (single-input model), a list in input order, or by name."""


@dataclass(frozen=True)
class SuppliedInputs:
    """Arrays read from an inputs file, capped at ``--samples`` rows."""

    path: str
    arrays: dict[str, np.ndarray]  # key as stored in the file → array
    rows: int

    @property
    def labels(self) -> dict[str, np.ndarray]:
        """The label arrays (``y``, ``y:<output>``), by key."""
        return {key: array for key, array in self.arrays.items() if is_label_key(key)}

    @property
    def source(self) -> dict[str, Any]:
        """Where the inputs came from, for the report (``summary.inputs_source``)."""
        return {"kind": "file", "path": self.path, "rows": self.rows}

    def matched(self, specs: list[InputSpec]) -> tuple[list[InputSpec], list[np.ndarray]]:
        """Check the arrays against ``specs`` now (AuditError); the specs with the
        shapes the data has (what the report shows), and the arrays in input order."""
        matched = zip(specs, self._match(specs), strict=True)
        ordered = [self._check(spec, array) for spec, array in matched]
        shaped = [replace(spec, shape=tuple(array.shape[1:]))
                  for spec, array in zip(specs, ordered, strict=True)]
        return shaped, ordered

    def batches(self, ordered: list[np.ndarray], batch_size: int) -> Iterator[list[np.ndarray]]:
        """The :meth:`matched` arrays in batches of ``batch_size`` rows."""
        for start in range(0, self.rows, batch_size):
            yield [np.asarray(a[start:start + batch_size]) for a in ordered]

    def _match(self, specs: list[InputSpec]) -> list[np.ndarray]:
        """One array per spec: by input name, else by ``arr_<i>`` position."""
        names = [spec.name for spec in specs]
        keys = sorted(key for key in self.arrays if not is_label_key(key))
        if len(keys) != len(specs):
            raise AuditError(
                f"--inputs {self.path} holds {len(keys)} array(s) ({', '.join(keys)}) but the "
                f"model has {len(specs)} input(s) ({', '.join(names)})"
            )
        if set(keys) == set(names):
            return [self.arrays[name] for name in names]
        positional = [f"arr_{i}" for i in range(len(specs))]
        if set(keys) == set(positional):
            return [self.arrays[key] for key in positional]
        if len(specs) == 1:
            return [self.arrays[keys[0]]]
        raise AuditError(
            f"--inputs {self.path} has arrays {', '.join(keys)}; name them after the model's "
            f"inputs ({', '.join(names)}) or arr_0 … in input order"
        )

    def _check(self, spec: InputSpec, array: np.ndarray) -> np.ndarray:
        """The array cast to the input's dtype, or AuditError naming what differs."""
        expected = (None, *(spec.declared or spec.shape))
        shape_ok = array.ndim == len(expected) and all(
            want is None or want == got for want, got in zip(expected, array.shape, strict=False)
        )
        castable = np.can_cast(array.dtype, spec.dtype, casting="same_kind")
        if not (shape_ok and castable):
            raise AuditError(
                f"--inputs {self.path}: input '{spec.name}' expects shape "
                f"{_shape_text(expected)} {spec.dtype}, found {_shape_text(array.shape)} "
                f"{array.dtype}" + ("" if castable else f" (which does not cast to {spec.dtype})")
            )
        if spec.vocab is not None and (array.min() < 0 or array.max() >= spec.vocab):
            raise AuditError(
                f"--inputs {self.path}: input '{spec.name}' holds token ids in "
                f"[{array.min()}, {array.max()}] but its Embedding accepts [0, {spec.vocab - 1}]"
            )
        return array.astype(spec.dtype, copy=False)


class ArrayInputs(SuppliedInputs):
    """Arrays passed to ``gradaudit.audit`` rather than read from a file.

    Checked and batched exactly as ``--inputs`` data; only the report's
    ``summary.inputs_source`` differs (``{"kind": "arrays", "rows": n}``).
    """

    @property
    def source(self) -> dict[str, Any]:
        return {"kind": "arrays", "rows": self.rows}


def is_label_key(key: str) -> bool:
    """``y`` or ``y:<output>``: labels for the loss, not a model input."""
    return key == "y" or key.startswith("y:")


NPY_MAGIC = b"\x93NUMPY"


def read_inputs_file(path: Path, samples: int) -> SuppliedInputs:
    """Read an .npz/.npy inputs file, keeping at most ``samples`` rows; AuditError if unusable.

    The magic bytes are checked first: ``np.load`` takes any other file for pickled
    data and says so, which tells a person nothing about what went wrong.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(len(NPY_MAGIC))
        if not head.startswith((NPY_MAGIC, b"PK\x03\x04", b"PK\x05\x06")):
            raise AuditError(f"--inputs {path}: not a NumPy .npy/.npz file (np.save and "
                             "np.savez write them; this file starts with neither header)")
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arrays = {key: loaded[key] for key in loaded.files}
        else:
            arrays = {"arr_0": loaded}
    except FileNotFoundError:
        raise AuditError(f"--inputs {path}: no such file") from None
    except IsADirectoryError:
        raise AuditError(f"--inputs {path}: a directory, not a NumPy .npy/.npz file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise AuditError(f"--inputs {path}: not a NumPy .npy/.npz file ({exc})") from None
    if not arrays:
        raise AuditError(f"--inputs {path}: the file holds no arrays")
    arrays, rows = _first_rows(arrays, samples, f"--inputs {path}")
    return SuppliedInputs(path=str(path), arrays=arrays, rows=rows)


def array_inputs(inputs: Arrays, samples: int) -> ArrayInputs:
    """Arrays given to the API, keyed as an .npz would be and capped like a file's."""
    if isinstance(inputs, Mapping):
        named = {str(key): np.asarray(value) for key, value in inputs.items()}
    elif isinstance(inputs, (list, tuple)):
        named = {f"arr_{i}": np.asarray(value) for i, value in enumerate(inputs)}
    else:
        named = {"arr_0": np.asarray(inputs)}
    arrays, rows = _first_rows(named, samples, "inputs")
    return ArrayInputs(path="(arrays)", arrays=arrays, rows=rows)


def _first_rows(arrays: dict[str, np.ndarray], samples: int, where: str
                ) -> tuple[dict[str, np.ndarray], int]:
    """The first ``samples`` rows of every array and their count.

    AuditError (prefixed ``where``) unless every array has the same number of rows, > 0:
    a sample is one row of each input.
    """
    if any(array.ndim == 0 for array in arrays.values()):
        raise AuditError(f"{where}: arrays need a first axis of samples, found a scalar")
    counts = {key: len(array) for key, array in arrays.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{key}: {n}" for key, n in sorted(counts.items()))
        raise AuditError(f"{where}: arrays have different numbers of rows ({listed})")
    rows = min(samples, next(iter(counts.values()), 0))
    if rows == 0:
        raise AuditError(f"{where}: the arrays have no rows")
    return {key: array[:rows] for key, array in arrays.items()}, rows


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"

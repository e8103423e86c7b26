"""Path → loaded model, treating the file as untrusted input.

The format is detected from the file's content (:mod:`.detect`). Before Keras
sees the file, its model config is read and walked whole (:mod:`.prescan`),
archive members (:mod:`.archive`) and declared sizes (:mod:`.limits`) are
checked before anything is extracted or allocated. Only then is the file
handed to Keras, with ``safe_mode`` on, so a payload must get past two
independent gates.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradaudit.errors import KERAS_LOAD_FAILED, AuditError, reported_as
from gradaudit.load import archive, keras2_ops
from gradaudit.load import limits as limits_module
from gradaudit.load.detect import detect_format
from gradaudit.load.imports import import_modules
from gradaudit.load.prescan import read_model_config, refuse_unsafe
from gradaudit.model.interface import AuditedModel
from gradaudit.options import Limits
from gradaudit.runtime import import_tensorflow

# Keras's words for a class or function name it cannot resolve (Keras 3; legacy .h5).
UNRESOLVED = re.compile(r"Could not locate (class|function) '|Unknown \w+: '")
IMPORT_HINT = "if it is your own, pass --import with the module that registers it"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to probe, with where it came from."""

    path: str
    format: str  # "keras" | "h5" | "savedmodel"
    model: AuditedModel
    unsafe: bool


def load_model(path_text: str, *, unsafe: bool = False, limits: Limits = Limits(),
               signature: str | None = None, imports: Sequence[str] = ()) -> LoadedModel:
    """Detect, pre-scan and load one model file; AuditError with the reason on failure.

    A SavedModel directory is scanned and loaded by :mod:`.savedmodel`
    (``signature`` picks the function to audit); its model is a SignatureModel, a
    Keras file's a KerasModel, whose config may name the classes that the
    ``imports`` (``--import``, imported first) registered.
    """
    path = Path(path_text)
    fmt = detect_format(path)
    if fmt == "savedmodel":
        import_tensorflow()
        from gradaudit.load import savedmodel

        limits_module.check_checkpoint_variables(path, limits.max_params)
        restored = savedmodel.load_saved_model(path, unsafe=unsafe, signature=signature)
        return LoadedModel(path=path_text, format=fmt, model=restored, unsafe=unsafe)
    if fmt == "keras":
        archive.check_archive(path, limits.max_params)
    config = read_model_config(path, fmt)
    provided = import_modules(imports)
    if not unsafe:
        refuse_unsafe(config, provided)
    with _unresolved_class_hint():
        _check_sizes(path, fmt, config, unsafe, limits)
        keras_model = _keras_load(path, fmt, unsafe)
    from gradaudit.model.keras_graph import KerasModel

    return LoadedModel(path=path_text, format=fmt, model=KerasModel(keras_model), unsafe=unsafe)


@contextlib.contextmanager
def _unresolved_class_hint() -> Iterator[None]:
    """Keras's "cannot find class X" failures, with how to give Keras the class."""
    try:
        yield
    except AuditError as exc:
        if not UNRESOLVED.search(str(exc)):
            raise
        raise AuditError(f"{exc} ({IMPORT_HINT})") from None


def _check_sizes(path: Path, fmt: str, config: dict[str, Any], unsafe: bool,
                 limits: Limits) -> None:
    """Weights in the file, then variables the config declares: both before Keras allocates."""
    limits_module.check_weight_datasets(path, fmt, limits.max_params)
    import_tensorflow()
    limits_module.check_declared_params(config, fmt, unsafe=unsafe,
                                        max_params=limits.max_params)


def _keras_load(path: Path, fmt: str, unsafe: bool) -> Any:
    """Hand the file to Keras's loader for the detected format.

    Keras's public ``load_model`` dispatches on the file extension; we call the
    loader for the format detected from the content instead, with an open
    file, so a renamed file loads the same way and cannot pick a different code
    path by its name.
    """
    import h5py

    import_tensorflow()
    import keras
    from keras.src.saving import saving_lib

    with reported_as(KERAS_LOAD_FAILED):
        if fmt == "keras":
            with path.open("rb") as handle:
                model = saving_lib.load_model(
                    handle, custom_objects=None, compile=False, safe_mode=not unsafe
                )
        else:
            with h5py.File(path, "r") as handle:
                # Keras 3's legacy loader, made to accept Keras 2 TFOpLambda layers.
                model = keras2_ops.load_h5(handle, safe_mode=not unsafe)
    if not isinstance(model, keras.Model):
        raise AuditError("the file holds a Keras object that is not a model")
    return model


"""Path → loaded model, treating the file as untrusted input.

The format is detected from the file's content (:mod:`.detect`). Before Keras
sees the file, its model config is read and walked whole (:mod:`.prescan`),
archive members (:mod:`.archive`) and declared sizes (:mod:`.limits`) are
checked before anything is extracted or allocated. Only then is the file
handed to Keras, with ``safe_mode`` on, so a payload must get past two
independent gates.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradaudit.errors import KERAS_LOAD_FAILED, AuditError, first_line, reported_as
from gradaudit.load import archive, deferred_init, keras2, keras2_ops
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
    config: dict[str, Any] | None = None
    """The model config as the pre-scan read it (None for a SavedModel): the training
    state is read with it, past the same gates, not a second time."""


def load_model(path_text: str, *, unsafe: bool = False, limits: Limits = Limits(),
               signature: str | None = None, imports: Sequence[str] = (),
               seed: int | None = None) -> LoadedModel:
    """Detect, pre-scan and load one model file; AuditError with the reason on failure.

    A SavedModel directory is scanned and loaded by :mod:`.savedmodel`
    (``signature`` picks the function to audit); its model is a SignatureModel, a
    Keras file's a KerasModel, whose config may name the classes that the
    ``imports`` (``--import``, imported first) registered. TensorFlow is imported
    only once the file has passed every check that needs none, so a file that
    cannot be audited is answered at once. ``seed`` seeds the global random
    generators just before the model is built: layers created without a seed of
    their own (Dropout …) draw it from them, and reports must be reproducible.
    """
    path = Path(path_text)
    fmt = detect_format(path)
    if fmt == "savedmodel":
        _import_tensorflow(seed)
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
    limits_module.check_weight_datasets(path, fmt, limits.max_params)
    _import_tensorflow(seed)
    from gradaudit.model.keras_graph import KerasModel

    version = keras2.keras2_version(path) if fmt == "h5" else None
    _fresh_layer_names(keras2=version is not None)
    model: AuditedModel
    with _unresolved_class_hint():
        if version is None:
            # Without --import, a .keras config of Keras's own classes only: no class can
            # read a variable before the file's weights are in (load/deferred_init.py).
            defer = fmt == "keras" and not imports and deferred_init.keras_classes_only(config)
            model = KerasModel(_keras3_load(path, fmt, config, unsafe, limits.max_params,
                                            defer_init=defer))
        else:
            model = _keras2_load(path, config, unsafe, limits.max_params, version)
    return LoadedModel(path=path_text, format=fmt, model=model, unsafe=unsafe, config=config)


def _import_tensorflow(seed: int | None) -> None:
    import_tensorflow()
    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)


def _fresh_layer_names(keras2: bool) -> None:
    """Start Keras's counters of generated layer names afresh, as in a new process: a
    layer of your own that makes an unnamed sublayer (``Dense(8)`` in ``__init__``) gets
    the name ``dense`` in every file of a batch, not ``dense_1`` in the second, so a
    finding's id is the same whether the file is audited alone or with others. Only the
    counters: the settings an ``--import`` module made (a dtype policy) stay."""
    if keras2:
        import tf_keras

        tf_keras.backend.reset_uids()
        return
    try:  # Keras internals (3.x): keras.utils.clear_session would reset the settings too
        from keras.src.backend.common import global_state
    except ImportError:
        return
    global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))


@contextlib.contextmanager
def _unresolved_class_hint() -> Iterator[None]:
    """Keras's "cannot find class X" failures, with how to give Keras the class."""
    try:
        yield
    except AuditError as exc:
        if not UNRESOLVED.search(str(exc)):
            raise
        raise AuditError(f"{exc} ({IMPORT_HINT})") from None


class _RouteFailed(Exception):
    """A loading route that failed: its reason, and whether it had built the model."""

    def __init__(self, reason: str, built: bool) -> None:
        super().__init__(reason)
        self.reason, self.built = reason, built


def _keras3_load(path: Path, fmt: str, config: dict[str, Any], unsafe: bool,
                 max_params: int, *, defer_init: bool = False) -> Any:
    """Keras 3: count the declared variables without allocating them, then load."""
    try:
        return _keras3_route(path, fmt, config, unsafe, max_params, defer_init=defer_init)
    except _RouteFailed as failed:
        raise AuditError(KERAS_LOAD_FAILED.format(reason=failed.reason)) from None


def _keras3_route(path: Path, fmt: str, config: dict[str, Any], unsafe: bool,
                  max_params: int, *, defer_init: bool = False) -> Any:
    try:
        count = limits_module.declared_params(config, fmt, unsafe=unsafe)
    except Exception as exc:  # Keras raises many types for a config it cannot build
        raise _RouteFailed(first_line(exc), built=False) from None
    limits_module.check_declared_params(count, max_params)
    try:
        return _keras_load(path, fmt, unsafe, defer_init=defer_init)
    except AuditError as exc:
        raise _RouteFailed(str(exc).removeprefix(KERAS_LOAD_FAILED.format(reason="")),
                           built=True) from None


def _keras2_load(path: Path, config: dict[str, Any], unsafe: bool, max_params: int,
                 version: str) -> AuditedModel:
    """A Keras 2 file: tf_keras first, Keras 3's legacy loader if tf_keras fails.

    When both fail, the reason shown is that of the route that got furthest
    (built the model before failing); on a tie, one that names a class Keras
    cannot find (it says what to ``--import``), else tf_keras's. A size refusal
    is final: no route may allocate what the limits refuse.
    """
    from gradaudit.model.keras_graph import KerasModel

    try:
        model = _keras2_route(path, config, max_params)
    except _RouteFailed as keras2_failed:
        try:
            fallback = _keras3_route(path, "h5", config, unsafe, max_params)
        except _RouteFailed as keras3_failed:
            furthest = max((keras2_failed, keras3_failed), key=_progress)
            raise AuditError(KERAS_LOAD_FAILED.format(reason=furthest.reason)) from None
        return KerasModel(fallback, notes=(
            f"loaded by Keras 3's legacy loader (the file was written by Keras {version}; "
            f"tf_keras could not load it: {keras2_failed.reason})",))
    return KerasModel(model, notes=(
        f"loaded with tf_keras, Keras 2 (the file was written by Keras {version})",))


def _progress(failed: _RouteFailed) -> tuple[bool, bool]:
    """How far a failed route got, and whether its reason is one a user can act on."""
    return failed.built, bool(UNRESOLVED.search(failed.reason))


def _keras2_route(path: Path, config: dict[str, Any], max_params: int) -> Any:
    try:
        count = keras2.declared_params(copy.deepcopy(config))
    except Exception as exc:  # tf_keras raises many types for a config it cannot build
        raise _RouteFailed(first_line(exc), built=False) from None
    limits_module.check_declared_params(count, max_params)
    try:
        return keras2.load(path)
    except Exception as exc:
        raise _RouteFailed(first_line(exc), built=True) from None


def _keras_load(path: Path, fmt: str, unsafe: bool, *, defer_init: bool = False) -> Any:
    """Hand the file to Keras's loader for the detected format.

    Keras's public ``load_model`` dispatches on the file extension; we call the
    loader for the format detected from the content instead, with an open
    file, so a renamed file loads the same way and cannot pick a different code
    path by its name. ``defer_init``: random initial values are drawn only for
    the variables the file does not fill (:mod:`.deferred_init`).
    """
    import h5py

    import_tensorflow()
    import keras
    from keras.src.saving import saving_lib

    initial = deferred_init.deferred_random_init() if defer_init else contextlib.nullcontext()
    with reported_as(KERAS_LOAD_FAILED), initial:
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


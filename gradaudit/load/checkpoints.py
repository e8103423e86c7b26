"""Checkpoints of one run loaded with the model built once: the first .keras file of
an architecture is loaded as ``audit`` loads any file; each later one of the same
architecture has its weights loaded into that model, which is not rebuilt.

Used in the CLI's worker process (:func:`gradaudit.pipeline.audit_checkpoint`), which
keeps the model between files; a crash starts a fresh worker, which loads afresh.
Every file still passes the gates that guard reading it (archive members, the config
pre-scan, the weight datasets' sizes) before its weights are read. A legacy .h5
checkpoint is loaded whole each time (a Keras 2 file loads through tf_keras).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from gradaudit.errors import KERAS_LOAD_FAILED, AuditError, reported_as
from gradaudit.load import limits, prescan
from gradaudit.load.detect import detect_format
from gradaudit.load.imports import import_modules
from gradaudit.load.loader import LoadedModel, load_model
from gradaudit.load.prescan import refuse_unsafe
from gradaudit.options import Limits, Options
from gradaudit.report.timeline import Plan
from gradaudit.report.types import LoadError

_BUILT: dict[str, LoadedModel] = {}
"""The process's one built model, by architecture key (at most one entry)."""


def checked_config(path: str, max_params: int = Limits.max_params) -> dict[str, Any]:
    """The model config of a .keras or .h5 checkpoint, read past the archive gate
    (no TensorFlow); AuditError for a SavedModel or an unreadable file."""
    return prescan.checked_config(Path(path), max_params, "a SavedModel directory holds no "
                                  "model config to compare architectures by; timelines read "
                                  ".keras and .h5 checkpoints")[1]


def architecture_key(config: dict[str, Any]) -> str:
    """``config`` as a string equal for every save of one architecture: the class and
    its config, without what differs between two saves of one model (Keras's
    ``shared_object_id`` values are memory addresses)."""
    model = {"class_name": config.get("class_name"), "config": config.get("config")}
    return json.dumps(_without_ids(model), sort_keys=True)


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def plan(paths: Sequence[str], limits: Limits = Limits()) -> Plan:
    """Group ``paths`` by the architecture in their model config (read past the archive
    gate, no TensorFlow); a file whose config cannot be read is kept as unreadable."""
    groups: dict[str, list[str]] = {}
    unreadable = []
    for path in paths:
        try:
            key = architecture_key(checked_config(path, limits.max_params))
        except AuditError as exc:
            unreadable.append(LoadError(path, str(exc)))
            continue
        groups.setdefault(key, []).append(path)
    series = tuple(tuple(group) for group in groups.values())
    notes = () if len(series) < 2 else (
        f"the checkpoints have {len(series)} different architectures (model configs): one "
        "series each, ordered and compared on its own",)
    return Plan(series, tuple(unreadable), notes)


def load_checkpoint(path: str, options: Options) -> LoadedModel:
    """This file's model: the one built for the previous checkpoint, with this file's
    weights, when both are .keras files of one architecture; else a fresh load, kept
    for the next. AuditError with the reason, as :func:`load_model`."""
    file = Path(path)
    fmt = detect_format(file)
    config = checked_config(path, options.limits.max_params) if fmt == "keras" else None
    key = None if config is None else architecture_key(config)
    built = _BUILT.get(key) if key is not None else None
    if built is None or config is None:
        _BUILT.clear()  # one model at a time: the checkpoints come series by series
        loaded = load_model(path, unsafe=options.unsafe, limits=options.limits,
                            signature=options.signature, imports=options.imports,
                            seed=options.seed)
        if key is not None and hasattr(loaded.model, "model"):  # a Keras 3 KerasModel
            _BUILT[key] = loaded
        return loaded
    if not options.unsafe:
        refuse_unsafe(config, import_modules(options.imports))
    limits.check_weight_datasets(file, fmt, options.limits.max_params)
    try:
        _swap_weights(getattr(built.model, "model"), file)  # noqa: B009 (KerasModel's)
    except AuditError:
        _BUILT.clear()  # its weights may be half swapped: the next file loads afresh
        raise
    import keras

    keras.utils.set_random_seed(options.seed)  # as load_model does before building
    return replace(built, path=path, config=config)


def _swap_weights(model: Any, file: Path) -> None:
    """Load the weights of the .keras archive ``file`` into ``model``. Keras picks the
    weights reader by the name's suffix, and a checkpoint's name may have none: it
    reads a link named ``.keras`` to the file (whose content was detected as .keras)."""
    with tempfile.TemporaryDirectory(prefix="gradaudit-") as directory:
        link = Path(directory) / "checkpoint.keras"
        os.symlink(file.resolve(), link)
        with reported_as(KERAS_LOAD_FAILED):
            model.load_weights(link)

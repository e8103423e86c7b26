"""Path → Keras model, treating the file as untrusted input.

The format is detected from the file's content, not its extension. Before
Keras sees the file, its model config is read with zipfile/h5py + json and
walked whole (nested models, initializers, activations …): Lambda layers and
references to Python modules outside Keras are refused unless the user opts
in with ``--unsafe``. Only then is the file handed to Keras, with
``safe_mode`` on, so a payload must get past two independent gates.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradaudit.errors import AuditError, first_line
from gradaudit.runtime import import_tensorflow

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# HDF5 allows a user block before the superblock, at 0, 512, 1024, 2048 … bytes.
HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)
MAX_CONFIG_BYTES = 64 * 1024 * 1024

# Layer classes that carry Python code in the file.
CODE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})
# `module` values a config may name without --unsafe: Keras's own namespaces.
SAFE_MODULE_ROOTS = ("keras", "tf_keras")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to probe, with where it came from."""

    path: str
    format: str  # "keras" | "h5" | "savedmodel"
    model: Any  # keras.Model
    unsafe: bool


def detect_format(path: Path) -> str:
    """Tell a .keras zip from an HDF5 file by content; raise AuditError otherwise."""
    if not path.exists():
        raise AuditError("no such file or directory")
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return "savedmodel"
        raise AuditError("is a directory, but not a SavedModel (no saved_model.pb)")
    try:
        with path.open("rb") as handle:
            head = handle.read(max(HDF5_OFFSETS) + len(HDF5_MAGIC))
    except OSError as exc:
        raise AuditError(f"cannot read the file: {exc.strerror or exc}") from None
    if not head:
        raise AuditError("the file is empty")
    if head.startswith(ZIP_MAGIC):
        return "keras"
    if any(head[o : o + len(HDF5_MAGIC)] == HDF5_MAGIC for o in HDF5_OFFSETS):
        return "h5"
    raise AuditError(
        "not a Keras model file: neither a .keras zip archive nor an HDF5 (.h5) file"
    )


def read_config(path: Path, fmt: str) -> dict[str, Any]:
    """The model config stored in the file, read without Keras."""
    if fmt == "keras":
        raw = _read_zip_config(path)
    elif fmt == "h5":
        raw = _read_h5_config(path)
    else:
        raise AuditError(
            "SavedModel directories are not supported by this version of gradaudit; "
            "save the model as .keras (model.save('model.keras')) and audit that"
        )
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuditError(f"the model config is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise AuditError("the model config does not describe a Keras model")
    return config


def _read_zip_config(path: Path) -> bytes:
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo("config.json")
            except KeyError:
                raise AuditError(
                    "zip archive without config.json: not a .keras model file"
                ) from None
            if info.file_size > MAX_CONFIG_BYTES:
                raise AuditError(
                    f"config.json declares {info.file_size} bytes; refusing configs "
                    f"over {MAX_CONFIG_BYTES} bytes"
                )
            with archive.open(info) as member:
                raw = member.read(MAX_CONFIG_BYTES + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise AuditError(f"damaged .keras archive ({exc})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise AuditError(f"config.json is larger than {MAX_CONFIG_BYTES} bytes")
    return raw


def _read_h5_config(path: Path) -> bytes | str:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise AuditError(f"damaged HDF5 file ({exc})") from None
    if raw is None:
        raise AuditError(
            "HDF5 file without a model_config attribute: a weights-only file, "
            "not a saved model"
        )
    return raw.tobytes() if hasattr(raw, "tobytes") else raw


def unsafe_references(config: Any) -> list[str]:
    """Everything in the whole config tree that would run code from the file.

    Walks every nested dict and list, so Lambda layers inside nested models and
    module references inside initializers, activations or regularizers are
    found as well as top-level ones.
    """
    return sorted(set(_walk_unsafe(config)))


def _walk_unsafe(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        class_name = node.get("class_name")
        if class_name in CODE_LAYERS:
            name = (node.get("config") or {}).get("name", "?")
            yield f"{class_name} layer '{name}' (runs Python code stored in the file)"
        module = node.get("module")
        if isinstance(module, str) and module.split(".")[0] not in SAFE_MODULE_ROOTS:
            yield f"a reference to Python module '{module}'"
        for value in node.values():
            yield from _walk_unsafe(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_unsafe(value)


def load(path_text: str, *, unsafe: bool = False) -> LoadedModel:
    """Detect, pre-scan and load one model file; AuditError with the reason on failure."""
    path = Path(path_text)
    fmt = detect_format(path)
    config = read_config(path, fmt)
    refused = unsafe_references(config)
    if refused and not unsafe:
        raise AuditError(
            "refused to load: " + "; ".join(refused)
            + ". Pass --unsafe only if you trust this file"
        )
    model = _keras_load(path, fmt, unsafe)
    return LoadedModel(path=path_text, format=fmt, model=model, unsafe=unsafe)


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
    from keras.src.legacy.saving import legacy_h5_format
    from keras.src.saving import saving_lib

    try:
        if fmt == "keras":
            with path.open("rb") as handle:
                model = saving_lib.load_model(
                    handle, custom_objects=None, compile=False, safe_mode=not unsafe
                )
        else:
            with h5py.File(path, "r") as handle:
                model = legacy_h5_format.load_model_from_hdf5(
                    handle, custom_objects=None, compile=False, safe_mode=not unsafe
                )
    except AuditError:
        raise
    except Exception as exc:  # Keras raises many types for bad files; all mean "cannot load".
        raise AuditError(f"Keras could not load the model: {first_line(exc)}") from None
    if not isinstance(model, keras.Model):
        raise AuditError("the file holds a Keras object that is not a model")
    return model


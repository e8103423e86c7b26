"""The config pre-scan: the model config read with zipfile/h5py + json and walked
whole before Keras sees the file.

Lambda layers and references to Python modules outside Keras (or to Keras
functions that are not modelling objects) are refused unless the user opts in
with ``--unsafe``; the classes and functions that modules named with
``--import`` registered are the user's own code and pass (see ``imports``).
"""

from __future__ import annotations

import enum
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gradaudit.errors import AuditError, first_line
from gradaudit.load import archive, config_tree, keras2_ops
from gradaudit.load.detect import detect_format
from gradaudit.load.imports import NOTHING, Provided

MAX_CONFIG_BYTES = 64 * 1024 * 1024

# Layer classes that carry Python code in the file, and Keras's tag for a
# serialized Python lambda (bytecode), wherever it appears (e.g. an activation).
CODE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})
LAMBDA_TAG = "__lambda__"
# `module` values a config may name without --unsafe: Keras's own namespaces …
SAFE_MODULE_ROOTS = ("keras", "tf_keras")
# … and inside them only the modelling namespaces (keras.X, keras.src.X): the
# objects a model is made of. keras.config, keras.saving, keras.utils,
# keras.applications … hold functions with side effects (CVE-2025-9906 called
# keras.config.enable_unsafe_deserialization from a config).
MODEL_NAMESPACES = frozenset({
    "layers", "models", "ops", "initializers", "activations", "regularizers",
    "constraints", "losses", "metrics", "optimizers", "dtype_policies", "random",
    "quantizers",
})
# Namespaces whose plain functions a config may name (activations, losses …).
FUNCTION_NAMESPACES = frozenset({
    "activations", "losses", "metrics", "ops", "initializers", "regularizers", "constraints",
})
# Functions in those namespaces that turn config data into arbitrary objects.
META_FUNCTIONS = frozenset({"deserialize", "serialize", "get"})


def checked_config(path: Path, max_params: int, savedmodel: str) -> tuple[str, dict[str, Any]]:
    """The format and model config of a .keras or .h5 file, read past the archive gate
    without TensorFlow; AuditError ``savedmodel`` (why this reader needs a config) for a
    SavedModel directory, which holds none."""
    fmt = detect_format(path)
    if fmt == "savedmodel":
        raise AuditError(savedmodel)
    if fmt == "keras":
        archive.check_archive(path, max_params)
    return fmt, read_model_config(path, fmt)


def read_model_config(path: Path, fmt: str) -> dict[str, Any]:
    """The model config stored in the file, read without Keras."""
    raw: bytes | str
    if fmt == "keras":
        raw = _read_zip_config(path)
    elif fmt == "h5":
        raw = _read_h5_config(path)
    else:
        raise AuditError("a SavedModel directory holds no Keras model config")
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuditError(f"the model config is not valid JSON ({exc})") from None
    except RecursionError:
        raise AuditError("the model config is not valid JSON (nested too deeply)") from None
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
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise AuditError(f"damaged HDF5 file ({first_line(exc)})") from None
    if raw is None:
        raise AuditError(
            "HDF5 file without a model_config attribute: a weights-only file, "
            "not a saved model"
        )
    if hasattr(raw, "tobytes"):  # numpy bytes_ (a fixed-length string), or a number
        return bytes(raw.tobytes())
    if not isinstance(raw, str):  # h5py.Empty: json.loads would raise a TypeError
        raise AuditError(f"the model_config attribute holds no text ({type(raw).__name__})")
    return raw


class Remedy(enum.IntEnum):
    """How to get past a refusal, in the order the message gives them."""

    MOVE = 0
    IMPORT = 1
    UNSAFE = 2


REMEDIES = {
    Remedy.MOVE: "A class defined in the saving script cannot be imported from anywhere: move "
                 "it into a module (a .py file) that registers it with "
                 "@keras.saving.register_keras_serializable(), save the model again from a "
                 "script that imports it, and pass --import with that module",
    Remedy.IMPORT: "For your own layer classes, pass --import with the module that registers "
                   "them (a module name or a .py file)",
    Remedy.UNSAFE: "Pass --unsafe only if you trust this file",
}


def refuse_unsafe(config: Any, provided: Provided = NOTHING) -> None:
    """AuditError listing everything in the config that would run code from the file
    or from a module nobody vouched for, and how to proceed: ``--import`` for the
    user's own modules, ``--unsafe`` only for code stored in the file."""
    found = _references(config, provided)
    if found:
        remedies = ". ".join(REMEDIES[r] for r in sorted(set(found.values())))
        raise AuditError(f"refused to load: {'; '.join(sorted(found))}. {remedies}")


def unsafe_references(config: Any, provided: Provided = NOTHING) -> list[str]:
    """Everything in the whole config tree that would run code from the file.

    Walks every nested dict and list, so Lambda layers inside nested models and
    module references inside initializers, activations or regularizers are
    found as well as top-level ones. Objects registered by the ``--import``
    modules (``provided``) are the user's own code, not the file's.
    """
    return sorted(_references(config, provided))


def _references(config: Any, provided: Provided) -> dict[str, Remedy]:
    found: dict[str, Remedy] = {}

    def visit(node: dict[str, Any]) -> bool:
        references = dict(_node_references(node, provided))
        found.update(references)
        # A refused Lambda layer is reported once, not again for its function.
        return not (references and node.get("class_name") in CODE_LAYERS)

    config_tree.walk(config, visit)
    return found


def _node_references(node: dict[str, Any], provided: Provided) -> Iterator[tuple[str, Remedy]]:
    class_name = node.get("class_name")
    if not isinstance(class_name, str):  # Keras cannot resolve it either; and lists are unhashable
        class_name = None
    registered = node.get("registered_name")
    inner = node.get("config")
    named_tf_op = keras2_ops.is_safe_tf_op(node) and registered in (None, "TFOpLambda")
    if not named_tf_op and (class_name in CODE_LAYERS or (
        isinstance(registered, str) and registered.split(">")[-1] in CODE_LAYERS
    )):
        name = inner.get("name", "?") if isinstance(inner, dict) else "?"
        yield f"{class_name} layer '{name}' (runs Python code stored in the file)", Remedy.UNSAFE
    if class_name == LAMBDA_TAG:
        yield "a Python lambda stored in the file (bytecode that would run)", Remedy.UNSAFE
    module = node.get("module")
    if ("module" in node and module is None) or module == "__main__":
        yield from _script_class(module, class_name, node, provided)
        return
    if not isinstance(module, str):
        return
    if module.split(".")[0] in SAFE_MODULE_ROOTS:
        yield from _keras_reference(module, class_name, inner)
    else:
        yield from _user_reference(module, class_name, node, provided)


def _script_class(module: str | None, class_name: str | None, node: dict[str, Any],
                  provided: Provided) -> Iterator[tuple[str, Remedy]]:
    """A class defined in the script that saved the model: Keras 3 writes its module as
    null (``__main__`` elsewhere), so nothing can import it — unless an ``--import``ed
    module registers it under the same registered name, which Keras resolves."""
    key = node.get("registered_name", class_name)
    if provided.module_of(key) is not None:
        return
    where = "null" if module is None else "'__main__'"
    yield (f"class '{class_name}' was defined in the script that saved the model (its module "
           f"is {where})"), Remedy.MOVE


def _user_reference(module: str, class_name: str | None, node: dict[str, Any],
                    provided: Provided) -> Iterator[tuple[str, Remedy]]:
    """Refuse a module outside Keras unless an imported module registered the object
    under that module (Keras writes a registered function's module as 'builtins')."""
    is_function = class_name == "function"
    # The name Keras resolves the object by: a function's config string, else the
    # registered name (the class name when there is none).
    key = node.get("config") if is_function else node.get("registered_name", class_name)
    owner = provided.module_of(key)
    if owner is not None and module in (owner, *(("builtins",) if is_function else ())):
        return
    if provided.imported(module):
        yield (f"a reference to '{key}' in module '{module}', which the imported module does "
               "not register"), Remedy.IMPORT
        return
    registered = f" (registered name '{key}')" if isinstance(key, str) and ">" in key else ""
    yield f"a reference to Python module '{module}'{registered}", Remedy.IMPORT


def _keras_reference(module: str, class_name: str | None,
                     inner: Any) -> Iterator[tuple[str, Remedy]]:
    """Refuse Keras namespaces that are not modelling objects."""
    parts = module.split(".")
    is_function = class_name == "function"
    name = inner if is_function and isinstance(inner, str) else str(class_name)
    namespace = parts[2] if len(parts) > 2 and parts[1] == "src" else (
        parts[1] if len(parts) > 1 else None)
    allowed = FUNCTION_NAMESPACES if is_function else MODEL_NAMESPACES
    if namespace is None and not is_function:
        return  # keras.Sequential, keras.DTypePolicy …: top-level classes
    if namespace not in allowed or (is_function and name in META_FUNCTIONS) or (
        name.startswith("_") and name != LAMBDA_TAG
    ):
        yield (f"a reference to '{module}.{name}', which is not a Keras layer, model, "
               "op, initializer, activation, regularizer, constraint, loss or metric",
               Remedy.UNSAFE)

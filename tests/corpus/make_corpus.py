"""Build the bad-input corpus: broken and hostile model files, made from the fixtures.

Nothing here is committed: the tests build the corpus once per session into a
temporary directory (``tests/conftest.py``), and ``python -m tests.corpus.make_corpus
DIR`` writes it where you like for a manual look (``tests/corpus/out/`` is
gitignored). Every case says what gradaudit must answer: the substring of its
one stderr line, or ``valid`` for the few well-formed oddities that must audit
cleanly (so the hardening has no false positives).

Payloads try to write a marker file: Lambda bytecode writes ``$GRADAUDIT_MARKER``
(the fixtures' payload), the SavedModel graph writes the path given to ``build``.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import os
import shutil
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
HEALTHY_KERAS = FIXTURES / "healthy_mlp.keras"
HEALTHY_H5 = FIXTURES / "healthy_mlp.h5"
LAMBDA_KERAS = FIXTURES / "lambda_payload.keras"
LAMBDA_H5 = FIXTURES / "lambda_payload.h5"
USER_LAYERS = Path(__file__).resolve().parents[1] / "data" / "user_layers.py"
USER_MODULE = "corpus_layers"
"""The corpus's copy of the user's own layers, imported by ``--import`` (see ``user_module``)."""
HUGE = 10**6  # two such axes make an input of 10^12 elements per sample


@dataclass(frozen=True)
class Case:
    """One corpus file and what gradaudit must answer for it."""

    path: Path
    category: str
    fmt: str  # "keras" | "h5" | "savedmodel": the format the file pretends to be
    reason: str | None = None
    """Substring of the one stderr line; None: exit 2 with any reason (SavedModel)."""
    valid: bool = False
    """A well-formed model: exit 0 or 1, nothing on stderr with -q."""
    args: tuple[str, ...] = ()
    """Extra command-line arguments (``--import …``) the case is audited with."""
    state_note: str | None = None
    """Substring of a note ``read_training_state`` must give (hostile optimizer state)."""


# --- raw zip writing (full control over names, sizes, methods) -----------------------

@dataclass(frozen=True)
class Member:
    name: str
    data: bytes  # as stored in the archive
    method: int = zipfile.ZIP_STORED
    crc: int | None = None  # default: CRC-32 of data
    size: int | None = None  # declared uncompressed size; default len(data)
    mode: int = 0o100644  # unix mode in external_attr (0o120777: a symlink)


def write_zip(path: Path, members: list[Member]) -> Path:
    path.write_bytes(zip_bytes(members))
    return path


def zip_bytes(members: list[Member]) -> bytes:
    """A zip written byte by byte, so names and sizes can lie."""
    body, central = bytearray(), bytearray()
    for m in members:
        name = m.name.encode()
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        size = len(m.data) if m.size is None else m.size
        offset = len(body)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, m.method, 0, 0x21, crc,
                            len(m.data), size, len(name), 0) + name + m.data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, 20, 0, m.method, 0,
                               0x21, crc, len(m.data), size, len(name), 0, 0, 0, 0,
                               m.mode << 16, offset) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                      len(central), len(body), 0)
    return bytes(body + central + end)


def members_of(source: Path) -> list[Member]:
    with zipfile.ZipFile(source) as archive:
        return [Member(i.filename, archive.read(i)) for i in archive.infolist()]


def with_config(source: Path, path: Path, edit: Callable[[dict[str, Any]], Any]) -> Path:
    """A copy of a .keras file whose config.json was changed by ``edit``."""
    members = []
    for m in members_of(source):
        if m.name == "config.json":
            config = json.loads(m.data)
            config = edit(config) or config
            m = Member(m.name, json.dumps(config).encode())
        members.append(m)
    return write_zip(path, members)


def with_member(source: Path, path: Path, name: str, data: bytes) -> Path:
    members = [m for m in members_of(source) if m.name != name]
    return write_zip(path, [*members, Member(name, data)])


def zeros_bomb(gib: int) -> tuple[bytes, int, int]:
    """A real deflate stream of ``gib`` GiB of zeros in ~1 MB: (stream, crc, size)."""
    chunk = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = gib * 1024
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    return block * count + compressor.flush(zlib.Z_FINISH), crc, count << 20


# --- config edits ------------------------------------------------------------------

def layers_of(config: dict[str, Any]) -> list[dict[str, Any]]:
    return config["config"]["layers"]


def dense(config: dict[str, Any], index: int = 1) -> dict[str, Any]:
    return [layer for layer in layers_of(config) if layer["class_name"] == "Dense"][index - 1]


def widen_shapes(node: Any) -> Any:
    """Every shape [None, …] becomes [None, 10^6, 10^6, …]: the weights stay valid."""
    if isinstance(node, dict):
        return {k: widen_shapes(v) for k, v in node.items()}
    if isinstance(node, list):
        if node and node[0] is None and all(isinstance(d, int) for d in node[1:]):
            return [None, HUGE, HUGE, *node[1:]]
        return [widen_shapes(v) for v in node]
    return node


def function_ref(module: str, name: str) -> dict[str, Any]:
    return {"module": module, "class_name": "function", "config": name,
            "registered_name": "function"}


def lambda_layer() -> dict[str, Any]:
    """The fixtures' Lambda 'payload' layer config (bytecode that writes the marker)."""
    with zipfile.ZipFile(LAMBDA_KERAS) as archive:
        config = json.loads(archive.read("config.json"))
    return copy.deepcopy(next(lay for lay in layers_of(config) if lay["class_name"] == "Lambda"))


def nested_sequential(inner: dict[str, Any]) -> dict[str, Any]:
    def seq(name: str, layers: list[Any]) -> dict[str, Any]:
        return {"module": "keras", "class_name": "Sequential", "registered_name": None,
                "config": {"name": name, "trainable": True, "layers": layers}}

    return seq("outer", [
        {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
         "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "features"}},
        seq("middle", [seq("inner", [inner])]),
    ])


# --- HDF5 edits --------------------------------------------------------------------

def h5_copy(source: Path, path: Path, edit: Callable[[h5py.File], None]) -> Path:
    shutil.copy(source, path)
    with h5py.File(path, "r+") as handle:
        edit(handle)
    return path


def h5_config_edit(edit: Callable[[dict[str, Any]], Any]) -> Callable[[h5py.File], None]:
    def apply(handle: h5py.File) -> None:
        config = json.loads(handle.attrs["model_config"])
        config = edit(config) or config
        handle.attrs["model_config"] = json.dumps(config)
    return apply


def set_attr(name: str, value: Any) -> Callable[[h5py.File], None]:
    def apply(handle: h5py.File) -> None:
        handle.attrs[name] = value
    return apply


def huge_dataset(group: str) -> Callable[[h5py.File], None]:
    """A chunked dataset declaring 10^12 floats: HDF5 stores no chunk of it."""
    def apply(handle: h5py.File) -> None:
        handle.require_group(group).create_dataset(
            "huge", shape=(HUGE, HUGE), dtype="f4", chunks=(1000, 1000))
    return apply


def h5_bytes(edit: Callable[[h5py.File], None]) -> bytes:
    """model.weights.h5 of healthy_mlp.keras after ``edit``."""
    with zipfile.ZipFile(HEALTHY_KERAS) as archive:
        data = archive.read("model.weights.h5")
    buffer = io.BytesIO(data)
    with h5py.File(buffer, "r+") as handle:
        edit(handle)
    return buffer.getvalue()


# --- the corpus --------------------------------------------------------------------

def build(dest: Path, marker: Path) -> list[Case]:
    """Write every corpus file into ``dest``; the SavedModel payload writes ``marker``."""
    dest.mkdir(parents=True, exist_ok=True)
    return [*_keras_cases(dest), *_h5_cases(dest), *_savedmodel_cases(dest, marker),
            *_user_code_cases(dest), *training_cases(dest)]


def user_import(dest: Path) -> tuple[str, str]:
    """``--import`` of the user module that ``build`` writes into ``dest``."""
    return "--import", str(dest / "user_code" / f"{USER_MODULE}.py")


def user_module(directory: Path, name: str) -> Any:
    """tests/data/user_layers.py copied to ``directory/name.py`` and imported as ``name``,
    as a user's own module is: its classes are registered as ``name>Block`` …"""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    shutil.copy(USER_LAYERS, path)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _file_basics(dest: Path, source: Path, ext: str, offsets: list[int]) -> list[Case]:
    """Truncations, random bytes, text, empty: the same for both file formats."""
    fmt = ext.lstrip(".")
    data = source.read_bytes()
    rng = np.random.default_rng(len(ext))
    cases = []
    for offset in offsets:
        path = dest / f"truncated_{offset}{ext}"
        path.write_bytes(data[:offset])
        # Every offset keeps the format's magic, so each fails inside its parser.
        cases.append(Case(path, "truncated", fmt,
                          "damaged .keras archive" if fmt == "keras" else "damaged HDF5 file"))
    magic = data[:8]
    for name, content in (("random", rng.bytes(4096)),
                          ("random_after_magic", magic + rng.bytes(4096))):
        path = dest / f"{name}{ext}"
        path.write_bytes(content)
        reason = ("not a Keras model file" if name == "random" else
                  "damaged .keras archive" if fmt == "keras" else "damaged HDF5 file")
        cases.append(Case(path, "random bytes", fmt, reason))
    text = dest / f"notes{ext}"
    text.write_text("these are my notes, not a model\n" * 20)
    empty = dest / f"empty{ext}"
    empty.write_bytes(b"")
    cases += [Case(text, "text file", fmt, "not a Keras model file"),
              Case(empty, "empty file", fmt, "the file is empty")]
    return cases


def _keras_cases(dest: Path) -> list[Case]:
    size = HEALTHY_KERAS.stat().st_size
    cases = _file_basics(dest, HEALTHY_KERAS, ".keras",
                         [4, 100, 1000, size // 2, size - 10, size - 1])
    d = dest
    healthy = members_of(HEALTHY_KERAS)

    def case(name: str, category: str, reason: str | None, make: Callable[[Path], Any]) -> None:
        path = d / name
        make(path)
        cases.append(Case(path, category, "keras", reason))

    # Devices: a symlink to /dev/zero never reaches a read loop.
    (d / "dev_zero.keras").symlink_to("/dev/zero")
    cases.append(Case(d / "dev_zero.keras", "not a regular file", "keras", "not a regular file"))
    fifo = d / "fifo.keras"
    os.mkfifo(fifo)
    cases.append(Case(fifo, "not a regular file", "keras", "not a regular file"))

    # Path traversal in member names: refused before Keras extracts anything.
    for name, member in (("traversal_relative.keras", "../../x"),
                         ("traversal_absolute.keras", "/tmp/gradaudit_x"),
                         ("traversal_assets.keras", "assets/../../../x"),
                         ("traversal_backslash.keras", "..\\..\\x")):
        case(name, "zip path traversal", "points outside the archive",
             lambda p, m=member: write_zip(p, [*healthy, Member(m, b"owned")]))
    case("symlink_member.keras", "zip path traversal", "symbolic link",
         lambda p: write_zip(p, [*healthy, Member("assets/link", b"/etc/passwd", mode=0o120777)]))

    # Zip bombs: a real 2 GiB member, a member declaring 4 GiB, a member lying small.
    stream, crc, size = zeros_bomb(2)
    others = [m for m in healthy if m.name != "model.weights.h5"]
    case("bomb_ratio.keras", "zip bomb", "decompression bomb",
         lambda p: write_zip(p, [*others, Member("model.weights.h5", stream, zipfile.ZIP_DEFLATED,
                                                 crc, size)]))
    case("bomb_declared.keras", "zip bomb", "declares 4294967294 bytes",
         lambda p: write_zip(p, [*others, Member("model.weights.h5", b"\0" * 1024,
                                                 size=0xFFFFFFFE)]))
    case("bomb_lying.keras", "zip bomb", "damaged .keras archive",
         lambda p: write_zip(p, [*others, Member("model.weights.h5", stream, zipfile.ZIP_DEFLATED,
                                                 crc, 4096)]))

    # Damaged or missing config.
    case("no_config.keras", "missing/garbled config", "without config.json",
         lambda p: write_zip(p, [m for m in healthy if m.name != "config.json"]))
    case("garbled_config.keras", "missing/garbled config", "not valid JSON",
         lambda p: with_member(HEALTHY_KERAS, p, "config.json",
                               b"{\"class_name\": \"Functional\", "))
    case("config_is_list.keras", "missing/garbled config", "does not describe a Keras model",
         lambda p: with_member(HEALTHY_KERAS, p, "config.json", b"[1, 2, 3]"))
    case("config_deep.keras", "missing/garbled config", "not valid JSON",
         lambda p: with_member(HEALTHY_KERAS, p, "config.json", b"[" * 100_000 + b"]" * 100_000))
    case("no_weights.keras", "missing/garbled config", "Keras could not load the model",
         lambda p: write_zip(p, [m for m in healthy if m.name != "model.weights.h5"]))

    # Unknown classes, not-importable custom classes, a subclassed model.
    def rename(class_name: str, registered: str | None = None, module: str | None = "keras.layers"):
        def edit(config: dict[str, Any]) -> None:
            layer = dense(config)
            layer.update(class_name=class_name, module=module, registered_name=registered)
        return edit

    case("unknown_layer.keras", "unknown layer class", "Keras could not load the model",
         lambda p: with_config(HEALTHY_KERAS, p, rename("NoSuchLayer")))
    case("custom_unregistered.keras", "custom class not importable",
         "was defined in the script that saved the model (its module is null)",
         lambda p: with_config(HEALTHY_KERAS, p, rename("Ghost", "no_such_pkg>Ghost", None)))
    case("custom_module.keras", "custom class not importable",
         "a reference to Python module 'no_such_pkg.layers'",
         lambda p: with_config(HEALTHY_KERAS, p, rename("Ghost", "no_such_pkg>Ghost",
                                                        "no_such_pkg.layers")))
    case("subclassed.keras", "subclassed model", "a reference to Python module 'corpus_models'",
         _save_subclassed)

    # Absurd sizes: refused before anything is allocated.
    case("huge_input.keras", "absurd shapes", "--max-input-elements",
         lambda p: with_config(HEALTHY_KERAS, p, widen_shapes))
    case("huge_units.keras", "absurd shapes", "parameters, more than --max-params",
         lambda p: with_config(HEALTHY_KERAS, p, lambda c: dense(c, 3)["config"].update(
             units=10**12)))
    case("huge_dataset.keras", "absurd shapes", "weight datasets in the file declare",
         lambda p: with_member(HEALTHY_KERAS, p, "model.weights.h5",
                               h5_bytes(huge_dataset("layers"))))

    # Code in the file: Lambda bytecode, nested Lambda, a lambda activation.
    cases.append(Case(_copy(LAMBDA_KERAS, d / "lambda_payload.keras"), "Lambda payload", "keras",
                      "Lambda layer 'payload'"))
    case("lambda_nested.keras", "Lambda payload", "Lambda layer 'payload'",
         lambda p: with_config(LAMBDA_KERAS, p, lambda c: nested_sequential(lambda_layer())))
    case("lambda_activation.keras", "Lambda payload", "a Python lambda stored in the file",
         lambda p: with_config(HEALTHY_KERAS, p, lambda c: dense(c)["config"].update(
             activation=lambda_layer()["config"]["function"])))

    # CVE-2025-1550 class: functions from modules outside Keras.
    for name, module, fn in (("module_os.keras", "os", "system"),
                             ("module_builtins.keras", "builtins", "exec"),
                             ("module_lookalike.keras", "kerasx.layers", "Dense")):
        case(name, "non-Keras module (CVE-2025-1550)", f"a reference to Python module '{module}'",
             lambda p, m=module, f=fn: with_config(HEALTHY_KERAS, p, lambda c: dense(c)[
                 "config"].update(activation=function_ref(m, f))))
    case("module_subprocess_layer.keras", "non-Keras module (CVE-2025-1550)",
         "a reference to Python module 'subprocess'",
         lambda p: with_config(HEALTHY_KERAS, p, lambda c: layers_of(c).insert(1, {
             "module": "subprocess", "class_name": "run", "registered_name": None,
             "config": {"args": ["sh", "-c", "echo ran > \"$GRADAUDIT_MARKER\""]}})))
    case("module_in_initializer.keras", "non-Keras module (CVE-2025-1550)",
         "a reference to Python module 'os'",
         lambda p: with_config(HEALTHY_KERAS, p, lambda c: dense(c, 2)["config"].update(
             kernel_initializer={"module": "os", "class_name": "function", "config": "system"})))

    # CVE-2025-9906 class: Keras functions that are not modelling objects.
    def unsafe_then_lambda(config: dict[str, Any]) -> None:
        dense(config)["config"]["activation"] = function_ref(
            "keras.config", "enable_unsafe_deserialization")
        layers_of(config).insert(2, lambda_layer())

    case("keras_config_then_lambda.keras", "Keras non-modelling function (CVE-2025-9906)",
         "keras.config.enable_unsafe_deserialization",
         lambda p: with_config(HEALTHY_KERAS, p, unsafe_then_lambda))
    for name, module, fn in (
            ("keras_config.keras", "keras.config", "enable_unsafe_deserialization"),
                             ("keras_src_saving.keras", "keras.src.saving.serialization_lib",
                              "enable_unsafe_deserialization"),
                             ("keras_utils_get_file.keras", "keras.utils", "get_file"),
                             ("keras_meta_deserialize.keras", "keras.activations", "deserialize")):
        case(name, "Keras non-modelling function (CVE-2025-9906)", f"'{module}.{fn}'",
             lambda p, m=module, f=fn: with_config(HEALTHY_KERAS, p, lambda c: dense(c)[
                 "config"].update(activation=function_ref(m, f))))

    # Valid oddities: must audit, not be refused.
    cases.append(Case(write_zip(d / "valid_deflated.keras", [
        Member(m.name, _deflate(m.data), zipfile.ZIP_DEFLATED, zlib.crc32(m.data), len(m.data))
        for m in healthy]), "valid oddity", "keras", valid=True))
    cases.append(Case(_copy(HEALTHY_KERAS, d / "valid_keras_named.h5"), "valid oddity", "keras",
                      valid=True))
    return cases


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _copy(source: Path, path: Path) -> Path:
    shutil.copy(source, path)
    return path


def _save_subclassed(path: Path) -> None:
    import keras

    class Tiny(keras.Model):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(2)

        def call(self, x: Any) -> Any:
            return self.dense(x)

    Tiny.__module__ = "corpus_models"
    model = Tiny()
    model(np.ones((1, 3), "float32"))
    model.save(path)


def _h5_cases(dest: Path) -> list[Case]:
    size = HEALTHY_H5.stat().st_size
    cases = _file_basics(dest, HEALTHY_H5, ".h5", [8, 100, 2048, size // 2, size - 1])
    d = dest

    def case(name: str, category: str, reason: str, source: Path,
             edit: Callable[[h5py.File], None]) -> None:
        cases.append(Case(h5_copy(source, d / name, edit), category, "h5", reason))

    def del_attr(handle: h5py.File) -> None:
        del handle.attrs["model_config"]

    case("no_model_config.h5", "missing/garbled config", "without a model_config", HEALTHY_H5,
         del_attr)
    case("garbled_model_config.h5", "missing/garbled config", "not valid JSON", HEALTHY_H5,
         set_attr("model_config", "{not json"))
    case("numeric_model_config.h5", "missing/garbled config", "not valid JSON", HEALTHY_H5,
         set_attr("model_config", np.arange(16, dtype="int64")))
    case("model_config_string.h5", "missing/garbled config", "does not describe a Keras model",
         HEALTHY_H5, set_attr("model_config", json.dumps("just a string")))
    case("no_model_weights.h5", "missing/garbled config", "Keras could not load the model",
         HEALTHY_H5, lambda h: h.__delitem__("model_weights"))
    case("unknown_layer.h5", "unknown layer class", "Keras could not load the model", HEALTHY_H5,
         h5_config_edit(lambda c: dense(c).update(class_name="NoSuchLayer")))
    case("huge_input.h5", "absurd shapes", "--max-input-elements", HEALTHY_H5,
         h5_config_edit(widen_shapes))
    case("huge_units.h5", "absurd shapes", "parameters, more than --max-params", HEALTHY_H5,
         h5_config_edit(lambda c: dense(c, 3)["config"].update(units=10**12)))
    case("huge_dataset.h5", "absurd shapes", "weight datasets in the file declare", HEALTHY_H5,
         huge_dataset("model_weights/hidden1"))
    cases.append(Case(_copy(LAMBDA_H5, d / "lambda_payload.h5"), "Lambda payload", "h5",
                      "Lambda layer 'payload'"))
    case("lambda_nested.h5", "Lambda payload", "Lambda layer 'payload'", LAMBDA_H5,
         h5_config_edit(lambda c: nested_sequential(next(
             lay for lay in layers_of(c) if lay["class_name"] == "Lambda"))))
    case("module_os.h5", "non-Keras module (CVE-2025-1550)", "a reference to Python module 'os'",
         HEALTHY_H5, h5_config_edit(lambda c: dense(c)["config"].update(
             activation=function_ref("os", "system"))))
    case("keras_config.h5", "Keras non-modelling function (CVE-2025-9906)",
         "'keras.config.enable_unsafe_deserialization'", HEALTHY_H5,
         h5_config_edit(lambda c: dense(c)["config"].update(
             activation=function_ref("keras.config", "enable_unsafe_deserialization"))))

    # Valid oddity: an HDF5 user block before the superblock.
    userblock = d / "valid_userblock.h5"
    with h5py.File(HEALTHY_H5, "r") as source, h5py.File(userblock, "w", userblock_size=512) as out:
        for key, value in source.attrs.items():
            out.attrs[key] = value
        for key in source:
            source.copy(source[key], out, key)
    cases.append(Case(userblock, "valid oddity", "h5", valid=True))
    return cases


def _savedmodel_cases(dest: Path, marker: Path) -> list[Case]:
    """SavedModel directories: broken ones and one whose graph writes a file."""
    cases = []

    def directory(name: str, pb: bytes | None) -> Path:
        path = dest / name
        path.mkdir()
        if pb is not None:
            (path / "saved_model.pb").write_bytes(pb)
        return path

    writer = _save_file_writer(dest / "sm_write_file", marker)
    pb = (writer / "saved_model.pb").read_bytes()
    rng = np.random.default_rng(7)
    for name, content in (("sm_empty_dir", None), ("sm_empty_pb", b""),
                          ("sm_random_pb", rng.bytes(4096)),
                          ("sm_text_pb", b"these are my notes, not a graph\n"),
                          ("sm_truncated_100", pb[:100]),
                          ("sm_truncated_half", pb[: len(pb) // 2])):
        category = ("empty dir" if content is None else "empty file" if not content else
                    "random bytes" if "random" in name else "text file" if "text" in name
                    else "truncated")
        cases.append(Case(directory(name, content), category, "savedmodel"))
    cases.append(Case(writer, "SavedModel graph writes a file", "savedmodel"))
    no_vars = dest / "sm_write_file_no_variables"
    shutil.copytree(writer, no_vars)
    shutil.rmtree(no_vars / "variables", ignore_errors=True)
    cases.append(Case(no_vars, "SavedModel graph writes a file", "savedmodel"))
    pb_dir = directory("sm_pb_is_dir", None)
    (pb_dir / "saved_model.pb").mkdir()
    cases.append(Case(pb_dir, "missing/garbled config", "savedmodel"))
    return cases


def _user_code_cases(dest: Path) -> list[Case]:
    """A model of the user's own registered layer loads with ``--import`` (.keras and a
    legacy .h5); with the same ``--import``, Lambda layers, other modules and names the
    module does not register are still refused."""
    category, args = "user code with --import", user_import(dest)
    module = user_module(dest / "user_code", USER_MODULE)
    user_keras, user_h5 = dest / "user_layer.keras", dest / "user_layer.h5"
    module.model(dead=0).save(user_keras)
    module.model(dead=0).save(user_h5)
    cases = [Case(user_keras, category, "keras", valid=True, args=args),
             Case(user_h5, category, "h5", valid=True, args=args)]

    def case(name: str, reason: str, edit: Callable[[dict[str, Any]], Any]) -> None:
        cases.append(Case(with_config(user_keras, dest / name, edit), category, "keras",
                          reason, args=args))

    def block(config: dict[str, Any]) -> dict[str, Any]:
        return next(layer for layer in layers_of(config) if layer["class_name"] == "Block")

    case("user_layer_lambda.keras", "Lambda layer 'payload'",
         lambda c: layers_of(c).insert(2, lambda_layer()))
    case("user_class_in_os.keras", "a reference to Python module 'os'",
         lambda c: block(c).update(module="os"))
    case("user_unregistered_class.keras",
         f"'{USER_MODULE}>Evil' in module '{USER_MODULE}', which the imported module does not",
         lambda c: block(c).update(registered_name=f"{USER_MODULE}>Evil"))
    case("user_unregistered_function.keras", f"'model' in module '{USER_MODULE}'",
         lambda c: dense(c)["config"].update(activation=function_ref(USER_MODULE, "model")))
    case("user_builtins_exec.keras", "a reference to Python module 'builtins'",
         lambda c: dense(c)["config"].update(activation=function_ref("builtins", "exec")))
    for source in (LAMBDA_KERAS, LAMBDA_H5):
        path = _copy(source, dest / f"lambda_payload_import{source.suffix}")
        cases.append(Case(path, category, source.suffix.lstrip("."), "Lambda layer 'payload'",
                          args=args))
    return cases


def _save_file_writer(path: Path, marker: Path) -> Path:
    """A SavedModel whose serving function writes ``marker`` when it runs."""
    import tensorflow as tf

    class Writer(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.ones([4, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def __call__(self, x: Any) -> Any:
            tf.io.write_file(str(marker), "payload ran")
            return tf.matmul(x, self.w)

    module = Writer()
    tf.saved_model.save(module, str(path), signatures=module.__call__)
    if marker.exists():
        raise RuntimeError("saving the SavedModel ran its payload")
    return path


# --- hostile optimizer state and compile config ---------------------------------------
# The model itself is sound (it audits); what the training readers meet is broken.

def trained_sources(dest: Path) -> tuple[Path, Path]:
    """A tiny model trained 3 steps with Adam(0.01), saved as trained.keras and trained.h5.

    features (4) → h1 (Dense 8, relu) → out (Dense 1): optimizer/vars holds
    iteration, learning_rate, then m, v of h1/kernel, h1/bias, out/kernel, out/bias.
    """
    from gradaudit.runtime import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="h1")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(hidden), name="trained")
    model.compile(keras.optimizers.Adam(0.01), "mse", run_eagerly=True)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 4)).astype("float32"), rng.normal(size=(24, 1)).astype("float32")
    for step in range(3):
        model.train_on_batch(x[step * 8 : step * 8 + 8], y[step * 8 : step * 8 + 8])
    dest.mkdir(parents=True, exist_ok=True)
    paths = dest / "trained.keras", dest / "trained.h5"
    for path in paths:
        model.save(path)
    return paths


def weights_edit(source: Path, path: Path, edit: Callable[[h5py.File], None]) -> Path:
    """A copy of a .keras file whose model.weights.h5 was changed by ``edit``."""
    with zipfile.ZipFile(source) as archive:
        buffer = io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(buffer, "r+") as handle:
        edit(handle)
    return with_member(source, path, "model.weights.h5", buffer.getvalue())


def replace_dataset(where: str, data: Any = None, **create: Any) -> Callable[[h5py.File], None]:
    """Put another dataset (values, or shape/dtype/chunks for an empty one) at ``where``."""
    def apply(handle: h5py.File) -> None:
        del handle[where]
        if data is not None:
            handle.create_dataset(where, data=data)
        else:
            handle.create_dataset(where, **create)
    return apply


def poison(where: str, value: float) -> Callable[[h5py.File], None]:
    def apply(handle: h5py.File) -> None:
        array = handle[where][()]
        array.flat[0] = value
        handle[where][...] = array
    return apply


def compile_edit(edit: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    def apply(config: dict[str, Any]) -> None:
        compiled = edit(config["compile_config"])
        if compiled is not None:
            config["compile_config"] = compiled
    return apply


def training_cases(dest: Path) -> list[Case]:
    """Trained models whose optimizer state or compile config is broken or hostile.

    Each audits (the probe never reads the optimizer state) and
    ``read_training_state`` returns a note naming the problem, never an error.
    """
    keras_file, h5_file = trained_sources(dest / "training_sources")
    cases: list[Case] = []
    with h5py.File(h5_file) as handle:  # "adam/…", or "adam_3/…" after other models
        first = handle["optimizer_weights"].attrs["weight_names"][0]
    prefix = (first.decode() if isinstance(first, bytes) else str(first)).split("/")[0]
    adam = f"optimizer_weights/{prefix}/"

    def keras_case(name: str, note: str, make: Callable[[Path], Any]) -> None:
        make(dest / name)
        cases.append(Case(dest / name, "hostile optimizer state", "keras", valid=True,
                          state_note=note))

    def h5_case(name: str, note: str, edit: Callable[[h5py.File], None]) -> None:
        cases.append(Case(h5_copy(h5_file, dest / name, edit), "hostile optimizer state", "h5",
                          valid=True, state_note=note))

    def weights(edit: Callable[[h5py.File], None]) -> Callable[[Path], Path]:
        return lambda p: weights_edit(keras_file, p, edit)

    def config(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], Path]:
        return lambda p: with_config(keras_file, p, compile_edit(edit))

    keras_case("state_slot_shape.keras", "different shapes", weights(
        replace_dataset("optimizer/vars/2", np.zeros((3, 3), "float32"))))
    keras_case("state_slot_missing.keras", "not numeric datasets 0, 1", weights(
        lambda h: h.__delitem__("optimizer/vars/5")))
    keras_case("state_slot_extra.keras", "holds 9 slot arrays", weights(
        lambda h: h.create_dataset("optimizer/vars/10", data=np.zeros(1, "float32"))))
    keras_case("state_slot_nan.keras", "NaN, Inf", weights(poison("optimizer/vars/2", np.nan)))
    keras_case("state_slot_huge.keras", "has shape", weights(lambda h: [replace_dataset(
        f"optimizer/vars/{i}", shape=(HUGE, HUGE), dtype="f4", chunks=(1000, 1000))(h)
        for i in (2, 3)]))
    keras_case("state_iterations_negative.keras", "iteration count", weights(
        replace_dataset("optimizer/vars/0", np.int64(-5))))
    keras_case("state_no_optimizer.keras", "no optimizer state", weights(
        lambda h: h.__delitem__("optimizer")))
    keras_case("state_unknown_optimizer.keras", "does not read the slots of optimizer Ftrl",
               config(lambda c: c["optimizer"].update(class_name="Ftrl")))
    keras_case("state_beta_garbled.keras", "beta_2", config(
        lambda c: c["optimizer"]["config"].update(beta_2="0.999")))
    keras_case("state_loss_garbled.keras", "compile config is garbled", config(
        lambda c: c.update(loss=[42])))
    keras_case("state_compile_list.keras", "compile config is garbled", config(lambda c: [1, 2]))
    h5_case("state_slot_inf.h5", "NaN, Inf", poison(adam + "h1_kernel_velocity", np.inf))
    h5_case("state_external_link.h5", "missing or not numbers", lambda h: (
        h.__delitem__(adam + "h1_kernel_momentum"),
        h.__setitem__(adam + "h1_kernel_momentum", h5py.ExternalLink("/dev/zero", "x"))))
    h5_case("state_string_slot.h5", "missing or not numbers",
            replace_dataset(adam + "out_bias_velocity", np.array([b"slot"])))
    h5_case("state_iteration_huge.h5", "iteration count", replace_dataset(
        adam + "iteration", shape=(HUGE, HUGE), dtype="i8", chunks=(1000, 1000)))
    h5_case("state_weight_names_garbled.h5", "lists no weight_names",
            set_attr_at("optimizer_weights", "weight_names", np.arange(4)))
    h5_case("state_training_config_garbled.h5", "not valid JSON",
            set_attr("training_config", "{not json"))
    return cases


def set_attr_at(group: str, name: str, value: Any) -> Callable[[h5py.File], None]:
    def apply(handle: h5py.File) -> None:
        handle[group].attrs[name] = value
    return apply


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else Path(__file__).parent / "out"
    if out.exists():
        shutil.rmtree(out)
    cases = build(out, out.parent / "savedmodel_marker.txt")
    for c in cases:
        print(f"{c.fmt:10} {c.category:45} {c.path.name}")
    print(f"{len(cases)} files in {out}")


if __name__ == "__main__":
    main(sys.argv[1:])

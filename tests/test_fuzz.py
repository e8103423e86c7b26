"""Fuzzing: mutated valid fixtures must keep every invariant of the hostile corpus.

Hypothesis mutates healthy_mlp.keras and healthy_mlp.h5: bit flips, truncations,
edits of zip members (config values, member bytes, dropped or renamed
members) and of HDF5 attributes; and a model of the user's own registered
layer, audited with ``--import`` of its module (whose class now runs on
mutated configs). Whatever the mutation, gradaudit exits 0, 1 or 2, prints one
line for a refused file, no traceback, and writes nothing. A model trained
with Adam has its optimizer group (values, shapes, dtypes, datasets dropped or
added, the attributes naming them) and its compile config mutated: the
training state reader returns notes, never an exception.

CI runs a bounded number of examples per test (GRADAUDIT_FUZZ_EXAMPLES,
default 30); see tests/README.md for a longer run. The audits use tight
--max-params/--max-input-elements so that a mutated size cannot make one
example slow.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradaudit.history.training_state import read_training_state
from tests.conftest import FIXTURES, UserModels
from tests.corpus.invariants import audit_problems
from tests.corpus.make_corpus import Member, members_of, trained_sources, zip_bytes

EXAMPLES = int(os.environ.get("GRADAUDIT_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 30, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
LIMITS = ("--max-params", "1000000", "--max-input-elements", "1000000")
KERAS = FIXTURES / "healthy_mlp.keras"
H5 = FIXTURES / "healthy_mlp.h5"

# A replacement for one config value: the kinds of values a config holds, and extremes.
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**13), 10**13), st.sampled_from([0, -1, 1, 2**31]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["Lambda", "Dense", "relu", "keras.layers", "os", "keras.config",
                     "function", "__lambda__", "float64", "int32"]),
    st.lists(st.integers(-3, 10**7), max_size=4),
)
# … and, for the user's model, the names its config gives its own code.
USER_VALUES = st.one_of(VALUES, st.sampled_from(
    ["mylayers", "mylayers>Block", "mylayers>halve", "mylayers>model", "builtins", "Block"]))


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every key's value (dicts) and item (lists) in a JSON tree."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(
        node, list) else []
    for key, value in items:
        found.append((*path, key))
        found.extend(_leaves(value, (*path, key)))
    return found


def _replace(config: Any, where: tuple[Any, ...], value: Any) -> None:
    node = config
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value


@st.composite
def config_edits(draw: st.DrawFn, config: Any, values: st.SearchStrategy[Any] = VALUES) -> Any:
    for _ in range(draw(st.integers(1, 3))):  # paths are re-read: an edit may prune a subtree
        _replace(config, draw(st.sampled_from(_leaves(config))), draw(values))
    return config


def _flip_bits(data: bytes, flips: list[tuple[float, int]]) -> bytes:
    buffer = bytearray(data)
    for where, bit in flips:
        buffer[int(where * (len(buffer) - 1))] ^= 1 << bit
    return bytes(buffer)


FLIPS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), min_size=1, max_size=8)


@st.composite
def mutated_keras(draw: st.DrawFn, source: Path = KERAS,
                  values: st.SearchStrategy[Any] = VALUES) -> bytes:
    data = source.read_bytes()
    kind = draw(st.sampled_from(["flip", "truncate", "config", "member_bytes", "drop", "rename"]))
    if kind == "flip":
        return _flip_bits(data, draw(FLIPS))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    with zipfile.ZipFile(source) as archive:
        members = [Member(i.filename, archive.read(i)) for i in archive.infolist()]
    index = draw(st.integers(0, len(members) - 1))
    member = members[index]
    if kind == "config":
        config = json.loads(dict((m.name, m.data) for m in members)["config.json"])
        edited = json.dumps(draw(config_edits(config, values))).encode()
        members = [Member(m.name, edited) if m.name == "config.json" else m for m in members]
    elif kind == "member_bytes":  # the CRC is recomputed: only the content is wrong
        members[index] = Member(member.name, _flip_bits(member.data, draw(FLIPS)))
    elif kind == "drop":
        del members[index]
    else:
        members[index] = Member(draw(st.sampled_from(
            ["config.json", "model.weights.h5", "assets/x", "metadata.json", "x/../y"])),
            member.data)
    return zip_bytes(members)


@st.composite
def mutated_h5(draw: st.DrawFn) -> bytes:
    data = H5.read_bytes()
    kind = draw(st.sampled_from(["flip", "truncate", "config", "attr"]))
    if kind == "flip":
        return _flip_bits(data, draw(FLIPS))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    buffer = io.BytesIO(data)
    with h5py.File(buffer, "r+") as handle:
        if kind == "config":
            config = json.loads(handle.attrs["model_config"])
            handle.attrs["model_config"] = json.dumps(draw(config_edits(config)))
        else:
            name = draw(st.sampled_from(["model_config", "keras_version", "backend"]))
            text = st.text(st.characters(exclude_characters="\0"), max_size=20)  # HDF5 strings
            value = draw(st.one_of(st.none(), text, st.integers(-5, 5)))
            if value is None:
                del handle.attrs[name]
            else:
                handle.attrs[name] = value
    return buffer.getvalue()


def _check(data: bytes, suffix: str, tmp_path: Path, markers: list[Path],
           extra: tuple[str, ...] = ()) -> None:
    case = Path(tempfile.mkdtemp(dir=tmp_path))  # hypothesis reuses tmp_path across examples
    (case / "model").mkdir()
    path = case / "model" / f"fuzzed{suffix}"
    path.write_bytes(data)
    problems = audit_problems(path, valid=None, reason=None, markers=markers,
                              root=case / "run", extra=(*LIMITS, *extra))
    assert problems == [], problems


@pytest.fixture
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    marker = tmp_path / "marker.txt"
    monkeypatch.setenv("GRADAUDIT_MARKER", str(marker))
    return [marker]


@FUZZ
@given(data=mutated_keras())
def test_mutated_keras_files_keep_the_invariants(data: bytes, tmp_path: Path,
                                                 markers: list[Path]) -> None:
    _check(data, ".keras", tmp_path, markers)


@FUZZ
@given(data=mutated_h5())
def test_mutated_h5_files_keep_the_invariants(data: bytes, tmp_path: Path,
                                              markers: list[Path]) -> None:
    _check(data, ".h5", tmp_path, markers)


@FUZZ
@given(data=st.data())
def test_mutated_user_layer_files_with_import_keep_the_invariants(
    data: st.DataObject, user_models: UserModels, tmp_path: Path, markers: list[Path]
) -> None:
    mutated = data.draw(mutated_keras(user_models.healthy, USER_VALUES))
    _check(mutated, ".keras", tmp_path, markers, ("--import", str(user_models.module)))


# --- the training state: mutated optimizer groups and compile configs ------------------------

SLOT_VALUES = st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 0.0, 1e38, 1e-45])
SHAPES = st.lists(st.integers(0, 9), max_size=3).map(tuple)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return trained_sources(tmp_path_factory.mktemp("trained"))


def _mutate_group(draw: st.DrawFn, handle: h5py.File, root: str) -> None:
    """One edit of the datasets under ``root`` (the optimizer's): values, shapes,
    dtypes, deletions, additions, or the attributes that name them."""
    names: list[str] = []
    handle[root].visititems(lambda name, item: names.append(name) if isinstance(
        item, h5py.Dataset) else None)
    where = f"{root}/{draw(st.sampled_from(names))}"
    kind = draw(st.sampled_from(["value", "shape", "dtype", "delete", "add", "attr"]))
    if kind == "value" and handle[where].size:  # as float: an int counter may become NaN
        data = np.array(handle[where][()], dtype="float32")
        data.flat[draw(st.integers(0, data.size - 1))] = draw(SLOT_VALUES)
        del handle[where]
        handle.create_dataset(where, data=data)
    elif kind in ("shape", "dtype"):
        del handle[where]
        data = (np.zeros(draw(SHAPES), "float32") if kind == "shape" else
                draw(st.sampled_from([np.array([b"x"]), np.arange(3), np.float64(2.5)])))
        handle.create_dataset(where, data=data)
    elif kind == "delete":
        del handle[where]
    elif kind == "add":
        name = draw(st.sampled_from(["99", "iteration", "m/h1/kernel:0", "x"]))
        if f"{root}/{name}" not in handle:
            handle.create_dataset(f"{root}/{name}", data=np.zeros(draw(SHAPES), "float32"))
    else:
        value = draw(st.one_of(st.text(max_size=8).filter(lambda t: "\0" not in t),
                               st.integers(-3, 3), st.just(np.arange(2))))
        attribute = draw(st.sampled_from(["weight_names", "name"]))
        handle[where.rsplit("/", 1)[0] if attribute == "name" else root].attrs[attribute] = value


@st.composite
def mutated_trained(draw: st.DrawFn, keras_file: Path, h5_file: Path) -> tuple[bytes, str]:
    if draw(st.booleans()):  # .keras: model.weights.h5's optimizer group, or compile_config
        members = {m.name: m for m in members_of(keras_file)}
        if draw(st.booleans()):
            config = json.loads(members["config.json"].data)
            config["compile_config"] = draw(config_edits(config["compile_config"]))
            members["config.json"] = Member("config.json", json.dumps(config).encode())
        else:
            buffer = io.BytesIO(members["model.weights.h5"].data)
            with h5py.File(buffer, "r+") as handle:
                _mutate_group(draw, handle, "optimizer")
            members["model.weights.h5"] = Member("model.weights.h5", buffer.getvalue())
        return zip_bytes(list(members.values())), "keras"
    buffer = io.BytesIO(h5_file.read_bytes())
    with h5py.File(buffer, "r+") as handle:
        if draw(st.booleans()):
            config = json.loads(handle.attrs["training_config"])
            handle.attrs["training_config"] = json.dumps(draw(config_edits(config)))
        else:
            _mutate_group(draw, handle, "optimizer_weights")
    return buffer.getvalue(), "h5"


@FUZZ
@given(data=st.data())
def test_mutated_training_state_is_a_note_never_an_error(data: st.DataObject, tmp_path: Path,
                                                         trained: tuple[Path, Path]) -> None:
    """read_training_state on a mutated trained file: a state, its notes, no exception."""
    content, fmt = data.draw(mutated_trained(*trained))
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / f"fuzzed.{fmt}"
    path.write_bytes(content)
    start = time.monotonic()
    state = read_training_state(str(path), fmt)
    assert time.monotonic() - start < 5
    assert all(isinstance(note, str) and note for note in state.notes)
    for variable in state.variables:
        units = variable.shape[-1] if variable.shape else 1
        assert variable.activity is None or variable.activity.shape == (units,)
        assert variable.finite or (variable.activity is None and variable.grad_rms is None)

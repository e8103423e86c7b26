"""Fuzzing: mutated valid fixtures must keep every invariant of the hostile corpus.

Hypothesis mutates healthy_mlp.keras and healthy_mlp.h5: bit flips, truncations,
edits of zip members (config values, member bytes, dropped or renamed
members) and of HDF5 attributes; and a model of the user's own registered
layer, audited with ``--import`` of its module (whose class now runs on
mutated configs). Whatever the mutation, gradaudit exits 0, 1 or 2, prints one
line for a refused file, no traceback, and writes nothing.

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
import zipfile
from pathlib import Path
from typing import Any

import h5py
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES, UserModels
from tests.corpus.invariants import audit_problems
from tests.corpus.make_corpus import Member, zip_bytes

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

"""Hostile and broken model files: nothing executes, nothing crashes, one clear line each.

The corpus (tests/corpus/make_corpus.py) is built once per session into a
temporary directory. Every file is audited alone in-process (one stderr line,
its reason, nothing written, no marker), then all of them in one real
subprocess whose time and peak memory are measured; that run imports the
corpus's user module (``--import``), which must change no other file's outcome.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gradaudit.load.detect import detect_format
from gradaudit.load.prescan import read_model_config, unsafe_references
from tests.conftest import FIXTURES, LOADABLE, run_cli
from tests.corpus.invariants import audit_problems, listing
from tests.corpus.make_corpus import Case, build, user_import

MAX_SECONDS = 180  # the whole corpus in one process, TensorFlow import included
MAX_RSS_BYTES = 3 * 1024**3  # peak resident memory of that process


@pytest.fixture(scope="session")
def markers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """Payload markers: $GRADAUDIT_MARKER (Lambda bytecode) and the SavedModel's path."""
    directory = tmp_path_factory.mktemp("markers")
    lambda_marker, graph_marker = directory / "lambda.txt", directory / "graph.txt"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADAUDIT_MARKER", str(lambda_marker))
        yield [lambda_marker, graph_marker]


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="session")
def corpus(corpus_dir: Path, markers: list[Path]) -> list[Case]:
    return build(corpus_dir, markers[1])


REQUIRED = {
    "truncated", "random bytes", "text file", "empty file", "empty dir", "zip path traversal",
    "zip bomb", "missing/garbled config", "unknown layer class", "absurd shapes",
    "Lambda payload", "custom class not importable", "subclassed model",
    "non-Keras module (CVE-2025-1550)", "Keras non-modelling function (CVE-2025-9906)",
    "SavedModel graph writes a file", "valid oddity", "user code with --import",
    "hostile optimizer state",
}


def test_corpus_covers_every_category_in_three_formats(corpus: list[Case]) -> None:
    by_format = collections.Counter(case.fmt for case in corpus)
    assert len(corpus) >= 40
    assert by_format["keras"] >= 20 and by_format["h5"] >= 10 and by_format["savedmodel"] >= 5
    assert {case.category for case in corpus} >= REQUIRED
    assert len({case.path.name for case in corpus}) == len(corpus)
    for fmt in ("keras", "h5", "savedmodel"):
        assert {"truncated", "random bytes", "text file", "empty file"} <= {
            c.category for c in corpus if c.fmt == fmt}, fmt


def test_every_corpus_file_alone_gives_its_one_line_and_runs_nothing(
    corpus: list[Case], markers: list[Path], tmp_path: Path
) -> None:
    failures = {}
    for case in corpus:
        problems = audit_problems(case.path, valid=case.valid, reason=case.reason,
                                  markers=markers, root=tmp_path / case.path.name,
                                  extra=case.args)
        if problems:
            failures[case.path.name] = problems
    assert failures == {}


def test_whole_corpus_in_one_process_is_bounded_in_time_and_memory(
    corpus: list[Case], corpus_dir: Path, markers: list[Path], tmp_path: Path
) -> None:
    """Many paths per invocation: each failing path has its own line; only --output is written.

    With the corpus's user module imported: the files of its own classes load, and
    every other file keeps its outcome (--import widens nothing else)."""
    work, temp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    temp.mkdir()
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    paths = [str(case.path) for case in corpus]
    command = [str(Path(sys.executable).with_name("gradaudit")), "audit", *paths, "-q",
               "-f", "json", "-o", "report.json", "--samples", "8", *user_import(corpus_dir)]
    env = {**os.environ, "TMPDIR": str(temp)}
    start = time.monotonic()
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    peak = usage.ru_maxrss * 1024  # kilobytes on Linux
    print(f"corpus of {len(corpus)} files: {seconds:.1f} s, peak RSS {peak / 2**20:.0f} MiB")

    assert process.returncode == 2
    assert stdout.read_text() == ""
    lines = stderr.read_text().splitlines()
    assert "Traceback" not in stderr.read_text()
    refused = [str(c.path) for c in corpus if not c.valid]
    assert len(lines) == len(refused)
    assert sorted(line.split(": ")[2] for line in lines) == sorted(refused)
    report = json.loads((work / "report.json").read_text())
    assert sorted(e["path"] for e in report["errors"]) == sorted(refused)
    assert sorted(m["path"] for m in report["models"]) == sorted(
        str(c.path) for c in corpus if c.valid)
    assert listing(work) == ["report.json"] and listing(temp) == []
    assert not any(marker.exists() for marker in markers)
    assert seconds < MAX_SECONDS and peak < MAX_RSS_BYTES


def test_hostile_optimizer_state_gives_a_note_never_an_error(corpus: list[Case]) -> None:
    """Read without TensorFlow: every broken slot, counter or compile config is a note."""
    from gradaudit.history.training_state import read_training_state

    cases = [case for case in corpus if case.state_note is not None]
    assert len(cases) >= 15 and {case.fmt for case in cases} == {"keras", "h5"}
    failures = {}
    start = time.monotonic()
    for case in cases:
        state = read_training_state(str(case.path), case.fmt)
        if not any(case.state_note in note for note in state.notes):
            failures[case.path.name] = state.notes
        if any(not v.finite and v.activity is not None for v in state.variables):
            failures[case.path.name] = "a non-finite variable has an activity"
    assert failures == {}
    assert time.monotonic() - start < 10  # no declared size is read


# --- the config scan: a principled allow-list, no false positives ------------------------

@pytest.mark.parametrize("path", LOADABLE, ids=lambda p: p.name)
def test_scan_accepts_every_fixture(path: Path) -> None:
    assert unsafe_references(read_model_config(path, detect_format(path))) == []


@pytest.mark.parametrize(("module", "name", "refused"), [
    ("keras.layers", "Dense", False),
    ("keras.src.ops.numpy", "Where", False),
    ("keras.src.models.functional", "Functional", False),
    ("keras", "DTypePolicy", False),
    ("keras.config", "enable_unsafe_deserialization", True),
    ("keras.saving", "load_model", True),
    ("keras.utils", "get_file", True),
    ("keras.src.utils.file_utils", "get_file", True),
    ("keras.applications", "ResNet50", True),
    ("keras.callbacks", "BackupAndRestore", True),
])
def test_only_keras_modelling_namespaces_may_be_named(module: str, name: str,
                                                      refused: bool) -> None:
    node = {"module": module, "class_name": name, "config": {}}
    assert bool(unsafe_references({"layers": [node]})) is refused


@pytest.mark.parametrize(("module", "name", "refused"), [
    ("keras.activations", "relu", False),
    ("keras.losses", "mean_squared_error", False),
    ("keras.activations", "deserialize", True),
    ("keras.config", "enable_unsafe_deserialization", True),
    ("keras.layers", "Dense", True),  # classes, not functions, live there
    ("keras", "Input", True),
])
def test_function_references_only_from_function_namespaces(module: str, name: str,
                                                           refused: bool) -> None:
    node = {"module": module, "class_name": "function", "config": name}
    assert bool(unsafe_references([node])) is refused


def test_scan_survives_configs_nested_deeper_than_the_recursion_limit() -> None:
    node: object = {"module": "os", "class_name": "function", "config": "system"}
    for _ in range(sys.getrecursionlimit() * 3):
        node = {"config": {"layers": [node]}}
    assert unsafe_references(node) == ["a reference to Python module 'os'"]


def test_scan_survives_non_string_class_names() -> None:
    """Found by the fuzzer: a list as class_name made the scan raise TypeError."""
    node = {"module": "keras.src.models.functional", "class_name": [], "config": {}}
    assert unsafe_references(node) == []


def test_lambda_config_that_is_not_a_dict_is_still_refused() -> None:
    assert unsafe_references({"class_name": "Lambda", "config": ["x"]}) == [
        "Lambda layer '?' (runs Python code stored in the file)"]


# --- limits ---------------------------------------------------------------------------

HEALTHY = str(FIXTURES / "healthy_mlp.keras")  # 20 float inputs, 3754 parameters


@pytest.mark.parametrize(("args", "code", "reason"), [
    (["--max-params", "3753"], 2, "declare 3754 values, more than --max-params 3753"),
    (["--max-params", "3754"], 0, None),
    (["--max-input-elements", "19"], 2, "one sample of the model's inputs holds 20 values, "
     "more than --max-input-elements 19"),
    (["--max-input-elements", "20"], 0, None),  # batches of 1 (test_runs.py)
])
def test_limit_flags(args: list[str], code: int, reason: str | None) -> None:
    result = run_cli("audit", HEALTHY, "-q", "--samples", "64", *args)
    assert result.exit_code == code, result.stderr
    if reason:
        assert reason in result.stderr and result.stderr.count("\n") == 1


def test_counting_declared_params_leaves_no_deferred_variable_behind() -> None:
    """Deferred variables left registered would be allocated by Keras's next stateless scope."""
    from gradaudit.load.limits import declared_params
    from gradaudit.runtime import import_tensorflow

    import_tensorflow()
    from keras.src.backend.common import global_state

    config = read_model_config(FIXTURES / "healthy_mlp.keras", "keras")
    before = list(global_state.get_global_attribute("uninitialized_variables") or [])
    assert declared_params(config, "keras", unsafe=False) == 3754
    assert list(global_state.get_global_attribute("uninitialized_variables") or []) == before
    assert read_model_config(FIXTURES / "healthy_mlp.keras", "keras") == config  # not consumed


def test_h5_weight_datasets_count_against_max_params() -> None:
    result = run_cli("audit", str(FIXTURES / "healthy_mlp.h5"), "-q", "--max-params", "3000")
    assert result.exit_code == 2
    assert "declare 3754 values, more than --max-params 3000" in result.stderr


# --- --verbose ------------------------------------------------------------------------

def _stderr_of(*args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("gradaudit")), "audit", HEALTHY, "--samples", "8",
         *args], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.strip()]


def test_tensorflow_logs_reach_stderr_only_with_verbose() -> None:
    """Without --verbose only gradaudit's lines: test_cli's console-script test checks that."""
    verbose = _stderr_of("--verbose")
    assert any(not line.startswith("gradaudit: ") for line in verbose), verbose

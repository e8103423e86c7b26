"""The command line end to end: exit codes, bad input, safety, output files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import FIXTURES, ROOT, run_cli, run_cli_fresh

HEALTHY = str(FIXTURES / "healthy_mlp.keras")
DEAD = str(FIXTURES / "dead_relu.keras")
PARTLY_DEAD = str(FIXTURES / "partly_dead.keras")
FROZEN = str(FIXTURES / "frozen_layer.keras")


def _stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


# --- exit codes ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("path", "fail_on", "code"),
    [
        (HEALTHY, "error", 0),
        (DEAD, "error", 1),
        (DEAD, "never", 0),
        (PARTLY_DEAD, "error", 0),
        (PARTLY_DEAD, "warning", 1),
        (FROZEN, "warning", 0),
        (FROZEN, "info", 1),
    ],
)
def test_exit_code_follows_fail_on(path: str, fail_on: str, code: int) -> None:
    result = run_cli("audit", path, "--fail-on", fail_on, "--samples", "64", "-q")
    assert result.exit_code == code
    assert result.stderr == ""


def test_a_failing_file_does_not_stop_the_others_and_exit_is_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.keras"
    result = run_cli("audit", "--format", "json", str(missing), DEAD, "--samples", "64")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert [Path(m["path"]).name for m in document["models"]] == ["dead_relu.keras"]
    assert document["errors"] == [{"path": str(missing), "error": "no such file or directory"}]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["audit", HEALTHY, "--format", "nope"],
         "--format: 'nope' is not one of table, json, markdown, sarif, junit, html"),
        (["audit", HEALTHY, "--samples", "0"], "--samples: must be at least 1 (got 0)"),
        (["audit", HEALTHY, "--batch-size", "abc"], "--batch-size: 'abc' is not a whole number"),
        (["audit"], "missing PATH... (try 'gradaudit audit --help')"),
        (["audit", HEALTHY, "--foo"], "no such option: --foo (did you mean --format?)"),
        (["audit", HEALTHY, "--zzz"], "no such option: --zzz (try 'gradaudit audit --help')"),
        (["audit", HEALTHY, "--samples"], "--samples: needs a value"),
        (["audti", HEALTHY], "no such command 'audti' (did you mean audit?)"),
        (["frobnicate"], "no such command 'frobnicate' (try 'gradaudit --help')"),
        (["audit", HEALTHY, "--fail-on", "bad"],
         "--fail-on: 'bad' is not one of error, warning, info, never"),
        (["merge", "r.json", "--format", "bad"],
         "--format: 'bad' is not one of table, json, markdown, sarif, junit, html"),
        (["explain"], "missing CODE (try 'gradaudit explain --help')"),
    ],
)
def test_a_usage_error_is_one_plain_line_and_exit_2(args: list[str], line: str) -> None:
    result = run_cli(*args)
    assert result.exit_code == 2
    assert result.stderr == f"gradaudit: error: {line}\n"
    assert result.stdout == ""


def test_help_names_the_arguments_plainly_and_no_arguments_still_shows_help() -> None:
    assert run_cli("audit", "--help").stdout.startswith(
        "Usage: gradaudit audit [OPTIONS] PATH...\n")
    assert run_cli("explain", "--help").stdout.startswith(
        "Usage: gradaudit explain [OPTIONS] CODE\n")
    bare = run_cli()
    assert "Commands:" in bare.stdout + bare.stderr


# --- bad input: exit 2, one clear line, no traceback ------------------------------

def _truncated(tmp: Path, size: int, suffix: str = ".keras") -> Path:
    path = tmp / f"truncated_{size}{suffix}"
    source = FIXTURES / f"healthy_mlp{suffix}"
    path.write_bytes(source.read_bytes()[:size])
    return path


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    rng = np.random.default_rng(0)
    random_keras = tmp / "random.keras"
    random_keras.write_bytes(rng.bytes(4096))
    text_h5 = tmp / "notes.h5"
    text_h5.write_text("these are my notes, not a model\n")
    empty = tmp / "empty.keras"
    empty.write_bytes(b"")
    no_config = tmp / "no_config.keras"
    with zipfile.ZipFile(no_config, "w") as archive:
        archive.writestr("metadata.json", "{}")
    bad_json = tmp / "bad_json.keras"
    with zipfile.ZipFile(bad_json, "w") as archive:
        archive.writestr("config.json", "{not json")
    weights_only = tmp / "weights_only.h5"
    with h5py.File(weights_only, "w") as handle:
        handle.create_dataset("kernel", data=np.zeros((2, 2)))
    plain_dir = tmp / "plain_dir"
    plain_dir.mkdir()
    return {
        "truncated zip (half)": (_truncated(tmp, 18000), "damaged .keras archive"),
        "truncated zip (100 bytes)": (_truncated(tmp, 100), "damaged .keras archive"),
        "truncated h5": (_truncated(tmp, 4000, ".h5"), "damaged HDF5 file"),
        "random bytes": (random_keras, "not a Keras model file"),
        "text file": (text_h5, "not a Keras model file"),
        "empty file": (empty, "the file is empty"),
        "zip without config": (no_config, "zip archive without config.json"),
        "invalid config": (bad_json, "not valid JSON"),
        "weights-only h5": (weights_only, "without a model_config"),
        "plain directory": (plain_dir, "directory holds no model files"),
        "missing": (tmp / "nope.keras", "no such file or directory"),
    }


def test_bad_files_give_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    for label, (path, reason) in _bad_files(tmp_path).items():
        result = run_cli("audit", str(path), "-q")
        assert result.exit_code == 2, label
        lines = _stderr_lines(result)
        assert len(lines) == 1, (label, lines)
        assert lines[0].startswith(f"gradaudit: error: {path}: "), label
        assert reason in lines[0], (label, lines[0])
        assert "Traceback" not in result.stderr + result.stdout


def test_format_is_detected_from_content_not_extension(tmp_path: Path) -> None:
    renamed = tmp_path / "model.bin"
    shutil.copy(FIXTURES / "dead_relu.keras", renamed)
    disguised = tmp_path / "model.keras"
    shutil.copy(FIXTURES / "healthy_mlp.h5", disguised)
    result = run_cli("audit", "-f", "json", str(renamed), str(disguised), "--samples", "64")
    models = json.loads(result.stdout)["models"]
    assert [m["format"] for m in models] == ["keras", "h5"]
    assert {f["code"] for f in models[0]["findings"]} >= {"GA102"}


# --- untrusted code never runs without --unsafe ----------------------------------

@pytest.mark.parametrize("name", ["lambda_payload.keras", "lambda_payload.h5"])
def test_lambda_payload_is_refused_and_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    marker = tmp_path / "marker.txt"
    monkeypatch.setenv("GRADAUDIT_MARKER", str(marker))
    result = run_cli("audit", str(FIXTURES / name))
    assert result.exit_code == 2
    (line,) = _stderr_lines(result)[:1]
    assert "Lambda layer 'payload'" in line and "--unsafe" in line
    assert not marker.exists()


def test_unsafe_opt_in_runs_the_lambda_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker.txt"
    monkeypatch.setenv("GRADAUDIT_MARKER", str(marker))
    path = str(FIXTURES / "lambda_payload.keras")
    result = run_cli("audit", path, "--unsafe", "-f", "json", "--samples", "8")
    assert result.exit_code in (0, 1), result.stderr
    assert marker.exists()  # the payload ran: --unsafe really is the only switch
    (model,) = json.loads(result.stdout)["models"]
    assert model["unsafe"] is True
    table = run_cli("audit", path, "--unsafe", "--samples", "8")
    assert "UNSAFE" in table.stdout.splitlines()[0]


# --- output -----------------------------------------------------------------

def test_output_file_is_written_and_stdout_stays_empty(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run_cli("audit", DEAD, "-f", "json", "-o", str(out), "--samples", "64")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert json.loads(out.read_text())["models"][0]["path"] == DEAD
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain open() would make it


def test_output_never_overwrites_an_audited_model(tmp_path: Path) -> None:
    model = tmp_path / "model.keras"
    shutil.copy(FIXTURES / "healthy_mlp.keras", model)
    before = model.read_bytes()
    result = run_cli("audit", str(model), "-o", str(model))
    assert result.exit_code == 2
    assert "refusing to overwrite" in result.stderr
    assert model.read_bytes() == before


def test_table_report_has_header_tables_and_findings() -> None:
    result = run_cli("audit", DEAD, "--samples", "64")
    lines = result.stdout.splitlines()
    assert lines[0] == f"{DEAD} (keras)"
    assert lines[1].startswith("params: 484 total, 484 trainable, 0 non-trainable")
    assert "samples: 64 (seed 0)" in lines[1]
    text = result.stdout
    for heading in ("Dead activations:", "Non-trainable parameters: none",
                    "Disconnected paths:", "Findings:"):
        assert heading in text
    assert "GA102" in text and "100%" in text


def test_same_seed_same_report_different_seed_other_inputs() -> None:
    first = run_cli("audit", "-f", "json", PARTLY_DEAD, "--seed", "3", "--samples", "32")
    second = run_cli("audit", "-f", "json", PARTLY_DEAD, "--seed", "3", "--samples", "32")
    assert first.stdout == second.stdout
    other = run_cli("audit", "-f", "json", PARTLY_DEAD, "--seed", "4", "--samples", "32")
    assert json.loads(other.stdout)["models"][0]["summary"]["seed"] == 4


def test_samples_and_batch_size_are_honoured() -> None:
    def used(*args: str) -> int:
        result = run_cli("audit", "-f", "json", HEALTHY, "--samples", "50", *args)
        return json.loads(result.stdout)["models"][0]["summary"]["samples"]

    assert used("--batch-size", "16", "--all-samples") == 50
    assert used("--batch-size", "16") == 16  # healthy: decided after the first batch
    assert used("--batch-size", "64") == 50


# --- catalogue commands -----------------------------------------------------

def test_checks_lists_every_code() -> None:
    from gradaudit.report.catalogue import CATALOGUE

    result = run_cli("checks")
    assert result.exit_code == 0
    for rule in CATALOGUE:
        assert rule.code in result.stdout


def test_explain_prints_meaning_and_fix() -> None:
    result = run_cli("explain", "ga102")
    assert result.exit_code == 0
    assert result.stdout.startswith("GA102 dead_relu_layer (error)")
    assert "LeakyReLU" in result.stdout
    unknown = run_cli("explain", "GA999")
    assert unknown.exit_code == 2 and "unknown code" in unknown.stderr


def test_explain_quotes_the_thresholds_and_activations_the_checks_use() -> None:
    from gradaudit.model.rules import RELU_FAMILY, SATURATING

    ga101, ga111, ga203, ga204 = (run_cli("explain", code).stdout
                                  for code in ("GA101", "GA111", "GA203", "GA204"))
    assert all(name in ga101 for name in RELU_FAMILY) and "(default 50%)" in ga101
    assert all(name in ga111 for name in SATURATING)
    assert "`saturation_eps` (default 1e-3)" in ga111 and "default 99%" in ga111
    assert "`exploding_ratio`, default 1e3" in ga203 and "`exploding_growth`, default 1e3" in ga203
    assert "default 1e-3" in ga204 and "default 1e-4" in ga204


def test_the_docs_list_every_code_with_its_severity() -> None:
    from gradaudit.report.catalogue import CATALOGUE

    codes = (ROOT / "docs" / "codes.md").read_text(encoding="utf-8")  # linked from the README
    rows = re.findall(r"^\| \[(GA\d+)\]\([^)]*\) \| (\w+) \|", codes, re.M)
    assert rows == [(rule.code, str(rule.severity)) for rule in CATALOGUE]


# --- the installed console script, in a real subprocess ----------------------------

def _console_script() -> str:
    script = Path(sys.executable).with_name("gradaudit")
    return str(script) if script.exists() else shutil.which("gradaudit") or "gradaudit"


def test_console_script_subprocess_audit() -> None:
    proc = subprocess.run(
        [_console_script(), "audit", DEAD, "--format", "json", "--samples", "64"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    codes = {(f["code"], f["layer"]) for f in json.loads(proc.stdout)["models"][0]["findings"]}
    assert ("GA102", "dead") in codes
    # TensorFlow's start-up chatter does not reach the terminal; only our status line.
    assert _nonempty(proc.stderr) == [
        line for line in _nonempty(proc.stderr) if line.startswith("gradaudit: ")
    ]


def _nonempty(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "args", [["--help"], ["audit", "--help"], ["checks"], ["explain", "GA201"],
             ["audit", "--samples", "x", "m.keras"], ["audit", "--import", "my layers", "m.keras"]]
)
def test_commands_that_need_no_model_do_not_import_tensorflow(args: list[str]) -> None:
    fresh = run_cli_fresh(*args)
    assert fresh.imported == [], fresh.stdout + fresh.stderr


def test_python_dash_m_works() -> None:
    proc = subprocess.run([sys.executable, "-m", "gradaudit", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("gradaudit ")


def test_a_load_error_is_printed_once_on_stderr_not_again_on_stdout() -> None:
    result = run_cli("audit", "nonexistent.keras", "-q")
    assert result.exit_code == 2
    assert result.stderr.strip() == "gradaudit: error: nonexistent.keras: no such file or directory"
    assert "no such file" not in result.stdout


# --- answers before TensorFlow (issue 14, part 2) --------------------------------------

def _early_cases(tmp: Path) -> dict[str, list[str]]:
    (tmp / "empty").mkdir()
    (tmp / "text.keras").write_text("not a model\n")
    (tmp / "data.csv").write_text("x,y\n1,2\n")
    return {
        "no such file or directory": ["audit", str(tmp / "missing.keras")],
        "directory holds no model files": ["audit", str(tmp / "empty")],
        "neither a .keras zip archive nor an HDF5": ["audit", str(tmp / "text.keras")],
        "not a NumPy .npy/.npz file": [
            "audit", str(FIXTURES / "healthy_mlp.keras"), "--inputs", str(tmp / "data.csv")],
        "Lambda layer": ["audit", str(FIXTURES / "lambda_payload.keras")],
    }


def test_files_that_cannot_be_audited_are_answered_before_tensorflow(tmp_path: Path) -> None:
    """A missing file, an empty directory, a text file named .keras, a bad --inputs
    file, a refused config: one line, exit 2, and TensorFlow never imported."""
    for reason, args in _early_cases(tmp_path).items():
        fresh = run_cli_fresh(*args, "-q")
        assert "EXIT 2" in fresh.stdout, (args, fresh.stdout, fresh.stderr)
        errors = _nonempty(fresh.stderr)
        assert len(errors) == 1 and errors[0].startswith("gradaudit: error: "), errors
        assert reason in errors[0]
        assert fresh.imported == [], (args, fresh.imported)


def test_tensorflow_is_imported_once_a_model_passes_the_checks(tmp_path: Path) -> None:
    """The early answer is not a skipped audit: the bad path fails, the good one runs."""
    fresh = run_cli_fresh("audit", str(tmp_path / "missing.keras"),
                          str(FIXTURES / "healthy_mlp.keras"), "-q", "--samples", "8")
    assert "EXIT 2" in fresh.stdout
    assert fresh.imported == []  # the worker process imports it (gradaudit/worker.py)
    assert "healthy_mlp" in fresh.stdout

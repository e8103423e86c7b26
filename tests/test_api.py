"""The Python API and the pytest helper: same pipeline as the CLI, real models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import gradaudit
from gradaudit.errors import AuditError
from gradaudit.testing import assert_no_findings
from tests.conftest import FIXTURES, run_cli, run_fresh

DEAD = str(FIXTURES / "dead_relu.keras")
DEAD_FINDINGS = [("GA202", "pre"), ("GA102", "dead"), ("GA202", "dead"), ("GA202", "out")]


def _codes(report: gradaudit.Report) -> list[tuple[str, str]]:
    return [(f.code, f.layer) for f in report.findings]


def _mlp(name: str, bias: float = 0.0, kernel: str = "glorot_uniform"):  # type: ignore[no-untyped-def]
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden", kernel_initializer=kernel,
                                bias_initializer=keras.initializers.Constant(bias))(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden), name=name)


@pytest.fixture(scope="module")
def dead_report() -> gradaudit.Report:
    return gradaudit.audit(DEAD)


def test_import_is_cheap_and_audit_is_the_function() -> None:
    fresh = run_fresh(
        "import gradaudit.pipeline, gradaudit, gradaudit.testing, gradaudit.formats.plot\n"
        "print(callable(gradaudit.audit), gradaudit.Report.__name__)\n",
        watch=("tensorflow", "keras", "matplotlib"))
    assert fresh.stdout.split("\n")[0] == "True Report", fresh.stdout + fresh.stderr
    assert fresh.imported == [], fresh.stdout + fresh.stderr


def test_report_of_a_file_is_what_the_cli_prints(dead_report: gradaudit.Report) -> None:
    as_json = run_cli("audit", DEAD, "--format", "json")
    as_table = run_cli("audit", DEAD)
    assert as_json.exit_code == as_table.exit_code == 1
    assert json.loads(dead_report.to_json()) == json.loads(as_json.stdout)
    assert dead_report.to_table() == as_table.stdout


def test_report_fields(dead_report: gradaudit.Report) -> None:
    assert _codes(dead_report) == DEAD_FINDINGS
    assert [row.name for row in dead_report.layers] == ["pre", "dead", "out"]
    assert dead_report.layers[1].dead_fraction == 1.0
    assert dead_report.summary["findings"] == {"error": 4, "warning": 0, "info": 0}
    assert dead_report.summary["samples"] == 256 and dead_report.summary["seed"] == 0
    assert not dead_report.ok() and not dead_report.ok("warning") and not dead_report.ok("ERROR")
    assert dead_report.ok("never")
    with pytest.raises(ValueError):
        dead_report.ok("fatal")


def test_select_and_ignore_take_codes_and_prefixes() -> None:
    assert _codes(gradaudit.audit(DEAD, select="GA1", samples=64)) == [("GA102", "dead")]
    assert _codes(gradaudit.audit(DEAD, ignore=["ga202"], samples=64)) == [("GA102", "dead")]
    selected = gradaudit.audit(DEAD, select=["GA2"], ignore="GA202", samples=64)
    assert selected.findings == () and selected.ok()
    with pytest.raises(ValueError, match="GA9"):
        gradaudit.audit(DEAD, select="GA9")


def test_in_memory_models() -> None:
    healthy = gradaudit.audit(_mlp("healthy"), samples=64)
    assert healthy.findings == () and healthy.ok("info")
    assert (healthy.path, healthy.format) == ("<healthy>", "in-memory")
    assert healthy.summary["inputs_source"] == {"kind": "random", "seed": 0,
                                                "distribution": "normal"}
    dead = gradaudit.audit(_mlp("dead", bias=-100.0), samples=64)
    assert _codes(dead) == [("GA102", "hidden"), ("GA202", "hidden"), ("GA202", "out")]
    with pytest.raises(TypeError, match=r"keras\.Model"):
        gradaudit.audit(object())


def test_inputs_find_units_dead_only_on_your_data(tmp_path: Path) -> None:
    # All-positive kernel, bias -1: random normal inputs fire every unit, inputs
    # of zeros (a sensor that is off) fire none.
    model = _mlp("data_dead", bias=-1.0, kernel="ones")
    assert gradaudit.audit(model, samples=64).findings == ()
    zeros = np.zeros((40, 8), np.float32)
    expected = [("GA102", "hidden"), ("GA202", "hidden"), ("GA202", "out")]
    np.savez(tmp_path / "zeros.npz", features=zeros)
    by_file = gradaudit.audit(model, tmp_path / "zeros.npz")
    by_array = gradaudit.audit(model, zeros)
    by_name = gradaudit.audit(model, {"features": zeros}, samples=16)
    by_list = gradaudit.audit(model, [zeros])
    for report in (by_file, by_array, by_name, by_list):
        assert _codes(report) == expected
    assert by_file.summary["inputs_source"]["kind"] == "file"
    assert by_array.summary["inputs_source"] == {"kind": "arrays", "rows": 40}
    assert by_name.summary["inputs_source"] == {"kind": "arrays", "rows": 16}
    assert "inputs from: arrays (40 rows)" in by_array.to_table()


def test_bad_inputs_are_audit_errors_naming_the_problem() -> None:
    model = _mlp("shapes")
    with pytest.raises(AuditError, match=r"input 'features' expects shape \(None, 8\) "
                                         r"float32, found \(4, 3\) float32"):
        gradaudit.audit(model, np.zeros((4, 3), np.float32))
    with pytest.raises(AuditError, match="inputs: arrays have different numbers of rows"):
        gradaudit.audit(model, {"a": np.zeros((4, 8)), "b": np.zeros((5, 8))})
    with pytest.raises(AuditError, match="no such file or directory"):
        gradaudit.audit(str(FIXTURES / "missing.keras"))


def test_assert_no_findings_passes_a_healthy_model_and_returns_its_report() -> None:
    report = assert_no_findings(str(FIXTURES / "healthy_mlp.keras"), fail_on="info")
    assert report.findings == ()
    # partly_dead has one warning (GA101): it passes an error gate only.
    assert _codes(assert_no_findings(str(FIXTURES / "partly_dead.keras"))) == [
        ("GA101", "partial")]


def test_assert_no_findings_fails_with_the_findings_table() -> None:
    with pytest.raises(AssertionError) as failure:
        assert_no_findings(str(FIXTURES / "partly_dead.keras"), fail_on="warning", samples=64)
    lines = str(failure.value).splitlines()
    path = FIXTURES / "partly_dead.keras"
    assert lines[0] == f"gradaudit: 1 finding(s) at or above warning in {path}:"
    assert lines[1].split() == ["severity", "code", "layer", "message"]
    assert lines[3].split()[:3] == ["warning", "GA101", "partial"]
    assert lines[-1].startswith("(`gradaudit explain CODE`")
    with pytest.raises(AssertionError, match=r"4 finding\(s\) at or above error"):
        assert_no_findings(DEAD, samples=64)

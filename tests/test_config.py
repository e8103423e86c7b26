"""[tool.gradaudit] in the nearest pyproject.toml, --config FILE, and flags that win."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradaudit.errors import AuditError
from gradaudit.options import Limits, Options
from gradaudit.report.types import FailOn
from gradaudit.settings import ConfigFile, find_pyproject, read_config, resolve
from tests.conftest import FIXTURES, run_cli

PARTLY_DEAD = str(FIXTURES / "partly_dead.keras")  # GA101 warning: 70% of "partial" dead
DEAD = str(FIXTURES / "dead_relu.keras")


def _pyproject(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pyproject.toml"
    path.write_text(body)
    return path


def test_the_nearest_pyproject_with_a_gradaudit_table_is_used(tmp_path: Path) -> None:
    outer = _pyproject(tmp_path, "[tool.gradaudit]\nseed = 3\n")
    _pyproject(tmp_path / "pkg", "[project]\nname = 'pkg'\n")  # no table: skipped
    inner_dir = tmp_path / "pkg" / "src"
    inner_dir.mkdir()
    assert find_pyproject(inner_dir) == outer
    inner = _pyproject(inner_dir, "[tool.gradaudit]\nseed = 4\n")
    assert find_pyproject(inner_dir) == inner
    config = read_config(None, inner_dir)
    assert config is not None and config.values == {"seed": 4}


def test_settings_merge_defaults_config_and_flags() -> None:
    config = ConfigFile({"dead_warn": 0.8, "saturation-eps": 0.01, "samples": 32,
                         "fail_on": "warning", "select": ["ga1"], "exclude": ["old/*"]},
                        "pyproject.toml [tool.gradaudit]")
    chosen = resolve(config, {"samples": 8, "unsafe": True, "max_params": 10})
    assert chosen.samples == 8  # the flag wins
    assert (chosen.thresholds.dead_warn, chosen.thresholds.saturation_eps) == (0.8, 0.01)
    assert chosen.unsafe and chosen.batch_size == Options.batch_size
    assert chosen.limits == Limits(max_params=10)
    assert chosen.fail_on is FailOn.WARNING
    assert chosen.select == ("GA1",) and chosen.exclude == ("old/*",)


def test_an_input_range_alone_means_uniform_inputs() -> None:
    chosen = resolve(ConfigFile({"input_range": [0, 255]}, "x"), {})
    assert (chosen.input_dist, chosen.input_range) == ("uniform", (0.0, 255.0))
    with pytest.raises(AuditError, match="cannot be combined with input_dist normal"):
        resolve(ConfigFile({"input_range": [0, 255]}, "x"), {"input_dist": "normal"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dead_wran": 0.5}, "x: unknown key 'dead_wran'"),
        ({"unsafe": True}, "x: unknown key 'unsafe'"),  # only a flag switches it on
        ({"samples": 0}, "x: key 'samples': bad value 0: expected an integer ≥ 1"),
        ({"samples": "many"}, "x: key 'samples': bad value 'many'"),
        ({"dead_warn": 1.5}, "x: key 'dead_warn': bad value 1.5: expected a fraction in (0, 1]"),
        ({"fail_on": "fatal"}, "x: key 'fail_on': bad value 'fatal': expected one of error"),
        ({"select": ["GA9"]}, "x: key 'select': bad value ['GA9']: 'GA9' is not a finding code"),
        ({"input_range": [1, 0]}, "x: key 'input_range': bad value [1, 0]: expected LOW < HIGH"),
        ({"input-dist": "cauchy"}, "x: key 'input-dist': bad value 'cauchy'"),
        ({"import": [1]}, "x: key 'import': bad value [1]: expected a list of module names"),
        ({"import": ["my layers"]}, "x: key 'import': bad value ['my layers']: 'my layers' is "
                                    "neither a module name (a.b) nor a .py file"),
    ],
)
def test_unknown_keys_and_bad_values_name_the_key(values: dict, message: str) -> None:
    with pytest.raises(AuditError) as caught:
        resolve(ConfigFile(values, "x"), {})
    assert str(caught.value).startswith(message)


def test_import_paths_in_a_config_file_start_at_its_directory(tmp_path: Path) -> None:
    """A pyproject.toml found above the current directory still names its own files."""
    _pyproject(tmp_path, "[tool.gradaudit]\nimport = ['code/mylayers.py', 'pkg.layers', "
               f"'{tmp_path}/abs.py']\n")
    config = read_config(None, tmp_path / "models")
    assert resolve(config, {}).imports == (
        str(tmp_path / "code" / "mylayers.py"), "pkg.layers", str(tmp_path / "abs.py"))
    assert resolve(config, {"imports": ["other.py"]}).imports == ("other.py",)  # the flag wins
    with pytest.raises(AuditError, match=r"^--import: bad value"):
        resolve(None, {"imports": ["-x"]})


def test_config_file_applies_and_command_line_flags_win(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    _pyproject(tmp_path, "[tool.gradaudit]\nfail_on = 'warning'\ndead_warn = 0.9\n")
    monkeypatch.chdir(tmp_path)
    # dead_warn 0.9 from the file: 70% dead is no longer a warning → exit 0.
    assert run_cli("audit", PARTLY_DEAD, "--samples", "32", "-q").exit_code == 0
    _pyproject(tmp_path, "[tool.gradaudit]\nfail_on = 'warning'\n")
    assert run_cli("audit", PARTLY_DEAD, "--samples", "32", "-q").exit_code == 1
    # The flag wins over the file's fail_on.
    assert run_cli("audit", PARTLY_DEAD, "--samples", "32", "-q",
                   "--fail-on", "error").exit_code == 0


def test_explicit_config_file_and_its_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    monkeypatch.chdir(tmp_path)
    standalone = tmp_path / "audit.toml"
    standalone.write_text("samples = 16\nignore = 'GA2'\n")
    result = run_cli("audit", DEAD, "--config", str(standalone), "-f", "json", "-q")
    model = json.loads(result.stdout)["models"][0]
    assert {f["code"] for f in model["findings"]} == {"GA102"}
    assert model["summary"]["samples"] <= 16

    standalone.write_text("[tool.gradaudit]\nsamples = 16\n")
    result = run_cli("audit", DEAD, "--config", str(standalone))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [f"gradaudit: error: {standalone}: unknown key 'tool'"]

    bare = _pyproject(tmp_path / "p", "[project]\nname = 'x'\n")
    result = run_cli("audit", DEAD, "--config", str(bare))
    assert result.stderr.splitlines() == [
        f"gradaudit: error: --config {bare}: has no [tool.gradaudit] table"]

    broken = tmp_path / "broken.toml"
    broken.write_text("samples = \n")
    result = run_cli("audit", DEAD, "--config", str(broken))
    assert result.exit_code == 2 and result.stderr.startswith(
        f"gradaudit: error: {broken}: not a valid TOML file")


def test_a_bad_key_in_pyproject_is_exit_2_naming_it(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = _pyproject(tmp_path, "[tool.gradaudit]\nbatch_size = -1\n")
    monkeypatch.chdir(tmp_path)
    result = run_cli("audit", DEAD)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"gradaudit: error: {path} [tool.gradaudit]: key 'batch_size': bad value -1: "
        "expected an integer ≥ 1"]

"""action.yml runs the commands the docs show (docs/ci.md), and the CLI accepts them.

The action's shell steps are run by bash itself with ``gradaudit`` and ``pip``
replaced by functions that print their arguments, so the comparison is with the
argument vectors bash would pass, after the inputs went through the environment.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import FIXTURES, ROOT, run_cli
from tests.test_formats import _snippet, _validate_sarif

ACTION: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
STEPS: list[dict[str, Any]] = ACTION["runs"]["steps"]
INPUT = re.compile(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}")
PRINTING = ("gradaudit() { printf '%s\\0' gradaudit \"$@\"; printf '\\036'; }\n"
            "pip() { printf '%s\\0' pip \"$@\"; printf '\\036'; }\n")


def _steps(marker: str) -> list[dict[str, Any]]:
    """The steps of the one job of docs/ci.md's workflow after ``<!-- marker -->``."""
    (job,) = yaml.safe_load(_snippet(marker))["jobs"].values()
    return list(job["steps"])


def _inputs(given: dict[str, Any]) -> dict[str, str]:
    """The action's inputs: its defaults, then ``given`` as GitHub passes them (strings)."""
    values = {name: str(spec["default"]) for name, spec in ACTION["inputs"].items()}
    assert set(given) <= set(values), f"{set(given) - set(values)} are not inputs of the action"
    values.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in given.items()})
    return values


def _commands(inputs: dict[str, str], cwd: Path) -> list[list[str]]:
    """The argument vectors the action's shell steps run, in order."""
    commands: list[list[str]] = []
    for step in STEPS:
        if "run" not in step:
            continue
        assert step["shell"] == "bash" and not INPUT.search(step["run"]) and "${{" not in \
            step["run"], "inputs reach the script through env, never pasted into it"
        env = {name: INPUT.sub(lambda m: inputs[m.group(1)], str(value))
               for name, value in step.get("env", {}).items()}
        assert "${{" not in "".join(env.values())
        out = subprocess.run(["bash", "-e", "-c", PRINTING + step["run"]], cwd=cwd,
                             capture_output=True, text=True, check=True, timeout=30,
                             env={"PATH": "/usr/bin:/bin", "GITHUB_ACTION_PATH": str(ROOT),
                                  **env}).stdout
        commands += [record.split("\0")[:-1] for record in out.split("\036")[:-1]]
    return commands


def _uses(steps: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(step["uses"], step.get("with", {})) for step in steps
            if "uses" in step and not step["uses"].startswith("actions/checkout@")]


def test_the_action_runs_the_commands_the_docs_show(tmp_path: Path) -> None:
    (example,) = [s for s in _steps("github-actions-action") if "/gradaudit@" in s["uses"]]
    commands = _commands(_inputs(example.get("with", {})), tmp_path)
    # The action installs the package from its own checkout, the docs by its name.
    installed = [["gradaudit" if word == str(ROOT) else word for word in command]
                 for command in commands]
    shown = [shlex.split(step["run"]) for step in _steps("github-actions-sarif") if "run" in step]
    assert installed == shown
    assert commands[0] == ["pip", "install", str(ROOT)]
    assert _uses(STEPS) == _uses(_steps("github-actions-sarif"))


def test_the_upload_follows_the_sarif_input_and_the_audit_s_output(tmp_path: Path) -> None:
    (upload,) = [s for s in STEPS if s.get("uses", "").startswith(
        "github/codeql-action/upload-sarif@")]
    assert "always()" in upload["if"] and "inputs.sarif == 'true'" in upload["if"]
    (audit,) = [c for c in _commands(_inputs({}), tmp_path) if c[0] == "gradaudit"]
    assert audit[audit.index("--output") + 1] == upload["with"]["sarif_file"]
    assert f"hashFiles('{upload['with']['sarif_file']}')" in upload["if"]
    assert audit[1:2] == ["audit"] and audit[2] == ACTION["inputs"]["paths"]["default"]


def test_the_cli_accepts_the_action_s_command_with_args(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """args keeps a glob for gradaudit: with a file it would match in the working
    directory, bash without ``set -f`` would pass that file's name instead."""
    (tmp_path / "models").mkdir()
    for name in ("dead_relu.keras", "healthy_mlp.keras"):
        shutil.copy(FIXTURES / name, tmp_path / "models" / name)
    (tmp_path / "healthy_stray").write_text("not a model\n")
    inputs = _inputs({"paths": "models/", "args": "--exclude healthy_* --select GA1",
                      "fail-on": "error"})
    (audit,) = [c for c in _commands(inputs, tmp_path) if c[0] == "gradaudit"]
    assert "healthy_*" in audit
    monkeypatch.chdir(tmp_path)
    result = run_cli(*audit[1:])
    assert result.exit_code == 1, result.stderr  # dead_relu's GA1 errors, at --fail-on error
    document = _validate_sarif((tmp_path / "gradaudit.sarif").read_text(encoding="utf-8"))
    results = document["runs"][0]["results"]
    assert results and {r["ruleId"][:3] for r in results} == {"GA1"}
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in results} == {"models/dead_relu.keras"}
    assert "healthy_mlp" not in json.dumps(document)

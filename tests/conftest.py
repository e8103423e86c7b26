"""Shared test helpers: the committed fixture models and one audit of them all, and
models of the user's own registered layer (``--import``)."""

from __future__ import annotations

import os

# The suite runs without oneDNN, which the CLI's workers (spawned, inheriting the
# environment) and the in-process tests then share: the golden reports and measured
# figures do not depend on which kernels a machine picks, and no test needs the
# crash-retry path except tests/test_worker.py, which sets its own environment.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gradaudit.cli import app

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
LOADABLE = sorted(
    p for p in [*FIXTURES.glob("*.keras"), *FIXTURES.glob("*.h5")]
    if not p.name.startswith("lambda_payload")
)
GOLDEN = ROOT / "tests" / "golden"
# Every committed fixture, the refused ones included, as paths relative to ROOT.
GOLDEN_PATHS = sorted(
    str(p.relative_to(ROOT))
    for p in [*FIXTURES.glob("*.keras"), *FIXTURES.glob("*.h5"), *FIXTURES.glob("savedmodels/*")]
)


def run_cli(*args: str) -> Any:
    """Invoke the real CLI in-process; stdout and stderr are kept apart."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


PEAK_RSS = """
def peak_rss() -> int:
    # This process's peak resident bytes since its exec (VmHWM). Not ru_maxrss: Linux
    # carries the parent's RSS at fork into it, so under pytest a child would report at
    # least pytest's own ~1 GB whatever it did.
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
"""
"""Source of ``peak_rss()``, for scripts that measure memory in a child process."""


@dataclass(frozen=True)
class FreshRun:
    """What a fresh interpreter printed, and which of the watched modules it had imported."""

    stdout: str
    stderr: str
    imported: list[str]


def run_fresh(code: str, watch: tuple[str, ...] = ("tensorflow", "keras")) -> FreshRun:
    """Run ``code`` in a new Python process, then list which of ``watch`` it imported.

    Only a new process shows whether a command pulls in TensorFlow: this one has
    long imported it. ``code`` may end in SystemExit (the CLI does).
    """
    script = (f"import sys\ntry:\n    exec({code!r})\nexcept SystemExit as exc:\n"
              f"    print('EXIT', exc.code)\n"
              f"print('IMPORTED:', [m for m in {watch!r} if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    marker = [line for line in proc.stdout.splitlines() if line.startswith("IMPORTED: ")]
    assert marker, proc.stdout + proc.stderr
    return FreshRun(stdout=proc.stdout, stderr=proc.stderr,
                    imported=ast.literal_eval(marker[-1].removeprefix("IMPORTED: ")))


def run_cli_fresh(*args: str) -> FreshRun:
    """The real CLI in a new process (prints ``EXIT <code>``), for :func:`run_fresh`'s list."""
    return run_fresh(f"from gradaudit.cli import app\napp({list(args)!r}, prog_name='gradaudit')")


@dataclass(frozen=True)
class GoldenRun:
    """One audit of every fixture: the table on stdout and the same run as JSON."""

    table: str
    json_text: str


def audit_every_fixture(report: Path) -> GoldenRun:
    """Every fixture audited in one run, from the repository root.

    ``--write-baseline`` writes the run's JSON report while stdout gets the
    table, so one audit gives both.
    """
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        result = run_cli("audit", *GOLDEN_PATHS, "--write-baseline", str(report), "-q")
    finally:
        os.chdir(cwd)
    assert result.exit_code == 2, result.stderr  # the Lambda and WriteFile fixtures are refused
    return GoldenRun(table=result.stdout, json_text=report.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def golden_run(tmp_path_factory: pytest.TempPathFactory) -> GoldenRun:
    """Every fixture audited once, shared by the golden and ground-truth tests."""
    return audit_every_fixture(tmp_path_factory.mktemp("golden") / "audit.json")


@pytest.fixture(scope="session")
def audited(golden_run: GoldenRun) -> dict[str, dict[str, Any]]:
    """Every loadable .keras/.h5 fixture's JSON report, keyed by file name."""
    document = json.loads(golden_run.json_text)
    loadable = {p.name for p in LOADABLE}
    return {Path(m["path"]).name: m for m in document["models"] if Path(m["path"]).name in loadable}


@dataclass(frozen=True)
class UserModels:
    """Models of tests/data/user_layers.py's registered ``Block``, copied as ``mylayers.py``."""

    module: Path  # code/mylayers.py, imported in this process
    dead: Path  # models/user_dead.keras: 12 of the block's 16 units dead (GA101)
    healthy: Path  # models/user_healthy.keras: its twin, every unit alive


@pytest.fixture(scope="session")
def user_models(tmp_path_factory: pytest.TempPathFactory) -> UserModels:
    from gradaudit.runtime import import_tensorflow
    from tests.corpus.make_corpus import user_module

    import_tensorflow()
    root = tmp_path_factory.mktemp("user")
    module = user_module(root / "code", "mylayers")
    (root / "models").mkdir()
    models = UserModels(root / "code" / "mylayers.py", root / "models" / "user_dead.keras",
                        root / "models" / "user_healthy.keras")
    module.model(dead=12).save(models.dead)
    module.model(dead=0).save(models.healthy)
    return models


def findings_at_least(model: dict[str, Any], severity: str) -> set[tuple[str, str, str]]:
    order = {"info": 1, "warning": 2, "error": 3}
    return {
        (f["code"], f["severity"], f["layer"])
        for f in model["findings"]
        if order[f["severity"]] >= order[severity]
    }

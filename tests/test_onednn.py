"""The report does not depend on the math library: oneDNN on (the CLI's default, what
users run) and off (``TF_ENABLE_ONEDNN_OPTS=0``, what the rest of the suite runs).

A softmax over one unit is exactly 1 with oneDNN and 1 - 2⁻²⁴ with Eigen, so the
gradients before it are exact zeros with one and rounding noise (1e-10 to 1e-8) with
the other; both are zero in exact arithmetic and reported as such (GA202, caused by
GA206). Each setting runs the real CLI in its own process, the variable set before
TensorFlow is imported (it is read once, at import). The twin stays clean, and under
a loss Keras differentiates the head through its logits: a real gradient, no GA202.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import FIXTURES, ROOT

PATHS = ["one_unit_softmax.keras", "two_unit_softmax.keras", "trained/softmax_one_unit.keras"]
EXPECTED = {
    "one_unit_softmax.keras": {
        ("GA206", "error", "probs"),
        ("GA202", "error", "hidden1"),
        ("GA202", "error", "hidden2"),
        ("GA202", "error", "probs"),
    },
    "two_unit_softmax.keras": set(),
    "softmax_one_unit.keras": {("GA206", "error", "out"), ("GA411", "error", "out")},
}


def _audit(onednn: str) -> dict[str, Any]:
    """The JSON report of PATHS from a fresh ``gradaudit`` process with oneDNN ``onednn``."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "gradaudit", "audit", *(str(FIXTURES / p) for p in PATHS),
         "-f", "json", "-q", "--fail-on", "never"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def _findings(document: dict[str, Any]) -> dict[str, set[tuple[str, str, str]]]:
    return {os.path.basename(m["path"]): {(f["code"], f["severity"], f["layer"])
                                          for f in m["findings"]}
            for m in document["models"]}


@pytest.fixture(scope="module")
def reports() -> dict[str, dict[str, Any]]:
    return {onednn: _audit(onednn) for onednn in ("0", "1")}


def test_findings_are_the_same_with_onednn_on_and_off(
        reports: dict[str, dict[str, Any]]) -> None:
    assert _findings(reports["1"]) == _findings(reports["0"]) == EXPECTED


def test_gradients_behind_a_one_unit_softmax_are_zero_either_way(
        reports: dict[str, dict[str, Any]]) -> None:
    """The layer figures agree too: every gradient RMS is 0, and each GA202 is explained
    by the constant output of 'probs'."""
    for document in reports.values():
        (model, *_) = document["models"]
        assert [layer["grad_rms"] for layer in model["layers"]] == [0.0, 0.0, 0.0]
        assert {f["caused_by"] for f in model["findings"] if f["code"] == "GA202"} == {"probs"}

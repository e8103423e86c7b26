"""The CLI's worker process (issue 21): a native crash or a hang ends one file's audit,
never the batch; Ctrl-C ends the run with one line and no report file.

Real ``gradaudit`` subprocesses on models of ``tests/data/crashing_layers.py``, whose
layers kill their own process with SIGSEGV, do so only with oneDNN on, or sleep. The
layers log each call's process id and ``TF_ENABLE_ONEDNN_OPTS``: that log is how a
test sees a retry (a second process, with oneDNN off) and finds the worker's pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, ROOT

LAYERS = ROOT / "tests" / "data" / "crashing_layers.py"
GOOD = [str(FIXTURES / "healthy_mlp.keras"), str(FIXTURES / "healthy_mlp.h5")]
RETRIED = "retried with oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)"


@pytest.fixture(scope="module")
def odd_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One model per layer of crashing_layers.py, saved by Keras (the layers never run)."""
    from gradaudit.load.imports import import_modules

    import_modules([str(LAYERS)])  # as the CLI imports it: module crashing_layers
    import crashing_layers  # type: ignore[import-not-found]

    folder = tmp_path_factory.mktemp("odd_models")
    paths = {}
    for layer in (crashing_layers.Segfault, crashing_layers.OneDnnSegfault,
                  crashing_layers.Sleep):
        path = folder / f"{layer.__name__}.keras"
        crashing_layers.model(layer).save(path)
        paths[layer.__name__] = str(path)
    return paths


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """``gradaudit audit ARGS --import crashing_layers.py`` with TensorFlow's defaults
    (no TF_ENABLE_ONEDNN_OPTS, which the test session sets), the layers logging."""
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    env["CRASHING_LAYERS_LOG"] = str(tmp_path / "calls.log")
    return subprocess.Popen(
        [sys.executable, "-m", "gradaudit", "audit", *args, "--import", str(LAYERS),
         "--samples", "64", "-f", "json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = _start(tmp_path, *args)
    stdout, stderr = proc.communicate(timeout=600)
    return proc.returncode, json.loads(stdout), stderr


def _calls(tmp_path: Path) -> list[tuple[int, str]]:
    """(pid, TF_ENABLE_ONEDNN_OPTS) of every call of a logging layer, in order."""
    log = tmp_path / "calls.log"
    lines = log.read_text().split("\n")[:-1] if log.exists() else []
    return [(int(pid), onednn) for pid, onednn in (line.split() for line in lines)]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_crashing_model_is_retried_once_then_reported_and_the_batch_goes_on(
        tmp_path: Path, odd_models: dict[str, str]) -> None:
    crash, saved = odd_models["Segfault"], odd_models["OneDnnSegfault"]
    code, report, stderr = _run(tmp_path, GOOD[0], crash, saved, GOOD[1])
    assert code == 2, stderr
    error = f"the audit crashed: killed by signal SIGSEGV (Segmentation fault); {RETRIED}"
    assert report["errors"] == [{"path": crash, "error": error}]
    assert f"gradaudit: error: {crash}: {error}" in stderr.splitlines()
    models = {model["path"]: model for model in report["models"]}
    assert list(models) == [GOOD[0], saved, GOOD[1]]  # before and after the crashes
    # The model that crashes only with oneDNN on is audited by the retry, which says so.
    assert models[saved]["notes"][-1] == (
        f"the first audit crashed: killed by signal SIGSEGV (Segmentation fault); {RETRIED}")
    assert not any("crashed" in note for path in GOOD for note in models[path]["notes"])
    # The retry: each odd model ran in a first worker with TensorFlow's defaults (no
    # TF_ENABLE_ONEDNN_OPTS), then once in another process with oneDNN off; the
    # surviving retry calls its layer once per probe batch.
    calls = _calls(tmp_path)
    assert calls[:3] == [(calls[0][0], "None"), (calls[1][0], "0"), (calls[2][0], "None")]
    assert {onednn for _, onednn in calls[3:]} == {"0"}
    assert len({pid for pid, _ in calls}) == 4 and len({pid for pid, _ in calls[3:]}) == 1


def test_a_hung_model_is_stopped_at_the_timeout_and_the_batch_goes_on(
        tmp_path: Path, odd_models: dict[str, str]) -> None:
    hung = odd_models["Sleep"]
    start = time.monotonic()
    code, report, stderr = _run(tmp_path, hung, GOOD[0], "--timeout", "20")
    assert code == 2, stderr
    assert report["errors"] == [
        {"path": hung, "error": "the audit took longer than --timeout 20 s and was stopped"}]
    assert [model["path"] for model in report["models"]] == [GOOD[0]]
    ((pid, _),) = _calls(tmp_path)  # no retry: a hang is not a crash
    assert _gone(pid)
    assert time.monotonic() - start < 300  # not the layer's ten minutes


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_bad_timeout_is_one_line_and_exit_2(tmp_path: Path, value: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "gradaudit", "audit", GOOD[0], "--timeout",
                           value], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "--timeout" in line and "Traceback" not in proc.stderr


def test_ctrl_c_says_interrupted_exits_130_and_writes_no_report(
        tmp_path: Path, odd_models: dict[str, str]) -> None:
    out = tmp_path / "report.json"
    proc = _start(tmp_path, odd_models["Sleep"], "-o", str(out))
    deadline = time.monotonic() + 300
    while not _calls(tmp_path) and time.monotonic() < deadline:  # the worker is probing
        time.sleep(0.2)
    ((pid, _),) = _calls(tmp_path)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr == "gradaudit: interrupted\n" and stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.log"]  # no report, no temp
    assert _gone(pid)


RECORDER = '''import atexit, os, sys
LOG = os.environ["WORKER_LOG"]
with open(LOG, "a") as log:
    print("imported", [m for m in ("typer", "click", "gradaudit.cli") if m in sys.modules],
          file=log)
    print("gradaudit from", os.path.dirname(sys.modules["gradaudit"].__file__), file=log)
atexit.register(lambda: open(LOG, "a").write("teardown\\n"))
'''


def test_the_worker_is_a_lean_interpreter_that_ends_without_teardown(tmp_path: Path) -> None:
    """Run as users run it (the console script, whose ``__main__`` is the CLI), from a
    directory holding another ``gradaudit`` package: the worker imports neither the CLI
    nor typer (multiprocessing's spawn imported ``__main__`` again), takes gradaudit from
    the command's ``sys.path``, not from that directory, and, told to stop, ends without
    the interpreter's teardown (0.5 s once TensorFlow is in): no atexit handler runs."""
    (tmp_path / "gradaudit").mkdir()
    (tmp_path / "gradaudit" / "__init__.py").write_text("raise SystemExit('the decoy')\n")
    (tmp_path / "recorder.py").write_text(RECORDER)
    (tmp_path / "bad.h5").write_text("not a model")  # refused before TensorFlow's import
    script = Path(sys.executable).with_name("gradaudit")
    log = tmp_path / "worker.log"
    proc = subprocess.run(
        [str(script), "audit", "bad.h5", "--import", "recorder.py", "-q"],
        cwd=tmp_path, env={**os.environ, "WORKER_LOG": str(log)},
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == ("gradaudit: error: bad.h5: not a Keras model file: neither a "
                           ".keras zip archive nor an HDF5 (.h5) file\n")
    # Imported once, by the worker (the main process imported the CLI), no "teardown".
    assert log.read_text().splitlines() == ["imported []", f"gradaudit from {ROOT / 'gradaudit'}"]

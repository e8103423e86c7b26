"""Models probed in a worker process the CLI supervises: a native crash ends one file's
audit, never the batch.

TensorFlow's native kernels can kill the process that runs them: with TensorFlow
2.21's oneDNN kernels a plain load + GradientTape script is killed by SIGSEGV on the
fer package's emotion model (THRESHOLDS.md). Switching oneDNN off everywhere would
make every convolution up to 2× slower, so the CLI runs TensorFlow's defaults in a
worker instead: the worker (a fresh interpreter started as ``python -c``: forking a
process that holds TensorFlow is unsafe, and multiprocessing's ``spawn`` would import
the command's ``__main__`` again and start a resource tracker process first) imports
the ``--import`` modules and TensorFlow once (the latter once a model passes the file
checks) and audits path after path; the main process never imports TensorFlow. A
worker killed by a signal costs its file one retry in a fresh worker with oneDNN off
(``TF_ENABLE_ONEDNN_OPTS=0``); a second crash is reported as that file's error; a file
that takes longer than ``--timeout`` is stopped and reported. The next file gets a
fresh worker with the user's settings again, so no report depends on its neighbours.

A single file goes through the worker too: it must survive a crash as well. The worker
costs a command a process start and gradaudit's modules imported again (TensorFlow is
imported once either way); told to stop, it ends with ``os._exit``: the interpreter's
teardown of a process that holds TensorFlow takes 0.5–0.9 s, for nothing
(benchmarks/README.md). ``--no-probe``, the Python API and the Keras callback run no
worker: the first imports no TensorFlow, the others audit the caller's model in the
caller's process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING

from gradaudit.errors import AuditError
from gradaudit.options import Options
from gradaudit.report.types import AuditRun, LoadError, ModelReport

if TYPE_CHECKING:
    from gradaudit.probe.supplied import SuppliedInputs

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
"""The variable TensorFlow reads at import for its oneDNN kernels; a retry sets it to 0."""
RETRIED = "retried with oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)"
_CHILD = "import sys; sys.path[:] = {path!r}; from gradaudit.worker import serve; serve({fd})"
"""The worker's program (``python -c``): this process's ``sys.path``, set before gradaudit
is imported (the current directory may hold another copy), and its end of the pipe."""
_STOP_GRACE = 10.0
"""Seconds a worker told to stop may take to exit before it is killed."""

Outcome = ModelReport | LoadError
Audit = Callable[..., ModelReport]
"""``audit_path``'s signature: (path, options, supplied, *, on_step) → report."""


@dataclass(frozen=True)
class _Setup:
    """What every worker of one run is started with."""

    options: Options
    supplied: SuppliedInputs | None
    verbose: bool
    audit: Audit | None = None
    """What audits a path in the worker (a module-level function, sent by reference);
    None: :func:`gradaudit.pipeline.audit_path`."""


@dataclass(frozen=True)
class _Died:
    """A worker that ended while auditing a file, and how (for the report)."""

    how: str


def audit_paths(
    paths: Sequence[str], options: Options, supplied: SuppliedInputs | None = None,
    progress: Callable[[str, str], None] | None = None, *, verbose: bool = False,
    audit: Audit | None = None,
) -> AuditRun:
    """:func:`gradaudit.pipeline.audit_paths` with every probe in a supervised worker.

    AuditError for an ``--import`` module the worker cannot import (a usage error:
    nothing is audited). ``verbose`` lets TensorFlow's log lines through in the worker;
    ``audit`` replaces ``audit_path`` there (a timeline keeps one model built).
    """
    reports, errors = [], []
    with _Supervisor(_Setup(options, supplied, verbose, audit), progress) as supervisor:
        for path in paths:
            outcome = supervisor.audit(path)
            if isinstance(outcome, ModelReport):
                reports.append(outcome)
            else:
                errors.append(outcome)
    return AuditRun(models=tuple(reports), errors=tuple(errors))


class _Supervisor:
    """One worker at a time: started on demand, replaced after a crash or a timeout."""

    def __init__(self, setup: _Setup, progress: Callable[[str, str], None] | None) -> None:
        self._setup = setup
        self._progress = progress
        self._worker: _Worker | None = None

    def __enter__(self) -> _Supervisor:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        self._stop(graceful=kind is None)  # Ctrl-C or an error: no waiting

    def audit(self, path: str) -> Outcome:
        """One file's report or error; a crash is retried once with oneDNN off."""
        first = self._run(path, onednn_off=False)
        if not isinstance(first, _Died):
            return first
        retry = self._run(path, onednn_off=True)
        self._stop(graceful=True)  # the next file runs with the user's settings again
        if isinstance(retry, ModelReport):
            return replace(retry, notes=(*retry.notes,
                                         f"the first audit crashed: {first.how}; {RETRIED}"))
        if isinstance(retry, _Died):
            return LoadError(path, f"the audit crashed: {retry.how}; {RETRIED}")
        return replace(retry, error=f"{retry.error} (the first audit crashed: {first.how}; "
                                    f"{RETRIED})")

    def _run(self, path: str, onednn_off: bool) -> Outcome | _Died:
        """Audit ``path`` in a worker of that kind, within ``--timeout``."""
        worker = self._ready_worker(onednn_off)
        timeout = self._setup.options.timeout
        worker.connection.send(path)
        deadline = time.monotonic() + timeout
        while True:
            # A worker that ends closes its end of the pipe: the connection says so.
            ready = wait([worker.connection], max(deadline - time.monotonic(), 0.0))
            if not ready:
                self._stop(graceful=False)
                return LoadError(path, f"the audit took longer than --timeout {timeout:g} s "
                                       "and was stopped")
            try:
                message = worker.connection.recv() if worker.connection in ready else None
            except EOFError:
                message = None
            if message is None:  # the worker ended without an answer
                self._stop(graceful=False)  # reaps it
                return _Died(_describe(worker.process.returncode))
            kind, value = message
            if kind == "ready":  # the worker's start-up does not count against the file
                deadline = time.monotonic() + timeout
            elif kind == "usage":
                self._stop(graceful=True)
                raise AuditError(value)
            elif kind == "step":
                if self._progress is not None:
                    self._progress(path, value)
            else:
                outcome: Outcome = value
                return outcome

    def _ready_worker(self, onednn_off: bool) -> _Worker:
        if self._worker is not None and self._worker.onednn_off != onednn_off:
            self._stop(graceful=True)
        if self._worker is None:
            self._worker = _Worker.start(self._setup, onednn_off)
        return self._worker

    def _stop(self, graceful: bool) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop(graceful)


@dataclass(frozen=True)
class _Worker:
    process: subprocess.Popen[bytes]
    connection: Connection
    onednn_off: bool

    @staticmethod
    def start(setup: _Setup, onednn_off: bool) -> _Worker:
        """A fresh interpreter that imports only the worker's modules (not ``__main__``),
        this process's interpreter flags and ``sys.path`` and, for a retry, oneDNN off."""
        here, there = multiprocessing.Pipe()
        env = {**os.environ, ONEDNN: "0"} if onednn_off else None
        flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
        with _sigint_ignored():  # inherited: Ctrl-C is the main process's to handle
            process = subprocess.Popen(
                [sys.executable, *flags, "-c", _CHILD.format(path=sys.path, fd=there.fileno())],
                stdin=subprocess.DEVNULL, pass_fds=[there.fileno()], env=env)
        there.close()
        with contextlib.suppress(OSError):  # a worker dead before reading it: EOF, below
            here.send(setup)
        return _Worker(process, here, onednn_off)

    def stop(self, graceful: bool) -> None:
        """Tell the worker to exit (graceful), else kill it; reap it either way."""
        if graceful and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.connection.send(None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(_STOP_GRACE)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.connection.close()


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored meanwhile (a started process keeps that); only the main thread
    can change signal handlers, elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _describe(exitcode: int | None) -> str:
    """How a process ended, as the report says it: "killed by signal SIGSEGV (…)"."""
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"{number}"
        return f"killed by signal {name} ({signal.strsignal(number) or 'unknown signal'})"
    return f"the worker process exited with code {exitcode}"


def serve(fd: int) -> None:
    """The worker, on its end of the pipe (file descriptor ``fd``): take the run's setup,
    import the ``--import`` modules, then audit each path it is sent (TensorFlow imported
    for the first that passes the file checks) until it is sent None, telling the
    supervisor each step."""
    os.set_inheritable(fd, False)  # its end closes when it ends, not when a child does
    connection = Connection(fd)
    setup: _Setup = connection.recv()
    from gradaudit import runtime
    from gradaudit.load.imports import import_modules
    from gradaudit.pipeline import audit_path

    os.dup2(2, 1)  # stdout is the report's, written by the main process alone
    if setup.verbose:
        runtime.log_verbosely()
    try:
        import_modules(setup.options.imports)
    except AuditError as exc:
        connection.send(("usage", str(exc)))
        return
    # TensorFlow itself is imported once a model passes the file checks, as in one
    # process: a refused file costs no import (its first model's --timeout counts it).
    connection.send(("ready", None))
    while True:
        try:
            path = connection.recv()
        except EOFError:  # the main process is gone
            path = None
        if path is None:  # no interpreter teardown: 0.5 s and more once TensorFlow is in
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

        def step(where: str) -> None:
            connection.send(("step", where))

        outcome: Outcome
        try:
            outcome = (setup.audit or audit_path)(path, setup.options, setup.supplied,
                                                  on_step=step)
        except AuditError as exc:
            outcome = LoadError(path=path, error=str(exc))
        connection.send(("done", outcome))

"""A progress bar on stderr, only where a person is watching.

Shown when stderr is a terminal and ``--quiet`` is off: one step per model,
and the step its audit is in, so a model that takes minutes shows that it is moving.
Nothing of it reaches a pipe, a log file or stdout.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TextIO


def wanted(quiet: bool, stream: TextIO | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    return not quiet and stream.isatty()


@contextlib.contextmanager
def progress_bar(total: int, stream: TextIO | None = None) -> Iterator[Callable[[str, str], None]]:
    """A callback ``(path, step)``: a new path starts the next model, ``step`` says where
    its audit is (loading, sizing, probing batch k/n, checks). The bar vanishes at the end."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(file=sys.stderr if stream is None else stream)
    columns = (BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True,
                  redirect_stdout=False, redirect_stderr=False) as bar:
        task = bar.add_task("", total=total)
        started: list[str] = []

        def step(path: str, where: str) -> None:
            if not started or started[-1] != path:
                started.append(path)
            bar.update(task, completed=len(started) - 1, description=f"{path}: {where}")

        yield step

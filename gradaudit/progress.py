"""A progress bar on stderr, only where a person is watching.

Shown when stderr is a terminal and ``--quiet`` is off: one step per model,
and the samples probed so far, so a long probe shows that it is moving.
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
def progress_bar(total: int, stream: TextIO | None = None) -> Iterator[Callable[[str, int], None]]:
    """A callback ``(path, samples probed so far)``; the bar vanishes at the end."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(file=sys.stderr if stream is None else stream)
    columns = (BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True,
                  redirect_stdout=False, redirect_stderr=False) as bar:
        task = bar.add_task("", total=total)
        started: list[str] = []

        def step(path: str, samples: int) -> None:
            if samples == 0:
                started.append(path)
            bar.update(task, completed=len(started) - 1,
                       description=f"{path} ({samples} samples)" if samples else path)

        yield step

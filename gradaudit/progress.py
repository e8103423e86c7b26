"""A progress bar on stderr for batch runs, only where a person is watching.

Shown when stderr is a terminal, more than one model is audited and
``--quiet`` is off; nothing of it reaches a pipe, a log file or stdout.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TextIO


def wanted(count: int, quiet: bool, stream: TextIO | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    return count > 1 and not quiet and stream.isatty()


@contextlib.contextmanager
def progress_bar(total: int, stream: TextIO | None = None) -> Iterator[Callable[[str], None]]:
    """A callback to call with each path before it is audited; the bar vanishes at the end."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(file=sys.stderr if stream is None else stream)
    columns = (BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True,
                  redirect_stdout=False, redirect_stderr=False) as bar:
        task = bar.add_task("", total=total)
        done = 0

        def step(path: str) -> None:
            nonlocal done
            bar.update(task, completed=done, description=path)
            done += 1

        yield step

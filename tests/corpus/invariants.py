"""What must hold for every hostile or broken file, shared by the corpus and fuzz tests.

Exit code 2 (or 0/1 for a valid file), exactly one stderr line naming the file
(with -q), no traceback, no payload marker, and no file written anywhere: the
audit runs with a fresh working directory and a fresh temporary directory,
both checked empty afterwards, and the model's own directory unchanged.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import run_cli


def listing(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@contextlib.contextmanager
def isolated(root: Path, problems: list[str]) -> Iterator[None]:
    """Run with an empty cwd and tempfile dir under ``root``; report anything left there."""
    work, temp = root / "cwd", root / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    temp.mkdir(parents=True, exist_ok=True)
    old_cwd, old_temp = Path.cwd(), tempfile.tempdir
    os.chdir(work)
    tempfile.tempdir = str(temp)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        tempfile.tempdir = old_temp
        for place in (work, temp):
            left = listing(place)
            if left:
                problems.append(f"files written to {place.name}: {left}")


def audit_problems(path: Path, *, valid: bool | None, reason: str | None, markers: list[Path],
                   root: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """Audit one file in-process and list every invariant it breaks (empty: all hold).

    ``valid`` None means either outcome is fine (fuzzed files): a valid file
    must exit 0/1 silently, any other must exit 2 with one line.
    """
    problems: list[str] = []
    siblings = listing(path.parent)
    with isolated(root, problems):
        result: Any = run_cli("audit", str(path), "-q", "--samples", "8", "--batch-size", "8",
                              *extra)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    output = result.stdout + result.stderr
    if "Traceback" in output:
        problems.append("a traceback was printed")
    code = result.exit_code
    if code not in (0, 1, 2):
        problems.append(f"exit code {code}")
    elif code == 2 or valid is False:
        prefix = f"gradaudit: error: {path}: "
        if code != 2:
            problems.append(f"exit {code}, expected 2")
        if len(lines) != 1 or not lines[0].startswith(prefix):
            problems.append(f"expected one line starting {prefix!r}, got {lines}")
        elif reason is not None and reason not in lines[0]:
            problems.append(f"reason {reason!r} missing from {lines[0]!r}")
    elif lines:
        problems.append(f"valid file, but stderr says {lines}")
    if valid and code == 2:
        problems.append("a valid file was refused")
    for marker in markers:
        if marker.exists():
            problems.append(f"payload ran: {marker} exists")
    if listing(path.parent) != siblings:
        problems.append("files appeared beside the model")
    return problems

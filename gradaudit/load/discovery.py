"""Command-line paths → the model files to audit, in a fixed order.

A directory is searched recursively for ``.keras``, ``.h5`` and ``.hdf5`` files
and SavedModel directories (a directory holding ``saved_model.pb``, which is
audited as one model and not searched further); hidden directories (``.git``,
``.venv`` …) are skipped. A path named on the command
line is kept as given, whatever its extension: the loader detects the format
from the content. Files found in a directory are sorted by their path, so every
machine that checks out the same tree sees the same list.

``--exclude GLOB`` drops discovered files whose path relative to the searched
directory, or whose name, matches the glob (``fnmatch``: ``*`` also matches
``/``). ``--shard K/N`` keeps every N-th file of the final list starting at the
K-th (indices ``K-1, K-1+N, …``): slices are disjoint, cover the list, and
differ in size by at most one file.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gradaudit.errors import AuditError
from gradaudit.report.types import LoadError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
SAVED_MODEL_MARKERS = ("saved_model.pb", "saved_model.pbtxt")


@dataclass(frozen=True)
class Shard:
    """The K-th (1-based) of N deterministic slices of the discovered files."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` with 1 ≤ K ≤ N; AuditError otherwise."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise AuditError(f"--shard {text!r}: expected K/N, e.g. 1/4") from None
        if not 1 <= index <= count:
            raise AuditError(f"--shard {text!r}: K must be between 1 and N")
        return cls(index, count)

    def take(self, paths: Sequence[str]) -> list[str]:
        return list(paths[self.index - 1 :: self.count])


@dataclass(frozen=True)
class Discovered:
    """Model paths to audit, and command-line paths that yielded nothing."""

    paths: tuple[str, ...]
    errors: tuple[LoadError, ...]


def discover(arguments: Sequence[str], exclude: Sequence[str] = (),
             shard: Shard | None = None) -> Discovered:
    """Expand directories, apply ``exclude`` and ``shard``; keep named files as given."""
    paths: list[str] = []
    errors: list[LoadError] = []
    for argument in arguments:
        root = Path(argument)
        if not root.is_dir() or _is_saved_model(root):
            paths.append(argument)
            continue
        found = _search(root)
        if not found:
            errors.append(LoadError(argument, "directory holds no model files "
                                    "(.keras, .h5, .hdf5 or SavedModel directories)"))
        paths += [str(p) for p in found if not _excluded(p, root, exclude)]
    unique = list(dict.fromkeys(paths))
    return Discovered(tuple(shard.take(unique) if shard else unique), tuple(errors))


def _search(root: Path) -> list[Path]:
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        here = Path(directory)
        saved = [d for d in subdirs if _is_saved_model(here / d)]
        found += [here / d for d in saved]
        subdirs[:] = sorted(d for d in subdirs if d not in saved and not d.startswith("."))
        found += [here / f for f in files if f.lower().endswith(MODEL_SUFFIXES)]
    return sorted(found, key=lambda p: p.as_posix())


def _is_saved_model(path: Path) -> bool:
    return any((path / marker).is_file() for marker in SAVED_MODEL_MARKERS)


def _excluded(path: Path, root: Path, patterns: Sequence[str]) -> bool:
    relative = path.relative_to(root).as_posix()
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(path.name, p) for p in patterns)

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
differ in size by at most one file. ``--shard auto`` reads K and N from the
variables a CI system sets on each of its parallel jobs (``--shard auto/N`` where
the system gives the index alone: Kubernetes indexed Jobs).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gradaudit.errors import AuditError
from gradaudit.report.types import LoadError, ShardInfo

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
SAVED_MODEL_MARKERS = ("saved_model.pb", "saved_model.pbtxt")


@dataclass(frozen=True)
class CISystem:
    """Where a CI system puts a parallel job's index and the number of jobs."""

    name: str
    index: str
    total: str | None
    """None: the system sets no total; it is given as ``--shard auto/N``."""
    first: int
    """The index of the first job (0 or 1), as the system documents it."""

    def looked_for(self) -> str:
        return f"{self.index}/{self.total} ({self.name})" if self.total else (
            f"{self.index} with --shard auto/N ({self.name})")


CI_SYSTEMS = (
    # "Count CI_NODE_INDEX from 1" (gitlab-runner 61d8f3d3); CI_NODE_TOTAL is set on every
    # job, 1 without `parallel:`, the index only on parallel jobs:
    # https://docs.gitlab.com/ci/variables/predefined_variables/ and
    # https://docs.gitlab.com/ci/yaml/#parallel
    CISystem("GitLab", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
    # "ranges from 0 to (CIRCLE_NODE_TOTAL - 1)": https://circleci.com/docs/variables/
    CISystem("CircleCI", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),
    # "The index of each parallel job created from a parallel build step, starting from 0":
    # https://buildkite.com/docs/pipelines/environment-variables#BUILDKITE_PARALLEL_JOB
    CISystem("Buildkite", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0),
    # Indexed completion mode: "completion index from 0 to .spec.completions-1", exposed as
    # JOB_COMPLETION_INDEX: https://kubernetes.io/docs/concepts/workloads/controllers/job/
    CISystem("Kubernetes indexed Job", "JOB_COMPLETION_INDEX", None, 0),
)
"""The systems ``--shard auto`` reads, each detected by its index variable."""


@dataclass(frozen=True)
class Shard:
    """The K-th (1-based) of N deterministic slices of the discovered files."""

    index: int
    count: int
    variables: tuple[tuple[str, str], ...] = ()
    """The CI variables ``--shard auto`` read, (name, value); () for ``--shard K/N``."""
    system: str | None = None
    """The CI system they are of."""

    @classmethod
    def parse(cls, text: str, environ: Mapping[str, str] = os.environ) -> Shard:
        """``"K/N"`` with 1 ≤ K ≤ N, or ``auto``/``auto/N`` read from ``environ``;
        AuditError otherwise."""
        if text == "auto" or text.startswith("auto/"):
            return cls._from_ci(text, environ)
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise AuditError(f"--shard {text!r}: expected K/N, e.g. 1/4") from None
        if not 1 <= index <= count:
            raise AuditError(f"--shard {text!r}: K must be between 1 and N")
        return cls(index, count)

    @classmethod
    def _from_ci(cls, text: str, environ: Mapping[str, str]) -> Shard:
        """The shard of the one CI system whose index variable is set."""
        given = None if text == "auto" else text.removeprefix("auto/")
        if given is not None and not _number(given):
            raise AuditError(f"--shard {text!r}: expected auto or auto/N, e.g. auto/4")
        found = [system for system in CI_SYSTEMS if system.index in environ]
        if not found:
            raise AuditError(f"--shard {text}: no CI shard variables are set (looked for "
                             + ", ".join(s.looked_for() for s in CI_SYSTEMS) + ")")
        if len(found) > 1:
            raise AuditError(f"--shard {text}: variables of several CI systems are set ("
                             + ", ".join(f"{s.index} ({s.name})" for s in found) + ")")
        (system,) = found
        if system.total is None and given is None:
            raise AuditError(f"--shard auto: {system.index} is set but {system.name} gives "
                             "no total: use --shard auto/N")
        if system.total is not None and system.total not in environ:
            raise AuditError(f"--shard {text}: {system.index} is set but {system.total} "
                             "is not")
        read = {name: environ[name] for name in (system.index, system.total) if name}
        source = ", ".join(f"{name}={value}" for name, value in read.items())
        if not all(_number(value) for value in read.values()):
            raise AuditError(f"--shard {text}: {source}: not a whole number")
        count = int(read[system.total]) if system.total else int(str(given))
        if given is not None and int(given) != count:
            raise AuditError(f"--shard {text}: {source} says {count} jobs")
        if count < 1:
            raise AuditError(f"--shard {text}: {source}: the number of jobs must be at least 1")
        index = int(read[system.index]) - system.first + 1
        if not 1 <= index <= count:
            raise AuditError(f"--shard {text}: {source}: the index must be between "
                             f"{system.first} and {count - 1 + system.first} ({system.name} "
                             f"counts from {system.first})")
        return cls(index, count, tuple(read.items()), system.name)

    @property
    def source(self) -> str:
        """``CI_NODE_INDEX=2, CI_NODE_TOTAL=4 (GitLab)``; "" for ``--shard K/N``."""
        if not self.variables:
            return ""
        return ", ".join(f"{name}={value}" for name, value in self.variables) + (
            f" ({self.system})")

    def info(self) -> ShardInfo:
        """What the report says about this slice (``"shard"`` in the JSON)."""
        return ShardInfo(self.index, self.count, dict(self.variables), self.system)

    def take(self, paths: Sequence[str]) -> list[str]:
        return list(paths[self.index - 1 :: self.count])


def _number(text: str) -> bool:
    """Whether ``text`` is a whole number in at most 18 ASCII digits (no sign, space or
    other script; ``int`` refuses a very long one with its own error)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


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

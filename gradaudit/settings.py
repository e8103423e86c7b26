"""Options resolved in one step: defaults ← ``[tool.gradaudit]`` (or ``--config FILE``) ← flags.

The config file is the nearest ``pyproject.toml`` (the current directory or its
parents) that has a ``[tool.gradaudit]`` table, or ``--config FILE``: a
``pyproject.toml`` (its ``[tool.gradaudit]`` table) or any other TOML file (its
top level). Keys are the long flag names with ``_`` or ``-`` (``batch_size`` =
``batch-size``) plus every detection threshold of ``options.Thresholds``; a
``.py`` path under ``import`` is relative to the file's directory. A flag given
on the command line wins over the file. An unknown key or a bad value is an
AuditError naming the key (exit 2).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gradaudit.errors import AuditError
from gradaudit.load.imports import anchored, parse_imports
from gradaudit.model.specs import InputShapes, parse_input_shape
from gradaudit.options import (
    DISTRIBUTIONS,
    OBJECTIVES,
    Distribution,
    Limits,
    ObjectiveKind,
    Options,
    Thresholds,
)
from gradaudit.probe.memory import SIZE_FORMS, parse_size
from gradaudit.report.selection import parse_codes, split_list
from gradaudit.report.types import FailOn

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class ConfigFile:
    """The settings table of a config file, and where it came from (for messages)."""

    values: dict[str, object]
    origin: str  # e.g. "pyproject.toml [tool.gradaudit]"
    directory: Path = field(default_factory=Path)
    """Where the file is: relative ``.py`` paths in it start there."""


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("expected an integer ≥ 1")
    return value


def _seed(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected an integer ≥ 0")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _positive_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError("expected a number > 0")
    return float(value)


def _fraction(value: object) -> float:
    number = _positive_float(value)
    if number > 1:
        raise ValueError("expected a fraction in (0, 1]")
    return number


def _size(value: object) -> int:
    """``"4GiB"`` (config file or flag) or a number of bytes (config file)."""
    if isinstance(value, str):
        return parse_size(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected {SIZE_FORMS}")
    return value


def _fail_on(value: object) -> FailOn:
    if isinstance(value, FailOn):
        return value
    try:
        return FailOn(str(value).lower())
    except ValueError:
        raise ValueError(f"expected one of {', '.join(f.value for f in FailOn)}") from None


def _distribution(value: object) -> Distribution:
    for name in DISTRIBUTIONS:
        if value == name:
            return name
    raise ValueError(f"expected one of {', '.join(DISTRIBUTIONS)}")


def _objective(value: object) -> ObjectiveKind:
    for name in OBJECTIVES:
        if value == name:
            return name
    raise ValueError(f"expected one of {', '.join(OBJECTIVES)}")


def _input_shapes(value: object) -> InputShapes:
    """One ``[NAME=]SHAPE`` or a list of them (``--input-shape`` is repeatable)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ValueError("expected a list of [NAME=]SHAPE strings, e.g. [\"mel=128,40,1\"]")
    return tuple(parse_input_shape(item) for item in items)


def _range(value: object) -> tuple[float, float]:
    parts = value.split(",") if isinstance(value, str) else value
    try:
        if not isinstance(parts, (list, tuple)):
            raise TypeError
        low, high = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError("expected two numbers LOW,HIGH") from None
    if not low < high:
        raise ValueError("expected LOW < HIGH")
    return low, high


_FRACTIONS = {"dead_warn", "saturation_samples", "saturation_units", "diff_fraction_change",
              "timeline_jump", "bn_dead_rate", "bn_dead_warn"}
THRESHOLD_KEYS = tuple(f.name for f in dataclasses.fields(Thresholds))
LIMIT_KEYS = tuple(f.name for f in dataclasses.fields(Limits))
PARSERS: dict[str, Callable[[Any], object]] = {
    "samples": _positive_int,
    "batch_size": _positive_int,
    "seed": _seed,
    "fail_on": _fail_on,
    "select": parse_codes,
    "ignore": parse_codes,
    "exclude": split_list,
    "input_dist": _distribution,
    "input_range": _range,
    "input_shape": _input_shapes,
    "imports": parse_imports,
    "no_probe": _boolean,
    "max_memory": _size,
    "objective": _objective,
    "timeout": _positive_float,
    **{key: _fraction if key in _FRACTIONS else _positive_float for key in THRESHOLD_KEYS},
}
"""The config-file keys, each with the parser that checks its value (flags use them too)."""
ALIASES = {"import": "imports"}
"""Config keys and flags named otherwise than their option (``import`` is a Python keyword)."""
FLAG_ONLY = ("unsafe", "inference", "all_samples", "signature", *LIMIT_KEYS)
"""Options only a command-line flag sets (a config file in a parent directory must not
switch on --unsafe); in a config file they are unknown keys."""
OPTION_FLAGS = frozenset({*PARSERS, *FLAG_ONLY})
"""The command-line parameters that are options, named as ``resolve`` takes them."""


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` with a ``[tool.gradaudit]`` table."""
    for directory in (start, *start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and "gradaudit" in _read_toml(candidate).get("tool", {}):
            return candidate
    return None


def read_config(explicit: Path | None, cwd: Path) -> ConfigFile | None:
    """The ``--config`` file's settings, else the nearest pyproject's, else None."""
    path = explicit if explicit is not None else find_pyproject(cwd)
    if path is None:
        return None
    document = _read_toml(path)
    if path.name != "pyproject.toml":
        return ConfigFile(document, str(path), path.parent)
    table = document.get("tool", {}).get("gradaudit")
    if not isinstance(table, dict):
        raise AuditError(f"--config {path}: has no [tool.gradaudit] table")
    return ConfigFile(table, f"{path} [tool.gradaudit]", path.parent)


def resolve(config: ConfigFile | None, flags: Mapping[str, object]) -> Options:
    """The options of a run: defaults, then the config file, then ``flags`` (they win).

    ``flags`` holds only the flags the user typed, by option name (``batch_size``,
    ``max_params``), so a default never overrides the file.
    """
    values: dict[str, Any] = {}  # option name → a value of that option's type
    if config is not None:
        for key, value in config.values.items():
            name = key.replace("-", "_")
            name = ALIASES.get(name, name)
            if name not in PARSERS:
                raise AuditError(f"{config.origin}: unknown key {key!r}")
            values[name] = _parse(name, value, f"{config.origin}: key {key!r}")
        if "imports" in values:
            values["imports"] = anchored(values["imports"], config.directory)
    flag_names = {option: flag for flag, option in ALIASES.items()}
    for name, value in flags.items():
        flag = "--" + flag_names.get(name, name).replace("_", "-")
        values[name] = _parse(name, value, flag) if name in PARSERS else value
    if "input_range" in values:
        values.setdefault("input_dist", "uniform")
        if values["input_dist"] == "normal":
            raise AuditError("--input-range gives the bounds of uniform random inputs; it "
                             "cannot be combined with input_dist normal")
    thresholds = {k: values.pop(k) for k in THRESHOLD_KEYS if k in values}
    limits = {k: values.pop(k) for k in LIMIT_KEYS if k in values}
    return Options(**values, thresholds=Thresholds(**thresholds), limits=Limits(**limits))


def _parse(name: str, value: object, where: str) -> object:
    try:
        return PARSERS[name](value)
    except ValueError as exc:
        raise AuditError(f"{where}: bad value {value!r}: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise AuditError(f"--config {path}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AuditError(f"{path}: not a valid TOML file ({exc})") from None

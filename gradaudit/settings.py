"""Settings: defaults ← ``[tool.gradaudit]`` (or ``--config FILE``) ← command-line flags.

The configuration is read from the nearest ``pyproject.toml`` (the current
directory or its parents) that has a ``[tool.gradaudit]`` table, or from
``--config FILE``: a ``pyproject.toml`` (its ``[tool.gradaudit]`` table) or any
other TOML file (its top level). Keys are the long flag names with ``_`` or
``-`` (``batch_size`` = ``batch-size``) plus every detection threshold of
``config.Thresholds``. A flag given on the command line wins over the file.
An unknown key or a bad value is an AuditError naming the key (exit 2).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradaudit.errors import AuditError
from gradaudit.options import Options, Thresholds
from gradaudit.report.selection import Selection, parse_codes, split_list
from gradaudit.report.types import FailOn

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DISTRIBUTIONS = ("normal", "uniform")


@dataclass(frozen=True)
class Settings:
    """Everything a run is configured by, resolved and validated."""

    options: Options
    fail_on: FailOn = FailOn.ERROR
    selection: Selection = Selection()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigFile:
    """The settings table of a config file, and where it came from (for messages)."""

    values: dict[str, Any]
    origin: str  # e.g. "pyproject.toml [tool.gradaudit]"


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("expected an integer ≥ 1")
    return value


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected an integer ≥ 0")
    return value


def _positive_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError("expected a number > 0")
    return float(value)


def _fraction(value: Any) -> float:
    number = _positive_float(value)
    if number > 1:
        raise ValueError("expected a fraction in (0, 1]")
    return number


def _fail_on(value: Any) -> FailOn:
    if isinstance(value, FailOn):
        return value
    try:
        return FailOn(str(value).lower())
    except ValueError:
        raise ValueError(f"expected one of {', '.join(f.value for f in FailOn)}") from None


def _distribution(value: Any) -> str:
    if value not in DISTRIBUTIONS:
        raise ValueError(f"expected one of {', '.join(DISTRIBUTIONS)}")
    return str(value)


def _range(value: Any) -> tuple[float, float]:
    parts = value.split(",") if isinstance(value, str) else value
    try:
        low, high = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError("expected two numbers LOW,HIGH") from None
    if not low < high:
        raise ValueError("expected LOW < HIGH")
    return low, high


_FRACTIONS = {"dead_warn", "saturation_samples", "saturation_units"}
THRESHOLD_KEYS = tuple(f.name for f in dataclasses.fields(Thresholds))
PARSERS: dict[str, Callable[[Any], Any]] = {
    "samples": _positive_int,
    "batch_size": _positive_int,
    "seed": _seed,
    "fail_on": _fail_on,
    "select": parse_codes,
    "ignore": parse_codes,
    "exclude": split_list,
    "input_dist": _distribution,
    "input_range": _range,
    **{key: _fraction if key in _FRACTIONS else _positive_float for key in THRESHOLD_KEYS},
}


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
        return ConfigFile(document, str(path))
    table = document.get("tool", {}).get("gradaudit")
    if not isinstance(table, dict):
        raise AuditError(f"--config {path}: has no [tool.gradaudit] table")
    return ConfigFile(table, f"{path} [tool.gradaudit]")


def resolve(config: ConfigFile | None, given: Mapping[str, Any], base: Options) -> Settings:
    """Merge the config file and the flags given on the command line (flags win).

    ``given`` holds only flags the user typed, keyed like the config
    (``batch_size``); ``base`` carries the options that only flags set
    (``--unsafe``, ``--inference`` …).
    """
    values: dict[str, Any] = {}
    if config is not None:
        for key, value in config.values.items():
            name = key.replace("-", "_")
            if name not in PARSERS:
                raise AuditError(f"{config.origin}: unknown key {key!r}")
            values[name] = _parse(name, value, f"{config.origin}: key {key!r}")
    for name, value in given.items():
        values[name] = _parse(name, value, "--" + name.replace("_", "-"))
    return _settings(values, base)


def _settings(values: dict[str, Any], base: Options) -> Settings:
    thresholds = Thresholds(**{k: values[k] for k in THRESHOLD_KEYS if k in values})
    dist = values.get("input_dist", "uniform" if "input_range" in values else base.input_dist)
    if dist == "normal" and "input_range" in values:
        raise AuditError("--input-range gives the bounds of uniform random inputs; it cannot "
                         "be combined with input_dist normal")
    options = dataclasses.replace(
        base,
        samples=values.get("samples", base.samples),
        batch_size=values.get("batch_size", base.batch_size),
        seed=values.get("seed", base.seed),
        input_dist=dist,
        input_range=values.get("input_range", base.input_range),
        thresholds=thresholds,
    )
    return Settings(
        options=options,
        fail_on=values.get("fail_on", FailOn.ERROR),
        selection=Selection(values.get("select", ()), values.get("ignore", ())),
        exclude=values.get("exclude", ()),
    )


def _parse(name: str, value: Any, where: str) -> Any:
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

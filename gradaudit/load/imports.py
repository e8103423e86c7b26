"""``--import``: the user's own modules, imported before a model is loaded.

A model built from the user's own layer classes names them in its config
(``"module": "mylayers", "registered_name": "mylayers>Block"``); Keras finds
them only in its registry of ``keras.saving.register_keras_serializable``
classes and functions, which the module fills when it is imported. The user
names the module (a dotted name importable from the current directory or
``PYTHONPATH``, or a path to a ``.py`` file) and so vouches for its code.

This is not ``--unsafe``: the config pre-scan then accepts exactly the objects
that the imported modules (or their submodules) registered, under the module
each lives in, and still refuses Lambda layers and every other module. A
module that cannot be imported is an AuditError, and whatever it registered
before it failed is taken out of the registry again, so nothing is audited with
half of it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gradaudit.errors import AuditError, first_line
from gradaudit.runtime import import_tensorflow


@dataclass(frozen=True)
class Provided:
    """What the imports provide to the pre-scan: the imported modules, and every
    object they registered with Keras, by registered name → the module it lives in."""

    modules: frozenset[str] = frozenset()
    registered: Mapping[str, str] = field(default_factory=dict)

    def module_of(self, registered_name: object) -> str | None:
        """The module that registered this name, if an imported module did."""
        return self.registered.get(registered_name) if isinstance(registered_name, str) else None

    def imported(self, module: object) -> bool:
        """Whether ``module`` is one of the imported modules or inside one (a package)."""
        return _inside(module, self.modules)


NOTHING = Provided()


def parse_imports(value: object) -> tuple[str, ...]:
    """``--import``/``import`` values: each a dotted module name or a path ending in
    ``.py``; ValueError for anything else (before anything is imported)."""
    specs = [value] if isinstance(value, str) else value
    if not isinstance(specs, (list, tuple)) or not all(isinstance(s, str) for s in specs):
        raise ValueError("expected a list of module names or .py files")
    for spec in specs:
        if not (is_file(spec) or all(part.isidentifier() for part in spec.split("."))):
            raise ValueError(f"{spec!r} is neither a module name (a.b) nor a .py file")
    return tuple(specs)


def is_file(spec: str) -> bool:
    """Whether ``spec`` names a ``.py`` file rather than a dotted module."""
    return spec.endswith(".py")


def anchored(specs: Sequence[str], directory: Path) -> tuple[str, ...]:
    """Relative ``.py`` paths taken from ``directory`` (a config file's), names kept."""
    return tuple(str(directory / s) if is_file(s) and not Path(s).is_absolute() else s
                 for s in specs)


def import_modules(specs: Sequence[str]) -> Provided:
    """Import every spec in order (one imported before is not run again) and return
    what they provide.

    AuditError ``--import SPEC: <error>`` for the first that cannot be imported.
    """
    if not specs:
        return NOTHING
    import_tensorflow()  # the modules import Keras; its start-up noise stays silenced
    import keras

    registry = keras.saving.get_custom_objects()  # the live registry
    modules = frozenset(_import(spec, registry) for spec in specs)
    return Provided(modules, {name: obj.__module__ for name, obj in registry.items()
                              if _inside(getattr(obj, "__module__", None), modules)})


def _import(spec: str, registry: dict[str, object]) -> str:
    """Import one spec and return its module name; on failure restore the registry."""
    load: Callable[[], object]
    if is_file(spec):
        name, path = Path(spec).stem, Path(spec).resolve()
        _check_file(spec, name, path)
        load = functools.partial(_import_file, name, path)
    else:
        name = spec
        load = functools.partial(_import_name, name)
    before = dict(registry)
    try:
        # A module's print() must not end up in the report on stdout.
        with contextlib.redirect_stdout(sys.stderr):
            load()
    except (Exception, SystemExit) as exc:
        registry.clear()
        registry.update(before)
        raise AuditError(f"--import {spec}: {type(exc).__name__}: {first_line(exc)}") from None
    return name


def _check_file(spec: str, name: str, path: Path) -> None:
    """The file exists, and its stem (its module name) is not already another module."""
    if not path.is_file():
        raise AuditError(f"--import {spec}: no such file")
    if not name.isidentifier():
        raise AuditError(f"--import {spec}: {name!r} cannot be a module name")
    loaded = sys.modules.get(name)
    origin = getattr(loaded, "__file__", None)
    if loaded is not None and (origin is None or Path(origin).resolve() != path):
        raise AuditError(f"--import {spec}: a module named '{name}' is already imported "
                         f"(from {origin or 'Python itself'}); rename the file")


def _import_file(name: str, path: Path) -> None:
    """Import the file ``path`` as module ``name``, once."""
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as the import statement does, for the module's own imports
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def _import_name(name: str) -> None:
    """Import a dotted name with the current directory first on ``sys.path`` meanwhile,
    as ``python -m`` has it (the ``gradaudit`` script's path starts at its bin directory)."""
    if name in sys.modules:
        return
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # a module written since the last import is found
    try:
        importlib.import_module(name)
    finally:
        sys.path.remove(cwd)



def _inside(module: object, modules: frozenset[str]) -> bool:
    return isinstance(module, str) and any(
        module == name or module.startswith(name + ".") for name in modules)

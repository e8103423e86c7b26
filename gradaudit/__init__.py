"""gradaudit: find where gradients die in a saved Keras model.

Importing the package is cheap: TensorFlow is imported only when a model is
audited. The public API (``audit``, ``Report``, ``Finding``, ``Severity``,
``AuditError``) is resolved on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "audit": "gradaudit.api",
    "Report": "gradaudit.api",
    "Finding": "gradaudit.report.types",
    "Severity": "gradaudit.report.types",
    "AuditError": "gradaudit.errors",
}

__all__ = ["__version__", *_PUBLIC]

def __getattr__(name: str) -> Any:
    """Import the module behind a public name on first use (PEP 562)."""
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'gradaudit' has no attribute {name!r}")

"""The JSON report: the shape users script against (see README)."""

from __future__ import annotations

import json
import math
from typing import Any

from gradaudit import __version__
from gradaudit.report.types import AuditRun


def render(run: AuditRun) -> str:
    document = {
        "gradaudit": __version__,
        "models": [model.to_dict() for model in run.models],
        "errors": [error.to_dict() for error in run.errors],
    }
    return json.dumps(_finite(document), indent=2) + "\n"


def _finite(value: Any) -> Any:
    """Strict JSON has no NaN/Inf: write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value

"""The JSON report: the shape users script against (see README).

Written by ``report/json_io.py``, beside the reader that ``merge`` and
``--baseline`` use, so the two cannot drift apart.
"""

from __future__ import annotations

from gradaudit.report import json_io
from gradaudit.report.types import AuditRun


def render(run: AuditRun) -> str:
    return json_io.write(run)

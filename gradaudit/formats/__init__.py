"""Output formats: one module per format, each ``render(run) -> str``.

The CLI alone decides where the text goes (stdout or ``--output``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from gradaudit.report.types import AuditRun


class Format(str, enum.Enum):
    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    SARIF = "sarif"
    JUNIT = "junit"
    HTML = "html"

    def renderer(self) -> Callable[[AuditRun], str]:
        from gradaudit.formats import html, json_format, junit, markdown, sarif, table

        renderers: dict[Format, Callable[[AuditRun], str]] = {
            Format.TABLE: table.render,
            Format.JSON: json_format.render,
            Format.MARKDOWN: markdown.render,
            Format.SARIF: sarif.render,
            Format.JUNIT: junit.render,
            Format.HTML: html.render,
        }
        return renderers[self]


def render(run: AuditRun, fmt: Format) -> str:
    return fmt.renderer()(run)

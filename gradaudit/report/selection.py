"""``--select`` / ``--ignore``: which finding codes are reported, ruff-style.

Both take full codes or prefixes (``GA1`` is every GA1xx code, ``GA`` all).
For each code the most specific matching prefix decides: ``--select GA1
--ignore GA101`` keeps GA102 and drops GA101; ``--ignore GA1 --select GA102``
keeps only GA102 of the family. With no ``--select`` every code is selected;
on a tie ``--ignore`` wins. Filtering happens on the report, before the exit
code is computed, so an ignored finding never fails a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from gradaudit.report.catalogue import BY_CODE
from gradaudit.report.types import AuditRun


@dataclass(frozen=True)
class Selection:
    """Code prefixes, each normalised by ``prefix()``."""

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    def keeps(self, code: str) -> bool:
        selected = max((len(p) for p in self.select if code.startswith(p)),
                       default=-1 if self.select else 0)
        ignored = max((len(p) for p in self.ignore if code.startswith(p)), default=-1)
        return selected > ignored

    def apply(self, run: AuditRun) -> AuditRun:
        """The run with only the selected findings (layers and errors untouched)."""
        if not (self.select or self.ignore):
            return run
        models = tuple(model.keeping([f for f in model.findings if self.keeps(f.code)])
                       for model in run.models)
        return replace(run, models=models)


def split_list(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"GA1, GA201"`` or ``["GA1", "GA201"]`` → ``("GA1", "GA201")``; None → ``()``.

    The two spellings a list has in a flag or the API (comma-separated text)
    and in a config file or the API (a list); ValueError for anything else.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(part, str) for part in value):
        return tuple(value)
    raise ValueError("expected a list of strings")


def parse_codes(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``--select``/``--ignore`` as a flag, config key or API argument → normalised prefixes."""
    return tuple(prefix(code) for code in split_list(value))


def prefix(text: str) -> str:
    """``"ga1"`` → ``"GA1"``; ValueError if no catalogue code starts with it."""
    normalised = text.strip().upper()
    if not normalised or not any(code.startswith(normalised) for code in BY_CODE):
        raise ValueError(f"{text!r} is not a finding code or a prefix of one "
                         "(`gradaudit checks` lists them)")
    return normalised

"""``gradaudit merge``: per-shard JSON reports → one run (no TensorFlow needed).

Shards of ``--shard K/N`` each write a JSON report; merging reads them back
into report objects (``json_io``), so every format, the summary and the exit
code are the same as if one machine had audited every file. Models and errors
are sorted by path (shards interleave the file list); an error reported by
several shards (a directory with no model files is seen by all of them) is
kept once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gradaudit.errors import AuditError
from gradaudit.report import json_io
from gradaudit.report.types import AuditRun, LoadError, ModelReport


def merge(paths: Sequence[Path]) -> AuditRun:
    """Read every JSON report and combine them; AuditError naming a bad file."""
    models: list[ModelReport] = []
    errors: dict[LoadError, None] = {}
    seen: dict[str, Path] = {}  # model path → the report it came from
    for path in paths:
        shard = json_io.read_file(path)
        for model in shard.models:
            if model.path in seen:
                raise AuditError(f"{path}: model {model.path} is also in {seen[model.path]}; "
                                 "each model may appear in one report only (the same shard "
                                 "given twice?)")
            seen[model.path] = path
        models += shard.models
        errors.update(dict.fromkeys(shard.errors))
    return AuditRun(models=tuple(sorted(models, key=lambda m: m.path)),
                    errors=tuple(sorted(errors, key=lambda e: e.path)))

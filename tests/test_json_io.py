"""The JSON report reads back as it was written: ``read(write(run)) == run``.

``gradaudit merge`` and ``--baseline`` see a run only through its JSON report,
so anything the reader drops (notes, the inputs' source, NaN gradients) is
lost to every format rendered from a merge.
"""

from __future__ import annotations

import json
import math
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest

from gradaudit.options import Options
from gradaudit.report.json_io import read, write
from gradaudit.report.types import (
    AuditRun,
    Cause,
    Finding,
    InputRow,
    LayerRow,
    LoadError,
    ModelReport,
    Severity,
)
from tests.conftest import FIXTURES, GoldenRun, run_cli

AUDITED = ["savedmodels/export", "nan_grad.keras", "nan_weight.keras", "frozen_layer.keras",
           "stop_gradient.keras", "exploding.keras", "missing.keras"]


def _canonical(value: Any) -> Any:
    """``value`` comparable with ``==``: NaN equals NaN, and types count (1 != 1.0 != True)."""
    if is_dataclass(value) and not isinstance(value, type):
        return type(value).__name__, [(f.name, _canonical(getattr(value, f.name)))
                                      for f in fields(value)]
    if isinstance(value, dict):
        return "dict", sorted((key, _canonical(v)) for key, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [_canonical(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "float", "nan"
    return type(value).__name__, value


def _assert_same(got: AuditRun, expected: AuditRun) -> None:
    assert _canonical(got) == _canonical(expected)


def _non_finite(run: AuditRun) -> list[float]:
    return [row.grad_rms for m in run.models for row in m.layers
            if row.grad_rms is not None and not math.isfinite(row.grad_rms)]


@pytest.fixture(scope="module")
def audited_run() -> AuditRun:
    """A real run in memory: a SavedModel (notes), NaN gradients and weights, a frozen
    layer, cut and exploding gradients, and a path that cannot be audited."""
    from gradaudit.pipeline import audit_paths

    return audit_paths([str(FIXTURES / name) for name in AUDITED], Options())


def test_every_fixture_report_reads_back_as_written(golden_run: GoldenRun) -> None:
    run = read(golden_run.json_text)
    assert write(run) == golden_run.json_text
    _assert_same(read(write(run)), run)
    assert _non_finite(run) and all(isinstance(v, float) for v in _non_finite(run))


def test_a_real_run_reads_back_with_nothing_lost(audited_run: AuditRun) -> None:
    models = audited_run.models
    assert any(m.notes for m in models) and any(m.inputs_source for m in models)
    assert any(row.non_trainable_reason for m in models for row in m.layers)
    assert _non_finite(audited_run) and audited_run.errors
    _assert_same(read(write(audited_run)), audited_run)


def test_every_field_reads_back_including_non_finite_numbers() -> None:
    finding = Finding("GA203", Severity.WARNING, "d", "m",
                      {"grad_rms": math.inf, "ratio_to_last": -math.inf, "weight_rms": math.nan,
                       "relative_update": None, "cut_at": "StopGradient", "variables": ["kernel"]},
                      id="GA203:d", caused_by="e")
    consequence = Finding("GA202", Severity.ERROR, "d", "zero", id="GA202:d#2", caused_by="e")
    cause = Cause("e", ("GA102",), ("GA203:d", "GA202:d#2"), "dead", "lower the rate")
    row = LayerRow("d", "Dense", "relu", 3, 2, 1, True, 4, 1, math.nan, -math.inf, math.inf,
                   non_trainable_reason="non-trainable weights: mask")
    model = ModelReport("m.keras", "keras", "m", 3, 2, 1, 8, 7, (InputRow("x", (2, 3), "int32"),),
                        (row,), (finding, consequence), unsafe=True, diagnosis=(cause,),
                        inputs_source={"kind": "file", "path": "in.npz", "rows": 8},
                        notes=("probed as traced",), imports=("mylayers", "code/more.py"))
    run = AuditRun(models=(model,), errors=(LoadError("bad.h5", "damaged"),))
    text = write(run)
    assert '"grad_rms": "inf"' in text and '"weight_rms": "nan"' in text  # strict JSON
    _assert_same(read(text), run)


def test_reports_written_before_the_optional_fields_still_read() -> None:
    document = json.loads(write(AuditRun(models=(ModelReport(
        "m.keras", "keras", "m", 1, 1, 0, 1, 0, (), (LayerRow(
            "d", "Dense", None, 1, 1, 0, True, None, None, None, None, 0.5),),
        (Finding("GA301", Severity.INFO, "d", "m"),)),), errors=())))
    (entry,) = document["models"]
    for key in ("unsafe", "notes"):
        del entry[key]
    del entry["summary"]["inputs_source"], entry["layers"][0]["non_trainable_reason"]
    del entry["summary"]["imports"], entry["findings"][0]["metrics"]
    (model,) = read(json.dumps(document)).models
    assert (model.unsafe, model.notes, model.inputs_source, model.imports) == (False, (), {}, ())
    assert model.layers[0].non_trainable_reason is None and model.findings[0].metrics == {}


def test_a_savedmodel_report_survives_merge_with_its_notes(golden_run: GoldenRun,
                                                           tmp_path: Path) -> None:
    document = json.loads(golden_run.json_text)
    document.update(models=[m for m in document["models"] if m["format"] == "savedmodel"],
                    errors=[])
    assert document["models"] and all(m["notes"] for m in document["models"])
    shard = tmp_path / "shard.json"
    shard.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    merged = run_cli("merge", str(shard), "--format", "json", "--fail-on", "never", "-q")
    assert merged.exit_code == 0, merged.stderr
    assert merged.stdout == shard.read_text(encoding="utf-8")

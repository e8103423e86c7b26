"""``gradaudit timeline``: checkpoints ordered by the optimizer's step count, per-layer
figures per checkpoint, the died/revived events, series per architecture, exit codes.

On fixtures/timeline/ (make_fixtures.py ``train_timeline``): the trained MLP saved
each epoch with its Adam state; in the "spike" run, epoch 10 at 100× the learning
rate kills 13 of h1's 32 units on the training data. The file names sort wrongly
(ckpt-10 before ckpt-9), so only the step count orders them.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fixtures.make_fixtures import training_data
from gradaudit.errors import AuditError
from gradaudit.formats import timeline as timeline_format
from gradaudit.load.checkpoints import plan
from gradaudit.options import Options
from gradaudit.pipeline import audit_checkpoint, audit_path
from gradaudit.report.timeline import Timeline, assemble, changes, timeline_exit_code
from gradaudit.report.types import AuditRun, FailOn, LoadError, ModelReport, Severity
from tests.conftest import FIXTURES, run_cli, run_cli_fresh

SPIKE = FIXTURES / "timeline" / "spike"
HEALTHY = FIXTURES / "timeline" / "healthy"
PROBED = Options(input_dist="uniform")  # the training data's distribution: uniform [0, 1)
FILE_ONLY = Options(no_probe=True)


def _copies(tmp_path: Path, folder: Path, epochs: range) -> list[str]:
    """The checkpoints of ``epochs`` copied into ``tmp_path``, modification times
    reversed (the last saved looks oldest): neither name nor time gives the order."""
    paths = []
    for age, epoch in enumerate(epochs):
        target = tmp_path / f"ckpt-{epoch}.keras"
        shutil.copyfile(folder / f"ckpt-{epoch}.keras", target)
        os.utime(target, (1e9 - age * 100, 1e9 - age * 100))
        paths.append(str(target))
    return sorted(paths)  # by name: ckpt-10 … ckpt-13, ckpt-8, ckpt-9


def _timeline(paths: list[str], options: Options) -> Timeline:
    """The timeline as the CLI builds it, with the audits in this process."""
    planned = plan(paths, options.limits)
    reports: list[ModelReport] = []
    errors: list[LoadError] = []
    for path in planned.paths:
        try:
            reports.append(audit_checkpoint(path, options))
        except AuditError as exc:  # as the worker reports it
            errors.append(LoadError(path, str(exc)))
    return assemble(planned, AuditRun(tuple(reports), tuple(errors)), options.thresholds)


def _names(timeline: Timeline) -> list[str]:
    return [Path(c.path).name for c in timeline.checkpoints]


def _events(timeline: Timeline) -> list[tuple[str, str, str, str, dict[str, tuple[float, float]]]]:
    return [(e.layer, Path(e.before).name, Path(e.after).name, e.what, e.figures)
            for e in timeline.events]


@pytest.fixture(scope="module")
def spike() -> Timeline:
    return _timeline(sorted(str(p) for p in SPIKE.glob("*.keras")), PROBED)


def test_checkpoints_are_ordered_by_step_not_by_name_or_time(tmp_path: Path) -> None:
    timeline = _timeline(_copies(tmp_path, SPIKE, range(8, 14)), FILE_ONLY)
    assert _names(timeline) == [f"ckpt-{epoch}.keras" for epoch in range(8, 14)]
    assert [c.step for c in timeline.checkpoints] == [256, 288, 320, 352, 384, 416]
    assert [c.learning_rate for c in timeline.checkpoints] == pytest.approx(
        [1e-3, 1e-3, 0.1, 1e-3, 1e-3, 1e-3])
    assert timeline.notes == ()


def test_the_spike_kills_h1_between_ckpt_9_and_ckpt_10(spike: Timeline) -> None:
    assert _names(spike) == [f"ckpt-{epoch}.keras" for epoch in range(8, 14)]
    # Dead at once (the probe); stalled in the optimizer state about 66 steps later,
    # when the moments of the units without a gradient have decayed (GA401's clock).
    assert _events(spike) == [
        ("h1", "ckpt-9.keras", "ckpt-10.keras", "died", {"dead_fraction": (0.0, 0.375)}),
        ("h1", "ckpt-11.keras", "ckpt-12.keras", "died", {"stalled_fraction": (0.0, 0.5938)}),
        ("h2", "ckpt-11.keras", "ckpt-12.keras", "died", {"stalled_fraction": (0.0, 0.375)}),
    ]


def test_the_reverse_jump_is_a_revival_and_the_threshold_is_a_setting(spike: Timeline) -> None:
    backwards = changes(list(reversed(spike.checkpoints)), PROBED.thresholds.timeline_jump)
    assert [(e.layer, Path(e.before).name, Path(e.after).name, e.what) for e in backwards] == [
        ("h1", "ckpt-12.keras", "ckpt-11.keras", "revived"),
        ("h2", "ckpt-12.keras", "ckpt-11.keras", "revived"),
        ("h1", "ckpt-10.keras", "ckpt-9.keras", "revived")]
    assert {e.severity for e in backwards} == {Severity.INFO}
    assert [(e.layer, e.figures) for e in changes(spike.checkpoints, 0.4)] == [
        ("h1", {"stalled_fraction": (0.0, 0.5938)})]


def test_the_dead_fractions_match_the_units_dead_on_the_training_data(spike: Timeline) -> None:
    import keras

    x, _ = training_data()
    for checkpoint in spike.checkpoints:
        model = keras.saving.load_model(checkpoint.path, compile=False)
        figures = checkpoint.layers()
        for layer in ("h1", "h2"):
            probe = keras.Model(model.inputs[0], model.get_layer(layer).output)
            truth = float((~(np.asarray(probe(x)) > 0).any(axis=0)).mean())
            assert figures[layer]["dead_fraction"] == pytest.approx(truth, abs=0.07), (
                checkpoint.path, layer)


def test_swapped_weights_give_the_report_of_a_fresh_load(spike: Timeline) -> None:
    """Every checkpoint after the first is audited on the model built for the first;
    its report must be the one ``audit`` gives the file alone."""
    last = spike.checkpoints[-1]
    fresh = audit_path(last.path, PROBED)
    assert last.report is not None
    assert last.report.layers == fresh.layers
    assert last.report.findings == fresh.findings


def test_a_healthy_run_has_no_event() -> None:
    timeline = _timeline(sorted(str(p) for p in HEALTHY.glob("*.keras")), PROBED)
    assert _names(timeline) == ["ckpt-9.keras", "ckpt-10.keras", "ckpt-11.keras"]
    assert timeline.events == ()
    assert timeline_exit_code(timeline, FailOn.WARNING) == 0
    moved = max(abs(after[name] - before[name])  # the timeline_jump rationale: ≤ 0.03
                for a, b in zip(timeline.checkpoints, timeline.checkpoints[1:], strict=False)
                for layer in ("h1", "h2")
                for before, after in [(a.layers()[layer], b.layers()[layer])]
                for name in ("dead_fraction", "stalled_fraction"))
    assert moved <= 0.035


def test_another_architecture_is_its_own_series(tmp_path: Path) -> None:
    paths = [*_copies(tmp_path, SPIKE, range(9, 11)), str(FIXTURES / "healthy_mlp.keras")]
    timeline = _timeline(paths, FILE_ONLY)
    assert [(Path(c.path).name, c.series) for c in timeline.checkpoints] == [
        ("ckpt-9.keras", 0), ("ckpt-10.keras", 0), ("healthy_mlp.keras", 1)]
    assert timeline.notes[0].startswith("the checkpoints have 2 different architectures")
    assert "no optimizer step count in" in timeline.notes[1]
    assert timeline.events == ()  # never compared across series


def test_a_checkpoint_without_step_count_is_placed_by_its_time(tmp_path: Path) -> None:
    import keras

    paths = _copies(tmp_path, SPIKE, range(8, 11))
    for path, mtime in zip(sorted(paths, key=lambda p: int(Path(p).stem[5:])),
                           (100.0, 200.0, 300.0), strict=True):
        os.utime(path, (mtime, mtime))
    exported = tmp_path / "exported.keras"  # ckpt-9 saved without its optimizer
    keras.saving.load_model(SPIKE / "ckpt-9.keras", compile=False).save(exported)
    os.utime(exported, (250.0, 250.0))
    timeline = _timeline([*paths, str(exported)], FILE_ONLY)
    assert _names(timeline) == ["ckpt-8.keras", "ckpt-9.keras", "exported.keras",
                                "ckpt-10.keras"]
    assert {c.series for c in timeline.checkpoints} == {0}
    assert timeline.notes == (f"no optimizer step count in {exported} (saved without its "
                              "optimizer): placed by modification time",)


def test_an_unreadable_checkpoint_says_why_and_the_others_go_on(tmp_path: Path) -> None:
    paths = _copies(tmp_path, SPIKE, range(8, 14))
    broken = tmp_path / "ckpt-11.keras"
    broken.write_bytes(broken.read_bytes()[:5000])
    timeline = _timeline(paths, FILE_ONLY)
    (unreadable,) = [c for c in timeline.checkpoints if c.error is not None]
    assert unreadable.path == str(broken) and unreadable.report is None
    assert unreadable.error.startswith("damaged .keras archive"), unreadable.error
    assert len([c for c in timeline.checkpoints if c.report is not None]) == 5
    # The stalled layers are compared across the gap: ckpt-10 → ckpt-12.
    assert [(e.layer, Path(e.before).name, Path(e.after).name) for e in timeline.events] == [
        ("h1", "ckpt-10.keras", "ckpt-12.keras"), ("h2", "ckpt-10.keras", "ckpt-12.keras")]
    assert timeline_exit_code(timeline, FailOn.NEVER) == 2


def test_a_died_event_is_a_warning_and_findings_count(spike: Timeline) -> None:
    assert timeline_exit_code(spike, FailOn.WARNING) == 1
    assert timeline_exit_code(spike, FailOn.ERROR) == 0
    # Without its events the spike run still fails on warning: ckpt-12's GA401.
    assert timeline_exit_code(replace(spike, events=()), FailOn.WARNING) == 1
    early = replace(spike, checkpoints=spike.checkpoints[:3])
    assert timeline_exit_code(early, FailOn.WARNING) == 1  # only the event: GA414 is info
    assert timeline_exit_code(replace(early, events=()), FailOn.WARNING) == 0


def test_the_json_has_the_documented_shape(spike: Timeline) -> None:
    data = json.loads(timeline_format.to_json(spike))
    assert list(data) == ["timeline"]
    body = data["timeline"]
    assert list(body) == ["checkpoints", "layers", "events", "notes"]
    assert [c["step"] for c in body["checkpoints"]] == [256, 288, 320, 352, 384, 416]
    assert set(body["checkpoints"][0]) == {"path", "step", "learning_rate", "series",
                                           "error", "findings"}
    assert list(body["layers"]) == ["h1", "h2", "out"]
    assert len(body["layers"]["h1"]) == 6
    assert set(body["layers"]["h1"][2]) == {"dead_fraction", "stalled_fraction",
                                            "bn_dead_fraction", "grad_rms"}
    assert body["layers"]["h1"][2]["dead_fraction"] == 0.375
    assert body["events"][0] == {
        "layer": "h1", "before": str(SPIKE / "ckpt-9.keras"),
        "after": str(SPIKE / "ckpt-10.keras"), "what": "died",
        "figures": {"dead_fraction": [0.0, 0.375]}}


def test_the_table_shows_the_layers_with_events(spike: Timeline) -> None:
    text = timeline_format.table(spike)
    assert "h1 dead" in text and "h2 stalled" in text and "out dead" not in text
    assert "h1       died    ckpt-9.keras → ckpt-10.keras   dead 0% → 38%" in text


def test_cli_in_the_worker_exits_1_on_warning(tmp_path: Path) -> None:
    result = run_cli("timeline", *_copies(tmp_path, SPIKE, range(9, 11)), "--input-dist",
                     "uniform", "--fail-on", "warning", "-f", "json", "-q")
    assert result.exit_code == 1, result.stderr
    (event,) = json.loads(result.stdout)["timeline"]["events"]
    assert (Path(event["before"]).name, Path(event["after"]).name, event["what"]) == (
        "ckpt-9.keras", "ckpt-10.keras", "died")


def test_cli_without_probe_reads_the_files_only(tmp_path: Path) -> None:
    _copies(tmp_path, SPIKE, range(10, 13))
    (tmp_path / "ckpt-99.keras").write_text("not a checkpoint")
    result = run_cli("timeline", str(tmp_path), "--no-probe", "--fail-on", "never")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith(
        f"gradaudit: error: {tmp_path / 'ckpt-99.keras'}: ")
    assert any(line.startswith("ckpt-99.keras") and "unreadable: not a Keras model file"
               in line for line in result.stdout.splitlines())  # its row says why
    assert "ckpt-11.keras → ckpt-12.keras" in result.stdout


def test_without_probe_no_tensorflow_is_imported() -> None:
    fresh = run_cli_fresh("timeline", str(SPIKE), "--no-probe", "--fail-on", "warning", "-q")
    assert fresh.imported == []
    assert "EXIT 1" in fresh.stdout  # the stalled layers' event and GA401 are warnings


def test_cli_refuses_to_overwrite_a_checkpoint_found_in_a_directory(tmp_path: Path) -> None:
    (first, *_) = _copies(tmp_path, HEALTHY, range(9, 11))
    before = Path(first).read_bytes()
    result = run_cli("timeline", str(tmp_path), "--no-probe", "-o", first)
    assert result.exit_code == 2
    assert "refusing to overwrite it" in result.stderr
    assert Path(first).read_bytes() == before


def _with_h1_kernel_resized(source: Path, target: Path) -> None:
    """``source`` with h1's kernel (8, 32) stored as (8, 16): the config still says the
    architecture of the run, the weights do not fit it."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "model.weights.h5":
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "r+") as weights:
                    del weights["layers/dense/vars/0"]
                    weights["layers/dense/vars/0"] = np.zeros((8, 16), "float32")
                data = buffer.getvalue()
            zout.writestr(item, data)


def test_weights_that_do_not_fit_fail_that_checkpoint_only(tmp_path: Path) -> None:
    misfit = tmp_path / "misfit.keras"
    _with_h1_kernel_resized(SPIKE / "ckpt-9.keras", misfit)
    timeline = _timeline([str(SPIKE / "ckpt-8.keras"), str(misfit),
                          str(SPIKE / "ckpt-10.keras")], PROBED)
    (failed,) = [c for c in timeline.checkpoints if c.error is not None]
    assert failed.path == str(misfit) and "could not be loaded" in failed.error
    # The others go on, and the next is audited as a fresh load of it would be.
    (after,) = [c for c in timeline.checkpoints if c.path.endswith("ckpt-10.keras")]
    assert after.report is not None
    assert after.report.layers == audit_path(after.path, PROBED).layers

"""GA103: dead ReLU units read from BatchNormalization statistics, from the file alone.

The fixtures in ``fixtures/trained/bn_*`` and ``keras2_bn_*`` were trained by
``fixtures/make_fixtures.py`` and saved without their optimizer, so only the BN
statistics can tell. The truth each estimate is held to is measured here: the models
are run on their own training data (regenerated from the same seed) and the channels
never active are counted. The configurations the estimate must read correctly
(``center=False``, ``scale=False``, ``axis=1``, Keras 3's legacy ``.h5``) or skip
(``renorm`` in a ``.keras`` file, a LeakyReLU) are built and saved by Keras in tmp_path.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fixtures.make_fixtures import bn_training_data
from gradaudit.history.batchnorm import read_batchnorm
from gradaudit.options import Options
from gradaudit.pipeline import audit_file, audit_path
from gradaudit.report import json_io
from gradaudit.report.catalogue import lookup
from gradaudit.report.types import AuditRun, LayerRow, ModelReport, Severity
from tests.conftest import FIXTURES, run_cli, run_cli_fresh

TRAINED = FIXTURES / "trained"
TOLERANCE = 0.15
"""The estimate's dead fraction may differ from the measured one by this much."""
LAYERS = ("act1", "conv2")


def _load(path: Path) -> Any:
    import keras

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return keras.saving.load_model(path, compile=False, safe_mode=True)


def _never_active(model: Any, layer: str, x: np.ndarray, axis: int = -1) -> float:
    """The share of ``layer``'s channels (along ``axis``) that are never above 0 on ``x``."""
    import keras

    out = np.asarray(keras.Model(model.inputs[0], model.get_layer(layer).output)(x))
    channels = np.moveaxis(out > 0, axis, -1).reshape(-1, out.shape[axis])
    return float((~channels.any(axis=0)).mean())


def _row(report: ModelReport, name: str) -> LayerRow:
    return next(row for row in report.layers if row.name == name)


def _ga103(report: ModelReport) -> dict[str, Any]:
    return {f.layer: f for f in report.findings if f.code == "GA103"}


@pytest.mark.parametrize(("name", "flagged"), [
    ("bn_dead.keras", LAYERS),
    ("keras2_bn_dead.h5", LAYERS),
    ("bn_lr_dying.keras", ("act1",)),  # killed by Adam(0.2), nothing injected
])
def test_dead_channels_are_found_within_tolerance_of_the_training_data(
        name: str, flagged: tuple[str, ...]) -> None:
    path = TRAINED / name
    report = audit_file(str(path), Options(no_probe=True))
    x, _ = bn_training_data()
    model = _load(path)
    found = _ga103(report)
    assert set(found) == set(flagged)
    for layer in LAYERS:
        truth = _never_active(model, layer, x)
        row = _row(report, layer)
        assert row.bn_dead_fraction is not None
        assert abs(row.bn_dead_fraction - truth) <= TOLERANCE, (layer, row, truth)
    for layer in flagged:
        assert found[layer].severity is Severity.WARNING
        assert found[layer].metrics["dead_units"] == _row(report, layer).bn_dead_units
    assert found["act1"].metrics["pattern"] == "bn_relu"
    assert found["act1"].metrics["bn_layer"] == "bn1"
    assert "beta/|gamma| below -3.72" in found["act1"].message
    if "conv2" in flagged:
        assert found["conv2"].metrics["pattern"] == "relu_bn"
        assert "moving mean of 0" in found["conv2"].message


@pytest.mark.parametrize("name", ["bn_healthy.keras", "keras2_bn_healthy.h5"])
def test_healthy_twins_are_clean(name: str) -> None:
    path = TRAINED / name
    report = audit_file(str(path), Options(no_probe=True))
    x, _ = bn_training_data()
    model = _load(path)
    assert not _ga103(report)
    for layer in LAYERS:
        assert _never_active(model, layer, x) == 0.0
        assert _row(report, layer).bn_dead_units == 0


def test_no_probe_gives_ga103_without_tensorflow() -> None:
    run = run_cli_fresh("audit", "--no-probe", "--format", "json",
                        str(TRAINED / "keras2_bn_dead.h5"))
    assert run.imported == []
    document = json.loads(run.stdout[:run.stdout.rindex("}") + 1])
    (model,) = document["models"]
    assert {(f["code"], f["layer"], f["severity"]) for f in model["findings"]} == {
        ("GA103", "act1", "warning"), ("GA103", "conv2", "warning")}
    assert model["summary"]["checks_run"] == ["GA103"]


def test_the_probe_links_ga103_to_the_dead_layer_it_also_measures() -> None:
    report = audit_path(str(TRAINED / "bn_dead.keras"), Options())
    by = {(f.code, f.layer): f for f in report.findings}
    assert by[("GA101", "act1")].caused_by is None
    assert by[("GA103", "act1")].caused_by == "act1"  # the same dead units, not a second cause
    assert by[("GA103", "conv2")].caused_by is None  # the probe (31% < 50%) has no GA101 there
    assert _row(report, "act1").dead_units == _row(report, "act1").bn_dead_units == 10


# --- configurations built in tmp_path ----------------------------------------------------

def _variant(tmp_path: Path, name: str, *, axis: int = -1, center: bool = True,
             scale: bool = True, renorm: bool = False, activation: str = "relu",
             dead: tuple[int, ...] = (0, 1), suffix: str = ".keras",
             beta: float = -9.0) -> tuple[Path, Any, Any]:
    """Dense → BN → activation on (6, 5) inputs, the BN's moving statistics those of the
    data (momentum 0, one step at learning rate 0), then the ``dead`` channels killed:
    ``beta`` (gamma 0 without ``center``)."""
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(3).standard_normal((256, 6, 5)).astype("float32")
    inputs = keras.Input((6, 5), name="features")
    h = keras.layers.Dense(5, name="dense")(inputs)
    bn = keras.layers.BatchNormalization(axis=axis, center=center, scale=scale,
                                         momentum=0.0, renorm=renorm, name="bn")
    h = bn(h)
    h = (keras.layers.LeakyReLU(name="act") if activation == "leaky_relu"
         else keras.layers.Activation(activation, name="act"))(h)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(keras.layers.Flatten()(h)))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    model.fit(x, np.zeros((256, 1)), batch_size=256, epochs=1, verbose=0)
    channels = bn.moving_mean.shape[0]
    if center:
        betas = np.zeros(channels, "float32")
        betas[list(dead)] = beta
        bn.beta.assign(betas)
    else:
        gamma = np.ones(channels, "float32")
        gamma[list(dead)] = 0.0
        bn.gamma.assign(gamma)
    path = tmp_path / f"{name}{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    return path, model, x


@pytest.mark.parametrize(("case", "kwargs", "axis", "units"), [
    ("axis1", {"axis": 1}, 1, 6),
    ("no_center", {"center": False}, -1, 5),
    ("no_scale", {"scale": False}, -1, 5),
    ("legacy_h5", {"suffix": ".h5"}, -1, 5),
])
def test_center_scale_axis_and_legacy_h5_are_read_correctly(
        tmp_path: Path, case: str, kwargs: dict[str, Any], axis: int, units: int) -> None:
    path, model, x = _variant(tmp_path, case, **kwargs)
    report = audit_file(str(path), Options(no_probe=True))
    truth = _never_active(model, "act", x, axis)
    row = _row(report, "act")
    assert truth == 2 / units
    assert row.bn_dead_units == 2
    assert row.bn_dead_fraction is not None
    assert abs(row.bn_dead_fraction - truth) <= TOLERANCE
    (finding,) = _ga103(report).values()
    assert (finding.layer, finding.severity, finding.metrics["units"]) == (
        "act", Severity.WARNING, units)


def test_relu6_channels_stuck_at_6_are_dead_too(tmp_path: Path) -> None:
    """relu6 is flat above 6 as well: beta +12 keeps a channel there on every input."""
    path, model, x = _variant(tmp_path, "relu6", activation="relu6", beta=12.0)
    import keras

    out = np.asarray(keras.Model(model.inputs[0], model.get_layer("act").output)(x))
    active = ((out > 0) & (out < 6)).reshape(-1, out.shape[-1]).any(axis=0)
    report = audit_file(str(path), Options(no_probe=True))
    assert int((~active).sum()) == _row(report, "act").bn_dead_units == 2
    (finding,) = _ga103(report).values()
    assert "inside act's active range (0, 6)" in finding.message


def test_every_channel_dead_is_an_error(tmp_path: Path) -> None:
    path, model, x = _variant(tmp_path, "all", dead=(0, 1, 2, 3, 4))
    report = audit_file(str(path), Options(no_probe=True))
    assert _never_active(model, "act", x) == 1.0
    (finding,) = _ga103(report).values()
    assert (finding.layer, finding.severity) == ("act", Severity.ERROR)


def test_renorm_in_a_keras_file_is_skipped_with_a_note(tmp_path: Path) -> None:
    path, _, _ = _variant(tmp_path, "renorm", renorm=True)
    report = audit_file(str(path), Options(no_probe=True))
    assert not _ga103(report)
    assert any("BatchNormalization bn: renorm" in note and "GA103 not judged" in note
               for note in report.notes)


def test_a_leaky_relu_is_not_judged(tmp_path: Path) -> None:
    path, _, _ = _variant(tmp_path, "leaky", activation="leaky_relu")
    assert read_batchnorm(str(path), "keras", _config(path)).layers == ()


def test_a_garbled_config_is_a_note_not_a_traceback() -> None:
    layers = [{"class_name": "Dense", "config": {"name": "d", "units": 4}},
              {"class_name": "BatchNormalization", "config": {"name": "bn"}},
              {"class_name": "ReLU", "config": ["not", "a", "mapping"]}]
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": layers}}
    stats = read_batchnorm(str(TRAINED / "bn_dead.keras"), "keras", config)
    assert stats.layers == ()
    assert [note.split(" (")[0] for note in stats.notes] == [
        "the BatchNormalization statistics could not be read"]


def _config(path: Path) -> dict[str, Any]:
    from gradaudit.load.prescan import read_model_config

    return read_model_config(path, "keras")


# --- report, table and catalogue ---------------------------------------------------------

def test_reports_written_before_the_bn_fields_still_read() -> None:
    report = audit_file(str(TRAINED / "bn_dead.keras"), Options(no_probe=True))
    document = json.loads(json_io.write(AuditRun(models=(report,), errors=())))
    for row in document["models"][0]["layers"]:
        del row["bn_dead_units"], row["bn_dead_fraction"]
    (old,) = json_io.read(json.dumps(document)).models
    assert all(row.bn_dead_units is None for row in old.layers)
    (again,) = json_io.read(json_io.write(AuditRun(models=(report,), errors=()))).models
    assert again.layers == report.layers


def test_the_table_shows_the_column_only_when_a_layer_has_it() -> None:
    dead = run_cli("audit", "--no-probe", str(TRAINED / "bn_dead.keras"))
    assert "BN-dead %" in dead.stdout and "10 (62%)" in dead.stdout
    plain = run_cli("audit", "--no-probe", str(TRAINED / "adam_dying.keras"))
    assert "BN-dead" not in plain.stdout


def test_explain_ga103_names_its_sources() -> None:
    rule = lookup("GA103")
    assert rule.severity is Severity.WARNING
    assert "Ioffe & Szegedy 2015" in rule.source and "Gaussian" in rule.source
    result = run_cli("explain", "GA103")
    assert result.exit_code == 0 and "BatchNorm" in result.stdout

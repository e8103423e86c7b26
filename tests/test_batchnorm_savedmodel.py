"""GA103 for SavedModel directories: the BN statistics the serving graph reads.

The SavedModels in ``fixtures/savedmodels/bn_*`` and ``keras2_bn_dead`` are the trained
files of ``fixtures/trained/`` exported with the same weights (Keras 3
``tf.saved_model.save``: the BN as arithmetic; tf_keras: a FusedBatchNormV3), so GA103
on the directory must say what it says on the file: the same layers, dead counts and
severities. Configurations (Dense → BN, no center, no scale, relu6, a LeakyReLU, Keras 3
``model.export``) are exported by Keras in tmp_path from the models test_batchnorm builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gradaudit.options import Options
from gradaudit.pipeline import audit_file, audit_path
from gradaudit.report.types import ModelReport
from tests.conftest import FIXTURES
from tests.test_batchnorm import LAYERS, TRAINED, _load, _row, _variant

SAVEDMODELS = FIXTURES / "savedmodels"


def _judged(report: ModelReport) -> dict[str, tuple[Any, ...]]:
    """GA103 by layer: what must match between a file and its SavedModel (the message
    holds every figure)."""
    return {f.layer: (f.severity, f.metrics["bn_layer"], f.metrics["pattern"],
                      f.metrics["units"], f.metrics["dead_units"], f.message)
            for f in report.findings if f.code == "GA103"}


def _bn_notes(report: ModelReport) -> list[str]:
    return [note for note in report.notes if "BatchNormalization" in note]


def _saved(model: Any, path: Path) -> str:
    import tensorflow as tf

    tf.saved_model.save(model, str(path))
    return str(path)


@pytest.mark.parametrize(("directory", "trained"), [
    ("bn_dead", "bn_dead.keras"),  # Keras 3: tf.nn.batch_normalization's arithmetic
    ("keras2_bn_dead", "keras2_bn_dead.h5"),  # tf_keras: FusedBatchNormV3
])
def test_a_savedmodel_gives_the_same_ga103_as_its_trained_file(
        directory: str, trained: str) -> None:
    report = audit_path(str(SAVEDMODELS / directory), Options())
    file = audit_file(str(TRAINED / trained), Options(no_probe=True))
    assert set(_judged(report)) == set(LAYERS)
    assert _judged(report) == _judged(file)
    for layer in LAYERS:
        assert _row(report, layer).bn_dead_units == _row(file, layer).bn_dead_units
    assert not _bn_notes(report)


def test_the_healthy_savedmodel_is_clean() -> None:
    report = audit_path(str(SAVEDMODELS / "bn_healthy"), Options())
    assert not _judged(report)
    assert {layer: _row(report, layer).bn_dead_units for layer in LAYERS} == {
        "act1": 0, "conv2": 0}
    assert not _bn_notes(report)


def test_keras3_model_export_is_read_too(tmp_path: Path) -> None:
    _load(TRAINED / "bn_dead.keras").export(str(tmp_path / "exported"), verbose=False)
    report = audit_path(str(tmp_path / "exported"), Options())
    file = audit_file(str(TRAINED / "bn_dead.keras"), Options(no_probe=True))
    assert _judged(report) == _judged(file)
    assert set(_judged(report)) == set(LAYERS)


@pytest.mark.parametrize(("case", "kwargs"), [
    ("dense", {}),  # Dense adds its bias with AddV2 before the BN
    ("no_center", {"center": False}),
    ("no_scale", {"scale": False}),
    ("relu6", {"activation": "relu6", "beta": 12.0}),
    ("all", {"dead": (0, 1, 2, 3, 4)}),  # every channel: an error
])
def test_dense_bn_configurations_match_the_keras_file(
        tmp_path: Path, case: str, kwargs: dict[str, Any]) -> None:
    path, model, _ = _variant(tmp_path, case, **kwargs)
    report = audit_path(_saved(model, tmp_path / "saved"), Options())
    assert _judged(report) == _judged(audit_file(str(path), Options(no_probe=True)))
    assert set(_judged(report)) == {"act"}


def test_a_bn_before_a_leaky_relu_is_a_note(tmp_path: Path) -> None:
    _, model, _ = _variant(tmp_path, "leaky", activation="leaky_relu")
    report = audit_path(_saved(model, tmp_path / "saved"), Options())
    assert not _judged(report)
    assert _bn_notes(report) == [
        "BatchNormalization bn: its serving graph shows it neither between a linear "
        "Conv/Dense and a Relu/Relu6 nor after a Relu/Relu6: GA103 not judged"]


def test_moving_statistics_read_in_another_form_are_a_note(tmp_path: Path) -> None:
    """A module that standardises by hand with variables named like a BN layer's: the graph
    reads them, but in no form GA103 reads, so it says so instead of guessing."""
    import tensorflow as tf

    class Standardise(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="standardise")
            self.kernel = tf.Variable(tf.ones((4, 3)), name="dense/kernel")
            self.mean = tf.Variable(tf.zeros(3), name="bn/moving_mean", trainable=False)
            self.variance = tf.Variable(tf.ones(3), name="bn/moving_variance", trainable=False)

        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32, name="features")])
        def serve(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
            h = (tf.matmul(features, self.kernel) - self.mean) / tf.sqrt(self.variance)
            return {"out": tf.nn.relu(h)}

    module = Standardise()
    tf.saved_model.save(module, str(tmp_path / "saved"),
                        signatures={"serving_default": module.serve})
    report = audit_path(str(tmp_path / "saved"), Options())
    assert not _judged(report)
    (note,) = _bn_notes(report)
    assert note.startswith("BatchNormalization bn: the serving graph computes no batch "
                           "normalisation from its variables in a form GA103 reads")
    assert note.endswith(": GA103 not judged")

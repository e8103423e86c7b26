"""The probe: streamed statistics, eager and traced steps agree, memory is flat."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import keras
import pytest

from gradaudit.model.keras_graph import KerasModel
from gradaudit.options import Options
from gradaudit.probe.random_inputs import random_batches
from gradaudit.probe.tape import probe
from tests.conftest import FIXTURES, PEAK_RSS

PEAK = PEAK_RSS + """
import json, sys
from gradaudit.pipeline import audit_paths
from gradaudit.options import Options
run = audit_paths([sys.argv[1]], Options(samples=int(sys.argv[2]), all_samples=True))
assert not run.errors, run.errors
print(json.dumps({"samples": run.models[0].samples, "peak_mb": peak_rss() / 2**20}))
"""


def _peak(path: str, samples: int) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-c", PEAK, path, str(samples)],
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_samples() -> None:
    path = str(FIXTURES / "frozen_base.keras")
    small, large = _peak(path, 64), _peak(path, 256)
    assert (small["samples"], large["samples"]) == (64, 256)
    assert large["peak_mb"] < small["peak_mb"] * 1.10, (small, large)


def _probe(path: str, compiled: bool):
    model = KerasModel(keras.saving.load_model(FIXTURES / path, compile=False))
    batches = random_batches(model.input_specs(), 96, 32, seed=0)
    return probe(model, batches, Options(samples=96, all_samples=True), compiled=compiled)


@pytest.mark.parametrize("path", ["lstm_text.keras", "dead_relu.keras", "stop_gradient.keras"])
def test_traced_and_eager_steps_agree(path: str) -> None:
    eager, traced = _probe(path, compiled=False), _probe(path, compiled=True)
    assert eager.samples == traced.samples == 96
    for (variable, a), (_, b) in zip(eager.variables, traced.variables, strict=False):
        flags = (a.connected, a.nonzero, a.finite), (b.connected, b.nonzero, b.finite)
        assert flags[0] == flags[1], variable.path
        if a.rms is not None:
            assert b.rms == pytest.approx(a.rms, rel=1e-3, abs=1e-9)
    assert eager.units.keys() == traced.units.keys()
    for name, stats in eager.units.items():
        assert stats.dead_units() == traced.units[name].dead_units()
        assert stats.observations == traced.units[name].observations


def test_probe_leaves_the_model_as_it_found_it() -> None:
    model = keras.saving.load_model(FIXTURES / "batchnorm.keras", compile=False)
    before = [v.numpy().copy() for v in model.weights]
    audited = KerasModel(model)
    probe(audited, random_batches(audited.input_specs(), 64, 32, seed=0), Options(samples=64))
    assert all((a == b.numpy()).all() for a, b in zip(before, model.weights, strict=False))
    assert audited.layers  # the walk did not change the model either


@pytest.mark.parametrize("path", ["deep_sigmoid.keras", "healthy_mlp.keras", "batchnorm.keras"])
def test_gradient_rms_and_verdicts_do_not_depend_on_the_number_of_samples(path: str) -> None:
    """The RMS of each batch's gradient, not of the running mean (which shrinks as
    1/√samples where per-sample gradients disagree): early stop changes no verdict."""
    import gradaudit

    few = gradaudit.audit(str(FIXTURES / path), samples=64)
    many = gradaudit.audit(str(FIXTURES / path), samples=512, batch_size=64)
    assert {(f.code, f.layer) for f in few.findings} == {(f.code, f.layer) for f in many.findings}
    for a, b in zip(few.layers, many.layers, strict=True):
        if a.grad_rms:
            assert b.grad_rms == pytest.approx(a.grad_rms, rel=0.5), a.name


def _partly_dead() -> KerasModel:
    """Four of sixteen units never fire; every variable still gets a gradient."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="x")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden))
    kernel, bias = model.get_layer("hidden").get_weights()
    bias[:4] = -100.0
    model.get_layer("hidden").set_weights([kernel, bias])
    return KerasModel(model)


def test_once_the_gradients_are_decided_later_batches_run_forward_only() -> None:
    """A never-active unit needs every sample; the gradients said all they can after
    the first batch, so the gradient statistics are the first batch's."""
    model = _partly_dead()
    specs = model.input_specs()
    probed = probe(model, random_batches(specs, 256, 64, seed=0), Options(samples=256))
    first = probe(model, random_batches(specs, 64, 64, seed=0), Options(samples=64))
    every = probe(model, random_batches(specs, 256, 64, seed=0),
                  Options(samples=256, all_samples=True))
    assert probed.samples == every.samples == 256
    assert probed.units["hidden"].dead_units() == every.units["hidden"].dead_units() == 4
    assert probed.units["hidden"].observations == every.units["hidden"].observations == 256
    for (variable, ours), (_, batch), (_, full) in zip(probed.variables, first.variables,
                                                       every.variables, strict=True):
        assert ours.rms == pytest.approx(batch.rms, rel=1e-6)
        assert ours.nonzero and ours.finite
        if variable.path == "hidden/kernel":  # with every sample, every batch's gradient
            assert ours.rms != pytest.approx(full.rms, rel=1e-3)


def test_units_fired_from_extremes_match_the_value_by_value_rule() -> None:
    """The per-unit ReLU verdict read from each column's largest value, with the exact
    check on the columns it leaves open, answers as the rule does value by value: zeros,
    values at relu6's 6, NaN, ±inf, negatives (a ReLU with a negative threshold), empty."""
    import numpy as np
    import tensorflow as tf

    from gradaudit.probe.tape import _fired

    rng = np.random.default_rng(0)
    cases = [np.zeros((0, 3), np.float32)]
    for rows in (1, 7, 300):
        values = np.clip(rng.standard_normal((rows, 12)).astype(np.float32) * 4, 0, 6)
        values[:, 0] = 0.0  # never fired
        values[:, 1] = 6.0  # always at relu6's bound
        values[:, 2] = np.where(np.arange(rows) % 2, 6.0, 0.0)  # only 0 and 6
        values[0, 3] = np.nan
        values[:, 4] = np.nan
        values[-1, 5] = np.inf
        values[:, 6] = -0.5  # a negative output is non-zero
        values[:, 7] = np.where(np.arange(rows) % 2, np.nan, 0.0)
        cases.append(values)
    for values in cases:
        for high in (6.0, math.inf):
            expected = np.any((values != 0) & (values < high), axis=0)
            assert _fired(tf.constant(values), high).numpy().tolist() == expected.tolist()

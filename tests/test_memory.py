"""The memory budget (--max-memory): the batch is chosen so that a probe step fits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradaudit.errors import AuditError
from gradaudit.probe.memory import (
    StepEstimate,
    choose_batch,
    default_budget,
    parse_size,
    resident_bytes,
)
from tests.conftest import FIXTURES, PEAK_RSS, ROOT, run_cli, run_cli_fresh, run_fresh

SIDE, FILTERS = 96, 16


@pytest.mark.parametrize(("text", "size"), [
    ("4GiB", 4 * 2**30), ("4G", 4 * 2**30), ("4gb", 4 * 2**30), ("512MiB", 512 * 2**20),
    ("1.5GB", int(1.5 * 2**30)), ("2048", 2048), (" 64 k ", 64 * 2**10), ("1T", 2**40),
])
def test_sizes_parse_in_binary_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GiB", "4XB", "-1G", "four", "0", "1e9"])
def test_a_size_that_does_not_parse_names_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="512MiB, 4GiB"):
        parse_size(text)


def test_the_default_budget_is_at_most_4_gib_and_a_quarter_of_memory() -> None:
    assert 0 < default_budget() <= 4 * 2**30
    assert resident_bytes() > 0  # this process holds something


def test_the_batch_is_the_largest_that_fits_never_above_the_one_asked_for() -> None:
    estimate = StepEstimate(per_sample=10, fixed=100)
    assert choose_batch(estimate, 64, budget=10_000, held=1_000).batch_size == 64
    fitted = choose_batch(estimate, 64, budget=1_355, held=1_000)
    assert fitted.batch_size == 25  # 1,000 held + 100 fixed + 25 × 10 = 1,350 ≤ 1,355
    assert fitted.note is not None and fitted.note.startswith("batches of 25, not 64:")
    with pytest.raises(AuditError, match="one sample needs about"):
        choose_batch(estimate, 64, budget=1_105, held=1_000)


def _conv_model(path: Path) -> Path:
    """Large activations per sample (3 × 96 × 96 × 16 values, 3.6 MB estimated), four
    units dead."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((SIDE, SIDE, 3), name="image")
    x = image
    for i in range(3):
        x = keras.layers.Conv2D(FILTERS, 3, padding="same", activation="relu",
                                name=f"conv_{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(image, keras.layers.Dense(4, name="out")(x))
    kernel, bias = model.get_layer("conv_2").get_weights()
    bias[:4] = -100.0  # four of sixteen filters never fire
    model.get_layer("conv_2").set_weights([kernel, bias])
    model.save(path)
    return path


@pytest.fixture(scope="module")
def conv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _conv_model(tmp_path_factory.mktemp("memory") / "conv.keras")


# In a fresh process, where what the process holds moves by a few MB between the
# budget's reckoning and the pipeline's, not by the hundreds a long test run frees.
_SMALLER_BATCH = """
import json
import gradaudit
from gradaudit.probe.memory import StepEstimate, resident_bytes
from gradaudit.runtime import import_tensorflow
import_tensorflow()
full = gradaudit.audit({path!r}{extra})
per_sample = StepEstimate.of({elements}, {input_bytes}, 0).per_sample
small = gradaudit.audit({path!r}{extra}, max_memory=resident_bytes() + 20 * per_sample)
print("RESULT", json.dumps([json.loads(full.to_json()), json.loads(small.to_json())]))
"""


def _full_and_small(path: Path, extra: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    fresh = run_fresh(_SMALLER_BATCH.format(
        path=str(path), extra=extra, elements=3 * SIDE * SIDE * FILTERS,
        input_bytes=4 * SIDE * SIDE * 3))
    line = next(ln for ln in fresh.stdout.splitlines() if ln.startswith("RESULT "))
    full, small = (run["models"][0] for run in json.loads(line.removeprefix("RESULT ")))
    return full, small


def test_a_step_over_the_budget_gets_a_smaller_batch_and_the_same_findings(
        conv_file: Path) -> None:
    full, small = _full_and_small(conv_file)
    assert full["summary"]["batch_size"] == 64
    assert not any("batches of" in note for note in full["notes"])
    batch = small["summary"]["batch_size"]
    assert 8 <= batch < 64
    note = next(n for n in small["notes"] if n.startswith("batches of"))
    assert f"batches of {batch}, not 64" in note and "--max-memory" in note
    assert small["summary"]["samples"] == full["summary"]["samples"] == 256
    assert small["findings"] == full["findings"]
    dead = {row["name"]: row["dead_units"] for row in small["layers"]}
    assert dead["conv_2"] == 4 == {row["name"]: row["dead_units"]
                                   for row in full["layers"]}["conv_2"]


def test_a_model_of_which_one_sample_does_not_fit_is_refused(conv_file: Path) -> None:
    result = run_cli("audit", str(conv_file), "--max-memory", "1MiB")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()[:1]
    assert "a probe step of one sample needs about" in line
    assert "over --max-memory 1.0 MiB" in line


def test_the_report_says_the_batch_size_used() -> None:
    result = run_cli("audit", str(FIXTURES / "healthy_mlp.keras"), "-f", "json",
                     "--batch-size", "16", "--samples", "40")
    summary = json.loads(result.stdout)["models"][0]["summary"]
    assert summary["batch_size"] == 16
    result = run_cli("audit", str(FIXTURES / "healthy_mlp.keras"), "-f", "json",
                     "--samples", "8", "--no-probe")
    assert json.loads(result.stdout)["models"][0]["summary"]["batch_size"] is None


def test_supplied_inputs_are_batched_inside_the_budget(conv_file: Path, tmp_path: Path) -> None:
    rows = np.random.default_rng(0).standard_normal((96, SIDE, SIDE, 3)).astype("float32")
    np.save(tmp_path / "rows.npy", rows)
    full, small = _full_and_small(conv_file, extra=f", {str(tmp_path / 'rows.npy')!r}")
    assert full["summary"]["batch_size"] == 64 and 8 <= small["summary"]["batch_size"] < 64
    assert small["summary"]["samples"] == full["summary"]["samples"] == 96
    assert small["findings"] == full["findings"]


@pytest.mark.parametrize("value", ["lots", "0", "-5G"])
def test_a_bad_max_memory_is_exit_2_before_tensorflow(value: str) -> None:
    fresh = run_cli_fresh("audit", str(FIXTURES / "healthy_mlp.keras"), "--max-memory", value)
    assert "EXIT 2" in fresh.stdout
    assert f"--max-memory: bad value {value!r}: expected a number of bytes" in fresh.stderr
    assert fresh.imported == []


def test_max_memory_is_a_config_key(tmp_path: Path, conv_file: Path) -> None:
    config = tmp_path / "gradaudit.toml"
    config.write_text('max_memory = "1MiB"\n')
    result = run_cli("audit", str(conv_file), "--config", str(config))
    assert result.exit_code == 2 and "over --max-memory 1.0 MiB" in result.stderr


def test_a_functional_model_is_counted_from_the_shapes_its_graph_records(
        conv_file: Path) -> None:
    from gradaudit.load.loader import load_model

    model = load_model(str(conv_file)).model
    # input + three convolutions + pooling + output, one sample
    expected = SIDE * SIDE * 3 + 3 * SIDE * SIDE * FILTERS + FILTERS + 4
    assert model.output_elements(model.input_specs()) == expected
    keras2 = load_model(str(FIXTURES / "keras2_td_dead.h5")).model  # tf_keras's graph
    assert (keras2.output_elements(keras2.input_specs()) or 0) > 0
    unknown = load_model(str(FIXTURES / "lstm_text.keras")).model  # a None axis: run it
    assert unknown.output_elements(unknown.input_specs()) is None


# Peak RSS of one probe step at a batch size, in a fresh process (its own peak).
_PEAK = PEAK_RSS + """
import json, sys
from gradaudit.options import Options
from gradaudit.pipeline import audit_paths
batch = int(sys.argv[2])
run = audit_paths([sys.argv[1]], Options(samples=batch, batch_size=batch, max_memory=2**40))
assert not run.errors, run.errors
print(json.dumps(peak_rss()))
"""


def _peak_bytes(path: Path, batch: int) -> int:
    proc = subprocess.run([sys.executable, "-c", _PEAK, str(path), str(batch)],
                          capture_output=True, text=True, timeout=600, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return int(proc.stdout.strip().splitlines()[-1])


def _sequence_models(directory: Path) -> dict[str, Path]:
    import keras

    keras.utils.set_random_seed(0)
    tokens = keras.Input((400,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(2000, 32)(tokens)
    x = keras.layers.LSTM(256, name="lstm")(x)
    recurrent = keras.Model(tokens, keras.layers.Dense(3, name="out")(x))
    tokens = keras.Input((256,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(2000, 32)(tokens)
    x = keras.layers.MultiHeadAttention(8, 16, name="attention")(x, x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    attention = keras.Model(tokens, keras.layers.Dense(3, name="out")(x))
    paths = {"recurrent": directory / "lstm.keras", "attention": directory / "mha.keras"}
    recurrent.save(paths["recurrent"])
    attention.save(paths["attention"])
    return paths


@pytest.mark.parametrize("kind", ["recurrent", "attention"])
def test_what_recurrent_and_attention_layers_keep_is_in_the_estimate(
        kind: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Their outputs are a small part of a step (an LSTM's gates at every step, the
    attention scores are not outputs): the estimate must still cover the measured
    growth of a step per sample, without being wildly over."""
    from gradaudit.load.loader import load_model

    path = _sequence_models(tmp_path_factory.mktemp(kind))[kind]
    model = load_model(str(path)).model
    elements = model.output_elements(model.input_specs())
    assert elements is not None
    estimated = StepEstimate.of(elements, 0, 0).per_sample
    small, large = _peak_bytes(path, 8), _peak_bytes(path, 64)
    measured = (large - small) / 56
    assert measured < estimated < 3 * measured, (small, large, estimated)

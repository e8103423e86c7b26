"""The training state read from trained files: optimizer slots mapped to variables,
reduced per unit, and the compile config, without TensorFlow.

Tiny models are trained here for three steps with each supported optimizer (Keras 3
and tf_keras) and saved as ``.keras`` and ``.h5``; the expected mapping is the
trained model's own ``trainable_variables``. A branch cut by ``stop_gradient``
never gets a gradient, so its slots stay exactly zero.
"""

from __future__ import annotations

import io
import math
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from gradaudit.history.training_state import TrainingState, read_training_state
from tests.conftest import run_fresh
from tests.corpus.make_corpus import Member, members_of, write_zip

STEPS = 3
BATCH = 8
pytestmark = pytest.mark.filterwarnings(
    "ignore:Gradients do not exist:UserWarning",  # the cut branch, on purpose
    "ignore:You are saving your model as an HDF5 file:UserWarning")


def _keras() -> Any:
    from gradaudit.runtime import import_tensorflow

    import_tensorflow()
    import keras

    return keras


def _k3_model(keras: Any) -> Any:
    """features → encoder/enc_d → bn → (frozen, cut | stop_gradient, live) → merge → out."""
    layers = keras.layers
    inputs = keras.Input((6,), name="features")
    encoder = keras.Sequential([keras.Input((6,)), layers.Dense(5, activation="relu",
                                                                name="enc_d")], name="encoder")
    hidden = layers.BatchNormalization(name="bn")(encoder(inputs))
    frozen = layers.Dense(4, name="frozen", trainable=False)(hidden)
    cut = keras.ops.stop_gradient(layers.Dense(4, name="cut")(hidden))
    live = layers.Dense(4, activation="relu", name="live")(hidden)
    merged = layers.Add(name="merge")([frozen, cut, live])
    return keras.Model(inputs, layers.Dense(1, name="out")(merged), name="tiny")


def _data(features: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(STEPS * BATCH, features)).astype("float32"),
            rng.normal(size=(STEPS * BATCH, 1)).astype("float32"))


def _train(model: Any, x: np.ndarray, y: np.ndarray) -> None:
    for step in range(STEPS):
        model.train_on_batch(x[step * BATCH : (step + 1) * BATCH],
                             y[step * BATCH : (step + 1) * BATCH])


KERAS3 = {  # id → (optimizer factory, class read back, learning rate)
    "adam": (lambda k: k.optimizers.Adam(0.01), "Adam", 0.01),
    "adamw": (lambda k: k.optimizers.AdamW(0.01), "AdamW", 0.01),
    "nadam": (lambda k: k.optimizers.Nadam(0.01), "Nadam", 0.01),
    "adamax": (lambda k: k.optimizers.Adamax(0.01), "Adamax", 0.01),
    "rmsprop": (lambda k: k.optimizers.RMSprop(0.01), "RMSprop", 0.01),
    "rmsprop_momentum": (lambda k: k.optimizers.RMSprop(0.01, momentum=0.9), "RMSprop", 0.01),
    "rmsprop_centered": (lambda k: k.optimizers.RMSprop(0.01, centered=True), "RMSprop", 0.01),
    "sgd_momentum": (lambda k: k.optimizers.SGD(0.01, momentum=0.9), "SGD", 0.01),
    "adagrad": (lambda k: k.optimizers.Adagrad(0.01), "Adagrad", 0.01),
    "lion": (lambda k: k.optimizers.Lion(0.001), "Lion", 0.001),
    "loss_scale": (lambda k: k.optimizers.LossScaleOptimizer(k.optimizers.Adam(0.01)),
                   "Adam", 0.01),
}


@pytest.fixture(scope="module")
def keras3_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each optimizer's trained model saved as .keras and .h5, with its expected mapping."""
    keras = _keras()
    directory = tmp_path_factory.mktemp("keras3_trained")
    x, y = _data()
    found = {}
    for key, (factory, _, _) in KERAS3.items():
        keras.utils.set_random_seed(0)
        model = _k3_model(keras)
        model.compile(factory(keras), "mse", run_eagerly=True)  # no tracing: 3 steps
        _train(model, x, y)
        for ext in ("keras", "h5"):
            model.save(directory / f"{key}.{ext}")
        found[key] = [(v.path.rpartition("/")[0], v.path.rpartition("/")[2], tuple(v.shape))
                      for v in model.trainable_variables]
    return {"dir": directory, "expected": found}


def _assert_read(state: TrainingState, expected: list[tuple[str, str, tuple[int, ...]]],
                 name: str, rate: float, notes: tuple[str, ...] = ()) -> None:
    assert state.notes == notes
    assert state.optimizer == name
    assert state.iterations == STEPS
    assert state.learning_rate == pytest.approx(rate, rel=1e-6)
    assert [(v.layer, v.variable, v.shape) for v in state.variables] == expected
    assert {v.layer: v.nonzero for v in state.variables} == {
        layer: layer != "cut" for layer, _, _ in expected}
    assert all(v.finite for v in state.variables)
    for v in state.variables:
        if name == "Adagrad":
            assert v.activity is None
        else:
            assert v.activity is not None and v.activity.shape == (v.shape[-1],)
            assert (v.activity == 0).all() == (v.layer == "cut")


@pytest.mark.parametrize("ext", ["keras", "h5"])
@pytest.mark.parametrize("key", list(KERAS3))
def test_keras3_slots_map_to_every_trainable_variable(keras3_files: dict[str, Any], key: str,
                                                      ext: str) -> None:
    _, name, rate = KERAS3[key]
    state = read_training_state(str(keras3_files["dir"] / f"{key}.{ext}"), ext)
    _assert_read(state, keras3_files["expected"][key], name, rate)


def test_slot_statistics_follow_each_optimizers_update_rule(
        keras3_files: dict[str, Any]) -> None:
    """decay, relative and grad_rms as VariableState documents them, from the config."""
    expected = {"adam": (0.9 / math.sqrt(0.999), False, True),
                "adamax": (0.9 / 0.999, False, False),
                "rmsprop": (math.sqrt(0.9), True, True),
                "sgd_momentum": (0.9, True, False), "lion": (0.99, True, False),
                "adagrad": (None, False, True)}
    for key, (decay, relative, has_rms) in expected.items():
        state = read_training_state(str(keras3_files["dir"] / f"{key}.keras"), "keras")
        for v in state.variables:
            assert v.decay == pytest.approx(decay) if decay else v.decay is None
            assert v.relative is relative
            assert (v.grad_rms is not None) is has_rms, (key, v)
            if has_rms:
                assert v.grad_rms == 0.0 if v.layer == "cut" else v.grad_rms > 0


# --- tf_keras (Keras 2) .h5 ---------------------------------------------------------------

def _tf_keras_model(tf_keras: Any, cut: bool = True) -> Any:
    import tensorflow as tf

    layers = tf_keras.layers
    inputs = tf_keras.Input((6,), name="features")
    encoder = tf_keras.Sequential([layers.Dense(5, activation="relu", name="enc_d",
                                                input_shape=(6,))], name="encoder")
    hidden = layers.BatchNormalization(name="bn")(encoder(inputs))
    frozen = layers.Dense(4, name="frozen", trainable=False)(hidden)
    branch = layers.Dense(4, name="cut")(hidden)
    branch = tf.stop_gradient(branch) if cut else branch
    live = layers.Dense(4, activation="relu", name="live")(hidden)
    merged = layers.Add(name="merge")([frozen, branch, live])
    return tf_keras.Model(inputs, layers.Dense(1, name="out")(merged), name="tiny")


TF_KERAS = {  # id → (optimizer factory, class read back)
    "adam": (lambda k: k.optimizers.Adam(0.01), "Adam"),
    "rmsprop": (lambda k: k.optimizers.RMSprop(0.01), "RMSprop"),
    "legacy_adam": (lambda k: k.optimizers.legacy.Adam(0.01), "Adam"),
    "legacy_rmsprop": (lambda k: k.optimizers.legacy.RMSprop(0.01, momentum=0.5,
                                                             centered=True), "RMSprop"),
}
UNCUT = ("legacy_adam", "legacy_rmsprop")
"""Also trained without the stop_gradient (``uncut_…``): every variable has slots, as
Keras ≤ 2.3 made them for every trainable variable."""


@pytest.fixture(scope="module")
def tf_keras_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from gradaudit.load import keras2

    tf_keras = keras2.package()
    directory = tmp_path_factory.mktemp("tf_keras_trained")
    x, y = _data()
    expected = {}
    for key, cut in [*((key, True) for key in TF_KERAS), *((key, False) for key in UNCUT)]:
        tf_keras.utils.set_random_seed(0)
        model = _tf_keras_model(tf_keras, cut)
        model.compile(TF_KERAS[key][0](tf_keras), "mse", run_eagerly=True)
        _train(model, x, y)
        key = key if cut else f"uncut_{key}"
        model.save(directory / f"{key}.h5")
        expected[key] = [
            ("encoder/" * v.name.startswith("enc_d") + v.name.split("/")[0],
             v.name.split("/")[-1].removesuffix(":0"), tuple(v.shape))
            for v in model.trainable_variables]
    return {"dir": directory, "expected": expected}


@pytest.mark.parametrize("key", list(TF_KERAS))
def test_tf_keras_slots_map_by_name(tf_keras_files: dict[str, Any], key: str) -> None:
    """tf_keras's legacy optimizers make no slots for a variable without gradient:
    it is read as never updated, as Keras 3's zero slots are."""
    state = read_training_state(str(tf_keras_files["dir"] / f"{key}.h5"), "h5")
    notes = ("no optimizer slots for cut/kernel, cut/bias: a legacy optimizer makes none for a "
             "variable that never got a gradient, so they are taken as never updated",)
    _assert_read(state, tf_keras_files["expected"][key], TF_KERAS[key][1], 0.01,
                 notes if key.startswith("legacy") else ())


def _renamed(source: Path, path: Path, rename: Any, swap: tuple[int, int] = (0, 0)) -> Path:
    """A copy whose optimizer_weights are renamed (``rename(index, name)``; None drops it),
    and the values at the two positions of ``swap`` exchanged."""
    shutil.copy(source, path)
    with h5py.File(path, "r+") as handle:
        old = handle["optimizer_weights"]
        names = [n.decode() if isinstance(n, bytes) else n for n in old.attrs["weight_names"]]
        values = [old[name][()] for name in names]
        values[swap[0]], values[swap[1]] = values[swap[1]], values[swap[0]]
        del handle["optimizer_weights"]
        new = handle.create_group("optimizer_weights")
        kept = []
        for index, (name, value) in enumerate(zip(names, values, strict=True)):
            renamed = rename(index, name)
            if renamed is not None:
                new.create_dataset(renamed, data=value)
                kept.append(renamed.encode())
        new.attrs["weight_names"] = kept
    return path


@pytest.mark.parametrize(("key", "rename"), [
    # Keras 2.0.5: no variable name at all; iterations first, then every m, every v.
    ("legacy_adam", lambda i, name: "Adam/iterations:0" if i == 0 else f"Variable_{100 + i}:0"),
    # Keras 2.2: training_1/RMSprop/accumulator_0_1:0, no iteration counter kept.
    ("legacy_rmsprop", lambda i, name: None if i == 0 else
     f"training_1/RMSprop/{name.split('/')[-1].removesuffix(':0')}_{i}_1:0"),
])
def test_unnamed_slots_map_by_order_and_shape(tf_keras_files: dict[str, Any], tmp_path: Path,
                                              key: str, rename: Any) -> None:
    source = tf_keras_files["dir"] / f"uncut_{key}.h5"
    state = read_training_state(str(_renamed(source, tmp_path / f"{key}.h5", rename)), "h5")
    named = read_training_state(str(source), "h5")
    assert len(named.variables) == 10 and named.notes == ()
    assert [(v.layer, v.variable, v.shape, v.nonzero) for v in state.variables] == [
        (v.layer, v.variable, v.shape, v.nonzero) for v in named.variables]
    for by_order, by_name in zip(state.variables, named.variables, strict=True):
        assert by_order.activity is not None and by_name.activity is not None
        np.testing.assert_array_equal(by_order.activity, by_name.activity)
    assert state.iterations == (STEPS if key == "legacy_adam" else None)


def test_unnamed_slots_of_some_variables_only_are_not_guessed(
        tf_keras_files: dict[str, Any], tmp_path: Path) -> None:
    """Without names, which variables lack slots cannot be told: a note, no mapping."""
    path = _renamed(tf_keras_files["dir"] / "legacy_adam.h5", tmp_path / "cut.h5",
                    lambda i, name: f"Variable_{i}:0")
    state = read_training_state(str(path), "h5")
    assert state.variables == () and state.iterations is None
    assert state.notes[-1] == ("the optimizer state holds 17 slot arrays, but the model's 10 "
                               "trainable variables need 2 each (20): the slots are not mapped")


def test_unnamed_slots_out_of_order_are_not_mapped(tf_keras_files: dict[str, Any],
                                                   tmp_path: Path) -> None:
    """Unnamed slots whose count fits but whose shapes contradict the model: a note."""
    source = tf_keras_files["dir"] / "uncut_legacy_adam.h5"
    with h5py.File(source) as handle:
        count = len(handle["optimizer_weights"].attrs["weight_names"])
    # The m slots of enc_d's kernel and bias change places: 21 arrays as expected.
    path = _renamed(source, tmp_path / "swapped.h5", lambda i, name: f"Variable_{i}:0",
                    swap=(1, 2))
    state = read_training_state(str(path), "h5")
    assert count == 21 and state.variables == ()
    assert state.notes == ("the optimizer state names no iteration count",
                           "the optimizer slots of trainable variable 1 have different shapes "
                           "((5,), (6, 5)): the slots are not mapped")


# --- never trained, no optimizer state --------------------------------------------------------

@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keras = _keras()
    keras.utils.set_random_seed(0)
    model = _k3_model(keras)
    model.compile(keras.optimizers.Adam(0.01), "mse")
    path = tmp_path_factory.mktemp("untrained") / "untrained.keras"
    model.save(path)
    model.save(path.with_suffix(".h5"))
    return path


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_compiled_but_never_trained(untrained: Path, ext: str) -> None:
    state = read_training_state(str(untrained.with_suffix(f".{ext}")), ext)
    assert (state.optimizer, state.iterations, state.variables, state.notes) == (
        "Adam", 0, (), ())
    assert state.learning_rate == pytest.approx(0.01)


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_no_optimizer_group_is_a_note(keras3_files: dict[str, Any], tmp_path: Path,
                                      ext: str) -> None:
    source = keras3_files["dir"] / f"adam.{ext}"
    path = tmp_path / f"adam.{ext}"
    if ext == "keras":
        members = {m.name: m for m in members_of(source)}
        buffer = io.BytesIO(members["model.weights.h5"].data)
        with h5py.File(buffer, "r+") as handle:
            del handle["optimizer"]
        members["model.weights.h5"] = Member("model.weights.h5", buffer.getvalue())
        write_zip(path, list(members.values()))
    else:
        shutil.copy(source, path)
        with h5py.File(path, "r+") as handle:
            del handle["optimizer_weights"]
    state = read_training_state(str(path), ext)
    assert state.optimizer is None and state.iterations is None and state.variables == ()
    assert state.notes == ("compiled with Adam, but the file holds no optimizer state "
                           "(never trained, or saved without it)",)
    assert state.compile is not None and state.optimizer_config["beta_1"] == 0.9


def test_not_a_keras_or_h5_file_is_a_note(tmp_path: Path) -> None:
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    assert read_training_state(str(text), "keras").notes[0].startswith(
        "the training state is not read")
    assert read_training_state(str(tmp_path), "savedmodel").notes == (
        "the optimizer state of a SavedModel is not read",)


def test_reading_imports_no_tensorflow(keras3_files: dict[str, Any]) -> None:
    path = keras3_files["dir"] / "adam.keras"
    run = run_fresh("from gradaudit.history.training_state import read_training_state\n"
                    f"print(len(read_training_state({str(path)!r}, 'keras').variables))")
    assert run.imported == [] and "10" in run.stdout.splitlines()


# --- compile config and heads -------------------------------------------------------------------

def test_compile_config_of_a_multi_output_model(tmp_path: Path) -> None:
    keras = _keras()
    layers = keras.layers
    inputs = keras.Input((5,), name="features")
    hidden = layers.Dense(4, name="hidden")(inputs)
    probs = layers.Activation("softmax", name="probs")(layers.Dense(3, name="logits")(hidden))
    decoder = keras.Sequential([keras.Input((4,)), layers.Dense(2, activation="sigmoid",
                                                                name="flag")], name="decoder")
    model = keras.Model(inputs, [probs, decoder(hidden), layers.Dense(1, name="reg")(hidden)])
    model.compile("adam", loss={"probs": keras.losses.CategoricalCrossentropy(from_logits=True),
                                "decoder": "binary_crossentropy"},
                  loss_weights={"probs": 1.0, "decoder": 0.5})
    for ext in ("keras", "h5"):
        model.save(tmp_path / f"multi.{ext}")
        state = read_training_state(str(tmp_path / f"multi.{ext}"), ext)
        assert state.compile is not None
        assert state.compile.losses == {"probs": "categorical_crossentropy",
                                        "decoder": "binary_crossentropy", "reg": None}
        assert state.compile.from_logits == {"probs": True, "decoder": False, "reg": False}
        assert state.compile.loss_weights == {"probs": 1.0, "decoder": 0.5, "reg": 1.0}
        assert [(h.output, h.layer, h.activation, h.units) for h in state.heads] == [
            ("probs", "probs", "softmax", 3), ("decoder", "decoder/flag", "sigmoid", 2),
            ("reg", "reg", "linear", 1)]


@pytest.mark.parametrize(("raw", "losses", "logits", "weights"), [
    ({"loss": "mse"}, {"a": "mean_squared_error", "b": "mean_squared_error"},
     {"a": False, "b": False}, {"a": 1.0, "b": 1.0}),
    ({"loss": ["MSE", {"class_name": "function", "config": "binary_crossentropy"}],
      "loss_weights": [2, 0]},
     {"a": "mean_squared_error", "b": "binary_crossentropy"}, {"a": False, "b": False},
     {"a": 2.0, "b": 0.0}),
    ({"loss": {"class_name": "SparseCategoricalCrossentropy", "config": {"from_logits": True}}},
     {"a": "sparse_categorical_crossentropy", "b": "sparse_categorical_crossentropy"},
     {"a": True, "b": True}, {"a": 1.0, "b": 1.0}),
    ({"loss": {"b": {"module": "keras.losses", "class_name": "KLDivergence", "config": {}}}},
     {"a": None, "b": "kl_divergence"}, {"a": False, "b": False}, {"a": 1.0, "b": 1.0}),
])
def test_compile_config_forms(raw: dict[str, Any], losses: dict[str, Any],
                              logits: dict[str, bool], weights: dict[str, float]) -> None:
    from gradaudit.history.compile_info import compile_config

    found, notes = compile_config(raw, ["a", "b"])
    assert notes == [] and found is not None
    assert (found.losses, found.from_logits, found.loss_weights) == (losses, logits, weights)


@pytest.mark.parametrize(("raw", "why"), [
    ([1, 2], "it is not a mapping"),
    ({"loss": ["mse"]}, "loss lists 1 entries for 2 outputs"),
    ({"loss": {"c": "mse"}}, "loss names c, not an output of the model"),
    ({"loss": 42}, "a loss is a int"),
    ({"loss": {"class_name": "BinaryCrossentropy", "config": {"from_logits": "yes"}}},
     "from_logits of loss BinaryCrossentropy is not true or false"),
    ({"loss": "mse", "loss_weights": {"a": "1"}}, "a loss weight is '1', not a number"),
    ({"loss": "mse", "loss_weights": [1.0, float("nan")]}, "a loss weight is 'nan'"),
])
def test_garbled_compile_config_is_a_note(raw: Any, why: str) -> None:
    from gradaudit.history.compile_info import compile_config

    found, notes = compile_config(raw, ["a", "b"])
    assert found is None and len(notes) == 1 and why in notes[0]


# --- the issue's measurement --------------------------------------------------------------------

def test_dead_units_of_the_issue_mlp_stand_apart_in_the_adam_moments(tmp_path: Path) -> None:
    """20 → 64 → 64 → 1 ReLU on positive features, Adam(0.05), 8 epochs (504 steps).

    Measured (Keras 3.15, CPU): first layer 57/64 units never active on the training
    data, activity (max over kernel column and bias) of those ≤ 8e-20 (median 5e-23),
    live units' median 0.19; 60 units below 1e-3. Second layer: 42 dead, activity
    ≤ 2e-5, live median 0.08, 46 below 1e-3 (units that fire on a few samples only).
    """
    keras = _keras()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2000, 20)).astype("float32")
    score = x @ rng.normal(size=20)
    y = (score > np.median(score)).astype("float32")
    layers = keras.layers
    model = keras.Sequential([keras.Input((20,), name="features"),
                              layers.Dense(64, activation="relu", name="h1"),
                              layers.Dense(64, activation="relu", name="h2"),
                              layers.Dense(1, activation="sigmoid", name="out")])
    model.compile(keras.optimizers.Adam(0.05), "binary_crossentropy")
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    model.save(tmp_path / "mlp.keras")
    state = read_training_state(str(tmp_path / "mlp.keras"), "keras")
    assert state.iterations == 504 and state.notes == ()
    by_name = {(v.layer, v.variable): v for v in state.variables}
    hidden = x
    for name in ("h1", "h2"):
        kernel, bias = model.get_layer(name).get_weights()
        hidden = np.maximum(hidden @ kernel + bias, 0)
        dead = (hidden <= 0).all(axis=0)
        kernel_activity = by_name[name, "kernel"].activity
        bias_activity = by_name[name, "bias"].activity
        assert kernel_activity is not None and bias_activity is not None
        activity = np.maximum(kernel_activity, bias_activity)
        quiet = int((activity < 1e-3).sum())
        assert dead.sum() >= 30 and (activity[dead] < 1e-3).all()
        assert np.median(activity[~dead]) > 0.05
        assert dead.sum() <= quiet <= dead.sum() + 6


# --- layer names as the report gives them ---------------------------------------------------------

def _mixed_model(keras: Any) -> Any:
    """Embedding, Conv1D, LayerNormalization, MultiHeadAttention, a Bidirectional LSTM,
    a TimeDistributed Dense and a user's layer class holding two Dense layers."""
    layers = keras.layers

    @keras.saving.register_keras_serializable("gradaudit_tests")
    class Pair(layers.Layer):  # sublayers created b first: Keras's order is b, a
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.b = layers.Dense(3, name="b")
            self.a = layers.Dense(5, name="a")

        def call(self, x: Any) -> Any:
            return self.b(self.a(x))

    tokens = keras.Input((7,), dtype="int32", name="tokens")
    x = layers.Embedding(20, 8, name="embed")(tokens)
    x = layers.Conv1D(8, 3, padding="same", name="conv")(x)
    x = layers.LayerNormalization(name="norm")(x)
    x = layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = layers.TimeDistributed(layers.Dense(6), name="td")(x)
    x = layers.Bidirectional(layers.LSTM(3), name="bi")(x)
    return keras.Model(tokens, Pair(name="pair")(x), name="mixed")


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_layer_names_are_the_reports(tmp_path: Path, ext: str) -> None:
    """Every variable's layer is the one the audit's model reports as its owner."""
    from gradaudit.model.keras_graph import KerasModel

    keras = _keras()
    keras.utils.set_random_seed(0)
    model = _mixed_model(keras)
    model.compile(keras.optimizers.Adam(0.01), "mse", run_eagerly=True)
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.integers(0, 20, (4, 7)), rng.normal(size=(4, 3)))
    model.save(tmp_path / f"mixed.{ext}")
    audited = KerasModel(model)
    expected = [(audited.owner_of(v), v.name, tuple(v.shape)) for v in model.trainable_variables]
    state = read_training_state(str(tmp_path / f"mixed.{ext}"), ext)
    assert state.notes == () and state.iterations == 1
    # A user's layer class does not record its sublayers' classes: Dense's are var0, var1
    # in a .keras file (a legacy .h5 names them).
    labels = {("pair/a", "var0"): "kernel", ("pair/a", "var1"): "bias",
              ("pair/b", "var0"): "kernel", ("pair/b", "var1"): "bias"}
    assert [(v.layer, labels.get((v.layer, v.variable), v.variable), v.shape)
            for v in state.variables] == expected
    owners = {layer.rstrip("_0123456789") for layer, _, _ in expected}  # Keras numbers names
    assert owners == {"embed", "conv", "norm", "mha", "td/dense", "bi/forward_lstm",
                      "bi/backward_lstm", "pair/a", "pair/b"}


def test_sublayers_of_a_users_class_in_an_order_the_shapes_cannot_tell(tmp_path: Path) -> None:
    """Two same-shaped Dense layers inside a user's layer: a .keras file does not say
    which slots are whose (a note, the others mapped); a legacy .h5 names them."""
    keras = _keras()
    layers = keras.layers

    @keras.saving.register_keras_serializable("gradaudit_tests")
    class Twin(layers.Layer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.b = layers.Dense(4, name="b")
            self.a = layers.Dense(4, name="a")

        def call(self, x: Any) -> Any:
            return self.b(self.a(x))

    inputs = keras.Input((4,), name="features")
    model = keras.Model(inputs, layers.Dense(1, name="out")(Twin(name="twin")(inputs)))
    model.compile(keras.optimizers.Adam(0.01), "mse", run_eagerly=True)
    model.train_on_batch(np.ones((2, 4)), np.ones((2, 1)))
    model.save(tmp_path / "twin.keras")
    model.save(tmp_path / "twin.h5")
    state = read_training_state(str(tmp_path / "twin.keras"), "keras")
    assert [v.layer for v in state.variables] == ["out", "out"]
    assert state.notes == ("the file does not record the order of the sublayers twin/a, twin/b, "
                           "and their shapes do not tell it: their optimizer slots are not mapped",)
    named = read_training_state(str(tmp_path / "twin.h5"), "h5")
    assert named.notes == ()
    assert [v.layer for v in named.variables] == ["twin/b", "twin/b", "twin/a", "twin/a", "out",
                                                  "out"]


def test_name_lists_split_into_chunks_are_read_whole(tmp_path: Path) -> None:
    """Keras splits an attribute over 64 kB into ``name0``, ``name1`` …"""
    from gradaudit.load import h5read

    with h5py.File(tmp_path / "chunks.h5", "w") as handle:
        handle.attrs["weight_names0"] = np.array([b"a/kernel:0", b"a/bias:0"])
        handle.attrs["weight_names1"] = np.array([b"b/kernel:0"])
        handle.attrs["numbers"] = np.arange(3)
        assert h5read.texts(handle, "weight_names") == ["a/kernel:0", "a/bias:0", "b/kernel:0"]
        assert h5read.texts(handle, "numbers") is None
        assert h5read.texts(handle, "missing") is None

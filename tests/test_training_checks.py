"""Training forensics (issue 13): stalled units and head/loss/optimizer findings.

The fixtures in ``fixtures/trained/`` were trained by ``fixtures/make_fixtures.py``
and saved with their optimizer. Their training state is read two ways: in memory,
from the optimizer Keras restores when it loads the file (``state_in_memory``,
which reduces the slots as ``VariableState`` says), and from the file alone by
``read_training_state`` once it exists (the ``reader`` tests, skipped until then).

The ground truth: each model's own training data, regenerated from its seed,
shows which ReLU units never activate; the share of stalled units the optimizer
state gives must match it within ``TOLERANCE``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fixtures.make_fixtures import training_data
from gradaudit.checks.training import check, history
from gradaudit.history.training_state import (
    CompileConfig,
    Head,
    TrainingState,
    VariableState,
    read_training_state,
)
from gradaudit.options import Thresholds
from gradaudit.report.catalogue import CATALOGUE
from tests.conftest import FIXTURES

TRAINED = FIXTURES / "trained"
DEFAULTS = Thresholds()
TOLERANCE = 0.2
"""|stalled fraction - never-active fraction| per layer (6 of 32 units). The two
differ by design: stalled also counts live units whose gradient was (almost) zero
in the last steps (active only where the loss is saturated, or feeding only dead
units), and misses units that died in the last ~100 steps (their slots have not
decayed yet). The fixtures, stalled - never active in h1/h2: adam +4/+2, rmsprop
-1/+2, sgd +2/-3, keras2 +5/0, healthy 0/0; 4 seeds × Adam(0.05), RMSprop(0.05),
SGD(0.4, momentum 0.9) on this MLP: within 3 units mostly, 8 at worst (SGD)."""

DYING = ["adam_dying.keras", "rmsprop_dying.keras", "sgd_dying.keras",
         "keras2_adam_dying.h5", "healthy.keras"]

EXPECTED: dict[str, set[tuple[str, str, str]]] = {
    # Trained at 40-50× the usual rate, and the stalled units agree: GA414 warns.
    "adam_dying.keras": {("GA401", "warning", "h1"), ("GA414", "warning", "adam_dying")},
    "rmsprop_dying.keras": {("GA401", "warning", "h1"), ("GA414", "warning", "rmsprop_dying")},
    "sgd_dying.keras": {("GA401", "warning", "h1"), ("GA401", "warning", "h2"),
                        ("GA414", "warning", "sgd_dying")},
    "keras2_adam_dying.h5": {("GA401", "warning", "h1"),
                             ("GA414", "warning", "keras2_adam_dying")},
    "healthy.keras": set(),
    "never_trained.keras": {("GA404", "info", "never_trained")},
    "stop_gradient.keras": {("GA403", "error", "cut")},
    "loss_weight_zero.keras": {("GA403", "error", "aux_hidden"), ("GA403", "error", "aux"),
                               ("GA413", "warning", "aux")},
    "softmax_one_unit.keras": {("GA411", "error", "out")},
    "softmax_from_logits.keras": {("GA412", "warning", "out")},
}


# --- the training data and the models, as make_fixtures.py made them ------------


def load(name: str) -> Any:
    """A trained fixture with its optimizer restored: Keras 3, or tf_keras for Keras 2."""
    path = TRAINED / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # softmax over one unit; optimizer built on load
        if path.suffix == ".h5":
            import tf_keras

            return tf_keras.models.load_model(path)
        import keras

        return keras.saving.load_model(path, compile=True, safe_mode=True)


def never_active(model: Any, layer: str) -> float:
    """The share of a ReLU layer's units that never activate on the model's training data."""
    x, _ = training_data()
    probe = type(model)(model.inputs[0], model.get_layer(layer).output)
    return float(np.mean(~(np.asarray(probe(x)) > 0).any(axis=0)))


# --- the optimizer state in memory, reduced as VariableState says ----------------

SLOTS = {  # optimizer → its slot names (Keras 3, tf_keras)
    "Adam": (("momentum", "velocity"), ("m", "v")),
    "RMSprop": (("velocity",), ("velocity",)),
    "SGD": (("momentum",), ("m",)),
}


def per_unit(values: np.ndarray) -> np.ndarray:
    """The largest value of each unit (the last axis; a scalar is one unit)."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(1) if values.ndim == 0 else values.reshape(-1, values.shape[-1]).max(0)


def reduce_slots(layer: str, label: str, optimizer: str, config: dict[str, Any],
                 slots: list[np.ndarray], steps: int) -> VariableState:
    """One variable's slots → its VariableState (the reduction the reader does)."""
    shape = tuple(slots[0].shape)
    activity: np.ndarray
    grad_rms: float | None = None
    if optimizer == "Adam":
        m, v = slots
        beta_1, beta_2 = config["beta_1"], config["beta_2"]
        activity = per_unit(np.abs(m) / (np.sqrt(v) + config["epsilon"]))
        decay, relative = beta_1 / math.sqrt(beta_2), False
        grad_rms = math.sqrt(float(np.mean(v)) / (1 - beta_2 ** steps))
    elif optimizer == "RMSprop":
        (v,) = slots
        activity, decay, relative = per_unit(np.sqrt(v)), math.sqrt(config["rho"]), True
        grad_rms = math.sqrt(float(np.mean(v)) / (1 - config["rho"] ** steps))
    else:
        (m,) = slots
        activity, decay, relative = per_unit(np.abs(m)), config["momentum"], True
    return VariableState(
        layer=layer, variable=label, shape=shape, activity=activity, decay=decay,
        relative=relative, grad_rms=grad_rms, nonzero=any(bool(np.any(s)) for s in slots),
        finite=all(bool(np.isfinite(s).all()) for s in slots))


def state_in_memory(model: Any) -> TrainingState:
    """The TrainingState of a model loaded with its optimizer, Keras 3 or tf_keras."""
    optimizer = model.optimizer
    keras2 = type(optimizer).__module__.startswith("tf_keras")
    name = type(optimizer).__name__
    config = optimizer.get_config()
    steps = int(np.asarray(optimizer.iterations))
    stored = {(v.name if keras2 else v.path): np.asarray(v) for v in optimizer.variables}
    variables = []
    for variable in model.trainable_variables:
        path = variable.name.split(":")[0] if keras2 else variable.path
        layer, label = path.rsplit("/", 1)
        keys = [f"{slot}/{path}:0" if keras2
                else f"{optimizer.name}/{path.replace('/', '_')}_{slot}"
                for slot in SLOTS[name][keras2]]
        if steps and all(key in stored for key in keys):
            variables.append(reduce_slots(layer, label, name, config,
                                          [stored[key] for key in keys], steps))
    return TrainingState(
        optimizer=name, optimizer_config=config, iterations=steps,
        learning_rate=float(config["learning_rate"]), variables=tuple(variables),
        compile=compile_config(model), heads=heads(model))


def compile_config(model: Any) -> CompileConfig:
    """Loss, from_logits and loss weight per output layer, from the model's compile config."""
    keras2 = type(model).__module__.startswith("tf_keras")
    compiled = ({"loss": getattr(model.loss, "__name__", model.loss),
                 "loss_weights": model.compiled_loss._loss_weights}
                if keras2 else model.get_compile_config())
    outputs = list(model.output_names)
    loss, weights = compiled["loss"], compiled.get("loss_weights") or {}
    weights = dict(zip(outputs, weights, strict=True)) if isinstance(weights, list) else weights
    per_output = loss if isinstance(loss, dict) and "class_name" not in loss else \
        dict.fromkeys(outputs, loss)
    losses: dict[str, str | None] = {}
    from_logits: dict[str, bool] = {}
    for output in outputs:
        entry = per_output.get(output)
        if isinstance(entry, dict):
            losses[output] = entry["class_name"]
            from_logits[output] = bool(entry["config"].get("from_logits", False))
        else:
            losses[output], from_logits[output] = entry, False
    return CompileConfig(losses=losses, from_logits=from_logits,
                         loss_weights={o: float(1.0 if weights.get(o) is None else weights[o])
                                       for o in outputs})


def heads(model: Any) -> tuple[Head, ...]:
    """The output layers: their activation and width."""
    names = compile_config(model).losses
    result = []
    for name in names:
        layer = model.get_layer(name)
        activation = getattr(layer.activation, "__name__", None)
        result.append(Head(output=name, layer=name, activation=activation, units=layer.units))
    return tuple(result)


def codes(findings: list[Any]) -> set[tuple[str, str, str]]:
    return {(f.code, str(f.severity), f.layer) for f in findings}


def model_name(name: str) -> str:
    return Path(name).stem


# --- in memory: every fixture --------------------------------------------------


@pytest.fixture(scope="module")
def in_memory() -> dict[str, TrainingState]:
    return {name: state_in_memory(load(name)) for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_findings_are_exact(in_memory: dict[str, TrainingState], name: str) -> None:
    findings = check(in_memory[name], DEFAULTS, model=model_name(name))
    assert codes(findings) == EXPECTED[name]


@pytest.mark.parametrize("name", DYING)
def test_stalled_units_match_the_units_dead_on_the_training_data(
        in_memory: dict[str, TrainingState], name: str) -> None:
    model = load(name)
    rows = {row.layer: row for row in history(in_memory[name], DEFAULTS)}
    assert list(rows) == ["h1", "h2", "out"]
    for layer in ("h1", "h2"):
        dead = never_active(model, layer)
        assert abs(rows[layer].stalled_fraction - dead) <= TOLERANCE, (layer, dead, rows[layer])
        assert rows[layer].steps == 320 and rows[layer].units == 32
    if name.startswith("healthy"):
        assert all(row.stalled_fraction < DEFAULTS.dead_warn for row in rows.values())
    else:
        assert never_active(model, "h1") >= DEFAULTS.dead_warn
        assert rows["h1"].stalled_fraction >= DEFAULTS.dead_warn


def test_the_regenerated_data_is_what_the_models_learned() -> None:
    """The data the tests count on is the training data: the models fit it."""
    for name in DYING:
        x, y = training_data()
        accuracy = float(np.mean((np.asarray(load(name)(x)) > 0.5) == y))
        assert accuracy > 0.9, name


def test_stalled_units_last_got_a_gradient_long_before_the_save(
        in_memory: dict[str, TrainingState]) -> None:
    """The clock: a unit dead since early training has decayed for most of the 320 steps."""
    for name in DYING[:4]:
        h1 = history(in_memory[name], DEFAULTS)[0]
        assert h1.steps_since_gradient is not None and 200 <= h1.steps_since_gradient <= 320
        assert h1.train_grad_rms is None or h1.train_grad_rms > 0


def test_dying_findings_carry_their_figures(in_memory: dict[str, TrainingState]) -> None:
    finding, rate = check(in_memory["adam_dying.keras"], DEFAULTS)
    assert rate.code == "GA414" and rate.metrics["evidence"] == [
        f"{finding.metrics['stalled_units']} of 32 units of h1 stalled"]
    assert finding.metrics["units"] == 32 and finding.metrics["steps"] == 320
    assert finding.metrics["stalled_fraction"] == finding.metrics["stalled_units"] / 32
    assert finding.metrics["optimizer"] == "Adam"
    assert f"{finding.metrics['stalled_units']} of 32 units" in finding.message


def test_every_training_code_is_triggered_by_some_fixture_or_test() -> None:
    """GA402 and GA414 have no fixture of their own (a fully stalled layer, a learning
    rate of 0): the rule tests below trigger them."""
    seen = {code for expected in EXPECTED.values() for code, _, _ in expected}
    seen |= {"GA402", "GA414"}
    assert seen == {rule.code for rule in CATALOGUE if rule.code.startswith("GA4")}


# --- from the file alone, once the reader exists ---------------------------------


def _reader_ready() -> bool:
    try:
        read_training_state(str(TRAINED / "never_trained.keras"), "keras")
    except NotImplementedError:
        return False
    except Exception:  # written but broken: the reader tests below show how
        return True
    return True


needs_reader = pytest.mark.skipif(
    not _reader_ready(), reason="read_training_state is not written yet (issue 13, part 1)")


def from_file(name: str) -> TrainingState:
    return read_training_state(str(TRAINED / name), "h5" if name.endswith(".h5") else "keras")


@needs_reader
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reader_findings_are_exact(name: str) -> None:
    assert codes(check(from_file(name), DEFAULTS, model=model_name(name))) == EXPECTED[name]


@needs_reader
@pytest.mark.parametrize("name", DYING)
def test_reader_stalled_units_match_the_units_dead_on_the_training_data(name: str) -> None:
    model = load(name)
    rows = {row.layer: row for row in history(from_file(name), DEFAULTS)}
    for layer in ("h1", "h2"):
        assert abs(rows[layer].stalled_fraction - never_active(model, layer)) <= TOLERANCE


@needs_reader
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reader_agrees_with_the_optimizer_in_memory(
        in_memory: dict[str, TrainingState], name: str) -> None:
    read, held = history(from_file(name), DEFAULTS), history(in_memory[name], DEFAULTS)
    assert [(r.layer, r.steps, r.units, r.stalled_units) for r in read] == [
        (r.layer, r.steps, r.units, r.stalled_units) for r in held]
    for a, b in zip(read, held, strict=True):
        assert _close(a.steps_since_gradient, b.steps_since_gradient, abs=1.0)
        assert _close(a.train_grad_rms, b.train_grad_rms, rel=1e-4)


def _close(got: float | None, want: float | None, **tolerance: float) -> bool:
    return got is want is None or (want is not None and got == pytest.approx(want, **tolerance))


# --- the rules, on states built from real optimizer configs ---------------------


def _state(optimizer: Any, **fields: Any) -> TrainingState:
    """A state with a real optimizer's class and config, and no slots."""
    config = optimizer.get_config()
    return TrainingState(optimizer=type(optimizer).__name__, optimizer_config=config,
                         **fields)


def _units(activity: list[float], decay: float = 0.9005, relative: bool = False,
           layer: str = "dense", nonzero: bool = True) -> VariableState:
    values = np.asarray(activity)
    return VariableState(layer=layer, variable="kernel", shape=(4, values.size),
                         activity=values, decay=decay, relative=relative, grad_rms=0.1,
                         nonzero=nonzero)


def _ga414(state: TrainingState) -> list[tuple[str, str]]:
    return [(str(f.severity), f.message) for f in check(state, DEFAULTS, model="m")
            if f.code == "GA414"]


def test_learning_rate_zero_or_negative_is_an_error() -> None:
    import keras

    for rate, effect in ((0.0, "no step moves"), (-0.01, "climbs the loss")):
        (finding,) = _ga414(_state(keras.optimizers.SGD(0.01), learning_rate=rate))
        assert finding[0] == "error" and effect in finding[1]


def test_learning_rate_far_from_the_usual_one_alone_is_info_naming_its_source() -> None:
    import keras

    (high,) = _ga414(_state(keras.optimizers.Adam(0.5), learning_rate=0.5))
    assert high[0] == "info" and "500× above the usual 0.001 for Adam" in high[1]
    assert "Kingma & Ba" in high[1] and "no per-unit optimizer state" in high[1]
    (low,) = _ga414(_state(keras.optimizers.SGD(1e-5), learning_rate=1e-5))
    assert low[0] == "info" and "below" in low[1] and "Bengio" in low[1]
    assert _ga414(_state(keras.optimizers.Adam(0.05), learning_rate=0.05)) == []


def test_a_schedule_is_judged_by_its_initial_rate() -> None:
    import keras

    decays_to_zero = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=100)
    state = _state(keras.optimizers.Adam(decays_to_zero), learning_rate=0.0)
    assert _ga414(state) == []


def test_a_zero_clip_stops_only_a_keras2_optimizer_v2() -> None:
    import keras
    import tf_keras
    from tf_keras.optimizers import legacy

    for optimizer in (legacy.Adam(clipnorm=0.0), legacy.SGD(clipvalue=0.0),
                      legacy.Adam(global_clipnorm=0.0)):
        config = tf_keras.optimizers.serialize(optimizer)["config"]
        state = TrainingState(optimizer="Adam", optimizer_config=config, learning_rate=1e-3)
        ((severity, message),) = _ga414(state)
        assert severity == "error" and "= 0 in a Keras 2 optimizer" in message
    for optimizer in (keras.optimizers.Adam(clipnorm=0.0), tf_keras.optimizers.Adam(clipnorm=0.0)):
        assert _ga414(_state(optimizer, learning_rate=1e-3)) == []  # a clip of 0 is skipped


@pytest.mark.parametrize(("activation", "units", "loss", "logits", "code"), [
    ("softmax", 1, "binary_crossentropy", False, "GA411"),
    ("softmax", 1, "mean_squared_error", False, "GA411"),
    ("sigmoid", 1, "categorical_crossentropy", False, "GA411"),
    ("linear", 1, "CategoricalCrossentropy", True, "GA411"),
    ("sigmoid", 1, "BinaryCrossentropy", True, "GA412"),
    ("softmax", 3, "categorical_crossentropy", True, "GA412"),
    ("relu", 1, "binary_crossentropy", False, "GA412"),
    (None, 3, "sparse_categorical_crossentropy", False, "GA412"),
    ("sigmoid", 1, "binary_crossentropy", False, None),
    ("linear", 1, "BinaryCrossentropy", True, None),
    ("softmax", 3, "categorical_crossentropy", False, None),
    ("linear", 1, "mean_squared_error", False, None),
])
def test_head_against_loss(activation: str | None, units: int, loss: str, logits: bool,
                           code: str | None) -> None:
    compiled = CompileConfig(losses={"out": loss}, from_logits={"out": logits},
                             loss_weights={"out": 1.0})
    state = TrainingState(compile=compiled, heads=(Head("out", "out", activation, units),))
    found = [(f.code, f.layer) for f in check(state, DEFAULTS) if f.code.startswith("GA41")]
    assert found == ([(code, "out")] if code else [])


def test_an_output_without_a_loss_while_others_have_one() -> None:
    compiled = CompileConfig(losses={"main": "mse", "extra": None},
                             from_logits={}, loss_weights={"main": 1.0, "extra": 1.0})
    state = TrainingState(compile=compiled, heads=(Head("main", "main", "linear", 1),
                                                   Head("extra", "extra", "linear", 1)))
    (finding,) = [f for f in check(state, DEFAULTS) if f.code == "GA413"]
    assert finding.layer == "extra" and "main" in finding.message
    no_loss_at_all = CompileConfig(losses={}, from_logits={}, loss_weights={})
    assert [f for f in check(TrainingState(compile=no_loss_at_all, heads=state.heads),
                             DEFAULTS) if f.code == "GA413"] == []  # add_loss / train_step


@pytest.mark.parametrize(("fields", "why"), [
    ({}, "saved uncompiled"),
    ({"optimizer": "Adam", "iterations": 0}, "iterations = 0"),
    ({"optimizer": "SGD", "iterations": 50}, "keeps no per-variable state"),
    ({"optimizer": "Adam", "iterations": 50, "notes": ("slot shapes do not match",)},
     "slot shapes do not match"),
])
def test_no_history_is_reported_once_with_its_reason(fields: dict[str, Any], why: str) -> None:
    (finding,) = check(TrainingState(**fields), DEFAULTS, model="m")
    assert (finding.code, finding.layer) == ("GA404", "m") and why in finding.message
    assert history(TrainingState(**fields), DEFAULTS) == ()


def test_few_steps_count_only_exact_zeros() -> None:
    """After 20 steps no live unit can have decayed below 1e-3 (0.9^20 ≈ 0.12): a small
    ratio then is a small gradient, not a stall; exact zeros never got one."""
    units = _units([0.0, 1e-5, 0.3, 0.4])
    (early,) = history(TrainingState(optimizer="Adam", iterations=20, variables=(units,)),
                       DEFAULTS)
    (late,) = history(TrainingState(optimizer="Adam", iterations=500, variables=(units,)),
                      DEFAULTS)
    assert (early.stalled_units, late.stalled_units) == (1, 2)
    assert early.steps_since_gradient == 20  # exactly zero: silent all along


def test_magnitudes_are_judged_against_the_most_active_unit_of_the_model() -> None:
    """A layer whose units are all dead has no live median of its own."""
    dead = _units([1e-12, 2e-12, 0.0], decay=0.9487, relative=True, layer="dead")
    live = _units([0.05, 0.2, 1e-9], decay=0.9487, relative=True, layer="live")
    state = TrainingState(optimizer="RMSprop", iterations=400, variables=(dead, live))
    rows = {row.layer: row.stalled_units for row in history(state, DEFAULTS)}
    assert rows == {"dead": 3, "live": 1}
    assert {(f.code, f.layer) for f in check(state, DEFAULTS)} == {("GA402", "dead")}


def test_a_slot_that_does_not_decay_tells_no_time() -> None:
    """β1 = 0.999 with β2 = 0.99 makes |m|/√v grow without a gradient: only exact
    zeros count, and no step estimate is given."""
    units = _units([0.0, 1e-9, 0.5], decay=0.999 / math.sqrt(0.99))
    (row,) = history(TrainingState(optimizer="Adam", iterations=1000, variables=(units,)),
                     DEFAULTS)
    assert (row.stalled_units, row.steps_since_gradient) == (1, None)


def test_never_updated_says_more_than_stalled() -> None:
    """A layer whose slots are all exactly zero is GA403 alone, not also GA402."""
    never = _units([0.0, 0.0], layer="cut", nonzero=False)
    live = _units([0.3, 0.5], layer="kept")
    state = TrainingState(optimizer="Adam", iterations=100, variables=(never, live))
    assert [(f.code, f.layer) for f in check(state, DEFAULTS)] == [("GA403", "cut")]


def test_non_finite_slots_are_not_judged() -> None:
    broken = VariableState(layer="bad", variable="kernel", shape=(2, 2),
                           activity=np.array([np.nan, 0.0]), decay=0.9, relative=False,
                           grad_rms=None, nonzero=True, finite=False)
    live = _units([0.3, 0.5], layer="good")
    state = TrainingState(optimizer="Adam", iterations=100, variables=(broken, live))
    assert [row.layer for row in history(state, DEFAULTS)] == ["good"]
    assert check(state, DEFAULTS) == []



def test_explain_quotes_the_training_thresholds_and_rate_sources() -> None:
    from gradaudit.options import USUAL_LEARNING_RATES
    from gradaudit.report.catalogue import lookup

    ga401, ga414 = lookup("GA401"), lookup("GA414")
    assert "`stall_ratio` (default 1e-3" in ga401.explanation
    assert "`stall_relative` (default 1e-6)" in ga401.explanation
    assert "(default 100)" in ga414.explanation
    assert all(f"{name} " in ga414.explanation and source in ga414.source
               for name, (_, source) in USUAL_LEARNING_RATES.items())

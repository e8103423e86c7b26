"""The compile config (loss per output, ``from_logits``, loss weights, metrics) and
the layers that produce the outputs, read from the model config as saved.

Keras accepts a loss as one name or object for every output, a list in output
order or a dict by output name; a loss object is saved as ``{"class_name",
"config": {"from_logits", …}}`` (Keras 3 adds ``module``), a loss function as its
name or as ``{"class_name": "function", "config": name}``. Anything else is a
garbled config: the compile config is then not returned (a note says why), so
that no check judges a head against a loss the file does not really state.
Metrics come in the same three forms (tf_keras writes a list per output, of the
metric objects it resolved); metrics that cannot be read are a note, and the
losses are still judged.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gradaudit.history.trainable_vars import model_layers
from gradaudit.history.training_types import CompileConfig, Head, LossSpec

ALIASES = {
    "mse": "mean_squared_error", "mae": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error", "msle": "mean_squared_logarithmic_error",
    "kld": "kl_divergence", "kullback_leibler_divergence": "kl_divergence",
    "logcosh": "log_cosh", "huber_loss": "huber",
}
"""Keras's short names and old spellings of its losses."""
ACTIVATION_LAYERS = {"Softmax": "softmax", "ReLU": "relu", "LeakyReLU": "leaky_relu",
                     "ELU": "elu", "PReLU": "prelu"}
PASS_THROUGH = frozenset({"Activation", "Dropout", "ActivityRegularization", "GaussianNoise",
                          "GaussianDropout", "AlphaDropout", *ACTIVATION_LAYERS})
"""Layers that keep their input's units: a head's size is its input's."""
MAX_HOPS = 8
MAX_NAME = 80


class Garbled(Exception):
    """A part of the compile config that is not what Keras writes; ``str()`` says which."""


def snake(name: str) -> str:
    """``BinaryCrossentropy`` → ``binary_crossentropy``, ``KLDivergence`` → ``kl_divergence``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def compile_config(raw: Any, outputs: list[str], *, keras_version: str | None = None
                   ) -> tuple[CompileConfig | None, list[str]]:
    """The compile config for the model's ``outputs`` (names in output order).

    ``keras_version`` is the writer's (an HDF5 file's attribute; None: Keras 3): it
    tells which rule resolved ``accuracy`` (:func:`accuracy_by_loss`).
    """
    if raw is None:
        return None, []
    try:
        if not isinstance(raw, dict):
            raise Garbled("it is not a mapping")
        losses = _per_output(raw.get("loss"), outputs, "loss")
        weights = _per_output(raw.get("loss_weights"), outputs, "loss_weights")
        loss_weights = {name: _weight(weights.get(name)) for name in outputs}
        specs = {name: loss_spec(item, loss_weights[name])
                 for name, item in losses.items() if item is not None}
    except Garbled as garbled:
        return None, [f"the compile config is garbled ({garbled}): the head and loss checks "
                      "are skipped and the probe differentiates a random projection"]
    notes = []
    try:
        metrics = _metrics(raw.get("metrics"), outputs)
    except Garbled as garbled:
        metrics = {}
        notes.append(f"the metrics in the compile config cannot be read ({garbled}): "
                     "they are not judged")
    return CompileConfig(
        losses={name: specs[name].name if name in specs else None for name in outputs},
        from_logits={name: name in specs and specs[name].from_logits for name in outputs},
        loss_weights=loss_weights,
        metrics=metrics,
        accuracy_by_loss=accuracy_by_loss(keras_version),
        specs=specs,
    ), notes


def accuracy_by_loss(keras_version: str | None) -> bool:
    """Whether the writer resolved ``accuracy`` from the loss, not from the label shape.

    Standalone Keras ≤ 2.3 (``training_utils.get_metric_function``) and tf.keras ≤ 2.1
    (``2.2.4-tf``) took binary accuracy for one output unit *or* a binary crossentropy;
    tf.keras ≥ 2.2 (``2.3.0-tf``, ``2.4.0`` …), tf_keras and Keras 3 decide from the
    shapes alone (``is_binary_or_sparse_categorical`` in ``trainers/compile_utils.py``).
    """
    version = keras_version or ""
    found = re.match(r"(\d+)\.(\d+)", version)
    if found is None:
        return False
    release = (int(found[1]), int(found[2]))
    return release < (2, 3) or (release == (2, 3) and not version.endswith("-tf"))


def _is_object(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("class_name"), str)


def _per_output(item: Any, outputs: list[str], what: str) -> dict[str, Any]:
    """One value for every output, a list in output order, or a dict by output name."""
    if item is None:
        return {}
    if isinstance(item, (str, int, float)) or _is_object(item):
        return dict.fromkeys(outputs, item)
    if isinstance(item, list):
        if len(item) != len(outputs):
            raise Garbled(f"{what} lists {len(item)} entries for {len(outputs)} outputs")
        return dict(zip(outputs, item, strict=True))
    if isinstance(item, dict):
        unknown = sorted(str(key)[:MAX_NAME] for key in item if key not in outputs)
        if unknown:
            raise Garbled(f"{what} names {', '.join(unknown[:3])}, not an output of the model")
        return dict(item)
    raise Garbled(f"{what} is a {type(item).__name__}")


def loss_spec(item: Any, weight: float) -> LossSpec:
    """One output's loss (not None) as written: a name, a function object or a loss
    object with its config (``from_logits``, label smoothing, reduction …)."""
    if isinstance(item, str):
        return LossSpec(_canonical(item), item[:MAX_NAME], False, weight=weight)
    if not _is_object(item):
        raise Garbled(f"a loss is a {type(item).__name__}, not a name or a loss object")
    config = item.get("config")
    if item["class_name"] == "function":
        if not isinstance(config, str):
            raise Garbled("a loss function is saved without its name")
        return LossSpec(_canonical(config), config[:MAX_NAME], False, weight=weight)
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise Garbled(f"the config of loss {item['class_name'][:MAX_NAME]} is not a mapping")
    if not isinstance(config.get("from_logits", False), bool):
        raise Garbled(f"from_logits of loss {item['class_name'][:MAX_NAME]} is not true or false")
    registered = item.get("registered_name")
    written = registered if isinstance(registered, str) and registered else item["class_name"]
    return LossSpec(_canonical(item["class_name"]), written[:MAX_NAME], True, dict(config),
                    weight)


def _metrics(item: Any, outputs: list[str]) -> dict[str, tuple[str, ...]]:
    """Metric names per output: one metric or a list of them for every output, a list
    of such lists in output order, or a dict by output name."""
    if item is None:
        return {}
    nested = isinstance(item, list) and bool(item) and all(
        entry is None or isinstance(entry, list) for entry in item)
    if isinstance(item, dict) or nested:
        return {name: _metric_names(entry)
                for name, entry in _per_output(item, outputs, "metrics").items()}
    return dict.fromkeys(outputs, _metric_names(item))


def _metric_names(item: Any) -> tuple[str, ...]:
    """``accuracy``, ``auc``, ``categorical_accuracy`` (tf_keras's resolved ``fn``)."""
    entries = item if isinstance(item, list) else [] if item is None else [item]
    names = []
    for entry in entries:
        if isinstance(entry, str):
            names.append(entry[:MAX_NAME].lower())
            continue
        if not _is_object(entry):
            raise Garbled(f"a metric is a {type(entry).__name__}, not a name or a metric object")
        config = entry.get("config")
        inner = config.get("fn") if isinstance(config, dict) else config
        if entry["class_name"] in ("function", "MeanMetricWrapper") and isinstance(inner, str):
            names.append(_canonical(inner))
        else:
            names.append(_canonical(entry["class_name"]))
    return tuple(names)


def _canonical(name: str) -> str:
    short = name[:MAX_NAME].split(">")[-1].split(".")[-1]
    return ALIASES.get(short.lower(), short if short.islower() else snake(short))


def _weight(item: Any) -> float:
    if item is None:
        return 1.0
    if isinstance(item, bool) or not isinstance(item, (int, float)) or math.isnan(item):
        raise Garbled(f"a loss weight is {str(item)[:MAX_NAME]!r}, not a number")
    return float(item)


# --- heads ------------------------------------------------------------------------------

def heads(config: Any) -> list[Head]:
    """The layer producing each output of the model, in output order."""
    return [Head(output=output, layer=path, activation=_head_activation(model, layer),
                 units=_units(model, layer))
            for output, layer, path, model in _outputs(config, "")]


def outputs(config: Any) -> list[tuple[str, Any, Any]]:
    """(qualified name, layer config, the model config holding it) of the layer that
    produces each output, in output order: where a walk back from the head starts."""
    return [(path, layer, model) for _, layer, path, model in _outputs(config, "")]


def output_names(config: Any) -> list[str]:
    """The model's output names in order (the keys of a per-output loss dict)."""
    return [output for output, _, _, _ in _outputs(config, "")]


def _outputs(config: Any, prefix: str, depth: int = 0) -> list[tuple[str, Any, str, Any]]:
    """(output name, producing layer config, its qualified name, the model holding it)
    per output; a nested model's output is followed inside it (``decoder/probs``)."""
    layers = [layer for layer in model_layers(config) or [] if isinstance(layer, dict)]
    if not layers or depth > MAX_HOPS:
        return []
    by_name = {_layer_name(layer): layer for layer in layers}
    inner = config.get("config") if isinstance(config, dict) else None
    declared = inner.get("output_layers") if isinstance(inner, dict) else None
    if declared is None:  # Sequential: the last layer
        named: list[tuple[str | None, Any]] = [(_layer_name(layers[-1]), layers[-1])]
    else:
        named = [(name, by_name.get(name)) for name in _output_layer_names(declared)]
    found: list[tuple[str, Any, str, Any]] = []
    for name, layer in named:
        if layer is None or name is None:
            continue
        nested = _outputs(layer, f"{prefix}{name}/", depth + 1)
        if model_layers(layer) is not None and len(nested) == 1:
            found.append((name, *nested[0][1:]))
        else:
            found.append((name, layer, prefix + name, config))
    return found


def _output_layer_names(declared: Any) -> list[str | None]:
    """``output_layers`` as saved: ``[[name, node, tensor], …]``, one ``[name, node,
    tensor]`` (Keras 3, one output) or a dict of them (Keras 3, dict outputs)."""
    if isinstance(declared, dict):
        declared = list(declared.values())
    if isinstance(declared, list) and declared and isinstance(declared[0], str):
        declared = [declared]
    if not isinstance(declared, list):
        return []
    return [entry[0] if isinstance(entry, list) and entry and isinstance(entry[0], str)
            else None for entry in declared]


def _layer_name(layer: Any) -> str | None:
    inner = layer.get("config") if isinstance(layer, dict) else None
    name = inner.get("name") if isinstance(inner, dict) else None
    return name if isinstance(name, str) else None


def _head_activation(model: Any, layer: Any) -> str | None:
    """The activation the output ends in: the layer's own, or, through layers that keep
    their input (a Dropout, a linear Activation), the first one before them."""
    for _ in range(MAX_HOPS):
        if not isinstance(layer, dict):
            return None
        activation = activation_of(layer)
        if activation not in (None, "linear") or layer.get("class_name") not in PASS_THROUGH:
            return activation
        layer = input_layer(model, layer)
    return None


def activation_of(layer: Any) -> str | None:
    """The activation a layer config applies (``linear`` for a Dense or Conv without
    one; ``softmax`` for a Softmax layer); None for a layer that has none."""
    cls = layer.get("class_name")
    if cls in ACTIVATION_LAYERS:
        return ACTIVATION_LAYERS[cls]
    inner = layer.get("config")
    value = inner.get("activation", "linear" if "units" in inner or "filters" in inner
                      else None) if isinstance(inner, dict) else None
    if isinstance(value, dict):  # Keras 3: {"class_name": "function", "config": "softmax"}
        value = value.get("config") if value.get("class_name") == "function" else (
            value.get("class_name"))
    if not isinstance(value, str):
        return None
    return snake(value[:MAX_NAME].split(">")[-1]) if value else None


def _units(model: Any, layer: Any) -> int | None:
    """The head's last-axis size: its own units or filters, or, through layers that
    keep their input's units (an Activation after a Dense), its input's."""
    for _ in range(MAX_HOPS):
        inner = layer.get("config") if isinstance(layer, dict) else None
        if not isinstance(inner, dict):
            return None
        for key in ("units", "filters"):
            value = inner.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        if layer.get("class_name") not in PASS_THROUGH:
            return None
        layer = input_layer(model, layer)
    return None


def input_layer(model: Any, layer: dict[str, Any]) -> Any:
    """The layer feeding ``layer`` in ``model`` (its one inbound tensor), or None."""
    layers = [lay for lay in model_layers(model) or [] if isinstance(lay, dict)]
    inbound = layer.get("inbound_nodes")
    if not inbound and layer in layers:  # Sequential: the previous layer
        position = layers.index(layer)
        return layers[position - 1] if position > 0 else None
    source = _first_history(inbound)
    return next((lay for lay in layers if _layer_name(lay) == source), None)


def _first_history(inbound: Any) -> str | None:
    """The producing layer's name in the first inbound node: Keras 3 writes
    ``{"args": [{"config": {"keras_history": [name, …]}}]}``, Keras 2
    ``[[[name, node, tensor, {}]]]``."""
    for _ in range(MAX_HOPS):
        if isinstance(inbound, dict):
            history = inbound.get("config", {}).get("keras_history") if isinstance(
                inbound.get("config"), dict) else None
            if isinstance(history, list) and history and isinstance(history[0], str):
                return history[0]
            inbound = inbound.get("args")
        elif isinstance(inbound, list) and inbound:
            if isinstance(inbound[0], str):
                return inbound[0]
            inbound = inbound[0]
        else:
            return None
    return None

"""What a BatchNormalization layer's saved statistics say about the ReLU units around it.

A BN layer's moving mean and variance are statistics of the training data as it
reached the layer, and its gamma and beta set the distribution it hands on. Both are in
the file whether or not the optimizer was saved, so they are read here from the
file alone — h5py and json, no TensorFlow, nothing of the file executed — for
``--no-probe`` as for a probed audit. Two patterns in the model config speak for
a ReLU-family layer (relu, relu6, a ReLU layer without negative slope: the
activations whose derivative is exactly 0 where they are off; LeakyReLU, ELU,
GELU and swish are never flat, so nothing here applies to them):

- **after**: affine (Dense, Conv…, linear) → BN → ReLU-family layer. On the
  training distribution the BN output of channel c is about N(beta_c, gamma_c²) (the
  statistics normalise it), so c fires on an estimated share Φ(beta_c/|gamma_c|) of the
  inputs (relu6 / a ReLU layer's threshold and max_value: the Gaussian mass inside
  its active range). gamma_c = 0 exactly: c outputs beta_c everywhere.
- **before**: ReLU-family layer → BN. A unit that never fired fed the BN exact
  zeros, so its moving mean stayed exactly at its initial 0 while its moving
  variance decayed from 1 as momentum^steps; one that stopped firing has both
  decayed towards 0 against its layer's live units.

Only a model config's top-level layers are read (a nested model's BN is not).
Each layer's four vectors (one value per channel) are read alone, a block at a
time, never the model's weights at once. Configurations read are noted where they
are not: ``renorm`` in a ``.keras`` file (its extra variables' order is not
recorded), a missing variable or one of the wrong size. ``axis`` other than -1 (channels
first) is read as saved: the vectors hold one value per channel of that axis.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gradaudit.errors import first_line
from gradaudit.history import compile_info
from gradaudit.history.trainable_vars import (
    Unmapped,
    layer_groups,
    locate,
    model_layers,
    own_variables,
    variable_labels,
)
from gradaudit.load import h5read
from gradaudit.model.rules import RELU_FAMILY

BN_CLASSES = frozenset({"BatchNormalization", "SyncBatchNormalization"})
"""Keras 3's (``synchronized=True`` too) and tf_keras's synchronised variant: the same
four variables with the same meaning."""
AFFINE = frozenset({
    "Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose",
    "Conv2DTranspose", "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D",
    "SeparableConv1D", "SeparableConv2D"})
"""Layers whose linear output (a sum over many inputs) a BN makes about Gaussian."""
STATISTICS = ("gamma", "beta", "moving_mean", "moving_variance")


@dataclass(frozen=True)
class BatchNorm:
    """One BN layer's per-channel statistics and the ReLU-family layer they speak for."""

    layer: str
    """The BatchNormalization layer."""
    target: str
    """The ReLU-family layer reported on: the one after the BN, or the one before it."""
    after: bool
    """True: affine → BN → ``target``; False: ``target`` → BN."""
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    active: tuple[float, float]
    """The target's active range (low, high): relu (0, ∞), relu6 (0, 6), a ReLU layer's
    (threshold, max_value)."""
    activation: str
    """The target's activation as its config names it (``relu`` for a ReLU layer)."""


@dataclass(frozen=True)
class BatchNormStats:
    """Every BN layer of a file that speaks for a ReLU-family layer, and what was not read."""

    layers: tuple[BatchNorm, ...] = ()
    notes: tuple[str, ...] = ()


def read_batchnorm(path: str, fmt: str, config: dict[str, Any] | None) -> BatchNormStats:
    """The BN statistics of a ``.keras`` or ``.h5`` file whose ``config`` is past the size
    gates. Never raises for a malformed file: what cannot be read becomes a note."""
    if fmt not in ("keras", "h5") or config is None:
        return BatchNormStats()
    try:
        pairs = list(_patterns(config))
        return _read(Path(path), fmt, pairs) if pairs else BatchNormStats()
    except Exception as exc:  # a hostile file may make json or h5py fail anywhere
        return BatchNormStats(notes=(f"the BatchNormalization statistics could not be read "
                                     f"({first_line(exc)})",))


# --- the patterns, from the config ----------------------------------------------------------

@dataclass(frozen=True)
class _Pair:
    bn: dict[str, Any]
    target: dict[str, Any]
    after: bool
    active: tuple[float, float]


def _patterns(config: dict[str, Any]) -> Iterator[_Pair]:
    """The BN layers of either pattern, found through each layer's (first) input."""
    layers = [layer for layer in model_layers(config) or [] if isinstance(layer, dict)]
    feeder = {id(layer): compile_info.input_layer(config, layer) for layer in layers}
    for layer in layers:
        before = feeder[id(layer)]
        if layer.get("class_name") not in BN_CLASSES or not isinstance(before, dict):
            continue
        if (active := _relu_range(before)) is not None:
            yield _Pair(layer, before, after=False, active=active)
        elif before.get("class_name") in AFFINE and (
                compile_info.activation_of(before) == "linear"):
            for user in layers:
                if feeder[id(user)] is layer and (active := _relu_range(user)) is not None:
                    yield _Pair(layer, user, after=True, active=active)


def _relu_range(layer: dict[str, Any]) -> tuple[float, float] | None:
    """The active range of a ReLU-family layer (its derivative is 0 outside); None for
    any other activation, or a ReLU layer with a negative slope or garbled bounds."""
    activation = compile_info.activation_of(layer)
    if layer.get("class_name") == "ReLU":
        inner = layer.get("config", {})
        slope, low, high = (inner.get(key) for key in ("negative_slope", "threshold",
                                                         "max_value"))
        if not all(v is None or _number(v) for v in (slope, low, high)) or slope:
            return None
        return float(low or 0.0), math.inf if high is None else float(high)
    return (0.0, RELU_FAMILY[activation]) if activation in RELU_FAMILY else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


def _name(layer: dict[str, Any]) -> str:
    return str(layer.get("config", {}).get("name"))


# --- the statistics, from the weights ------------------------------------------------------

def _read(path: Path, fmt: str, pairs: list[_Pair]) -> BatchNormStats:
    notes: list[str] = []
    found: list[BatchNorm] = []
    with h5read.weights_file(path, fmt) as handle:
        if handle is None:
            return BatchNormStats(notes=("the archive holds no model.weights.h5: the "
                                         "BatchNormalization statistics are not read",))
        groups = layer_groups(handle) if fmt == "keras" else {}
        weights = h5read.group(handle, "model_weights") if fmt == "h5" else None
        for pair in pairs:
            bn = _name(pair.bn)
            try:
                datasets = (_keras_datasets(groups, pair.bn) if fmt == "keras"
                            else _h5_datasets(weights, pair.bn))
                vectors = _vectors(pair.bn, datasets)
            except Unmapped as exc:
                notes.append(f"BatchNormalization {bn[:80]}: {exc}: GA103 not judged")
                continue
            found.append(BatchNorm(layer=bn, target=_name(pair.target), after=pair.after,
                                   active=pair.active,
                                   activation=compile_info.activation_of(pair.target) or "",
                                   **vectors))
    return BatchNormStats(layers=tuple(found), notes=tuple(notes))


def _keras_datasets(groups: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """A ``.keras`` BN layer's variables by label: ``vars/0 …`` in creation order."""
    name = _name(layer)
    if layer.get("config", {}).get("renorm"):
        raise Unmapped("renorm: the file does not record the order of its extra variables")
    group = groups.get(name)
    if group is None:
        raise Unmapped("no weight group in the file")
    datasets = own_variables(group, name)
    labels = variable_labels("BatchNormalization", layer, len(datasets))
    return dict(zip(labels, datasets, strict=True))


def _h5_datasets(weights: Any, layer: dict[str, Any]) -> dict[str, Any]:
    """A legacy ``.h5`` BN layer's variables by the label their ``weight_names`` end in."""
    name = _name(layer)
    group = h5read.group(weights, name)
    names = h5read.texts(group, "weight_names") if group is not None else None
    if names is None:
        raise Unmapped("no weight_names in model_weights")
    return {locate(name, layer, weight)[1]: h5read.dataset(group, weight) for weight in names}


def _vectors(layer: dict[str, Any], datasets: dict[str, Any]) -> dict[str, np.ndarray]:
    """gamma, beta, moving mean and variance as flat float64 vectors (beta = 0 without ``center``,
    gamma = 1 without ``scale``), checked to be one value per channel."""
    inner = layer.get("config", {})
    missing = [label for label in STATISTICS[2:] if datasets.get(label) is None]
    for label, key in (("gamma", "scale"), ("beta", "center")):
        if inner.get(key, True) is not False and datasets.get(label) is None:
            missing.append(label)
    if missing:
        raise Unmapped(f"no {', '.join(missing)} variable")
    read = {label: np.concatenate([block.reshape(-1) for block in h5read.blocks(data)])
            for label, data in datasets.items() if label in STATISTICS and data is not None}
    size = read["moving_mean"].size
    if any(vector.size != size for vector in read.values()) or not size:
        raise Unmapped("its variables are not one value per channel each")
    if not all(bool(np.isfinite(vector).all()) for vector in read.values()):
        raise Unmapped("NaN or Inf in its statistics")
    return {"gamma": read.get("gamma", np.ones(size)), "beta": read.get("beta", np.zeros(size)),
            "mean": read["moving_mean"], "variance": read["moving_variance"]}

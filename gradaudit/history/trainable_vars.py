"""The trainable variables of a saved model, in the order the optimizer built its
slots (``model.trainable_variables``), named as the report names layers.

The order is Keras's ``Layer.weights`` walk: the model's layers in config order;
per layer its own variables (``_trainable_variables + _non_trainable_variables``,
the order it created them), then its sublayers'. A layer with ``trainable: false``
contributes none, nor does anything inside it.

- ``.keras``: ``model.weights.h5`` stores a layer's own variables as
  ``<path>/vars/0, 1, …`` with its name in the ``vars`` group's attributes, and its
  sublayers under ``<path>/<attribute>/…``. The file records neither which of a
  layer's own variables are trainable (known here for BatchNormalization and
  Normalization) nor the order of a layer's sublayers (their attributes are
  stored sorted by name): where that order matters it is resolved by the slots'
  shapes, and left unmapped with a note when the shapes cannot tell.
- legacy ``.h5`` (Keras 1, 2 and 3): ``model_weights`` lists ``layer_names`` and, per
  layer, ``weight_names`` (non-trainable ones last, per layer), whose paths name the
  sublayers (``bi/forward_lstm/lstm_cell/kernel``, ``enc_d/kernel`` inside a nested
  model ``encoder``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from gradaudit.load import h5read

MAX_ORDERINGS = 720
"""Sublayer orders tried when the file does not record them (6 sublayers)."""
WRAPPER_PARTS = {"Bidirectional": ("forward_layer", "backward_layer"),
                 "TimeDistributed": ("layer",)}
"""Wrappers' sublayers, in the order they hold them: each is a layer of the report."""
RECURRENT = frozenset({"LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"})
LABELS = {
    **dict.fromkeys(("Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose",
                     "Conv2DTranspose", "Conv3DTranspose", "DepthwiseConv1D",
                     "DepthwiseConv2D"), ("kernel", "bias")),
    **dict.fromkeys(("SeparableConv1D", "SeparableConv2D"),
                    ("depthwise_kernel", "pointwise_kernel", "bias")),
    "Embedding": ("embeddings",),
    "PReLU": ("alpha",),
}
"""Own variables of Keras layer classes, in creation order (Keras 3 sources)."""
CELL_LABELS = ("kernel", "recurrent_kernel", "bias")
NON_TRAINABLE_SUFFIXES = ("moving_mean", "moving_variance", "running_mean", "running_std")
NON_TRAINABLE_CLASSES = frozenset({"Normalization"})


class Unmapped(Exception):
    """The file's variables cannot be listed in order; ``str()`` says why."""


@dataclass(frozen=True)
class Weight:
    """One trainable variable as the file describes it."""

    layer: str
    label: str
    shape: tuple[int, ...]
    name: str | None = None
    """Its name in a legacy ``.h5`` (``h1/kernel``), which slot names repeat."""


@dataclass(frozen=True)
class Block:
    """The trainable variables of a layer: its own, then its parts', in the order
    given, or (``ordered`` False) in an order of the parts the file does not record."""

    own: tuple[Weight, ...] = ()
    parts: tuple[Block, ...] = ()
    ordered: bool = True

    @property
    def size(self) -> int:
        return len(self.own) + sum(part.size for part in self.parts)

    @property
    def layers(self) -> list[str]:
        found = [w.layer for w in self.own]
        for part in self.parts:
            found += part.layers
        return list(dict.fromkeys(found))

    def flat(self) -> list[Weight]:
        """Its variables in the file's order."""
        return [*self.own, *(w for part in self.parts for w in part.flat())]

    def orderings(self) -> list[tuple[Weight, ...]] | None:
        """Every order its variables may have; None if there are too many to try."""
        parts = [part for part in self.parts if part.size]
        arrangements = [parts] if self.ordered else list(
            itertools.islice(itertools.permutations(parts), MAX_ORDERINGS + 1))
        found: list[tuple[Weight, ...]] = []
        for arrangement in arrangements:
            inner = [part.orderings() for part in arrangement]
            if any(options is None for options in inner):
                return None
            for combo in itertools.product(*(o for o in inner if o is not None)):
                found.append(self.own + tuple(w for chosen in combo for w in chosen))
                if len(found) > MAX_ORDERINGS:
                    return None
        return found or [self.own]


def _config(layer: Any) -> dict[str, Any]:
    inner = layer.get("config") if isinstance(layer, dict) else None
    return inner if isinstance(inner, dict) else {}


def _class(layer: Any) -> str:
    name = layer.get("class_name") if isinstance(layer, dict) else None
    return name if isinstance(name, str) else ""


def _name(layer: Any) -> str | None:
    name = _config(layer).get("name")
    return name if isinstance(name, str) else None


def _frozen(layer: Any) -> bool:
    return _config(layer).get("trainable", True) is False


def _is_keras(layer: Any) -> bool:
    """A Keras class, not a user's: no registered ``package>Name``, no other module
    (a Keras 2 config names no module for either: taken as Keras's)."""
    if not isinstance(layer, dict):
        return True
    module, registered = layer.get("module"), layer.get("registered_name")
    return not (">" in _class(layer) or (isinstance(registered, str) and ">" in registered)
                or (isinstance(module, str) and not module.startswith(("keras", "tf_keras"))))


def model_layers(layer: Any) -> list[Any] | None:
    """A model config's layers (a Keras ≤ 2.2 Sequential's config is the list itself)."""
    raw = layer.get("config") if isinstance(layer, dict) else None
    if isinstance(raw, list):
        return raw
    layers = raw.get("layers") if isinstance(raw, dict) else None
    return layers if isinstance(layers, list) else None


# --- .keras: model.weights.h5 -----------------------------------------------------------

def keras_blocks(config: dict[str, Any], root: Any) -> list[Block]:
    """The trainable variables of a Keras 3 model, from its config and weights file."""
    if model_layers(config) is None:
        raise Unmapped("the model config lists no layers (a subclassed model)")
    return _model_parts(config, root, "")


def layer_groups(group: Any, prefix: str = "") -> dict[str, Any]:
    """A Keras 3 model's layer weight groups (``layers/<key>``), by the layer name its
    ``vars`` carry (the keys are Keras's attribute names, not the layers')."""
    container = h5read.group(group, "layers")
    by_name: dict[str, Any] = {}
    for key in h5read.members(container) if container is not None else []:
        sub = h5read.group(container, key)
        name = _group_name(sub)
        if name in by_name:
            raise Unmapped(f"two weight groups in the file name layer {prefix}{name}")
        if name is not None:
            by_name[name] = sub
    return by_name


def _model_parts(config: Any, group: Any, prefix: str) -> list[Block]:
    by_name = layer_groups(group, prefix)
    own = _own(group, "", prefix.rstrip("/") or (_name(config) or "model"), None)
    blocks = [Block(own=own)] if own else []
    for layer in model_layers(config) or []:
        name = _name(layer)
        sub = by_name.get(name) if name is not None else None
        # A layer without variables may have no group at all.
        if sub is not None and _class(layer) != "InputLayer" and not _frozen(layer):
            blocks.append(_layer_block(layer, sub, prefix + str(name)))
    return blocks


def _group_name(group: Any) -> str | None:
    """The layer name Keras writes on a weight group's ``vars``."""
    return h5read.text(h5read.attr(h5read.group(group, "vars"), "name")) if group else None


def own_variables(group: Any, layer: str) -> list[Any]:
    """A layer's own variables, ``vars/0 …`` in creation order, as datasets."""
    store = h5read.group(group, "vars")
    keys = h5read.members(store) if store is not None else []
    datasets = [h5read.dataset(store, str(i)) for i in range(len(keys))]
    if sorted(keys) != sorted(str(i) for i in range(len(keys))) or None in datasets:
        raise Unmapped(f"the variables of layer {layer} are not numeric datasets 0, 1, …")
    return datasets


def _own(group: Any, cls: str, layer: str, config: Any) -> tuple[Weight, ...]:
    """A layer's own trainable variables: ``vars/0 …`` less the non-trainable ones."""
    datasets = own_variables(group, layer)
    labels = variable_labels(cls, config, len(datasets))
    count = _trainable_count(cls, len(datasets))
    return tuple(Weight(layer, labels[i], h5read.shape(data))
                 for i, data in enumerate(datasets[:count]))


def variable_labels(cls: str, config: Any, count: int) -> list[str]:
    """Names of a layer's ``count`` own variables in creation order (``var3`` where unknown)."""
    inner = _config(config)
    if cls in ("BatchNormalization", "LayerNormalization", "GroupNormalization"):
        known = [*(["gamma"] if inner.get("scale", True) is not False else []),
                 *(["beta"] if inner.get("center", True) is not False else []),
                 *(["moving_mean", "moving_variance"] if cls == "BatchNormalization" else [])]
    else:
        known = list(LABELS.get(cls, ()))
    return [known[i] if i < len(known) else f"var{i}" for i in range(count)]


def _trainable_count(cls: str, count: int) -> int:
    if cls in NON_TRAINABLE_CLASSES:
        return 0
    if cls == "BatchNormalization":
        return max(0, count - 2)  # moving_mean and moving_variance come last
    return count


def _layer_block(layer: Any, group: Any, qualified: str) -> Block:
    cls = _class(layer)
    if model_layers(layer) is not None:
        own = _own(group, "", qualified, None)
        return Block(own=own, parts=tuple(_model_parts(layer, group, qualified + "/")))
    own = _own(group, cls, qualified, layer)
    if cls in WRAPPER_PARTS and _is_keras(layer):
        inner = _config(layer).get("layer")
        parts = []
        for attribute in WRAPPER_PARTS[cls]:
            sub = h5read.group(group, attribute)
            name = _group_name(sub)
            if sub is not None and name is not None and not _frozen(inner):
                parts.append(_layer_block(inner, sub, f"{qualified}/{name}"))
        return Block(own=own, parts=tuple(parts))
    keras = _is_keras(layer)
    parts = [part for key in h5read.members(group) if key != "vars"
             if (part := _part(group, key, cls, qualified, keras)).size]
    return Block(own=own, parts=tuple(parts), ordered=not parts)


def _part(parent: Any, key: str, owner: str, qualified: str, internal: bool) -> Block:
    """A sublayer (or a list of them): part of its parent's layer when the parent is a
    Keras class (an LSTM's cell), a layer of its own inside a user's layer class."""
    group = h5read.group(parent, key)
    if group is None:
        return Block()
    if h5read.group(group, "vars") is None:  # a list or dict of sublayers
        parts = [_part(group, k, owner, qualified, internal) for k in h5read.members(group)]
        return Block(parts=tuple(p for p in parts if p.size), ordered=False)
    name = _group_name(group)
    where = qualified if internal or name is None else f"{qualified}/{name}"
    own = _own(group, "", where, None)
    labels = CELL_LABELS if owner in RECURRENT else ("kernel", "bias") if owner in (
        "MultiHeadAttention", "GroupedQueryAttention") else ()
    if internal and labels:
        own = tuple(Weight(w.layer, labels[i] if i < len(labels) else w.label, w.shape)
                    for i, w in enumerate(own))
    parts = [_part(group, k, owner, where, internal)
             for k in h5read.members(group) if k != "vars"]
    return Block(own=own, parts=tuple(p for p in parts if p.size), ordered=False)


# --- legacy .h5: model_weights ------------------------------------------------------------

def h5_blocks(config: dict[str, Any], weights: Any) -> list[Block]:
    """The trainable variables of a legacy HDF5 model, from ``model_weights``."""
    layer_names = h5read.texts(weights, "layer_names")
    if layer_names is None:
        raise Unmapped("the file's model_weights group lists no layer_names")
    configs = {_name(layer): layer for layer in model_layers(config) or []}
    blocks = []
    for layer_name in layer_names:
        group = h5read.group(weights, layer_name)
        names = h5read.texts(group, "weight_names") if group is not None else None
        if names is None:
            raise Unmapped(f"layer {layer_name} lists no weight_names in model_weights")
        own = []
        for name in names:
            data = h5read.dataset(group, name)
            if data is None:
                raise Unmapped(f"weight {name} of layer {layer_name} is missing or not numbers")
            where, label, trainable = locate(layer_name, configs.get(layer_name), name)
            if trainable:
                own.append(Weight(where, label, h5read.shape(data), name.removesuffix(":0")))
        blocks.append(Block(own=tuple(own)))
    return blocks


def _children(layer: Any) -> dict[str, Any]:
    """A layer's sublayers that the report names (nested model layers, wrapped layers)."""
    layers = model_layers(layer)
    if layers is not None:
        return {name: sub for sub in layers if (name := _name(sub)) is not None}
    inner = _config(layer).get("layer")
    name = _name(inner)
    if name is None:
        return {}
    if _class(layer) == "TimeDistributed":
        return {name: inner}
    if _class(layer) == "Bidirectional":
        # Keras 3 saves the forward and backward layers under their own names
        # (forward_lstm); tf_keras saves the wrapped layer (lstm) and derives them.
        backward = _config(layer).get("backward_layer")
        names = [name, f"forward_{name}", f"backward_{name}"]
        if (other := _name(backward)) is not None:
            names += [other, f"backward_{other}"]
        return dict.fromkeys(names, inner)
    return {}


def locate(layer_name: str, layer: Any, weight: str) -> tuple[str, str, bool]:
    """(qualified layer, label, trainable) of a weight named by its path.

    Keras 3 and tf_keras paths start with the layer's name (``bi/forward_lstm/…``);
    inside a nested model tf_keras's start with the inner layer (``enc_d/kernel``).
    Inside a user's layer class (Keras 3 configs name its module) every step of
    the path is a sublayer, as the report names them.
    """
    parts = weight.removesuffix(":0").split("/")
    qualified = [layer_name]
    frozen = _frozen(layer)
    index = 1 if parts[0] == layer_name and len(parts) > 1 else 0
    node: Any = layer
    while index < len(parts) - 1:
        children = _children(node)
        if parts[index] in children:
            node = children[parts[index]]
            frozen = frozen or _frozen(node)
        elif _is_keras(node):
            break
        qualified.append(parts[index])
        index += 1
    label = parts[-1]
    trainable = not frozen and not label.endswith(NON_TRAINABLE_SUFFIXES) and (
        _class(node) not in NON_TRAINABLE_CLASSES)
    return "/".join(qualified), label, trainable

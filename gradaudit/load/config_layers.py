"""The model's name and a layer's class and activation, read from the config alone.

``--no-probe`` builds no model, so its layer rows take their type and activation
from the config (json, no Keras): the activation as the layer's config names it
(an LSTM's ``tanh`` too, which the probe does not judge). Names are qualified as
the probe qualifies them (``encoder/dense``, ``td/dense``, ``bilstm/forward_lstm``):
through a nested model's ``layers`` and a wrapper's ``layer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConfigLayer:
    """A layer as its config describes it."""

    type: str
    activation: str | None


def model_name(config: dict[str, Any], fallback: str) -> str:
    """The model's name in its config, else ``fallback`` (the file's stem)."""
    inner = config.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    return name if isinstance(name, str) else fallback


def config_layer(config: dict[str, Any], name: str) -> ConfigLayer | None:
    """The layer ``name`` (qualified) of the model ``config`` describes; None if absent.

    Followed down from the top one name part at a time, so the cost is bounded by
    the name, whatever a hostile config nests.
    """
    node = config
    for part in name.split("/"):
        found = next((child for local, child in _children(node) if local == part), None)
        if found is None:
            return None
        node = found
    class_name = node.get("class_name")
    return ConfigLayer(type=class_name if isinstance(class_name, str) else "",
                       activation=_activation(node["config"].get("activation")))


def _children(node: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The layers directly inside a model (``layers``) or a wrapper (``layer``), by name.

    A Bidirectional layer holds ``forward_<name>`` and ``backward_<name>``, as Keras
    names the copies it makes of its layer (or of its ``backward_layer``).
    """
    inner = node.get("config")
    if isinstance(inner, list):  # a Sequential of Keras 1 and early Keras 2
        return _named([("", child) for child in inner])
    if not isinstance(inner, dict):
        return []
    if node.get("class_name") == "Bidirectional":
        backward = inner.get("backward_layer") or inner.get("layer")
        return _named([("forward_", inner.get("layer")), ("backward_", backward)])
    layers = inner.get("layers")
    return _named([*(("", child) for child in (layers if isinstance(layers, list) else [])),
                   ("", inner.get("layer"))])


def _named(children: list[tuple[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``(side + name, child)`` for each child config that has a name."""
    named = []
    for side, child in children:
        inner = child.get("config") if isinstance(child, dict) else None
        name = inner.get("name") if isinstance(inner, dict) else None
        if isinstance(name, str):
            named.append((side + name.removeprefix(side), child))
    return named


def _activation(value: Any) -> str | None:
    """``"relu"``, or Keras 3's serialised function ``{"config": "relu", …}``."""
    if isinstance(value, dict):
        value = value.get("config")
    return value if isinstance(value, str) else None

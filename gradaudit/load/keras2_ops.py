"""Keras 2 ``TFOpLambda`` layers that name a plain TensorFlow function.

tf_keras records a TensorFlow function called on Keras tensors, such as
``tf.stop_gradient(x)``, as a ``TFOpLambda`` layer whose config holds only the
function's API name (``"function": "stop_gradient"``): no bytecode, nothing
from the file runs. Keras 3 has no such class and refuses the file ("Unknown
layer: 'TFOpLambda'"). gradaudit maps the names on :data:`SAFE_TF_OPS` to a
Keras 3 op of its own; any other name stays refused by the config scan, since
a TF API name could be anything from ``io.write_file`` to ``py_function``.

tf_keras also records a TFOpLambda's inbound node as the call's arguments
(``["cut", 0, 0, {}]``) rather than as a list of inbound tensors, which Keras
3 misreads ("Missing node: c"); :func:`load_h5` rewrites those nodes before
handing the config to Keras 3's own legacy loader functions.
"""

from __future__ import annotations

from typing import Any

from gradaudit.load import config_tree

# TF API name in a TFOpLambda config -> the Keras 3 op gradaudit runs instead.
# Only single-tensor functions, so the recorded call needs no argument mapping.
SAFE_TF_OPS = frozenset({"stop_gradient"})


def is_safe_tf_op(node: dict[str, Any]) -> bool:
    """Whether a config node is a TFOpLambda naming a function on the allow-list."""
    inner = node.get("config")
    if node.get("class_name") != "TFOpLambda" or not isinstance(inner, dict):
        return False
    function = inner.get("function")
    return isinstance(function, str) and function in SAFE_TF_OPS


def custom_objects() -> dict[str, Any]:
    """``{"TFOpLambda": …}`` for Keras 3's legacy loader."""
    import keras

    class StopGradient(keras.layers.Layer):
        """``tf.stop_gradient`` as a layer; named so the cut search reports stop_gradient."""

        def call(self, inputs: Any) -> Any:
            return keras.ops.stop_gradient(inputs)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape  # so building the graph need not trace call() in TensorFlow

    layers = {"stop_gradient": StopGradient}

    class TFOpLambda:
        """Builds the layer for an allow-listed function name; refuses any other."""

        @classmethod
        def from_config(cls, config: dict[str, Any]) -> Any:
            function = config.get("function")
            if function not in layers:
                raise ValueError(f"TFOpLambda layer '{config.get('name')}' calls TensorFlow "
                                 f"function '{function}', which gradaudit cannot rebuild")
            return layers[function](name=config.get("name"),
                                    trainable=config.get("trainable", True),
                                    dtype=config.get("dtype"))

    return {"TFOpLambda": TFOpLambda}


def legacy_model_from_config(config: dict[str, Any], *, safe_mode: bool) -> Any:
    """Keras 3's legacy config → model step, with TFOpLambda nodes rewritten (in place)
    and only gradaudit's own custom objects (no global registrations)."""
    from keras.src.legacy.saving import saving_options, saving_utils
    from keras.src.saving.serialization_lib import SafeModeScope

    config_tree.walk(config, _rewrite_tf_op_node)
    with saving_options.keras_option_scope(use_legacy_config=True), SafeModeScope(safe_mode):
        return saving_utils.model_from_config(config, custom_objects=custom_objects())


def load_h5(handle: Any, *, safe_mode: bool) -> Any:
    """``legacy_h5_format.load_model_from_hdf5``'s steps (config, then weights), for
    a config made loadable by :func:`legacy_model_from_config`."""
    import json

    from keras.src.legacy.saving import legacy_h5_format, saving_options
    from keras.src.saving.serialization_lib import SafeModeScope

    raw = handle.attrs["model_config"]
    config = json.loads(raw.decode("utf-8") if hasattr(raw, "decode") else raw)
    model = legacy_model_from_config(config, safe_mode=safe_mode)
    with saving_options.keras_option_scope(use_legacy_config=True), SafeModeScope(safe_mode):
        legacy_h5_format.load_weights_from_hdf5_group(handle["model_weights"], model)
    return model


def _rewrite_tf_op_node(node: dict[str, Any]) -> bool:
    """``[["cut", 0, 0, {}]]`` → ``[[["cut", 0, 0, {}]]]`` if ``node`` is a TFOpLambda;
    always go on into it (a nested model may hold more)."""
    nodes = node.get("inbound_nodes")
    if node.get("class_name") == "TFOpLambda" and isinstance(nodes, list):
        node["inbound_nodes"] = [[n] if n and isinstance(n[0], str) else n for n in nodes]
    return True

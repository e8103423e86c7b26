"""Which activations can kill a gradient, how a unit of each is judged, and when
a model output counts as constant.

Shared by every model route (Keras layers, SavedModel graph ops) and quoted by
the catalogue; importing it costs nothing (no TensorFlow).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Activation function name -> (kind, low, high). "relu" kinds have a derivative of
# exactly zero when inactive; "saturating" kinds flatten out towards their bounds.
RELU_FAMILY = {"relu": math.inf, "relu6": 6.0}
SATURATING = {
    "sigmoid": (0.0, 1.0),
    "hard_sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "hard_tanh": (-1.0, 1.0),
}
# Operations whose output carries no gradient even though it is float.
NON_DIFFERENTIABLE_OPS = frozenset({"StopGradient", "Round", "Floor", "Ceil", "Sign"})


@dataclass(frozen=True)
class UnitRule:
    """How to judge one unit (last-axis channel) of a layer's output.

    ``relu``: a unit is active where its output is non-zero and below ``high``
    (relu6 is flat at 6 too). ``saturating``: a unit is saturated where its
    output is within epsilon of ``low`` or ``high``.
    """

    kind: str  # "relu" | "saturating"
    low: float
    high: float


# TensorFlow graph op type -> (activation name, how to judge its units): the
# activations found in a graph (a SavedModel's, or a custom layer's traced call).
ACTIVATION_OPS = {
    "Relu": ("relu", UnitRule("relu", 0.0, RELU_FAMILY["relu"])),
    "Relu6": ("relu6", UnitRule("relu", 0.0, RELU_FAMILY["relu6"])),
    "Sigmoid": ("sigmoid", UnitRule("saturating", *SATURATING["sigmoid"])),
    "Tanh": ("tanh", UnitRule("saturating", *SATURATING["tanh"])),
}


def snake(name: str) -> str:
    """``StopGradient`` → ``stop_gradient``: op names as people write the function."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# A model output is constant when, element by element over the probe samples,
# max - min is within this many float32 machine epsilons (2^-23) of the element's
# magnitude. Exact equality would miss outputs that are constant in exact arithmetic
# but computed with rounding: sigmoid(x) + sigmoid(-x), or a softmax summed over its
# classes, spread over 2 to 8 epsilons (measured, 2 to 10,000 classes); a healthy
# output varies by orders of magnitude more on random inputs.
CONSTANT_EPSILONS = 16
FLOAT32_EPSILON = 2.0**-23

"""The head/loss table: one source for the check, ``gradaudit explain GA412`` and the README.

Plain data beside the activation rules, upstream of both its readers: the checks
(:mod:`gradaudit.checks.heads` judges with it) and the catalogue (which prints it), so
that neither reaches back into the other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

PROBABILITY_ACTIVATIONS = frozenset({"softmax", "sigmoid", "hard_sigmoid"})
"""Heads whose outputs are probabilities in [0, 1]: what a probability crossentropy reads."""
SIGMOIDS = frozenset({"sigmoid", "hard_sigmoid"})
PROBABILITY_LOSSES = frozenset({
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "binary_focal_crossentropy", "categorical_focal_crossentropy",
})
"""Losses that read the output as probabilities unless ``from_logits=True``."""
BINARY_LOSSES = frozenset({"binary_crossentropy", "binary_focal_crossentropy"})
"""Crossentropies that score every unit as its own yes/no."""
CLASS_LOSSES = frozenset({
    "categorical_crossentropy", "sparse_categorical_crossentropy",
    "categorical_focal_crossentropy",
})
"""Losses normalised over the class axis: over one unit the class is certain for any input."""
REGRESSION_LOSSES = frozenset({
    "mean_squared_error", "mean_absolute_error", "huber", "log_cosh", "poisson",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
})
"""Losses that score a real-valued target (Keras's canonical names)."""
HEAD_RANGES: dict[str, tuple[float, float]] = {
    "sigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0),
    "tanh": (-1.0, 1.0), "hard_tanh": (-1.0, 1.0), "relu": (0.0, math.inf),
    "relu6": (0.0, 6.0), "softplus": (0.0, math.inf), "exponential": (0.0, math.inf),
    "elu": (-1.0, math.inf), "selu": (-1.7580993408473766, math.inf),
}
"""The values a bounded head can output (selu's floor is -scale·alpha): a regression
target outside them is one no weight can reach."""
ACCURACY = frozenset({"accuracy", "acc"})
"""The metric names Keras resolves to binary, categorical or sparse categorical accuracy."""
CLASS_METRICS = frozenset({"auc", "precision", "recall", "f1_score", "fbeta_score"})
"""Metrics, besides the accuracies, that only make sense for a classifier."""


@dataclass(frozen=True)
class Output:
    """One output as the table reads it: what the file shows about its head and loss."""

    layer: str
    activation: str
    units: int | None
    loss: str | None
    from_logits: bool
    metrics: tuple[str, ...]
    accuracy: str | None
    """What the ``accuracy`` metric resolves to, per the writer's rule; None if absent."""


@dataclass(frozen=True)
class Pairing:
    """One row of the head/loss table: the first row that fits an output judges it."""

    head: str
    loss: str
    code: str
    verdict: str
    instead: str
    fits: Callable[[Output], bool]


def classifier(output: Output) -> bool:
    """Whether the metrics show a classifier (an accuracy, AUC, precision, recall)."""
    return any(m.endswith("accuracy") or m in CLASS_METRICS or m in ACCURACY
               for m in output.metrics)


HEAD_LOSS: tuple[Pairing, ...] = (
    Pairing("softmax over 1 unit", "any", "GA411",
            "a softmax over one unit is 1 for every input: the output says nothing and its "
            "derivative is zero (Keras on TensorFlow trains the logits under a crossentropy, "
            "but the model still outputs 1)",
            "one sigmoid unit with binary_crossentropy, or a softmax over 2 units with "
            "categorical_crossentropy",
            lambda o: o.activation == "softmax" and o.units == 1),
    Pairing("any head over 1 unit", "categorical or sparse categorical crossentropy", "GA411",
            "normalised over one class, the prediction is certain for every input: the loss "
            "is constant and gives no gradient",
            "one sigmoid unit with binary_crossentropy",
            lambda o: o.units == 1 and o.loss in CLASS_LOSSES),
    Pairing("softmax or sigmoid", "a crossentropy with from_logits=True", "GA412",
            "the loss squashes the probabilities a second time (JAX, PyTorch; Keras on "
            "TensorFlow quietly uses the logits, so the file trains differently elsewhere)",
            "from_logits=False, or a linear head with from_logits=True",
            lambda o: (o.activation in PROBABILITY_ACTIVATIONS and o.from_logits
                       and o.loss in PROBABILITY_LOSSES)),
    Pairing("softmax over > 1 units", "binary crossentropy", "GA412",
            "independent Bernoullis on a categorical task: each unit is scored as its own "
            "yes/no while the softmax ties them together",
            "categorical_crossentropy (one-hot labels) or sparse_categorical_crossentropy "
            "(class ids)",
            lambda o: o.activation == "softmax" and (o.units or 0) > 1 and o.loss in BINARY_LOSSES),
    Pairing("sigmoid over > 1 units", "categorical or sparse categorical crossentropy", "GA412",
            "the loss renormalises the sigmoids by their sum: not a distribution the model "
            "outputs",
            "a softmax with categorical crossentropy (one class per sample), or "
            "binary_crossentropy (several labels per sample)",
            lambda o: o.activation in SIGMOIDS and (o.units or 0) > 1 and o.loss in CLASS_LOSSES),
    Pairing("linear, relu, tanh or another non-probability head",
            "a crossentropy with from_logits=False", "GA412",
            "the loss reads probabilities: values outside [ε, 1 - ε] are clipped, and a clipped "
            "value has zero gradient",
            "from_logits=True on the linear head, or a sigmoid/softmax head",
            lambda o: (o.activation not in PROBABILITY_ACTIVATIONS and not o.from_logits
                       and o.loss in PROBABILITY_LOSSES)),
    Pairing("softmax, or sigmoid with a classification metric",
            "a regression loss (mse, mae, huber, log_cosh, poisson, mape, msle)", "GA412",
            "its gradient vanishes as the head saturates, and a softmax's outputs sum to 1",
            "a crossentropy for classes; a linear head for real-valued targets",
            lambda o: o.loss in REGRESSION_LOSSES and (
                o.activation == "softmax" or (o.activation in SIGMOIDS and classifier(o)))),
)
"""The head/loss table, in the order it is read."""


def table_markdown() -> str:
    """:data:`HEAD_LOSS` as the README's markdown table."""
    rows = ["| head | loss | verdict | use instead |", "|---|---|---|---|"]
    rows += [f"| {p.head} | {p.loss} | {p.code}: {p.verdict} | {p.instead} |" for p in HEAD_LOSS]
    return "\n".join(rows)


def table_text() -> str:
    """:data:`HEAD_LOSS` as ``gradaudit explain`` prints it, one row a line."""
    return "\n".join(f"- {p.head} + {p.loss} → {p.code}: {p.verdict}; use {p.instead}."
                     for p in HEAD_LOSS)

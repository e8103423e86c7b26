"""What the probe differentiates, per output: its compiled loss, or a random projection.

Training differentiates the compiled loss, so a file compiled with one is probed
through it: each output's loss × its loss weight, with the loss's own config
(``from_logits``, label smoothing, reduction), on labels drawn from the seed to
fit the loss (:data:`FORMS`) or supplied with the inputs (``y`` / ``y:<output>``).
Keras's TensorFlow backend then differentiates a sigmoid/softmax head under a
probability crossentropy through its logits (``_get_logits`` in
``keras/src/backend/tensorflow/nn.py``: the logits cached on the activation's
output, or the input of a final Sigmoid/Softmax op in a traced step), so a
saturated head that ``fit`` trains is not called dead.

An output without a loss, a file without compile config, or a loss that cannot be
rebuilt gets the projection ``<output, c>`` with a fixed random ``c``: a plain sum
would be constant for a softmax. Losses are rebuilt only from ``keras.losses`` by
name or from a class an ``--import``ed module registered: a model file is untrusted
and may name any module.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import tensorflow as tf

from gradaudit.errors import AuditError
from gradaudit.history.loss_config import CompiledLosses
from gradaudit.history.training_types import LossSpec
from gradaudit.model.head_table import PROBABILITY_LOSSES

Form = Literal["one_hot", "ids", "binary", "signed", "counts", "positive", "normal"]
FORMS: dict[str, Form] = {
    "categorical_crossentropy": "one_hot", "categorical_focal_crossentropy": "one_hot",
    "categorical_hinge": "one_hot", "kl_divergence": "one_hot",
    "sparse_categorical_crossentropy": "ids",
    "binary_crossentropy": "binary", "binary_focal_crossentropy": "binary",
    "dice": "binary", "tversky": "binary",
    "hinge": "signed", "squared_hinge": "signed",
    "poisson": "counts", "mean_squared_logarithmic_error": "positive",
}
"""The labels each loss is probed with; any other loss (mse, mae, huber, log_cosh, mape,
cosine_similarity, a custom one) gets standard normal labels."""
EXPECTED: dict[Form, str] = {
    "one_hot": "one-hot (or probability) rows over the classes, values in [0, 1]",
    "ids": "integer class ids in [0, classes), one fewer axis than the output",
    "binary": "values in [0, 1]", "signed": "values in [-1, 1]",
    "counts": "non-negative values", "positive": "non-negative values",
    "normal": "finite real values",
}
BOUNDS: dict[Form, tuple[float, float]] = {"binary": (0.0, 1.0), "signed": (-1.0, 1.0)}
LABEL_STREAM = 2
"""The labels' own random stream under the seed (1 is the projection's cotangents)."""


@dataclass(frozen=True)
class OutputLoss:
    """One output's loss, rebuilt, and how it is fed."""

    output: str
    spec: LossSpec
    fn: Callable[[Any, Any], Any]
    form: Form
    is_object: bool
    """A ``keras.losses.Loss`` (it reduces as configured); a function is averaged as
    Keras's compile wraps it."""


@dataclass(frozen=True)
class Objective:
    """Per model output, in the order :meth:`AuditedModel.run` returns them: its loss,
    or None (the projection); the supplied labels; notes for the report."""

    losses: tuple[OutputLoss | None, ...]
    labels: tuple[np.ndarray | None, ...]
    seed: int
    notes: tuple[str, ...] = ()

    @property
    def uses_loss(self) -> bool:
        return any(loss is not None for loss in self.losses)

    def kinds(self, names: list[str]) -> dict[str, str]:
        """Output name → "loss" or "projection"."""
        return {name: "projection" if loss is None else "loss"
                for name, loss in zip(names, self.losses, strict=False)}

    @property
    def reads_logits(self) -> bool:
        """Whether a loss here is a probability crossentropy with ``from_logits=False``:
        the losses Keras's TensorFlow backend differentiates through the logits of a final
        sigmoid/softmax (``_get_logits``) — from the ``_keras_logits`` Keras's activations
        leave on a tensor, or, in a traced function only, from the op that made it."""
        return any(loss is not None and loss.spec.name in PROBABILITY_LOSSES
                   and not loss.spec.from_logits for loss in self.losses)

    def applied(self, returned: int) -> Objective:
        """This objective as the probe applied it to a model that returned ``returned``
        outputs: losses for another number of outputs are not matched by position, so
        every output was projected, and the report must not say otherwise."""
        if not self.uses_loss or returned == len(self.losses):
            return self
        return Objective((), (), self.seed, (*self.notes, (
            f"the compile config names {len(self.losses)} outputs and the model returns "
            f"{returned}: the probe differentiates a random projection of every output")))

    def batch_labels(self, offset: int, n: int) -> list[tf.Tensor | None]:
        """The supplied labels of the batch of ``n`` samples from ``offset`` (None: drawn)."""
        return [None if labels is None else tf.constant(labels[offset:offset + n])
                for labels in self.labels]

    def term(self, index: int, output: tf.Tensor, labels: tf.Tensor | None,
             offset: tf.Tensor) -> tf.Tensor:
        """Output ``index``'s loss × its weight on this batch (a scalar, float32)."""
        loss = self.losses[index]
        assert loss is not None
        if labels is None:
            labels = draw(loss.form, output, self.seed, index, offset)
        value = loss.fn(labels, output)
        # A function, or a loss with reduction "none", gives values per sample: Keras's
        # compile averages them.
        value = tf.reduce_mean(tf.cast(value, tf.float32))
        return value * loss.spec.weight


def draw(form: Form, output: tf.Tensor, seed: int, index: int, offset: tf.Tensor) -> tf.Tensor:
    """Labels of ``form`` for ``output``'s batch, from the seed's label stream, the
    batch's first sample and the output's index: the same on every run, traced or not."""
    key = tf.random.experimental.stateless_fold_in(
        tf.random.experimental.stateless_fold_in(tf.constant([seed, LABEL_STREAM], tf.int64),
                                                 offset), index)
    shape = tf.shape(output)
    classes = output.shape[-1] if output.shape.rank and output.shape[-1] else shape[-1]
    if form in ("one_hot", "ids"):
        ids = tf.random.stateless_uniform(shape[:-1], key, minval=0, maxval=classes,
                                          dtype=tf.int32)
        return ids if form == "ids" else tf.one_hot(ids, classes)
    if form in ("binary", "signed"):
        bits = tf.cast(tf.random.stateless_uniform(shape, key) < 0.5, tf.float32)
        return bits if form == "binary" else 2.0 * bits - 1.0
    if form == "counts":
        return tf.random.stateless_poisson(shape, key, lam=1.0, dtype=tf.float32)
    normal = tf.random.stateless_normal(shape, key)
    return tf.abs(normal) if form == "positive" else normal


def build(compiled: CompiledLosses | None, choice: str | None, seed: int,
          supplied: Mapping[str, np.ndarray]) -> Objective:
    """The objective for the outputs ``compiled`` names (in the model's output order).

    ``choice`` is ``--objective`` (None: the loss where the file has one). Supplied
    ``labels`` (keys ``y`` or ``y:<output>``) are checked against each loss now, before
    anything runs (AuditError: one line naming the output, the loss and the form).
    """
    notes: list[str] = []
    projection = Objective((), (), seed)
    if choice == "projection":
        return _without_labels(projection, supplied, "--objective projection uses no labels")
    if compiled is None or not compiled.losses:
        if choice == "loss":
            notes.append("--objective loss: the model has no compiled loss; the probe "
                         "differentiates a random projection of the outputs")
        note = "the model has no compiled loss to use them with"
        return _without_labels(_noted(projection, notes), supplied, note)
    names = list(compiled.outputs)
    labels = _labels_by_output(supplied, names)
    losses: list[OutputLoss | None] = []
    arrays: list[np.ndarray | None] = []
    for name in names:
        spec = compiled.losses.get(name)
        loss = None if spec is None else _rebuild(name, spec, notes)
        losses.append(loss)
        given = labels.get(name)
        if given is not None and loss is None:
            notes.append(f"the labels for output '{name}' are ignored: it has no loss the "
                         "probe can use")
            given = None
        if given is not None and loss is not None:
            given = check_labels(name, loss, given, compiled.classes.get(name))
        arrays.append(given)
    return Objective(tuple(losses), tuple(arrays), seed, compiled.notes + tuple(notes))


def _noted(objective: Objective, notes: list[str]) -> Objective:
    return Objective(objective.losses, objective.labels, objective.seed, tuple(notes))


def _without_labels(objective: Objective, supplied: Mapping[str, np.ndarray],
                    why: str) -> Objective:
    """``objective``, with a note when labels were supplied that it does not use."""
    if not supplied or not why:
        return objective
    return Objective(objective.losses, objective.labels, objective.seed,
                     (*objective.notes, f"the labels in the inputs are ignored: {why}"))


def _labels_by_output(supplied: Mapping[str, np.ndarray], names: list[str]
                      ) -> dict[str, np.ndarray]:
    """Output name → supplied labels: ``y`` for a single output, ``y:<name>`` for any."""
    found: dict[str, np.ndarray] = {}
    for key, array in supplied.items():
        name = key[2:] if key.startswith("y:") else None
        if key == "y":
            if len(names) != 1:
                raise AuditError(f"labels 'y' fit a single-output model; this one has "
                                 f"{len(names)} outputs: key them y:<output> "
                                 f"({', '.join(f'y:{n}' for n in names)})")
            name = names[0]
        if name not in names:
            raise AuditError(f"labels '{key}' name no output of the model "
                             f"(outputs: {', '.join(names)})")
        found[name] = array
    return found


def check_labels(output: str, loss: OutputLoss, labels: np.ndarray,
                 classes: int | None) -> np.ndarray:
    """``labels`` as the loss takes them, or AuditError naming the output, the loss and
    the form expected (never a TensorFlow error deep inside the step)."""
    form = loss.form
    integral = np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)
    problem = None
    if not (integral or np.issubdtype(labels.dtype, np.floating)):
        problem = f"found dtype {labels.dtype}"
    elif not np.all(np.isfinite(labels)):
        problem = "found values that are not finite"
    elif form == "one_hot":
        if integral and (labels.ndim == 1 or labels.shape[-1] == 1):
            problem = "found integer class ids (use sparse_categorical_crossentropy, or " \
                      "one-hot encode them)"
        elif labels.ndim < 2 or (classes is not None and labels.shape[-1] != classes):
            problem = f"found shape {labels.shape}" + (
                f" for {classes} classes" if classes is not None else "")
        elif labels.min() < 0 or labels.max() > 1:
            problem = f"found values in [{labels.min():g}, {labels.max():g}]"
    elif form == "ids":
        whole = bool(np.all(np.equal(np.mod(labels, 1), 0)))
        if classes is not None and classes > 1 and labels.ndim >= 2 and (
                labels.shape[-1] == classes):
            problem = "found one-hot rows (use categorical_crossentropy, or argmax them)"
        elif not whole:
            problem = "found fractional values"
        elif labels.min() < 0 or (classes is not None and labels.max() >= classes):
            problem = f"found ids in [{labels.min():g}, {labels.max():g}]" + (
                f" for {classes} classes" if classes is not None else "")
        else:
            labels = labels.astype(np.int64)
    elif form in BOUNDS and (labels.min() < BOUNDS[form][0] or labels.max() > BOUNDS[form][1]):
        problem = f"found values in [{labels.min():g}, {labels.max():g}]"
    elif form in ("counts", "positive") and labels.min() < 0:
        problem = f"found a minimum of {labels.min():g}"
    if problem is not None:
        raise AuditError(f"labels for output '{output}' do not fit its loss "
                         f"{loss.spec.name}: expected {EXPECTED[form]}; {problem}")
    return labels if form == "ids" else labels.astype(np.float32)


def _rebuild(output: str, spec: LossSpec, notes: list[str]) -> OutputLoss | None:
    """The loss ``spec`` names, from Keras's own losses or the registered classes; None
    (the projection) with a note when it cannot be rebuilt."""
    import keras

    try:
        if spec.is_class:
            cls = _loss_class(keras, spec.written)
            if cls is None:
                raise ValueError(f"{spec.written} is neither a Keras loss nor registered "
                                 "by an --import")
            fn: Callable[[Any, Any], Any] = cls.from_config(_accepted(cls, spec.config))
        else:
            fn = _loss_function(keras, spec)
    except Exception as exc:  # from_config may raise anything on a foreign config
        notes.append(f"the loss of output '{output}' ({spec.written}) cannot be rebuilt "
                     f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
                     "); the probe differentiates a random projection of it")
        return None
    return OutputLoss(output, spec, fn, FORMS.get(spec.name, "normal"),
                      isinstance(fn, keras.losses.Loss))


def _loss_class(keras: Any, written: str) -> Any:
    """A ``keras.losses.Loss`` subclass by its class name in ``keras.losses``, else the
    class registered under ``written``; None for anything else."""
    found = getattr(keras.losses, written, None) if written.isidentifier() else None
    if not _is_loss_class(keras, found):
        found = keras.saving.get_registered_object(written)
    return found if _is_loss_class(keras, found) else None


def _is_loss_class(keras: Any, found: Any) -> bool:
    return isinstance(found, type) and issubclass(found, keras.losses.Loss)


def _loss_function(keras: Any, spec: LossSpec) -> Callable[[Any, Any], Any]:
    """A loss function by name: Keras's own (its names and aliases) or a registered one."""
    for name in (spec.written, spec.name):
        found = keras.saving.get_registered_object(name) if ">" in name else (
            _keras_function(keras, name))
        if callable(found):
            return found  # type: ignore[no-any-return]
    raise ValueError(f"{spec.written} is not a Keras loss function")


def _keras_function(keras: Any, name: str) -> Any:
    try:
        return keras.losses.get(name)
    except ValueError:
        return None


def _accepted(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``config`` the class's constructor takes (Keras 2 writes ``fn``; its
    reduction ``auto`` is Keras 3's ``sum_over_batch_size``)."""
    parameters = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    kept = {key: value for key, value in config.items() if takes_any or key in parameters}
    if kept.get("reduction") == "auto":
        kept["reduction"] = "sum_over_batch_size"
    return kept

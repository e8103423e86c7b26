"""Input specs of a model → reproducible random probe batches.

Float inputs are standard normal, or uniform over a range (``--input-dist``,
``--input-range``: images often expect [0, 1] or [0, 255]). Integer inputs (token ids) are uniform in
``[0, vocab)``, where ``vocab`` is the ``input_dim`` of the Embedding layer
that consumes the input. Unknown (None) dimensions other than the batch axis
get ``DEFAULT_DIM`` entries. Batches are generated one at a time, never all
samples at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gradaudit.errors import AuditError

DEFAULT_DIM = 32
"""Size given to every unknown (None) non-batch dimension of an input."""


@dataclass(frozen=True)
class InputSpec:
    """One model input as gradaudit will feed it."""

    name: str
    shape: tuple[int, ...]  # without the batch axis
    dtype: str
    vocab: int | None = None  # for integer inputs
    declared: tuple[int | None, ...] = ()
    """The shape as the model declares it (None: any size); supplied data is checked against it."""

    @property
    def is_float(self) -> bool:
        return "float" in self.dtype


def input_specs(model: Any, synthesise: bool = True) -> list[InputSpec]:
    """Read the model's inputs; AuditError if they cannot be synthesised.

    With ``synthesise=False`` (the user supplies the inputs) inputs that random
    data cannot fill, such as integer inputs without an Embedding, are accepted.
    """
    tensors = getattr(model, "inputs", None)
    if not tensors:
        raise AuditError(
            "the model does not record its input shapes (a subclassed model "
            "that was never built?); random inputs cannot be made for it"
        )
    specs = []
    for tensor in tensors:
        name = _input_name(tensor)
        shape = tuple(DEFAULT_DIM if d is None else int(d) for d in tensor.shape[1:])
        dtype = str(tensor.dtype)
        vocab = None
        if "int" in dtype:
            vocab = _embedding_vocab(tensor)
            if vocab is None and synthesise:
                raise AuditError(
                    f"input '{name}' is {dtype} but feeds no Embedding layer, so "
                    "its valid value range is unknown; audit with real inputs (--inputs FILE)"
                )
        elif "float" not in dtype and synthesise:
            raise AuditError(
                f"input '{name}' has dtype {dtype}, which gradaudit cannot "
                "synthesise; audit with real inputs (--inputs FILE)"
            )
        declared = tuple(None if d is None else int(d) for d in tensor.shape[1:])
        specs.append(InputSpec(name=name, shape=shape, dtype=dtype, vocab=vocab,
                               declared=declared))
    return specs


def _input_name(tensor: Any) -> str:
    history = getattr(tensor, "_keras_history", None)
    operation = getattr(history, "operation", None)
    return getattr(operation, "name", None) or str(getattr(tensor, "name", "input"))


def _embedding_vocab(tensor: Any) -> int | None:
    """``input_dim`` of the Embedding layer(s) that read ``tensor`` directly.

    Looks through nested models too: a Sequential whose first layer is an
    Embedding consumes its input through that layer. With several consumers
    the smallest vocabulary keeps every id valid for all of them.
    """
    import keras

    vocabs: list[int] = []
    frontier = [tensor]
    while frontier:
        current = frontier.pop()
        operation = current._keras_history.operation
        for node in operation._outbound_nodes:
            if not any(t is current for t in node.input_tensors):
                continue
            consumer = node.operation
            if isinstance(consumer, keras.layers.Embedding):
                vocabs.append(int(consumer.input_dim))
            elif isinstance(consumer, keras.Model) and getattr(consumer, "inputs", None):
                frontier.extend(consumer.inputs)
    return min(vocabs) if vocabs else None

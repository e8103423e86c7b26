"""A model input as gradaudit feeds it: name, shape, dtype, and the id range of token inputs.

Unknown (None) dimensions other than the batch axis get ``DEFAULT_DIM``
entries; integer inputs (token ids) carry the ``input_dim`` of the Embedding
layer that consumes them as ``vocab``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DIM = 32
"""Size given to every unknown (None) non-batch dimension of an input."""


@dataclass(frozen=True)
class InputSpec:
    """One model input as gradaudit will feed it."""

    name: str
    shape: tuple[int, ...]  # without the batch axis
    dtype: str
    vocab: int | None = None
    """For token ids (an input read by an Embedding, integer or float): the vocabulary."""
    declared: tuple[int | None, ...] = ()
    """The shape as the model declares it (None: any size); supplied data is checked against it."""
    batch: int | None = None
    """The batch size the model fixes, where a stateful layer keeps a state per sample of
    exactly that many (``batch_shape``, Keras 2 ``batch_input_shape``); None: any."""

    @property
    def is_float(self) -> bool:
        return "float" in self.dtype

    @property
    def is_token_ids(self) -> bool:
        """Values that only index (an Embedding's ids): never differentiable, whatever the dtype."""
        return self.vocab is not None


InputShapes = tuple[tuple[str | None, tuple[int, ...]], ...]
"""``--input-shape`` values: (input name or None for the only input, shape without batch)."""


def parse_input_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """``"128,40,1"`` or ``"mel=128,40,1"``; ValueError saying the accepted form."""
    name, _, shape = text.rpartition("=")
    try:
        dims = tuple(int(part) for part in shape.split(","))
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims) or (_ and not name.strip()):
        raise ValueError(f"{text!r}: expected SHAPE or NAME=SHAPE, positive sizes without the "
                         "batch axis, e.g. 128,40,1 or mel=128,40,1")
    return (name.strip() or None), dims


def resolve_shape(name: str, declared: tuple[int | None, ...] | None, shapes: InputShapes,
                  names: list[str]) -> tuple[int, ...]:
    """The shape to feed input ``name``: the ``--input-shape`` given for it (which must
    agree with the model's known axes), else the declared one with every unknown
    axis at ``DEFAULT_DIM``. ``names`` are all the model's inputs (for messages)."""
    from gradaudit.errors import AuditError

    given = [shape for key, shape in shapes if key == name or (key is None and len(names) == 1)]
    if not given:
        if declared is None:
            raise AuditError(f"the model does not record the shape of input '{name}' (a "
                             "subclassed model that was never built?); give it with "
                             "--input-shape SHAPE (without the batch axis, e.g. 128,40,1)")
        return tuple(DEFAULT_DIM if d is None else d for d in declared)
    shape = given[-1]
    if declared is not None and (len(shape) != len(declared) or any(
            want is not None and want != got for want, got in zip(declared, shape, strict=True))):
        wanted = ", ".join("?" if d is None else str(d) for d in declared)
        raise AuditError(f"--input-shape {','.join(map(str, shape))} does not fit input "
                         f"'{name}', declared ({wanted}) without the batch axis (? = any size)")
    return shape


def fixed_batch(specs: list[InputSpec]) -> int | None:
    """The one batch size every probe step must have, or None; AuditError if the inputs
    fix different ones."""
    from gradaudit.errors import AuditError

    fixed = {spec.batch for spec in specs if spec.batch is not None}
    if len(fixed) > 1:
        raise AuditError(f"the model's inputs declare different batch sizes "
                         f"({', '.join(map(str, sorted(fixed)))}); a probe step cannot have both")
    return fixed.pop() if fixed else None


def check_shape_names(shapes: InputShapes, names: list[str]) -> None:
    """AuditError for an ``--input-shape`` naming no input, or unnamed on a multi-input model."""
    from gradaudit.errors import AuditError

    listed = ", ".join(names)
    for key, _ in shapes:
        if key is None and len(names) > 1:
            raise AuditError(f"--input-shape needs NAME=SHAPE: the model has {len(names)} "
                             f"inputs ({listed})")
        if key is not None and key not in names:
            raise AuditError(f"--input-shape {key}=…: the model has no input '{key}' "
                             f"(it has: {listed})")

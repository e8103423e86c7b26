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

    @property
    def is_float(self) -> bool:
        return "float" in self.dtype

    @property
    def is_token_ids(self) -> bool:
        """Values that only index (an Embedding's ids): never differentiable, whatever the dtype."""
        return self.vocab is not None

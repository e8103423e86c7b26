"""Reproducible random probe batches from the model's input specs.

Float inputs are standard normal, or uniform over a range (``--input-dist``,
``--input-range``: images often expect [0, 1] or [0, 255]). Integer inputs
(token ids) are uniform in ``[0, vocab)``. Batches are generated one at a
time, never all samples at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from gradaudit.model.specs import InputSpec
from gradaudit.options import Options


def random_source(specs: list[InputSpec], seed: int, dist: str = Options.input_dist,
                  value_range: tuple[float, float] = Options.input_range) -> dict[str, Any]:
    """How random inputs were drawn, for the report (``summary.inputs_source``);
    ``token_ids`` names the inputs filled with ids, and their vocabulary."""
    source: dict[str, Any] = {"kind": "random", "seed": seed, "distribution": dist}
    if dist == "uniform":
        source["range"] = list(value_range)
    ids = {spec.name: spec.vocab for spec in specs if spec.vocab is not None}
    if ids:
        source["token_ids"] = ids
    return source


def random_batches(
    specs: list[InputSpec], samples: int, batch_size: int, seed: int,
    dist: str = Options.input_dist,
    value_range: tuple[float, float] = Options.input_range,
) -> Iterator[list[np.ndarray]]:
    """Yield ``ceil(samples / batch_size)`` batches, one array per input.

    Float inputs are standard normal, or uniform in ``[low, high)`` when
    ``dist`` is "uniform"; token ids (inputs an Embedding reads, integer or float)
    are uniform in ``[0, vocab)`` whatever ``dist`` says.
    """
    rng = np.random.default_rng(seed)
    low, high = value_range
    remaining = samples
    while remaining > 0:
        n = min(batch_size, remaining)
        remaining -= n
        batch = []
        for spec in specs:
            if spec.vocab is not None:
                batch.append(rng.integers(0, spec.vocab, (n, *spec.shape)).astype(spec.dtype))
            elif dist == "uniform":
                batch.append(rng.uniform(low, high, (n, *spec.shape)).astype(spec.dtype))
            else:
                batch.append(rng.standard_normal((n, *spec.shape)).astype(spec.dtype))
        yield batch

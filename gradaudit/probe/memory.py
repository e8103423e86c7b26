"""The probe's batch size, chosen so that a step fits in a memory budget (``--max-memory``).

A probe step is a forward pass under a gradient tape and the backward pass. Its
memory grows with the batch: the tape keeps what each operation needs for its
gradient — about every layer's output, for every sample. Measured on this
project's machine (peak RSS of one step at 4 and at 16 samples, TensorFlow 2.21,
CPU): DenseNet121 at 224² holds 307 MB per sample for 190 MB of layer outputs
(1.6×), EfficientNetB0 179 MB for 96 MB (1.9×). So a step is estimated, before
the first one runs, as ``TAPE_FACTOR`` × the layer outputs of one sample (counted
by :mod:`.sizing`, see below) per sample, plus
``VARIABLE_COPIES`` copies of the trainable variables (their gradients, the
probe's running mean of them, and a temporary while it is updated). The batch
is the largest that keeps what the process already holds plus that estimate
inside the budget, never above ``--batch-size``.

The values per sample come from :meth:`AuditedModel.output_elements` where the
model's graph records its shapes (recurrent and attention layers adding what
they keep inside: gates at every step, attention scores), else from one sample
run through the model; a run sees layer outputs only, so there a long recurrent
sequence or a wide attention is under-counted.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from gradaudit.errors import AuditError
from gradaudit.load.limits import one_sample_over
from gradaudit.model.specs import InputSpec

TAPE_FACTOR = 2.0
"""Bytes a tape step holds per byte of one sample's layer outputs (measured 1.6–1.9)."""
VARIABLE_COPIES = 3
"""Copies of the trainable variables a step adds, whatever the batch size."""
DEFAULT_BUDGET = 4 * 2**30
"""The budget when none is given, unless a quarter of physical memory is less."""

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*", re.IGNORECASE)
SIZE_FORMS = "a number of bytes or a size such as 512MiB, 4GiB, 4G or 1.5GB"


def parse_size(text: str) -> int:
    """``4GiB``, ``4G``, ``4GB``, ``512MiB``, ``2.5g`` or bytes → bytes (binary units:
    a memory budget is read against RSS, which is counted in pages of 2^k bytes)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"expected {SIZE_FORMS}")
    number, prefix, _ = match.groups()
    size = int(float(number) * _UNITS[prefix.lower()])
    if size < 1:
        raise ValueError(f"expected {SIZE_FORMS}, above 0")
    return size


def format_size(size: float) -> str:
    """Bytes as a person reads them: ``3.2 GiB``, ``512 MiB``."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size:.0f} B"


def default_budget() -> int:
    """The smaller of 4 GiB and a quarter of physical memory (4 GiB where it is unknown)."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return DEFAULT_BUDGET
    return min(DEFAULT_BUDGET, physical // 4) if physical > 0 else DEFAULT_BUDGET


def resident_bytes() -> int:
    """What this process holds in memory now (Linux), else its peak so far, else 0."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if os.uname().sysname == "Darwin" else int(peak) * 1024


@dataclass(frozen=True)
class StepEstimate:
    """A probe step's memory: what every sample adds, and what the step adds at any size;
    and the input values one sample holds (for ``--max-input-elements``)."""

    per_sample: int
    fixed: int
    input_elements: int = 0

    @classmethod
    def of(cls, output_elements: int, input_bytes: int, trainable_bytes: int,
           input_elements: int = 0) -> StepEstimate:
        """From one sample's layer-output values (float32), its input bytes and the
        trainable variables' bytes."""
        per_sample = math.ceil(TAPE_FACTOR * 4 * output_elements) + input_bytes
        return cls(per_sample=per_sample, fixed=VARIABLE_COPIES * trainable_bytes,
                   input_elements=input_elements)

    def bytes(self, batch: int) -> int:
        return self.fixed + batch * self.per_sample


@dataclass(frozen=True)
class BatchChoice:
    """The batch size a probe step uses, and why when it is smaller than asked."""

    batch_size: int
    reason: str | None = None
    """The limit the asked-for batch is over, with the figures (None: it fits)."""
    wanted: int = 0

    @property
    def note(self) -> str | None:
        return None if self.reason is None else (
            f"batches of {self.batch_size}, not {self.wanted}: {self.reason}")


def choose_batch(estimate: StepEstimate, wanted: int, budget: int, held: int, *,
                 max_input_elements: int | None = None) -> BatchChoice:
    """The largest batch up to ``wanted`` whose step, on top of the ``held`` bytes the
    process holds already, stays inside ``budget`` and whose inputs hold at most
    ``max_input_elements`` values; AuditError if one sample does not fit."""
    room = budget - held - estimate.fixed
    by_memory = room // estimate.per_sample if estimate.per_sample > 0 else wanted
    if by_memory < 1:
        step = f"a probe step of one sample needs about {format_size(estimate.bytes(1))} " \
               "(estimated)"
        raise AuditError(
            f"{step} and the process holds {format_size(held)} with the model loaded: over "
            f"--max-memory {format_size(budget)}; raise it if the machine has the memory")
    by_elements = wanted
    if max_input_elements is not None and estimate.input_elements > 0:
        by_elements = max_input_elements // estimate.input_elements
        if by_elements < 1:
            raise AuditError(one_sample_over(estimate.input_elements, max_input_elements))
    if min(by_memory, by_elements) >= wanted:
        return BatchChoice(wanted, wanted=wanted)
    if by_elements < by_memory:
        return BatchChoice(int(by_elements), wanted=wanted, reason=(
            f"{wanted} samples of the model's inputs hold "
            f"{wanted * estimate.input_elements} values, over --max-input-elements "
            f"{max_input_elements}"))
    return BatchChoice(int(by_memory), wanted=wanted, reason=(
        f"a step of {wanted} samples needs about {format_size(estimate.bytes(wanted))} "
        f"(estimated), and {format_size(held)} is held already, over --max-memory "
        f"{format_size(budget)}"))


def batch_within(budget: int, wanted: int, specs: list[InputSpec], output_elements: int,
                 trainable_params: int, max_input_elements: int | None = None) -> BatchChoice:
    """The batch for a model whose one sample of ``specs`` has ``output_elements``
    layer-output values, inside ``budget`` with what the process holds now, and inside
    ``max_input_elements`` input values."""
    import numpy as np

    input_bytes = sum(math.prod(spec.shape) * np.dtype(spec.dtype).itemsize for spec in specs)
    estimate = StepEstimate.of(output_elements, input_bytes, 4 * trainable_params,
                               sum(math.prod(spec.shape) for spec in specs))
    return choose_batch(estimate, wanted, budget, resident_bytes(),
                        max_input_elements=max_input_elements)

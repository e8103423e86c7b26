"""Each optimizer slot matched to the trainable variable it belongs to.

By name where the file's slot names say it (``Adam/m/h1/kernel:0``,
``Adam/h1/kernel/m:0``, ``adam/h1_kernel_momentum``); otherwise by order, in the
optimizer's layout (:mod:`.optimizer_slots`), checked against the variables'
shapes. A mapping that the shapes contradict, or that they cannot decide, is
not made: the caller gets a note instead of a guess.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from gradaudit.history import optimizer_slots
from gradaudit.history.optimizer_slots import Layout
from gradaudit.history.trainable_vars import Block, Weight


@dataclass(frozen=True)
class Slot:
    """One optimizer array in the file, not read yet."""

    name: str | None
    """Its name in a legacy ``.h5`` (without ``:0``); None in a ``.keras`` file."""
    shape: tuple[int, ...]
    data: Any
    """The h5py dataset."""


Mapped = list[tuple[Weight, dict[str, Slot]]]


def by_name(weights: list[Weight], slots: list[Slot],
            tokens: dict[str, str]) -> tuple[Mapped, list[str]] | None:
    """Slots matched by the variable names in their own names; None unless every
    slot names exactly one variable and one slot kind. A variable no slot names
    comes with no slots."""
    counts = Counter(w.name for w in weights if w.name)
    unique = {name for name, count in counts.items() if count == 1}
    flat = Counter(name.replace("/", "_") for name in unique)
    flattened = {name.replace("/", "_"): name for name in unique
                 if flat[name.replace("/", "_")] == 1}
    found: dict[str, dict[str, Slot]] = {}
    for slot in slots:
        parsed = _parse(slot.name or "", unique, flattened, tokens)
        if parsed is None or parsed[0] in found.get(parsed[1], {}):
            return None
        found.setdefault(parsed[1], {})[parsed[0]] = slot
    mapped, wrong = [], []
    for weight in weights:
        kinds = found.get(weight.name or "", {})
        if any(slot.shape != weight.shape for slot in kinds.values()):
            wrong.append(f"{weight.layer}/{weight.label} {weight.shape}")
        else:
            mapped.append((weight, kinds))
    notes = [f"optimizer slots named for {some(wrong)} have other shapes: not judged"] * bool(
        wrong)
    return mapped, notes


def _parse(name: str, index: set[str], flattened: dict[str, str],
           tokens: dict[str, str]) -> tuple[str, str] | None:
    """(slot kind, variable name) in a slot name, or None."""
    parts = name.split("/")
    for i, part in enumerate(parts[:-1]):  # tf_keras: Adam/m/h1/kernel
        if part in tokens and "/".join(parts[i + 1 :]) in index:
            return tokens[part], "/".join(parts[i + 1 :])
    if parts[-1] in tokens:  # legacy: Adam/h1/kernel/m
        for j in range(len(parts) - 1):
            if "/".join(parts[j:-1]) in index:
                return tokens[parts[-1]], "/".join(parts[j:-1])
    for token in sorted(tokens, key=len, reverse=True):  # Keras 3: adam/h1_kernel_momentum
        stem = parts[-1].removesuffix("_" + token)
        if stem != parts[-1] and stem in flattened:
            return tokens[token], flattened[stem]
    return None


def by_order(blocks: list[Block], slots: list[Slot],
             candidates: list[tuple[Layout, frozenset[str]]],
             droppable: int = 0) -> tuple[Mapped, list[str]]:
    """Slots matched by their position in the optimizer's layout, checked by shape.

    Up to ``droppable`` leading scalars may be unnamed counters (Keras ≤ 2.3 kept
    ``iterations`` first under names like ``Variable:0``).
    """
    count = sum(block.size for block in blocks)
    scalars = next((i for i, slot in enumerate(slots) if slot.shape != ()), len(slots))
    fitting = ((slots[drop:], layout, loose)
               for drop in range(min(droppable, scalars) + 1)
               for layout, loose in candidates
               if len(optimizer_slots.expand(layout, count)) == len(slots) - drop)
    found = next(fitting, None)
    if found is None:
        per = sum(len(kinds) for kinds in candidates[0][0])
        return [], [f"the optimizer state holds {len(slots)} slot arrays, but the model's "
                    f"{count} trainable variables need {per} each ({per * count}): "
                    "the slots are not mapped"]
    slots, layout, loose = found
    order = optimizer_slots.expand(layout, count)
    kinds: list[dict[str, Slot]] = [{} for _ in range(count)]
    for (kind, i), slot in zip(order, slots, strict=True):
        kinds[i][kind] = slot
    reference = []
    for i, held in enumerate(kinds):
        shapes = {slot.shape for kind, slot in held.items() if kind not in loose}
        if len(shapes) > 1:
            return [], [f"the optimizer slots of trainable variable {i + 1} have different "
                        f"shapes ({', '.join(map(str, sorted(shapes)))}): the slots are not mapped"]
        reference.append(shapes.pop() if shapes else ())
    placement = _Placement(reference)
    for block in blocks:
        placement.place(block)
    if placement.conflict:  # the counts agreed, the shapes do not: not the model's order
        return [], [f"{placement.conflict}: the slots are not mapped"]
    return ([(w, kinds[i]) for i, w in enumerate(placement.placed) if w is not None],
            placement.notes)


class _Placement:
    """Variables laid out in the order their slots' shapes show."""

    def __init__(self, reference: list[tuple[int, ...]]) -> None:
        self.reference = reference
        self.placed: list[Weight | None] = []
        self.notes: list[str] = []
        self.conflict: str | None = None

    def place(self, block: Block) -> None:
        start = len(self.placed)
        wanted = self.reference[start : start + block.size]
        if block.ordered:
            for weight, shape in zip(block.own, wanted, strict=False):
                if weight.shape != shape and self.conflict is None:
                    self.conflict = (f"variable {weight.layer}/{weight.label} has shape "
                                     f"{weight.shape}, its optimizer slot {shape}")
                self.placed.append(weight)
            for part in block.parts:
                self.place(part)
        elif len(block.layers) <= 1:  # parts of one layer: their order changes no owner
            self._by_shape(block.flat(), wanted)
        else:
            self._by_ordering(block, wanted)

    def _by_shape(self, weights: list[Weight], wanted: list[tuple[int, ...]]) -> None:
        if sorted(w.shape for w in weights) != sorted(wanted):
            self.conflict = self.conflict or (
                f"the variables of layer {weights[0].layer} have shapes "
                f"{sorted(w.shape for w in weights)}, their optimizer slots {sorted(wanted)}")
            self.placed.extend(weights)
            return
        pool = list(weights)
        for shape in wanted:
            chosen = next(w for w in pool if w.shape == shape)
            pool.remove(chosen)
            self.placed.append(chosen)

    def _by_ordering(self, block: Block, wanted: list[tuple[int, ...]]) -> None:
        """A user's layer class: its sublayers' order is not in the file."""
        orderings = block.orderings()
        fits = [o for o in orderings or [] if [w.shape for w in o] == wanted]
        if len({tuple(w.layer for w in o) for o in fits}) == 1:
            self.placed.extend(fits[0])
            return
        if orderings is not None and not fits:
            self.conflict = self.conflict or (
                f"no order of the sublayers {some(block.layers)} gives the shapes of their "
                "optimizer slots")
        else:
            self.notes.append(
                f"the file does not record the order of the sublayers {some(block.layers)}, "
                "and their shapes do not tell it: their optimizer slots are not mapped")
        self.placed.extend([None] * len(wanted))


def some(items: list[str]) -> str:
    shown = ", ".join(items[:5])
    return shown + (f" and {len(items) - 5} more" if len(items) > 5 else "")

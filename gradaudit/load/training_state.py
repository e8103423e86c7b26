"""What a trained file says about its training: the optimizer state and the compile config.

The types are in :mod:`gradaudit.load.training_types` (the readers build them);
they are re-exported here, where the training checks and the report import them.
"""

from __future__ import annotations

from gradaudit.load.training_types import (
    OPTIMIZERS,
    CompileConfig,
    Head,
    TrainingState,
    VariableState,
)

__all__ = ["OPTIMIZERS", "CompileConfig", "Head", "TrainingState", "VariableState",
           "read_training_state"]


def read_training_state(path: str, fmt: str) -> TrainingState:
    """The training evidence in a ``.keras`` or ``.h5`` file (fmt "keras" | "h5").

    Never raises for a malformed or hostile file: what cannot be read becomes a
    note. Sizes are checked before anything is read into memory.
    """
    raise NotImplementedError  # being written: issue 13, part 1

"""Random initial values drawn only for the variables the file does not fill.

Keras's loader builds the model, which draws every variable's initial value
from its initializer (Glorot, He …), then overwrites each one with the file's
weights: for a file that holds all its weights the draw is work thrown away,
and it is a third of the load (0.6 s of a ResNet50's 2 s). Inside
:func:`deferred_random_init` a variable whose initializer is random and seeded
by an integer starts at zeros instead; once the file is loaded, every such
variable the loader did not assign gets its initializer's values after all.
An integer-seeded Keras initializer is stateless (the same seed and shape give
the same values, whenever it is called, and it moves no global RNG), so the
model ends exactly as Keras alone would leave it.

Used only where nothing can read a variable between its creation and the
weights being loaded: a config of Keras's own classes (:func:`keras_classes_only`);
a layer class of the user's could read its fresh kernel in ``build``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from gradaudit.load.config_tree import walk

KERAS_MODULE = "keras"
MARKER = re.compile(r"__\w+__")
"""A serialised value, not a class (``__keras_tensor__``, ``__numpy__`` …)."""


def keras_classes_only(config: Any) -> bool:
    """Whether every object the config names is one of Keras's own (Keras 3 format)."""
    own = True

    def visit(node: dict[str, Any]) -> bool:
        nonlocal own
        name = node.get("class_name")
        if name is not None and not (isinstance(name, str) and MARKER.fullmatch(name)):
            module = node.get("module")
            if node.get("registered_name") not in (None, node.get("class_name")) or not (
                    isinstance(module, str)
                    and (module == KERAS_MODULE or module.startswith(KERAS_MODULE + "."))):
                own = False
        return own

    walk(config, visit)
    return own


_PRIVATE = ("_initialize_with_initializer", "_initialize", "assign")
"""What of Keras's Variable this relies on; another Keras version may not have it."""


@contextlib.contextmanager
def deferred_random_init() -> Iterator[None]:
    """Keras 3 variables created inside start at zeros when their initializer is random
    with an integer seed; on a normal exit, those never assigned get their initializer's
    values (the draw Keras would have made)."""
    import tensorflow as tf

    try:  # Keras internals (3.x): without them, Keras draws every value as it would
        from keras.src.backend.tensorflow.core import Variable
        from keras.src.initializers.random_initializers import RandomInitializer
    except ImportError:
        Variable = RandomInitializer = None
    if not all(hasattr(Variable, name) for name in _PRIVATE):
        yield
        return
    pending: dict[int, tuple[Any, Any]] = {}  # id → (variable, initializer); held, so ids stay
    initialize, had_assign = Variable._initialize_with_initializer, "assign" in vars(Variable)
    assign = Variable.assign

    def zeros_first(self: Any, initializer: Any) -> None:
        if isinstance(initializer, RandomInitializer) and type(initializer.seed) is int:
            shape, dtype = self._shape, self._dtype
            self._initialize(lambda: tf.zeros(shape, dtype=dtype))
            pending[id(self)] = (self, initializer)
        else:
            initialize(self, initializer)

    def assigned(self: Any, value: Any) -> Any:
        result = assign(self, value)
        pending.pop(id(self), None)
        return result

    Variable._initialize_with_initializer = zeros_first
    Variable.assign = assigned
    try:
        yield
    finally:
        Variable._initialize_with_initializer = initialize
        if had_assign:
            Variable.assign = assign
        else:
            del Variable.assign
    for variable, initializer in pending.values():
        variable.assign(initializer(variable._shape, dtype=variable._dtype))

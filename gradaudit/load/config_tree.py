"""One walk over a model config's nested dicts and lists.

A hostile config may nest thousands of levels deep, so the walk keeps an
explicit stack instead of recursing (a RecursionError would escape as a
traceback, not a one-line refusal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def walk(root: Any, visit: Callable[[dict[str, Any]], bool]) -> None:
    """Call ``visit`` on every dict in the tree, depth first, parents before children.

    ``visit`` returns whether to go on into that dict's values; it may change
    the dict first, and the walk then goes into the changed values.
    """
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if visit(node):
                stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)

"""The one exception type that carries a user-facing reason."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

KERAS_LOAD_FAILED = "Keras could not load the model: {reason}"
CAUSE_MARKER = "Exception encountered:"
"""How Keras's deserialiser introduces the error it wraps, at the end of its message."""
MAX_REASON = 500
"""Characters of one-line reason; a longer one loses its middle, never its end."""
MAX_QUOTE = 80
"""A quoted ``{…}`` or ``[…]`` longer than this (a whole layer config) is shortened."""
QUOTE_HEAD = 48
"""Characters of a shortened quote's beginning that are kept (its first items)."""
_CLOSING = {"{": "}", "[": "]"}


class AuditError(Exception):
    """A model or argument that cannot be audited; ``str()`` is the reason.

    The CLI prints it as one line on stderr and exits with code 2; it is never
    shown as a traceback.
    """


def first_line(exc: BaseException) -> str:
    """An exception's reason as one bounded line, for one-line messages.

    Its first line, and when Keras wraps a cause (``… using config={…}.
    Exception encountered: <cause>``), the wrapper's first sentence and the
    innermost cause, which comes last: that is the part that says what is wrong.
    Quoted configs are shortened to their first items before any cut, and a line
    still too long loses its middle, so the cause at the end always stays.
    """
    text = str(exc).strip()
    at = text.rfind(CAUSE_MARKER)
    if at < 0:
        lines = text.splitlines()
        line = _shorten_quotes(lines[0].strip()) if lines else type(exc).__name__
    else:
        wrapper = _shorten_quotes(text[:at].strip().split("\n", 1)[0].strip())
        end = wrapper.find(". ")
        cause = _shorten_quotes(" ".join(part.strip() for part in text[at:].splitlines()))
        line = f"{wrapper[: end + 1] if end >= 0 else wrapper} {cause}".strip()
    if len(line) <= MAX_REASON:
        return line
    head = MAX_REASON // 3
    return f"{line[:head]} … {line[len(line) - (MAX_REASON - head - 3):]}"


def _shorten_quotes(text: str) -> str:
    """Every ``{…}``/``[…]`` longer than MAX_QUOTE as its first items and ``…``."""
    spans = _balanced_spans(text)
    parts, i = [], 0
    while i < len(text):
        end = spans.get(i)
        if end is None:
            parts.append(text[i])
            i += 1
            continue
        quote = text[i : end + 1]
        if len(quote) > MAX_QUOTE:
            head = quote[1:QUOTE_HEAD]
            cut = head.rfind(", ")
            quote = f"{quote[0]}{head[: cut + 1] if cut > 0 else head} …{quote[-1]}"
        parts.append(quote)
        i = end + 1
    return "".join(parts)


def _balanced_spans(text: str) -> dict[int, int]:
    """Opening → closing index of each balanced ``{…}``/``[…]``, in one pass.

    Inside brackets, quoted strings (Python reprs) are skipped, so a brace in a
    layer name does not count; outside them an apostrophe is prose ("model's").
    """
    spans: dict[int, int] = {}
    stack: list[int] = []
    quote, escaped = "", False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif quote:
            escaped = char == "\\"
            if char == quote:
                quote = ""
        elif char in _CLOSING:
            stack.append(i)
        elif stack and char in "'\"":
            quote = char
        elif stack and char == _CLOSING[text[stack[-1]]]:
            spans[stack.pop()] = i
    return spans


@contextlib.contextmanager
def reported_as(template: str) -> Iterator[None]:
    """Turn any failure inside into AuditError(``template`` with its ``{reason}``).

    Keras, TensorFlow and h5py raise many exception types for a bad file; to
    the user they all mean the same thing, said in one line. An AuditError
    raised inside keeps its own reason.
    """
    try:
        yield
    except AuditError:
        raise
    except Exception as exc:
        raise AuditError(template.format(reason=first_line(exc))) from None

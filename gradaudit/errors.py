"""The one exception type that carries a user-facing reason."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

KERAS_LOAD_FAILED = "Keras could not load the model: {reason}"


class AuditError(Exception):
    """A model or argument that cannot be audited; ``str()`` is the reason.

    The CLI prints it as one line on stderr and exits with code 2; it is never
    shown as a traceback.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, bounded, for one-line messages."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


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

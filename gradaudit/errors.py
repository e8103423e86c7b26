"""The one exception type that carries a user-facing reason."""


class AuditError(Exception):
    """A model or argument that cannot be audited; ``str()`` is the reason.

    The CLI prints it as one line on stderr and exits with code 2; it is never
    shown as a traceback.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, bounded, for one-line messages."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]

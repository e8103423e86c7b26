"""Usage errors in gradaudit's own words: one line on stderr, exit code 2.

Click would print a usage block, a "Try --help" line and an "Error:" line
quoting Pydantic (``Value error, 'nope' is not one of …``). The command classes
here reword each usage error from its structured fields (the parameter, its
choices, the validation error's type and bounds) into the line every other
gradaudit error uses: ``gradaudit: error: --samples: must be at least 1 (got 0)``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from difflib import get_close_matches
from typing import IO, Any

import typer
from typer._click import exceptions as click_errors
from typer._click.core import Command as ClickCommand
from typer._click.core import Context
from typer.core import TyperArgument, TyperCommand, TyperGroup

PREFIX = "gradaudit: error: "
USAGE_EXIT = 2


class PlainUsageError(click_errors.ClickException):
    """A usage error already worded: shown as one line, no usage block."""

    exit_code = USAGE_EXIT

    def show(self, file: IO[Any] | None = None) -> None:
        typer.echo(PREFIX + self.message, err=True)


class NoSuchCommand(click_errors.UsageError):
    """An unknown command, with the close matches to suggest."""

    def __init__(self, name: str, possibilities: Sequence[str], ctx: Context) -> None:
        super().__init__(f"no such command {name!r}", ctx)
        self.name = name
        self.possibilities = possibilities


def describe(exc: click_errors.UsageError) -> str:
    """The usage error as one line (without the ``gradaudit: error:`` prefix)."""
    if isinstance(exc, click_errors.MissingParameter) and exc.param is not None:
        return f"missing {_name(exc.param)}{_help_hint(exc.ctx)}"
    if isinstance(exc, click_errors.BadParameter) and exc.param is not None:
        return f"{_name(exc.param)}: {_bad_value(exc)}"
    if isinstance(exc, click_errors.NoSuchOption):
        return f"no such option: {exc.option_name}" + _suggest(exc.possibilities, exc.ctx)
    if isinstance(exc, NoSuchCommand):
        return f"no such command {exc.name!r}" + _suggest(exc.possibilities, exc.ctx)
    if isinstance(exc, click_errors.BadOptionUsage):
        return f"{exc.option_name}: {_option_usage(exc)}"
    # Click's remaining messages ("Got unexpected extra argument(s) (x).") have no fields.
    message = exc.message.rstrip(".")
    return message[:1].lower() + message[1:] + _help_hint(exc.ctx)


@contextmanager
def plain_usage_errors(ctx: Context) -> Iterator[None]:
    """Reword a usage error raised while ``ctx``'s command parses or runs.

    ``gradaudit`` alone still prints the help (Click's NoArgsIsHelpError).
    """
    try:
        yield
    except click_errors.NoArgsIsHelpError:
        raise
    except click_errors.UsageError as exc:
        exc.ctx = exc.ctx or ctx  # the parser raises some without one
        raise PlainUsageError(describe(exc)) from None


class Command(TyperCommand):
    """A command whose usage errors are plain lines and whose usage line reads
    ``gradaudit audit [OPTIONS] PATH...`` rather than Typer's ``{PATH...}...``."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        with plain_usage_errors(ctx):
            return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            pieces += ([_name(param)] if isinstance(param, TyperArgument)
                       else param.get_usage_pieces(ctx))
        return pieces


class Group(TyperGroup):
    """The ``gradaudit`` group: plain usage errors for its own options, for unknown
    commands and for anything its commands raise."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        with plain_usage_errors(ctx):
            return super().parse_args(ctx, args)

    def invoke(self, ctx: Context) -> Any:
        with plain_usage_errors(ctx):
            return super().invoke(ctx)

    def resolve_command(self, ctx: Context, args: list[str]
                        ) -> tuple[str | None, ClickCommand | None, list[str]]:
        name = args[0]
        if not name.startswith("-") and self.get_command(ctx, name) is None:
            raise NoSuchCommand(name, get_close_matches(name, list(self.commands)), ctx)
        return super().resolve_command(ctx, args)


def _name(param: Any) -> str:
    """An option by its long flag (``--format``); an argument by its metavar (``PATH...``)."""
    if isinstance(param, TyperArgument):
        name = param.metavar or str(param.name).upper()
        return name if param.nargs == 1 or name.endswith("...") else name + "..."
    return str(max(param.opts, key=len))


def _bad_value(exc: click_errors.BadParameter) -> str:
    """Why a value was refused: the choices, the bound, or the type it should have."""
    error = _validation_error(exc)
    value = error.get("input")
    choices = exc.param.type_descriptor.choices if exc.param is not None else None
    if choices:
        names = ", ".join(str(c.value if isinstance(c, enum.Enum) else c) for c in choices)
        return f"{value!r} is not one of {names}"
    bounds = error.get("ctx", {})
    if error.get("type") == "greater_than_equal":
        return f"must be at least {bounds['ge']} (got {value})"
    if error.get("type") == "less_than_equal":
        return f"must be at most {bounds['le']} (got {value})"
    if error.get("type") == "int_parsing":
        return f"{value!r} is not a whole number"
    return exc.message.rstrip(".")


def _validation_error(exc: click_errors.BadParameter) -> dict[str, Any]:
    """The first Pydantic error behind Typer's BadParameter, or {} when there is none."""
    errors = getattr(exc.__cause__, "errors", None)
    found = errors() if callable(errors) else []
    return dict(found[0]) if found else {}


def _option_usage(exc: click_errors.BadOptionUsage) -> str:
    """A flag given a value, or an option given none."""
    params = exc.ctx.command.params if exc.ctx is not None else []
    flag = any(exc.option_name in p.opts and getattr(p, "is_flag", False) for p in params)
    return "takes no value" if flag else "needs a value"


def _suggest(possibilities: Sequence[str] | None, ctx: Context | None) -> str:
    """Click's did-you-mean, else where to look."""
    if possibilities:
        return f" (did you mean {', '.join(possibilities)}?)"
    return _help_hint(ctx)


def _help_hint(ctx: Context | None) -> str:
    return f" (try '{ctx.command_path} --help')" if ctx is not None else ""

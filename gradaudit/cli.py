"""The command line: parse, call the pipeline, pick a format, exit.

Nothing here imports TensorFlow at module level, so ``--help``, ``checks`` and
``explain`` answer at once.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from gradaudit import __version__
from gradaudit.catalogue import CATALOGUE, lookup
from gradaudit.config import Options
from gradaudit.findings import AuditRun, FailOn, exit_code
from gradaudit.formats import Format, render

app = typer.Typer(
    name="gradaudit",
    help="Find where gradients die in a saved Keras model: dead ReLUs, saturated "
    "activations, cut or zero gradient paths, frozen layers.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gradaudit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    """Find where gradients die in a saved Keras model."""


@app.command()
def audit(
    paths: Annotated[list[str], typer.Argument(
        metavar="PATH...", help="Model files to audit: .keras or .h5 (format detected from content).",
        show_default=False)],
    fmt: Annotated[Format, typer.Option(
        "--format", "-f", help="Report format.", case_sensitive=False)] = Format.TABLE,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write the report to this file (atomically) instead of stdout.",
        dir_okay=False)] = None,
    fail_on: Annotated[FailOn, typer.Option(
        "--fail-on", help="Exit 1 when a finding is at or above this severity.",
        case_sensitive=False)] = FailOn.ERROR,
    samples: Annotated[int, typer.Option(
        "--samples", min=1, help="Random probe samples per model.")] = 256,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="Samples per forward/backward pass.")] = 64,
    seed: Annotated[int, typer.Option(
        "--seed", min=0, help="Seed for inputs and cotangents (same seed, same report).")] = 0,
    all_samples: Annotated[bool, typer.Option(
        "--all-samples", help="Probe every one of --samples. By default the probe stops "
        "as soon as further batches cannot change a verdict (summary.samples says how "
        "many were used).")] = False,
    inference: Annotated[bool, typer.Option(
        "--inference", help="Probe in inference mode (BatchNormalization on moving "
        "statistics, Dropout off) instead of training mode.")] = False,
    unsafe: Annotated[bool, typer.Option(
        "--unsafe", help="Allow Lambda layers and non-Keras code in the file to run. "
        "Only for files you trust; the report says it ran unsafely.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No status line on stderr (errors are still printed).")] = False,
) -> None:
    """Audit model files and report dead, frozen and disconnected layers.

    Random inputs are built from each model's input signature: float inputs are
    standard normal, integer inputs are uniform token ids below the consuming
    Embedding's vocabulary size, unknown (None) dimensions get 32 entries.
    Layers run in training mode, as the optimizer sees them; the model file is
    never modified.

    Exit codes: 0 no finding at/over --fail-on, 1 findings at/over --fail-on,
    2 a file could not be audited or the arguments are wrong.
    """
    if output is not None:
        _refuse_overwriting_inputs(output, paths)
    from gradaudit.audit import audit_paths

    options = Options(samples=samples, batch_size=batch_size, seed=seed, unsafe=unsafe,
                      training=not inference, early_stop=not all_samples)
    run = audit_paths(paths, options)
    for error in run.errors:
        typer.echo(f"gradaudit: error: {error.path}: {error.error}", err=True)
    text = render(run, fmt)
    if output is None:
        typer.echo(text, nl=False)
    else:
        _write_atomically(output, text)
    code = exit_code(run, fail_on)
    if not quiet:
        typer.echo(_status_line(run, code), err=True)
    raise typer.Exit(code)


@app.command()
def checks() -> None:
    """List every finding code with its severity and title."""
    from tabulate import tabulate

    rows = [[c.code, str(c.severity), c.name, c.title] for c in CATALOGUE]
    typer.echo(tabulate(rows, headers=["code", "severity", "name", "title"]))


@app.command()
def explain(code: Annotated[str, typer.Argument(help="A finding code, e.g. GA102.")]) -> None:
    """Explain a finding code: what it means, the usual causes and the fix."""
    try:
        check = lookup(code)
    except KeyError:
        typer.echo(f"gradaudit: error: unknown code {code!r}; `gradaudit checks` lists them",
                   err=True)
        raise typer.Exit(2) from None
    text = [f"{check.code} {check.name} ({check.severity}): {check.title}", "",
            check.explanation, "", f"Fix: {check.fix}"]
    if check.source:
        text += ["", f"Thresholds: {check.source}"]
    typer.echo("\n".join(text))


def _refuse_overwriting_inputs(output: Path, paths: list[str]) -> None:
    target = output.resolve()
    if any(Path(p).resolve() == target for p in paths):
        typer.echo(f"gradaudit: error: --output {output} is one of the models being "
                   "audited; refusing to overwrite it", err=True)
        raise typer.Exit(2)


def _write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename it into place."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except OSError as exc:
        typer.echo(f"gradaudit: error: cannot write --output {path}: {exc.strerror or exc}",
                   err=True)
        raise typer.Exit(2) from None


def _status_line(run: AuditRun, code: int) -> str:
    findings = [f for m in run.models for f in m.findings]
    counts = {s: sum(1 for f in findings if str(f.severity) == s) for s in ("error", "warning", "info")}
    return (f"gradaudit: {len(run.models)} model(s) audited, {len(run.errors)} failed; "
            f"{counts['error']} error(s), {counts['warning']} warning(s), "
            f"{counts['info']} info; exit {code}")


def main() -> None:
    app(prog_name="gradaudit")

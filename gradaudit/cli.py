"""The command line: parse, call the pipeline, pick a format, exit.

Nothing here imports TensorFlow at module level, so ``--help``, ``checks`` and
``explain`` answer at once.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec

import typer

from gradaudit import __version__, progress, runtime, settings, usage
from gradaudit.errors import AuditError
from gradaudit.formats import Format, render
from gradaudit.formats import plot as grad_flow
from gradaudit.formats.diff import DiffFormat
from gradaudit.load import discovery
from gradaudit.load.imports import import_modules
from gradaudit.options import DISTRIBUTIONS, OBJECTIVES, Limits, Options
from gradaudit.report import baseline as baseline_mod
from gradaudit.report.catalogue import CATALOGUE, lookup
from gradaudit.report.selection import Selection
from gradaudit.report.types import AuditRun, FailOn, Severity, exit_code

if TYPE_CHECKING:
    from gradaudit.probe.supplied import SuppliedInputs
    from gradaudit.report.timeline import Timeline
    from gradaudit.worker import Audit

P = ParamSpec("P")
app = typer.Typer(
    name="gradaudit",
    help="Find where gradients die in a saved Keras model: dead ReLUs, saturated "
    "activations, cut or zero gradient paths, frozen layers.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=usage.Group,
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


def _interruptible(command: Callable[P, None]) -> Callable[P, None]:
    """Ctrl-C during ``command``: one line on stderr, exit 130 (128 + SIGINT), no
    --output written; the worker process is stopped on the way out (``worker.py``)."""
    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt:
            typer.echo("gradaudit: interrupted", err=True)
            raise typer.Exit(130) from None

    return run


# Options shared by `audit` and `merge`.
FormatOption = Annotated[Format, typer.Option(
    "--format", "-f", help="Report format.", case_sensitive=False)]
OutputOption = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Write the report to this file (atomically) instead of stdout.",
    dir_okay=False)]
FailOnOption = Annotated[FailOn, typer.Option(
    "--fail-on", help="Exit 1 when a finding is at or above this severity.",
    case_sensitive=False)]
# Options shared by `audit`, `timeline` and `diff`.
SamplesOption = Annotated[int, typer.Option(
    "--samples", min=1, help="Random probe samples per model.")]
SeedOption = Annotated[int, typer.Option(
    "--seed", min=0, help="Seed for inputs and cotangents (same seed, same report).")]
NoProbeOption = Annotated[bool, typer.Option(
    "--no-probe", help="Run no model and import no TensorFlow: only the checks that "
    "read the file (its optimizer state and compile config, GA4xx). A gate over many "
    "trained .keras/.h5 files in seconds; summary.checks_run says what ran.")]
TimeoutOption = Annotated[float, typer.Option(
    "--timeout", metavar="SECONDS", help="Stop a model's audit that takes longer than "
    "this and report the file as failed (exit 2); the other files go on.")]
QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No status line or progress bar on stderr (errors are still "
    "printed).")]
InputsOption = Annotated[Path | None, typer.Option(
    "--inputs", help="Probe with your data instead of random inputs: an .npz with one "
    "array per input (keys: input names, or arr_0 … in input order) or an .npy for a "
    "single-input model; first axis = samples, capped by --samples.",
    dir_okay=False)]
InputDistOption = Annotated[str, typer.Option(
    "--input-dist", metavar="|".join(DISTRIBUTIONS), help="Random float inputs: "
    "standard normal or uniform over --input-range.")]
InputRangeOption = Annotated[str | None, typer.Option(
    "--input-range", metavar="LOW,HIGH", help="Random float inputs uniform in "
    "[LOW, HIGH) (default {:g},{:g} with --input-dist uniform); images often expect 0,1 "
    "or 0,255.".format(*Options.input_range))]
ExcludeOption = Annotated[list[str] | None, typer.Option(
    "--exclude", metavar="GLOB", help="Skip files found in a directory whose relative "
    "path or name matches GLOB (repeatable).")]
UnsafeOption = Annotated[bool, typer.Option(
    "--unsafe", help="Allow Lambda layers and non-Keras code in the file to run. "
    "Only for files you trust; the report says it ran unsafely.")]
ImportOption = Annotated[list[str] | None, typer.Option(
    "--import", metavar="MODULE", help="Import your own module before loading (a dotted "
    "name importable from the current directory or PYTHONPATH, or a .py file), so the "
    "layer classes it registers with Keras load; the file may then name those classes, "
    "still no Lambda layer or other module. Repeatable.", show_default=False)]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", help="Read settings from this TOML file instead of the nearest "
    "pyproject.toml's [tool.gradaudit]; flags given here still win.",
    dir_okay=False)]


@app.command(cls=usage.Command)
@_interruptible
def audit(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(
        metavar="PATH...", help="Model files (.keras, .h5: format detected from content) "
        "or directories to search for them.",
        show_default=False)],
    fmt: FormatOption = Format.TABLE,
    output: OutputOption = None,
    fail_on: FailOnOption = Options.fail_on,
    samples: SamplesOption = Options.samples,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="Samples per forward/backward pass.")] = Options.batch_size,
    seed: SeedOption = Options.seed,
    all_samples: Annotated[bool, typer.Option(
        "--all-samples", help="Probe every one of --samples. By default the probe stops "
        "as soon as further batches cannot change a verdict (summary.samples says how "
        "many were used).")] = Options.all_samples,
    inference: Annotated[bool, typer.Option(
        "--inference", help="Probe in inference mode (BatchNormalization on moving "
        "statistics, Dropout off) instead of training mode.")] = Options.inference,
    no_probe: NoProbeOption = Options.no_probe,
    signature: Annotated[str | None, typer.Option(
        "--signature", metavar="NAME", help="SavedModel signature to audit (default: "
        "serving_default, else the only signature, else 'serve').")] = Options.signature,
    unsafe: UnsafeOption = Options.unsafe,
    imports: ImportOption = None,
    max_params: Annotated[int, typer.Option(
        "--max-params", min=1, help="Refuse a model whose architecture or weight datasets "
        "declare more parameters than this (checked before anything is allocated).")
    ] = Limits.max_params,
    max_input_elements: Annotated[int, typer.Option(
        "--max-input-elements", min=1, help="Values one probe batch of inputs may hold "
        "(batch size × every input's elements): a larger batch is made smaller; a model "
        "one sample of which holds more is refused.")
    ] = Limits.max_input_elements,
    max_memory: Annotated[str | None, typer.Option(
        "--max-memory", metavar="SIZE", help="Memory the audit may use while probing "
        "(4GiB, 512MiB, bytes): the batch is made smaller until the estimated step fits, "
        "and a model of which one sample does not fit is refused (exit 2). Default: the "
        "smaller of 4 GiB and a quarter of physical memory.", show_default=False)] = None,
    timeout: TimeoutOption = Options.timeout,
    verbose: Annotated[bool, typer.Option(
        "--verbose", help="List every finding, each root cause's consequences too (folded "
        "into one line otherwise), and let TensorFlow's and absl's log messages through "
        "to stderr.")] = False,
    quiet: QuietOption = False,
    inputs_file: InputsOption = None,
    input_dist: InputDistOption = Options.input_dist,
    input_range: InputRangeOption = None,
    objective: Annotated[str | None, typer.Option(
        "--objective", metavar="|".join(OBJECTIVES), help="What the probe differentiates: "
        "each output's compiled loss (the default where the file has one; labels drawn "
        "from the seed or given in --inputs as y / y:OUTPUT) or a random projection of the "
        "outputs (the default otherwise).", show_default=False)] = None,
    input_shape: Annotated[list[str] | None, typer.Option(
        "--input-shape", metavar="[NAME=]SHAPE", help="The shape of an input without the "
        "batch axis (128,40,1), for a model that does not record it (a subclassed model) "
        "or to size its unknown axes; NAME= picks the input of a multi-input model "
        "(repeatable).")] = None,
    select: Annotated[str | None, typer.Option(
        "--select", metavar="CODES", help="Report only these codes or prefixes, "
        "comma-separated (GA1,GA201).")] = None,
    ignore: Annotated[str | None, typer.Option(
        "--ignore", metavar="CODES", help="Do not report these codes or prefixes "
        "(GA301); the most specific of --select/--ignore wins.")] = None,
    exclude: ExcludeOption = None,
    shard: Annotated[str | None, typer.Option(
        "--shard", metavar="K/N|auto", help="Audit only the K-th of N slices of the sorted file "
        "list (files K, K+N, K+2N …); combine the JSON reports with `gradaudit merge`. "
        "auto: K and N from the CI job's variables (GitLab, CircleCI, Buildkite; auto/N for "
        "a Kubernetes indexed Job).")] = None,
    config: ConfigOption = None,
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", help="Ignore findings recorded in this JSON report (same model path, "
        "code and layer): only new findings are reported and fail.", dir_okay=False)] = None,
    write_baseline: Annotated[Path | None, typer.Option(
        "--write-baseline", help="Record this run's findings (after --select/--ignore) as a "
        "JSON baseline file.", dir_okay=False)] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Also draw the gradient flow per layer (gradient RMS on a log scale, "
        "dead and saturated fraction, findings marked) to this PNG file; needs matplotlib "
        "(pip install 'gradaudit[plot]').", dir_okay=False)] = None,
) -> None:
    """Audit model files and directories; report dead, frozen and disconnected layers.

    A directory is searched recursively for .keras, .h5 and .hdf5 files and
    SavedModel directories. Random inputs are built from each model's input
    signature: float inputs are standard normal (or uniform, see --input-dist),
    integer inputs are uniform token ids below the consuming Embedding's
    vocabulary size, unknown (None) dimensions get 32 entries; --inputs uses
    your data instead. Layers run in training mode, as the optimizer sees them;
    the model file is never modified. Settings may also come from
    [tool.gradaudit] in the nearest pyproject.toml.

    Exit codes: 0 no finding at/over --fail-on, 1 findings at/over --fail-on,
    2 a file could not be audited or the arguments are wrong.
    """
    for option, target in (("--output", output), ("--write-baseline", write_baseline),
                           ("--plot", plot)):
        if target is not None:
            _refuse_overwriting_inputs(target, paths, option)
    with _usage_errors():
        # The option parameters above are named as the fields of Options (and
        # Limits) and reach settings.resolve through ctx.params, not one by one.
        options = settings.resolve(settings.read_config(config, Path.cwd()), _typed_options(ctx))
        shards = discovery.Shard.parse(shard) if shard is not None else None
        known = baseline_mod.read_keys(baseline) if baseline is not None else frozenset()
        if plot is not None:  # before anything is audited
            grad_flow.require("--plot")
        supplied = _supplied_inputs(inputs_file, options)
    if verbose:
        runtime.log_verbosely()  # TensorFlow is imported later, once a model passes the checks
    targets = discovery.discover(paths, options.exclude, shards)
    with _progress(len(targets.paths), quiet) as step, _usage_errors():
        run = _audit_paths(targets.paths, options, supplied, step, verbose)
    selection = Selection(options.select, options.ignore)
    run = selection.apply(replace(run, errors=targets.errors + run.errors,
                                          fail_on=options.fail_on, verbose=verbose,
                                          shard=shards.info() if shards else None))
    if write_baseline is not None:
        _write_atomically(write_baseline, render(run, Format.JSON), "--write-baseline")
    run, suppressed = baseline_mod.apply(run, known)
    if plot is not None and run.models:
        _write_atomically(plot, grad_flow.png(run.models), "--plot")
    _finish(run, fmt, output, quiet, (f"; {suppressed} known finding(s) in --baseline"
            if baseline is not None else "") + _shard_note(shards))


def _audit_paths(paths: Sequence[str], options: Options, supplied: SuppliedInputs | None,
                 step: Callable[[str, str], None] | None, verbose: bool,
                 audit: Audit | None = None) -> AuditRun:
    """Audit in this process with --no-probe (no TensorFlow), else in a worker process:
    a native crash or a hang ends one file, not the run. ``audit`` replaces
    ``pipeline.audit_path`` in the worker (a timeline keeps one model built)."""
    if options.no_probe:
        from gradaudit.pipeline import audit_paths

        import_modules(options.imports)  # all of them, or nothing is audited
        return audit_paths(paths, options, supplied, step)
    from gradaudit import worker

    return worker.audit_paths(paths, options, supplied, step, verbose=verbose, audit=audit)


@app.command("merge", cls=usage.Command)
def merge_reports(
    reports: Annotated[list[Path], typer.Argument(
        metavar="REPORT.json...", help="JSON reports of `gradaudit audit --shard K/N "
        "--format json`.", show_default=False, dir_okay=False)],
    fmt: FormatOption = Format.TABLE,
    output: OutputOption = None,
    fail_on: FailOnOption = Options.fail_on,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No status line on stderr (errors are still printed).")] = False,
) -> None:
    """Combine JSON reports (one per shard) into one report, summary and exit code.

    Exit codes as for `audit`: 2 if any shard could not audit a file (or a
    report cannot be read), else 1 if a finding is at/over --fail-on, else 0.
    """
    from gradaudit.report.merge import merge

    with _usage_errors():
        run = merge(reports)
    _finish(replace(run, fail_on=fail_on), fmt, output, quiet)


@app.command(cls=usage.Command)
def checks() -> None:
    """List every finding code with its severity and title."""
    from tabulate import tabulate

    rows = [[rule.code, str(rule.severity), rule.name, rule.title] for rule in CATALOGUE]
    typer.echo(tabulate(rows, headers=["code", "severity", "name", "title"]))


@app.command(cls=usage.Command)
def explain(code: Annotated[str, typer.Argument(
        metavar="CODE", help="A finding code, e.g. GA102.")]) -> None:
    """Explain a finding code: what it means, the usual causes and the fix."""
    try:
        rule = lookup(code)
    except KeyError:
        typer.echo(f"gradaudit: error: unknown code {code!r}; `gradaudit checks` lists them",
                   err=True)
        raise typer.Exit(2) from None
    text = [f"{rule.code} {rule.name} ({rule.severity}): {rule.title}", "",
            rule.explanation, "", f"Fix: {rule.fix}"]
    if rule.source:
        text += ["", f"Thresholds: {rule.source}"]
    typer.echo("\n".join(text))


def _finish(run: AuditRun, fmt: Format, output: Path | None, quiet: bool, note: str = "") -> None:
    """Errors to stderr, the report to stdout or --output, the status line, the exit code."""
    for error in run.errors:
        typer.echo(f"gradaudit: error: {error.path}: {error.error}", err=True)
    text = render(run, fmt)
    if output is None:
        typer.echo(text, nl=False)
    else:
        _write_atomically(output, text)
    code = exit_code(run, run.fail_on or Options.fail_on)
    if not quiet:
        typer.echo(_status_line(run, code) + note, err=True)
    raise typer.Exit(code)


def _supplied_inputs(inputs_file: Path | None, options: Options) -> SuppliedInputs | None:
    """``--inputs`` read (AuditError if it cannot be, or with ``--no-probe``); None: random."""
    if inputs_file is None:
        return None
    if options.no_probe:
        raise AuditError("--inputs feeds the probe; --no-probe runs no model")
    from gradaudit.probe.supplied import read_inputs_file

    return read_inputs_file(inputs_file, options.samples)


def _typed_options(ctx: typer.Context) -> dict[str, object]:
    """The options the user typed, by name: they win over the config file, defaults do not."""
    return {name: value for name, value in ctx.params.items()
            if name in settings.OPTION_FLAGS and _typed(ctx, name)}


def _typed(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


@contextlib.contextmanager
def _usage_errors() -> Iterator[None]:
    """A bad setting, inputs file, baseline or report: one line on stderr, exit 2."""
    try:
        yield
    except AuditError as exc:
        typer.echo(f"gradaudit: error: {exc}", err=True)
        raise typer.Exit(2) from None


def _progress(count: int, quiet: bool) -> contextlib.AbstractContextManager[Any]:
    if not progress.wanted(quiet):
        return contextlib.nullcontext()
    return progress.progress_bar(count)


def _refuse_overwriting_inputs(output: Path, paths: list[str], option: str) -> None:
    target = output.resolve()
    if any(Path(p).resolve() == target for p in paths):
        typer.echo(f"gradaudit: error: {option} {output} is one of the models being "
                   "audited; refusing to overwrite it", err=True)
        raise typer.Exit(2)


def _write_atomically(path: Path, text: str | bytes, option: str = "--output") -> None:
    """Write to a temporary file beside ``path``, then rename it into place.

    The file gets the permissions a plain ``open`` would give (mkstemp's are 0600).
    """
    directory = path.parent if str(path.parent) else Path(".")
    data = text.encode("utf-8") if isinstance(text, str) else text
    umask = os.umask(0)
    os.umask(umask)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temp, 0o666 & ~umask)
            os.replace(temp, path)
        except BaseException:  # Ctrl-C included: no half-written file is left behind
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        typer.echo(f"gradaudit: error: cannot write {option} {path}: {exc.strerror or exc}",
                   err=True)
        raise typer.Exit(2) from None


def _shard_note(shard: discovery.Shard | None) -> str:
    """Which slice the run audited, and the CI variables it came from (``--shard auto``)."""
    if shard is None:
        return ""
    return f"; shard {shard.index}/{shard.count}" + (
        f" from {shard.source}" if shard.source else "")


def _status_line(run: AuditRun, code: int) -> str:
    def total(severity: Severity) -> int:
        return sum(model.count(severity) for model in run.models)

    return (f"gradaudit: {len(run.models)} model(s) audited, {len(run.errors)} failed; "
            f"{total(Severity.ERROR)} error(s), {total(Severity.WARNING)} warning(s), "
            f"{total(Severity.INFO)} info; exit {code}")


@app.command("diff", cls=usage.Command)
@_interruptible
def diff(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(
        metavar="OLD", help="The model before: a model file (audited now, as `audit` would) "
        "or a JSON report of `gradaudit audit --format json`.", show_default=False)],
    new: Annotated[str, typer.Argument(
        metavar="NEW", help="The model after: a model file or a JSON report.",
        show_default=False)],
    fmt: Annotated[DiffFormat, typer.Option(
        "--format", "-f", help="Diff format.", case_sensitive=False)] = DiffFormat.TABLE,
    output: OutputOption = None,
    fail_on: Annotated[FailOn, typer.Option(
        "--fail-on", help="Exit 1 when NEW has a finding at or above this severity that OLD "
        "has not (at or above it).", case_sensitive=False)] = Options.fail_on,
    samples: SamplesOption = Options.samples,
    seed: SeedOption = Options.seed,
    no_probe: NoProbeOption = Options.no_probe,
    unsafe: UnsafeOption = Options.unsafe,
    imports: ImportOption = None,
    select: Annotated[str | None, typer.Option(
        "--select", metavar="CODES", help="Compare only these codes or prefixes.")] = None,
    ignore: Annotated[str | None, typer.Option(
        "--ignore", metavar="CODES", help="Leave these codes or prefixes out.")] = None,
    config: ConfigOption = None,
    quiet: QuietOption = False,
) -> None:
    """Compare two versions of a model: the findings new in NEW, gone from OLD, and
    changed (same code and layer; severity, dead or stalled fraction, or gradient RMS
    moved). Layers are matched by name, so unrelated models may be compared (with a
    note). For CI: did this retrain make the model worse?

    Exit codes: 0 NEW has no finding at/over --fail-on that OLD has not, 1 it has,
    2 a side could not be read or audited, or the arguments are wrong.
    """
    from gradaudit.formats.diff import counts
    from gradaudit.formats.diff import render as render_diff
    from gradaudit.report.diff import compare

    if output is not None:
        _refuse_overwriting_inputs(output, [old, new], "--output")
    with _usage_errors():
        options = settings.resolve(settings.read_config(config, Path.cwd()), _typed_options(ctx))
        selection = Selection(options.select, options.ignore)
        before, after = (selection.apply(run) for run in _diff_sides((old, new), options))
    result = compare(before, after, options.thresholds)
    if output is None:
        typer.echo(render_diff(result, fmt), nl=False)
    else:
        _write_atomically(output, render_diff(result, fmt))
    code = result.exit_code(options.fail_on)
    if not quiet:
        typer.echo(f"gradaudit: diff: {counts(result)}; exit {code}", err=True)
    raise typer.Exit(code)


def _diff_sides(paths: Sequence[str], options: Options) -> list[AuditRun]:
    """Each side's run: a JSON report read back, or the model file audited (both in one
    worker); AuditError naming the side that cannot be read or audited."""
    from gradaudit.report import json_io

    reports = {path: json_io.read_file(Path(path)) for path in paths if _is_report(Path(path))}
    models = list(dict.fromkeys(path for path in paths if path not in reports))
    if models:
        audited = _audit_paths(models, options, None, None, verbose=False)
        reports |= {m.path: replace(audited, models=(m,), errors=()) for m in audited.models}
        for error in audited.errors:
            raise AuditError(f"{error.path}: {error.error}")
    for path in paths:
        for error in reports[path].errors:
            raise AuditError(f"{path}: the report has a file that could not be audited "
                             f"({error.path}: {error.error})")
    return [reports[path] for path in paths]


def _is_report(path: Path) -> bool:
    """Whether ``path`` is a JSON document (a model file is a zip, HDF5 or a directory)."""
    try:
        with path.open("rb") as handle:
            return handle.read(64).lstrip().startswith(b"{")
    except OSError:  # a directory, or no such file: the loader says which
        return False


class TimelineFormat(str, enum.Enum):
    TABLE = "table"
    JSON = "json"


@app.command(cls=usage.Command)
@_interruptible
def timeline(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(
        metavar="PATH...", help="Checkpoints of one run (.keras, .h5) or directories of "
        "them, in any order.", show_default=False)],
    fmt: Annotated[TimelineFormat, typer.Option(
        "--format", "-f", help="Report format.", case_sensitive=False)] = TimelineFormat.TABLE,
    output: OutputOption = None,
    fail_on: FailOnOption = Options.fail_on,
    samples: SamplesOption = Options.samples,
    seed: SeedOption = Options.seed,
    inputs_file: InputsOption = None,
    input_dist: InputDistOption = Options.input_dist,
    input_range: InputRangeOption = None,
    no_probe: NoProbeOption = Options.no_probe,
    unsafe: UnsafeOption = Options.unsafe,
    imports: ImportOption = None,
    timeout: TimeoutOption = Options.timeout,
    exclude: ExcludeOption = None,
    config: ConfigOption = None,
    quiet: QuietOption = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Also draw each layer's dead and stalled fraction and gradient RMS "
        "over the checkpoints, events marked, to this PNG file; needs matplotlib "
        "(pip install 'gradaudit[plot]').", dir_okay=False)] = None,
) -> None:
    """Follow a run's checkpoints: when did a layer die?

    The checkpoints are ordered by the optimizer's step count in each file (not by
    name; a file without one by its modification time) and audited with the same
    probe inputs; per checkpoint and layer: dead fraction (probe), stalled fraction
    (optimizer state), gradient RMS. A layer whose dead or stalled fraction rises by
    0.3 or more between consecutive checkpoints "died" (a warning), one whose fraction
    falls as much "revived". Checkpoints of another architecture form their own series.

    Exit codes as for `audit`: 2 a checkpoint could not be audited, 1 an event or a
    finding at/over --fail-on ("died" is a warning), 0 otherwise.
    """
    from gradaudit.load.checkpoints import plan
    from gradaudit.pipeline import audit_checkpoint
    from gradaudit.report import timeline as timeline_mod

    with _usage_errors():
        options = settings.resolve(settings.read_config(config, Path.cwd()), _typed_options(ctx))
        if plot is not None:
            grad_flow.require("--plot")
        supplied = _supplied_inputs(inputs_file, options)
    targets = discovery.discover(paths, options.exclude, None)
    for option, target in (("--output", output), ("--plot", plot)):
        if target is not None:  # a checkpoint found in a directory included
            _refuse_overwriting_inputs(target, [*paths, *targets.paths], option)
    planned = plan(targets.paths, options.limits)
    planned = replace(planned, unreadable=targets.errors + planned.unreadable)
    with _progress(len(planned.paths), quiet) as step, _usage_errors():
        run = _audit_paths(planned.paths, options, supplied, step, verbose=False,
                           audit=audit_checkpoint)
    result = timeline_mod.assemble(planned, run, options.thresholds)
    _write_timeline(result, fmt, output, plot)
    code = timeline_mod.timeline_exit_code(result, options.fail_on)
    if not quiet:
        died = sum(1 for e in result.events if e.what == timeline_mod.DIED)
        typer.echo(f"gradaudit: timeline of {len(result.checkpoints)} checkpoint(s), "
                   f"{len(result.run.errors)} unreadable; {died} died, "
                   f"{len(result.events) - died} revived; "
                   + _status_line(result.run, code).split("; ", 1)[1], err=True)
    raise typer.Exit(code)


def _write_timeline(result: Timeline, fmt: TimelineFormat, output: Path | None,
                    plot: Path | None) -> None:
    """The unreadable checkpoints on stderr, the table or JSON to stdout or --output,
    the picture to --plot."""
    from gradaudit.formats import timeline as timeline_format

    for error in result.run.errors:
        typer.echo(f"gradaudit: error: {error.path}: {error.error}", err=True)
    text = (timeline_format.table(result) if fmt is TimelineFormat.TABLE
            else timeline_format.to_json(result))
    if output is None:
        typer.echo(text, nl=False)
    else:
        _write_atomically(output, text)
    if plot is not None:
        _write_atomically(plot, timeline_format.png(result), "--plot")


def main() -> None:
    app(prog_name="gradaudit")

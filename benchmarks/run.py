"""Benchmark gradaudit against a bare GradientTape script on the same samples.

For each model: (a) the bare baseline — load the model, one tape forward and
backward per batch over the samples; (b) `gradaudit`'s audit of the same file
and samples with early stopping (the default) and (c) with --all-samples.
Each run is a fresh process (so peak RSS is its own), all in this one run;
ratios are b/a and c/a. Also times `gradaudit --help`.

    python benchmarks/run.py [--models mlp,lstm_text,...] [--repeat N]
    python benchmarks/run.py --memory [--models densenet121,efficientnet_b0]

``--memory`` measures the memory budget instead (issue 14): each large model
audited at the defaults (256 samples, --batch-size 64, the default
--max-memory) — its peak RSS and wall time beside the estimate the batch was
chosen by — and at --batch-size 16 with no budget, the batch that fitted by
hand before, whose findings must be the same.
"""

from __future__ import annotations

import argparse
import compileall
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

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


def measure(kind: str, path: Path, samples: int, batch: int, *extra: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, str(HERE / "child.py"), kind, str(path), str(samples), str(batch), *extra],
        capture_output=True, text=True, check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_run(repeat: int, *args: object) -> dict[str, float]:
    runs = [measure(*args) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


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
        subprocess.run([sys.executable, "-m", "gradaudit", "--help"],
                       capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PLAN))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory", action="store_true",
                        help="measure the memory budget on the large models instead")
    args = parser.parse_args()
    # gradaudit's modules byte-compiled, as an install leaves them (and as TensorFlow's
    # and Keras's are): with PYTHONDONTWRITEBYTECODE set, every audit would otherwise
    # compile them from source, ~15 ms that are no part of the audit.
    compileall.compile_dir(HERE.parent / "gradaudit", quiet=1)
    sys.path.insert(0, str(HERE))
    from gradaudit.runtime import import_tensorflow

    import_tensorflow()  # quietly, and with the children's settings (oneDNN off)
    if args.memory:
        names = args.models.split(",") if args.models != ",".join(PLAN) else MEMORY_PLAN
        print(memory_table(list(names)))
        return
    from models import saved

    rows = []
    for name in args.models.split(","):
        samples, batch = PLAN[name]
        path = saved(name, CACHE)
        bare = median_run(args.repeat, "bare", path, samples, batch)
        audit = median_run(args.repeat, "audit", path, samples, batch)
        full = median_run(args.repeat, "audit", path, samples, batch, "all-samples")
        rows.append([
            name, samples,
            f"{bare['wall']:.2f}", f"{audit['wall']:.2f}", f"{full['wall']:.2f}",
            f"{audit['wall'] / bare['wall']:.2f}", f"{full['wall'] / bare['wall']:.2f}",
            f"{bare['peak_rss_mb']:.0f}", f"{full['peak_rss_mb']:.0f}",
            f"{full['peak_rss_mb'] / bare['peak_rss_mb']:.2f}",
        ])
        print(f"measured {name}", file=sys.stderr)
    print(tabulate(rows, headers=[
        "model", "samples", "bare s", "audit s", "audit --all-samples s",
        "wall ratio", "wall ratio (all)", "bare RSS MB", "audit RSS MB", "RSS ratio"]))
    print(f"\n`gradaudit --help`: {help_seconds(args.repeat):.2f} s (median of {args.repeat})")


if __name__ == "__main__":
    main()

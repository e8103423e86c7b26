"""What a timeline of 50 checkpoints costs against one audit plus 50 probe passes.

``python benchmarks/timeline.py [--checkpoints N] [--repeat R]`` trains the MLP of
fixtures/timeline (make_fixtures.py ``_mlp``, Adam(1e-3), seed 0) for N epochs and
saves a checkpoint each epoch into ``benchmarks/.models/timeline_xN/`` (cached, not
committed), then times, each command whole (interpreter start and TensorFlow's
import included, the median of R runs):

- **timeline**: ``gradaudit timeline DIR -q -f json`` (the worker, one model built,
  the weights of each later checkpoint swapped in);
- **one audit**: ``gradaudit audit FIRST -q -f json``;
- **N probe passes**: in this process, after a warm-up, each checkpoint's
  ``pipeline.audit_path`` on its model already loaded (the training state read, the
  probe with the compiled loss, the checks), summed: what the checkpoints cannot cost
  less than without a change to the probe;
- **audit of the N files**: ``gradaudit audit DIR -q -f json`` (one worker, each file
  loaded afresh), the cost without the swap.

Prints the times and the ratios: timeline / (one audit + N probe passes), the issue's
target ("little more than", so about 1), and timeline / audit of the N files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def build(count: int) -> Path:
    """N checkpoints of one run, one per epoch (cached)."""
    folder = HERE / ".models" / f"timeline_x{count}"
    if len(list(folder.glob("*.keras"))) == count:
        return folder
    sys.path.insert(0, str(ROOT / "fixtures"))
    import keras
    from make_fixtures import TRAIN_BATCH, _mlp, reset_seed, training_data

    folder.mkdir(parents=True, exist_ok=True)
    reset_seed()
    model = _mlp(keras, "timeline")
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    x, y = training_data()
    for epoch in range(1, count + 1):
        model.fit(x, y, epochs=1, batch_size=TRAIN_BATCH, verbose=0)
        model.save(folder / f"ckpt-{epoch}.keras")
    return folder


def command_seconds(repeat: int, *args: str) -> float:
    """The median wall time of ``python -m gradaudit ARGS`` (exit 0 or 1 expected)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "gradaudit", *args], cwd=ROOT,
                              capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode not in (0, 1):
            raise SystemExit(f"gradaudit {' '.join(args)} failed: {done.stderr}")
    return statistics.median(times)


def probe_passes_seconds(paths: list[Path]) -> float:
    """The checkpoints' audits on their models already loaded, as ``audit`` runs them
    (the compiled loss as objective, its step traced), summed: each checkpoint's load
    untimed, after a warm-up on the first (TensorFlow's first trace)."""
    from gradaudit.load.loader import load_model
    from gradaudit.options import Options
    from gradaudit.pipeline import audit_path

    options = Options()
    audit_path(str(paths[0]), options)
    total = 0.0
    for path in paths:
        loaded = load_model(str(path), seed=options.seed)
        start = time.perf_counter()
        audit_path(str(path), options, loaded=loaded)
        total += time.perf_counter() - start
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    folder = build(args.checkpoints)
    paths = sorted(folder.glob("*.keras"), key=lambda p: int(p.stem.split("-")[1]))
    timeline = command_seconds(args.repeat, "timeline", str(folder), "-q", "-f", "json")
    one = command_seconds(args.repeat, "audit", str(paths[0]), "-q", "-f", "json")
    every = command_seconds(args.repeat, "audit", str(folder), "-q", "-f", "json")
    probes = probe_passes_seconds(paths)
    n = len(paths)
    print(f"timeline of {n} checkpoints: {timeline:.2f} s")
    print(f"one audit: {one:.2f} s; {n} probe passes: {probes:.2f} s "
          f"({probes / n:.3f} s each); one audit + {n} probe passes: {one + probes:.2f} s")
    print(f"audit of the {n} files in one command (each loaded afresh): {every:.2f} s")
    print(f"ratio timeline / (one audit + {n} probe passes): "
          f"**{timeline / (one + probes):.2f}**")
    print(f"ratio timeline / audit of the {n} files: {timeline / every:.2f}")


if __name__ == "__main__":
    main()

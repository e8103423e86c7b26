"""One measured run in a fresh process: the bare baseline or gradaudit's audit.

Prints one JSON line: wall seconds of the measured part (model load + probe
passes; TensorFlow's import is excluded from both) and the process's peak RSS.
TensorFlow runs with its defaults (oneDNN on, its own log level) unless the
environment sets ``TF_ENABLE_ONEDNN_OPTS``, as in a user's own script, which
imports TensorFlow and Keras plainly; ``run.py`` also times each child as a whole
process, the import and the interpreter's exit included.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def bare(path: str, samples: int, batch_size: int) -> None:
    """What a person would write: load, then one tape pass per batch."""
    import keras
    import numpy as np
    import tensorflow as tf

    model = keras.saving.load_model(path, compile=False)
    rng = np.random.default_rng(0)
    for start in range(0, samples, batch_size):
        n = min(batch_size, samples - start)
        batch = []
        for tensor in model.inputs:
            shape = (n, *tensor.shape[1:])
            if "int" in str(tensor.dtype):
                batch.append(rng.integers(0, 1000, shape).astype(str(tensor.dtype)))
            else:
                batch.append(rng.standard_normal(shape).astype("float32"))
        with tf.GradientTape() as tape:
            output = model(batch if len(batch) > 1 else batch[0], training=True)
            loss = tf.reduce_mean(tf.reduce_sum(output * tf.random.normal(output.shape[1:]), -1))
        tape.gradient(loss, model.trainable_variables)


def audit(path: str, samples: int, batch_size: int, *extra: str) -> None:
    from gradaudit.options import Options
    from gradaudit.pipeline import audit_paths

    run = audit_paths([path], Options(samples=samples, batch_size=batch_size,
                                      all_samples="all-samples" in extra))
    assert not run.errors, run.errors


def budgeted(path: str, samples: int, batch_size: int, max_memory: str) -> dict[str, object]:
    """The audit inside a memory budget, with the estimate the batch was chosen by:
    what the process held then plus the estimated step at the batch chosen."""
    from gradaudit.options import Options
    from gradaudit.pipeline import audit_paths
    from gradaudit.probe import memory

    chosen: list[tuple[memory.StepEstimate, int, memory.BatchChoice]] = []
    choose = memory.choose_batch

    def recorded(estimate: memory.StepEstimate, wanted: int, budget: int, held: int,
                 **limits: int | None) -> memory.BatchChoice:
        choice = choose(estimate, wanted, budget, held, **limits)
        chosen.append((estimate, held, choice))
        return choice

    memory.choose_batch = recorded  # the benchmark reads the estimate; the audit is unchanged
    budget = memory.parse_size(max_memory) if max_memory != "default" else None
    run = audit_paths([path], Options(samples=samples, batch_size=batch_size,
                                      max_memory=budget))
    assert not run.errors, run.errors
    ((estimate, held, choice),) = chosen
    (model,) = run.models
    return {"batch": choice.batch_size,
            "estimated_peak_mb": (held + estimate.bytes(choice.batch_size)) / 2**20,
            "findings": [[f.code, f.layer] for f in model.findings]}


def peak_rss() -> int:
    """This process's peak resident bytes since its exec: VmHWM on Linux. Not ru_maxrss,
    into which Linux carries the parent's RSS at fork (run.py holds TensorFlow: ~0.5 GB
    on every child, which hid the small models' own peaks)."""
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    kind, path, samples, batch_size, *extra = sys.argv[1:]
    if kind == "bare":  # as a user's script does: no gradaudit, no quieting
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    else:
        from gradaudit.runtime import import_tensorflow

        import_tensorflow()
    start = time.perf_counter()
    result = {"bare": bare, "audit": audit, "budgeted": budgeted}[kind](
        path, int(samples), int(batch_size), *extra)
    wall = time.perf_counter() - start
    # done_at: the system-wide monotonic clock, for run.py's figure without the exit
    # (the interpreter's teardown of TensorFlow, which the CLI's worker skips).
    print(json.dumps({"wall": wall, "done_at": time.monotonic(),
                      "peak_rss_mb": peak_rss() / 2**20, **(result or {})}))


if __name__ == "__main__":
    main()

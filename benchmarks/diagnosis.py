"""How long linking findings to their root causes takes on a 1,000-layer model.

``python benchmarks/diagnosis.py [--layers N]`` builds a functional Keras model of
N Dense(8, relu) layers with a residual Add every other layer (so the graph is no
mere chain: 1.5 N layers, 2 N edges), reads its layer graph (``KerasModel.layer_graph``)
and links a report with a finding on every Dense layer, the second-last one fully
dead (GA102) and every other one with zero gradient (GA202): the worst case, every
finding decided along the graph. Prints the two times (median of 5). Not a test:
the issue asks for "well under a second" on 1,000 layers, measured here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def _median_seconds(work: Callable[[], Any], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=1000)
    count = parser.parse_args().layers

    import keras

    sys.setrecursionlimit(20_000)  # Keras maps a deep functional graph recursively
    from gradaudit.checks.causes import diagnose
    from gradaudit.model.keras_graph import KerasModel
    from gradaudit.report.types import Finding, LayerRow, ModelReport, Severity

    x = inputs = keras.Input((8,), name="features")
    for i in range(count):
        h = keras.layers.Dense(8, activation="relu", name=f"dense_{i:04d}")(x)
        x = keras.layers.Add(name=f"add_{i:04d}")([x, h]) if i % 2 else h
    model = keras.Model(inputs, x)
    audited = KerasModel(model)
    graph_seconds = _median_seconds(audited.layer_graph)
    graph = audited.layer_graph()

    rows = tuple(LayerRow(info.name, info.type, "relu", 72, 72, 0, True, 8, None, None, None,
                          None) for info in audited.layers)
    dead = f"dense_{count - 2:04d}"
    findings = tuple(
        Finding("GA102" if info.name == dead else "GA202", Severity.ERROR, info.name, "m")
        for info in audited.layers if info.type == "Dense")
    report = ModelReport("bench.keras", "keras", "bench", 72 * count, 72 * count, 0, 256, 0, (),
                         rows, findings)
    link_seconds = _median_seconds(lambda: diagnose(report, graph))
    linked = diagnose(report, graph)
    explained = sum(1 for f in linked.findings if f.caused_by == dead)
    print(f"{len(audited.layers)} layers, {sum(map(len, graph.values()))} edges, "
          f"{len(findings)} findings ({explained} linked to {dead}): layer graph "
          f"{graph_seconds * 1000:.1f} ms, links and diagnosis {link_seconds * 1000:.1f} ms")


if __name__ == "__main__":
    main()

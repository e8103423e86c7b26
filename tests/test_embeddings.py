"""An Embedding is judged on the rows the probe looked up, per lookup (GA204).

A row gets gradient only from the samples whose tokens choose it: averaged over
every row and every sample, a freshly built text model's embedding looked
vanishing (GA204 on 5 of 6 such models), the more so the larger the vocabulary
and the more samples. A cut or zero embedding gradient is still reported.
"""

from __future__ import annotations

from typing import Any

import keras
import pytest

from gradaudit.model.keras_graph import KerasModel
from gradaudit.options import Options
from gradaudit.pipeline import audit_model
from gradaudit.report.types import ModelReport


def _text_model(vocab: int, head: str, between: Any = None) -> Any:
    """tokens → Embedding(vocab) → [between] → LSTM or average pooling → Dense."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(vocab, 32, name="embedding")(tokens)
    if between is not None:
        x = between(x)
    x = (keras.layers.LSTM(32, name="lstm")(x) if head == "lstm"
         else keras.layers.GlobalAveragePooling1D(name="pool")(x))
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    return keras.Model(tokens, keras.layers.Dense(3, activation="softmax", name="probs")(x))


def _audit(model: Any, **options: Any) -> ModelReport:
    return audit_model(KerasModel(model), Options(**options))


def _findings(report: ModelReport) -> set[tuple[str, str]]:
    return {(f.code, f.layer) for f in report.findings}


@pytest.mark.parametrize(("vocab", "head"), [
    (1000, "lstm"), (5000, "pool"), (10000, "lstm"), (20000, "lstm"), (20000, "pool"),
])
def test_fresh_text_models_have_no_vanishing_embedding(vocab: int, head: str) -> None:
    report = _audit(_text_model(vocab, head))
    assert _findings(report) == set()
    embedding = next(row for row in report.layers if row.name == "embedding")
    probs = next(row for row in report.layers if row.name == "probs")
    assert embedding.grad_rms is not None and probs.grad_rms is not None
    assert embedding.grad_rms / probs.grad_rms > 1e-2  # GA204 needs < 1e-3


def test_more_samples_do_not_make_an_embedding_vanish() -> None:
    """Per lookup, a row's gradient does not shrink as samples (and rarer rows) are added."""
    model = _text_model(20000, "pool")
    early, full = _audit(model), _audit(model, all_samples=True)
    assert (early.samples, full.samples) == (64, 256)
    assert _findings(full) == set()
    rms = [next(r.grad_rms for r in report.layers if r.name == "embedding")
           for report in (early, full)]
    assert rms[1] == pytest.approx(rms[0], rel=0.2)


@pytest.mark.parametrize(("between", "expected"), [
    (lambda x: keras.ops.stop_gradient(x), ("GA201", "embedding")),
    (lambda x: keras.ops.multiply(x, 0.0), ("GA202", "embedding")),
    (lambda x: keras.ops.multiply(x, 1e-7), ("GA204", "embedding")),
])
def test_a_cut_zero_or_vanishing_embedding_is_still_reported(
        between: Any, expected: tuple[str, str]) -> None:
    assert expected in _findings(_audit(_text_model(20000, "pool", between)))

"""How fast each artifact answers, measured in the run's own process on held-out rows.

Two numbers per runtime, each the median over repeated calls after one warm-up call (so
tracing and tensor allocation are not counted):

* `single_row_ms`: one call on one row, what an app pays per request;
* `batch_rows_per_s`: rows per second through one call on `BATCH_ROWS` rows (held-out rows
  repeated when there are fewer).

Inputs are prepared once in each runtime's own form (tensors for TensorFlow, numpy for LiteRT),
so only the call is timed. The reference points are Keras `model.predict` and a direct call of
the Keras model. Each measurement stops after `BUDGET_SECONDS` (at least `MIN_REPEATS` calls):
a run pays about a second for the whole table. Timings on a busy machine are noisy; compare
ratios within one run (see benchmarks/export_table.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from tasks.engine import inference

BATCH_ROWS = 256
BUDGET_SECONDS = 0.1
MIN_REPEATS = 3
MAX_REPEATS = 500


def median_seconds(call: Callable[[], Any]) -> float:
    """Median seconds of `call()` over repeats, after one warm-up call."""
    call()
    times: list[float] = []
    spent = 0.0
    while len(times) < MIN_REPEATS or (spent < BUDGET_SECONDS and len(times) < MAX_REPEATS):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
        spent += times[-1]
    return float(np.median(times))


def _rows(features: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    indices = np.arange(count) % inference.row_count(features)
    return {name: values[indices] for name, values in features.items()}


def _callers(name: str, loaded: Any, features: dict[str, np.ndarray]) -> Callable[[], Any]:
    """A zero-argument call of an artifact (or Keras `predict`) on prepared `features`."""
    if name == "keras_predict":
        tensors = inference.to_tensors(features)
        return lambda: loaded.predict(tensors, batch_size=BATCH_ROWS, verbose=0)
    if name in ("keras", "keras_call"):
        tensors = inference.to_tensors(features)
        return lambda: loaded(tensors, training=False)
    if name == "savedmodel":
        tensors = inference.to_tensors(features)
        return lambda: loaded(**tensors)
    runner = loaded.get_signature_runner()
    arrays = inference.litert_inputs(features)
    return lambda: runner(**arrays)


def measure(name: str, loaded: Any, held_out: dict[str, np.ndarray]) -> dict[str, float]:
    """Single-row latency and batch throughput of one runtime.

    Args:
        name: An export format (see `config.EXPORT_FORMATS`), or `keras_predict` /
            `keras_call` for a Keras model's `predict` / direct call.
        loaded: What `inference.load_artifact(name, path)` returned, or the Keras model.
        held_out: Raw held-out features.

    Returns:
        `{"single_row_ms", "batch_rows_per_s"}`.
    """
    single = median_seconds(_callers(name, loaded, _rows(held_out, 1)))
    batch = median_seconds(_callers(name, loaded, _rows(held_out, BATCH_ROWS)))
    return {"single_row_ms": single * 1e3, "batch_rows_per_s": BATCH_ROWS / batch}


def keras_reference(model: keras.Model, held_out: dict[str, np.ndarray]) -> dict[str, Any]:
    """The reference points: the in-memory Keras model's `predict` and direct call."""
    return {name: measure(name, model, held_out) for name in ("keras_predict", "keras_call")}

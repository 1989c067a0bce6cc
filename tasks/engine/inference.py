"""Running each artifact of a run on raw features, by its own runtime.

The export parity gate, the latency table and `tasks.predict` all call these, so what is checked
at export time is exactly what users run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

BATCH_ROWS = 4096


def to_tensors(features: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
    """Raw numpy features -> tensors (object arrays of text become tf.string)."""
    return {name: tf.constant(values.astype(str) if values.dtype == object else values)
            for name, values in features.items()}


def litert_inputs(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Raw numpy features -> what LiteRT takes (text as UTF-8 bytes, as `tf.constant` makes it).

    Not `astype(np.bytes_)`: it encodes ASCII only, and a category such as "café" crashed the
    TFLite parity check of every run (found by tests/test_fuzz_inputs.py).
    """
    return {name: np.char.encode(values.astype(str), "utf-8") if values.dtype == object else values
            for name, values in features.items()}


def row_count(features: dict[str, np.ndarray]) -> int:
    """Number of rows in a dict of feature arrays."""
    return len(next(iter(features.values())))


def _batches(features: dict[str, np.ndarray]):
    for start in range(0, row_count(features), BATCH_ROWS):
        yield {name: values[start:start + BATCH_ROWS] for name, values in features.items()}


def keras_outputs(model: keras.Model, features: dict[str, np.ndarray]) -> np.ndarray:
    """Calls a Keras model directly in batches (much cheaper than `predict` for small inputs)."""
    outputs = [keras.ops.convert_to_numpy(model(to_tensors(batch), training=False))
               for batch in _batches(features)]
    return np.concatenate(outputs)


def load_keras(path: str | Path) -> keras.Model:
    """Loads a `.keras` file in safe mode (no arbitrary code from the file is run).

    Our own layers (`zoo.layers`) are registered first, so a fresh process can load the file.
    """
    import zoo.layers  # noqa: F401  (registers FillMissing, MissingIndicator)

    return keras.saving.load_model(path, safe_mode=True, compile=False)


def load_savedmodel(path: str | Path) -> Any:
    """Loads a SavedModel's `serve` signature."""
    return tf.saved_model.load(str(path)).signatures["serve"]


def savedmodel_outputs(signature: Any, features: dict[str, np.ndarray]) -> np.ndarray:
    """Calls a SavedModel signature with raw features passed by column input name."""
    outputs = []
    for batch in _batches(features):
        result = signature(**to_tensors(batch))
        outputs.append(next(iter(result.values())).numpy())
    return np.concatenate(outputs)


def load_tflite(model: str | Path | bytes) -> Any:
    """A standalone LiteRT interpreter for a `.tflite` file (path) or its bytes, allocated.

    Allocating applies LiteRT's default XNNPACK delegate, whose native "Created TensorFlow Lite
    XNNPACK delegate for CPU" line is set aside here (`native_logs`).
    """
    from ai_edge_litert.interpreter import Interpreter

    from tasks.engine import native_logs

    with native_logs.set_aside():
        if isinstance(model, bytes):
            interpreter = Interpreter(model_content=model)
        else:
            interpreter = Interpreter(model_path=str(model))
        interpreter.allocate_tensors()
    return interpreter


def tflite_outputs(interpreter: Any, features: dict[str, np.ndarray]) -> np.ndarray:
    """Runs a LiteRT interpreter's signature on raw features passed by column input name."""
    runner = interpreter.get_signature_runner()
    outputs = []
    for batch in _batches(features):
        result = runner(**litert_inputs(batch))
        outputs.append(next(iter(result.values())))
    return np.concatenate(outputs)


def load_artifact(name: str, path: str | Path) -> Any:
    """Loads an artifact of export format `name` (see `config.EXPORT_FORMATS`) by its runtime."""
    if name == "keras":
        return load_keras(path)
    if name == "savedmodel":
        return load_savedmodel(path)
    return load_tflite(path)


def outputs_of(name: str, loaded: Any, features: dict[str, np.ndarray]) -> np.ndarray:
    """Runs an artifact loaded with `load_artifact(name, ...)` on raw features."""
    if name == "keras":
        return keras_outputs(loaded, features)
    if name == "savedmodel":
        return savedmodel_outputs(loaded, features)
    return tflite_outputs(loaded, features)


def artifact_outputs(name: str, path: str | Path, features: dict[str, np.ndarray]) -> np.ndarray:
    """Loads the artifact of format `name` at `path` and runs it on raw features."""
    return outputs_of(name, load_artifact(name, path), features)

"""Running each artifact of a run on raw features, by its own runtime.

The export parity gate and `tasks.predict` both call these, so what is checked at export time is
exactly what users run.
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


def _rows(features: dict[str, np.ndarray]) -> int:
    return len(next(iter(features.values())))


def _batches(features: dict[str, np.ndarray]):
    total = _rows(features)
    for start in range(0, total, BATCH_ROWS):
        yield {name: values[start:start + BATCH_ROWS] for name, values in features.items()}


def keras_outputs(model: keras.Model, features: dict[str, np.ndarray]) -> np.ndarray:
    """Calls a Keras model directly in batches (much cheaper than `predict` for small inputs)."""
    outputs = [keras.ops.convert_to_numpy(model(to_tensors(batch), training=False))
               for batch in _batches(features)]
    return np.concatenate(outputs)


def load_keras(path: str | Path) -> keras.Model:
    """Loads a `.keras` file in safe mode (no arbitrary code from the file is run)."""
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


def load_tflite(path: str | Path) -> Any:
    """Loads a `.tflite` file with the standalone LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path))


def tflite_outputs(interpreter: Any, features: dict[str, np.ndarray]) -> np.ndarray:
    """Runs the TFLite model's signature on raw features passed by column input name.

    Text goes in as bytes, the way LiteRT takes strings.
    """
    runner = interpreter.get_signature_runner()
    outputs = []
    for batch in _batches(features):
        result = runner(**{name: values.astype(str).astype(np.bytes_) if values.dtype == object
                           else values for name, values in batch.items()})
        outputs.append(next(iter(result.values())))
    return np.concatenate(outputs)

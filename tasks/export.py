"""Export every artifact, reload it with its own runtime, and compare it with Keras.

| format       | file                  | reloaded by               | takes               |
|--------------|-----------------------|---------------------------|---------------------|
| `keras`      | `model.keras`         | `keras.saving.load_model` | raw columns by name |
| `savedmodel` | `export/saved_model/` | `tf.saved_model.load`     | raw columns by name |
| `tflite`     | `export/model.tflite` | LiteRT (`ai-edge-litert`) | raw columns by name |

The TFLite model is converted with builtin ops only. Keras's LiteRT export allows Select TF (Flex)
ops by default, and with them the converter keeps TensorFlow's string lookup as a Flex op that the
standalone LiteRT interpreter refuses; restricted to builtins it lowers the lookup to LiteRT's own
HASHTABLE ops, so the file takes the raw text columns too and runs on standalone LiteRT.
`export/schema.json` documents every input (column, dtype, how a missing value is written, the
vocabulary and normalization learned in training) for people writing clients.
The parity gate fails the run when any artifact's maximum absolute difference from the in-memory
Keras model on held-out rows exceeds the tolerance. Regression outputs are compared in units of
the training target's standard deviation (float32 carries about 7 significant digits, so sales
in the millions differ by cents between runtimes); `max_abs_diff` stays in the target's units.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from datasets.preprocessing import TabularPreprocessor
from tasks import inference


class ExportError(RuntimeError):
    """An artifact could not be written or does not give the Keras model's answers."""


class ParityError(ExportError):
    """An exported artifact does not give the Keras model's answers."""


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return path.stat().st_size


def export_all(
    full: keras.Model,
    preprocessor: TabularPreprocessor,
    features: dict[str, np.ndarray],
    run_dir: Path,
    formats: list[str],
    tolerance: float,
    scale: float = 1.0,
) -> dict[str, dict[str, Any]]:
    """Writes the requested artifacts and checks each against `full` on `features`.

    Args:
        full: The Keras model on raw columns.
        preprocessor: Gives the input description written beside the TFLite file.
        features: Held-out raw features to compare on.
        run_dir: Where artifacts go (`model.keras`, `export/...`).
        formats: Any of `keras`, `savedmodel`, `tflite`.
        tolerance: Largest allowed max absolute difference, in units of `scale`.
        scale: The unit differences are judged in (the target's standard deviation for
            regression, 1 for probabilities).

    Returns:
        `{format: {"path", "bytes", "max_abs_diff", "max_scaled_diff"}}`, paths relative to
        `run_dir`.

    Raises:
        ParityError: If an artifact differs by more than `tolerance` (after all are written, so
            the report shows every result).
    """
    reference = inference.keras_outputs(full, features)
    export_dir = run_dir / "export"
    export_dir.mkdir(exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    if "keras" in formats:
        path = run_dir / "model.keras"
        full.save(path)
        outputs = inference.keras_outputs(inference.load_keras(path), features)
        results["keras"] = _result(path, run_dir, reference, outputs, scale)
    if "savedmodel" in formats:
        path = export_dir / "saved_model"
        full.export(str(path), format="tf_saved_model", verbose=False)
        outputs = inference.savedmodel_outputs(inference.load_savedmodel(path), features)
        results["savedmodel"] = _result(path, run_dir, reference, outputs, scale)
    if "tflite" in formats:
        path = export_dir / "model.tflite"
        (export_dir / "schema.json").write_text(json.dumps(preprocessor.client_schema(), indent=2))
        # Keras allows Select TF (Flex) ops by default; standalone LiteRT cannot run them, so ask
        # for builtin ops only and let a model that needs more fail here, loudly.
        try:
            full.export(str(path), format="litert", verbose=False,
                        target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]})
        except Exception as error:  # the converter raises several types, all with this meaning
            detail = str(error).strip().splitlines()[0][:300]
            raise ExportError(f"TFLite conversion failed: the model needs operations outside "
                              f"LiteRT's builtin set ({detail}). Export without tflite "
                              "(--export keras,savedmodel) or change the model.") from error
        outputs = inference.tflite_outputs(inference.load_tflite(path), features)
        results["tflite"] = _result(path, run_dir, reference, outputs, scale)
    return results


def _result(path: Path, run_dir: Path, reference: np.ndarray, outputs: np.ndarray,
            scale: float) -> dict:
    difference = float(np.max(np.abs(np.asarray(outputs, "float64").reshape(reference.shape)
                                      - reference))) if len(reference) else 0.0
    return {"path": str(path.relative_to(run_dir)), "bytes": _size(path),
            "max_abs_diff": difference, "max_scaled_diff": difference / scale}


def passes(result: dict[str, Any], tolerance: float) -> bool:
    """Whether one artifact's result (from `export_all`) is within the parity tolerance."""
    return result["max_scaled_diff"] <= tolerance


def check_parity(exports: dict[str, dict[str, Any]], tolerance: float) -> None:
    """Raises ParityError naming every artifact whose difference exceeds `tolerance`."""
    failed = {name: result["max_scaled_diff"] for name, result in exports.items()
              if not passes(result, tolerance)}
    if failed:
        details = ", ".join(f"{name} differs by {diff:.3g}" for name, diff in failed.items())
        raise ParityError(f"export parity failed: {details} (tolerance {tolerance:g}). The "
                          "artifacts are kept in the .failed run directory for inspection.")

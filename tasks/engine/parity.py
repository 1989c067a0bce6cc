"""The parity rule: how an exported artifact is judged against the Keras model, stated once.

Each artifact is run by its own runtime on the same held-out rows.
Float artifacts (`FLOAT_FORMATS`) must match the in-memory Keras model to `parity_tolerance`
(max absolute difference; regression outputs in units of the training target's standard
deviation, since float32 carries about 7 significant digits); otherwise the run fails
(`ParityError`, exit 1, kept as `<run-dir>.failed`). Reduced-precision artifacts
(`REDUCED_FORMATS`) are judged by what a user sees: label agreement with Keras
(classification, at least `min_label_agreement`) and the drop of the headline metric (at most
`max_metric_drop`: accuracy points for classification, a fraction of the RMSE for regression).
One that misses a threshold is kept, marked `passed: false` in metrics.json, report.md and the
run card, and a warning is printed: quantization error is a property of the model, not a bug.

`judge` applies the rule, `check_parity` fails the run or warns, `thresholds` records the rule
beside each result (the run card), and `rule_text` says it in words (report.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tasks.config import ExportConfig

if TYPE_CHECKING:
    from tasks.engine.export import ExportInputs

FLOAT_FORMATS = ("keras", "savedmodel", "tflite")
REDUCED_FORMATS = ("tflite_float16", "tflite_dynamic_int8", "tflite_int8")


class ExportError(RuntimeError):
    """An artifact could not be written or does not give the Keras model's answers."""


class ParityError(ExportError):
    """An exported artifact does not give the Keras model's answers."""


def judge(name: str, reference: np.ndarray, outputs: np.ndarray, inputs: ExportInputs,
          settings: ExportConfig) -> dict[str, Any]:
    """Compares an artifact's outputs with Keras's (`reference`) by the format's rule.

    Returns:
        `precision` (`float32` or `reduced`), `max_abs_diff`, `max_scaled_diff`, for reduced
        formats `label_agreement` and `metric`, and `passed`.
    """
    outputs = np.asarray(outputs, "float64").reshape(reference.shape)
    difference = float(np.max(np.abs(outputs - reference))) if len(reference) else 0.0
    result: dict[str, Any] = {
        "precision": "float32" if name in FLOAT_FORMATS else "reduced",
        "max_abs_diff": difference, "max_scaled_diff": difference / inputs.scale}
    if name in FLOAT_FORMATS:
        result["passed"] = result["max_scaled_diff"] <= settings.parity_tolerance
        return result
    passed = True
    if inputs.predicted is not None:
        agreement = float(np.mean(inputs.predicted(outputs) == inputs.predicted(reference)))
        result["label_agreement"] = agreement
        passed = agreement >= settings.min_label_agreement
    if inputs.score is not None:
        keras_score, score = inputs.score(reference), inputs.score(outputs)
        drop = keras_score - score if inputs.higher_is_better else score - keras_score
        if inputs.relative_drop:
            drop /= abs(keras_score) or 1.0
        result["metric"] = {"keras": keras_score, "artifact": score, "drop": drop,
                            "relative": inputs.relative_drop}
        passed = passed and drop <= settings.max_metric_drop
    result["passed"] = passed
    return result


def check_parity(exports: dict[str, dict[str, Any]], tolerance: float) -> list[str]:
    """Fails on a float artifact that disagrees; returns warnings for reduced-precision ones.

    Raises:
        ParityError: Naming every float artifact whose difference exceeds `tolerance`.
    """
    failed = {name: result["max_scaled_diff"] for name, result in exports.items()
              if name in FLOAT_FORMATS and not result["passed"]}
    if failed:
        details = ", ".join(f"{name} differs by {diff:.3g}" for name, diff in failed.items())
        raise ParityError(f"export parity failed: {details} (tolerance {tolerance:g}). The "
                          "artifacts are kept in the .failed run directory for inspection.")
    return [f"warning: {name} misses its quality threshold ("
            + ", ".join(_quality(result)) + "); it is kept, see report.md"
            for name, result in exports.items() if not result["passed"]]


def _quality(result: dict[str, Any]) -> list[str]:
    parts = []
    if "label_agreement" in result:
        parts.append(f"label agreement {result['label_agreement']:.3f}")
    if "metric" in result:
        metric = result["metric"]
        parts.append(f"metric drop {metric['drop']:.2%}" if metric["relative"]
                     else f"metric drop {metric['drop']:.4f}")
    return parts


def thresholds(result: dict[str, Any], settings: ExportConfig) -> dict[str, Any]:
    """The thresholds `result` was judged by: the tolerance, or the reduced formats' two."""
    if result["precision"] == "float32":
        return {"tolerance": settings.parity_tolerance}
    return {"thresholds": {"min_label_agreement": settings.min_label_agreement,
                           "max_metric_drop": settings.max_metric_drop}}


def rule_text(settings: dict[str, Any], scaled: bool) -> str:
    """The rule in one sentence, from the run's `export` settings (report.md).

    Args:
        settings: `parity_tolerance`, `min_label_agreement` and `max_metric_drop`.
        scaled: Outputs are in units of the target (regression): differences are judged in its
            standard deviation, and the metric drop as a fraction of the RMSE.
    """
    return (f"Float32 artifacts must match Keras to {settings['parity_tolerance']:g} (max abs diff"
            + (", in units of the target's standard deviation" if scaled else "") + "); reduced-"
            f"precision TFLite files need label agreement >= {settings['min_label_agreement']:g} "
            f"and a headline drop <= {settings['max_metric_drop']:g}"
            + (" (as a fraction of the RMSE)" if scaled else " (accuracy points)") + ".")

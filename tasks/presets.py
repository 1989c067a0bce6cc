"""Per-problem presets: loss, Keras metrics, scores, baselines; optimizers by name.

With `zoo.heads`, this is the one place that knows the problem type: adding a problem means adding
a `ProblemPreset` here and a head there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tasks import evaluation


@dataclass(frozen=True)
class ProblemPreset:
    """What a problem needs beyond the model.

    Attributes:
        loss: The Keras loss.
        keras_metrics: Metrics Keras tracks per epoch besides the loss (history.csv, learning
            curves). None by default: on small tables each one adds about a fifth to the fit time
            (measured with benchmarks/fit_speed.py), and the scores that matter are computed by
            scikit-learn on the final model.
        score: `(y_true, model_output) -> {metric: value}`, computed with scikit-learn; the same
            function scores the model, the baselines and every exported artifact.
        predicted_ids: `model_output -> class ids` (classification).
        baselines: `(schema, seed) -> {name: scikit-learn estimator}`.
        baseline_output: `(fitted estimator, features frame) -> model-like output`.
        headline: The metric printed first and used to compare with baselines.
    """

    loss: str
    keras_metrics: tuple[str, ...]
    score: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    predicted_ids: Callable[[np.ndarray], np.ndarray]
    baselines: Callable[..., dict[str, Any]]
    baseline_output: Callable[..., np.ndarray]
    headline: str


PRESETS: dict[str, ProblemPreset] = {
    "binary": ProblemPreset(
        loss="binary_crossentropy",
        keras_metrics=(),
        score=evaluation.binary_scores,
        predicted_ids=evaluation.binary_labels,
        baselines=evaluation.binary_baselines,
        baseline_output=evaluation.positive_probability,
        headline="accuracy",
    ),
}


def get_preset(problem: str) -> ProblemPreset:
    """Returns the preset for `problem`."""
    if problem not in PRESETS:
        raise ValueError(f"No preset for problem {problem!r}; known: {', '.join(PRESETS)}. "
                         f"Received: problem={problem!r}")
    return PRESETS[problem]


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Builds an optimizer by name.

    Args:
        name: `sgd`, `momentum` (SGD + Nesterov momentum 0.9), `adagrad`, `rmsprop`, `adam` or
            `adamw`.
        learning_rate: Initial learning rate.

    Example:
        >>> make_optimizer("momentum", 1e-2)
    """
    factories = {
        "sgd": lambda: keras.optimizers.SGD(learning_rate),
        "momentum": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        "adagrad": lambda: keras.optimizers.Adagrad(learning_rate),
        "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate),
        "adam": lambda: keras.optimizers.Adam(learning_rate),
        "adamw": lambda: keras.optimizers.AdamW(learning_rate),
    }
    if name not in factories:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(factories)}. "
                         f"Received: name={name!r}")
    return factories[name]()


def compile_arguments(
    problem: str, optimizer: str, learning_rate: float, steps_per_execution: int = 1
) -> dict[str, Any]:
    """Keyword arguments for `model.compile` for `problem`."""
    preset = get_preset(problem)
    return {
        "optimizer": make_optimizer(optimizer, learning_rate),
        "loss": preset.loss,
        "metrics": list(preset.keras_metrics),
        "steps_per_execution": steps_per_execution,
    }

"""Per-problem presets: loss, Keras metrics, scores, baselines; optimizers by name.

The problem types and what they mean for data and outputs are declared in `common.problems`;
a preset adds what a problem needs to train and be scored. Adding a problem means a `Problem`
there and a `ProblemPreset` here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from common import problems
from common.problems import Problem
from tasks.engine import evaluation


@dataclass(frozen=True)
class ProblemPreset:
    """What a problem needs beyond the model.

    Attributes:
        problem: The problem's declaration (`common.problems`).
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
        higher_is_better: Whether a larger `headline` is better.
        losses: Loss names `train.loss` may choose; the first is the default.
        plots: Test-split plots in `tasks.engine.plots.TEST_PLOTS` to draw for this problem.
        per_class: `(y_true, output, labels) -> rows` of per-class test scores, if any.
    """

    problem: Problem
    loss: str
    keras_metrics: tuple[str, ...]
    score: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    predicted_ids: Callable[[np.ndarray], np.ndarray]
    baselines: Callable[..., dict[str, Any]]
    baseline_output: Callable[..., np.ndarray]
    headline: str
    higher_is_better: bool = True
    losses: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    per_class: Callable[..., list[dict[str, Any]]] | None = None

    @property
    def standardize_target(self) -> bool:
        """Train on `(y - mean) / std` of the training targets (see `Problem`)."""
        return self.problem.standardize_target

    @property
    def classifies(self) -> bool:
        """Outputs are class probabilities.

        Reduced-precision exports are then judged by label agreement and the headline's drop in
        its own units (accuracy points); otherwise by the headline's drop as a fraction (of the
        RMSE).
        """
        return self.problem.classifies


PRESETS: dict[str, ProblemPreset] = {
    problems.BINARY.name: ProblemPreset(
        problem=problems.BINARY,
        loss="binary_crossentropy",
        keras_metrics=(),
        score=evaluation.binary_scores,
        predicted_ids=evaluation.binary_labels,
        baselines=evaluation.classification_baselines,
        baseline_output=evaluation.positive_probability,
        headline="accuracy",
        losses=("binary_crossentropy",),
        plots=("confusion_matrix", "roc_curve"),
    ),
    problems.MULTICLASS.name: ProblemPreset(
        problem=problems.MULTICLASS,
        loss="sparse_categorical_crossentropy",
        keras_metrics=(),
        score=evaluation.multiclass_scores,
        predicted_ids=evaluation.multiclass_labels,
        baselines=evaluation.classification_baselines,
        baseline_output=evaluation.class_probabilities,
        headline="accuracy",
        losses=("sparse_categorical_crossentropy",),
        plots=("confusion_matrix",),
        per_class=evaluation.per_class_table,
    ),
    # The network learns the standardized target; the engine appends a Rescaling layer so every
    # exported model outputs the target's own units.
    problems.REGRESSION.name: ProblemPreset(
        problem=problems.REGRESSION,
        loss="mse",
        keras_metrics=(),
        score=evaluation.regression_scores,
        predicted_ids=evaluation.identity,
        baselines=evaluation.regression_baselines,
        baseline_output=evaluation.regression_predictions,
        headline="rmse",
        higher_is_better=False,
        losses=("mse", "huber", "mae"),
        plots=("predicted_vs_actual", "residuals"),
    ),
}


def training_targets(problem: str, ids: np.ndarray) -> np.ndarray:
    """Targets in the shape and dtype the problem's loss expects: class ids for a softmax."""
    if problems.get(problem).per_class_outputs:
        return ids.astype("int32")
    return ids.reshape(-1, 1).astype("float32")


def get_preset(problem: str) -> ProblemPreset:
    """Returns the preset for `problem`.

    Raises:
        ValueError: For an unknown problem, listing the choices (`common.problems.get`).
    """
    return PRESETS[problems.get(problem).name]


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


def resolve_loss(problem: str, loss: str = "auto") -> str:
    """The Keras loss for `problem`: its preset's default for `"auto"`, else `loss` if allowed.

    Raises:
        ValueError: If the problem's preset does not allow `loss`.
    """
    preset = get_preset(problem)
    if loss == "auto":
        return preset.loss
    if loss not in preset.losses:
        raise ValueError(f"train.loss {loss!r} does not fit a {problem} problem; choose auto or "
                         f"one of: {', '.join(preset.losses)}.")
    return loss


def compile_arguments(
    problem: str, optimizer: str, learning_rate: float, steps_per_execution: int = 1,
    loss: str = "auto",
) -> dict[str, Any]:
    """Keyword arguments for `model.compile` for `problem`.

    Args:
        problem: A name in `common.problems.NAMES`.
        optimizer: An optimizer name (see `make_optimizer`).
        learning_rate: Initial learning rate.
        steps_per_execution: Gradient steps per call into TensorFlow.
        loss: `"auto"` for the problem's default, or one of its preset's `losses`.
    """
    return {
        "optimizer": make_optimizer(optimizer, learning_rate),
        "loss": resolve_loss(problem, loss),
        "metrics": list(get_preset(problem).keras_metrics),
        "steps_per_execution": steps_per_execution,
    }

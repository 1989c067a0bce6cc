"""The hand-offs between the steps of a run, as small typed records.

`pipeline.run` passes these from step to step; `metrics`, `report` and `run_card` read them, so
no step reaches into another's dicts by string keys. Each record says what a step produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd


@dataclass
class PreparedData:
    """Preprocessed matrices for a fit, and the preprocessing adapted on their training rows.

    Attributes:
        preprocessor: Adapted on the rows of `x["train"]` only (datasets' `TabularPreprocessor`
            or `ImagePreprocessor`).
        x: `"train"` and, unless this is a refit, `"validation"` feature matrices; for streamed
            data `"train"` is a `TrainingStream` of every training row (`len()` is their count).
        y: The matching targets (standardized for regression).
        target_mean: Mean of the training targets, when the network learns them standardized.
        target_std: Their standard deviation (the network's output times this, plus the mean,
            is in the target's units).
    """

    preprocessor: Any
    x: dict[str, Any]
    y: dict[str, np.ndarray]
    target_mean: float = 0.0
    target_std: float = 1.0

    def compose(self, network: keras.Model) -> keras.Model:
        """The model users get: raw features in, the target's units (or probabilities) out."""
        return self.preprocessor.compose(network, self.target_mean, self.target_std)


@dataclass
class FitOutcome:
    """A trained network, its per-epoch history and the seconds `fit` took."""

    network: keras.Model
    history: pd.DataFrame
    seconds: float


@dataclass
class ConfigurationResult:
    """One configuration of a search: its settings and how it did on the validation rows."""

    settings: dict[str, Any]
    validation_loss: float
    validation: dict[str, float]
    best_epoch: int
    test: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `tuning.best` / `tuning.default` entries of metrics.json."""
        entry = {"settings": self.settings, "validation_loss": self.validation_loss,
                 "validation": self.validation, "best_epoch": self.best_epoch}
        return entry if self.test is None else {**entry, "test": self.test}


@dataclass
class SearchOutcome:
    """A hyperparameter search and the refit of its best configuration (metrics' `tuning`)."""

    tuner: str
    objective: str
    max_epochs: int
    trials: int
    trials_run: int
    search_seconds: float
    best_trial: str
    best_hyperparameters: dict[str, Any]
    best_validation_loss: float
    refit: dict[str, Any]
    best: ConfigurationResult
    default: ConfigurationResult
    plot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The `tuning` section of metrics.json."""
        return {
            "tuner": self.tuner, "objective": self.objective, "max_epochs": self.max_epochs,
            "trials": self.trials, "trials_run": self.trials_run,
            "search_seconds": self.search_seconds,
            "trials_per_minute": (60 * self.trials_run / self.search_seconds
                                  if self.trials_run else None),
            "best_trial": self.best_trial, "best_hyperparameters": self.best_hyperparameters,
            "best_validation_loss": self.best_validation_loss, "refit": self.refit,
            "best": self.best.to_dict(), "default": self.default.to_dict(), "plot": self.plot,
        }


@dataclass
class Training:
    """What the training step hands on: the data it fit on, the network, and the search."""

    data: PreparedData
    fit: FitOutcome
    search: SearchOutcome | None = None


@dataclass
class Scores:
    """The model's scikit-learn scores per split, its test outputs, and the baselines' scores.

    After a search the validation scores are the best trial's (the refit saw those rows).
    """

    test: dict[str, float]
    validation: dict[str, float]
    test_output: np.ndarray
    baselines: dict[str, dict[str, float]]


@dataclass
class ExportOutcome:
    """The artifacts written and judged (metrics' `exports`), Keras's own latency, the time."""

    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class DataFacts:
    """What report.md says about the data (each kind of input fills it, `inputs.summary`).

    Attributes:
        target: The column (or, for images, the class) predicted.
        labels: The classes in order (None for regression).
        target_range: The training targets' smallest and largest value (regression).
        features: The inputs in words.
        streaming: What was streamed and what sampled (streamed tables only).
    """

    target: str
    labels: list[Any] | None
    target_range: list[float] | None
    features: str
    streaming: str | None = None


@dataclass
class RunSummary:
    """What report.md gives beside metrics.json: the data, the network and how it trained.

    Attributes:
        rows: Rows per split.
        data: The data in words.
        parameters: The network's parameters.
        epochs_run: Epochs trained (both phases of a two-phase fit).
        best_epoch: The epoch with the lowest validation loss (the last, without validation).
        model_params: The builder settings the network was trained with (a search's best).
        train: Optimizer, learning rate and batch size it was trained with.
        refit: Whether it is a search's best configuration refit on train + validation.
        phases: How a two-phase fit went, or None.
    """

    rows: dict[str, int]
    data: DataFacts
    parameters: int
    epochs_run: int
    best_epoch: int
    model_params: dict[str, Any]
    train: dict[str, Any]
    refit: bool
    phases: dict[str, Any] | None = None


@dataclass
class RunOutcome:
    """What a finished run leaves: where it is, its metrics, the model and its history.

    A distributed search's worker and a multi-worker run's non-chief task write no run: their
    `metrics` are empty and `model` is None.
    """

    run_dir: Path
    metrics: dict[str, Any]
    model: keras.Model | None = None
    history: pd.DataFrame | None = None

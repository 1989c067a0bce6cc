"""The run's plots: learning curves, the problem's test plots, the search's learning rates."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    PredictionErrorDisplay,
    RocCurveDisplay,
)


def plot_learning_curves(history: pd.DataFrame, path: Path) -> None:
    """Training vs validation curves for every metric Keras logged, one panel each.

    A dotted line marks the epoch of lowest validation loss, whose weights early stopping keeps;
    in a two-phase transfer fit a dashed line marks where fine-tuning began.
    """
    names = [name for name in history.columns
             if name not in ("epoch", "learning_rate", "phase") and not name.startswith("val_")]
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    epochs = history["epoch"] + 1
    best = epochs[history["val_loss"].idxmin()] if "val_loss" in history else None
    fine_tuning = (epochs[history["phase"] == 2].min()
                   if "phase" in history and (history["phase"] == 2).any() else None)
    for axis, name in zip(axes[0], names, strict=True):
        axis.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            axis.plot(epochs, history[f"val_{name}"], label="validation")
        if best is not None:
            axis.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best})")
        if fine_tuning is not None:
            axis.axvline(fine_tuning - 0.5, color="black", linestyle="--",
                         label="fine-tuning starts")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_learning_rate_search(trials: pd.DataFrame, objective: str, tuning: dict[str, Any],
                              path: Path) -> bool:
    """Each trial's validation score against its learning rate (log axis), best and default marked.

    Returns False (nothing drawn) when the search did not vary the learning rate.

    Args:
        trials: The search's `trials.csv` table.
        objective: Its score column (lower is better).
        tuning: The `tuning` section of metrics.json (best trial, the default's score).
        path: Where the PNG goes.
    """
    if "learning_rate" not in trials or trials["learning_rate"].nunique() < 2:
        return False
    done = trials[(trials["status"] == "COMPLETED") & np.isfinite(trials[objective])]
    best = done[done["trial"] == tuning["best_trial"]]
    default = tuning["default"]
    figure, axis = plt.subplots(figsize=(5.5, 4))
    axis.scatter(done["learning_rate"], done[objective], alpha=0.7, label="trial")
    axis.scatter(best["learning_rate"], best[objective], marker="*", s=250, color="tab:red",
                 label=f"best (trial {tuning['best_trial']})")
    axis.scatter([default["settings"]["learning_rate"]], [default["validation_loss"]],
                 marker="x", s=80, color="black", label="default configuration")
    axis.set_xscale("log")
    axis.xaxis.set_minor_formatter(NullFormatter())  # labels only at powers of ten
    axis.set_xlabel("learning rate (log scale)")
    axis.set_ylabel(f"{objective.replace('_', ' ')} (lower is better)")
    axis.legend()
    return _save(figure, axis, "search: validation score against learning rate", path)


def _save(figure: Any, axis: Any, title: str, path: Path) -> bool:
    """Titles, lays out, writes and closes a one-panel figure; returns True (it was drawn)."""
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def plot_confusion_matrix(y_true: np.ndarray, output: np.ndarray, predicted: np.ndarray,
                          schema: Any, path: Path) -> bool:
    """Confusion matrix of the test split with the user's label names."""
    labels = schema.labels
    size = max(4.5, 0.6 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size, size - 0.5))
    ConfusionMatrixDisplay.from_predictions(
        y_true, predicted, labels=list(range(len(labels))),
        display_labels=[str(label) for label in labels], ax=axis, colorbar=False,
        xticks_rotation=45 if len(labels) > 4 else "horizontal")
    return _save(figure, axis, "test confusion matrix", path)


def plot_roc_curve(y_true: np.ndarray, output: np.ndarray, predicted: np.ndarray, schema: Any,
                   path: Path) -> bool:
    """ROC curve of the test split for the positive class (skipped if the test has one class)."""
    if len(np.unique(y_true)) != 2:
        return False
    figure, axis = plt.subplots(figsize=(4.5, 4))
    RocCurveDisplay.from_predictions(y_true, np.ravel(output), ax=axis,
                                     name=f"model (positive: {schema.labels[-1]})")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axis.legend(loc="lower right")
    return _save(figure, axis, "test ROC curve", path)


def plot_predicted_vs_actual(y_true: np.ndarray, output: np.ndarray, predicted: np.ndarray,
                             schema: Any, path: Path) -> bool:
    """Predicted against actual target on the test split, with the ideal diagonal."""
    figure, axis = plt.subplots(figsize=(4.5, 4))
    PredictionErrorDisplay.from_predictions(y_true, predicted, kind="actual_vs_predicted",
                                            ax=axis)
    return _save(figure, axis, f"test: predicted vs actual {schema.target}", path)


def plot_residuals(y_true: np.ndarray, output: np.ndarray, predicted: np.ndarray, schema: Any,
                   path: Path) -> bool:
    """Residuals (actual - predicted) against the prediction on the test split."""
    figure, axis = plt.subplots(figsize=(4.5, 4))
    PredictionErrorDisplay.from_predictions(y_true, predicted, kind="residual_vs_predicted",
                                            ax=axis)
    return _save(figure, axis, "test residuals", path)


def plot_misclassified(images: np.ndarray, y_true: np.ndarray, predicted: np.ndarray,
                       output: np.ndarray, labels: list[Any], path: Path,
                       limit: int = 25) -> bool:
    """A grid of misclassified test images, most confident mistakes first, titled true / predicted.

    Returns:
        False (nothing drawn) when every test image is classified correctly.
    """
    wrong = np.flatnonzero(predicted != y_true)
    if not len(wrong):
        return False
    confidence = np.asarray(output)[wrong, predicted[wrong]]
    wrong = wrong[np.argsort(-confidence)][:limit]
    columns = min(5, len(wrong))
    rows = math.ceil(len(wrong) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows),
                                squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, index in zip(axes.ravel(), wrong, strict=False):
        image = images[index]
        axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray",
                    vmin=0, vmax=255)
        axis.set_title(f"true {labels[y_true[index]]}\npred {labels[predicted[index]]} "
                       f"({np.asarray(output)[index, predicted[index]]:.2f})", fontsize=8)
    figure.suptitle(f"misclassified test images ({len(np.flatnonzero(predicted != y_true))} "
                    f"of {len(y_true)})")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


# Plots of the test split a problem preset may ask for:
# (y_true, model output, the preset's predictions from that output, schema, path) -> drawn?
TEST_PLOTS = {
    "confusion_matrix": plot_confusion_matrix,
    "roc_curve": plot_roc_curve,
    "predicted_vs_actual": plot_predicted_vs_actual,
    "residuals": plot_residuals,
}


def draw_run_plots(run_dir: Path, history: pd.DataFrame, preset: Any,
           y_true: np.ndarray, output: np.ndarray, inputs: Any) -> list[str]:
    """Draws the learning curves and the problem's test plots; returns their paths.

    `inputs` (the engine's `TableInputs` or `ImageInputs`) may add its own (misclassified
    images).
    """
    plot_dir = run_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    plot_learning_curves(history, plot_dir / "learning_curves.png")
    names = ["plots/learning_curves.png"]
    predicted = preset.predicted_ids(output)
    for name in preset.plots:
        if TEST_PLOTS[name](y_true, output, predicted, inputs.schema,
                                   plot_dir / f"{name}.png"):
            names.append(f"plots/{name}.png")
    return names + inputs.extra_plots(output, predicted, plot_dir)

"""What a run leaves for people and programs: metrics.json, plots, report.md."""

from __future__ import annotations

import json
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

from common import problems  # noqa: E402


def write_json(path: Path, data: Any) -> None:
    """Writes `data` as indented JSON (NaN written as null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [clean(item) for item in value]
        return value

    path.write_text(json.dumps(clean(data), indent=2) + "\n")


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


def _table(rows: list[list[Any]], header: list[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else f"{value:.4f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def export_section(metrics: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """The report's lines on exported artifacts: parity, size and speed (see `export.py`)."""
    exports = metrics["exports"]
    if not exports:
        return ["## Exports", "(none requested)", ""]
    scaled = problems.get(metrics["problem"]).standardize_target
    float_bytes = exports.get("tflite", {}).get("bytes")
    rows = []
    for name, result in exports.items():
        metric = result.get("metric")
        rows.append([
            f"`{name}`", result["path"], f"{result['bytes']:,}",
            f"{result['bytes'] / float_bytes:.2f}" if float_bytes and "tflite" in name else "",
            f"{result['max_scaled_diff' if scaled else 'max_abs_diff']:.1e}",
            f"{result['label_agreement']:.4f}" if "label_agreement" in result else "",
            "" if metric is None else (f"{metric['drop']:+.2%}" if metric["relative"]
                                       else f"{metric['drop']:+.4f}"),
            "yes" if result["passed"] else "**NO**"])
    lines = [
        "## Exports",
        "Each artifact is reloaded by its own runtime and run on the test rows. Float32 artifacts "
        f"must match Keras to {settings['parity_tolerance']:g} (max abs diff"
        + (", in units of the target's standard deviation" if scaled else "") + "); reduced-"
        f"precision TFLite files need label agreement >= {settings['min_label_agreement']:g} "
        f"and a headline drop <= {settings['max_metric_drop']:g}"
        + (" (as a fraction of the RMSE)" if scaled else " (accuracy points)") + ".",
        "",
        _table(rows, ["format", "path", "bytes", "x tflite", "max diff"
                      + (" / target std" if scaled else ""), "label agreement",
                      f"{'RMSE' if scaled else 'accuracy'} drop", "passed"]),
        "",
    ]
    reference = metrics.get("latency") or {}
    timed = {**{f"Keras {name.removeprefix('keras_')}()": value
                for name, value in reference.items()},
             **{f"`{name}`": result["latency"] for name, result in exports.items()
                if "latency" in result}}
    if timed:
        predict = reference.get("keras_predict", {}).get("single_row_ms")
        lines += [
            "### Latency (this machine, this run)",
            "Median of repeated calls after a warm-up; inputs prepared in each runtime's own "
            "form. `x predict`: how many times faster than Keras `predict` on one row.",
            "",
            _table([[name, f"{value['single_row_ms']:.3f}",
                     f"{predict / value['single_row_ms']:.0f}" if predict else "",
                     f"{value['batch_rows_per_s']:,.0f}"] for name, value in timed.items()],
                   ["runtime", "1 row (ms)", "x predict", "rows/s (batch of 256)"]),
            "",
        ]
    return lines


def _setting(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else json.dumps(value).strip('"')


def _search_section(metrics: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """The "Hyperparameter search" section: how it ran, best vs default settings and test."""
    tuning = metrics.get("tuning")
    if not tuning:
        return []
    best, default = tuning["best"], tuning["default"]
    names = list(metrics["test"])
    settings = [[name, _setting(default["settings"][name]), _setting(value)]
                for name, value in best["settings"].items()]
    rows = [[f"**best** (trial {tuning['best_trial']})", best["validation_loss"],
             best["best_epoch"], *[metrics["test"][name] for name in names]],
            ["default", default["validation_loss"], default["best_epoch"],
             *[default["test"][name] for name in names]]]
    pace = (f"{tuning['trials_run']} trials run, {tuning['trials_per_minute']:.1f} per minute"
            if tuning["trials_run"] else "resumed with no trials left to run")
    return [
        "## Hyperparameter search",
        f"{tuning['tuner']} search, {tuning['trials']} trials of up to {tuning['max_epochs']} "
        f"epochs: each trained on the {summary['rows']['train']} training rows and scored on the "
        f"{summary['rows']['validation']} validation rows by validation loss (the problem's loss "
        "without the weight penalty). The test rows were not used. "
        f"{tuning['search_seconds']:.1f} s in this run ({pace}). Every trial is in `trials.csv`, "
        "the best in `best_hyperparameters.json`.",
        "",
        _table(settings, ["setting", "default", "best"]),
        "",
        "Each configuration was refit on train + validation "
        f"({tuning['refit']['rows']} rows, preprocessing re-adapted on them) for the number of "
        "epochs its validation run kept, then scored on the same test rows:",
        "",
        _table(rows, ["configuration", "validation loss", "epochs",
                      *[f"test {name}" for name in names]]),
        "",
    ]


def _phases_line(phases: dict[str, Any] | None) -> list[str]:
    """The two phases of a transfer fit, for the report's model section."""
    if not phases:
        return []
    line = (f"- two phases: {phases['head_epochs']} epochs training the head on the frozen "
            f"backbone, then {phases['fine_tune_epochs']} epochs fine-tuning "
            + ("all its layers" if phases["fine_tune_layers"] < 0 else
               f"its top {phases['fine_tune_layers']} layers")
            + f" (batch norm frozen) at learning rate {phases['fine_tune_learning_rate']:.3g}; ")
    return [line + ("kept the fine-tuned weights" if phases["kept"] == 2 else
                    "fine-tuning did not lower the validation loss, so the phase 1 weights "
                    "were kept")]


def write_report(path: Path, metrics: dict[str, Any], config: dict[str, Any],
                 summary: dict[str, Any], plots: list[str]) -> None:
    """Writes `report.md`: data, model, test metrics vs baselines, search, exports, plots."""
    names = list(metrics["test"])
    rows = [["**model**", *[metrics["test"][name] for name in names]]]
    rows += [[name, *[scores.get(name, float("nan")) for name in names]]
             for name, scores in metrics["baselines"].items()]
    model, train = config["model"], summary["train"]
    fit = (f"refit on train + validation for {summary['epochs_run']} epochs"
           if summary["refit"] else
           f"trained {summary['epochs_run']} epochs (best validation loss at epoch "
           f"{summary['best_epoch']})")
    text = [
        f"# {metrics['task']} on {metrics['dataset']}",
        "",
        "## Data",
        f"- rows: {summary['rows']['train']} train, {summary['rows']['validation']} validation, "
        f"{summary['rows']['test']} test (split seed {config['runtime']['seed']})",
        f"- target: `{summary['target']}`; "
        + ("classes: " + ", ".join(f"`{label}`" for label in summary["labels"])
           if summary["labels"] else
           f"numbers from {summary['target_range'][0]:,.4g} to {summary['target_range'][1]:,.4g}"
           " (the network learns them standardized; every export outputs these units)")
        + (f" (positive: `{summary['labels'][-1]}`)"
           if problems.get(metrics["problem"]).positive_class else ""),
        f"- features: {summary['features']}",
        *([f"- streamed: {summary['streaming']}"] if summary.get("streaming") else []),
        "",
        "## Model",
        f"- `{model['name']}` with {json.dumps(summary['model_params'])}, "
        f"{summary['parameters']:,} parameters" + (" (the search's best)" if summary["refit"]
                                                   else ""),
        f"- {train['optimizer']} at learning rate {train['learning_rate']:.3g}, batch "
        f"{train['batch_size']}; {fit} in {metrics['timing']['fit_seconds']:.1f} s",
        *_phases_line(summary.get("phases")),
        "",
        "## Test metrics against baselines",
        "All scored with scikit-learn on the same test rows; baselines fitted on the same "
        + ("training rows." if not summary.get("streaming") else
           "sample of the training rows that the preprocessing was adapted on."),
        "",
        _table(rows, ["", *names]),
        "",
        *(["### Per class (test)", "",
           _table([[row["class"], row["precision"], row["recall"], row["f1-score"],
                    int(row["support"])] for row in metrics["per_class"]],
                  ["class", "precision", "recall", "f1", "support"]), ""]
          if metrics.get("per_class") else []),
        *_search_section(metrics, summary),
        *export_section(metrics, config["export"]),
        "## Plots",
        *[f"![{Path(plot).stem}]({plot})" for plot in plots],
        "",
        f"Total time {metrics['timing']['total_seconds']:.1f} s "
        f"(fit {metrics['timing']['fit_seconds']:.1f} s).",
        "",
    ]
    path.write_text("\n".join(text))

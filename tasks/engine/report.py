"""What a run leaves for people and programs: JSON files and report.md (plots: `plots.py`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from common import problems  # noqa: E402
from tasks.engine import parity
from tasks.engine.outcomes import RunSummary


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
        "Each artifact is reloaded by its own runtime and run on the test rows. "
        + parity.rule_text(settings, scaled),
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


def _search_section(metrics: dict[str, Any], summary: RunSummary) -> list[str]:
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
        f"epochs: each trained on the {summary.rows['train']} training rows and scored on the "
        f"{summary.rows['validation']} validation rows by validation loss (the problem's loss "
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
                 summary: RunSummary, plots: list[str]) -> None:
    """Writes `report.md`: data, model, test metrics vs baselines, search, exports, plots."""
    names = list(metrics["test"])
    rows = [["**model**", *[metrics["test"][name] for name in names]]]
    rows += [[name, *[scores.get(name, float("nan")) for name in names]]
             for name, scores in metrics["baselines"].items()]
    model, train = config["model"], summary.train
    fit = (f"refit on train + validation for {summary.epochs_run} epochs"
           if summary.refit else
           f"trained {summary.epochs_run} epochs (best validation loss at epoch "
           f"{summary.best_epoch})")
    text = [
        f"# {metrics['task']} on {metrics['dataset']}",
        "",
        "## Data",
        f"- rows: {summary.rows['train']} train, {summary.rows['validation']} validation, "
        f"{summary.rows['test']} test (split seed {config['runtime']['seed']})",
        f"- target: `{summary.data.target}`; "
        + ("classes: " + ", ".join(f"`{label}`" for label in summary.data.labels)
           if summary.data.labels else
           "numbers from {:,.4g} to {:,.4g}".format(*summary.data.target_range)
           + " (the network learns them standardized; every export outputs these units)")
        + (f" (positive: `{summary.data.labels[-1]}`)"
           if problems.get(metrics["problem"]).positive_class else ""),
        f"- features: {summary.data.features}",
        *([f"- streamed: {summary.data.streaming}"] if summary.data.streaming else []),
        "",
        "## Model",
        f"- `{model['name']}` with {json.dumps(summary.model_params)}, "
        f"{summary.parameters:,} parameters" + (" (the search's best)" if summary.refit
                                                   else ""),
        f"- {train['optimizer']} at learning rate {train['learning_rate']:.3g}, batch "
        f"{train['batch_size']}; {fit} in {metrics['timing']['fit_seconds']:.1f} s",
        *_phases_line(summary.phases),
        "",
        "## Test metrics against baselines",
        "All scored with scikit-learn on the same test rows; baselines fitted on the same "
        + ("training rows." if not summary.data.streaming else
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

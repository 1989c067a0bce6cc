"""metrics.json, read off the steps' outcomes; the summary report.md adds; the closing lines.

The keys are a contract (ARCHITECTURE.md, "metrics.json"; tests/tasks/test_run_contract.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import tensorflow as tf

import tasks
from tasks.config import TaskConfig
from tasks.engine import distribute, fine_tune, presets, tuning
from tasks.engine.inputs import ImageInputs, StreamedTableInputs, TableInputs
from tasks.engine.outcomes import ExportOutcome, RunSummary, Scores, Training


def metrics_document(config: TaskConfig, inputs: TableInputs | ImageInputs, training: Training,
                     scores: Scores, exported: ExportOutcome, distribution: dict[str, Any],
                     strategy: tf.distribute.Strategy, started: float) -> dict[str, Any]:
    """The content of metrics.json.

    Args:
        config: The run's configuration.
        inputs: The data as the engine used it.
        training: The fit (and the search, if any).
        scores: Model and baseline scores.
        exported: The judged artifacts and Keras's latency.
        distribution: `roles.describe_distribution`'s facts.
        strategy: The strategy the network trained under.
        started: `time.perf_counter()` when the run started.
    """
    preset = presets.get_preset(config.problem)
    metrics: dict[str, Any] = {
        "task": config.task,
        "problem": config.problem,
        "dataset": inputs.name,
        "test": scores.test,
        "validation": scores.validation,
        "baselines": scores.baselines,
        "timing": {"fit_seconds": training.fit.seconds, "export_seconds": exported.seconds,
                   "total_seconds": time.perf_counter() - started,
                   "process_seconds": time.time() - tasks.PROCESS_START},
        "exports": exported.artifacts,
        "latency": exported.latency,
        "rows": inputs.row_counts(),
        # Each task of a multi-worker run ends with these weights (workers write theirs to
        # their own folder).
        "distribution": {**distribution, **(
            {"weights_sha256": distribute.weights_digest(training.fit.network)}
            if distribute.is_multi_worker(strategy) else {})},
    }
    if isinstance(inputs, StreamedTableInputs):
        metrics["streaming"] = inputs.streaming_facts()
    if preset.per_class is not None:
        metrics["per_class"] = preset.per_class(inputs.ids["test"], scores.test_output,
                                                inputs.schema.labels)
    if training.search:
        metrics["tuning"] = training.search.to_dict()
    phases = fine_tune.phases(training.fit.history, config.train)
    if phases:
        metrics["phases"] = phases
    return metrics


def report_summary(config: TaskConfig, inputs: TableInputs | ImageInputs,
                   training: Training) -> RunSummary:
    """The facts report.md gives beside metrics.json: data, network, settings, phases."""
    fitted = training.fit
    # The settings the network was trained with: the configuration's, or the search's best.
    tuned = training.search.best.settings if training.search else {}
    return RunSummary(
        rows=inputs.row_counts(),
        data=inputs.summary(training.data.preprocessor),
        parameters=fitted.network.count_params(),
        epochs_run=len(fitted.history),
        best_epoch=(int(fitted.history["val_loss"].idxmin()) + 1
                    if "val_loss" in fitted.history else len(fitted.history)),
        model_params={**config.model.params, **{name: value for name, value in tuned.items()
                                                if name not in tuning.TRAIN_SETTINGS}},
        train={**{name: getattr(config.train, name)
                  for name in ("optimizer", "learning_rate", "batch_size")},
               **{name: value for name, value in tuned.items()
                  if name in tuning.TRAIN_SETTINGS}},
        refit=training.search is not None,
        phases=fine_tune.phases(fitted.history, config.train))


def print_summary(metrics: dict[str, Any], headline: str, run_dir: Path) -> None:
    """The run's last lines: test scores, baselines' headline, export parity, where it went."""
    test = metrics["test"]
    print("test: " + "  ".join(f"{name} {value:.4f}" for name, value in test.items()))
    print("baselines (" + headline + "): " + "  ".join(
        f"{name} {scores[headline]:.4f}" for name, scores in metrics["baselines"].items()))
    if metrics["exports"]:
        print("exports (max abs diff vs Keras): " + "  ".join(
            f"{name} {result['max_abs_diff']:.1e}" for name, result in metrics["exports"].items()))
    print(f"done in {metrics['timing']['total_seconds']:.1f} s; run directory: {run_dir}")

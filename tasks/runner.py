"""`run(config)`: the one training driver, and the only caller of compile / fit / export.

The steps (see docs in ARCHITECTURE.md, "One path for data"):
load and validate -> split -> adapt preprocessing on train -> build and compile in the strategy
scope -> fit with the standard callbacks -> score on validation and test with scikit-learn ->
baselines on the same split -> export with a parity gate -> report.

Everything is written to a staging folder next to the run directory and moved into place only
when the run succeeds, so a failed run never overwrites an earlier good one (its files are kept
as `<run-dir>.failed` for inspection).
"""

from __future__ import annotations

import inspect
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

import tasks
import zoo
from datasets.errors import InputError
from datasets.registry import load_configured
from tasks import config as config_module
from tasks import (
    distribute,
    export,
    inference,
    latency,
    presets,
    report,
    run_card,
)
from tasks.callbacks import standard_callbacks
from tasks.config import TaskConfig, TrainConfig
from tasks.inputs import ImageInputs, TableInputs, inputs_for

SPLITS = ("train", "validation", "test")
MAX_STEPS_PER_EXECUTION = 32


@dataclass
class RunResult:
    """What `run` returns: where the run went and what it measured."""

    run_dir: Path
    metrics: dict[str, Any]


def default_run_dir(task: str) -> Path:
    """`runs/<task>-<timestamp>` under the current directory."""
    return Path("runs") / f"{task}-{datetime.now():%Y%m%d-%H%M%S}"


def check_run_dir(path: Path) -> None:
    """Refuses a `--run-dir` that holds something other than an earlier run.

    A successful run replaces the folder, so it must be new, empty, or an earlier run's (one with
    a `config.json`).
    """
    if not path.exists():
        return
    if not path.is_dir():
        raise InputError(f"--run-dir '{path}' is a file. Pass a new folder path.")
    if any(path.iterdir()) and not (path / "config.json").exists():
        raise InputError(f"--run-dir '{path}' holds files that are not a run's, and a run "
                         "replaces its folder. Pass a new or empty folder.")


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yields an empty staging folder that replaces `final` only if the block succeeds.

    On failure the staging folder is renamed `<final>.failed` (replacing an older one) and
    `final`, if it holds an earlier run, is left untouched.
    """
    final = final.resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = final.with_name(f"{final.name}.partial")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        failed = final.with_name(f"{final.name}.failed")
        shutil.rmtree(failed, ignore_errors=True)
        stage.rename(failed)
        raise
    if final.exists():
        previous = final.with_name(f"{final.name}.previous-{os.getpid()}")
        final.rename(previous)
        stage.rename(final)
        shutil.rmtree(previous, ignore_errors=True)
    else:
        stage.rename(final)


@dataclass
class FitPlan:
    """Batching of a fit: global batch size, steps per epoch, steps per call into TensorFlow."""

    batch_size: int
    steps_per_epoch: int
    steps_per_execution: int


def plan_fit(rows: int, train: TrainConfig, replicas: int = 1) -> FitPlan:
    """Chooses the batching for `rows` training rows.

    The global batch is the per-replica batch times the replicas. Unless set, steps per execution
    is a whole epoch (up to `MAX_STEPS_PER_EXECUTION`): on small tables Keras's fixed cost per
    step, not the arithmetic, dominates the fit.
    """
    batch_size = min(train.batch_size, rows) * replicas
    steps = math.ceil(rows / batch_size)
    return FitPlan(batch_size, steps,
                   train.steps_per_execution or min(steps, MAX_STEPS_PER_EXECUTION))


def fit_network(network: keras.Model, x: dict[str, np.ndarray], y: dict[str, np.ndarray],
                plan: FitPlan, train: TrainConfig, run_dir: Path, seed: int,
                progress: bool = True) -> float:
    """Fits a compiled network on preprocessed `x["train"]`, validating on `x["validation"]`.

    Returns:
        The seconds `fit` took. The per-epoch history is in `run_dir / "history.csv"`.
    """
    train_data, validation_data = _datasets(x, y, plan.batch_size, seed)
    started = time.perf_counter()
    network.fit(train_data, epochs=train.epochs, steps_per_epoch=plan.steps_per_epoch,
                validation_data=validation_data, shuffle=False, verbose=0,
                callbacks=standard_callbacks(run_dir, train, progress=progress))
    return time.perf_counter() - started


def _datasets(x: dict[str, np.ndarray], y: dict[str, np.ndarray], batch_size: int, seed: int):
    """tf.data pipelines over the preprocessed matrices, which already sit in memory.

    The training set is cached, reshuffled every pass and repeated, so Keras keeps one iterator
    for the whole fit instead of building one per epoch; validation is one cached batch. tf.data's
    graph rewrites and autotuning are off: they pay off for pipelines that read and decode, but
    here they would be redone for every validation iterator, each epoch, to no gain.
    """
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    options.autotune.enabled = False
    rows = len(x["train"])
    train = (tf.data.Dataset.from_tensor_slices((x["train"], y["train"])).cache()
             .shuffle(rows, seed=seed, reshuffle_each_iteration=True).repeat()
             .batch(batch_size).with_options(options))
    validation = (tf.data.Dataset.from_tensor_slices((x["validation"], y["validation"]))
                  .batch(max(1, min(len(x["validation"]), 8192))).cache().with_options(options))
    return train, validation


# Builder arguments the runner sets from the data; users set the rest with --set model.NAME=...
RUNNER_ARGUMENTS = ("input_dim", "input_shape", "problem", "num_classes")


def _validate_model(name: str, params: dict[str, Any]) -> None:
    """Checks the model name and that every `model.params` key is an argument of its builder."""
    if name not in zoo.list_models():
        raise InputError(f"unknown model '{name}'. Choose one of: {', '.join(zoo.list_models())}.")
    parameters = inspect.signature(zoo.get_builder(name)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    settable = [p for p in parameters if p not in RUNNER_ARGUMENTS]
    unknown = [key for key in params if key not in settable]
    if unknown:
        raise InputError(f"model '{name}' has no setting {', '.join(map(repr, unknown))}. Its "
                         f"settings: {', '.join(settable)} (set with --set model.NAME=VALUE).")


def run(config: TaskConfig, splits: Any = None) -> RunResult:
    """Trains, evaluates, exports and reports one task run.

    Args:
        config: The resolved configuration.
        splits: The data, if already loaded with `datasets.registry.load_configured`
            (`TabularSplits` or `ImageSplits`, as `config.inputs` says).

    Returns:
        The run directory and the metrics written to `metrics.json`.

    Raises:
        InputError: Bad data or settings (before anything is written).
        export.ParityError: An exported artifact disagrees with the Keras model.

    Example:
        >>> from tasks.binary_classify import default_config
        >>> result = run(default_config())
        >>> result.metrics["test"]["accuracy"]
    """
    started = time.perf_counter()
    config_module.validate(config)
    _validate_model(config.model.name, config.model.params)
    preset = presets.get_preset(config.problem)
    try:
        presets.resolve_loss(config.problem, config.train.loss)
    except ValueError as error:
        raise InputError(str(error)) from None
    seed = config.runtime.seed
    keras.utils.set_random_seed(seed)
    splits = splits or load_configured(config.data, config.problem, seed, config.inputs)
    data = inputs_for(splits, config.inputs, config.data.max_categories)
    print(data.describe(), flush=True)
    features, ids = data.features, data.ids
    strategy = distribute.get_strategy(config.runtime.strategy)
    final_dir = Path(config.runtime.run_dir or default_run_dir(config.task))
    check_run_dir(final_dir)

    with staged_directory(final_dir) as run_dir:
        report.write_json(run_dir / "config.json", config.to_dict())
        preprocessor = data.preprocessor(features["train"])
        x = {name: preprocessor.transform(features[name]) for name in ("train", "validation")}
        y = {name: presets.training_targets(config.problem, ids[name])
             for name in ("train", "validation")}
        target_mean, target_std = 0.0, 1.0
        if preset.standardize_target:
            target_mean, target_std = float(y["train"].mean()), float(y["train"].std() or 1.0)
            y = {name: (values - target_mean) / target_std for name, values in y.items()}
        plan = plan_fit(len(x["train"]), config.train, strategy.num_replicas_in_sync)
        labels = data.schema.labels
        with strategy.scope():
            network = zoo.build_model(
                config.model.name, problem=config.problem,
                num_classes=len(labels) if config.problem == "multiclass" else None,
                **preprocessor.builder_inputs(), **config.model.params)
            network.compile(**presets.compile_arguments(
                config.problem, config.train.optimizer, config.train.learning_rate,
                plan.steps_per_execution, config.train.loss))
        print(f"model: {config.model.name} ({network.count_params():,} parameters), up to "
              f"{config.train.epochs} epochs of {plan.steps_per_epoch} steps, batch "
              f"{plan.batch_size}", flush=True)
        fit_seconds = fit_network(network, x, y, plan, config.train, run_dir, seed)
        history = pd.read_csv(run_dir / "history.csv")

        full = preprocessor.compose(network, target_mean, target_std)
        outputs = {name: inference.keras_outputs(full, features[name])
                   for name in ("validation", "test")}
        scores = {name: preset.score(ids[name], outputs[name]) for name in outputs}
        baselines = data.baselines(preset, seed)
        export_started = time.perf_counter()
        exports = export.export_all(full, export.ExportInputs(
            held_out=features["test"], calibration=features["train"],
            client_schema=preprocessor.client_schema(), float_layers=preprocessor.float_layers,
            scale=target_std, score=lambda out: preset.score(ids["test"], out)[preset.headline],
            predicted=preset.predicted_ids if preset.classifies else None,
            higher_is_better=preset.higher_is_better, relative_drop=not preset.classifies),
            run_dir, config.export)
        reference_latency = (latency.keras_reference(full, features["test"])
                             if exports and config.export.latency else {})
        export_seconds = time.perf_counter() - export_started
        plots = _plots(run_dir, history, preset, ids["test"], outputs["test"], data)
        metrics = {
            "task": config.task,
            "problem": config.problem,
            "dataset": splits.name,
            "test": scores["test"],
            "validation": scores["validation"],
            "baselines": baselines,
            "timing": {"fit_seconds": fit_seconds, "export_seconds": export_seconds,
                       "total_seconds": time.perf_counter() - started,
                       "process_seconds": time.time() - tasks.PROCESS_START},
            "exports": exports,
            "latency": reference_latency,
            "rows": {name: len(values) for name, values in ids.items()},
        }
        if preset.per_class is not None:
            metrics["per_class"] = preset.per_class(ids["test"], outputs["test"], labels)
        summary = _summary(data, preprocessor, network, history)
        report.write_json(run_dir / "metrics.json", metrics)
        report.write_report(run_dir / "report.md", metrics, config.to_dict(), summary, plots)
        report.write_json(run_dir / "schema.json", data.schema.to_dict())
        report.write_json(run_dir / "run_card.json", run_card.build_run_card(
            config.to_dict(), config.problem, run_dir, exports, config.export))
        warnings = export.check_parity(exports, config.export.parity_tolerance)
    for line in warnings:
        print(line, flush=True)
    _print_summary(metrics, preset.headline, final_dir)
    return RunResult(run_dir=final_dir, metrics=metrics)


def _plots(run_dir: Path, history: pd.DataFrame, preset: presets.ProblemPreset,
           y_true: np.ndarray, output: np.ndarray, data: TableInputs | ImageInputs) -> list[str]:
    plot_dir = run_dir / "plots"
    plot_dir.mkdir()
    report.plot_learning_curves(history, plot_dir / "learning_curves.png")
    names = ["plots/learning_curves.png"]
    predicted = preset.predicted_ids(output)
    for name in preset.plots:
        if report.TEST_PLOTS[name](y_true, output, predicted, data.schema,
                                   plot_dir / f"{name}.png"):
            names.append(f"plots/{name}.png")
    return names + data.extra_plots(output, predicted, plot_dir)


def _summary(data: TableInputs | ImageInputs, preprocessor: Any, network: keras.Model,
             history: pd.DataFrame) -> dict[str, Any]:
    best = int(history["val_loss"].idxmin()) + 1 if "val_loss" in history else len(history)
    return {
        "rows": {name: len(values) for name, values in data.ids.items()},
        **data.summary(preprocessor),
        "parameters": network.count_params(),
        "epochs_run": len(history),
        "best_epoch": best,
    }


def _print_summary(metrics: dict[str, Any], headline: str, run_dir: Path) -> None:
    test = metrics["test"]
    print("test: " + "  ".join(f"{name} {value:.4f}" for name, value in test.items()))
    print("baselines (" + headline + "): " + "  ".join(
        f"{name} {scores[headline]:.4f}" for name, scores in metrics["baselines"].items()))
    if metrics["exports"]:
        print("exports (max abs diff vs Keras): " + "  ".join(
            f"{name} {result['max_abs_diff']:.1e}" for name, result in metrics["exports"].items()))
    print(f"done in {metrics['timing']['total_seconds']:.1f} s; run directory: {run_dir}")

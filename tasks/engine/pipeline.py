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

import dataclasses
import inspect
import json
import math
import os
import shutil
import tempfile
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
from datasets.streaming import TrainingStream
from tasks import config as config_module
from tasks.config import TaskConfig, TrainConfig
from tasks.engine import (
    distribute,
    distributed_fit,
    export,
    inference,
    interrupt,
    latency,
    presets,
    report,
    resume,
    run_card,
    run_guard,
    state_files,
    tuning,
)
from tasks.engine.callbacks import standard_callbacks
from tasks.engine.inputs import ImageInputs, StreamedTableInputs, TableInputs, inputs_for

SPLITS = ("train", "validation", "test")
SEARCH_SPLITS = ("train", "validation")
MAX_STEPS_PER_EXECUTION = 32
TUNER_DIR = "tuner"


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


def newest_state(final: Path, name: str) -> Path | None:
    """The newest `name` folder left by a run of `final`: killed, failed or finished.

    Candidates are `<final>.partial/name` (a killed run), `<final>.failed/name` and `final/name`;
    the newest is the one whose files changed last.
    """
    final = final.resolve()
    candidates = [folder / name for folder in (final.with_name(f"{final.name}.partial"),
                                               final.with_name(f"{final.name}.failed"), final)]
    found = [path for path in candidates if path.is_dir()]

    def changed(path: Path) -> float:
        return max((item.stat().st_mtime for item in path.rglob("*")),
                   default=path.stat().st_mtime)

    return max(found, key=changed, default=None)


@contextmanager
def staged_directory(final: Path, carry: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yields a staging folder that replaces `final` only if the block succeeds.

    On failure the staging folder is renamed `<final>.failed` (replacing an older one) and
    `final`, if it holds an earlier run, is left untouched.

    Args:
        final: The run directory.
        carry: Folders the new stage starts with: the `newest_state` of each (a search's tuner
            state survives a kill, a failure or a finished run). Everything else starts empty.
    """
    final = final.resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = final.with_name(f"{final.name}.partial")
    sources = {name: newest_state(final, name) for name in carry}
    stage.mkdir(exist_ok=True)
    for item in stage.iterdir():
        if sources.get(item.name) != item:
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    for name, source in sources.items():
        if source is not None and source != stage / name:
            shutil.copytree(source, stage / name)
    try:
        yield stage
    except (interrupt.Interrupted, KeyboardInterrupt):
        raise  # a stopped run stays `<final>.partial`, as a killed one: the next run resumes it
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
                progress: bool = True, backup: resume.Backup | None = None) -> float:
    """Fits a compiled network on preprocessed `x["train"]`, validating on `x["validation"]`.

    Without a `"validation"` entry (a refit on train + validation) nothing is validated, so the
    train settings should turn early stopping and learning-rate reduction off. A network
    compiled under a strategy with several replicas trains in `distributed_fit` (Keras 3's
    `fit` fails there, see `distribute.needs_own_loop`), with the same data and callbacks.

    Args:
        network: Built and compiled in the strategy's scope.
        x: `"train"` and (unless a refit) `"validation"` feature matrices.
        y: The matching targets.
        plan: Batching (`plan_fit`).
        train: Epochs and callback settings.
        run_dir: Where `history.csv` is written.
        seed: Seeds the shuffling.
        progress: Print a line every 10 epochs.
        backup: Where and how often to back the fit up, and to resume it from
            (`resume.open_backup`); None: no backups.

    Returns:
        The seconds `fit` took. The per-epoch history is in `run_dir / "history.csv"`.
    """
    train_data, validation_data = _datasets(x, y, plan.batch_size, seed)
    callbacks = standard_callbacks(run_dir, train, progress=progress)
    history = run_dir / "history.csv"
    started = time.perf_counter()
    if distribute.needs_own_loop(network.distribute_strategy):
        distributed_fit.fit(network, train_data, validation_data, plan.steps_per_epoch,
                            train.epochs, callbacks, history, backup,
                            x["train"].dataset_fn(plan.batch_size, seed)
                            if isinstance(x["train"], TrainingStream) else None)
    else:
        callbacks.append(resume.keras_backup(backup, network, callbacks, history, train.epochs)
                         if backup is not None else resume.StopOnSignal())
        with interrupt.training():  # SIGTERM / SIGINT: a backup, then `interrupt.Interrupted`
            network.fit(train_data, epochs=train.epochs, steps_per_epoch=plan.steps_per_epoch,
                        validation_data=validation_data, shuffle=False, verbose=0,
                        callbacks=callbacks)
    return time.perf_counter() - started


def _datasets(x: dict[str, np.ndarray], y: dict[str, np.ndarray], batch_size: int, seed: int):
    """tf.data pipelines over the preprocessed matrices, which already sit in memory.

    The training set is cached, reshuffled every pass and repeated, so Keras keeps one iterator
    for the whole fit instead of building one per epoch; validation is one cached batch. tf.data's
    graph rewrites and autotuning are off: they pay off for pipelines that read and decode, but
    here they would be redone for every validation iterator, each epoch, to no gain. Streamed
    training rows (`x["train"]` a `TrainingStream`) are such a pipeline, endless as well, and
    keep them on.
    """
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    options.autotune.enabled = False
    if isinstance(x["train"], TrainingStream):  # streamed shards: read, decoded every epoch
        train = x["train"].dataset(batch_size, seed)
    else:
        train = (tf.data.Dataset.from_tensor_slices((x["train"], y["train"])).cache()
                 .shuffle(len(x["train"]), seed=seed, reshuffle_each_iteration=True).repeat()
                 .batch(batch_size).with_options(options))
    if "validation" not in x:
        return train, None
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


@dataclass
class TrainingData:
    """Preprocessed matrices for a fit, and the preprocessing adapted on their training rows.

    Attributes:
        preprocessor: Adapted on the rows of `x["train"]` only.
        x: `"train"` and, unless this is a refit, `"validation"` feature matrices; for streamed
            data `"train"` is a `TrainingStream` of every training row (`len()` is their count).
        y: The matching targets (standardized for regression).
        target_mean: Mean of the training targets, when the network learns them standardized.
        target_std: Their standard deviation (the network's output times this, plus the mean,
            is in the target's units).
    """

    preprocessor: Any  # datasets' TabularPreprocessor or ImagePreprocessor
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    target_mean: float = 0.0
    target_std: float = 1.0


def prepare_training_data(problem: str, data: TableInputs | ImageInputs,
                          features: dict[str, dict[str, np.ndarray]],
                          ids: dict[str, np.ndarray]) -> TrainingData:
    """Adapts preprocessing on `features["train"]` and transforms each split in `features`.

    For streamed data `features["train"]` is the training sample: the preprocessing (and a
    regression target's mean and deviation) are adapted on it, and `x["train"]` becomes the
    stream of every training row through that preprocessing.
    """
    preprocessor = data.preprocessor(features["train"])
    x = {name: preprocessor.transform(values) for name, values in features.items()}
    y = {name: presets.training_targets(problem, ids[name]) for name in features}
    mean, std = 0.0, 1.0
    if presets.get_preset(problem).standardize_target:
        mean, std = float(y["train"].mean()), float(y["train"].std() or 1.0)
        y = {name: (values - mean) / std for name, values in y.items()}
    if isinstance(data, StreamedTableInputs):
        x["train"] = data.training_stream(preprocessor, mean, std)
    return TrainingData(preprocessor, x, y, mean, std)


@dataclass
class FittedNetwork:
    """A trained network, its per-epoch history and the seconds `fit` took."""

    network: keras.Model
    history: pd.DataFrame
    seconds: float


def fit_configuration(config: TaskConfig, params: dict[str, Any], train: TrainConfig,
                      data: TrainingData, strategy: tf.distribute.Strategy, run_dir: Path,
                      seed: int, progress: bool = True,
                      backup: resume.Backup | None = None) -> FittedNetwork:
    """Builds, compiles and fits one configuration of `config.model.name`.

    The default run, every trial of a search and the refit of its best configuration all train
    through here, so they differ only in their settings. A network with a pretrained `backbone`
    layer (`zoo.applications.transfer`) trains in two phases (see `_fine_tune`).

    Args:
        config: The run's configuration (model name, problem).
        params: The builder's keyword arguments.
        train: The training settings.
        data: The preprocessed data.
        strategy: The distribution strategy to build and compile in.
        run_dir: Where `history.csv` is written.
        seed: Seeds the weights and the shuffling.
        progress: Print the model and a line every 10 epochs.
        backup: Back the fit up there, and resume from it (`fit_network`).

    Returns:
        The trained network (after a multi-worker fit, a copy outside the strategy:
        `distribute.local_copy`), its history and the seconds `fit` took.
    """
    schema = data.preprocessor.schema
    plan = plan_fit(len(data.x["train"]), train, strategy.num_replicas_in_sync)
    keras.utils.set_random_seed(seed)
    policy = distribute.precision_policy(config.runtime.mixed_precision, strategy)
    with strategy.scope(), distribute.dtype_policy(policy):
        try:
            network = zoo.build_model(
                config.model.name, problem=config.problem,
                num_classes=len(schema.labels) if config.problem == "multiclass" else None,
                **data.preprocessor.builder_inputs(), **params)
        except ValueError as error:  # builders check their arguments with ValueError
            raise InputError(f"model '{config.model.name}': {error} (set with --set "
                             "model.NAME=VALUE)") from None
    backbone = _backbone(network, train)

    def compile_at(learning_rate: float) -> None:
        with strategy.scope(), distribute.dtype_policy(policy):
            network.compile(**presets.compile_arguments(
                config.problem, train.optimizer, learning_rate, plan.steps_per_execution,
                train.loss))

    if backbone is not None:
        zoo.applications.set_trainable(backbone, 0)
    compile_at(train.learning_rate)
    if progress:
        frozen = (f", backbone frozen ({network.count_params() - _trainable_count(network):,} "
                  "parameters)" if backbone is not None else "")
        print(f"model: {config.model.name} ({network.count_params():,} parameters{frozen}), up "
              f"to {train.epochs} epochs of {plan.steps_per_epoch} steps, batch "
              f"{plan.batch_size}", flush=True)
    seconds = fit_network(network, data.x, data.y, plan, train, run_dir, seed, progress, backup)
    history = _read_history(run_dir, data)
    if backbone is not None and train.fine_tune_layers and train.fine_tune_epochs:
        history, more = _fine_tune(network, backbone, history, compile_at, data, plan, train,
                                   run_dir, seed, progress)
        seconds += more
    return FittedNetwork(distribute.local_copy(network), history, seconds)


def _read_history(run_dir: Path, data: TrainingData) -> pd.DataFrame:
    history = pd.read_csv(run_dir / "history.csv")
    if "validation" not in data.x:  # Keras's CSVLogger adds empty val_ columns
        history = history.dropna(axis="columns", how="all")
        history.to_csv(run_dir / "history.csv", index=False)
    return history


def _backbone(network: keras.Model, train: TrainConfig) -> keras.Model | None:
    """The network's pretrained `backbone` layer, or None for a network trained in one phase."""
    names = {layer.name for layer in network.layers}
    if "backbone" in names:
        return zoo.applications.backbone_layers(network)
    if train.fine_tune_layers:
        raise InputError(f"train.fine_tune_layers (--fine-tune-layers) applies to models with a "
                         f"pretrained backbone (--model transfer); '{network.name}' has none. "
                         f"Received: {train.fine_tune_layers}")
    return None


def _layers_text(count: int) -> str:
    return "all backbone layers" if count < 0 else f"top {count} backbone layers"


def _trainable_count(network: keras.Model) -> int:
    return sum(int(np.prod(weight.shape)) for weight in network.trainable_weights)


def _fine_tune(network: keras.Model, backbone: keras.Model, history: pd.DataFrame,
               compile_at: Any, data: TrainingData, plan: FitPlan, train: TrainConfig,
               run_dir: Path, seed: int, progress: bool) -> tuple[pd.DataFrame, float]:
    """Phase 2 of a transfer fit: the backbone's top layers train at a lower learning rate.

    Phase 1 (the head on the frozen backbone) has run. The top `train.fine_tune_layers` layers
    of the backbone are unfrozen, batch-norm layers excepted (frozen, they normalize with the
    statistics learned in pretraining instead of those of a few small batches), and the network
    is recompiled at `learning_rate * fine_tune_learning_rate_factor` with a fresh optimizer.
    If no phase 2 epoch beats phase 1's best validation loss, phase 1's weights are kept.
    Only phase 1 is backed up (`--run-dir` resume): a run killed in phase 2 starts over.

    Returns:
        The history of both phases (a `phase` column, epochs counted on) and phase 2's seconds.
    """
    history = history.assign(phase=1)
    phase_one = network.get_weights()
    zoo.applications.set_trainable(backbone, len(backbone.layers) if train.fine_tune_layers < 0
                                   else train.fine_tune_layers)
    learning_rate = train.learning_rate * train.fine_tune_learning_rate_factor
    compile_at(learning_rate)
    if progress:
        print(f"fine-tuning: {_layers_text(train.fine_tune_layers)} "
              f"({_trainable_count(network):,} trainable parameters), learning rate "
              f"{learning_rate:g}, up to {train.fine_tune_epochs} epochs", flush=True)
    seconds = fit_network(network, data.x, data.y, plan,
                          dataclasses.replace(train, epochs=train.fine_tune_epochs),
                          run_dir, seed + 1, progress)
    second = _read_history(run_dir, data).assign(phase=2)
    second["epoch"] += len(history)
    combined = pd.concat([history, second], ignore_index=True)
    combined.to_csv(run_dir / "history.csv", index=False)
    if "val_loss" in combined and second["val_loss"].min() >= history["val_loss"].min():
        network.set_weights(phase_one)
        if progress:
            print(f"fine-tuning did not lower the validation loss ({second['val_loss'].min():.4f}"
                  f" vs {history['val_loss'].min():.4f}); keeping the phase 1 weights",
                  flush=True)
    return combined, seconds


def best_epoch(history: pd.DataFrame, train: TrainConfig) -> int:
    """The epoch whose weights a fit kept: the best one under early stopping, else the last."""
    if train.early_stopping_patience and "val_loss" in history:
        return int(history["val_loss"].idxmin()) + 1
    return len(history)


def run(config: TaskConfig, splits: Any = None) -> RunResult:
    """Trains, evaluates, exports and reports one task run.

    With `config.tune.enabled` the network is the best configuration of a hyperparameter search
    on the validation split, refit on train + validation (see `_search_and_refit`).

    Args:
        config: The resolved configuration.
        splits: The data, if already loaded with `datasets.registry.load_configured`
            (`TabularSplits` or `ImageSplits`, as `config.inputs` says).

    Returns:
        The run directory and the metrics written to `metrics.json` (none in a distributed
        search's worker, which only runs trials).

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
    if zoo.get_builder(config.model.name) is zoo.applications.transfer:
        try:  # before anything is written: a missing weights file costs no training
            zoo.applications.check_weights(**{name: config.model.params[name] for name in
                                              ("backbone", "weights") if name in
                                              config.model.params})
        except InputError:
            raise
        except ValueError as error:
            raise InputError(f"model '{config.model.name}': {error}") from None
    space = tuning.resolve_space(config) if config.tune.enabled else None
    seed = config.runtime.seed
    keras.utils.set_random_seed(seed)
    splits = splits or load_configured(config.data, config.problem, seed, config.inputs)
    inputs = inputs_for(splits, config.inputs, config.data.max_categories)
    print(inputs.describe(), flush=True)
    features, ids = inputs.features, inputs.ids
    strategy = distribute.get_strategy(config.runtime.strategy, search=space is not None)
    distribution = _describe_distribution(config, strategy)
    final_dir = Path(config.runtime.run_dir or default_run_dir(config.task))
    if space is not None and tuning.role() == "worker":
        _run_trials_as_worker(config, space, inputs, strategy)
        return RunResult(run_dir=final_dir, metrics={})
    check_run_dir(final_dir)
    if not distribute.is_chief(strategy):
        _train_as_cluster_worker(config, inputs, strategy, final_dir)
        return RunResult(run_dir=final_dir, metrics={})
    carry: tuple[str, ...] = (resume.BACKUP_DIR,) if space is None else ()
    if space is None:  # a damaged backup stops the run before anything is written
        state_files.check_backup(newest_state(final_dir, resume.BACKUP_DIR))
    else:
        expected = tuning.fingerprint(config, space, _data_hashes(config))
        if not config.tune.overwrite:
            tuning.check_resume(newest_state(final_dir, TUNER_DIR), expected, config, space)
            carry = (TUNER_DIR,)

    with (distribute.leave_cluster(strategy), run_guard.guard(final_dir),
          staged_directory(final_dir, carry) as run_dir):
        report.write_json(run_dir / "config.json", config.to_dict())
        if space is None:
            data, fitted = _fit_default(config, inputs, strategy, run_dir)
            tuned = None
        else:
            data, fitted, tuned = _search_and_refit(config, space, expected, inputs, strategy,
                                                    run_dir)
        full = data.preprocessor.compose(fitted.network, data.target_mean, data.target_std)
        # A tuned network was refit on the validation rows; its validation scores are the best
        # trial's, from the search.
        outputs = {name: inference.keras_outputs(full, features[name])
                   for name in (("test",) if tuned else SEARCH_SPLITS + ("test",))}
        scores = {name: preset.score(ids[name], outputs[name]) for name in outputs}
        # Baselines learn from the rows the network's weights did.
        baselines = inputs.baselines(preset, seed, with_validation=bool(tuned))
        export_started = time.perf_counter()
        preprocessor = data.preprocessor
        exports = export.export_all(full, export.ExportInputs(
            held_out=features["test"], calibration=features["train"],
            client_schema=preprocessor.client_schema(), float_layers=preprocessor.float_layers,
            scale=data.target_std,
            score=lambda out: preset.score(ids["test"], out)[preset.headline],
            predicted=preset.predicted_ids if preset.classifies else None,
            higher_is_better=preset.higher_is_better, relative_drop=not preset.classifies),
            run_dir, config.export)
        reference_latency = (latency.keras_reference(full, features["test"])
                             if exports and config.export.latency else {})
        export_seconds = time.perf_counter() - export_started
        plots = _plots(run_dir, fitted.history, preset, ids["test"], outputs["test"], inputs)
        metrics = {
            "task": config.task,
            "problem": config.problem,
            "dataset": inputs.name,
            "test": scores["test"],
            "validation": tuned["best"]["validation"] if tuned else scores["validation"],
            "baselines": baselines,
            "timing": {"fit_seconds": fitted.seconds, "export_seconds": export_seconds,
                       "total_seconds": time.perf_counter() - started,
                       "process_seconds": time.time() - tasks.PROCESS_START},
            "exports": exports,
            "latency": reference_latency,
            "rows": inputs.row_counts(),
            # Each task of a multi-worker run ends with these weights (workers write theirs to
            # their own folder).
            "distribution": {**distribution, **(
                {"weights_sha256": distribute.weights_digest(fitted.network)}
                if distribute.is_multi_worker(strategy) else {})},
        }
        if isinstance(inputs, StreamedTableInputs):
            metrics["streaming"] = inputs.streaming_facts()
        if preset.per_class is not None:
            metrics["per_class"] = preset.per_class(ids["test"], outputs["test"],
                                                    inputs.schema.labels)
        if tuned:
            metrics["tuning"] = tuned
            plots += [tuned["plot"]] if tuned["plot"] else []
        summary = _summary(inputs, data.preprocessor, fitted,
                           tuned["best"]["settings"] if tuned else None, config)
        if summary["phases"]:
            metrics["phases"] = summary["phases"]
        report.write_json(run_dir / "metrics.json", metrics)
        report.write_report(run_dir / "report.md", metrics, config.to_dict(), summary, plots)
        report.write_json(run_dir / "schema.json", inputs.schema.to_dict())
        report.write_json(run_dir / "run_card.json", run_card.build_run_card(
            config.to_dict(), config.problem, run_dir, exports, config.export))
        warnings = export.check_parity(exports, config.export.parity_tolerance)
    for line in warnings:
        print(line, flush=True)
    _print_summary(metrics, preset.headline, final_dir)
    return RunResult(run_dir=final_dir, metrics=metrics)


def _describe_distribution(config: TaskConfig, strategy: tf.distribute.Strategy) -> dict[str, Any]:
    """The strategy, replicas and dtype policy of a run (metrics.json), printed as one line."""
    policy = distribute.precision_policy(config.runtime.mixed_precision, strategy)
    if config.runtime.mixed_precision and policy == "float32":
        print("warning: --mixed-precision needs a GPU or a TPU; on this CPU-only machine "
              "training stays float32 (float16 on CPUs is emulated and slower)", flush=True)
    described = distribute.describe(strategy, policy)
    if described["replicas"] > 1 or described["workers"] > 1 or policy != "float32":
        cluster = distribute.cluster_of(strategy)
        print(f"distribution: {described['strategy']}, {described['replicas']} replicas"
              + (f" on {described['workers']} workers (this is {cluster.name})" if cluster else "")
              + f", dtype policy {policy}", flush=True)
    return described


def _fit_default(config: TaskConfig, inputs: TableInputs | ImageInputs,
                 strategy: tf.distribute.Strategy,
                 folder: Path) -> tuple[TrainingData, FittedNetwork]:
    """The untuned fit, on every task of a cluster alike.

    Preprocessing adapted on the training rows, the configured network trained and validated,
    backed up in `folder/backup` (and resumed from it when a backup of the same settings and
    data is there).
    """
    data = prepare_training_data(config.problem, inputs, {
        name: inputs.features[name] for name in SEARCH_SPLITS}, inputs.ids)
    backup = resume.open_backup(folder / resume.BACKUP_DIR, resume.fingerprint(
        config, _data_hashes(config), strategy.num_replicas_in_sync),
        config.runtime.backup_seconds)
    return data, fit_configuration(config, config.model.params, config.train, data, strategy,
                                   folder, config.runtime.seed, backup=backup)


def _train_as_cluster_worker(config: TaskConfig, inputs: TableInputs | ImageInputs,
                             strategy: tf.distribute.Strategy, final_dir: Path) -> None:
    """A multi-worker run's non-chief task: trains in step with the chief, writes no run.

    Its history, backup and final weights' SHA-256 go to its own folder
    (`distribute.scratch_directory`); the chief writes the run directory.
    """
    scratch = distribute.scratch_directory(final_dir, strategy)
    scratch.mkdir(parents=True, exist_ok=True)
    with distribute.leave_cluster(strategy):
        _, fitted = _fit_default(config, inputs, strategy, scratch)
        (scratch / "weights.sha256").write_text(distribute.weights_digest(fitted.network) + "\n")
        print(f"{distribute.cluster_of(strategy).name}: trained {len(fitted.history)} epochs; "
              f"the chief writes {final_dir}", flush=True)


def _data_hashes(config: TaskConfig) -> dict[str, Any]:
    hashes = {"data": run_card.data_fingerprint(config.data.data, config.problem)}
    if config.data.test_data:
        hashes["test_data"] = run_card.data_fingerprint(config.data.test_data, config.problem)
    return hashes


def score_validation(config: TaskConfig, data: TrainingData, validation_ids: np.ndarray,
                     fitted: FittedNetwork, train: TrainConfig) -> dict[str, float]:
    """A trial's report to the tuner: the objective and scores on the validation rows.

    Returns:
        `tuning.OBJECTIVE` (the loss without the weight penalty), `validation_<metric>` for the
        problem's scikit-learn scores, `epochs` run, `best_epoch` (the weights kept) and `seconds`.
    """
    prediction = keras.ops.convert_to_numpy(fitted.network(data.x["validation"], training=False))
    results = {"epochs": float(len(fitted.history)),
               "best_epoch": float(best_epoch(fitted.history, train)),
               "seconds": fitted.seconds}
    if not np.isfinite(prediction).all():  # diverged: the worst score, not a crashed trial
        return {tuning.OBJECTIVE: float("inf"), **results}
    loss = keras.losses.get(presets.resolve_loss(config.problem, train.loss))
    objective = float(np.mean(keras.ops.convert_to_numpy(loss(data.y["validation"], prediction))))
    scores = presets.get_preset(config.problem).score(
        validation_ids, prediction * data.target_std + data.target_mean)
    return {tuning.OBJECTIVE: objective,
            **{f"validation_{name}": value for name, value in scores.items()}, **results}


def _trial_evaluator(config: TaskConfig, space: tuning.Space, data: TrainingData,
                     validation_ids: np.ndarray,
                     strategy: tf.distribute.Strategy) -> tuning.Evaluate:
    """Trains one trial's configuration on the training rows and scores it on validation."""
    def evaluate(values: dict[str, Any], epochs: int, trial_dir: Path,
                 seed: int) -> dict[str, float]:
        params, train = tuning.configure(config, space, values, epochs)
        fitted = fit_configuration(config, params, train, data, strategy, trial_dir, seed,
                                   progress=False)
        return score_validation(config, data, validation_ids, fitted, train)

    return evaluate


def _run_trials_as_worker(config: TaskConfig, space: tuning.Space,
                          inputs: TableInputs | ImageInputs,
                          strategy: tf.distribute.Strategy) -> None:
    """A distributed search's worker: runs the trials the chief hands out and writes no run."""
    features, ids = inputs.features, inputs.ids
    data = prepare_training_data(config.problem, inputs,
                                 {name: features[name] for name in SEARCH_SPLITS}, ids)
    tuning.search(config, space, _trial_evaluator(config, space, data, ids["validation"], strategy),
                  None)
    print(f"worker {os.environ['KERASTUNER_TUNER_ID']}: no trials left; the chief writes the run "
          "directory", flush=True)


def _search_and_refit(
    config: TaskConfig, space: tuning.Space, expected: dict[str, Any],
    inputs: TableInputs | ImageInputs, strategy: tf.distribute.Strategy, run_dir: Path,
) -> tuple[TrainingData, FittedNetwork, dict[str, Any]]:
    """Searches on the training rows, scored on validation, then refits the best configuration.

    The refit trains on train + validation, with preprocessing re-adapted on those rows, for the
    number of epochs whose weights the best trial kept, without early stopping (no validation
    rows are left to stop on). The default configuration goes through the same two steps, so the
    report compares the two on test like for like. The test rows are used only after the search.
    Writes `trials.csv`, `best_hyperparameters.json` and the learning-rate plot.

    Returns:
        The refit's data and network, and the `tuning` section of metrics.json.
    """
    seed, tune = config.runtime.seed, config.tune
    features, ids = inputs.features, inputs.ids
    search_data = prepare_training_data(config.problem, inputs,
                                        {name: features[name] for name in SEARCH_SPLITS}, ids)
    print(f"search: {tune.tuner}, up to {tune.trials} trials of up to {tune.max_epochs} epochs "
          f"on {len(search_data.x['train'])} training rows, scored on "
          f"{len(search_data.x['validation'])} validation rows", flush=True)
    result = tuning.search(config, space, _trial_evaluator(config, space, search_data,
                                                           ids["validation"], strategy),
                           run_dir / TUNER_DIR, expected)
    merged = {column: np.concatenate([features["train"][column], features["validation"][column]])
              for column in features["train"]}
    full_data = prepare_training_data(
        config.problem, inputs, {"train": merged},
        {"train": np.concatenate([ids["train"], ids["validation"]])})

    def refit(params: dict[str, Any], train: TrainConfig, epochs: float, directory: Path,
              progress: bool) -> FittedNetwork:
        train = dataclasses.replace(train, epochs=int(epochs), early_stopping_patience=0,
                                    reduce_lr_patience=0)
        return fit_configuration(config, params, train, full_data, strategy, directory, seed,
                                 progress)

    keras.backend.clear_session()
    # The default configuration is scored under the trials' rules (the same epoch budget).
    default_train = tuning.configure(config, space, {}, tune.max_epochs)[1]
    with tempfile.TemporaryDirectory() as scratch:
        default_fit = fit_configuration(config, config.model.params, default_train, search_data,
                                        strategy, Path(scratch), seed, progress=False)
        default_validation = score_validation(config, search_data, ids["validation"],
                                              default_fit, default_train)
        default_refit = refit(config.model.params, default_train,
                              default_validation["best_epoch"], Path(scratch), progress=False)
    default_model = full_data.preprocessor.compose(default_refit.network, full_data.target_mean,
                                                   full_data.target_std)
    default_test = presets.get_preset(config.problem).score(
        ids["test"], inference.keras_outputs(default_model, features["test"]))
    best_params, best_train = tuning.configure(config, space, result.best_values,
                                               tune.max_epochs)
    epochs = int(result.best_metrics["best_epoch"])
    print(f"refit: trial {result.best_trial} on train + validation "
          f"({len(full_data.x['train'])} rows) for its {epochs} epochs", flush=True)
    fitted = refit(best_params, best_train, epochs, run_dir, progress=True)

    builder = inspect.signature(zoo.get_builder(config.model.name)).parameters
    defaults = {name: parameter.default for name, parameter in builder.items()}
    best = _configuration(result.best_metrics,
                          tuning.settings(best_params, best_train, space, defaults))
    tuned = {
        "tuner": tune.tuner,
        "objective": tuning.OBJECTIVE,
        "max_epochs": tune.max_epochs,
        "trials": int((result.trials["status"] == "COMPLETED").sum()),
        "trials_run": result.trials_run,
        "search_seconds": result.seconds,
        "trials_per_minute": 60 * result.trials_run / result.seconds if result.trials_run else None,
        "best_trial": result.best_trial,
        "best_hyperparameters": result.best_values,
        "best_validation_loss": result.best_metrics[tuning.OBJECTIVE],
        "refit": {"rows": len(full_data.x["train"]), "epochs": epochs, "seconds": fitted.seconds},
        "best": best,
        "default": {**_configuration(default_validation, tuning.settings(
            config.model.params, config.train, space, defaults)), "test": default_test},
    }
    result.trials.to_csv(run_dir / "trials.csv", index=False)
    report.write_json(run_dir / "best_hyperparameters.json", {
        "trial": result.best_trial, "hyperparameters": result.best_values,
        tuning.OBJECTIVE: tuned["best_validation_loss"], "best_epoch": epochs,
        "settings": best["settings"],
        "replay": " ".join(f"--set {'train' if name in tuning.TRAIN_SETTINGS else 'model'}.{name}="
                           + (value if isinstance(value, str)
                              else json.dumps(value, separators=(",", ":")))
                           for name, value in best["settings"].items()),
    })
    (run_dir / "plots").mkdir(exist_ok=True)
    tuned["plot"] = ("plots/tuning_learning_rate.png" if report.plot_learning_rate_search(
        result.trials, tuning.OBJECTIVE, tuned, run_dir / "plots" / "tuning_learning_rate.png")
        else None)
    return full_data, fitted, tuned


def _configuration(results: dict[str, float], settings: dict[str, Any]) -> dict[str, Any]:
    """One configuration's settings and validation results, for the `tuning` metrics."""
    return {"settings": settings,
            "validation_loss": results[tuning.OBJECTIVE],
            "validation": {name.removeprefix("validation_"): value
                           for name, value in results.items()
                           if name.startswith("validation_") and name != tuning.OBJECTIVE},
            "best_epoch": int(results["best_epoch"])}


def _plots(run_dir: Path, history: pd.DataFrame, preset: presets.ProblemPreset,
           y_true: np.ndarray, output: np.ndarray, inputs: TableInputs | ImageInputs) -> list[str]:
    plot_dir = run_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    report.plot_learning_curves(history, plot_dir / "learning_curves.png")
    names = ["plots/learning_curves.png"]
    predicted = preset.predicted_ids(output)
    for name in preset.plots:
        if report.TEST_PLOTS[name](y_true, output, predicted, inputs.schema,
                                   plot_dir / f"{name}.png"):
            names.append(f"plots/{name}.png")
    return names + inputs.extra_plots(output, predicted, plot_dir)


def _summary(inputs: TableInputs | ImageInputs, preprocessor: Any, fitted: FittedNetwork,
             tuned_settings: dict[str, Any] | None, config: TaskConfig) -> dict[str, Any]:
    return {
        "rows": inputs.row_counts(),
        **inputs.summary(preprocessor),
        "parameters": fitted.network.count_params(),
        "epochs_run": len(fitted.history),
        "best_epoch": (int(fitted.history["val_loss"].idxmin()) + 1
                       if "val_loss" in fitted.history else len(fitted.history)),
        # The settings the network was trained with: the configuration's, or the search's best.
        "model_params": {**config.model.params,
                         **{name: value for name, value in (tuned_settings or {}).items()
                            if name not in tuning.TRAIN_SETTINGS}},
        "train": {**{name: getattr(config.train, name)
                     for name in ("optimizer", "learning_rate", "batch_size")},
                  **{name: value for name, value in (tuned_settings or {}).items()
                     if name in tuning.TRAIN_SETTINGS}},
        "refit": tuned_settings is not None,
        "phases": _phases(fitted.history, config.train),
    }


def _phases(history: pd.DataFrame, train: TrainConfig) -> dict[str, Any] | None:
    """How a two-phase transfer fit went (report.md and metrics.json), or None."""
    if "phase" not in history or not (history["phase"] == 2).any():
        return None
    best = history.loc[history["val_loss"].idxmin(), "phase"] if "val_loss" in history else 2
    return {"head_epochs": int((history["phase"] == 1).sum()),
            "fine_tune_epochs": int((history["phase"] == 2).sum()),
            "fine_tune_layers": train.fine_tune_layers,
            "fine_tune_learning_rate": train.learning_rate * train.fine_tune_learning_rate_factor,
            "kept": int(best)}


def _print_summary(metrics: dict[str, Any], headline: str, run_dir: Path) -> None:
    test = metrics["test"]
    print("test: " + "  ".join(f"{name} {value:.4f}" for name, value in test.items()))
    print("baselines (" + headline + "): " + "  ".join(
        f"{name} {scores[headline]:.4f}" for name, scores in metrics["baselines"].items()))
    if metrics["exports"]:
        print("exports (max abs diff vs Keras): " + "  ".join(
            f"{name} {result['max_abs_diff']:.1e}" for name, result in metrics["exports"].items()))
    print(f"done in {metrics['timing']['total_seconds']:.1f} s; run directory: {run_dir}")

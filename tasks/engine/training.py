"""Training: the one place that picks Keras `fit` or the replica loop, and how it batches.

On one replica the network trains with `model.fit`; under a strategy with several replicas it
trains in `distributed_fit`'s own loop (Keras 3's `fit` fails there, see
`distribute.needs_own_loop`), on the same data and with the same callbacks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from datasets.streaming import TrainingStream
from tasks.config import TrainConfig
from tasks.engine import distribute, distributed_fit, interrupt, keras_backup, resume
from tasks.engine.callbacks import standard_callbacks

MAX_STEPS_PER_EXECUTION = 32


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
        callbacks.append(
            keras_backup.keras_backup(backup, network, callbacks, history, train.epochs)
            if backup is not None else keras_backup.StopOnSignal())
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


def read_history(run_dir: Path, validated: bool) -> pd.DataFrame:
    """The fit's `history.csv`; a fit without validation rows loses Keras's empty columns."""
    history = pd.read_csv(run_dir / "history.csv")
    if not validated:  # Keras's CSVLogger adds empty val_ columns
        history = history.dropna(axis="columns", how="all")
        history.to_csv(run_dir / "history.csv", index=False)
    return history


def trainable_count(network: keras.Model) -> int:
    """Trainable parameters of `network` (the printed count of a frozen backbone's model)."""
    return sum(int(np.prod(weight.shape)) for weight in network.trainable_weights)


def best_epoch(history: pd.DataFrame, train: TrainConfig) -> int:
    """The epoch whose weights a fit kept: the best one under early stopping, else the last."""
    if train.early_stopping_patience and "val_loss" in history:
        return int(history["val_loss"].idxmin()) + 1
    return len(history)

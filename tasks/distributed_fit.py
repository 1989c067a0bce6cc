"""The training loop of several replicas: the one place such a run trains differently.

Keras 3's `model.fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras#20585,
tensorflow/tensorflow#72388: it reduces a per-replica batch while building, then reduces scalar
metrics along an axis), and under a `MirroredStrategy` of several replicas with several steps per
execution (keras#19246) or a validation batch that does not split evenly (see
`distribute.needs_own_loop`). Everything around the loop stays the single-process path's: the
builders, compile presets, datasets and callbacks. The loop itself:

- runs the network's own `train_step` (the step `fit` runs: its loss, loss scaling, metrics and
  optimizer) through `strategy.run`, one epoch per call into TensorFlow, over the training
  dataset distributed with `experimental_distribute_dataset`; auto-shard policy DATA, since the
  rows are in-memory tensors (no files to shard), so each task reads its part of every global
  batch; BatchNormalization layers synchronize their batch statistics across replicas;
- reads the epoch's training metrics reduced across the cluster;
- validates on every task with a plain copy of the network (Keras's own `evaluate` on the whole
  validation set) and averages those logs across the cluster, so every task passes the same
  numbers to the callbacks and makes the same early-stopping and learning-rate decisions;
- runs the standard callbacks through a `keras.callbacks.CallbackList`;
- with a backup folder, saves a `tf.train.Checkpoint` (model and optimizer) and the callbacks'
  state (`tasks.resume.TrainingState`) at the end of an epoch, at most every `backup_seconds`
  (all tasks decide together). Each task keeps its own copies, so resuming needs no shared
  disk: on restart the tasks agree on the latest epoch they all saved.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tasks import distribute, resume

CHECKPOINT = "ckpt"
MEAN = tf.distribute.ReduceOp.MEAN


def fit(network: keras.Model, train_data: tf.data.Dataset,
        validation_data: tf.data.Dataset | None, steps_per_epoch: int, epochs: int,
        callbacks: list[keras.callbacks.Callback], history: Path,
        backup: resume.Backup | None = None,
        dataset_fn: Callable[[tf.distribute.InputContext], tf.data.Dataset] | None = None,
        ) -> None:
    """Trains a network compiled in a strategy's scope, as `model.fit` would.

    In a multi-worker cluster every task calls this with the same arguments (bar the folders).

    Args:
        network: Built and compiled inside `strategy.scope()`.
        train_data: Global batches, repeated (as `runner._datasets` makes them).
        validation_data: Validation batches, or None.
        steps_per_epoch: Global batches per epoch.
        epochs: Most epochs.
        callbacks: The standard callbacks (`tasks.callbacks.standard_callbacks`).
        history: The CSVLogger's file.
        backup: Where and how often to save the training state, and to resume from
            (`tasks.resume.open_backup`).
        dataset_fn: Streamed data (`datasets.streaming.TrainingStream.dataset_fn`): each worker
            reads its own share of the shards through it, instead of every worker reading
            `train_data` whole and keeping its part of each batch.
    """
    strategy = network.distribute_strategy
    _synchronize_batch_norm(network)
    with strategy.scope():
        # What `fit` does before its first step (keras#20585 fails here on a distributed
        # batch): create the optimizer's and the metrics' variables, here from a local batch.
        network._symbolic_build(data_batch=next(iter(train_data.take(1))))
    validator = distribute.plain_copy(network)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn) if dataset_fn else
                    strategy.experimental_distribute_dataset(train_data.with_options(options)))

    @tf.function
    def train_epoch(iterator, steps):
        for _ in tf.range(steps):
            strategy.run(network.train_step, args=(next(iterator),))

    @tf.function
    def cluster_mean(values):
        return strategy.reduce(MEAN, strategy.run(tf.identity, args=(values,)), axis=None)

    read_metrics = tf.function(network.get_metrics_result)
    checkpoints, initial_epoch = None, 0
    state = resume.TrainingState(backup.directory, callbacks, history) if backup else None
    if backup is not None:
        checkpoints, initial_epoch = _restore(network, backup.directory, epochs, cluster_mean)
        if initial_epoch:
            state.restore_history(initial_epoch)
            resume.announce(initial_epoch, epochs, backup.directory)

    callback_list = keras.callbacks.CallbackList(callbacks, model=network, epochs=epochs,
                                                 steps=steps_per_epoch, verbose=0)
    network.stop_training = False
    callback_list.on_train_begin()
    if initial_epoch:
        state.restore(initial_epoch)
    saved_at = time.monotonic()
    logs: dict[str, float] = {}
    steps = tf.constant(steps_per_epoch)
    for epoch in range(initial_epoch, epochs):
        network.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        train_epoch(iterator, steps)
        logs = {name: float(value) for name, value in read_metrics().items()}
        if validation_data is not None:
            validator.set_weights(network.get_weights())
            logs.update({f"val_{name}": value for name, value in validator.evaluate(
                validation_data, verbose=0, return_dict=True).items()})
        # Every task gets the same numbers, and one decision on backing up (a checkpoint reads
        # the metrics across the cluster, so all tasks save or none does).
        names = sorted(logs)
        due = float(backup is not None and time.monotonic() - saved_at >= backup.every_seconds)
        agreed = cluster_mean(tf.constant([*(logs[name] for name in names), due],
                                          tf.float64)).numpy().tolist()
        logs = dict(zip(names, agreed[:-1], strict=True))
        callback_list.on_epoch_end(epoch, logs)
        if agreed[-1] > 0:
            state.save(epoch + 1)
            checkpoints.save(checkpoint_number=epoch + 1)
            saved_at = time.monotonic()
        if network.stop_training:
            break
    if isinstance(network.optimizer, keras.optimizers.Optimizer) and epochs > 0:
        network.optimizer.finalize_variable_values(network.trainable_weights)
    callback_list.on_train_end(logs=logs)
    if backup is not None:
        shutil.rmtree(backup.directory, ignore_errors=True)


def _synchronize_batch_norm(network: keras.Model) -> None:
    """Makes BatchNormalization layers use the global batch's statistics in training.

    By default each replica normalizes with, and updates the moving statistics from, its own
    part of the batch, so under MultiWorkerMirroredStrategy every worker ends with other moving
    statistics (measured: up to 0.12 apart after one epoch of the image task) while its
    trainable weights agree. Synchronized, every replica computes what one device would on the
    global batch, and all workers end with the same weights. Inference is unchanged.
    """
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
        elif isinstance(layer, keras.Model):
            _synchronize_batch_norm(layer)


def _restore(network: keras.Model, backup: Path, epochs: int,
             cluster_mean) -> tuple[tf.train.CheckpointManager, int]:
    """Restores the latest epoch every task of the cluster has saved, if any.

    A task killed between two saves may hold one epoch fewer than the others; all of them
    resume from the epoch they all have (each keeps the last two).

    Returns:
        The task's checkpoint manager, and the epochs already done (0: none).
    """
    checkpoint = tf.train.Checkpoint(model=network, optimizer=network.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, str(backup), max_to_keep=2,
                                         checkpoint_name=CHECKPOINT)
    saved = {int(path.rsplit("-", 1)[1]): path for path in manager.checkpoints}
    usable = set(saved) & resume.saved_states(backup)
    have = np.zeros(epochs + 1)
    have[[0, *[epoch for epoch in usable if epoch <= epochs]]] = 1.0
    everywhere = cluster_mean(tf.constant(have, tf.float64)).numpy()
    epoch = max(index for index, value in enumerate(everywhere) if value == 1.0)
    if epoch:
        checkpoint.restore(saved[epoch]).assert_existing_objects_matched()
    return manager, epoch

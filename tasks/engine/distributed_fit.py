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
  state (`tasks.engine.resume.TrainingState`) at the end of an epoch, at most every `backup_seconds`
  (all tasks decide together). Each task keeps its own copies, so resuming needs no shared
  disk: on restart the tasks agree on the latest backup they all saved;
- stops on SIGTERM or SIGINT (`interrupt`) to any one task, with a backup on every task.
  The tasks must stop at the same step, so they agree on it: every `STOP_CHECK_STEPS` steps
  within an epoch (the epoch runs as several calls into TensorFlow, and an all-reduce of the
  signals received sits between two), and at each epoch end, in the all-reduce of the logs that
  is there anyway. Stopped mid-epoch, the backup holds the weights after the last step run, the
  callbacks' state and history of the epochs done (the epoch reruns in full on resume, as in
  `tasks.engine.resume`). A checkpoint is numbered `2 * epochs done`, `+ 1` for a mid-epoch one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from common import compat
from tasks.engine import distribute, interrupt, resume, state_files

CHECKPOINT = "ckpt"
MEAN = tf.distribute.ReduceOp.MEAN
# Steps between two agreements on stopping within an epoch: an all-reduce of two numbers and
# one more call into TensorFlow. Measured (benchmarks/stop_agreement.py, two localhost workers on
# a loaded 2-core VM): 5 ms per agreement alone; an epoch of 320 steps of a small network took
# 1253 ms in one call and 1256-1259 ms with its 9 checks (+0.2-0.5%). An epoch of at most this
# many steps only agrees at its end, in the all-reduce of its logs, for free.
STOP_CHECK_STEPS = 32


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
        train_data: Global batches, repeated (as `training._datasets` makes them).
        validation_data: Validation batches, or None.
        steps_per_epoch: Global batches per epoch.
        epochs: Most epochs.
        callbacks: The standard callbacks (`tasks.engine.callbacks.standard_callbacks`).
        history: The CSVLogger's file.
        backup: Where and how often to save the training state, and to resume from
            (`tasks.engine.resume.open_backup`).
        dataset_fn: Streamed data (`datasets.streaming.TrainingStream.dataset_fn`): each worker
            reads its own share of the shards through it, instead of every worker reading
            `train_data` whole and keeping its part of each batch.
    """
    with interrupt.training():
        _fit(network, train_data, validation_data, steps_per_epoch, epochs, callbacks, history,
             backup, dataset_fn)


def _fit(network, train_data, validation_data, steps_per_epoch, epochs, callbacks, history,
         backup, dataset_fn) -> None:
    strategy = network.distribute_strategy
    _synchronize_batch_norm(network)
    with strategy.scope():
        # What `fit` does before its first step (keras#20585 fails here on a distributed
        # batch): create the optimizer's and the metrics' variables, here from a local batch.
        compat.symbolic_build(network, next(iter(train_data.take(1))))
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
    saved = None
    if backup is not None:
        checkpoints, saved = _restore(network, backup.directory, epochs, cluster_mean)
        if saved is not None:
            initial_epoch = saved // 2
            state.restore_history(initial_epoch)
            resume.announce(initial_epoch, epochs, backup.directory)

    callback_list = keras.callbacks.CallbackList(callbacks, model=network, epochs=epochs,
                                                 steps=steps_per_epoch, verbose=0)
    network.stop_training = False
    callback_list.on_train_begin()
    if saved is not None:
        state.restore(initial_epoch)
    saved_at = time.monotonic()

    def save(number: int) -> None:
        state.save(number // 2)
        checkpoints.save(checkpoint_number=number)

    def stop(signals: list[float], during: str, number: int) -> None:
        """Raises `Interrupted` if a task received a signal (all tasks see the same values)."""
        if not any(signals):
            return
        if backup is not None:
            save(number)
        here = interrupt.received()
        number_received = here or interrupt.SIGNALS[signals.index(max(signals))]
        raise interrupt.Interrupted(
            number_received, during,
            f"backup saved in {backup.directory}" if backup is not None
            else "this fit has no backup and starts over", elsewhere=here is None, agreed=True)

    logs: dict[str, float] = {}
    chunk = min(steps_per_epoch, STOP_CHECK_STEPS)
    for epoch in range(initial_epoch, epochs):
        network.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for done_steps in range(0, steps_per_epoch, chunk):
            if done_steps:  # whether any task received a signal: all agree to stop, or none
                stop(cluster_mean(_signals()).numpy().tolist(),
                     f"during epoch {epoch + 1} of {epochs}", 2 * epoch + 1)
            train_epoch(iterator, tf.constant(min(chunk, steps_per_epoch - done_steps)))
        logs = {name: float(value) for name, value in read_metrics().items()}
        if validation_data is not None:
            validator.set_weights(network.get_weights())
            logs.update({f"val_{name}": value for name, value in validator.evaluate(
                validation_data, verbose=0, return_dict=True).items()})
        # Every task gets the same numbers, one decision on backing up (a checkpoint reads the
        # metrics across the cluster, so all tasks save or none does) and one on stopping.
        names = sorted(logs)
        due = float(backup is not None and time.monotonic() - saved_at >= backup.every_seconds)
        agreed = cluster_mean(tf.constant([*(logs[name] for name in names), due,
                                           *_signals().numpy()], tf.float64)).numpy().tolist()
        logs = dict(zip(names, agreed[:len(names)], strict=True))
        callback_list.on_epoch_end(epoch, logs)
        # After the last epoch the fit is complete: it ends, and the run keeps it.
        if not (network.stop_training or epoch + 1 >= epochs):
            stop(agreed[len(names) + 1:], f"at the end of epoch {epoch + 1} of {epochs}",
                 2 * epoch + 2)
        if agreed[len(names)] > 0:
            save(2 * epoch + 2)
            saved_at = time.monotonic()
        if network.stop_training:
            break
    if isinstance(network.optimizer, keras.optimizers.Optimizer) and epochs > 0:
        network.optimizer.finalize_variable_values(network.trainable_weights)
    callback_list.on_train_end(logs=logs)
    if backup is not None:
        shutil.rmtree(backup.directory, ignore_errors=True)


def _signals() -> tf.Tensor:
    """This task's signals, one flag per `interrupt.SIGNALS` entry, to all-reduce."""
    received = interrupt.received()
    return tf.constant([float(received == number) for number in interrupt.SIGNALS], tf.float64)


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
             cluster_mean) -> tuple[tf.train.CheckpointManager, int | None]:
    """Restores the latest backup every task of the cluster has saved, if any.

    A task killed between two saves may hold one backup fewer than the others; all of them
    resume from the one they all have (each keeps the last two).

    Raises:
        InputError: The backup's checkpoint list or a checkpoint is damaged or altered.

    Returns:
        The task's checkpoint manager, and the restored checkpoint's number (`2 * epochs
        done`, `+ 1` if saved mid-epoch), or None.
    """
    fix = state_files.backup_fix(backup)
    listed = state_files.checkpoint_paths(backup)  # checked before TensorFlow reads the list
    checkpoint = tf.train.Checkpoint(model=network, optimizer=network.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, str(backup), max_to_keep=2,
                                         checkpoint_name=CHECKPOINT)
    states = resume.saved_states(backup)
    usable = {number for number in listed if number // 2 in states and number <= 2 * epochs + 1}
    have = np.zeros(2 * epochs + 2)
    have[[0, *usable]] = 1.0
    everywhere = cluster_mean(tf.constant(have, tf.float64)).numpy()
    number = max(index for index, value in enumerate(everywhere) if value == 1.0)
    if number not in usable:
        return manager, None
    try:
        checkpoint.restore(listed[number]).assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError) as error:
        raise state_files.refuse(Path(listed[number]), "does not restore into this network "
                                 f"({type(error).__name__}: {str(error).splitlines()[0]})",
                                 fix) from None
    return manager, number

"""Backups of a Keras `fit`: Keras's `BackupAndRestore` plus the callbacks' state.

`resume` defines the backup folder and the callbacks' state; this is its `model.fit` side (a
multi-replica fit backs up in `distributed_fit`). A SIGTERM or SIGINT during the fit saves a
backup at once and stops it (`interrupt`).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import keras

from tasks.engine import interrupt, resume, state_files
from tasks.engine.state_files import KERAS_METADATA, KERAS_WEIGHTS


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's `BackupAndRestore` plus the callbacks' state; also saves on SIGTERM or SIGINT.

    It backs up at the end of an epoch at most every `every_seconds`, and at once when a signal
    arrived (then it raises `interrupt.Interrupted`). Place it after the standard callbacks: its
    restore then runs after their own reset when training begins, and an epoch's callback state
    is saved (before the weights) after they have updated it.

    Args:
        backup: The backup folder and interval.
        state: Saves the other callbacks' state.
        resume_from: The epochs done in the backup (checked by `keras_backup`); None: none.
        epochs: The fit's epochs.
    """

    # It saves at epoch ends and before a batch; its batch-end hook just counts. Without this
    # Keras stops dispatching batch-end callbacks asynchronously, which waits on every call.
    async_safe = True

    def __init__(self, backup: resume.Backup, state: resume.TrainingState, resume_from: int | None,
                 epochs: int):
        # The previous epoch's copy (.bkp) survives a kill during a save.
        super().__init__(str(backup.directory), double_checkpoint=True)
        self.state, self.resume_from, self.every_seconds = state, resume_from, backup.every_seconds
        self.directory, self.epochs, self.epoch = backup.directory, epochs, resume_from or 0
        self.saved_at, self.saved_done = time.monotonic(), resume_from

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.resume_from is not None:
            self.state.restore(self.resume_from)
        self.saved_at = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        signal_number = interrupt.received()
        if signal_number is None:
            return
        if not (batch == 0 and self.saved_done == self.epoch):  # else nothing new to save
            self.save(self.epoch)
        raise interrupt.Interrupted(signal_number,
                                    f"during epoch {self.epoch + 1} of {self.epochs}",
                                    f"backup saved in {self.directory}")

    def on_epoch_end(self, epoch, logs=None):
        signal_number = interrupt.received()
        # A signal during the epoch's last steps or its validation. If this was the last epoch
        # the fit is complete: it ends, and the run keeps it (`interrupt.training`).
        if signal_number is not None and not (self.model.stop_training
                                              or epoch + 1 >= self.epochs):
            self.save(epoch + 1)
            raise interrupt.Interrupted(signal_number,
                                        f"at the end of epoch {epoch + 1} of {self.epochs}",
                                        f"backup saved in {self.directory}")
        if time.monotonic() - self.saved_at >= self.every_seconds:
            self.save(epoch + 1)

    def save(self, done: int) -> None:
        """Backs up the fit after `done` epochs (and the steps since, mid-epoch)."""
        self.state.save(done)
        # Keras's epoch-end save records `epoch + 1` epochs done (double-checkpointed).
        super().on_epoch_end(done - 1)
        self.saved_at, self.saved_done = time.monotonic(), done


class StopOnSignal(keras.callbacks.Callback):
    """Stops a `model.fit` that has no backup (a trial, a refit) on SIGTERM or SIGINT.

    It raises `interrupt.Interrupted` before the next call into TensorFlow; the fit starts
    over when the run is resumed.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        interrupt.stop_if_received(
            f"during epoch {self.epoch + 1} of {self.params['epochs']}",
            "this fit has no backup and starts over")


def keras_backup(backup: resume.Backup, network: keras.Model,
                 callbacks: list[keras.callbacks.Callback], history: Path,
                 epochs: int) -> BackupAndRestore:
    """The callback that backs a single-process `model.fit` up and resumes it.

    Reads the backup before the fit, so a resumed fit says from which epoch it continues: the
    weights `BackupAndRestore` will load must load (else its previous copy is used, as it
    would) and the matching callback state must exist (else the backup is discarded and the fit
    starts over). Restores history.csv.

    Raises:
        InputError: A backup file was damaged or altered (`state_files`).

    Returns:
        The callback, to go after the standard callbacks.
    """
    directory = backup.directory
    state = resume.TrainingState(directory, callbacks, history)
    done = _keras_backed_up_epoch(directory, network, epochs)
    if done is not None and done not in resume.saved_states(directory):
        resume.discard(directory, f"its epoch {done} has no saved callback state")
        done = None
    if done is not None:
        state.restore_history(done)
        resume.announce(done, epochs, directory)
    return BackupAndRestore(backup, state, done, epochs)


def _keras_backed_up_epoch(directory: Path, network: keras.Model, epochs: int) -> int | None:
    """The epochs done in the weights BackupAndRestore will restore; None when there are none.

    Keras writes the weights and then `training_metadata.json` in place, keeping the previous
    pair as `.bkp`: a kill while it writes leaves a latest pair that does not load, and the
    previous pair is used, as BackupAndRestore does. Both pairs unusable cannot come from a kill.
    """
    latest = (directory / KERAS_WEIGHTS, directory / KERAS_METADATA)
    previous = tuple(Path(f"{path}.bkp") for path in latest)
    if not any(path.exists() for path in latest):
        return None
    if network.optimizer is not None and not network.optimizer.built:
        network.optimizer.build(network.trainable_variables)
    done = _loaded_epoch(network, *latest, epochs)
    if done is not None:
        return done
    if not all(path.exists() for path in previous):
        resume.discard(directory, "its only save was cut short")
        return None
    # Keras loads only files named *.weights.h5: try the copy under such a name first.
    trial = directory / f"previous-{KERAS_WEIGHTS}"
    shutil.copyfile(previous[0], trial)
    done = _loaded_epoch(network, trial, previous[1], epochs)
    if done is None:
        trial.unlink()
        raise state_files.refuse(latest[0], "does not load, nor does its previous copy (.bkp)",
                                 state_files.backup_fix(directory))
    os.replace(trial, latest[0])
    shutil.copyfile(previous[1], latest[1])
    return done


def _loaded_epoch(network: keras.Model, weights: Path, metadata: Path, epochs: int) -> int | None:
    """Loads a weights file into `network`; the epochs done its metadata records, or None."""
    if not (weights.exists() and metadata.exists()):
        return None
    done = state_files.read_keras_metadata(metadata, epochs)
    try:
        network.load_weights(weights)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return done

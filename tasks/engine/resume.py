"""Fault tolerance: a fit backs itself up every epoch, and the same command resumes a killed run.

A run's backup is the folder `backup/` of its stage (`<run-dir>.partial/backup/` while it runs;
`staging.staged_directory` carries it into the next attempt, as it carries a search's tuner
state). It holds:

- the model's weights and the optimizer's variables (its step count and learning rate) and the
  number of epochs done: Keras's `BackupAndRestore` (`latest.weights.h5`,
  `training_metadata.json`, and the previous backup's as `.bkp`), or in a multi-worker run a
  `tf.train.Checkpoint` (`ckpt-<epoch>.*`, see `tasks.engine.distributed_fit`);
- what `BackupAndRestore` leaves out, saved by `TrainingState` in `state-<epoch>.json`:
  EarlyStopping's best value, patience count and best epoch (its best weights in
  `best-<epoch>.npz`), ReduceLROnPlateau's best value, patience and cooldown counts, and
  history.csv so far;
- `fingerprint.json`: the settings and data the backup belongs to. A command with other settings
  or data does not resume it: the backup is discarded, with a line saying why.

A backup is written at the end of an epoch once `runtime.backup_seconds` (default 30) passed
since the last one, so a killed run loses at most about that much training, and a fit shorter
than that pays nothing (saving the weights takes ~50 ms, longer than an epoch on a small table).
The state of an epoch is written before its weights, and the last two states are kept, so a kill
between the two writes still leaves a matching pair. A resumed fit is not bit-for-bit the
uninterrupted one: the shuffling and dropout draws start over from the seed.

SIGTERM or SIGINT during the fit (`tasks.engine.interrupt`) saves a backup at once, whatever
`backup_seconds` says: before the next call into TensorFlow (a mid-epoch backup, as Keras's own
`BackupAndRestore(save_freq=N)` makes: the weights and optimizer after the last finished step,
the callbacks' state and history of the epochs done; the interrupted epoch then runs again in
full), or at the end of an epoch when the signal came during its validation. The fit then raises
`interrupt.Interrupted`. A resumed fit prints `resumed from epoch N of M`: epochs 1 to N-1 are in
history.csv, and epoch N starts from its first batch.

When the fit finishes the backup is deleted; a finished run is not resumed, it is run again.
Everything read back is checked first (`state_files`): a damaged or altered backup stops
the run with one `error:` line, and no backup file can run code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tasks.config import TaskConfig
from tasks.engine import state_files

BACKUP_DIR = "backup"
FINGERPRINT = "fingerprint.json"
STATE = "state-{epoch}.json"
BEST_WEIGHTS = "best-{epoch}.npz"
KERAS_WEIGHTS, KERAS_METADATA = state_files.KERAS_WEIGHTS, state_files.KERAS_METADATA


def fingerprint(config: TaskConfig, data: dict[str, Any], replicas: int) -> dict[str, Any]:
    """Everything that decides what a fit learns; a backup resumes only under the same values.

    Args:
        config: The run's configuration; where it is written and what is exported do not count.
        data: Hashes of the data files (`fingerprints.data_hashes`).
        replicas: Replicas in sync (they set the global batch).
    """
    runtime = dataclasses.asdict(config.runtime)
    fields = {
        "task": config.task,
        "data": data,
        "data_settings": dataclasses.asdict(config.data),
        "model": dataclasses.asdict(config.model),
        "train": {name: value for name, value in dataclasses.asdict(config.train).items()
                  if name != "tensorboard"},
        "runtime": {name: runtime[name] for name in ("seed", "strategy", "mixed_precision")},
        "replicas": replicas,
    }
    return json.loads(json.dumps(fields))


@dataclass(frozen=True)
class Backup:
    """Where a fit backs itself up, and how often.

    Attributes:
        directory: The backup folder (its `fingerprint.json` matches the run).
        every_seconds: Back up at the end of an epoch once this many seconds passed since the
            last backup (0: every epoch). Saving the weights costs tens of milliseconds, more
            than a whole epoch on a small table, so small fits back up rarely or never.
    """

    directory: Path
    every_seconds: float = 0.0


def open_backup(directory: Path, expected: dict[str, Any], every_seconds: float = 0.0) -> Backup:
    """Makes `directory` the backup of a fit with fingerprint `expected`.

    A backup left by other settings or data is discarded (a line says which changed), so a
    changed command never continues someone else's training.

    Returns:
        The backup, its folder holding `fingerprint.json` and whatever matching backup it had.
    """
    path = directory / FINGERPRINT
    if directory.exists():
        found = (state_files.read_json(path, state_files.backup_fix(directory))
                 if path.exists() else None)
        if found != expected:
            changed = sorted(key for key in expected if (found or {}).get(key) != expected[key])
            print(f"backup: discarding {directory}: it was made with other "
                  f"{', '.join(changed) if found else 'settings'}; training starts from epoch 0",
                  flush=True)
            shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _write_json(path, expected)
    return Backup(directory, every_seconds)


def saved_states(directory: Path) -> set[int]:
    """Epochs whose `TrainingState` is saved in `directory`."""
    return state_files.saved_states(directory)


class TrainingState:
    """Saves and restores the state of a fit's other callbacks, and its history.csv.

    Args:
        directory: The backup folder.
        callbacks: The fit's callbacks (EarlyStopping, ReduceLROnPlateau, CSVLogger among them).
        history: The CSVLogger's file.
    """

    def __init__(self, directory: Path, callbacks: list[keras.callbacks.Callback],
                 history: Path):
        self.directory, self.history = directory, history
        self.early_stopping = find(callbacks, keras.callbacks.EarlyStopping)
        self.reduce_lr = find(callbacks, keras.callbacks.ReduceLROnPlateau)
        self.logger = find(callbacks, keras.callbacks.CSVLogger)

    def restore_history(self, epoch: int) -> None:
        """Puts back the history of the first `epoch` epochs; the CSVLogger appends to it.

        Call before the fit starts (the CSVLogger opens its file when training begins).
        """
        self.history.write_text(state_files.read_state(self.directory, epoch)["history"])
        if self.logger is not None:
            self.logger.append = True

    def restore(self, epoch: int) -> None:
        """Restores the callbacks' state after `epoch` epochs.

        Call after the callbacks' `on_train_begin`, which resets them.
        """
        state = state_files.read_state(self.directory, epoch)
        if self.early_stopping is not None and state.get("early_stopping"):
            saved = state["early_stopping"]
            for name in ("wait", "stopped_epoch", "best", "best_epoch"):
                setattr(self.early_stopping, name, saved[name])
            if saved["best_weights"]:
                model = self.early_stopping.model
                self.early_stopping.best_weights = state_files.read_best_weights(
                    self.directory, saved["best_weights"],
                    like=model.get_weights() if model is not None else None)
        if self.reduce_lr is not None and state.get("reduce_lr"):
            for name, value in state["reduce_lr"].items():
                setattr(self.reduce_lr, name, value)

    def save(self, epoch: int) -> None:
        """Saves the state after `epoch` epochs (call after the callbacks' `on_epoch_end`).

        Keeps this and the previous saved state, and the best weights they refer to.
        """
        state: dict[str, Any] = {"epoch": epoch, "history": self.history.read_text()
                                 if self.history.exists() else ""}
        stopping = self.early_stopping
        if stopping is not None:
            weights = None
            if stopping.best_weights is not None:
                weights = BEST_WEIGHTS.format(epoch=stopping.best_epoch + 1)
                if not (self.directory / weights).exists():
                    temporary = self.directory / f"partial-{weights}"
                    np.savez(temporary, **{f"w{index}": value
                                           for index, value in enumerate(stopping.best_weights)})
                    os.replace(temporary, self.directory / weights)
            state["early_stopping"] = {"wait": stopping.wait,
                                       "stopped_epoch": stopping.stopped_epoch,
                                       "best": _number(stopping.best),
                                       "best_epoch": stopping.best_epoch, "best_weights": weights}
        if self.reduce_lr is not None:
            state["reduce_lr"] = {"wait": self.reduce_lr.wait,
                                  "cooldown_counter": self.reduce_lr.cooldown_counter,
                                  "best": _number(self.reduce_lr.best)}
        _write_json(self.directory / STATE.format(epoch=epoch), state)
        saved = sorted(saved_states(self.directory))
        self._prune(keep=set(saved[-2:]))

    def _prune(self, keep: set[int]) -> None:
        """Deletes the states not in `keep`, and best weights no kept state refers to."""
        referenced = set()
        for epoch in saved_states(self.directory):
            path = self.directory / STATE.format(epoch=epoch)
            if epoch not in keep:
                path.unlink()
                continue
            saved = json.loads(path.read_text()).get("early_stopping") or {}
            referenced.add(saved.get("best_weights"))
        for path in self.directory.glob(BEST_WEIGHTS.format(epoch="*")):
            if path.name not in referenced:
                path.unlink()


def announce(done: int, epochs: int, directory: Path) -> None:
    """The line a resumed fit prints: `resumed from epoch N of M`, N the epoch it starts with.

    Tests and people look for it; N - 1 epochs are done (N is the epoch a signal stopped).
    """
    print(f"resumed from epoch {done + 1} of {epochs} ({done} done; backup in {directory})",
          flush=True)


def discard(directory: Path, reason: str) -> None:
    """Empties a backup that cannot be resumed, saying why; its fingerprint stays."""
    print(f"backup: discarding {directory}: {reason}; training starts from epoch 0", flush=True)
    for path in directory.iterdir():
        if path.name != FINGERPRINT:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _write_json(path: Path, value: Any) -> None:
    """Writes JSON so that a kill leaves the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(value))
    os.replace(temporary, path)


def find(callbacks: list[keras.callbacks.Callback], kind: type) -> Any:
    """The first callback of type `kind` in `callbacks`, or None."""
    return next((callback for callback in callbacks if isinstance(callback, kind)), None)

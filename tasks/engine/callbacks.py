"""The standard callback set of a run."""

from __future__ import annotations

import time
from pathlib import Path

import keras

from tasks.config import TrainConfig


class EpochProgress(keras.callbacks.Callback):
    """Prints one short line every `every` epochs (and the first and last), instead of a bar."""

    def __init__(self, epochs: int, every: int = 10):
        super().__init__()
        self.epochs, self.every = epochs, every
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        if number == 1 or number % self.every == 0 or number == self.epochs:
            shown = "  ".join(f"{key} {value:.4f}" for key, value in (logs or {}).items()
                              if key != "learning_rate")
            print(f"  epoch {number:>4}/{self.epochs}  {shown}  "
                  f"({time.perf_counter() - self.started:.1f}s)", flush=True)


def standard_callbacks(
    run_dir: Path, train: TrainConfig, monitor: str = "val_loss", progress: bool = True
) -> list[keras.callbacks.Callback]:
    """EarlyStopping (best weights restored), ReduceLROnPlateau, history CSV, optional TensorBoard.

    Args:
        run_dir: The run directory; `history.csv` (and `logs/` for TensorBoard) go there.
        train: Patience settings and the TensorBoard switch.
        monitor: The validation quantity to watch.
        progress: Print a line every 10 epochs.

    Returns:
        Callbacks for `model.fit`.
    """
    callbacks: list[keras.callbacks.Callback] = []
    if train.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=train.early_stopping_patience, restore_best_weights=True))
    if train.reduce_lr_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.5, patience=train.reduce_lr_patience, min_lr=1e-6))
    callbacks.append(keras.callbacks.CSVLogger(str(run_dir / "history.csv")))
    if train.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs")))
    if progress:
        callbacks.append(EpochProgress(train.epochs))
    return callbacks

"""The two-phase fit of a network with a pretrained feature extractor (transfer learning).

Phase 1 trains the new head on the frozen backbone; phase 2 unfreezes the backbone's top layers
and trains on at a lower learning rate. Both phases are one history.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import pandas as pd

import zoo
from tasks.config import TrainConfig
from tasks.engine.outcomes import PreparedData
from tasks.engine.training import FitPlan, fit_network, read_history, trainable_count


def layers_text(count: int) -> str:
    """How many backbone layers phase 2 trains, in words."""
    return "all backbone layers" if count < 0 else f"top {count} backbone layers"


def fine_tune(network: keras.Model, backbone: keras.Model, history: pd.DataFrame,
              compile_at: Callable[[float], None], data: PreparedData, plan: FitPlan,
              train: TrainConfig, run_dir: Path, seed: int,
              progress: bool) -> tuple[pd.DataFrame, float]:
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
        print(f"fine-tuning: {layers_text(train.fine_tune_layers)} "
              f"({trainable_count(network):,} trainable parameters), learning rate "
              f"{learning_rate:g}, up to {train.fine_tune_epochs} epochs", flush=True)
    seconds = fit_network(network, data.x, data.y, plan,
                          dataclasses.replace(train, epochs=train.fine_tune_epochs),
                          run_dir, seed + 1, progress)
    second = read_history(run_dir, "validation" in data.x).assign(phase=2)
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


def phases(history: pd.DataFrame, train: TrainConfig) -> dict[str, Any] | None:
    """How a two-phase transfer fit went (report.md and metrics.json), or None."""
    if "phase" not in history or not (history["phase"] == 2).any():
        return None
    best = history.loc[history["val_loss"].idxmin(), "phase"] if "val_loss" in history else 2
    return {"head_epochs": int((history["phase"] == 1).sum()),
            "fine_tune_epochs": int((history["phase"] == 2).sum()),
            "fine_tune_layers": train.fine_tune_layers,
            "fine_tune_learning_rate": train.learning_rate * train.fine_tune_learning_rate_factor,
            "kept": int(best)}

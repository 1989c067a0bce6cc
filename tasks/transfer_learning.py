"""Transfer learning: a pretrained network's features, a new head, then careful fine-tuning.

Phase 1 trains a new classification head on the frozen backbone's features; phase 2 unfreezes the
backbone's top `--fine-tune-layers` layers and trains on at a learning rate ten times lower, with
batch-norm layers kept frozen (in inference mode: a few small batches would otherwise overwrite
the statistics learned in pretraining). Both phases are one history, one report. Data, report and
exports are those of `image_classify`: a folder per class (or a named set), raw uint8 images into
every exported artifact.

Backbones (`--weights`):
  imagenet  keras.applications weights (`--backbone` resnet50, resnet50v2, mobilenet_v3_small,
            efficientnet_b0), downloaded once into the Keras cache (~/.keras/models). Offline, the
            run stops with an error naming the file to place there.
  PATH      a `model.keras` from an earlier `image_classify` or `transfer_learning` run: its
            feature extractor becomes the backbone and a new head learns the new classes. This
            works with no network, e.g. pretrain on a large folder, then transfer to a small one.
  none      random weights (a baseline: the same network trained from scratch).
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks import cli
from tasks.config import DataConfig, ModelConfig, TaskConfig, TrainConfig


def default_config() -> TaskConfig:
    """MobileNetV3Small with ImageNet weights on `digits`; 30 + 30 epochs at most.

    Phase 1 trains the fresh head at 1e-2: at 1e-3 a head on a small folder (a few steps per
    epoch) was still improving after 60 epochs (benchmarks/transfer_digits.py). Phase 2 runs at a
    tenth of that on the top 20 backbone layers; for a small backbone from `--weights PATH`,
    `--fine-tune-layers all` did better (docs/BENCHMARKS.md). Patience is image_classify's
    (30 epochs to stop, 10 to halve the rate): on a small folder the validation loss is noisy,
    and with 10 epochs phase 2 of the digits benchmark stopped early at 83% (seed 2) where 30
    reached 92%.
    """
    return TaskConfig(
        task="transfer_learning",
        problem="multiclass",
        inputs="images",
        data=DataConfig(data="digits"),
        model=ModelConfig(name="transfer",
                          params={"backbone": "mobilenet_v3_small", "weights": "imagenet"}),
        train=TrainConfig(epochs=30, learning_rate=1e-2, early_stopping_patience=30,
                          reduce_lr_patience=10, fine_tune_layers=20, fine_tune_epochs=30,
                          steps_per_execution=1),  # as image_classify: see its docstring
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    return cli.main(default_config, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())

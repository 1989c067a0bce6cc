"""Image classification with a CNN: a folder per class in, a tested, exported model out.

Default data: `digits` (scikit-learn's bundled 8x8 handwritten digits, offline). Your images:
`--data photos/` with one sub-folder per class (PNG, JPEG, BMP or GIF; grayscale and RGB may be
mixed; sizes may differ: all are resized to `--image-size`). Named sets `mnist`,
`fashion_mnist` and `cifar10` download through Keras when online. Rescaling and augmentation live
inside the model; every export takes raw uint8 images. Each run reports pixel baselines
(logistic regression, RBF SVM) on the same split, a per-class table, a confusion matrix and a
grid of misclassified test images.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks import cli
from tasks.config import DataConfig, ModelConfig, TaskConfig, TrainConfig


def default_config() -> TaskConfig:
    """The image template: the zoo's CNN with its small-data defaults (zoo/cnn.py).

    Training settings measured with benchmarks/image_defaults.py on `digits` and on a small
    generated folder (192 images of 64x64 shapes), over split seeds: learning rate 3e-3, and
    patience counted generously (30 epochs to stop, 10 to halve the rate) because a small folder
    has few steps per epoch and a noisy validation loss; shorter patience stopped on noise.
    One step per call into TensorFlow (benchmarks/image_throughput.py): a CNN's steps are
    arithmetic-bound, and looping a whole epoch inside one call (the tables' default) was slower
    on CPU: 20 epochs on digits 30-34 s vs 20-23 s, 3 epochs of 64x64 images 22 s vs 20 s.
    """
    return TaskConfig(
        task="image_classify",
        problem="multiclass",
        inputs="images",
        data=DataConfig(data="digits"),
        model=ModelConfig(name="cnn"),
        train=TrainConfig(epochs=150, learning_rate=3e-3, early_stopping_patience=30,
                          reduce_lr_patience=10, steps_per_execution=1),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    return cli.main(default_config, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())

"""Test accuracy of the default CNN and training settings, over several split seeds.

Trains exactly as the engine does (`tasks.engine.training.plan_fit` + `fit_network`: cached tf.data,
early stopping on validation loss with the best weights restored, learning-rate reduction) on
`digits` or on a small generated folder of shapes, once per seed (the seed sets the split and
the initial weights), and prints the test accuracy of each run and their mean.

    python benchmarks/image_defaults.py --data digits --seeds 0,1,2
    python benchmarks/image_defaults.py --data shapes --per-class 75 --seeds 0,1,2
    python benchmarks/image_defaults.py --set model.rotation=0 --set train.batch_size=64
    python benchmarks/image_defaults.py --smoke   # one seed, one epoch, one block of 8 filters
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from smoke import parse_args  # noqa: E402

import zoo  # noqa: E402
from datasets.images import ImageSplits, load_images  # noqa: E402
from datasets.synthetic_images import generate_image_folder  # noqa: E402
from tasks.config import TrainConfig  # noqa: E402
from tasks.engine import presets, training  # noqa: E402
from tasks.settings import parse_value  # noqa: E402

# The image task's default training settings, chosen with this script (docs/BENCHMARKS.md).
# Patience counts epochs, and a small folder has few steps per epoch and a noisy validation
# loss; shorter patience stopped, or halved the learning rate, on noise.
IMAGE_TRAIN = TrainConfig(epochs=150, batch_size=32, learning_rate=3e-3, optimizer="adam",
                          early_stopping_patience=30, reduce_lr_patience=10)


def load(data: str, seed: int, per_class: int, work: Path) -> ImageSplits:
    if data == "shapes":
        folder = generate_image_folder(work / "shapes", classes=4, per_class=per_class, size=64,
                                       seed=0)
        return load_images(str(folder), seed=seed)
    return load_images(data, seed=seed)


def train_once(splits: ImageSplits, train: TrainConfig, model_params: dict, seed: int,
               run_dir: Path) -> dict:
    problem = "binary" if len(splits.labels) == 2 else "multiclass"
    keras.utils.set_random_seed(seed)
    x = {"train": splits.train.images, "validation": splits.validation.images}
    y = {name: presets.training_targets(problem, part.labels)
         for name, part in (("train", splits.train), ("validation", splits.validation))}
    plan = training.plan_fit(len(x["train"]), train)
    model = zoo.build_model("cnn", input_shape=(*splits.image_size, splits.channels),
                            problem=problem,
                            num_classes=len(splits.labels) if problem == "multiclass" else None,
                            **model_params)
    model.compile(**presets.compile_arguments(problem, train.optimizer, train.learning_rate,
                                              plan.steps_per_execution))
    seconds = training.fit_network(model, x, y, plan, train, run_dir, seed, progress=False)
    history = pd.read_csv(run_dir / "history.csv")
    output = keras.ops.convert_to_numpy(model.predict(splits.test.images, verbose=0))
    predicted = (output.reshape(-1) >= 0.5).astype(int) if problem == "binary" else output.argmax(1)
    return {"accuracy": float(np.mean(predicted == splits.test.labels)),
            "epochs": len(history), "best_epoch": int(history["val_loss"].idxmin()) + 1,
            "seconds": seconds}


def overrides(items: list[str]) -> tuple[dict, dict]:
    model, train = {}, {}
    for item in items:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        {"model": model, "train": train}[section][name] = parse_value(value)
    return model, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits", help="digits, another dataset or shapes")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--per-class", type=int, default=75, help="shapes: images per class")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="model.NAME=VALUE (a cnn argument) or train.NAME=VALUE")
    args = parse_args(parser, seeds="0", set=["train.epochs=1", "model.filters=[8]"])
    model_params, train_params = overrides(args.set)
    train = replace(IMAGE_TRAIN, **train_params)
    accuracies = []
    with tempfile.TemporaryDirectory() as work:
        for seed in (int(seed) for seed in args.seeds.split(",")):
            splits = load(args.data, seed, args.per_class, Path(work))
            run_dir = Path(work) / f"run-{seed}"
            run_dir.mkdir()
            result = train_once(splits, train, model_params, seed, run_dir)
            accuracies.append(result["accuracy"])
            print(f"seed {seed}: test accuracy {result['accuracy']:.4f} "
                  f"({len(splits.train)}/{len(splits.validation)}/{len(splits.test)} images, "
                  f"{result['epochs']} epochs, best {result['best_epoch']}, "
                  f"{result['seconds']:.1f} s)", flush=True)
    print(f"{args.data} {' '.join(args.set)}: mean test accuracy "
          f"{statistics.mean(accuracies):.4f} over seeds {args.seeds}")


if __name__ == "__main__":
    main()

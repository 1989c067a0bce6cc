"""Training throughput of the default CNN: the engine's tf.data path against a naive numpy feed.

In one process, on `digits` (8x8 grayscale) and on a generated folder of 64x64 images
(`datasets.synthetic_images`), the same default CNN is trained for the same epochs, with
validation every epoch and no early stopping, two ways:

* naive: `model.fit(numpy, batch_size=32, validation_data=(numpy, numpy))`, one step per call;
* ours: the engine's `fit_network` with `plan_fit`: cached, shuffled, repeated, batched tf.data,
  batch 32 as well, with the image task's steps per execution (1: a whole epoch per call, the
  tables' default, was slower for the CNN: 20 epochs on digits 30-34 s vs 20-23 s).

They alternate `--repeats` times; the script reports median seconds, training images per second
(training images x epochs / fit seconds, tracing included) and the ratio. Loading the folder
(Pillow check + tf.data decode + resize into memory, done once per run) is timed separately.

    python benchmarks/image_throughput.py [--repeats 3] [--write]   # --write: docs/BENCHMARKS.md
    python benchmarks/image_throughput.py --smoke   # 1 repeat, 1 epoch, 32 images, 8 filters
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from doc_section import write_section  # noqa: E402
from smoke import parse_args  # noqa: E402

import zoo  # noqa: E402
from datasets.images import ImageSplits, load_images  # noqa: E402
from datasets.synthetic_images import generate_image_folder  # noqa: E402
from tasks import image_classify  # noqa: E402
from tasks.config import TrainConfig  # noqa: E402
from tasks.engine import presets, training  # noqa: E402

# The image task's setting (one step per call: looping whole epochs was slower for CNNs).
STEPS_PER_EXECUTION = image_classify.default_config().train.steps_per_execution
SMOKE_MODEL = {"filters": (8,)}  # a one-block CNN traces in a third of the default's time


def build(splits: ImageSplits, steps_per_execution: int, seed: int,
          model_params: dict) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = zoo.build_model("cnn", input_shape=(*splits.image_size, splits.channels),
                            num_classes=len(splits.labels), **model_params)
    model.compile(**presets.compile_arguments("multiclass", "adam", 1e-3, steps_per_execution))
    return model


def naive(splits: ImageSplits, epochs: int, seed: int, work: Path, model_params: dict) -> float:
    model = build(splits, 1, seed, model_params)
    started = time.perf_counter()
    model.fit(splits.train.images, splits.train.labels, batch_size=32, epochs=epochs,
              validation_data=(splits.validation.images, splits.validation.labels), verbose=0)
    return time.perf_counter() - started


def ours(splits: ImageSplits, epochs: int, seed: int, work: Path, model_params: dict) -> float:
    train = TrainConfig(epochs=epochs, batch_size=32, early_stopping_patience=0,
                        reduce_lr_patience=0, steps_per_execution=STEPS_PER_EXECUTION)
    plan = training.plan_fit(len(splits.train), train)
    model = build(splits, plan.steps_per_execution, seed, model_params)
    x = {"train": splits.train.images, "validation": splits.validation.images}
    y = {"train": splits.train.labels.astype("int32"),
         "validation": splits.validation.labels.astype("int32")}
    run_dir = Path(tempfile.mkdtemp(dir=work))
    return training.fit_network(model, x, y, plan, train, run_dir, seed, progress=False)


def measure(name: str, splits: ImageSplits, epochs: int, repeats: int, work: Path,
            model_params: dict) -> list[str]:
    seconds: dict[str, list[float]] = {"naive": [], "ours": []}
    for repeat in range(repeats):
        for path, function in (("naive", naive), ("ours", ours)):
            seconds[path].append(function(splits, epochs, repeat, work, model_params))
            print(f"{name} repeat {repeat + 1}: {path:5s} {seconds[path][-1]:6.2f} s", flush=True)
    images = len(splits.train) * epochs
    median = {path: statistics.median(values) for path, values in seconds.items()}
    shape = "x".join(map(str, (*splits.image_size, splits.channels)))
    return [f"| {name} ({shape}, {len(splits.train)} training images, {epochs} epochs) | {path} "
            f"| {median[path]:.2f} | {images / median[path]:,.0f} | "
            f"{median['naive'] / median[path]:.2f}x |" for path in ("naive", "ours")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--digits-epochs", type=int, default=20)
    parser.add_argument("--folder-epochs", type=int, default=3)
    parser.add_argument("--folder-per-class", type=int, default=250,
                        help="images per class of the generated 4-class 64x64 folder")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parse_args(parser, repeats=1, digits_epochs=1, folder_epochs=1, folder_per_class=8)
    with tempfile.TemporaryDirectory() as work:
        folder = generate_image_folder(Path(work) / "shapes", classes=4,
                                       per_class=args.folder_per_class, size=64, seed=0)
        loads = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            shapes = load_images(str(folder), seed=0)
            loads.append(time.perf_counter() - started)
        digits = load_images("digits", seed=0)
        model_params = SMOKE_MODEL if args.smoke else {}
        rows = measure("digits", digits, args.digits_epochs, args.repeats, Path(work),
                       model_params)
        rows += measure("shapes folder", shapes, args.folder_epochs, args.repeats, Path(work),
                        model_params)
    files = args.folder_per_class * 4
    load = statistics.median(loads)
    text = "\n".join([
        "| data | feed | median fit seconds | training images/s | speed-up vs naive |",
        "|---|---|---|---|---|", *rows, "",
        f"Loading the generated folder ({files} PNG/JPEG files, RGB and grayscale, mixed sizes; "
        f"Pillow check, tf.data decode and resize to 64x64x3 into memory, once per run): "
        f"{load:.2f} s median, {files / load:,.0f} images/s.", "",
        f"{args.repeats} alternating repeats; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, TensorFlow {tf.__version__}, Keras {keras.__version__}."])
    print("\n" + text)
    if args.write:
        write_section("image-throughput", text)


if __name__ == "__main__":
    main()

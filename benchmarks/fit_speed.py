"""Small-table training speed: our fit path against the naive Keras pattern, in one process.

Both fit the same network (the binary template's default MLP) on the same preprocessed
`breast_cancer` split for the same number of epochs, with validation every epoch and no early
stopping:

* naive: numpy arrays, `batch_size=32`, `validation_data=(x, y)`, one step per call
  (the pattern of most tutorials);
* ours: the engine's `fit_network` with `plan_fit` - a cached, repeated tf.data pipeline and a
  whole epoch per call into TensorFlow (`steps_per_execution`), batch 32 as well.

The two alternate `--repeats` times; the script prints the median seconds, the ratio, and the
test accuracy of each (scored with scikit-learn on the same test rows).

    python benchmarks/fit_speed.py [--epochs 100] [--repeats 3] [--smoke]
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
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402
from smoke import parse_args  # noqa: E402

import zoo  # noqa: E402
from datasets.preprocessing import TabularPreprocessor  # noqa: E402
from datasets.registry import load_tabular  # noqa: E402
from datasets.tabular import encode_labels, features_from_frame  # noqa: E402
from tasks.binary_classify import default_config  # noqa: E402
from tasks.engine import presets, training  # noqa: E402


def prepare(seed: int):
    splits = load_tabular("breast_cancer", "binary", seed=seed)
    schema = splits.schema
    frames = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    features = {name: features_from_frame(frame, schema) for name, frame in frames.items()}
    preprocessor = TabularPreprocessor(schema).adapt(features["train"])
    x = {name: preprocessor.transform(values) for name, values in features.items()}
    y = {name: encode_labels(frame[schema.target], schema).reshape(-1, 1).astype("float32")
         for name, frame in frames.items()}
    return x, y, preprocessor.width


def build(width: int, steps_per_execution: int, seed: int) -> keras.Model:
    config = default_config()
    keras.utils.set_random_seed(seed)
    model = zoo.build_model(config.model.name, input_dim=width, problem="binary",
                            **config.model.params)
    model.compile(**presets.compile_arguments("binary", config.train.optimizer,
                                              config.train.learning_rate, steps_per_execution))
    return model


def test_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    probability = keras.ops.convert_to_numpy(model(x, training=False)).reshape(-1)
    return accuracy_score(y.reshape(-1), probability >= 0.5)


def naive(x, y, width, epochs, seed) -> tuple[float, float]:
    model = build(width, 1, seed)
    started = time.perf_counter()
    model.fit(x["train"], y["train"], batch_size=32, epochs=epochs,
              validation_data=(x["validation"], y["validation"]), verbose=0)
    return time.perf_counter() - started, test_accuracy(model, x["test"], y["test"])


def ours(x, y, width, epochs, seed) -> tuple[float, float]:
    train = default_config().train
    train.epochs, train.early_stopping_patience, train.reduce_lr_patience = epochs, 0, 0
    plan = training.plan_fit(len(x["train"]), train)
    model = build(width, plan.steps_per_execution, seed)
    with tempfile.TemporaryDirectory() as run_dir:
        seconds = training.fit_network(model, x, y, plan, train, Path(run_dir), seed,
                                     progress=False)
    return seconds, test_accuracy(model, x["test"], y["test"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parse_args(parser, epochs=2, repeats=1)
    x, y, width = prepare(args.seed)
    results: dict[str, list[tuple[float, float]]] = {"naive": [], "ours": []}
    for repeat in range(args.repeats):
        for name, function in (("naive", naive), ("ours", ours)):
            seconds, accuracy = function(x, y, width, args.epochs, args.seed + repeat)
            results[name].append((seconds, accuracy))
            print(f"repeat {repeat + 1}: {name:5s} {seconds:6.2f} s  test accuracy "
                  f"{accuracy:.4f}", flush=True)
    medians = {name: statistics.median(s for s, _ in runs) for name, runs in results.items()}
    accuracy = {name: statistics.mean(a for _, a in runs) for name, runs in results.items()}
    print(f"\nbreast_cancer, {len(x['train'])} training rows, {args.epochs} epochs, "
          f"{args.repeats} repeats; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, TensorFlow {tf.__version__}, Keras {keras.__version__}\n")
    print("| fit path | median fit seconds | mean test accuracy |")
    print("|---|---|---|")
    for name in ("naive", "ours"):
        print(f"| {name} | {medians[name]:.2f} | {accuracy[name]:.4f} |")
    print(f"\nspeed-up (naive / ours): {medians['naive'] / medians['ours']:.2f}x")


if __name__ == "__main__":
    main()

"""Hyperparameter search speed: our `--tune` against the naive keras-tuner pattern, in one process.

Both search the MLP's declared space (`zoo.get_search_space("mlp")`: learning rate and L2 on a
log scale, dropout, width, depth, optimizer) with random search on the same `breast_cancer` split
(seed 0), for the same number of trials of at most 50 epochs, from the same oracle seed:

* naive: the keras-tuner tutorial pattern: a HyperModel that builds and compiles the network,
  `RandomSearch(objective="val_loss")`, `tuner.search(x, y, batch_size=32, epochs=50,
  validation_data=(x_val, y_val), callbacks=[EarlyStopping(patience=5)])` on numpy arrays, and
  `tuner.get_best_models()[0]` as the result;
* ours: `python -m tasks.binary_classify --data breast_cancer --tune --trials 20` as a user runs
  it (`pipeline.run`, exports off): trials on the engine's fit path, then the best configuration
  refit on train + validation.

Reported: search wall time and trials per minute (ours also with its refit), best validation
loss and accuracy, test accuracy of each result against the untuned default template on the same
test rows, and the peak resident memory of each trial (VmHWM, reset before every trial; Linux).

    python benchmarks/tune_speed.py [--trials 20] [--repeats 1] [--write] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from doc_section import write_section  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402
from smoke import parse_args  # noqa: E402

import zoo  # noqa: E402
from datasets.preprocessing import TabularPreprocessor  # noqa: E402
from datasets.registry import load_configured  # noqa: E402
from datasets.tabular import encode_labels, features_from_frame  # noqa: E402
from tasks.binary_classify import default_config  # noqa: E402
from tasks.cli import config_from_args  # noqa: E402
from tasks.engine import pipeline, presets, tuner_oracle, tuning  # noqa: E402

MAX_EPOCHS = 50  # per trial, both searches (--max-epochs)


def peak_rss_mb() -> float:
    """This process's peak resident memory since the last `reset_peak_rss` (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def measured(run_trial, log: list[float]):
    """Wraps a tuner's `run_trial` to log each trial's peak memory."""
    def wrapper(self, trial, *args, **kwargs):
        reset_peak_rss()
        result = run_trial(self, trial, *args, **kwargs)
        log.append(peak_rss_mb())
        return result

    return wrapper


def tuned_config(trials: int, run_dir: Path, max_epochs: int, *extra: str):
    return config_from_args(default_config, [
        "--data", "breast_cancer", "--export", "none", "--run-dir", str(run_dir), "--tune",
        "--trials", str(trials), "--max-epochs", str(max_epochs), *extra],
        "tasks.binary_classify", "")


def prepare(config) -> tuple[dict, dict, int]:
    """The run's split as numpy arrays, preprocessed as the engine does (adapted on train)."""
    splits = load_configured(config.data, config.problem, config.runtime.seed)
    frames = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    features = {name: features_from_frame(frame, splits.schema) for name, frame in frames.items()}
    preprocessor = TabularPreprocessor(splits.schema, config.data.max_categories).adapt(
        features["train"])
    x = {name: preprocessor.transform(values) for name, values in features.items()}
    y = {name: presets.training_targets(config.problem,
                                        encode_labels(frame[splits.schema.target], splits.schema))
         for name, frame in frames.items()}
    return x, y, preprocessor.width


def test_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    probability = keras.ops.convert_to_numpy(model(x, training=False)).reshape(-1)
    return accuracy_score(y.reshape(-1), probability >= 0.5)


def naive(trials: int, max_epochs: int, work: Path) -> dict:
    config = tuned_config(trials, work / "unused", max_epochs)
    space = tuning.resolve_space(config)
    x, y, width = prepare(config)
    log: list[float] = []

    class HyperModel(keras_tuner.HyperModel):
        def build(self, hp):
            values = {name: hp.get(name) for name in space.search}
            params, train = tuning.configure(config, space, values, max_epochs)
            model = zoo.build_model("mlp", input_dim=width, problem="binary", **params)
            model.compile(**presets.compile_arguments("binary", train.optimizer,
                                                      train.learning_rate))
            return model

    class RandomSearch(keras_tuner.RandomSearch):
        run_trial = measured(keras_tuner.RandomSearch.run_trial, log)

    tuner = RandomSearch(HyperModel(), objective="val_loss", max_trials=trials,
                         seed=config.runtime.seed + 1,
                         hyperparameters=tuner_oracle.hyperparameters(space.search),
                         directory=str(work), project_name="naive")
    started, cpu = time.perf_counter(), time.process_time()
    tuner.search(x["train"], y["train"], batch_size=32, epochs=max_epochs,
                 validation_data=(x["validation"], y["validation"]), verbose=0,
                 callbacks=[keras.callbacks.EarlyStopping(patience=5)])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    best = tuner.oracle.get_best_trials(1)[0]
    model = tuner.get_best_models(1)[0]
    validation = test_accuracy(model, x["validation"], y["validation"])
    return {"seconds": seconds, "cpu": cpu, "total": seconds, "trials": trials,
            "validation_loss": best.score, "validation_accuracy": validation,
            "test_accuracy": test_accuracy(model, x["test"], y["test"]), "rss": log}


def ours(trials: int, max_epochs: int, work: Path) -> dict:
    log: list[float] = []
    cpu: list[float] = []
    run_trial, search = tuner_oracle.TrialTuner.run_trial, tuning.search

    def timed_search(*args, **kwargs):
        started = time.process_time()
        result = search(*args, **kwargs)
        cpu.append(time.process_time() - started)
        return result

    tuner_oracle.TrialTuner.run_trial, tuning.search = measured(run_trial, log), timed_search
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            metrics = pipeline.run(tuned_config(trials, work / "ours", max_epochs)).metrics
    finally:
        tuner_oracle.TrialTuner.run_trial, tuning.search = run_trial, search
    tuned = metrics["tuning"]
    return {"seconds": tuned["search_seconds"], "cpu": cpu[0],
            "total": tuned["search_seconds"] + tuned["refit"]["seconds"],
            "trials": tuned["trials_run"], "validation_loss": tuned["best_validation_loss"],
            "validation_accuracy": tuned["best"]["validation"]["accuracy"],
            "test_accuracy": metrics["test"]["accuracy"],
            "default_refit_test_accuracy": tuned["default"]["test"]["accuracy"], "rss": log}


def default_template(work: Path, epochs: int | None = None) -> float:
    config = default_config()
    config.data.data, config.export.formats = "breast_cancer", []
    config.train.epochs = epochs or config.train.epochs
    config.runtime.run_dir = str(work / "default")
    with contextlib.redirect_stdout(io.StringIO()):
        return pipeline.run(config).metrics["test"]["accuracy"]


def rss_summary(log: list[float]) -> str:
    return (f"{log[0]:.0f} → {log[-1]:.0f} MB (max {max(log):.0f})" if log else "n/a")


def table(results: dict[str, list[dict]], default: float, trials: int) -> str:
    def median(name: str, key: str) -> float:
        return statistics.median(run[key] for run in results[name])

    rows = []
    for name, label in (("naive", "naive keras-tuner pattern"), ("ours", "ours (`--tune`)")):
        search, total = median(name, "seconds"), median(name, "total")
        last = results[name][-1]
        rows.append(
            f"| {label} | {search:.1f} | {median(name, 'cpu'):.1f} | "
            f"{'' if total == search else f'{total:.1f}'} | {60 * trials / search:.1f} | "
            f"{median(name, 'validation_loss'):.4f} | {median(name, 'validation_accuracy'):.4f} | "
            f"{median(name, 'test_accuracy'):.4f} | {rss_summary(last['rss'])} |")
    ratio = median("naive", "seconds") / median("ours", "seconds")
    ratio_total = median("naive", "seconds") / median("ours", "total")
    ratio_cpu = median("naive", "cpu") / median("ours", "cpu")
    return "\n".join([
        "| search | search s | search CPU s | search + refit s | trials/min | "
        "best validation loss | its validation accuracy | test accuracy | "
        "peak RSS per trial, first → last |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Default template (untuned, same split): test accuracy {default:.4f}; the default "
        "configuration refit like the best (in the `--tune` run): "
        f"{median('ours', 'default_refit_test_accuracy'):.4f}.",
        f"**Speed-up {ratio:.2f}×** in search wall time ({ratio_total:.2f}× counting our "
        f"refit; {ratio_cpu:.2f}× in CPU time); {trials} trials each, "
        f"{len(results['ours'])} alternating repeat(s), medians.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=MAX_EPOCHS, help="per trial")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parse_args(parser, trials=2, max_epochs=2)
    results: dict[str, list[dict]] = {"naive": [], "ours": []}
    with tempfile.TemporaryDirectory() as work:
        default = default_template(Path(work), args.max_epochs if args.smoke else None)
        for repeat in range(args.repeats):
            for name, function in (("naive", naive), ("ours", ours)):
                keras.backend.clear_session()
                result = function(args.trials, args.max_epochs, Path(work) / f"{name}-{repeat}")
                results[name].append(result)
                print(f"repeat {repeat + 1}: {name:5s} search {result['seconds']:6.1f} s, "
                      f"best validation loss {result['validation_loss']:.4f}, test accuracy "
                      f"{result['test_accuracy']:.4f}, peak RSS per trial (MB): "
                      f"{' '.join(f'{value:.0f}' for value in result['rss'])}", flush=True)
    text = table(results, default, args.trials)
    print(f"\nbreast_cancer, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}, keras-tuner "
          f"{keras_tuner.__version__}\n\n{text}")
    if args.write:
        write_section("tune-speed", text)


if __name__ == "__main__":
    main()

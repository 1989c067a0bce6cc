"""Search and refit: trials scored on validation rows, then the best refit on train + validation.

The test rows are used only after the search. A distributed search's workers run trials the
chief hands out (`run_trials_as_worker`); the chief searches and refits (`search_and_refit`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import zoo
from tasks.config import TaskConfig, TrainConfig
from tasks.engine import inference, plots, presets, report, tuning
from tasks.engine.fitting import fit_configuration
from tasks.engine.inputs import ImageInputs, TableInputs
from tasks.engine.outcomes import (
    ConfigurationResult,
    FitOutcome,
    PreparedData,
    SearchOutcome,
    Training,
)
from tasks.engine.preparation import prepare_fit, prepare_refit
from tasks.engine.training import best_epoch

TUNER_DIR = "tuner"


def score_validation(config: TaskConfig, data: PreparedData, validation_ids: np.ndarray,
                     fitted: FitOutcome, train: TrainConfig) -> dict[str, float]:
    """A trial's report to the tuner: the objective and scores on the validation rows.

    Returns:
        `tuning.OBJECTIVE` (the loss without the weight penalty), `validation_<metric>` for the
        problem's scikit-learn scores, `epochs` run, `best_epoch` (the weights kept) and `seconds`.
    """
    prediction = keras.ops.convert_to_numpy(fitted.network(data.x["validation"], training=False))
    results = {"epochs": float(len(fitted.history)),
               "best_epoch": float(best_epoch(fitted.history, train)),
               "seconds": fitted.seconds}
    if not np.isfinite(prediction).all():  # diverged: the worst score, not a crashed trial
        return {tuning.OBJECTIVE: float("inf"), **results}
    loss = keras.losses.get(presets.resolve_loss(config.problem, train.loss))
    objective = float(np.mean(keras.ops.convert_to_numpy(loss(data.y["validation"], prediction))))
    scores = presets.get_preset(config.problem).score(
        validation_ids, prediction * data.target_std + data.target_mean)
    return {tuning.OBJECTIVE: objective,
            **{f"validation_{name}": value for name, value in scores.items()}, **results}


def trial_evaluator(config: TaskConfig, space: tuning.Space, data: PreparedData,
                     validation_ids: np.ndarray,
                     strategy: tf.distribute.Strategy) -> tuning.Evaluate:
    """Trains one trial's configuration on the training rows and scores it on validation."""
    def evaluate(values: dict[str, Any], epochs: int, trial_dir: Path,
                 seed: int) -> dict[str, float]:
        params, train = tuning.configure(config, space, values, epochs)
        fitted = fit_configuration(config, params, train, data, strategy, trial_dir, seed,
                                   progress=False)
        return score_validation(config, data, validation_ids, fitted, train)

    return evaluate


def run_trials_as_worker(config: TaskConfig, space: tuning.Space,
                          inputs: TableInputs | ImageInputs,
                          strategy: tf.distribute.Strategy) -> None:
    """A distributed search's worker: runs the trials the chief hands out and writes no run."""
    data = prepare_fit(config.problem, inputs)
    tuning.search(config, space,
                  trial_evaluator(config, space, data, inputs.ids["validation"], strategy), None)
    print(f"worker {os.environ['KERASTUNER_TUNER_ID']}: no trials left; the chief writes the run "
          "directory", flush=True)


def search_and_refit(
    config: TaskConfig, space: tuning.Space, expected: dict[str, Any],
    inputs: TableInputs | ImageInputs, strategy: tf.distribute.Strategy, run_dir: Path,
) -> Training:
    """Searches on the training rows, scored on validation, then refits the best configuration.

    The refit trains on train + validation, with preprocessing re-adapted on those rows, for the
    number of epochs whose weights the best trial kept, without early stopping (no validation
    rows are left to stop on). The default configuration goes through the same two steps, so the
    report compares the two on test like for like. The test rows are used only after the search.
    Writes `trials.csv`, `best_hyperparameters.json` and the learning-rate plot.

    Returns:
        The refit's data and network, and the search (metrics' `tuning`).
    """
    seed, tune = config.runtime.seed, config.tune
    features, ids = inputs.features, inputs.ids
    search_data = prepare_fit(config.problem, inputs)
    print(f"search: {tune.tuner}, up to {tune.trials} trials of up to {tune.max_epochs} epochs "
          f"on {len(search_data.x['train'])} training rows, scored on "
          f"{len(search_data.x['validation'])} validation rows", flush=True)
    result = tuning.search(config, space, trial_evaluator(config, space, search_data,
                                                          ids["validation"], strategy),
                           run_dir / TUNER_DIR, expected)
    full_data = prepare_refit(config.problem, inputs)

    def refit(params: dict[str, Any], train: TrainConfig, epochs: float, directory: Path,
              progress: bool) -> FitOutcome:
        train = dataclasses.replace(train, epochs=int(epochs), early_stopping_patience=0,
                                    reduce_lr_patience=0)
        return fit_configuration(config, params, train, full_data, strategy, directory, seed,
                                 progress)

    keras.backend.clear_session()
    # The default configuration is scored under the trials' rules (the same epoch budget).
    default_train = tuning.configure(config, space, {}, tune.max_epochs)[1]
    with tempfile.TemporaryDirectory() as scratch:
        default_fit = fit_configuration(config, config.model.params, default_train, search_data,
                                        strategy, Path(scratch), seed, progress=False)
        default_validation = score_validation(config, search_data, ids["validation"],
                                              default_fit, default_train)
        default_refit = refit(config.model.params, default_train,
                              default_validation["best_epoch"], Path(scratch), progress=False)
    default_model = full_data.compose(default_refit.network)
    default_test = presets.get_preset(config.problem).score(
        ids["test"], inference.keras_outputs(default_model, features["test"]))
    best_params, best_train = tuning.configure(config, space, result.best_values,
                                               tune.max_epochs)
    epochs = int(result.best_metrics["best_epoch"])
    print(f"refit: trial {result.best_trial} on train + validation "
          f"({len(full_data.x['train'])} rows) for its {epochs} epochs", flush=True)
    fitted = refit(best_params, best_train, epochs, run_dir, progress=True)

    builder = inspect.signature(zoo.get_builder(config.model.name)).parameters
    defaults = {name: parameter.default for name, parameter in builder.items()}
    best = _configuration(result.best_metrics,
                          tuning.settings(best_params, best_train, space, defaults))
    default = _configuration(default_validation, tuning.settings(
        config.model.params, config.train, space, defaults), test=default_test)
    outcome = SearchOutcome(
        tuner=tune.tuner, objective=tuning.OBJECTIVE, max_epochs=tune.max_epochs,
        trials=int((result.trials["status"] == "COMPLETED").sum()),
        trials_run=result.trials_run, search_seconds=result.seconds,
        best_trial=result.best_trial, best_hyperparameters=result.best_values,
        best_validation_loss=result.best_metrics[tuning.OBJECTIVE],
        refit={"rows": len(full_data.x["train"]), "epochs": epochs, "seconds": fitted.seconds},
        best=best, default=default)
    _write_search_files(run_dir, result, outcome, epochs)
    return Training(full_data, fitted, outcome)


def _write_search_files(run_dir: Path, result: tuning.SearchResult, outcome: SearchOutcome,
                        epochs: int) -> None:
    """`trials.csv`, `best_hyperparameters.json` (with a `--set` line to replay it), the plot."""
    settings = outcome.best.settings
    result.trials.to_csv(run_dir / "trials.csv", index=False)
    report.write_json(run_dir / "best_hyperparameters.json", {
        "trial": outcome.best_trial, "hyperparameters": outcome.best_hyperparameters,
        tuning.OBJECTIVE: outcome.best_validation_loss, "best_epoch": epochs,
        "settings": settings,
        "replay": " ".join(f"--set {'train' if name in tuning.TRAIN_SETTINGS else 'model'}.{name}="
                           + (value if isinstance(value, str)
                              else json.dumps(value, separators=(",", ":")))
                           for name, value in settings.items()),
    })
    (run_dir / "plots").mkdir(exist_ok=True)
    if plots.plot_learning_rate_search(result.trials, tuning.OBJECTIVE, outcome.to_dict(),
                                       run_dir / "plots" / "tuning_learning_rate.png"):
        outcome.plot = "plots/tuning_learning_rate.png"


def _configuration(results: dict[str, float], settings: dict[str, Any],
                   test: dict[str, float] | None = None) -> ConfigurationResult:
    """One configuration's settings and validation results, for the `tuning` metrics."""
    return ConfigurationResult(
        settings=settings, validation_loss=results[tuning.OBJECTIVE],
        validation={name.removeprefix("validation_"): value for name, value in results.items()
                    if name.startswith("validation_") and name != tuning.OBJECTIVE},
        best_epoch=int(results["best_epoch"]), test=test)

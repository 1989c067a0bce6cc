"""keras-tuner's side of a search: the oracle, the tuner that runs trials, its saved state.

`tasks.engine.tuning` drives the search (the space, the settings of a trial, resuming, the
result); this module holds what speaks keras-tuner: building the oracle of `--tuner`, the
`keras_tuner.Tuner` whose trials go through the engine's own fit path, serving the oracle to
distributed workers, repairing a reloaded oracle's state, and reading the trials back as a table.
keras-tuner internals it needs go through `common.compat`.
"""

from __future__ import annotations

import gc
import os
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import pandas as pd

from common import compat
from tasks.config import TuneConfig
from tasks.engine import interrupt
from zoo.search_space import Choice, Float, Int, Range

# How often the chief checks whether every worker has finished (keras-tuner's own loop: 20 s).
CHIEF_POLL_SECONDS = 0.2


def hyperparameters(search: dict[str, Range | Any]) -> keras_tuner.HyperParameters:
    """keras-tuner hyperparameters for a resolved space's `search`.

    Log sampling for log ranges; a single value becomes `Fixed`.
    """
    hp = keras_tuner.HyperParameters()
    for name, entry in search.items():
        if isinstance(entry, Float):
            hp.Float(name, entry.low, entry.high, sampling="log" if entry.log else "linear")
        elif isinstance(entry, Int):
            hp.Int(name, entry.low, entry.high)
        elif isinstance(entry, Choice):
            hp.Choice(name, list(entry.values))
        else:
            hp.Fixed(name, entry)
    return hp


def trial_seed(seed: int, trial_id: str) -> int:
    """The seed of one trial: fixed by `--seed` and the trial id, whichever process runs it."""
    return zlib.crc32(f"{seed}:{trial_id}".encode())


def make_oracle(tune: TuneConfig, seed: int, objective: str,
                search: dict[str, Range | Any]) -> keras_tuner.Oracle:
    """The oracle of `tune.tuner` (random, Hyperband or Bayesian), minimizing `objective`.

    Args:
        tune: The `tune` section (tuner, trials, max epochs).
        seed: `--seed`; keras-tuner draws a random seed for 0, so the oracle's is `seed + 1`.
        objective: The metric each trial reports and the search minimizes.
        search: The resolved space's hyperparameters.
    """
    common = {"objective": keras_tuner.Objective(objective, "min"),
              "hyperparameters": hyperparameters(search), "seed": seed + 1}
    if tune.tuner == "hyperband":
        oracle = keras_tuner.oracles.HyperbandOracle(max_epochs=tune.max_epochs, **common)
        oracle.max_trials = tune.trials  # Hyperband has no trial budget of its own.
    elif tune.tuner == "bayesian":
        oracle = keras_tuner.oracles.BayesianOptimizationOracle(max_trials=tune.trials, **common)
    else:
        oracle = keras_tuner.oracles.RandomSearchOracle(max_trials=tune.trials, **common)
    oracle.verbose = 0  # each trial prints one line from `TrialTuner.run_trial` instead
    return oracle


class TrialTuner(keras_tuner.Tuner):
    """Runs each trial through the engine's fit path, in a clean Keras session.

    Args:
        oracle: From `make_oracle`.
        evaluate: `tasks.engine.tuning.Evaluate`: trains one configuration, returns its scores.
        max_epochs: Most epochs of a trial (Hyperband sets its own budget per trial).
        seed: `--seed` (see `trial_seed`).
        objective: The score printed after each trial.
        worker: This process is a keras-tuner worker (the chief keeps the trials).
        **kwargs: `keras_tuner.Tuner`'s (directory, project_name).
    """

    def __init__(self, oracle: keras_tuner.Oracle, evaluate: Callable[..., dict[str, float]],
                 max_epochs: int, seed: int, objective: str, worker: bool, **kwargs: Any):
        super().__init__(oracle=oracle, **kwargs)
        self.evaluate, self.max_epochs, self.seed = evaluate, max_epochs, seed
        self.objective_name, self.worker = objective, worker

    def run_trial(self, trial, *args, **kwargs):
        interrupt.stop_if_received(f"before trial {trial.trial_id}", self.kept(trial))
        # Frees the previous trial's model and graphs (it runs the garbage collector, which
        # `search` keeps fast by freezing everything that predates the search).
        keras.backend.clear_session()
        values = dict(trial.hyperparameters.values)
        epochs = values.get("tuner/epochs", self.max_epochs)  # Hyperband's budget
        values = {name: value for name, value in values.items()
                  if not name.startswith("tuner/")}
        try:
            with compat.dropping_custom_gradients():
                results = self.evaluate(values, epochs, Path(self.get_trial_dir(trial.trial_id)),
                                        trial_seed(self.seed, trial.trial_id))
        except interrupt.Interrupted as stop:
            epoch = stop.during.removeprefix("during ")
            raise stop.where(f"during trial {trial.trial_id} ({epoch})",
                             self.kept(trial)) from None
        shown = "  ".join(f"{name} {_format(value)}" for name, value in values.items())
        print(f"  trial {trial.trial_id}: {shown} -> {self.objective_name} "
              f"{results[self.objective_name]:.4f} ({results['epochs']:.0f} epochs, "
              f"{results['seconds']:.1f} s)", flush=True)
        return results

    def kept(self, trial: Any) -> str:
        """What a search stopped at `trial` keeps (the end of its `Interrupted` line)."""
        if self.worker:
            return (f"the chief keeps the finished trials and hands trial {trial.trial_id} out "
                    "again to this KERASTUNER_TUNER_ID")
        return (f"finished trials kept in {self.directory} ({completed(self.oracle)}), trial "
                f"{trial.trial_id} runs again")


def _format(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keeps the objects that exist before the search out of the garbage collector's scans.

    TensorFlow and Keras leave millions of long-lived objects; a full collection over them took
    0.5 s, once per trial. Frozen (`gc.freeze`), they are skipped, and a collection only scans
    what the trials created.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def serve(oracle: keras_tuner.Oracle, directory: Path) -> None:
    """The chief: serves the oracle to the workers until they have run every trial.

    keras-tuner's own chief loop checks for the end every 20 s and leaves its server running;
    this one checks every `CHIEF_POLL_SECONDS` (and for signals) and stops the server.
    """
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server, done = compat.start_oracle_server(oracle, address)
    print(f"chief: serving the search on {address}; start the workers with the same command "
          "and KERASTUNER_TUNER_ID=<worker name>", flush=True)
    try:
        while not done():
            interrupt.stop_if_received("while serving the search", f"finished trials kept in "
                                       f"{directory} ({completed(oracle)})")
            time.sleep(CHIEF_POLL_SECONDS)
    finally:
        server.stop(grace=1)


def keep_finished_trials(oracle: keras_tuner.Oracle) -> None:
    """Takes trials that finished before a kill off the reloaded oracle's retry queue.

    At the end of a trial keras-tuner writes the trial's `trial.json` (now COMPLETED), then
    `oracle.json` (where the trial is no longer ongoing). A search killed between the two writes
    reloads the trial as ongoing, and keras-tuner's `reload` sends every ongoing trial to be run
    again, although its result is on disk. The trial files are the record of what finished.
    """
    finished = {keras_tuner.engine.trial.TrialStatus.COMPLETED,
                keras_tuner.engine.trial.TrialStatus.FAILED}
    queue = compat.retry_queue(oracle)
    for trial_id in list(queue):
        if oracle.trials[trial_id].status in finished:
            queue.remove(trial_id)
            if trial_id not in oracle.end_order:
                oracle.end_order.append(trial_id)


def completed(oracle: keras_tuner.Oracle) -> int:
    """How many of the oracle's trials completed."""
    return sum(trial.status == "COMPLETED" for trial in oracle.trials.values())


def trial_values(trial: Any) -> dict[str, Any]:
    """A trial's hyperparameter values, without keras-tuner's own (`tuner/...`)."""
    return {name: value for name, value in trial.hyperparameters.values.items()
            if not name.startswith("tuner/")}


def trial_metrics(trial: Any) -> dict[str, float]:
    """The last value of each metric a trial reported."""
    return {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics}


def trials_table(oracle: keras_tuner.Oracle, first: list[str]) -> pd.DataFrame:
    """One row per trial, in trial order: id, status, hyperparameters, then reported metrics.

    Args:
        oracle: The search's oracle.
        first: Columns to put first when present, after `trial` and `status` (the
            hyperparameters, then the objective).
    """
    rows = [{"trial": trial.trial_id, "status": trial.status, **trial_values(trial),
             **trial_metrics(trial)} for _, trial in sorted(oracle.trials.items())]
    table = pd.DataFrame(rows)
    for name in ("epochs", "best_epoch"):
        if name in table:
            table[name] = table[name].astype("Int64")
    first = ["trial", "status", *first]
    return table[[name for name in first if name in table]
                 + [name for name in table if name not in first]]

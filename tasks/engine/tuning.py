"""Hyperparameter search with keras-tuner over the runner's own fit path (`--tune`).

The model's search space is declared next to its builder (`zoo.get_search_space`); the task's
configuration narrows or fixes it. keras-tuner's oracle (random search, Hyperband or Bayesian
optimization) proposes values; each trial is trained by the function the runner passes in, which
builds, compiles and fits with the same code as an ordinary run, and is scored on the validation
split only. The search never sees the test split. See docs/tuning.md.

The tuner state lives in `<run-dir>/tuner/`: `fingerprint.json` (the settings the search was
started with) and keras-tuner's project folder `search/` (oracle state, one `trial.json` per
trial). Re-running the same command resumes it; other settings against it are an error, and so
is a folder whose files were damaged or altered (checked by `tasks.engine.state_files` and a trial
reload before anything is written). SIGTERM or SIGINT stops the search (`tasks.engine.interrupt`):
finished trials are kept, the running one runs again on resume.

Distributed tuning is keras-tuner's chief/worker mode, driven by its environment variables
`KERASTUNER_TUNER_ID` (`chief`, or a worker's name), `KERASTUNER_ORACLE_IP` and
`KERASTUNER_ORACLE_PORT`: the chief serves the oracle, workers run trials, and only the chief
writes the run directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import json
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import pandas as pd
from tensorflow.python.framework import ops as tf_ops

import zoo
from common.errors import InputError
from tasks import config as config_module
from tasks.config import TaskConfig, TrainConfig
from tasks.engine import interrupt, state_files
from zoo.search_space import Choice, Float, Int, Range, SearchSpace

# The score each trial minimizes: the problem's loss (cross-entropy, or the regression loss on the
# standardized target) on the validation rows, with the weights early stopping kept and without
# the weight penalty, so trials with different L2 strengths compare fairly.
OBJECTIVE = "validation_loss"
PROJECT = "search"
FINGERPRINT = "fingerprint.json"
TRAIN_SETTINGS = {field.name for field in dataclasses.fields(TrainConfig)}
# How often the chief checks whether every worker has finished (keras-tuner's own loop: 20 s).
CHIEF_POLL_SECONDS = 0.2

# (hyperparameter values, most epochs, trial folder, seed) -> {OBJECTIVE: ..., other metrics}
Evaluate = Callable[[dict[str, Any], int, Path, int], dict[str, float]]


@dataclass
class Space:
    """A model's declared search space after the configuration narrowed and fixed it.

    Attributes:
        declared: The space registered with the builder.
        search: Hyperparameter -> range, or a single value where it is fixed.
    """

    declared: SearchSpace
    search: dict[str, Range | Any]


def resolve_space(config: TaskConfig) -> Space:
    """The search space of `config.model.name`, narrowed by `tune.space`, fixed by `tune.fixed`.

    Raises:
        InputError: The model declares no space, or `tune.space` names an unknown
            hyperparameter or a value that does not narrow it.
    """
    name = config.model.name
    declared = zoo.get_search_space(name)
    if declared is None:
        raise InputError(f"model '{name}' declares no search space, so --tune has nothing to "
                         "search. Register it with zoo.register_model(..., search_space=...).")
    search: dict[str, Any] = dict(declared.hyperparameters)
    for key in config.tune.fixed:
        section, _, setting = key.partition(".")
        if section == "model" and setting in declared.derived:
            for hyperparameter in declared.derived[setting].inputs:
                search.pop(hyperparameter, None)
        elif section == "train" and setting in search and setting in TRAIN_SETTINGS:
            search[setting] = getattr(config.train, setting)
        elif section == "model" and setting in search and setting in config.model.params:
            search[setting] = config.model.params[setting]
    for hyperparameter, value in config.tune.space.items():
        if hyperparameter not in declared.hyperparameters:
            raise InputError(f"tune.space.{hyperparameter}: model '{name}' has no hyperparameter "
                             f"'{hyperparameter}'. Its search space: "
                             f"{', '.join(declared.hyperparameters)}.")
        if not isinstance(search.get(hyperparameter), Range):
            raise InputError(f"tune.space.{hyperparameter} narrows a hyperparameter that another "
                             f"setting fixes ({', '.join(config.tune.fixed)}). Drop one of them.")
        search[hyperparameter] = _narrow(declared.hyperparameters[hyperparameter], value,
                                         f"tune.space.{hyperparameter}")
    for setting, value in search.items():
        if setting in TRAIN_SETTINGS and not isinstance(value, Float | Int):
            for candidate in value.values if isinstance(value, Choice) else [value]:
                config_module.validate(dataclasses.replace(
                    config, train=dataclasses.replace(config.train, **{setting: candidate})))
    return Space(declared, search)


def _narrow(declared: Range, value: Any, key: str) -> Range | Any:
    """A narrower range, a subset of the choices, or (a single value) the value itself."""
    if not isinstance(value, list | tuple):
        number = int if isinstance(declared, Int) else int | float
        if isinstance(value, bool | dict) or (
                isinstance(declared, Float | Int) and not isinstance(value, number)):
            raise InputError(f"{key} takes [low, high], a list of choices or one value. "
                             f"Received: {key}={value!r}")
        return value
    if len(value) == 1:
        return _narrow(declared, value[0], key)
    if isinstance(declared, Choice):
        unknown = [item for item in value if not declared.contains(item)]
        if unknown:
            raise InputError(f"{key} narrows the choices {list(declared.values)}, but "
                             f"{', '.join(map(repr, unknown))} is not one of them. Pick from "
                             f"them, or fix any one value with {key}=VALUE.")
        return Choice(tuple(value))
    if len(value) != 2 or not all(declared.contains(item) for item in value) or (
            value[0] >= value[1]):
        kind = "integers" if isinstance(declared, Int) else "numbers"
        raise InputError(f"{key} narrows the range {declared.low:g}..{declared.high:g} "
                         f"{'(log scale) ' if getattr(declared, 'log', False) else ''}and takes "
                         f"[low, high]: two {kind} inside it, low < high. Received: "
                         f"{key}={list(value)!r}")
    return dataclasses.replace(declared, low=value[0], high=value[1])


def hyperparameters(space: Space) -> keras_tuner.HyperParameters:
    """keras-tuner hyperparameters for `space`: log sampling for log ranges, Fixed for values."""
    hp = keras_tuner.HyperParameters()
    for name, entry in space.search.items():
        if isinstance(entry, Float):
            hp.Float(name, entry.low, entry.high, sampling="log" if entry.log else "linear")
        elif isinstance(entry, Int):
            hp.Int(name, entry.low, entry.high)
        elif isinstance(entry, Choice):
            hp.Choice(name, list(entry.values))
        else:
            hp.Fixed(name, entry)
    return hp


def configure(config: TaskConfig, space: Space, values: dict[str, Any],
              epochs: int) -> tuple[dict[str, Any], TrainConfig]:
    """The builder arguments and training settings of one trial.

    Args:
        config: The run's configuration; settings the search does not cover keep their values.
        space: The resolved space.
        values: The trial's hyperparameter values.
        epochs: Most epochs for this trial.

    Returns:
        `(model params, train settings)`.
    """
    arguments = space.declared.arguments(values)
    params = {**config.model.params,
              **{name: value for name, value in arguments.items() if name not in TRAIN_SETTINGS}}
    train = dataclasses.replace(
        config.train, epochs=epochs,
        **{name: value for name, value in arguments.items() if name in TRAIN_SETTINGS})
    return params, train


def settings(params: dict[str, Any], train: TrainConfig, space: Space,
             builder_defaults: dict[str, Any]) -> dict[str, Any]:
    """The settings the search space covers, as a configuration uses them (for the report)."""
    return {name: getattr(train, name) if name in TRAIN_SETTINGS
            else params.get(name, builder_defaults.get(name))
            for name in space.declared.argument_names()}


def trial_seed(seed: int, trial_id: str) -> int:
    """The seed of one trial: fixed by `--seed` and the trial id, whichever process runs it."""
    return zlib.crc32(f"{seed}:{trial_id}".encode())


def fingerprint(config: TaskConfig, space: Space, data: dict[str, Any]) -> dict[str, Any]:
    """Everything that decides the trials' results; a resumed search must match it exactly."""
    def describe(entry: Any) -> Any:
        if isinstance(entry, Range):
            return {"kind": type(entry).__name__, **dataclasses.asdict(entry)}
        return {"kind": "Fixed", "value": entry}

    fields = {
        "search_space": {name: describe(entry) for name, entry in space.search.items()},
        "trials": config.tune.trials,
        "tuner": config.tune.tuner,
        "max_epochs": config.tune.max_epochs,
        "objective": OBJECTIVE,
        "seed": config.runtime.seed,
        "data": data,
        "data_settings": dataclasses.asdict(config.data),
        "model": {"name": config.model.name, "params": config.model.params},
        "train": {name: value for name, value in dataclasses.asdict(config.train).items()
                  if name not in ("epochs", "tensorboard")},
    }
    return json.loads(json.dumps(fields))


def check_resume(state: Path | None, expected: dict[str, Any], config: TaskConfig | None = None,
                 space: Space | None = None) -> None:
    """Refuses to resume a search that was started with other settings, or damaged.

    Args:
        state: The tuner folder a resumed run would continue (None: nothing to resume).
        expected: This run's `fingerprint`.
        config: With `space`, the search's settings: keras-tuner then reloads a copy of the
            folder, so a file it cannot read stops the run before anything is written.
        space: The resolved space.

    Raises:
        InputError: The folder's settings differ, or a file is damaged or altered; the message
            names it and the way out.
    """
    if state is None:
        return
    path = state / FINGERPRINT
    found = state_files.read_json(path, state_files.tuner_fix(state)) if path.exists() else {}
    changed = [key for key in expected if found.get(key) != expected[key]]
    if changed:
        shown = ", ".join(f"{key} {found[key]} -> {expected[key]}"
                          if isinstance(expected[key], int | str) and key in found else key
                          for key in changed)
        raise InputError(f"{state} holds a search started with other settings ({shown}). A "
                         "search resumes only with the same settings: pass --overwrite to start "
                         "it over, or another --run-dir.")
    state_files.check_tuner_state(state, PROJECT)
    if config is not None and space is not None:
        with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(io.StringIO()):
            copy = shutil.copytree(state, Path(scratch) / state.name)
            _reloaded_tuner(config, space, None, Path(copy), state)


def role() -> str:
    """`local`, or `chief` / `worker` in keras-tuner's distributed mode (its environment)."""
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return "local"
    for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        if name not in os.environ:
            raise InputError(f"KERASTUNER_ORACLE_IP is set but {name} is not. Distributed "
                             "tuning needs KERASTUNER_TUNER_ID (chief, or a worker name), "
                             "KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT.")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


class _Tuner(keras_tuner.Tuner):
    """Runs each trial through the runner's fit path, in a clean Keras session."""

    def __init__(self, oracle: keras_tuner.Oracle, evaluate: Evaluate, max_epochs: int,
                 seed: int, **kwargs: Any):
        super().__init__(oracle=oracle, **kwargs)
        self.evaluate, self.max_epochs, self.seed = evaluate, max_epochs, seed

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
            with _dropping_custom_gradients():
                results = self.evaluate(values, epochs, Path(self.get_trial_dir(trial.trial_id)),
                                        trial_seed(self.seed, trial.trial_id))
        except interrupt.Interrupted as stop:
            epoch = stop.during.removeprefix("during ")
            raise stop.where(f"during trial {trial.trial_id} ({epoch})",
                             self.kept(trial)) from None
        shown = "  ".join(f"{name} {_format(value)}" for name, value in values.items())
        print(f"  trial {trial.trial_id}: {shown} -> {OBJECTIVE} {results[OBJECTIVE]:.4f} "
              f"({results['epochs']:.0f} epochs, {results['seconds']:.1f} s)", flush=True)
        return results

    def kept(self, trial: Any) -> str:
        """What a search stopped at `trial` keeps (the end of its `Interrupted` line)."""
        if role() == "worker":
            return (f"the chief keeps the finished trials and hands trial {trial.trial_id} out "
                    "again to this KERASTUNER_TUNER_ID")
        return (f"finished trials kept in {self.directory} ({_completed(self.oracle)}), trial "
                f"{trial.trial_id} runs again")


@contextmanager
def _frozen_heap() -> Iterator[None]:
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


@contextmanager
def _dropping_custom_gradients() -> Iterator[None]:
    """Forgets the gradient functions TensorFlow registers while a trial traces its graphs.

    Tracing a `tf.custom_gradient` (TensorFlow's all-reduce of the gradients is one, under every
    strategy) registers a gradient function in a process-wide registry that is never cleared, and
    that function holds the whole traced training graph: memory grew about 4 MB per trial even
    with `clear_session`. A trial's graphs are not used after it, so its registrations go. (No
    public API does this; if TensorFlow's internals change, nothing is dropped.)
    """
    registry = getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", {})
    before = set(registry)
    try:
        yield
    finally:
        for name in [name for name in registry
                     if name not in before and name.startswith("CustomGradient-")]:
            del registry[name]


def _format(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _oracle(config: TaskConfig, space: Space) -> keras_tuner.Oracle:
    tune = config.tune
    common = {"objective": keras_tuner.Objective(OBJECTIVE, "min"),
              "hyperparameters": hyperparameters(space),
              # keras-tuner draws a random seed for 0, so the oracle's seed is --seed + 1.
              "seed": config.runtime.seed + 1}
    if tune.tuner == "hyperband":
        oracle = keras_tuner.oracles.HyperbandOracle(max_epochs=tune.max_epochs, **common)
        oracle.max_trials = tune.trials  # Hyperband has no trial budget of its own.
    elif tune.tuner == "bayesian":
        oracle = keras_tuner.oracles.BayesianOptimizationOracle(max_trials=tune.trials, **common)
    else:
        oracle = keras_tuner.oracles.RandomSearchOracle(max_trials=tune.trials, **common)
    oracle.verbose = 0  # each trial prints one line from `_Tuner.run_trial` instead
    return oracle


@dataclass
class SearchResult:
    """What a finished search found.

    Attributes:
        trials: One row per trial: id, status, hyperparameters, validation scores, epochs, seconds.
        best_trial: Id of the trial with the lowest objective.
        best_values: Its hyperparameter values.
        best_metrics: Its reported metrics (objective, validation scores, epochs, best epoch).
        seconds: Wall time of the search in this process.
        trials_run: Trials completed in this process (a resumed search skips finished ones).
    """

    trials: pd.DataFrame
    best_trial: str
    best_values: dict[str, Any]
    best_metrics: dict[str, float]
    seconds: float
    trials_run: int


def search(config: TaskConfig, space: Space, evaluate: Evaluate, directory: Path | None,
           expected: dict[str, Any] | None = None) -> SearchResult | None:
    """Runs (or resumes) the search; in a worker, runs trials until the chief has no more.

    Args:
        config: The run's configuration (`tune` section, seed).
        space: The resolved space.
        evaluate: Trains one configuration and returns its validation metrics.
        directory: The tuner folder (None in a worker, which keeps its files in a temporary one).
        expected: The `fingerprint`, written into `directory` so a resumed run can check it.

    Returns:
        The trials and the best one; None in a worker.
    """
    if directory is None:
        with (tempfile.TemporaryDirectory() as scratch, _frozen_heap(),
              interrupt.training()):
            _tuner(config, space, evaluate, Path(scratch)).search()
        return None
    if config.tune.overwrite:
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / FINGERPRINT).write_text(json.dumps(expected, indent=2) + "\n")
    tuner = _reloaded_tuner(config, space, evaluate, directory, directory)
    oracle = tuner.oracle
    _keep_finished_trials(oracle)
    before = _completed(oracle)
    started = time.perf_counter()
    with interrupt.training():
        if role() == "chief":
            tuner.save()
            _serve(oracle, directory)
        else:
            with _frozen_heap():
                tuner.search()
        # A signal after the last trial's last check: every trial is kept, only the rest of
        # the run (the refit) is left to do.
        interrupt.stop_if_received("after the last trial",
                                   f"all {_completed(oracle)} trials kept in {directory}")
    seconds = time.perf_counter() - started
    best = [trial for trial in oracle.get_best_trials(1) if trial.status == "COMPLETED"]
    if not best:
        raise RuntimeError(f"no trial of the search completed; see the trial.json files in "
                           f"{directory / PROJECT}.")
    metrics = _metrics(best[0])
    return SearchResult(trials=trials_table(oracle, space), best_trial=best[0].trial_id,
                        best_values=_values(best[0]), best_metrics=metrics, seconds=seconds,
                        trials_run=_completed(oracle) - before)


def _tuner(config: TaskConfig, space: Space, evaluate: Evaluate, directory: Path) -> _Tuner:
    return _Tuner(_oracle(config, space), evaluate, config.tune.max_epochs, config.runtime.seed,
                  directory=str(directory), project_name=PROJECT)


def _reloaded_tuner(config: TaskConfig, space: Space, evaluate: Evaluate | None, directory: Path,
                    shown: Path) -> _Tuner:
    """`_tuner` over a folder that may hold a search to resume (`shown` is its name for users).

    `check_resume` has checked the files' shapes; whatever keras-tuner still cannot read in
    them is refused the same way.
    """
    try:
        return _tuner(config, space, evaluate, directory)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as error:
        raise InputError(f"the search state in {shown} does not load ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}): it was damaged "
                         f"or changed after this program saved it. "
                         f"{state_files.tuner_fix(shown)}.") from None


def _serve(oracle: keras_tuner.Oracle, directory: Path) -> None:
    """The chief: serves the oracle to the workers until they have run every trial.

    keras-tuner's own chief loop checks for the end every 20 s and leaves its server running;
    this one checks every `CHIEF_POLL_SECONDS` and stops the server.
    """
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    server.add_insecure_port(address)
    server.start()
    print(f"chief: serving the search on {address}; start the workers with the same command "
          "and KERASTUNER_TUNER_ID=<worker name>", flush=True)
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            interrupt.stop_if_received("while serving the search", f"finished trials kept in "
                                       f"{directory} ({_completed(oracle)})")
            time.sleep(CHIEF_POLL_SECONDS)
    finally:
        server.stop(grace=1)


def _keep_finished_trials(oracle: keras_tuner.Oracle) -> None:
    """Takes trials that finished before a kill off the reloaded oracle's retry queue.

    At the end of a trial keras-tuner writes the trial's `trial.json` (now COMPLETED), then
    `oracle.json` (where the trial is no longer ongoing). A search killed between the two writes
    reloads the trial as ongoing, and keras-tuner's `reload` sends every ongoing trial to be run
    again, although its result is on disk. The trial files are the record of what finished.
    (keras-tuner has no public API for the queue; `_retry_queue` is in its saved state.)
    """
    finished = {keras_tuner.engine.trial.TrialStatus.COMPLETED,
                keras_tuner.engine.trial.TrialStatus.FAILED}
    for trial_id in list(oracle._retry_queue):
        if oracle.trials[trial_id].status in finished:
            oracle._retry_queue.remove(trial_id)
            if trial_id not in oracle.end_order:
                oracle.end_order.append(trial_id)


def _completed(oracle: keras_tuner.Oracle) -> int:
    return sum(trial.status == "COMPLETED" for trial in oracle.trials.values())


def _values(trial: Any) -> dict[str, Any]:
    return {name: value for name, value in trial.hyperparameters.values.items()
            if not name.startswith("tuner/")}


def _metrics(trial: Any) -> dict[str, float]:
    return {name: trial.metrics.get_last_value(name) for name in trial.metrics.metrics}


def trials_table(oracle: keras_tuner.Oracle, space: Space) -> pd.DataFrame:
    """One row per trial, in trial order: id, status, hyperparameters, then reported metrics."""
    rows = [{"trial": trial.trial_id, "status": trial.status, **_values(trial), **_metrics(trial)}
            for _, trial in sorted(oracle.trials.items())]
    table = pd.DataFrame(rows)
    for name in ("epochs", "best_epoch"):
        if name in table:
            table[name] = table[name].astype("Int64")
    first = ["trial", "status", *space.search, OBJECTIVE]
    return table[[name for name in first if name in table]
                 + [name for name in table if name not in first]]

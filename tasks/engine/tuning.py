"""Hyperparameter search with keras-tuner over the engine's own fit path (`--tune`).

The model's search space is declared next to its builder (`zoo.get_search_space`); the task's
configuration narrows or fixes it. keras-tuner's oracle (random search, Hyperband or Bayesian
optimization) proposes values; each trial is trained by the function the engine passes in, which
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
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import zoo
from common.errors import InputError
from tasks import config as config_module
from tasks.config import TaskConfig, TrainConfig
from tasks.engine import interrupt, state_files, tuner_oracle
from zoo.search_space import Choice, Float, Int, Range, SearchSpace

# The score each trial minimizes: the problem's loss (cross-entropy, or the regression loss on the
# standardized target) on the validation rows, with the weights early stopping kept and without
# the weight penalty, so trials with different L2 strengths compare fairly.
OBJECTIVE = "validation_loss"
PROJECT = "search"
FINGERPRINT = "fingerprint.json"
TRAIN_SETTINGS = {field.name for field in dataclasses.fields(TrainConfig)}

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
        with (tempfile.TemporaryDirectory() as scratch, tuner_oracle.frozen_heap(),
              interrupt.training()):
            _tuner(config, space, evaluate, Path(scratch)).search()
        return None
    if config.tune.overwrite:
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / FINGERPRINT).write_text(json.dumps(expected, indent=2) + "\n")
    tuner = _reloaded_tuner(config, space, evaluate, directory, directory)
    oracle = tuner.oracle
    tuner_oracle.keep_finished_trials(oracle)
    before = tuner_oracle.completed(oracle)
    started = time.perf_counter()
    with interrupt.training():
        if role() == "chief":
            tuner.save()
            tuner_oracle.serve(oracle, directory)
        else:
            with tuner_oracle.frozen_heap():
                tuner.search()
        # A signal after the last trial's last check: every trial is kept, only the rest of
        # the run (the refit) is left to do.
        done = tuner_oracle.completed(oracle)
        interrupt.stop_if_received("after the last trial",
                                   f"all {done} trials kept in {directory}")
    seconds = time.perf_counter() - started
    best = [trial for trial in oracle.get_best_trials(1) if trial.status == "COMPLETED"]
    if not best:
        raise RuntimeError(f"no trial of the search completed; see the trial.json files in "
                           f"{directory / PROJECT}.")
    return SearchResult(
        trials=tuner_oracle.trials_table(oracle, [*space.search, OBJECTIVE]),
        best_trial=best[0].trial_id, best_values=tuner_oracle.trial_values(best[0]),
        best_metrics=tuner_oracle.trial_metrics(best[0]), seconds=seconds,
        trials_run=tuner_oracle.completed(oracle) - before)


def _tuner(config: TaskConfig, space: Space, evaluate: Evaluate | None,
           directory: Path) -> tuner_oracle.TrialTuner:
    oracle = tuner_oracle.make_oracle(config.tune, config.runtime.seed, OBJECTIVE, space.search)
    return tuner_oracle.TrialTuner(oracle, evaluate, config.tune.max_epochs, config.runtime.seed,
                                   OBJECTIVE, worker=role() == "worker",
                                   directory=str(directory), project_name=PROJECT)


def _reloaded_tuner(config: TaskConfig, space: Space, evaluate: Evaluate | None, directory: Path,
                    shown: Path) -> tuner_oracle.TrialTuner:
    """`_tuner` over a folder that may hold a search to resume (`shown` is its name for users).

    `check_resume` has checked the files' shapes; whatever keras-tuner still cannot read in
    them is refused the same way.
    """
    role()  # a bad keras-tuner environment is its own error, not a damaged folder
    try:
        return _tuner(config, space, evaluate, directory)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as error:
        raise InputError(f"the search state in {shown} does not load ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}): it was damaged "
                         f"or changed after this program saved it. "
                         f"{state_files.tuner_fix(shown)}.") from None



"""Checks before anything is written: settings, model, loss, weights file, search space.

A run that would fail on its settings fails here, in a second and before any data is trained on
or any file written, with one `InputError` naming the setting and its fix.
"""

from __future__ import annotations

import inspect
from typing import Any

import zoo
from common.errors import InputError
from tasks import config as config_module
from tasks.config import TaskConfig
from tasks.engine import presets, tuning

# Builder arguments the runner sets from the data; users set the rest with --set model.NAME=...
RUNNER_ARGUMENTS = ("input_dim", "input_shape", "problem", "num_classes")


def _validate_model(name: str, params: dict[str, Any]) -> None:
    """Checks the model name and that every `model.params` key is an argument of its builder."""
    if name not in zoo.list_models():
        raise InputError(f"unknown model '{name}'. Choose one of: {', '.join(zoo.list_models())}.")
    parameters = inspect.signature(zoo.get_builder(name)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    settable = [p for p in parameters if p not in RUNNER_ARGUMENTS]
    unknown = [key for key in params if key not in settable]
    if unknown:
        raise InputError(f"model '{name}' has no setting {', '.join(map(repr, unknown))}. Its "
                         f"settings: {', '.join(settable)} (set with --set model.NAME=VALUE).")


def preflight(config: TaskConfig) -> tuning.Space | None:
    """Validates the whole configuration; returns the search space of a tuned run, else None.

    Raises:
        InputError: A bad setting, an unknown model or loss, a missing weights file.
    """
    config_module.validate(config)
    _validate_model(config.model.name, config.model.params)
    try:
        presets.resolve_loss(config.problem, config.train.loss)
    except ValueError as error:
        raise InputError(str(error)) from None
    if zoo.get_builder(config.model.name) is zoo.applications.transfer:
        try:  # before anything is written: a missing weights file costs no training
            zoo.applications.check_weights(**{name: config.model.params[name] for name in
                                              ("backbone", "weights") if name in
                                              config.model.params})
        except InputError:
            raise
        except ValueError as error:
            raise InputError(f"model '{config.model.name}': {error}") from None
    return tuning.resolve_space(config) if config.tune.enabled else None

"""Checks before anything is written: settings, model, loss, weights file, search space.

A run that would fail on its settings fails here, in a second and before any data is trained on
or any file written, with one `InputError` naming the setting and its fix.
"""

from __future__ import annotations

from common.errors import InputError
from tasks import config as config_module
from tasks.config import TaskConfig
from tasks.engine import models, presets, tuning


def preflight(config: TaskConfig) -> tuning.Space | None:
    """Validates the whole configuration; returns the search space of a tuned run, else None.

    Raises:
        InputError: A bad setting, an unknown model or loss, a missing weights file.
    """
    config_module.validate(config)
    spec = models.validate_model(config.model.name, config.model.params, config.inputs)
    try:
        presets.resolve_loss(config.problem, config.train.loss)
    except ValueError as error:
        raise InputError(str(error)) from None
    models.check_settings(spec, config.model.params)  # a missing weights file costs no training
    return tuning.resolve_space(config) if config.tune.enabled else None

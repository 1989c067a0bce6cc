"""What the engine reads from a model's registration (`zoo.get_spec`), and its messages.

The zoo declares what differs between models where each is registered (`zoo.ModelSpec`): the
data its builder takes, the arguments filled from that data, a feature extractor trained in two
phases, a check of the settings. The engine asks here instead of special-casing model names:

    spec = validate_model(config.model.name, config.model.params, config.inputs)
    check_settings(spec, config.model.params)       # before anything is written
    backbone = two_phase_layer(spec, network, train.fine_tune_layers)

The zoo raises `ValueError` ending with `Received: argument=value` and names no CLI flag;
`settings_error` turns such an error about a model's settings into the user's one-line
`InputError`, naming the flag where the setting has one (`--weights`), else `--set model.NAME`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

import keras

import zoo
from common.errors import InputError
from tasks.config import MODEL_SETTING_FLAGS

RECEIVED = "Received: "
# A builder argument written as Python in a zoo message: `weights=None`, `weights='x.keras'`.
_PYTHON_VALUE = r"(None|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"


def models_for(inputs: str) -> list[str]:
    """The registered models whose builders take `inputs` data (`"table"` or `"images"`)."""
    return [name for name in zoo.list_models() if zoo.get_spec(name).inputs == inputs]


def validate_model(name: str, params: Mapping[str, Any], inputs: str) -> zoo.ModelSpec:
    """Checks that `name` is a model for `inputs` data and that it has every setting in `params`.

    Args:
        name: `model.name` (`--model`).
        params: `model.params` (`--set model.NAME=VALUE`).
        inputs: The task's data, `"table"` or `"images"` (`TaskConfig.inputs`).

    Returns:
        The model's registration.

    Raises:
        InputError: An unknown model, one for the other kind of data, or a setting its builder
            does not take (or one the engine fills from the data).
    """
    choices = ", ".join(models_for(inputs))
    if name not in zoo.list_models():
        raise InputError(f"unknown model '{name}'. Choose one of: {choices}.")
    spec = zoo.get_spec(name)
    if spec.inputs != inputs:
        raise InputError(f"model '{name}' takes {spec.inputs}, but this task's data is "
                         f"{'a table' if inputs == 'table' else 'images'}. Choose one of: "
                         f"{choices}. Received: --model {name}")
    settable = spec.settings()
    unknown = [key for key in params if settable is not None and key not in settable]
    if unknown:
        raise InputError(f"model '{name}' has no setting {', '.join(map(repr, unknown))}. Its "
                         f"settings: {', '.join(settable)} (set with --set model.NAME=VALUE).")
    return spec


def _as_flag(flag: str, value: str) -> str:
    written = ast.literal_eval(value)
    return f"{flag} {'none' if written is None else written}"


def settings_error(name: str, error: ValueError) -> InputError:
    """The user's message for a zoo `ValueError` about the settings of model `name`.

    The zoo writes builder arguments as Python (`weights=None`, `Received: weights='x.keras'`).
    When the arguments received include a setting with a flag (`MODEL_SETTING_FLAGS`), the
    message starts with that flag and every such setting is written as its flag
    (`--weights none`, `Received: --weights x.keras`); otherwise it starts with the model and
    says how to set its settings.

    Example:
        >>> str(settings_error("transfer", ValueError("... Received: weights='w.h5'")))
        "--weights: ... Received: --weights w.h5"
    """
    message = str(error)
    received = message.rpartition(RECEIVED)[2] if RECEIVED in message else ""
    flags = [MODEL_SETTING_FLAGS[setting] for setting in re.findall(r"\b(\w+)=", received)
             if setting in MODEL_SETTING_FLAGS]
    if not flags:
        return InputError(f"model '{name}': {message} (set with --set model.NAME=VALUE)")
    for setting, flag in MODEL_SETTING_FLAGS.items():
        message = re.sub(rf"\b{setting}={_PYTHON_VALUE}",
                         lambda match, flag=flag: _as_flag(flag, match.group(1)), message)
    return InputError(f"{flags[0]}: {message}")


def check_settings(spec: zoo.ModelSpec, params: Mapping[str, Any]) -> None:
    """Runs the model's declared check on its settings, before anything is written.

    A setting that cannot work (weights that cannot be had) then costs no training.

    Raises:
        InputError: The check refused a setting; the message names its flag.
    """
    try:
        spec.check_settings(params)
    except ValueError as error:
        raise settings_error(spec.name, error) from None


def two_phase_layer(spec: zoo.ModelSpec, network: keras.Model,
                    fine_tune_layers: int) -> keras.Model | None:
    """The network's feature extractor if the model trains in two phases, else None.

    Args:
        spec: The model's registration.
        network: The model built by its builder.
        fine_tune_layers: `train.fine_tune_layers`: phase 2 needs a two-phase model.

    Raises:
        InputError: `fine_tune_layers` is set for a model trained in one phase.
    """
    if spec.two_phase:
        return network.get_layer(spec.feature_extractor)
    if fine_tune_layers:
        two_phase = " or ".join(f"--model {name}" for name in zoo.list_models()
                                if zoo.get_spec(name).two_phase)
        raise InputError(f"train.fine_tune_layers (--fine-tune-layers) applies to models with a "
                         f"pretrained feature extractor, trained in two phases ({two_phase}); "
                         f"'{spec.name}' has none. Received: {fine_tune_layers}")
    return None

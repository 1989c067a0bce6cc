"""User settings applied to a `TaskConfig`: named flags, `--config FILE`, `--set key=value`.

The CLI applies, in order: the task's defaults, `--config FILE` (JSON in the shape of a run's
`config.json`), the named flags, then each `--set section.key=value`; `tasks.run` takes the same
named settings as keywords. Each value is coerced to its field's type, or refused with an
`InputError` naming the setting.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from common.errors import InputError
from tasks.config import TaskConfig

SECTIONS = ("data", "model", "train", "runtime", "export", "tune")


def _field_types(section: object) -> dict[str, Any]:
    return typing.get_type_hints(type(section))


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Converts `value` to the field type `hint`, or raises an InputError naming `key`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, options[0], key)
    if origin is list:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list | tuple):
            raise InputError(f"{key} takes a list. Received: {key}={value!r}")
        return [_coerce(item, typing.get_args(hint)[0], key) for item in value]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise InputError(f"{key} takes a JSON object. Received: {key}={value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise InputError(f"{key} takes true or false. Received: {key}={value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise InputError(f"{key} takes a number. Received: {key}={value!r}")
        try:
            number = hint(value)
        except (TypeError, ValueError):
            raise InputError(f"{key} takes a{'n integer' if hint is int else ' number'}. "
                             f"Received: {key}={value!r}") from None
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise InputError(f"{key} takes an integer. Received: {key}={value!r}")
        return number
    if hint is str:
        return str(value)
    return value


def parse_value(text: str) -> Any:
    """Parses the value of a `--set key=value`: JSON when it is JSON, else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_override(config: TaskConfig, key: str, value: Any) -> None:
    """Sets `section.name` on `config`, checking the key and converting the value's type.

    Keys under `model.` that are not `name` or `params` go into `model.params` (the builder's
    keyword arguments), so `model.dropout_rate=0.2` works; `tune.space.NAME` sets one entry of
    `tune.space`.

    Raises:
        InputError: For an unknown section or key, or a value of the wrong type.
    """
    section_name, _, name = key.partition(".")
    if section_name not in SECTIONS or not name:
        raise InputError(f"unknown setting '{key}'. Settings look like section.name with section "
                         f"one of {', '.join(SECTIONS)}, e.g. train.epochs=50.")
    section = getattr(config, section_name)
    if section_name == "model" and name not in ("name", "params"):
        name = name.removeprefix("params.")
        section.params[name] = value
        return
    if section_name == "tune" and name.startswith("space."):
        section.space[name.removeprefix("space.")] = value
        return
    hints = _field_types(section)
    if name not in hints:
        raise InputError(f"unknown setting '{key}'. Settings of {section_name}: "
                         f"{', '.join(hints)}.")
    setattr(section, name, _coerce(value, hints[name], key))


def apply_mapping(config: TaskConfig, mapping: dict[str, Any], source: str) -> None:
    """Applies a nested mapping in the shape of `config.json` (e.g. from `--config FILE`)."""
    for section_name, values in mapping.items():
        if section_name in ("task", "problem", "inputs"):
            if values != getattr(config, section_name):
                raise InputError(f"{source} is a configuration for {section_name} {values!r}, "
                                 f"not {getattr(config, section_name)!r}. Use it with that task.")
            continue
        if not isinstance(values, dict):
            raise InputError(f"{source}: '{section_name}' should be an object of settings. "
                             f"Received: {values!r}")
        for name, value in values.items():
            if section_name == "model" and name == "params":
                if not isinstance(value, dict):
                    raise InputError(f"{source}: model.params should be an object. "
                                     f"Received: {value!r}")
                config.model.params.update(value)
            else:
                apply_override(config, f"{section_name}.{name}", value)


# The named settings (CLI flags, `tasks.run` keywords) and the configuration key each sets.
NAMED_SETTINGS = {
    "data": "data.data", "target": "data.target", "test_data": "data.test_data",
    "positive_label": "data.positive_label", "model": "model.name", "epochs": "train.epochs",
    "batch_size": "train.batch_size", "learning_rate": "train.learning_rate",
    "optimizer": "train.optimizer", "seed": "runtime.seed", "strategy": "runtime.strategy",
    "run_dir": "runtime.run_dir", "trials": "tune.trials", "tuner": "tune.tuner",
    "max_epochs": "tune.max_epochs", "backbone": "model.backbone",
    "fine_tune_layers": "train.fine_tune_layers", "fine_tune_epochs": "train.fine_tune_epochs",
}
SEARCH_FLAGS = ("trials", "tuner", "max_epochs", "overwrite")


def explicit_settings(key: str, value: object) -> list[str]:
    """The `model.NAME` / `train.NAME` settings an override sets; a search keeps them fixed."""
    if key == "model.params" and isinstance(value, dict):
        return [f"model.{name}" for name in value]
    section, _, name = key.partition(".")
    if section == "model" and name not in ("name", "params"):
        return [f"model.{name.removeprefix('params.')}"]
    return [key] if section == "train" else []

"""The Python API: run a task from a script or a notebook cell, then use what it made.

    import tasks
    result = tasks.run("binary_classify", data="my.csv", target="bought", epochs=50)
    result.metrics["test"]["accuracy"], result.run_dir
    result.history.plot(y=["loss", "val_loss"])
    result.predict(new_rows)          # a DataFrame, a CSV path, or image files

It is the command line without the command line: the same configuration, the same engine, the
same run directory. Bad input raises `InputError` (the CLI turns it into exit code 2); nothing
here calls `sys.exit`. TensorFlow loads only once the settings are valid.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import InputError
from tasks.config import TaskConfig, validate
from tasks.settings import NAMED_SETTINGS, SEARCH_FLAGS, apply_override, explicit_settings

if TYPE_CHECKING:
    import keras
    import pandas as pd

    from tasks.engine.outcomes import RunOutcome

TASKS = ("binary_classify", "multiclass_classify", "regression", "image_classify",
         "transfer_learning")


@dataclass
class RunResult:
    """A finished run, as Python objects.

    Attributes:
        run_dir: The run directory (config.json, metrics.json, model.keras, exports, report.md).
        metrics: The content of metrics.json.
        history: Per-epoch loss and metrics (history.csv), one row per epoch.
        model: The trained Keras model, preprocessing included: raw features in.
        config: The resolved configuration the run used (also in config.json).
    """

    run_dir: Path
    metrics: dict[str, Any]
    history: pd.DataFrame | None
    model: keras.Model | None
    config: TaskConfig

    def predict(self, data: Any, artifact: str = "keras") -> pd.DataFrame:
        """Predictions of one of the run's artifacts, exactly as `python -m tasks.predict`.

        Args:
            data: Table runs: a DataFrame or a CSV path (columns found by name). Image runs: an
                image file, a folder, a glob pattern, or a list of image paths.
            artifact: The export format to run (`keras`, `savedmodel`, `tflite`, ...).

        Returns:
            The input columns (image runs: `file`), `predicted_<target>` in the user's labels,
            and one `probability_<label>` column per class.
        """
        from tasks import predict

        return predict.predict(self.run_dir, data, artifact)


def default_config(task: str) -> TaskConfig:
    """A task template's default configuration, by name (`binary_classify`, ...)."""
    if task not in TASKS:
        raise InputError(f"unknown task '{task}'. Choose one of: {', '.join(TASKS)}.")
    return importlib.import_module(f"tasks.{task}").default_config()


def configure(config: TaskConfig | str, data: str | Path | None = None,
              target: str | None = None, *, tune: bool = False,
              settings: dict[str, Any] | None = None, **named: Any) -> TaskConfig:
    """A task's configuration with the given settings applied, as the CLI applies its flags.

    Args:
        config: A `TaskConfig` (used as is, not changed) or a task name.
        data: A dataset name, CSV path, shard pattern or image folder (`--data`).
        target: The column to predict (`--target`).
        tune: Search hyperparameters first (`--tune`).
        settings: `{"section.key": value}` overrides, as `--set` (e.g.
            `{"model.hidden_units": [64, 32]}`).
        **named: Named settings, as the CLI flags: `epochs`, `batch_size`, `learning_rate`,
            `optimizer`, `model`, `seed`, `run_dir`, `trials`, `tuner`, `max_epochs`,
            `test_data`, `strategy`, ... (`settings.NAMED_SETTINGS`).

    Raises:
        InputError: An unknown task or setting, or a bad value.
    """
    import copy

    config = default_config(config) if isinstance(config, str) else copy.deepcopy(config)
    unknown = [name for name in named if name not in NAMED_SETTINGS]
    if unknown:
        raise InputError(f"unknown setting {', '.join(map(repr, unknown))}. Named settings: "
                         f"{', '.join(NAMED_SETTINGS)}; anything else goes in "
                         "settings={'section.key': value}.")
    searching = [name for name in SEARCH_FLAGS if named.get(name) is not None]
    if searching and not (tune or config.tune.enabled):
        raise InputError(f"{', '.join(searching)} only apply to a hyperparameter search. Pass "
                         f"tune=True, or drop {', '.join(searching)}.")
    explicit: list[str] = []
    given = {"data": data, "target": target, **named}
    for key, value in [*((NAMED_SETTINGS[name], value) for name, value in given.items()
                         if value is not None),
                       *(settings or {}).items()]:
        apply_override(config, key, str(value) if isinstance(value, Path) else value)
        explicit += explicit_settings(key, value)
    if tune:
        config.tune.enabled = True
        config.tune.fixed += [key for key in dict.fromkeys(explicit)
                              if key not in config.tune.fixed]
    validate(config)
    return config


def run(config: TaskConfig | str, data: str | Path | None = None, target: str | None = None,
        *, tune: bool = False, settings: dict[str, Any] | None = None,
        **named: Any) -> RunResult:
    """Trains, evaluates, exports and reports one run of a task; returns what it made.

    Takes the same settings as the task's command line (see `configure`).

    Returns:
        A `RunResult`: run directory, metrics, history, Keras model, `predict`.

    Raises:
        InputError: Bad settings or data (nothing is written).
        tasks.engine.parity.ExportError: An export failed or disagrees with the Keras model.

    Example:
        >>> import tasks
        >>> result = tasks.run("binary_classify", epochs=20, run_dir="runs/demo")
        >>> result.metrics["test"]["accuracy"] > result.metrics["baselines"]["majority"]["accuracy"]
        True
    """
    resolved = configure(config, data, target, tune=tune, settings=settings, **named)
    outcome = run_config(resolved)
    return RunResult(outcome.run_dir, outcome.metrics, outcome.history, outcome.model, resolved)


def run_config(config: TaskConfig) -> RunOutcome:
    """Runs a resolved configuration: the one path of the CLI and of `run`.

    A multi-replica strategy is created first, before any TensorFlow op (loading images or
    shards starts TensorFlow's runtime, after which a cluster's collective ops and the CPU's
    logical devices can no longer be set up). The data is loaded and checked before TensorFlow
    itself, so data problems are reported in a second.
    """
    if config.runtime.strategy != "default":
        from tasks.engine import distribute

        distribute.get_strategy(config.runtime.strategy, search=config.tune.enabled)
    from datasets.registry import load_configured

    splits = load_configured(config.data, config.problem, config.runtime.seed, config.inputs)
    from tasks.engine import pipeline

    return pipeline.run(config, splits)

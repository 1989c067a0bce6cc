"""Build, compile and fit one configuration: the default run, each trial and each refit.

They all train through `fit_configuration`, so they differ only in their settings. The network
is built and compiled inside the distribution strategy's scope and dtype policy; a network with a
pretrained feature extractor trains in two phases (`fine_tune`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

import zoo
from common import problems
from tasks.config import TaskConfig, TrainConfig
from tasks.engine import distribute, fine_tune, models, presets, resume
from tasks.engine.inputs import ImageInputs, TableInputs
from tasks.engine.outcomes import FitOutcome, PreparedData, Training
from tasks.engine.preparation import prepare_fit
from tasks.engine.training import fit_network, plan_fit, read_history, trainable_count


def fit_configuration(config: TaskConfig, params: dict[str, Any], train: TrainConfig,
                      data: PreparedData, strategy: tf.distribute.Strategy, run_dir: Path,
                      seed: int, progress: bool = True,
                      backup: resume.Backup | None = None) -> FitOutcome:
    """Builds, compiles and fits one configuration of `config.model.name`.

    The default run, every trial of a search and the refit of its best configuration all train
    through here, so they differ only in their settings. A model registered with a feature
    extractor (`zoo.get_spec(name).two_phase`) trains in two phases (see `fine_tune`).

    Args:
        config: The run's configuration (model name, problem).
        params: The builder's keyword arguments.
        train: The training settings.
        data: The preprocessed data.
        strategy: The distribution strategy to build and compile in.
        run_dir: Where `history.csv` is written.
        seed: Seeds the weights and the shuffling.
        progress: Print the model and a line every 10 epochs.
        backup: Back the fit up there, and resume from it (`fit_network`).

    Returns:
        The trained network (after a multi-worker fit, a copy outside the strategy:
        `distribute.local_copy`), its history and the seconds `fit` took.
    """
    schema = data.preprocessor.schema
    plan = plan_fit(len(data.x["train"]), train, strategy.num_replicas_in_sync)
    keras.utils.set_random_seed(seed)
    policy = distribute.precision_policy(config.runtime.mixed_precision, strategy)
    with strategy.scope(), distribute.dtype_policy(policy):
        try:
            network = zoo.build_model(
                config.model.name, problem=config.problem,
                num_classes=problems.get(config.problem).num_classes(len(schema.labels)),
                **data.preprocessor.builder_inputs(), **params)
        except ValueError as error:  # builders check their arguments with ValueError
            raise models.settings_error(config.model.name, error) from None
    backbone = models.two_phase_layer(zoo.get_spec(config.model.name), network,
                                      train.fine_tune_layers)

    def compile_at(learning_rate: float) -> None:
        with strategy.scope(), distribute.dtype_policy(policy):
            network.compile(**presets.compile_arguments(
                config.problem, train.optimizer, learning_rate, plan.steps_per_execution,
                train.loss))

    if backbone is not None:
        zoo.applications.set_trainable(backbone, 0)
    compile_at(train.learning_rate)
    if progress:
        frozen = (f", backbone frozen ({network.count_params() - trainable_count(network):,} "
                  "parameters)" if backbone is not None else "")
        print(f"model: {config.model.name} ({network.count_params():,} parameters{frozen}), up "
              f"to {train.epochs} epochs of {plan.steps_per_epoch} steps, batch "
              f"{plan.batch_size}", flush=True)
    seconds = fit_network(network, data.x, data.y, plan, train, run_dir, seed, progress, backup)
    history = read_history(run_dir, "validation" in data.x)
    if backbone is not None and train.fine_tune_layers and train.fine_tune_epochs:
        history, more = fine_tune.fine_tune(network, backbone, history, compile_at, data, plan,
                                            train, run_dir, seed, progress)
        seconds += more
    return FitOutcome(distribute.local_copy(network), history, seconds)


def fit_default(config: TaskConfig, inputs: TableInputs | ImageInputs,
                strategy: tf.distribute.Strategy, folder: Path,
                data_hashes: dict[str, Any]) -> Training:
    """The untuned fit, on every task of a cluster alike.

    Preprocessing adapted on the training rows, the configured network trained and validated,
    backed up in `folder/backup` (and resumed from it when a backup of the same settings and
    data is there). `data_hashes` is the run's one fingerprint of its data.
    """
    data = prepare_fit(config.problem, inputs)
    backup = resume.open_backup(folder / resume.BACKUP_DIR, resume.fingerprint(
        config, data_hashes, strategy.num_replicas_in_sync), config.runtime.backup_seconds)
    return Training(data, fit_configuration(config, config.model.params, config.train, data,
                                            strategy, folder, config.runtime.seed, backup=backup))

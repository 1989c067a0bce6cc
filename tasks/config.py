"""Configuration dataclasses: one `TaskConfig` describes a whole run.

A task module is a `default_config()` plus `main()`; `validate` checks what a dataclass cannot.
How user settings (flags, `--config FILE`, `--set`, `tasks.run` keywords) are applied on top of
the defaults is `tasks/settings.py`. The resolved configuration is written to `config.json` in
the run directory, so `--config runs/X/config.json` replays a run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from common import problems
from common.errors import InputError
from datasets.limits import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_MEMORY_FRACTION
from datasets.tabular import streams

# Export format -> artifact path in the run directory (see tasks/engine/export.py).
EXPORT_FORMATS = {
    "keras": "model.keras",
    "savedmodel": "export/saved_model",
    "tflite": "export/model.tflite",
    "tflite_float16": "export/model_float16.tflite",
    "tflite_dynamic_int8": "export/model_dynamic_int8.tflite",
    "tflite_int8": "export/model_int8.tflite",
}
# Written unless --export says otherwise: the float artifacts and the int8 file for phones, whose
# calibration needs the training rows (float16 and dynamic int8 can be made later from the
# SavedModel; each TFLite variant adds about a second to a run).
DEFAULT_EXPORTS = ("keras", "savedmodel", "tflite", "tflite_int8")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
TUNERS = ("random", "hyperband", "bayesian")
# Model settings with a flag of their own (a two-phase model's, in tasks.transfer_learning):
# messages about them name the flag (tasks.engine.models.settings_error).
MODEL_SETTING_FLAGS = {"weights": "--weights", "backbone": "--backbone"}
TUNE_MULTI_WORKER = (
    "--tune does not run under --strategy multi_worker: a search spreads its trials over "
    "processes with keras-tuner's own chief/worker mode (KERASTUNER_* variables, docs/tuning.md). "
    "Drop --tune or the strategy.")


@dataclass
class DataConfig:
    """Where the data comes from and how it is split.

    Attributes:
        data: A dataset name, a CSV path, or a pattern of CSV shards (`shards/*.csv`: has `*`,
            `?` or `[`), which is streamed (see `datasets/streaming.py`).
        target: Column to predict (named datasets have a default).
        test_data: Optional CSV of held-out rows; otherwise `test_fraction` of `data` is held out.
        validation_fraction: Fraction of the non-test rows used for validation (early stopping).
        test_fraction: Fraction of all rows held out for the final test.
        categorical: Columns to treat as categories even though they hold numbers.
        positive_label: Binary only: the positive class (default: 1 / yes / true, or the second
            label in sorted order).
        max_categories: Most frequent categories kept per column; rarer ones share one code.
        image_size: Image tasks: `[height, width]` every image is resized to (default: see
            `datasets/images.py`).
        skip_bad_images: Image tasks: skip unreadable image files with a warning instead of
            stopping.
        stream: Stream `data` even when it is one CSV file (a pattern always streams): train on
            every row through `tf.data` without loading the file into memory.
        sample_rows: Streaming: training rows held in memory to infer the schema and adapt the
            preprocessing on, and to fit the baselines and calibrate int8 on (a seeded uniform
            sample of all training rows).
        held_out_rows: Streaming: validation rows, and test rows, held in memory (a seeded
            uniform sample of all rows of each split) for early stopping, scores and export
            checks.
        max_memory_fraction: A CSV read into memory (not streamed) may take at most this share
            of the available memory, estimated as 10x its file size (`datasets/limits.py`);
            a larger one stops the run, pointing to `--stream`.
        max_image_pixels: Image tasks: an image with more pixels (width x height, read from its
            header before decoding) stops the run, or is skipped with `skip_bad_images`; a
            guard against decompression bombs (default: Pillow's own limit).
    """

    data: str = "smartwatch"
    target: str | None = None
    test_data: str | None = None
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    categorical: list[str] = field(default_factory=list)
    positive_label: str | None = None
    max_categories: int = 50
    image_size: list[int] | None = None
    skip_bad_images: bool = False
    stream: bool = False
    sample_rows: int = 20_000
    held_out_rows: int = 10_000
    max_memory_fraction: float = DEFAULT_MAX_MEMORY_FRACTION
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


@dataclass
class ModelConfig:
    """Which zoo model and its flat keyword arguments (`params`)."""

    name: str = "mlp"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """How to fit.

    Attributes:
        epochs: Most epochs; early stopping usually ends sooner.
        batch_size: Rows per gradient step.
        learning_rate: Initial learning rate.
        optimizer: One of `OPTIMIZERS` (`momentum` is SGD with Nesterov momentum 0.9).
        loss: `auto` (the problem's preset: cross-entropy, or MSE for regression) or a loss the
            problem allows (regression: `mse`, `huber`, `mae`).
        early_stopping_patience: Epochs without validation improvement before stopping; the best
            epoch's weights are restored. 0 disables early stopping.
        reduce_lr_patience: Epochs without improvement before halving the learning rate; 0
            disables it.
        steps_per_execution: Gradient steps per call into TensorFlow; 0 means "auto": a whole
            epoch (up to 32 steps), which removes most of Keras's per-step overhead on small data.
        tensorboard: Also write TensorBoard logs to `<run-dir>/logs`.
        fine_tune_layers: Models with a pretrained `backbone` (`transfer`): phase 1 trains the
            head on the frozen backbone; phase 2 unfreezes this many of the backbone's top
            layers (batch-norm layers stay frozen, in inference mode). 0 skips phase 2; -1
            (`--fine-tune-layers all`) unfreezes every layer.
        fine_tune_epochs: Most epochs of phase 2 (early stopping usually ends sooner).
        fine_tune_learning_rate_factor: Phase 2's learning rate is `learning_rate` times this
            (0.1: ten times lower, so the pretrained features are adjusted, not overwritten).
    """

    epochs: int = 200
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    loss: str = "auto"
    early_stopping_patience: int = 20
    reduce_lr_patience: int = 10
    steps_per_execution: int = 0
    tensorboard: bool = False
    fine_tune_layers: int = 0
    fine_tune_epochs: int = 0
    fine_tune_learning_rate_factor: float = 0.1


@dataclass
class RuntimeConfig:
    """Seeds, the run directory and the distribution strategy (see docs/distributed.md).

    Attributes:
        seed: Seeds the split, the weights and the shuffling.
        run_dir: Where the run is written (default `runs/<task>-<timestamp>`).
        strategy: One of `STRATEGIES`: `default` (one device), `mirrored` (the local GPUs, or
            logical CPUs), `multi_worker` (the cluster in `TF_CONFIG`), `tpu`, or `auto` (the
            first that applies: a TPU, a `TF_CONFIG` cluster, several GPUs, else one device).
        mixed_precision: Compute in float16 on GPUs (bfloat16 on TPUs), keeping float32
            variables and heads; on a CPU-only machine training stays float32, with a warning.
        backup_seconds: A fit backs itself up at the end of an epoch once this many seconds
            passed since its last backup (0: every epoch), so a killed run resumes having lost
            at most about that much training (see tasks/engine/resume.py).
    """

    seed: int = 0
    run_dir: str | None = None
    strategy: str = "default"
    mixed_precision: bool = False
    backup_seconds: float = 30.0


@dataclass
class ExportConfig:
    """Which artifacts to write and how closely each must agree with the Keras model.

    Attributes:
        formats: Any of `EXPORT_FORMATS` (default `DEFAULT_EXPORTS`).
        parity_tolerance: Largest max absolute difference from Keras allowed for a float32
            artifact (keras, savedmodel, tflite); a larger one fails the run.
        min_label_agreement: Reduced-precision TFLite (float16, int8): smallest share of
            held-out rows whose predicted class matches Keras's.
        max_metric_drop: Reduced-precision TFLite: largest drop of the headline metric from
            Keras's (accuracy points; for regression a fraction of the RMSE).
        latency: Measure each artifact's single-row latency and batch throughput (report.md).
    """

    formats: list[str] = field(default_factory=lambda: list(DEFAULT_EXPORTS))
    parity_tolerance: float = 1e-4
    min_label_agreement: float = 0.98
    max_metric_drop: float = 0.01
    latency: bool = True


@dataclass
class TuneConfig:
    """Hyperparameter search (`--tune`); see docs/tuning.md.

    Attributes:
        enabled: Search before the final fit.
        trials: Most trials (model configurations) to try.
        tuner: `random` (random search), `hyperband` or `bayesian` (Gaussian process).
        max_epochs: Most epochs per trial; early stopping on validation usually ends sooner.
        overwrite: Start the search over, discarding the tuner state in the run directory.
        space: Narrows the model's declared search space, by hyperparameter name: `[low, high]`
            narrows a range, a list narrows a choice, a single value fixes it.
        fixed: Settings (`model.NAME`, `train.NAME`) the command line set explicitly; they are
            kept at their configured value instead of searched.
    """

    enabled: bool = False
    trials: int = 20
    tuner: str = "random"
    max_epochs: int = 50
    overwrite: bool = False
    space: dict[str, Any] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)


@dataclass
class TaskConfig:
    """Everything a run needs.

    Attributes:
        task: The task module's name.
        problem: A name in `common.problems.NAMES`: `binary`, `multiclass` or `regression`
            (picks the preset and the head); set by the task.
        inputs: `table` (a CSV or a named table) or `images` (a class-folder tree or a named image
            set); set by the task, not by users.
    """

    task: str
    problem: str
    inputs: str = "table"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)

    def to_dict(self) -> dict[str, Any]:
        """Returns the configuration as a JSON-ready dict."""
        return dataclasses.asdict(self)


def validate(config: TaskConfig) -> None:
    """Checks values a dataclass cannot check; raises InputError naming the bad one."""
    train, data = config.train, config.data
    checks = [
        (config.problem in problems.NAMES,
         f"problem must be one of {', '.join(problems.NAMES)}", config.problem),
        (train.epochs >= 1, "train.epochs (--epochs) must be at least 1", train.epochs),
        (train.batch_size >= 1, "train.batch_size (--batch-size) must be at least 1",
         train.batch_size),
        (train.learning_rate > 0, "train.learning_rate (--learning-rate) must be positive",
         train.learning_rate),
        (train.optimizer in OPTIMIZERS,
         f"train.optimizer (--optimizer) must be one of {', '.join(OPTIMIZERS)}", train.optimizer),
        (train.early_stopping_patience >= 0, "train.early_stopping_patience must be >= 0",
         train.early_stopping_patience),
        (train.reduce_lr_patience >= 0, "train.reduce_lr_patience must be >= 0",
         train.reduce_lr_patience),
        (train.steps_per_execution >= 0, "train.steps_per_execution must be >= 0 (0 = auto)",
         train.steps_per_execution),
        (train.fine_tune_layers >= -1,
         "train.fine_tune_layers (--fine-tune-layers) must be all (-1), 0 (no fine-tuning) or "
         "a number of layers",
         train.fine_tune_layers),
        (train.fine_tune_epochs >= 0, "train.fine_tune_epochs (--fine-tune-epochs) must be >= 0",
         train.fine_tune_epochs),
        (0 < train.fine_tune_learning_rate_factor <= 1,
         "train.fine_tune_learning_rate_factor must be in (0, 1]",
         train.fine_tune_learning_rate_factor),
        (0 < data.validation_fraction < 1, "data.validation_fraction must be between 0 and 1",
         data.validation_fraction),
        (0 < data.test_fraction < 1, "data.test_fraction must be between 0 and 1",
         data.test_fraction),
        (data.max_categories >= 1, "data.max_categories must be at least 1", data.max_categories),
        (data.sample_rows >= 10, "data.sample_rows must be at least 10", data.sample_rows),
        (data.held_out_rows >= 10, "data.held_out_rows must be at least 10", data.held_out_rows),
        (data.max_memory_fraction > 0, "data.max_memory_fraction must be positive",
         data.max_memory_fraction),
        (data.max_image_pixels >= 1, "data.max_image_pixels must be at least 1",
         data.max_image_pixels),
        (data.image_size is None or (len(data.image_size) == 2 and min(data.image_size) >= 1),
         "data.image_size (--image-size) must be two positive sizes, height and width",
         data.image_size),
        (config.runtime.seed >= 0, "runtime.seed (--seed) must be >= 0", config.runtime.seed),
        (config.runtime.backup_seconds >= 0, "runtime.backup_seconds must be >= 0 (0 = every "
         "epoch)", config.runtime.backup_seconds),
        (config.runtime.strategy in STRATEGIES,
         f"runtime.strategy (--strategy) must be one of {', '.join(STRATEGIES)}",
         config.runtime.strategy),
        (config.export.parity_tolerance > 0, "export.parity_tolerance must be positive",
         config.export.parity_tolerance),
        (0 <= config.export.min_label_agreement <= 1,
         "export.min_label_agreement must be between 0 and 1", config.export.min_label_agreement),
        (config.export.max_metric_drop >= 0, "export.max_metric_drop must be >= 0",
         config.export.max_metric_drop),
        (config.tune.trials >= 1, "tune.trials (--trials) must be at least 1",
         config.tune.trials),
        (config.tune.tuner in TUNERS,
         f"tune.tuner (--tuner) must be one of {', '.join(TUNERS)}", config.tune.tuner),
        (config.tune.max_epochs >= 1, "tune.max_epochs (--max-epochs) must be at least 1",
         config.tune.max_epochs),
    ]
    for ok, message, received in checks:
        if not ok:
            raise InputError(f"{message}. Received: {received!r}")
    if config.inputs == "table" and streams(data.data, data.stream) and config.tune.enabled:
        raise InputError(f"--tune does not work on streamed data yet (--data {data.data}). "
                         "Search on a sample CSV, then train on the shards with the best "
                         "settings (--set ... from its best_hyperparameters.json).")
    if config.tune.enabled and config.runtime.strategy == "multi_worker":
        raise InputError(TUNE_MULTI_WORKER)
    unknown = [name for name in config.export.formats if name not in EXPORT_FORMATS]
    if unknown:
        raise InputError(f"unknown export format {', '.join(unknown)}. --export takes a comma "
                         f"list of {', '.join(EXPORT_FORMATS)}, or all, or none.")

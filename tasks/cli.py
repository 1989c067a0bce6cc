"""The shared command line of every task: flags -> `TaskConfig` -> `pipeline.run`.

Errors in the user's input end the process with exit code 2 and one line `error: ...` on stderr
(no traceback); an export that fails its parity check exits with 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from common.errors import InputError
from tasks.config import (
    DEFAULT_EXPORTS,
    EXPORT_FORMATS,
    OPTIMIZERS,
    STRATEGIES,
    TUNERS,
    TaskConfig,
    validate,
)
from tasks.engine import interrupt, native_logs
from tasks.settings import (
    NAMED_SETTINGS,
    SEARCH_FLAGS,
    apply_mapping,
    apply_override,
    explicit_settings,
    parse_value,
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but usage errors raise `InputError` (one line, exit 2) instead of printing."""

    def error(self, message: str):
        raise InputError(f"{message}. Run with --help to see the options.")


# The flags of a task whose default model trains in two phases (its registration says so).
TWO_PHASE_FLAGS = ("--weights", "--backbone", "--fine-tune-layers", "--fine-tune-epochs")


def _mentions(argv: Sequence[str], flags: Sequence[str]) -> bool:
    """Whether an argument may be one of `flags` (argparse takes any unambiguous prefix)."""
    options = [arg.partition("=")[0] for arg in argv if arg.startswith("--") and len(arg) > 2]
    return any(flag.startswith(option) for option in options for flag in flags)


def _two_phase(defaults: TaskConfig, argv: Sequence[str] | None) -> bool:
    """Whether the task's default model trains in two phases (`zoo.get_spec(name).two_phase`).

    Reading the registration imports the zoo, and so TensorFlow (seconds). Without `--help` and
    without an argument that may be one of `TWO_PHASE_FLAGS` the answer changes nothing that is
    parsed, so it is not read: bad data is still reported before TensorFlow loads.
    """
    if argv is not None and "-h" not in argv and not _mentions(argv, (*TWO_PHASE_FLAGS,
                                                                       "--help")):
        return False
    import zoo

    try:
        return zoo.get_spec(defaults.model.name).two_phase
    except ValueError:  # an unknown model: the run says so, with the choices
        return False


def build_parser(prog: str, description: str, defaults: TaskConfig,
                 argv: Sequence[str] | None = None) -> ArgumentParser:
    """The flags every task accepts; defaults shown in `--help` come from the task's config.

    Args:
        prog: The program name for `--help`.
        description: Text for `--help`.
        defaults: The task's default configuration.
        argv: The arguments that will be parsed, if known: the flags of a two-phase model are
            then added only where they may be used (see `_two_phase`).
    """
    parser = ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(f"examples:\n  python -m {prog}\n"
                + (f"  python -m {prog} --data rocks/ --image-size 64 --epochs 50\n"
                   f"  python -m {prog} --set model.filters=[32,64] --set model.flip=horizontal\n"
                   if defaults.inputs == "images" else
                   f"  python -m {prog} --data my.csv --target bought --epochs 100\n"
                   f"  python -m {prog} --set model.hidden_units=[128,64] --set "
                   "model.dropout_rate=0.2\n")
                + f"  python -m {prog} --config runs/X/config.json   (replay a run)"))
    data = parser.add_argument_group("data")
    if defaults.inputs == "images":
        data.add_argument("--data", help="dataset name (digits, mnist, fashion_mnist, cifar10) or "
                          "a folder with one sub-folder of images per class (default: "
                          f"{defaults.data.data})")
        data.add_argument("--test-data", help="folder of held-out images, same layout (default: "
                          f"hold out {defaults.data.test_fraction:.0%}% of --data, seeded, "
                          "stratified)")
        data.add_argument("--image-size", metavar="HxW",
                          help="resize every image to HxW pixels, or NxN with one number "
                          "(default: the most common size, long side at most 128)")
        data.add_argument("--skip-bad-images", action="store_true",
                          help="skip unreadable image files with a warning instead of stopping")
    else:
        data.add_argument("--data", help=f"dataset name, CSV path, or a quoted pattern of CSV "
                          f"shards such as 'shards/*.csv', streamed (default: "
                          f"{defaults.data.data})")
        data.add_argument("--stream", action="store_true",
                          help="stream a single CSV too instead of loading it into memory")
        data.add_argument("--target", help="column to predict (required for a CSV)")
        data.add_argument("--test-data", help="CSV of held-out rows for the final test "
                          f"(default: hold out {defaults.data.test_fraction:.0%}% of --data, "
                          "seeded, stratified)")
        data.add_argument("--categorical", action="append", metavar="COLUMN",
                          help="treat a column of numbers as categories (repeatable, or a,b,c)")
        data.add_argument("--positive-label",
                          help="binary: the positive class (default: 1/yes/true)")
    training = parser.add_argument_group("model and training")
    training.add_argument("--model", help=f"zoo model name (default: {defaults.model.name})")
    training.add_argument("--epochs", type=int,
                          help=f"most epochs; early stopping ends sooner "
                          f"(default: {defaults.train.epochs})")
    training.add_argument("--batch-size", type=int,
                          help=f"rows per step (default: {defaults.train.batch_size})")
    training.add_argument("--learning-rate", type=float,
                          help=f"initial learning rate (default: {defaults.train.learning_rate})")
    training.add_argument("--optimizer", choices=OPTIMIZERS,
                          help=f"(default: {defaults.train.optimizer})")
    training.add_argument("--seed", type=int,
                          help=f"seed of the split and the weights (default: "
                          f"{defaults.runtime.seed})")
    training.add_argument("--strategy", choices=STRATEGIES,
                          help=f"tf.distribute strategy; multi_worker reads TF_CONFIG "
                          f"(docs/distributed.md; default: {defaults.runtime.strategy})")
    training.add_argument("--mixed-precision", action="store_true",
                          help="float16 compute on GPUs, bfloat16 on TPUs (float32 on CPUs)")
    training.add_argument("--tensorboard", action="store_true",
                          help="also write TensorBoard logs to RUN_DIR/logs")
    if _two_phase(defaults, argv):
        transfer = parser.add_argument_group(
            "transfer learning",
            "Phase 1 trains a new head on the frozen backbone; phase 2 unfreezes the backbone's\n"
            "top layers (batch norm stays frozen) at a learning rate 10x lower.")
        transfer.add_argument(
            "--weights", metavar="imagenet|none|PATH",
            help="the backbone's weights: imagenet (downloaded once into the Keras cache, "
            "~/.keras/models), none (random), or a model.keras from an earlier image_classify "
            "or transfer_learning run, whose feature extractor becomes the backbone (default: "
            f"{defaults.model.params.get('weights')})")
        transfer.add_argument(
            "--backbone", help="keras.applications backbone: resnet50, resnet50v2, "
            "mobilenet_v3_small or efficientnet_b0; ignored with --weights PATH "
            f"(default: {defaults.model.params.get('backbone')})")
        transfer.add_argument(
            "--fine-tune-layers", type=fine_tune_layers, metavar="N|all",
            help="backbone layers (from the top) trained in phase 2; all, or 0 to skip phase 2 "
            f"(default: {defaults.train.fine_tune_layers})")
        transfer.add_argument(
            "--fine-tune-epochs", type=int, metavar="N",
            help=f"most epochs of phase 2 (default: {defaults.train.fine_tune_epochs})")
    tune = parser.add_argument_group(
        "hyperparameter search (docs/tuning.md)",
        "Searches the model's declared space on the validation split, then refits the best\n"
        "configuration on train + validation. --set model.NAME or train.NAME fixes that\n"
        "hyperparameter; --set tune.space.NAME=[low,high] narrows it.")
    tune.add_argument("--tune", action="store_true", help="search hyperparameters first")
    tune.add_argument("--trials", type=int,
                      help=f"most trials (default: {defaults.tune.trials})")
    tune.add_argument("--tuner", choices=TUNERS, help=f"(default: {defaults.tune.tuner})")
    tune.add_argument("--max-epochs", type=int,
                      help=f"most epochs per trial (default: {defaults.tune.max_epochs})")
    tune.add_argument("--overwrite", action="store_true",
                      help="start the search over instead of resuming the run directory's")
    output = parser.add_argument_group("output")
    output.add_argument("--export", metavar="LIST",
                        help=f"comma list of {', '.join(EXPORT_FORMATS)}; 'all' or 'none' "
                        f"(default: {','.join(DEFAULT_EXPORTS)})")
    output.add_argument("--run-dir", help="where the run is written (default: runs/<task>-<time>)")
    output.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    config = parser.add_argument_group("configuration")
    config.add_argument("--config", metavar="FILE",
                        help="JSON configuration, e.g. a run's config.json")
    config.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any setting, e.g. train.epochs=50, "
                        "model.hidden_units=[64,32] (repeatable)")
    return parser


VERBOSE_HELP = ("also show TensorFlow's and LiteRT's own start-up and C++ logging (hidden by "
                "default; TF_CPP_MIN_LOG_LEVEL=0 or 1 in the environment shows it too)")

def parse_image_size(text: str) -> list[int]:
    """`"64"` -> [64, 64]; `"48x64"` -> [48, 64] (height x width).

    Raises:
        InputError: For anything else.
    """
    parts = text.lower().replace("*", "x").split("x")
    try:
        sizes = [int(part) for part in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes, default=0) < 1:
        raise InputError(f"--image-size takes HxW or one number, e.g. 64x64 or 64. "
                         f"Received: --image-size {text}")
    return sizes * 2 if len(sizes) == 1 else sizes


def fine_tune_layers(text: str) -> int:
    """`--fine-tune-layers`: a number of layers, or `all` (-1)."""
    if text.strip().lower() == "all":
        return -1
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a number of layers or all. Received: "
                                         f"{text}") from None


def weights_setting(text: str) -> str | None:
    """`--weights`: `imagenet`, `none` (None) or a model file's absolute path.

    Raises:
        InputError: For a path that does not exist.
    """
    choice = text.strip()
    if choice.lower() in ("imagenet", "none"):
        return None if choice.lower() == "none" else "imagenet"
    path = Path(choice).expanduser()
    if not path.is_file():
        raise InputError(f"--weights takes imagenet, none, or the path of a model.keras from an "
                         f"earlier image_classify or transfer_learning run; no such file. "
                         f"Received: --weights {text}")
    return str(path.resolve())


def config_from_args(default_config: Callable[[], TaskConfig], argv: Sequence[str] | None,
                     prog: str, description: str) -> TaskConfig:
    """Parses `argv` on top of the task's default configuration.

    Raises:
        InputError: For an unknown flag, a bad value or an unreadable --config file.
    """
    config = default_config()
    argv = sys.argv[1:] if argv is None else list(argv)
    if _mentions(argv, ("--verbose",)):  # before the parser may load TensorFlow (_two_phase)
        native_logs.show()
    args = build_parser(prog, description, config, argv).parse_args(argv)
    if args.verbose:  # before TensorFlow loads, so its start-up logging shows too
        native_logs.show()
    if args.config:
        path = Path(args.config)
        try:
            mapping = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"config file not found: '{path}'. Pass an existing JSON file, e.g. "
                             "a run's config.json.") from None
        except json.JSONDecodeError as error:
            raise InputError(f"config file '{path}' is not valid JSON ({error}).") from None
        if not isinstance(mapping, dict):
            raise InputError(f"config file '{path}' should hold a JSON object of settings.")
        apply_mapping(config, mapping, source=str(path))
    explicit: list[str] = []
    for flag, key in NAMED_SETTINGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            apply_override(config, key, value)
            explicit += explicit_settings(key, value)
    if getattr(args, "weights", None) is not None:
        apply_override(config, "model.weights", weights_setting(args.weights))
    if getattr(args, "image_size", None):
        config.data.image_size = parse_image_size(args.image_size)
    if getattr(args, "stream", False):
        config.data.stream = True
    if getattr(args, "skip_bad_images", False):
        config.data.skip_bad_images = True
    if getattr(args, "categorical", None):
        config.data.categorical = [name.strip() for item in args.categorical
                                   for name in item.split(",") if name.strip()]
    if args.tensorboard:
        config.train.tensorboard = True
    if args.mixed_precision:
        config.runtime.mixed_precision = True
    if args.export is not None:
        choice = args.export.strip().lower()
        formats = {"none": [], "all": list(EXPORT_FORMATS)}.get(choice, args.export)
        apply_override(config, "export.formats", formats)
    for item in args.set:
        key, separator, value = item.partition("=")
        if not separator:
            raise InputError(f"--set takes KEY=VALUE, e.g. --set train.epochs=50. "
                             f"Received: --set {item}")
        key, value = key.strip(), parse_value(value.strip())
        apply_override(config, key, value)
        explicit += explicit_settings(key, value)
    if args.tune:
        config.tune.enabled = True
    if args.overwrite:
        config.tune.overwrite = True
    given = [flag for flag in SEARCH_FLAGS if getattr(args, flag) not in (None, False)]
    if given and not config.tune.enabled:
        flags = ", ".join("--" + flag.replace("_", "-") for flag in given)
        raise InputError(f"{flags} only apply to a hyperparameter search. Add --tune, or drop "
                         f"{flags}.")
    if config.tune.enabled:
        config.tune.fixed += [key for key in dict.fromkeys(explicit)
                              if key not in config.tune.fixed]
    validate(config)
    return config


def main(default_config: Callable[[], TaskConfig], argv: Sequence[str] | None = None,
         description: str = "") -> int:
    """Runs a task from the command line; returns the process exit code.

    Args:
        default_config: The task's `default_config` function.
        argv: Arguments (default: `sys.argv[1:]`).
        description: Text for `--help`.

    Returns:
        0 on success, 2 for bad input, 1 when an export fails (conversion or parity check)
        or the run's files cannot be written (a full disk: `run_guard.RunWriteError`),
        128 + the signal's number when SIGTERM (143) or SIGINT (130) stopped it
        (`tasks.engine.interrupt`).
    """
    try:
        # SIGTERM / SIGINT, from the start: a backup if training, one line, 143 / 130.
        with interrupt.handling():
            return _run(default_config, argv, description)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (interrupt.Interrupted, KeyboardInterrupt) as stop:
        return interrupt.report(stop)


def _run(default_config: Callable[[], TaskConfig], argv: Sequence[str] | None,
         description: str) -> int:
    config = config_from_args(default_config, argv, f"tasks.{default_config().task}",
                              description)
    from tasks import api
    from tasks.engine.parity import ExportError
    from tasks.engine.run_guard import RunWriteError

    try:
        api.run_config(config)
    except (ExportError, RunWriteError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0

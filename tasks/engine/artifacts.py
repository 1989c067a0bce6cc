"""A run directory's files, read as untrusted input by `tasks.predict`.

A run directory may come from anyone (a colleague, a download, a file share), so everything
read from it is checked before it is used, and every problem is one `InputError` line that
names the file and says why:

* Paths stay inside the run directory: `schema.json`, `model.keras` and each file under
  `export/` must resolve (symlinks followed) to a place inside it, and must be what they claim
  (a regular file, or for the SavedModel a folder).
* `schema.json` is parsed and checked field by field (types, allowed values, sizes) before any
  of it is used.
* Each artifact is loaded by its own runtime: `.keras` in Keras safe mode (`zoo.loading`), the
  SavedModel by TensorFlow, `.tflite` by LiteRT (which verifies the flatbuffer). Whatever the
  runtime raises for a broken file becomes one line; the runtime's own native log lines are set
  aside unless `--verbose`.
* The loaded artifact must take the inputs `schema.json` describes (names, dtypes, shapes) and
  give one output per class, so a model file swapped for another fails here, not mid-run.

A SavedModel and a `.tflite` file run no Python, but a SavedModel is a TensorFlow graph, and
TensorFlow ops can read and write files: `load_artifact` refuses a SavedModel whose graph holds
file or Python-calling ops (`UNSAFE_SAVEDMODEL_OPS`), which no exported model of this project
has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import InputError
from datasets.image_preprocessing import ImageSchema
from datasets.tabular import TabularSchema
from tasks.config import EXPORT_FORMATS
from tasks.engine.run_schema import RESTORE_HINT, expected_signature, read_schema
from tasks.engine.savedmodel_ops import unsafe_ops

SCHEMA_FILE = "schema.json"
@dataclass
class RunFiles:
    """The checked files of one run that `tasks.predict` uses.

    Attributes:
        root: The run directory (for `--model FILE`, the file's folder), resolved.
        artifact: The artifact to run, inside `root`.
        schema: What the model expects (`schema.json`, checked).
    """

    root: Path
    artifact: Path
    schema: TabularSchema | ImageSchema


def inside(root: Path, path: Path) -> Path:
    """`path` resolved (symlinks followed); an `InputError` if that leaves `root`.

    Args:
        root: The run directory, resolved.
        path: A path in it, as the project names it (e.g. `root / "export/model.tflite"`).
    """
    real = path.resolve()
    if real != root and not real.is_relative_to(root):
        raise InputError(f"'{path}' points outside its run directory (to '{real}'); a run's "
                         f"files must be inside it, so it is not read. {RESTORE_HINT}")
    return real


def _check_tree(root: Path, folder: Path) -> None:
    """Every entry under `folder` (a SavedModel) must resolve inside `root`."""
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            inside(root, Path(parent) / name)


def locate(run_dir: Path | None, model_file: Path | None, artifact: str) -> RunFiles:
    """Checks `--run-dir` / `--model` and `--format`; returns the run's checked files.

    Raises:
        InputError: A missing run directory or file, an artifact the run did not export, a
            path that leaves the run directory, or a bad `schema.json`.
    """
    if model_file is not None:
        if not model_file.exists():
            raise InputError(f"model file not found: '{model_file}'. Pass an existing .keras "
                             "file.")
        if model_file.suffix != ".keras":
            raise InputError(f"--model takes a .keras file. Received: '{model_file}'. For a "
                             "SavedModel or TFLite file, pass --run-dir and --format.")
        if artifact != "keras":
            raise InputError("--model runs the .keras file itself; use --run-dir with --format "
                             f"{artifact}.")
        path = model_file.resolve()
        root = path.parent
    else:
        if run_dir is None or not run_dir.is_dir():
            raise InputError(f"run directory not found: '{run_dir}'. Pass a folder written by a "
                             "task run.")
        root = run_dir.resolve()
        named = root / EXPORT_FORMATS[artifact]
        if not named.exists() and not named.is_symlink():
            raise InputError(f"'{run_dir / EXPORT_FORMATS[artifact]}' not found: that run did "
                             f"not export the {artifact} format. Re-run the task with --export "
                             f"{artifact}, or pick a --format it exported (listed in its "
                             "metrics.json).")
        path = inside(root, named)
    if artifact == "savedmodel":
        if not path.is_dir():
            raise InputError(f"'{path}' should be a SavedModel folder but is not a folder. "
                             f"{RESTORE_HINT}")
        _check_tree(root, path)
    elif not path.is_file():
        raise InputError(f"'{path}' should be a {artifact} model file but is "
                         f"{'a folder' if path.is_dir() else 'not a regular file'}. "
                         f"{RESTORE_HINT}")
    schema = root / SCHEMA_FILE
    if not schema.exists() and not schema.is_symlink():
        raise InputError(f"schema.json not found: '{schema}'. Pass the run directory a task wrote "
                         "(it holds metrics.json, model.keras, schema.json and export/).")
    return RunFiles(root, path, read_schema(inside(root, schema)))


def _describe(inputs: dict[str, tuple[tuple[int, ...], str]]) -> str:
    return ", ".join(f"{name} {dtype}{list(shape)}" for name, shape_dtype in sorted(inputs.items())
                     for shape, dtype in [shape_dtype])


def _dtype_name(dtype: Any) -> str:
    import numpy as np

    if dtype is np.bytes_ or dtype is np.object_:
        return "string"
    return getattr(dtype, "name", None) or np.dtype(dtype).name


def _signature(name: str, loaded: Any) -> tuple[dict[str, tuple[tuple[int, ...], str]], list[Any]]:
    """The inputs (name -> shape without the batch, dtype) and the output shapes of an artifact."""
    if name == "keras":
        inputs = {tensor.name: (tuple(tensor.shape[1:]), str(tensor.dtype))
                  for tensor in loaded.inputs}
        return inputs, [tuple(tensor.shape) for tensor in loaded.outputs]
    if name == "savedmodel":
        specs = loaded.structured_input_signature[1]
        inputs = {key: (tuple(spec.shape.as_list()[1:]), spec.dtype.name)
                  for key, spec in specs.items()}
        return inputs, [tuple(spec.shape.as_list()) for spec in loaded.structured_outputs.values()]
    runner = loaded.get_signature_runner()
    inputs = {key: (tuple(int(side) for side in detail["shape_signature"][1:]),
                    _dtype_name(detail["dtype"]))
              for key, detail in runner.get_input_details().items()}
    return inputs, [tuple(detail["shape_signature"])
                    for detail in runner.get_output_details().values()]


def _check_signature(name: str, loaded: Any, files: RunFiles) -> None:
    """The artifact must take what schema.json describes and give one output per class."""
    from zoo.loading import short_reason

    expected, width = expected_signature(files.schema)
    try:
        inputs, outputs = _signature(name, loaded)
    except Exception as error:  # e.g. a .tflite file without a signature
        raise InputError(f"'{files.artifact}' has no serving signature that tasks.predict can "
                         f"call ({short_reason(error)}). {RESTORE_HINT}") from None
    if inputs != expected:
        raise InputError(f"'{files.artifact}' does not fit the run's schema.json: it takes "
                         f"{_describe(inputs) or 'nothing'}, but schema.json describes "
                         f"{_describe(expected)}; the run directory's files do not belong "
                         f"together. {RESTORE_HINT}")
    if len(outputs) != 1 or not outputs[0] or outputs[0][-1] != width:
        raise InputError(f"'{files.artifact}' does not fit the run's schema.json: it gives "
                         f"outputs of shape {', '.join(map(str, outputs)) or 'none'}, but "
                         f"schema.json's {files.schema.problem} problem with "
                         f"{len(files.schema.labels)} labels needs one output of width {width}. "
                         f"{RESTORE_HINT}")


def _check_savedmodel(folder: Path) -> None:
    """Refuses a SavedModel that cannot be parsed or whose serving graph touches files."""
    from zoo.loading import short_reason

    try:
        unsafe = unsafe_ops((folder / "saved_model.pb").read_bytes())
    except Exception as error:  # protobuf's DecodeError, OSError, a missing signature
        raise InputError(f"could not load the SavedModel in '{folder}' (saved_model.pb: "
                         f"{short_reason(error)}). {RESTORE_HINT}") from None
    if unsafe:
        raise InputError(f"refused to load the SavedModel in '{folder}': its graph holds "
                         f"{', '.join(unsafe)}, TensorFlow ops that read or write files or call "
                         "Python, which no model this project exports runs. Load only "
                         "SavedModels you trust, in your own code.")


def load_artifact(name: str, files: RunFiles) -> Any:
    """Loads the run's artifact of format `name` by its own runtime, checked against the schema.

    Returns:
        What `tasks.engine.inference.outputs_of(name, ...)` runs.

    Raises:
        InputError: One line naming the file: it cannot be loaded, safe mode refused it, its
            graph holds unsafe ops, or it does not fit the run's schema.json.
    """
    from tasks.engine import inference, native_logs
    from zoo.loading import load_keras_file, short_reason

    if name == "keras":
        try:
            loaded = load_keras_file(files.artifact)
        except ValueError as error:  # the zoo's message names the file and what to do
            raise InputError(str(error)) from None
    else:
        if name == "savedmodel":
            _check_savedmodel(files.artifact)
        failure = None
        with native_logs.set_aside():  # LiteRT and TensorFlow log a broken file natively
            try:
                loaded = inference.load_artifact(name, files.artifact)
            except Exception as error:  # each runtime raises many types for a broken file
                failure = error
        if failure is not None:
            kind = "SavedModel" if name == "savedmodel" else "TFLite model"
            raise InputError(f"could not load the {kind} in '{files.artifact}' "
                             f"({short_reason(failure)}). {RESTORE_HINT}")
    _check_signature(name, loaded, files)
    return loaded

"""Predict with a trained run: new rows in, labels in your own values and probabilities out.

Examples:
    python -m tasks.predict --run-dir runs/binary_classify-X --data new.csv --output preds.csv
    python -m tasks.predict --run-dir runs/binary_classify-X --data new.csv --format tflite_int8
    python -m tasks.predict --model path/to/model.keras --data new.csv
    python -m tasks.predict --run-dir runs/image_classify-X --data 'photos/*.jpg' --format tflite

The output CSV has the input columns (for an image run: `file`), then `predicted_<target>` in
the user's label values (images: `predicted_class`, the class folder names), then one
`probability_<label>` column per class. Without `--output` it is written to stdout.

Rows are read as in training: columns are found by name (any order; other columns, the target
among them, are ignored and kept in the output), missing values are imputed, unseen categories
go to the out-of-vocabulary bucket. Images of any mode and size are converted and resized as in
training. A run directory is untrusted input: its files must stay inside it, schema.json is
checked, `.keras` files load in Keras safe mode, and each artifact must fit schema.json
(`tasks.engine.artifacts`). Every refusal is one `error:` line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import problems
from common.errors import InputError
from datasets.image_preprocessing import INPUT_NAME, ImageSchema
from datasets.tabular import TabularSchema, features_from_frame, read_csv
from tasks.cli import VERBOSE_HELP, ArgumentParser
from tasks.config import EXPORT_FORMATS
from tasks.engine import artifacts, native_logs


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="tasks.predict", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="a run directory written by a task")
    source.add_argument("--model", help="a .keras file (its run's schema.json is read if beside "
                        "it)")
    parser.add_argument("--data", required=True, help="CSV of rows to predict (the target column "
                        "may be absent); for an image run, an image file, a folder or a glob")
    parser.add_argument("--output", help="CSV file to write (default: stdout)")
    parser.add_argument("--format", choices=list(EXPORT_FORMATS), default="keras",
                        help="which artifact of the run to use (default: keras)")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    return parser


def _run(name: str, files: artifacts.RunFiles, features: dict[str, np.ndarray]) -> np.ndarray:
    """Loads the artifact (checked, `tasks.engine.artifacts`) and runs it on raw features."""
    from tasks.engine import inference  # TensorFlow loads only once the arguments are valid

    return inference.outputs_of(name, artifacts.load_artifact(name, files), features)


def predict_frame(frame: pd.DataFrame, files: artifacts.RunFiles, artifact: str,
                  source: str) -> pd.DataFrame:
    """Runs one artifact of a table task on `frame`; returns it with prediction columns added.

    Args:
        frame: The rows, as `read_csv` returns them.
        files: The run's checked files (`artifacts.locate`).
        artifact: The export format to run (`config.EXPORT_FORMATS`).
        source: The data's file name, for messages.
    """
    schema = files.schema
    if isinstance(schema, ImageSchema):
        raise InputError(f"that run is an image model; pass images with --data (a file, a folder "
                         f"or a glob), not the table {source}.")
    features = features_from_frame(frame, schema, source=source)
    return with_predictions(frame, schema, _run(artifact, files, features))


def predict_images(spec: str | Sequence[str | Path], files: artifacts.RunFiles,
                   artifact: str) -> pd.DataFrame:
    """Runs one artifact of an image task on image files; one row per file.

    Args:
        spec: A file, a folder, a glob pattern, or a list of image paths.
        files: The run's checked files (`artifacts.locate`).
        artifact: The export format to run.
    """
    from datasets.images import image_files, read_images

    schema = files.schema
    paths = (image_files(spec) if isinstance(spec, str | Path)
             else [Path(path) for path in spec])
    images = read_images(paths, tuple(schema.image_size), schema.channels)
    outputs = _run(artifact, files, {INPUT_NAME: images})
    return with_predictions(pd.DataFrame({"file": [str(path) for path in paths]}), schema,
                            outputs)


def predict(run_dir: str | Path, data: Any, artifact: str = "keras") -> pd.DataFrame:
    """Predictions of one artifact of a run, from Python (`tasks.RunResult.predict`).

    Args:
        run_dir: A finished run directory (checked as untrusted input, as by the CLI).
        data: Table runs: a DataFrame or a CSV path. Image runs: an image file, a folder, a
            glob pattern, or a list of image paths.
        artifact: The export format to run (`config.EXPORT_FORMATS`).

    Raises:
        InputError: A bad run directory, artifact or data.
    """
    files = artifacts.locate(Path(run_dir), None, artifact)
    if isinstance(files.schema, ImageSchema):
        return predict_images(data, files, artifact)
    if isinstance(data, pd.DataFrame):
        return predict_frame(data, files, artifact, source="the DataFrame")
    return predict_frame(read_csv(data), files, artifact, source=Path(data).name)


def with_predictions(frame: pd.DataFrame, schema: TabularSchema | ImageSchema,
                     outputs: np.ndarray) -> pd.DataFrame:
    """Adds `predicted_<target>` (user's label values) and `probability_<label>` columns."""
    result = frame.copy()
    name = f"predicted_{schema.target}"
    problem = problems.get(schema.problem)
    if not problem.classifies:
        result[name] = np.asarray(outputs).reshape(-1)
        return result
    if problem.positive_class:
        positive = np.asarray(outputs, dtype="float64").reshape(-1)
        probabilities = np.stack([1.0 - positive, positive], axis=1)
    else:
        probabilities = np.asarray(outputs, dtype="float64")
    labels = np.asarray(schema.labels, dtype=object)
    result[name] = labels[probabilities.argmax(axis=1)]
    for index, label in enumerate(schema.labels):
        result[f"probability_{label}"] = probabilities[:, index]
    return result


def _check_output(output: str | None, data: str) -> Path | None:
    """The `--output` file, refused before any work if it cannot be what the user wants."""
    if output is None:
        return None
    path = Path(output)
    if path.is_dir():
        raise InputError(f"--output '{path}' is a folder; pass a file name such as "
                         f"'{path / 'predictions.csv'}'.")
    if path.exists() and Path(data).exists() and path.resolve() == Path(data).resolve():
        raise InputError(f"--output '{path}' is the --data file itself; writing predictions "
                         "there would replace your data. Pass another file name.")
    return path


def _write(result: pd.DataFrame, output: Path | None) -> None:
    if output is None:
        result.to_csv(sys.stdout, index=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        result.to_csv(output, index=False)
    except OSError as error:
        raise InputError(f"could not write --output '{output}' ({error.strerror or error}). "
                         "Pass a file in a folder you can write to.") from None
    print(f"wrote {len(result)} predictions to {output}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for bad input)."""
    try:
        args = _parser().parse_args(argv)
        if args.verbose:
            native_logs.show()
        output = _check_output(args.output, args.data)
        files = artifacts.locate(Path(args.run_dir) if args.run_dir else None,
                                 Path(args.model) if args.model else None, args.format)
        if isinstance(files.schema, ImageSchema):
            result = predict_images(args.data, files, args.format)
        else:
            result = predict_frame(read_csv(args.data), files, args.format,
                                   source=Path(args.data).name)
        _write(result, output)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

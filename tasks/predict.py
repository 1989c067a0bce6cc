"""Predict with a trained run: new rows in, labels in your own values and probabilities out.

Examples:
    python -m tasks.predict --run-dir runs/binary_classify-X --data new.csv --output preds.csv
    python -m tasks.predict --run-dir runs/binary_classify-X --data new.csv --format tflite_int8
    python -m tasks.predict --model path/to/model.keras --data new.csv
    python -m tasks.predict --run-dir runs/image_classify-X --data 'photos/*.jpg' --format tflite

The output CSV has the input columns (for an image run: `file`), then `predicted_<target>` in
the user's label values (images: `predicted_class`, the class folder names), then one
`probability_<label>` column per class. Without `--output` it is written to stdout.
`.keras` files are always loaded in Keras safe mode.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from datasets.errors import InputError
from datasets.image_preprocessing import INPUT_NAME, ImageSchema
from datasets.tabular import TabularSchema, features_from_frame, read_csv
from tasks import native_logs
from tasks.cli import VERBOSE_HELP, ArgumentParser
from tasks.config import EXPORT_FORMATS


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


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.exists():
        raise InputError(f"{what} not found: '{path}'. Pass the run directory a task wrote "
                         "(it holds metrics.json, model.keras, schema.json and export/).")
    return json.loads(path.read_text())


def _load_schema(run_dir: Path) -> TabularSchema | ImageSchema:
    data = _read_json(run_dir / "schema.json", "schema.json")
    if data.get("kind") == "image":
        return ImageSchema.from_dict(data)
    return TabularSchema.from_dict(data)


def _artifact(run_dir: Path | None, model_file: Path | None, artifact: str) -> tuple[Path, Path]:
    """Checks the arguments; returns the run directory and the artifact's path."""
    if model_file is None and run_dir is None:
        raise InputError("pass --run-dir DIR or --model FILE.keras.")
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
        return model_file.parent, model_file
    if not run_dir.is_dir():
        raise InputError(f"run directory not found: '{run_dir}'. Pass a folder written by a task "
                         "run.")
    path = run_dir / EXPORT_FORMATS[artifact]
    if not path.exists():
        raise InputError(f"'{path}' not found: that run did not export the {artifact} format. "
                         f"Re-run the task with --export {artifact}, or pick a --format it "
                         "exported (listed in its metrics.json).")
    return run_dir, path


def predict_frame(frame: pd.DataFrame, run_dir: Path | None, model_file: Path | None,
                  artifact: str, source: str) -> pd.DataFrame:
    """Runs one artifact of a table task on `frame`; returns it with prediction columns added."""
    run_dir, path = _artifact(run_dir, model_file, artifact)
    schema = _load_schema(run_dir)
    if isinstance(schema, ImageSchema):
        raise InputError(f"that run is an image model; pass images with --data (a file, a folder "
                         f"or a glob), not the table {source}.")
    features = features_from_frame(frame, schema, source=source)
    from tasks import inference  # TensorFlow loads only once the arguments are valid

    return with_predictions(frame, schema, inference.artifact_outputs(artifact, path, features))


def predict_images(spec: str, run_dir: Path | None, model_file: Path | None,
                   artifact: str) -> pd.DataFrame:
    """Runs one artifact of an image task on image files; one row per file."""
    from datasets.images import image_files, read_images
    from tasks import inference

    run_dir, path = _artifact(run_dir, model_file, artifact)
    schema = _load_schema(run_dir)
    files = image_files(spec)
    images = read_images(files, tuple(schema.image_size), schema.channels)
    outputs = inference.artifact_outputs(artifact, path, {INPUT_NAME: images})
    return with_predictions(pd.DataFrame({"file": [str(file) for file in files]}), schema,
                            outputs)


def with_predictions(frame: pd.DataFrame, schema: TabularSchema | ImageSchema,
                     outputs: np.ndarray) -> pd.DataFrame:
    """Adds `predicted_<target>` (user's label values) and `probability_<label>` columns."""
    result = frame.copy()
    name = f"predicted_{schema.target}"
    if schema.problem == "regression":
        result[name] = np.asarray(outputs).reshape(-1)
        return result
    if schema.problem == "binary":
        positive = np.asarray(outputs, dtype="float64").reshape(-1)
        probabilities = np.stack([1.0 - positive, positive], axis=1)
    else:
        probabilities = np.asarray(outputs, dtype="float64")
    labels = np.asarray(schema.labels, dtype=object)
    result[name] = labels[probabilities.argmax(axis=1)]
    for index, label in enumerate(schema.labels):
        result[f"probability_{label}"] = probabilities[:, index]
    return result


def _is_image_run(run_dir: Path | None, model_file: Path | None) -> bool:
    folder = model_file.parent if model_file is not None else run_dir
    schema = folder / "schema.json" if folder is not None else None
    return bool(schema and schema.is_file()
                and json.loads(schema.read_text()).get("kind") == "image")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for bad input)."""
    try:
        args = _parser().parse_args(argv)
        if args.verbose:
            native_logs.show()
        run_dir = Path(args.run_dir) if args.run_dir else None
        model_file = Path(args.model) if args.model else None
        if _is_image_run(run_dir, model_file):
            result = predict_images(args.data, run_dir, model_file, args.format)
        else:
            result = predict_frame(read_csv(args.data), run_dir, model_file, args.format,
                                   source=Path(args.data).name)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        result.to_csv(args.output, index=False)
        print(f"wrote {len(result)} predictions to {args.output}", file=sys.stderr)
    else:
        result.to_csv(sys.stdout, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

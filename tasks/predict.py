"""Predict with a trained run: new rows in, labels in your own values and probabilities out.

Examples:
    python -m tasks.predict --run-dir runs/binary_classify-X --data new.csv --output preds.csv
    python -m tasks.predict --run-dir runs/binary_classify-X --data new.csv --format tflite_int8
    python -m tasks.predict --model path/to/model.keras --data new.csv

The output CSV has the input columns, then `predicted_<target>` in the user's label values, then
one `probability_<label>` column per class. Without `--output` it is written to stdout.
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
from datasets.tabular import TabularSchema, features_from_frame, read_csv
from tasks.cli import ArgumentParser
from tasks.config import EXPORT_FORMATS


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="tasks.predict", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="a run directory written by a task")
    source.add_argument("--model", help="a .keras file (its run's schema.json is read if beside "
                        "it)")
    parser.add_argument("--data", required=True, help="CSV of rows to predict (the target column "
                        "may be absent)")
    parser.add_argument("--output", help="CSV file to write (default: stdout)")
    parser.add_argument("--format", choices=list(EXPORT_FORMATS), default="keras",
                        help="which artifact of the run to use (default: keras)")
    return parser


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.exists():
        raise InputError(f"{what} not found: '{path}'. Pass the run directory a task wrote "
                         "(it holds metrics.json, model.keras, schema.json and export/).")
    return json.loads(path.read_text())


def _load_schema(run_dir: Path) -> TabularSchema:
    return TabularSchema.from_dict(_read_json(run_dir / "schema.json", "schema.json"))


def predict_frame(frame: pd.DataFrame, run_dir: Path | None, model_file: Path | None,
                  artifact: str, source: str) -> pd.DataFrame:
    """Runs one artifact on `frame` and returns the frame with prediction columns added."""
    from tasks import inference  # TensorFlow loads only once the arguments are valid

    if model_file is None and run_dir is None:
        raise InputError("pass --run-dir DIR or --model FILE.keras.")
    if model_file is not None:
        if not model_file.exists():
            raise InputError(f"model file not found: '{model_file}'. Pass an existing .keras "
                             "file.")
        if model_file.suffix != ".keras":
            raise InputError(f"--model takes a .keras file. Received: '{model_file}'. For a "
                             "SavedModel or TFLite file, pass --run-dir and --format.")
        run_dir = model_file.parent
        if artifact != "keras":
            raise InputError("--model runs the .keras file itself; use --run-dir with --format "
                             f"{artifact}.")
    if not run_dir.is_dir():
        raise InputError(f"run directory not found: '{run_dir}'. Pass a folder written by a task "
                         "run.")
    schema = _load_schema(run_dir)
    features = features_from_frame(frame, schema, source=source)
    path = model_file or run_dir / EXPORT_FORMATS[artifact]
    if not path.exists():
        raise InputError(f"'{path}' not found: that run did not export the {artifact} format. "
                         f"Re-run the task with --export {artifact}, or pick a --format it "
                         "exported (listed in its metrics.json).")
    outputs = inference.artifact_outputs(artifact, path, features)
    return with_predictions(frame, schema, outputs)


def with_predictions(frame: pd.DataFrame, schema: TabularSchema,
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


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for bad input)."""
    try:
        args = _parser().parse_args(argv)
        frame = read_csv(args.data)
        result = predict_frame(frame, Path(args.run_dir) if args.run_dir else None,
                               Path(args.model) if args.model else None, args.format,
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

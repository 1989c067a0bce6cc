"""A run's `schema.json`, read as untrusted input: every field checked before it is used.

`schema.json` tells `tasks.predict` the feature columns (names, kinds, model input names) or the
image size and channels, the problem and the class labels. A damaged or hand-edited file would
otherwise surface as a KeyError, a TypeError or a wrong answer deep inside prediction; here each
problem is one `InputError` naming the file and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from common import problems
from common.errors import InputError
from datasets.image_preprocessing import INPUT_NAME, ImageSchema
from datasets.tabular import TabularSchema

RESTORE_HINT = "Restore the run directory's files, or re-run the task that wrote it."
MAX_SCHEMA_BYTES = 16 * 1024 * 1024
# Larger than any image model here trains on; a bound keeps a tampered size from allocating
# (height x width x channels) bytes per image.
MAX_IMAGE_SIDE = 4096
PROBLEMS = problems.NAMES
_INPUT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def read_schema(path: Path) -> TabularSchema | ImageSchema:
    """Reads and checks a run's `schema.json`: what the model expects.

    Args:
        path: The file, already resolved inside its run directory (`tasks.engine.artifacts`).

    Raises:
        InputError: The file is not a regular file, too large, not JSON, or not a schema this
            project writes; the message names the file and the field.
    """
    if not path.is_file():
        raise InputError(f"'{path}' is not a regular file. {RESTORE_HINT}")
    if path.stat().st_size > MAX_SCHEMA_BYTES:
        raise InputError(f"'{path}' is {path.stat().st_size:,} bytes, far more than any "
                         f"schema.json a run writes. {RESTORE_HINT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"'{path}' is not valid JSON ({reason}). {RESTORE_HINT}") from None
    problem = _schema_problem(data)
    if problem:
        raise InputError(f"'{path}' is not a schema this project writes: {problem}. "
                         f"{RESTORE_HINT}")
    if data.get("kind") == "image":
        return ImageSchema.from_dict(data)
    return TabularSchema.from_dict(data)


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_label(value: Any) -> bool:
    return isinstance(value, str | int | float) and value == value  # NaN is not a label


def _is_count(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _schema_problem(data: Any) -> str | None:
    """What is wrong with a parsed `schema.json`, or None."""
    if not isinstance(data, dict):
        return f"expected a JSON object, found {type(data).__name__}"
    for key in ("target", "problem", "labels"):
        if key not in data:
            return f"the key '{key}' is missing"
    if not _is_text(data["target"]):
        return f"'target' must be a column name, found {data['target']!r}"
    if data["problem"] not in PROBLEMS:
        return f"'problem' must be one of {', '.join(PROBLEMS)}, found {data['problem']!r}"
    labels = data["labels"]
    if not isinstance(labels, list) or not all(map(_is_label, labels)):
        return "'labels' must be a list of class values"
    if not problems.get(data["problem"]).accepts_classes(len(labels)):
        return f"a {data['problem']} problem cannot have {len(labels)} labels"
    if len({str(label) for label in labels}) != len(labels):
        return "'labels' repeats a class"
    if data.get("kind") == "image":
        return _image_problem(data)
    if "kind" in data:
        return f"'kind' must be 'image' or absent, found {data['kind']!r}"
    return _columns_problem(data.get("columns"))


def _image_problem(data: dict[str, Any]) -> str | None:
    size = data.get("image_size")
    if not (isinstance(size, list) and len(size) == 2
            and all(_is_count(side, 1, MAX_IMAGE_SIDE) for side in size)):
        return (f"'image_size' must be [height, width], whole numbers from 1 to "
                f"{MAX_IMAGE_SIDE}, found {size!r}")
    if data.get("channels") not in (1, 3) or isinstance(data.get("channels"), bool):
        return f"'channels' must be 1 or 3, found {data.get('channels')!r}"
    if data["problem"] != problems.IMAGE_PROBLEM.name or not all(map(_is_text, data["labels"])):
        return (f"an image model's 'problem' is {problems.IMAGE_PROBLEM.name} and its labels are "
                "class names")
    return None


def _columns_problem(columns: Any) -> str | None:
    if not isinstance(columns, list) or not columns:
        return "'columns' must be a non-empty list of feature columns"
    names: set[str] = set()
    inputs: set[str] = set()
    for index, column in enumerate(columns):
        if not isinstance(column, dict) or set(column) != {"name", "kind", "input_name"}:
            return (f"column {index + 1} must be an object with exactly the keys name, kind and "
                    "input_name")
        if not _is_text(column["name"]) or column["name"] in names:
            return f"column {index + 1} has a missing or repeated name {column['name']!r}"
        if column["kind"] not in ("numeric", "categorical"):
            return (f"column '{column['name']}' has kind {column['kind']!r}; it must be numeric "
                    "or categorical")
        name = column["input_name"]
        if not isinstance(name, str) or not _INPUT_NAME.fullmatch(name) or name.lower() in inputs:
            return f"column '{column['name']}' has an invalid or repeated input_name {name!r}"
        names.add(column["name"])
        inputs.add(name.lower())
    return None


def expected_signature(schema: TabularSchema | ImageSchema
                       ) -> tuple[dict[str, tuple[tuple[int, ...], str]], int]:
    """The inputs (name -> shape without the batch, dtype) and output width a schema implies."""
    if isinstance(schema, ImageSchema):
        inputs = {INPUT_NAME: ((*schema.image_size, schema.channels), "uint8")}
        return inputs, len(schema.labels)
    inputs = {column.input_name: ((1,), "float32" if column.kind == "numeric" else "string")
              for column in schema.columns}
    return inputs, problems.get(schema.problem).output_units(len(schema.labels))

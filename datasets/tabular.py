"""Tabular data: read a CSV, validate it against the problem, infer a schema, split it.

Validation happens once, here, where user data enters the library: every problem found is an
`InputError` whose message names the file, the column, the value and the fix.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from common import problems
from common.errors import InputError
from common.problems import Problem
from datasets.csv_files import read_csv  # noqa: F401  (re-exported: its home before)
from datasets.frame_checks import (
    check_finite,
    check_not_truth_values,
    first_non_number,
    line_hint,
    missing_columns_error,
    parse_numbers,
)

# A text column whose non-missing values are at least this fraction numbers is a numeric column
# with junk in it (an error that names the first bad value), not a categorical column.
NUMERIC_JUNK_THRESHOLD = 0.9
# Missing text values become this category. (Not "": Keras drops an empty token when it saves a
# StringLookup vocabulary, so "" would change meaning after a reload.)
MISSING_CATEGORY = "[missing]"
POSITIVE_LABEL_NAMES = ("1", "1.0", "yes", "y", "true", "t", "positive", "pos")
MIN_ROWS_PER_CLASS = 3


@dataclass
class Column:
    """One feature column.

    Attributes:
        name: The column name in the user's data.
        kind: `"numeric"` or `"categorical"`.
        input_name: The name of the model input for this column (the column name made safe for
            SavedModel signatures and TFLite: letters, digits and `_`).
    """

    name: str
    kind: str
    input_name: str


@dataclass
class TabularSchema:
    """What the model expects: feature columns, their kinds, the target and its labels.

    Attributes:
        target: Target column name.
        problem: `"binary"`, `"multiclass"` or `"regression"`.
        columns: Feature columns in the order of the user's data.
        labels: For classification, the class values in the user's own form; the index in this
            list is the class id the model predicts. For binary, `labels[1]` is the positive class.
    """

    target: str
    problem: str
    columns: list[Column]
    labels: list[Any] = field(default_factory=list)

    @property
    def numeric(self) -> list[str]:
        """Names of the numeric feature columns."""
        return [c.name for c in self.columns if c.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        """Names of the categorical feature columns."""
        return [c.name for c in self.columns if c.kind == "categorical"]

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TabularSchema:
        """Rebuilds a schema written by `to_dict`."""
        columns = [Column(**column) for column in data["columns"]]
        return cls(data["target"], data["problem"], columns, list(data.get("labels", [])))


@dataclass
class TabularSplits:
    """Train / validation / test frames of one dataset, with its schema."""

    name: str
    schema: TabularSchema
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def warn(message: str) -> None:
    """Prints a one-line warning about the user's data on stderr."""
    print(f"warning: {message}", file=sys.stderr)


def is_pattern(data: str) -> bool:
    """Whether `--data` is a file pattern (has `*`, `?` or `[`) rather than one path."""
    return any(character in data for character in "*?[")


def streams(data: str, stream: bool = False) -> bool:
    """Whether `--data` is streamed (`datasets/streaming.py`) rather than read into memory.

    A pattern that is not an existing file streams, and so does anything with `--stream`
    (`DataConfig.stream`). An existing file whose name happens to hold `[` or `*` is that file.
    """
    return stream or (is_pattern(data) and not Path(data).is_file())


def _safe_input_name(name: str, taken: set[str]) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]", "_", name.strip()) or "column"
    if not safe[0].isalpha():
        safe = f"c_{safe}"
    candidate, index = safe, 1
    while candidate.lower() in taken:
        index += 1
        candidate = f"{safe}_{index}"
    taken.add(candidate.lower())
    return candidate


def _numeric_fraction(series: pd.Series) -> float:
    present = series.dropna()
    if present.empty:
        return 0.0
    return float(pd.to_numeric(present, errors="coerce").notna().mean())


def _category_strings(series: pd.Series) -> np.ndarray:
    """Turns a column into category strings; missing values become `MISSING_CATEGORY`.

    Integral floats print as integers, so `3` and `3.0` (pandas reads a number column with a
    missing value as floats) are the same category.
    """

    def as_text(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
            return MISSING_CATEGORY
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value).strip()

    return np.array([as_text(value) for value in series.tolist()], dtype=object)


def _label_value(value: Any) -> Any:
    """A label as a plain JSON-ready Python value (numpy scalars unwrapped, 1.0 -> 1)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def infer_schema(
    frame: pd.DataFrame,
    target: str,
    problem: str,
    source: str = "the data",
    categorical: list[str] | tuple[str, ...] = (),
    positive_label: Any = None,
    max_classes: int | None = None,
) -> TabularSchema:
    """Infers feature kinds and labels, and checks the data fits the problem.

    Args:
        frame: The data, features and target.
        target: Name of the target column.
        problem: A name in `common.problems.NAMES`.
        source: The file or dataset name, used in messages.
        categorical: Columns to treat as categories even if they hold numbers.
        positive_label: For binary problems, the label of the positive class; by default a value
            like `1`, `yes` or `true`, else the second label in sorted order.
        max_classes: For multiclass problems, the most classes allowed.

    Returns:
        The schema.

    Raises:
        InputError: For a missing target column, a target that does not fit the problem, a numeric
            column with non-numeric values, or no feature columns.
        ValueError: For an unknown problem.
    """
    spec = problems.get(problem)
    if target not in frame.columns:
        raise InputError(f"target column '{target}' is not in {source}; its columns are: "
                         f"{', '.join(map(str, frame.columns))}. Pass --target with one of them.")
    unknown = [name for name in categorical if name not in frame.columns or name == target]
    if unknown:
        raise InputError(f"--categorical names {', '.join(unknown)}, which is not a feature column "
                         f"of {source}; its columns are: {', '.join(map(str, frame.columns))}.")
    columns: list[Column] = []
    taken: set[str] = set()
    for name in frame.columns:
        if name == target:
            continue
        series = frame[name]
        if series.isna().all():
            warn(f"column '{name}' of {source} has no values; it is ignored.")
            continue
        present = series.dropna()
        if name in categorical or series.dtype == bool or present.map(
                lambda value: isinstance(value, bool | np.bool_)).all():
            kind = "categorical"
        elif pd.api.types.is_numeric_dtype(series.dtype) or _numeric_fraction(series) == 1.0:
            kind = "numeric"
        elif _numeric_fraction(series) >= NUMERIC_JUNK_THRESHOLD:
            position, value, count = first_non_number(series)
            raise InputError(
                f"column '{name}' of {source} holds numbers, but {value!r} at "
                f"{line_hint(position, source)} is not a number ({count} such value"
                f"{'s' if count > 1 else ''}). Fix or blank out those values, or pass "
                f"--categorical {name} to treat the column as categories."
            )
        else:
            kind = "categorical"
        if kind == "numeric":
            check_finite(series, f"column '{name}' of {source}", source)
        columns.append(Column(name=name, kind=kind, input_name=_safe_input_name(name, taken)))
    if frame[target].isna().all():
        raise InputError(f"target column '{target}' of {source} has no values. Fill it in, or "
                         "pass --target with another column.")
    if not columns:
        raise InputError(f"{source} has no feature columns besides the target '{target}'. Add the "
                         "columns the model should learn from.")
    labels = _labels_for(frame[target].dropna(), target, spec, source, positive_label,
                         max_classes)
    if not spec.classifies:
        check_finite(frame[target], f"target '{target}' of {source}", source)
    return TabularSchema(target=target, problem=problem, columns=columns, labels=labels)


def _label_order(label: Any) -> tuple[int, float, str]:
    """Sorts numbers numerically (2 before 10) and text alphabetically, numbers first."""
    if isinstance(label, int | float) and not isinstance(label, bool):
        return (0, float(label), "")
    return (1, 0.0, str(label))


def _labels_for(
    values: pd.Series,
    target: str,
    problem: Problem,
    source: str,
    positive_label: Any,
    max_classes: int | None,
) -> list[Any]:
    if not problem.classifies:
        if _numeric_fraction(values) < 1.0:
            position, value, _ = first_non_number(values)
            raise InputError(f"regression needs a numeric target, but target '{target}' of "
                             f"{source} holds {value!r}. Pick a numeric target, or use a "
                             "classification task for categories.")
        return []
    labels = sorted({_label_value(value) for value in values.tolist()}, key=_label_order)
    shown = ", ".join(repr(label) for label in labels[:10]) + (", ..." if len(labels) > 10 else "")
    if len(labels) < 2:
        raise InputError(f"target '{target}' of {source} has one class ({shown}) in "
                         f"{len(values)} rows; a classifier needs examples of at least two "
                         "classes. Check the --target column or add rows of the other class.")
    if problem.positive_class:
        if len(labels) > problem.max_classes:
            raise InputError(f"target '{target}' of {source} has {len(labels)} classes ({shown}); "
                             "binary classification needs exactly two. For more classes use "
                             "python -m tasks.multiclass_classify.")
        return _order_binary(labels, positive_label, target)
    if max_classes is not None and len(labels) > max_classes:
        raise InputError(f"target '{target}' of {source} has {len(labels)} classes in "
                         f"{len(values)} rows, more than the {max_classes} this data can support "
                         "(each class needs rows in train, validation and test). Check the "
                         "--target column, or merge rare classes.")
    return labels


def _order_binary(labels: list[Any], positive_label: Any, target: str) -> list[Any]:
    if positive_label is not None:
        matches = [label for label in labels if str(label) == str(positive_label)]
        if not matches:
            raise InputError(f"positive label {positive_label!r} is not a value of target "
                             f"'{target}' (values: {', '.join(map(repr, labels))}). Pass one of "
                             "them.")
        positive = matches[0]
    else:
        named = [label for label in labels if str(label).strip().lower() in POSITIVE_LABEL_NAMES]
        positive = named[0] if len(named) == 1 else labels[1]
    return [label for label in labels if label != positive] + [positive]


def encode_labels(values: pd.Series, schema: TabularSchema, source: str = "the data") -> np.ndarray:
    """Maps target values to class ids (classification) or float32 values (regression).

    Raises:
        InputError: If a value is not one of the classes seen in training.
    """
    if not problems.get(schema.problem).classifies:
        return parse_numbers(values, f"target '{schema.target}' of {source}", source,
                              "Fix or remove those rows.")
    index = {str(label): position for position, label in enumerate(schema.labels)}
    mapped = [index.get(str(_label_value(value))) for value in values.tolist()]
    unknown = sorted({str(_label_value(value)) for value, code in zip(values, mapped, strict=True)
                      if code is None})
    if unknown:
        raise InputError(f"target '{schema.target}' of {source} has classes not seen in training: "
                         f"{', '.join(unknown)} (training classes: "
                         f"{', '.join(map(str, schema.labels))}). Remove those rows or add them "
                         "to the training data.")
    return np.asarray(mapped, dtype="int32")


def features_from_frame(
    frame: pd.DataFrame, schema: TabularSchema, source: str = "the data"
) -> dict[str, np.ndarray]:
    """Turns the feature columns of `frame` into the model's raw inputs.

    Columns are found by name: their order does not matter, and other columns (the target
    among them) are ignored. Numeric columns become float32 arrays of shape (rows, 1) with NaN
    for missing values, which the model imputes as in training; categorical columns become
    object arrays of strings with `MISSING_CATEGORY` for missing values (a category not seen
    in training goes to the lookup's out-of-vocabulary bucket, as in training).

    Raises:
        InputError: If a feature column is absent (the message suggests a close match among
            the other columns, and lists the expected ones), or a numeric column holds text,
            a truth value, or a number that is infinite or beyond float32's range (the message
            names the column, the value and its line).
    """
    missing = [column.name for column in schema.columns if column.name not in frame.columns]
    if missing:
        raise missing_columns_error(frame, schema, missing, source)
    features: dict[str, np.ndarray] = {}
    for column in schema.columns:
        series = frame[column.name]
        if column.kind == "numeric":
            what = f"column '{column.name}' of {source}"
            check_not_truth_values(series, what, source)
            check_finite(series, what, source)  # before float32, which would make inf of it
            features[column.input_name] = parse_numbers(
                series, what, source, "Fix or blank out those values.").reshape(-1, 1)
        else:
            features[column.input_name] = _category_strings(series).reshape(-1, 1)
    return features


def drop_missing_targets(frame: pd.DataFrame, target: str, source: str) -> pd.DataFrame:
    """Drops rows with no target value, with a warning that says how many."""
    missing = frame[target].isna()
    if missing.any():
        warn(f"dropped {int(missing.sum())} row(s) of {source} with no value in target "
             f"'{target}'.")
        frame = frame.loc[~missing]
    return frame.reset_index(drop=True)


def split_frame(
    frame: pd.DataFrame,
    schema: TabularSchema,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    source: str = "the data",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Splits rows into train / validation / test with scikit-learn, seeded and stratified.

    Classification splits are stratified by the target so each split keeps the class balance.
    A `test_fraction` of 0 returns an empty test frame (used when a separate test file is given).

    Raises:
        InputError: If there are too few rows (or too few of some class) to split.
    """
    classify = problems.get(schema.problem).classifies
    parts = 3 if test_fraction > 0 else 2
    counts = frame[schema.target].map(lambda v: str(_label_value(v))).value_counts()
    smallest = counts.min() if classify else len(frame)
    if len(frame) < 5 * parts or smallest < parts:
        detail = (f"; class '{counts.idxmin()}' has {smallest}" if classify else "")
        raise InputError(
            f"{source} has {len(frame)} rows{detail}: too few to split into "
            f"{'train, validation and test' if parts == 3 else 'train and validation'}. It needs "
            f"at least {5 * parts} rows{f' and {parts} of each class' if classify else ''}. Add "
            "rows" + (", or pass --test-data with a separate test file." if parts == 3 else ".")
        )
    strata = frame[schema.target].map(lambda v: str(_label_value(v))) if classify else None
    try:
        if test_fraction > 0:
            rest, test = train_test_split(frame, test_size=test_fraction, random_state=seed,
                                          stratify=strata)
            strata = strata.loc[rest.index] if classify else None
        else:
            rest, test = frame, frame.iloc[0:0]
        train, validation = train_test_split(rest, test_size=validation_fraction,
                                             random_state=seed, stratify=strata)
    except ValueError as error:
        raise InputError(f"{source} has too few rows to split ({len(frame)} rows, "
                         f"{str(error).splitlines()[0]}). Add rows, lower the validation/test "
                         "fractions, or pass --test-data.") from None
    return (train.reset_index(drop=True), validation.reset_index(drop=True),
            test.reset_index(drop=True))

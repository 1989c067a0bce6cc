"""Checks of a table's values and columns against what the model takes, as one-line errors.

Numbers must be numbers, finite, and small enough for float32 arithmetic (`MAX_MAGNITUDE`);
truth values are not numbers; a feature column missing at prediction time is named with the
columns found and a likely rename. `datasets.tabular` (loading, schema inference, predict-time
features) and the streamed path (`datasets.stream_text`, `datasets.stream_scan`) use them.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from common import problems
from common.errors import InputError

if TYPE_CHECKING:
    from datasets.tabular import TabularSchema

# The model computes in float32 (largest 3.4e38), where normalization and the squared-error loss
# square the numbers: a regression target of 1e19 made every prediction NaN and the run crash
# (1e18 trained), and a variance sums squares over all rows. 1e15 keeps the sum of squares of
# 300 million rows finite. pandas reads "inf" and "1e400" as infinities: refused too.
MAX_MAGNITUDE = 1e15
NOT_FINITE_FIX = ("Blank those values out (missing values are imputed), or rescale the column "
                  "(e.g. log, or thousands).")


def first_non_number(series: pd.Series) -> tuple[int, Any, int]:
    """Returns (position, value, count) of values that are present but not numbers."""
    parsed = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & parsed.isna()
    positions = np.flatnonzero(bad.to_numpy())
    return int(positions[0]), series.iloc[positions[0]], len(positions)


def check_finite(series: pd.Series, what: str, source: str, fix: str = NOT_FINITE_FIX) -> None:
    """Refuses infinities and numbers larger than `MAX_MAGNITUDE` in a column of numbers.

    Args:
        series: A numeric column (text in it is ignored here; missing values are fine).
        what: The column, for the message (e.g. `column 'age' of my.csv`).
        source: The file or dataset name, for the line hint.
        fix: What the user should do.

    Raises:
        InputError: Naming the first such value and its line.
    """
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        positions = np.flatnonzero(np.abs(numbers) > MAX_MAGNITUDE)
    if len(positions):
        count, value = len(positions), series.iloc[positions[0]]
        raise InputError(
            f"{what} holds {value.item() if isinstance(value, np.generic) else value!r} at "
            f"{line_hint(int(positions[0]), source)}: numbers must be finite and at most "
            f"{MAX_MAGNITUDE:.0e} in size, as the model computes in float32 and squares them "
            f"({count} such value{'s' if count > 1 else ''}). {fix}")


def check_numbers(frame: pd.DataFrame, schema: TabularSchema, source: str) -> None:
    """Runs `check_finite` on the numeric feature columns (and a regression target) of `frame`.

    For rows loaded after the schema was inferred, such as `--test-data`.
    """
    for column in schema.columns:
        if column.kind == "numeric" and column.name in frame.columns:
            check_finite(frame[column.name], f"column '{column.name}' of {source}", source)
    if not problems.get(schema.problem).classifies and schema.target in frame.columns:
        check_finite(frame[schema.target], f"target '{schema.target}' of {source}", source)


def line_hint(position: int, source: str) -> str:
    """Where data row `position` is: a CSV's line (its header is line 1), else a row number."""
    return f"line {position + 2} of {source}" if source.endswith(".csv") else f"row {position + 1}"


def parse_numbers(series: pd.Series, what: str, source: str, fix: str) -> np.ndarray:
    """float32 values of `series` (NaN for missing); an InputError names the first non-number."""
    parsed = pd.to_numeric(series, errors="coerce")
    if (series.notna() & parsed.isna()).any():
        position, value, count = first_non_number(series)
        raise InputError(f"{what} must hold numbers, but {value!r} at "
                         f"{line_hint(position, source)} is not a number ({count} such "
                         f"value{'s' if count > 1 else ''} in all). {fix}")
    return parsed.to_numpy(dtype="float32")


def _close_matches(name: str, candidates: list[str]) -> list[str]:
    """Columns of the user's data that look like `name` (another case, spacing or spelling)."""
    folded = {re.sub(r"[\W_]+", "", str(candidate)).lower(): str(candidate)
              for candidate in candidates}
    same = folded.get(re.sub(r"[\W_]+", "", name).lower())
    if same is not None:
        return [same]
    return difflib.get_close_matches(name, [str(candidate) for candidate in candidates], n=1,
                                     cutoff=0.75)


def missing_columns_error(frame: pd.DataFrame, schema: TabularSchema, missing: list[str],
                           source: str) -> InputError:
    """Names the absent feature columns, a likely rename of each, and the columns expected."""
    expected = ", ".join(column.name for column in schema.columns)
    found = [str(name) for name in frame.columns]
    if found == [schema.target]:
        return InputError(f"{source} has only the target column '{schema.target}'; predictions "
                          f"need the feature columns the model was trained on: {expected}.")
    unused = [name for name in found if name not in {column.name for column in schema.columns}]
    hints = [f"'{match}' for '{name}'" for name in missing
             for match in _close_matches(name, unused)]
    hint = f" Rename {', '.join(hints)} if that is the same column." if hints else ""
    return InputError(f"{source} lacks the feature column{'s' if len(missing) > 1 else ''} "
                      f"{', '.join(missing)} that the model was trained on; its columns are: "
                      f"{', '.join(found)}.{hint} The model takes: {expected}.")


def check_not_truth_values(series: pd.Series, what: str, source: str) -> None:
    """Refuses True/False in a column of numbers (pandas would read them as 1 and 0)."""
    present = series.dropna()
    flags = present.map(lambda value: isinstance(value, bool | np.bool_))
    if len(present) and flags.any():
        position = int(np.flatnonzero(series.notna().to_numpy())[np.argmax(flags.to_numpy())])
        raise InputError(f"{what} must hold numbers, but {series.iloc[position]} at "
                         f"{line_hint(position, source)} is a truth value. Write the numbers "
                         "the model was trained on, or blank the values out.")

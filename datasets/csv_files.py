"""Reading one CSV file into a DataFrame, with every way it can fail as a one-line `InputError`.

What is accepted, beyond pandas' defaults (the same for training, `--test-data` and prediction):

* The delimiter is a comma, unless the header line holds no comma (outside quotes) and holds a
  `;`, a tab or a `|`: then the most frequent of those. (Spreadsheets in many locales save `;`
  files; looking at the header keeps pandas' fast C parser, which `sep=None` sniffing does not.)
* In a `;` file, a text column whose every value is a number written with a decimal comma
  (`3,5`, `-0,25`, `12`) is read as numbers, as a spreadsheet wrote them.
* A UTF-8 byte-order mark is ignored; header names are stripped of surrounding spaces. An empty
  header name becomes `Unnamed: N` (pandas' name for column N). A delimiter ending each row is
  ignored (pandas would have made the first column the index and shifted every column).

Refused, with a message that says what was found and how to fix it: a missing file, a folder, an
empty file, a header without rows, a text encoding other than UTF-8, rows with more values than
the header has names, an unterminated quote, duplicate header names, and (with a memory limit) a
file too large to read into memory, for which `--stream` is the answer.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd

from common.errors import InputError
from datasets.limits import check_csv_fits_memory

OTHER_DELIMITERS = (";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
HEADER_BYTES = 64 * 1024  # enough for any header line a person writes
DECIMAL_COMMA = re.compile(r"[+-]?(\d+|\d*,\d+)")


def detect_delimiter(path: Path) -> str:
    """The file's delimiter: `,` unless its header line has no comma and has `;`, tab or `|`.

    Example:
        >>> detect_delimiter(Path("prices.csv"))  # header "name;price"
        ';'
    """
    with path.open("rb") as file:
        head = file.read(HEADER_BYTES).decode("utf-8", errors="replace").lstrip("\ufeff")
    # Quoted text may hold delimiters and line breaks: drop it before looking at the first line.
    unquoted = re.sub(r'"[^"]*"', "", head).lstrip("\r\n")
    header = unquoted.splitlines()[0] if unquoted.strip() else ""
    if "," in header:
        return ","
    counts = {delimiter: header.count(delimiter) for delimiter in OTHER_DELIMITERS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _header_names(path: Path, delimiter: str) -> list[str]:
    """The header's names as written (pandas renames duplicates to `x.1`), stripped."""
    first = pd.read_csv(path, sep=delimiter, header=None, nrows=1, dtype=str,
                        keep_default_na=False, skipinitialspace=True)
    return [str(name).strip() for name in first.iloc[0].tolist()] if len(first) else []


def _check_unique(names: list[str], path: Path) -> None:
    repeated = [name for name, count in Counter(names).items() if count > 1 and name]
    if repeated:
        shown = ", ".join(f"'{name}' ({names.count(name)} times)" for name in repeated)
        raise InputError(f"data file '{path}' has duplicate column names in its header: {shown}. "
                         "Rename the columns so each name is used once.")


def _parse_error(path: Path, error: Exception, delimiter: str) -> InputError:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", detail)
    if fields:
        expected, line, seen = fields.groups()
        return InputError(f"line {line} of '{path}' has {seen} fields, but the header has "
                          f"{expected} ({DELIMITER_NAMES[delimiter]}-separated). Fix that row, or "
                          "quote values that contain a delimiter.")
    if "EOF inside string" in detail or "EOF while parsing" in detail:
        return InputError(f"'{path}' ends inside a quoted value ({detail}): a quote (\") is "
                          "never closed. Close or remove it.")
    return InputError(f"could not parse '{path}' as CSV ({detail}). Check that it is a "
                      f"{DELIMITER_NAMES[delimiter]}-separated text file with a header row.")


def _not_utf8(path: Path, error: UnicodeDecodeError) -> InputError:
    byte = error.object[error.start:error.start + 1].hex() if error.object else "?"
    return InputError(f"data file '{path}' is not UTF-8 text (byte 0x{byte} cannot be decoded). "
                      "Save it as UTF-8 (in Excel: 'CSV UTF-8'), or convert it, e.g. with iconv "
                      "-f latin1 -t utf-8.")


def _decimal_commas_to_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns that are all decimal-comma numbers (`3,5`) become float columns."""
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series):
            continue
        present = series.dropna().astype(str).str.strip()
        if (present.empty or not present.str.contains(",", regex=False).any()
                or not present.str.fullmatch(DECIMAL_COMMA).all()):
            continue
        numbers = present.str.replace(",", ".", regex=False).astype(float)
        frame[name] = numbers.reindex(series.index).astype(float)
    return frame


def read_csv(path: str | Path, max_memory_fraction: float | None = None) -> pd.DataFrame:
    """Reads a CSV file into a DataFrame, turning every way it can fail into an `InputError`.

    Args:
        path: Path to a CSV file with a header row (delimiter rules: module docstring).
        max_memory_fraction: If given, a file whose in-memory estimate exceeds this share of
            the available memory is refused before reading (`datasets.limits`).

    Returns:
        The data, at least one row, header names stripped.

    Raises:
        InputError: For a missing, empty, too large or malformed file (module docstring).

    Example:
        >>> frame = read_csv("my.csv", max_memory_fraction=0.8)
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"data file not found: '{path}'. Pass the path of an existing CSV file "
                         "or a dataset name.")
    if path.is_dir():
        raise InputError(f"expected a CSV file but '{path}' is a folder. Pass the path of a CSV "
                         f"file, or a pattern such as '{path / '*.csv'}' to stream its shards.")
    if max_memory_fraction is not None:
        check_csv_fits_memory(path, max_memory_fraction)
    delimiter = detect_delimiter(path)
    try:
        names = _header_names(path, delimiter)
        with warnings.catch_warnings():
            # pandas would make the first column the index when every row has more fields than
            # the header, shifting every column by one; index_col=False drops an empty trailing
            # field (a delimiter at the end of each row) and warns if it would drop values.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, sep=delimiter, skipinitialspace=True, index_col=False)
    except pd.errors.ParserWarning:
        raise InputError(f"rows of '{path}' have more fields than the {len(names)} names of its "
                         f"header ({DELIMITER_NAMES[delimiter]}-separated), so their values would "
                         "land in the wrong columns. Name every column in the header, or remove "
                         "the extra values.") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"data file '{path}' is empty. It needs a header row and at least one "
                         "data row.") from None
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error) from None
    except (pd.errors.ParserError, csv.Error, ValueError, OverflowError) as error:
        raise _parse_error(path, error, delimiter) from None
    _check_unique(names, path)
    if frame.empty:
        raise InputError(f"data file '{path}' has a header ({', '.join(map(str, frame.columns))}) "
                         "but no data rows. Add rows below the header.")
    frame.columns = [str(column).strip() for column in frame.columns]
    return _decimal_commas_to_numbers(frame) if delimiter == ";" else frame

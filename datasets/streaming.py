"""Data larger than memory: CSV shards streamed through `tf.data`, never loaded whole.

`--data 'shards/*.csv'` (any pattern `tf.io.gfile.glob` understands, local or remote) or
`--stream --data big.csv` (`datasets.tabular.streams` decides) trains on every row while memory
holds only bounded samples:

* **Shards.** The matched files, in sorted order, must share one header row.
* **Splits.** Every data line goes to train, validation or test by a keyed hash of its raw text
  (`assign_splits`, `BUCKETS` buckets, fractions from `DataConfig`, the run's seed as the key).
  The assignment does not depend on the order, sharding or number of files, so every run, every
  epoch and every worker agrees; identical lines always land in the same split. It is not
  stratified: on large data the class balance of each split is the data's, up to sampling noise.
* **Samples in memory.** One scan reads lines in turn from up to `SAMPLE_CYCLE` shards until it
  has the first `sample_rows` training rows and the first `held_out_rows` rows of validation and
  of test. Schema inference, labels and the preprocessing statistics (normalization, missing
  values, vocabularies) come from those rows, as do the scikit-learn baselines and the int8
  calibration; validation (early stopping) and test (scores, export parity) are those held-out
  rows. `--test-data` replaces the test split with the first `held_out_rows` rows of its file(s).
* **One counting pass.** Before training, every line is decoded and checked once
  (`count_rows`): rows per split (steps per epoch come from the training count), rows without a
  target (dropped with a warning, as in memory), numbers that are not numbers and classes the
  sample never saw (both errors, before any training: raise `data.sample_rows` to let the sample
  see a rare class).
* **Training.** Each epoch streams every training row: shards reshuffled, read interleaved,
  lines shuffled in a `SHUFFLE_LINES` buffer, batched, decoded and put through the adapted Keras
  preprocessing inside `Dataset.map`, prefetched (`TrainingStream`). Under a multi-worker
  strategy each worker reads a disjoint share of the files (`worker_share`).

Values are read the way `pandas.read_csv` reads them (fields stripped, pandas' missing-value
markers such as empty, `NA`, `null` or `nan` are missing, `3.0` in a category is `3`), through
one function (`canonical_text`) that the sample and the stream share. A line is one row: quoted
fields may hold commas and quotes, not line breaks.
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from datasets.errors import InputError
from datasets.tabular import (
    MISSING_CATEGORY,
    TabularSchema,
    TabularSplits,
    drop_missing_targets,
    infer_schema,
    is_pattern,
    warn,
)

# Lines are hashed into this many buckets; split fractions are rounded to 1 / BUCKETS.
BUCKETS = 10_000
# Second half of the SipHash key of `assign_splits` (the first half is the run's seed).
HASH_SALT = 0x5EED
SPLITS = ("train", "validation", "test")
SCAN_BATCH = 4096  # lines per step of the scans and of the line filter
SAMPLE_CYCLE = 16  # shards the sample scan reads in turn
TRAIN_CYCLE = 8  # shards a training epoch reads in turn
SHUFFLE_LINES = 10_000  # training lines in the shuffle buffer (a few MB of text)
# pandas.read_csv's default missing-value markers (its `na_values` documentation).
NA_VALUES = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
             "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
NUMBER = r"[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|inf|infinity|nan)"  # matched lower-cased


@dataclass(frozen=True)
class SplitRanges:
    """Bucket ranges of the splits.

    Test is `[0, test_end)`, validation `[test_end, validation_end)`, train the rest up to
    `BUCKETS`.
    """

    test_end: int
    validation_end: int


def split_ranges(validation_fraction: float, test_fraction: float) -> SplitRanges:
    """Bucket ranges for the fractions of `DataConfig` (validation is a fraction of non-test).

    Example:
        >>> split_ranges(0.2, 0.2)  # 20% test, 16% validation, 64% train
        SplitRanges(test_end=2000, validation_end=3600)
    """
    test_end = round(test_fraction * BUCKETS)
    return SplitRanges(test_end, test_end + round((1 - test_fraction) * validation_fraction
                                                  * BUCKETS))


def assign_splits(lines: tf.Tensor, seed: int, ranges: SplitRanges) -> tf.Tensor:
    """The split of each raw CSV line: 0 train, 1 validation, 2 test.

    A keyed hash (SipHash, key `[seed, HASH_SALT]`) of the line's text, so the answer depends
    only on the line and the seed: not on its file, position, the file order or the worker.

    Args:
        lines: Raw lines (the header excluded), any shape.
        seed: The run's seed; another seed gives another split.
        ranges: From `split_ranges`.
    """
    buckets = tf.strings.to_hash_bucket_strong(lines, BUCKETS, key=[seed, HASH_SALT])
    return tf.where(buckets < ranges.test_end, 2,
                    tf.where(buckets < ranges.validation_end, 1, 0))


def canonical_text(values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """CSV fields as `pandas.read_csv` plus the in-memory path see them.

    Returns:
        `(text, missing)`: the field stripped, with an integral decimal written as an integer
        (`"3.0"` -> `"3"`, like a float category in memory), and whether it is a missing-value
        marker (`NA_VALUES`).
    """
    text = tf.strings.strip(values)
    missing = tf.reduce_any(tf.equal(tf.expand_dims(text, -1), tf.constant(NA_VALUES)), axis=-1)
    return tf.strings.regex_replace(text, r"^([+-]?\d+)\.0*$", r"\1"), missing


def parse_numbers(text: tf.Tensor, missing: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Numbers of canonical fields.

    Returns:
        `(numbers, bad)`: float32 values (NaN where missing or not a number), and where a present
        field is not a number.
    """
    valid = tf.strings.regex_full_match(tf.strings.lower(text), NUMBER)
    bad = tf.logical_and(tf.logical_not(missing), tf.logical_not(valid))
    numbers = tf.strings.to_number(tf.where(tf.logical_and(valid, tf.logical_not(missing)),
                                            text, "nan"), tf.float32)
    return numbers, bad


def list_shards(pattern: str) -> list[str]:
    """The files `pattern` matches, sorted (folders skipped).

    Raises:
        InputError: If nothing matches.
    """
    try:
        files = sorted(path for path in tf.io.gfile.glob(pattern)
                       if not tf.io.gfile.isdir(path))
    except tf.errors.OpError as error:
        raise InputError(f"could not list files matching '{pattern}' ({error.message}). Check "
                         "the pattern and that the filesystem is reachable.") from None
    if not files:
        raise InputError(f"no files match --data '{pattern}'. Check the pattern (quote it so "
                         "the shell does not expand it), e.g. --data 'shards/*.csv'.")
    return files


def read_header(path: str) -> list[str]:
    """The column names in the first line of a CSV file (stripped, like `read_csv`)."""
    try:
        with tf.io.gfile.GFile(path, "r") as handle:
            first = handle.readline()
    except (tf.errors.OpError, UnicodeDecodeError) as error:
        raise InputError(f"could not read '{path}' ({error}). Check that it is a CSV text "
                         "file.") from None
    names = next(csv.reader([first.lstrip("\ufeff")]), [])
    if not first.strip() or not names:
        raise InputError(f"data file '{path}' is empty. Every shard needs the header row.")
    return [name.strip() for name in names]


def check_headers(files: Sequence[str]) -> list[str]:
    """The header every shard shares.

    Raises:
        InputError: Naming the first file whose header differs from the first file's.
    """
    header = read_header(files[0])
    if len(set(header)) != len(header):
        repeated = sorted({name for name in header if header.count(name) > 1})
        raise InputError(f"the header of '{files[0]}' repeats the column(s) "
                         f"{', '.join(repeated)}. Give every column its own name.")
    for path in files[1:]:
        other = read_header(path)
        if other != header:
            raise InputError(f"shard '{path}' has the header {','.join(other)} but "
                             f"'{files[0]}' has {','.join(header)}. Every shard needs the same "
                             "columns in the same order.")
    return header


@dataclass(frozen=True)
class WorkerShare:
    """What one worker reads.

    Attributes:
        files: Its files.
        row_shards: Of each file's lines, every `row_shards`-th ...
        row_index: ... starting at this one (1 and 0: all of them).
    """

    files: list[str]
    row_shards: int = 1
    row_index: int = 0


def worker_share(files: Sequence[str], num_workers: int, worker_index: int) -> WorkerShare:
    """The disjoint share of the data worker `worker_index` of `num_workers` reads.

    With at least as many files as workers, whole files (`files[worker_index::num_workers]`,
    what `Dataset.shard` on the file list gives); with fewer files, every file, and of its lines
    every `num_workers`-th. Either way the shares are disjoint and together cover every line.

    Args:
        files: The shards, in the same order on every worker.
        num_workers: Input pipelines (`tf.distribute.InputContext.num_input_pipelines`).
        worker_index: This one (`InputContext.input_pipeline_id`).

    Example:
        >>> worker_share(["a", "b", "c"], 2, 1)
        WorkerShare(files=['b'], row_shards=1, row_index=0)
    """
    if num_workers < 1 or not 0 <= worker_index < num_workers:
        raise ValueError(f"worker_index must be in [0, num_workers). Received: "
                         f"num_workers={num_workers}, worker_index={worker_index}")
    if len(files) >= num_workers:
        return WorkerShare(list(files)[worker_index::num_workers])
    return WorkerShare(list(files), num_workers, worker_index)


def _file_lines(path: tf.Tensor, share: WorkerShare) -> tf.data.Dataset:
    lines = tf.data.TextLineDataset(path, buffer_size=1 << 20).skip(1)
    return lines.shard(share.row_shards, share.row_index) if share.row_shards > 1 else lines


def share_lines(share: WorkerShare, cycle: int = TRAIN_CYCLE,
                seed: int | None = None) -> tf.data.Dataset:
    """One pass over the raw data lines of a share (headers skipped, blank lines kept).

    Args:
        share: From `worker_share`.
        cycle: Files read in turn (interleaved line by line).
        seed: Shuffles the file order, anew on every pass (None: sorted order).

    Example:
        >>> lines = share_lines(worker_share(files, num_workers=2, worker_index=0))
    """
    files = tf.data.Dataset.from_tensor_slices(share.files)
    if seed is not None:
        files = files.shuffle(len(share.files), seed=seed, reshuffle_each_iteration=True)
    return files.interleave(lambda path: _file_lines(path, share),
                            cycle_length=max(1, min(len(share.files), cycle)),
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _present(lines: tf.Tensor) -> tf.Tensor:
    """Lines that hold something (`read_csv` skips blank lines)."""
    return tf.strings.length(tf.strings.strip(lines)) > 0


class RowDecoder:
    """Decodes batches of raw lines into the model's raw features and the target text.

    Args:
        header: The shards' column names.
        schema: The schema inferred on the sample.
    """

    def __init__(self, header: Sequence[str], schema: TabularSchema):
        self.header = list(header)
        self.schema = schema
        self.position = {name: index for index, name in enumerate(self.header)}
        self.target_index = self.position[schema.target]
        self.numeric = [c for c in schema.columns if c.kind == "numeric"]

    def fields(self, lines: tf.Tensor) -> list[tf.Tensor]:
        """Every field of each line as text; a line with another field count is an error."""
        return tf.io.decode_csv(lines, record_defaults=[""] * len(self.header))

    def features(self, fields: list[tf.Tensor]) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Raw features by input name, as `features_from_frame` makes them.

        Returns:
            `(features, bad)`: shape (rows, 1) each, float32 with NaN for missing numbers, text
            with `MISSING_CATEGORY` for missing categories; and a (rows, numeric columns) mask
            of the fields that are not numbers.
        """
        features, bad = {}, []
        for column in self.schema.columns:
            text, missing = canonical_text(fields[self.position[column.name]])
            if column.kind == "numeric":
                values, not_number = parse_numbers(text, missing)
                bad.append(not_number)
            else:
                values = tf.where(missing, MISSING_CATEGORY, text)
            features[column.input_name] = tf.expand_dims(values, -1)
        rows = tf.shape(fields[0])[0]
        return features, (tf.stack(bad, axis=1) if bad else tf.zeros([rows, 0], tf.bool))

    def target(self, fields: list[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """The target's canonical text and whether it is missing."""
        return canonical_text(fields[self.target_index])

    def label_table(self) -> tf.lookup.StaticHashTable:
        """Canonical label text -> class id (-1 for a class the schema does not know)."""
        keys = [str(label) for label in self.schema.labels]
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.range(len(keys), dtype=tf.int64)), -1)


@dataclass
class RowCounts:
    """What the counting pass found over every line of the shards.

    Attributes:
        train: Rows with a target, by split.
        validation: ...
        test: ...
        missing_target: Rows without a target (dropped).
        lines: Non-blank data lines read.
    """

    train: int = 0
    validation: int = 0
    test: int = 0
    missing_target: int = 0
    lines: int = 0


@dataclass
class StreamingSplits(TabularSplits):
    """`TabularSplits` whose frames are bounded samples of shards that are streamed to train.

    `train` holds the first `sample_rows` training rows (schema, preprocessing statistics,
    baselines, calibration); `validation` and `test` the first `held_out_rows` rows of theirs.

    Attributes:
        pattern: `--data` as given.
        files: The shards, sorted.
        header: Their shared header.
        seed: Key of the split hash.
        ranges: The split's bucket ranges.
        counts: Rows per split over all shards (`count_rows`).
        sample_rows: The configured sample size ...
        held_out_rows: ... and held-out size.
        scanned_lines: Lines the samples came from (the scan's first lines).
        test_source: `--test-data`, when it replaces the test split.
        seconds: Listing, checking, sampling and counting took this long.
    """

    pattern: str = ""
    files: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    seed: int = 0
    ranges: SplitRanges = field(default_factory=lambda: SplitRanges(0, 0))
    counts: RowCounts = field(default_factory=RowCounts)
    sample_rows: int = 0
    held_out_rows: int = 0
    scanned_lines: int = 0
    test_source: str | None = None
    seconds: float = 0.0


def _locate_malformed(files: Sequence[str], header: Sequence[str], error: Exception) -> str:
    """The first line of the shards whose field count is not the header's, for a message."""
    for path in files:
        with tf.io.gfile.GFile(path, "r") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for fields in reader:
                if fields and any(value.strip() for value in fields) and len(fields) != len(
                        header):
                    return (f"line {reader.line_num} of '{path}' has {len(fields)} fields but "
                            f"the header has {len(header)}")
    return f"a line of the shards could not be parsed ({str(error).splitlines()[0]})"


def _decode_error(files: Sequence[str], header: Sequence[str], error: Exception) -> InputError:
    message = getattr(error, "message", str(error)).split(" [Op:")[0]
    return InputError(f"{_locate_malformed(files, header, message)}. Fix or remove that line "
                      "(a quoted field may hold commas, not line breaks).")


def scan_sample(files: Sequence[str], seed: int, ranges: SplitRanges, quotas: dict[str, int]
                ) -> tuple[dict[str, list[bytes]], int]:
    """The first lines of each split, reading up to `SAMPLE_CYCLE` shards in turn.

    Stops as soon as every split has its quota (`{"train": n, "validation": m, "test": m}`).

    Returns:
        Raw lines by split, and how many lines the samples came from (up to the last one taken).
    """
    lines = share_lines(WorkerShare(list(files)), cycle=SAMPLE_CYCLE).batch(SCAN_BATCH)
    lines = lines.map(lambda batch: (batch, _present(batch),
                                     assign_splits(batch, seed, ranges)))
    taken: dict[str, list[bytes]] = {name: [] for name in SPLITS}
    read = used = 0
    for batch, present, split in lines.as_numpy_iterator():
        for index, name in enumerate(SPLITS):
            room = quotas.get(name, 0) - len(taken[name])
            positions = np.flatnonzero(present & (split == index))[:max(room, 0)]
            if len(positions):
                taken[name].extend(batch[positions].tolist())
                used = max(used, read + int(positions[-1]) + 1)
        read += len(batch)
        if all(len(taken[name]) >= quotas.get(name, 0) for name in SPLITS):
            break
    return taken, used


def sample_frame(lines: Sequence[bytes], header: Sequence[str], files: Sequence[str],
                 keep_text: Sequence[str] = ()) -> pd.DataFrame:
    """Sample lines as a DataFrame, decoded by the stream's own functions.

    Fields go through `canonical_text`; missing ones are NaN; a column whose present values are
    all numbers becomes numeric (as `read_csv` makes it), except those in `keep_text`.
    """
    if not lines:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in header})
    try:
        fields = tf.io.decode_csv(tf.constant(list(lines)), record_defaults=[""] * len(header))
    except tf.errors.InvalidArgumentError as error:
        raise _decode_error(files, header, error) from None
    columns = {}
    for name, values in zip(header, fields, strict=True):
        text, missing = canonical_text(values)
        series = pd.Series(np.where(missing.numpy(), None, text.numpy().astype(str)),
                           dtype=object)
        numbers = pd.to_numeric(series, errors="coerce")
        if name not in keep_text and series.notna().any() and numbers[series.notna()].notna(
                ).all():
            series = numbers
        columns[name] = series
    return pd.DataFrame(columns)


def count_rows(files: Sequence[str], decoder: RowDecoder, seed: int, ranges: SplitRanges,
               source: str) -> RowCounts:
    """One pass over every line: rows per split, checked against the schema.

    Raises:
        InputError: For a line with the wrong number of fields, a number column holding
            something else, a regression target that is not a number, or a class the sample's
            schema does not know (naming the file, column and value).
    """
    schema = decoder.schema
    classify = schema.problem != "regression"
    table = decoder.label_table() if classify else None
    paths = tf.constant(list(files))

    def first(values, mask):
        return tf.concat([tf.boolean_mask(values, mask), [""]], 0)[0]

    def check(lines, file_index):
        lines = tf.boolean_mask(lines, _present(lines))
        fields = decoder.fields(lines)
        _, bad_numbers = decoder.features(fields)
        text, missing = decoder.target(fields)
        if classify:
            bad_target = tf.logical_and(tf.logical_not(missing), table.lookup(text) < 0)
        else:
            bad_target = parse_numbers(text, missing)[1]
        split = tf.boolean_mask(assign_splits(lines, seed, ranges), tf.logical_not(missing))
        checked = [canonical_text(fields[decoder.position[c.name]])[0]
                   for c in decoder.numeric] + [text]
        bad = tf.concat([bad_numbers, tf.expand_dims(bad_target, -1)], axis=1)
        return {"lines": tf.size(lines), "missing": tf.reduce_sum(tf.cast(missing, tf.int32)),
                "splits": tf.math.bincount(tf.cast(split, tf.int32), minlength=3, maxlength=3),
                "bad": tf.reduce_sum(tf.cast(bad, tf.int32), axis=0),
                "first_bad": tf.stack([first(values, bad[:, index])
                                       for index, values in enumerate(checked)]),
                "file": file_index, "unknown": tf.unique(tf.boolean_mask(text, bad_target)).y}

    batches = tf.data.Dataset.from_tensor_slices((paths, tf.range(len(files)))).interleave(
        lambda path, index: tf.data.TextLineDataset(path, buffer_size=1 << 20).skip(1).batch(
            SCAN_BATCH).map(lambda lines: (lines, index)),
        cycle_length=min(len(files), 4), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False).map(check, num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=False).prefetch(2)
    counts = RowCounts()
    names = [*(c.name for c in decoder.numeric), schema.target]
    bad_totals = np.zeros(len(names), dtype=np.int64)
    first_bad: dict[int, tuple[str, str]] = {}  # column -> (file, value) of a bad value
    unknown: set[str] = set()
    try:
        for result in batches.as_numpy_iterator():
            counts.lines += int(result["lines"])
            counts.missing_target += int(result["missing"])
            counts.train, counts.validation, counts.test = (
                total + int(found) for total, found in zip(
                    (counts.train, counts.validation, counts.test), result["splits"],
                    strict=True))
            bad_totals += result["bad"]
            for index in np.flatnonzero(result["bad"]):
                first_bad.setdefault(int(index), (files[int(result["file"])],
                                                  result["first_bad"][index].decode()))
            unknown.update(label.decode() for label in result["unknown"])
    except tf.errors.InvalidArgumentError as error:
        raise _decode_error(files, decoder.header, error) from None
    if bad_totals.any():
        index = int(np.flatnonzero(bad_totals)[0])
        path, value = first_bad[index]
        if index < len(decoder.numeric):
            raise InputError(f"column '{names[index]}' of {source} holds numbers in the sample, "
                             f"but {value!r} in '{path}' is not a number ({bad_totals[index]} "
                             "such value(s) in all). Fix or blank out those values, or pass "
                             f"--categorical {names[index]}.")
        if not classify:
            raise InputError(f"regression needs a numeric target, but target '{schema.target}' "
                             f"of {source} holds {value!r} in '{path}' ({bad_totals[index]} "
                             "such value(s)). Fix or remove those rows.")
        shown = ", ".join(repr(label) for label in sorted(unknown)[:5])
        raise InputError(f"target '{schema.target}' of {source} has {bad_totals[index]} row(s) "
                         f"of class(es) {shown} (first in '{path}') that the sample the "
                         f"classes were learned from never saw (classes: "
                         f"{', '.join(map(str, schema.labels))}). Remove those rows, or raise "
                         "--set data.sample_rows so the sample includes them.")
    if counts.missing_target:
        warn(f"dropped {counts.missing_target} row(s) of {source} with no value in target "
             f"'{schema.target}'.")
    return counts


def _test_frame(test_data: str, rows: int,
                keep_text: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """The first `rows` rows of `--test-data` (a file or a pattern), read by the stream."""
    files = list_shards(test_data) if is_pattern(test_data) else [test_data]
    if not tf.io.gfile.exists(files[0]):
        raise InputError(f"test data file not found: '{test_data}'. Pass an existing CSV file "
                         "or pattern.")
    test_header = check_headers(files)
    lines = share_lines(WorkerShare(files), cycle=SAMPLE_CYCLE).filter(_present).take(rows)
    kept = list(lines.as_numpy_iterator())
    return sample_frame(kept, test_header, files, keep_text), test_header


def load_streaming(
    data: str,
    problem: str,
    target: str | None,
    test_data: str | None = None,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    categorical: Sequence[str] = (),
    positive_label: Any = None,
    sample_rows: int = 20_000,
    held_out_rows: int = 10_000,
) -> StreamingSplits:
    """Lists, checks, samples and counts streamed CSV shards (see the module docstring).

    Args:
        data: A file pattern, or one CSV path (with `--stream`).
        problem: `"binary"`, `"multiclass"` or `"regression"`.
        target: The target column (required).
        test_data: Optional file or pattern whose first `held_out_rows` rows are the test set;
            then `data` is split into train and validation only.
        validation_fraction: Fraction of the non-test rows for validation.
        test_fraction: Fraction of all rows for test (ignored with `test_data`).
        seed: Key of the split hash.
        categorical: Columns to treat as categories even if they hold numbers.
        positive_label: Binary problems: the positive class.
        sample_rows: Training rows held in memory to infer and adapt on.
        held_out_rows: Validation rows, and test rows, held in memory.

    Returns:
        The bounded frames, schema and row counts.

    Example:
        >>> splits = load_streaming("shards/*.csv", "binary", target="bought")
        >>> splits.counts.train, len(splits.train)
    """
    started = time.perf_counter()
    files = list_shards(data) if is_pattern(data) and not Path(data).is_file() else [data]
    if not tf.io.gfile.exists(files[0]):
        raise InputError(f"data file not found: '{data}'. Pass an existing CSV file or a "
                         "pattern such as 'shards/*.csv'.")
    header = check_headers(files)
    source = f"'{data}'"
    if target is None:
        raise InputError(f"no --target given for {source}. Pass --target with the column to "
                         f"predict; the columns are: {', '.join(header)}.")
    if target not in header:
        raise InputError(f"target column '{target}' is not in {source}; its columns are: "
                         f"{', '.join(header)}. Pass --target with one of them.")
    ranges = split_ranges(validation_fraction, 0.0 if test_data else test_fraction)
    quotas = {"train": sample_rows, "validation": held_out_rows,
              "test": 0 if test_data else held_out_rows}
    lines, scanned = scan_sample(files, seed, ranges, quotas)
    keep_text = [*categorical] + ([target] if problem != "regression" else [])
    frames = {name: sample_frame(lines[name], header, files, keep_text) for name in SPLITS}
    if problem != "regression":  # integer class values stay numbers, as read_csv makes them
        present = pd.concat([frame[target] for frame in frames.values()]).dropna()
        if len(present) and present.str.fullmatch(r"[+-]?\d+").all():
            for frame in frames.values():
                frame[target] = pd.to_numeric(frame[target]).astype("Int64").astype(object)
    frames = {name: drop_missing_targets(frame, target, f"the sample of {source}")
              for name, frame in frames.items()}
    if test_data:
        frames["test"], test_header = _test_frame(test_data, held_out_rows, keep_text)
        if target not in test_header:
            raise InputError(f"test data '{test_data}' has no target column '{target}'; its "
                             f"columns are: {', '.join(test_header)}.")
        frames["test"] = drop_missing_targets(frames["test"], target, f"'{test_data}'")
    needed = SPLITS if not test_data else SPLITS[:2]
    short = [name for name in needed if len(frames[name]) == 0]
    if short:
        raise InputError(f"{source} has {scanned} data lines and none of them fell in the "
                         f"{' and '.join(short)} split. Add rows, or raise "
                         "data.validation_fraction / data.test_fraction.")
    sample = pd.concat([frames[name] for name in needed], ignore_index=True)
    schema = infer_schema(sample, target, problem, source=f"the sample of {source}",
                          categorical=categorical, positive_label=positive_label,
                          max_classes=max(2, len(sample) // 5))
    counts = count_rows(files, RowDecoder(header, schema), seed, ranges, source)
    if counts.train == 0:
        raise InputError(f"{source} has no training rows with a target. Add rows.")
    return StreamingSplits(
        name=(Path(data).parent.name or "shards") if len(files) > 1 or is_pattern(data)
        else Path(data).stem,
        schema=schema, train=frames["train"], validation=frames["validation"],
        test=frames["test"], pattern=data, files=files, header=header, seed=seed,
        ranges=ranges, counts=counts, sample_rows=sample_rows, held_out_rows=held_out_rows,
        scanned_lines=scanned, test_source=test_data, seconds=time.perf_counter() - started)


class TrainingStream:
    """Every training row of streamed shards, as a `tf.data` pipeline of preprocessed batches.

    Stands where the in-memory training matrix would (`len()` is the training row count, so
    steps per epoch follow from it exactly as in memory).

    Args:
        splits: From `load_streaming`.
        transform: Raw feature tensors -> the network's input matrix (the adapted
            preprocessing, e.g. `TabularPreprocessor.transform_tensors`).
        target_mean: Regression: the network learns `(target - mean) / std` ...
        target_std: ... as in memory.
    """

    def __init__(self, splits: StreamingSplits,
                 transform: Callable[[dict[str, tf.Tensor]], tf.Tensor],
                 target_mean: float = 0.0, target_std: float = 1.0):
        self.splits = splits
        self.transform = transform
        self.target_mean = target_mean
        self.target_std = target_std
        self.decoder = RowDecoder(splits.header, splits.schema)

    def __len__(self) -> int:
        return self.splits.counts.train

    def _targets(self, text: tf.Tensor, table: Any) -> tf.Tensor:
        # The shapes and dtypes of `presets.training_targets`.
        problem = self.splits.schema.problem
        if problem == "multiclass":
            return tf.cast(table.lookup(text), tf.int32)
        if problem == "binary":
            return tf.expand_dims(tf.cast(table.lookup(text), tf.float32), -1)
        numbers, _ = parse_numbers(text, tf.zeros_like(text, tf.bool))
        return tf.expand_dims((numbers - self.target_mean) / self.target_std, -1)

    def dataset(self, batch_size: int, seed: int, num_workers: int = 1,
                worker_index: int = 0) -> tf.data.Dataset:
        """Endless preprocessed `(x, y)` batches of this worker's training rows.

        Each pass reads every training row of the share once: files in a new order, lines
        shuffled in a buffer of `SHUFFLE_LINES`, then the next pass starts (shuffle, then repeat,
        as in memory), so an epoch of `len(self)` rows is one pass. Endless like the in-memory
        pipeline: `fit` counts epochs in steps.

        Args:
            batch_size: Rows per batch (per worker).
            seed: Seeds the shuffles (the split itself is keyed by the loading seed).
            num_workers: Input pipelines sharing the data ...
            worker_index: ... and this one (see `worker_share`).
        """
        splits = self.splits
        share = worker_share(splits.files, num_workers, worker_index)
        if num_workers > 1:
            print(f"stream: input pipeline {worker_index} of {num_workers} reads "
                  + (f"{len(share.files)} of {len(splits.files)} shards" if share.row_shards == 1
                     else f"every {share.row_shards}th line of {len(splits.files)} shard(s)"),
                  flush=True)
        target_index = self.decoder.target_index
        table = self.decoder.label_table() if splits.schema.problem != "regression" else None

        def training_lines(lines):
            lines = tf.boolean_mask(lines, _present(lines))
            target = tf.io.decode_csv(lines, record_defaults=[""], select_cols=[target_index])[0]
            keep = tf.logical_and(tf.equal(assign_splits(lines, splits.seed, splits.ranges), 0),
                                  tf.logical_not(canonical_text(target)[1]))
            return tf.boolean_mask(lines, keep)

        def preprocess(lines):
            fields = self.decoder.fields(lines)
            features, _ = self.decoder.features(fields)
            return self.transform(features), self._targets(self.decoder.target(fields)[0], table)

        lines = share_lines(share, cycle=TRAIN_CYCLE, seed=seed)
        return (lines.batch(SCAN_BATCH).map(training_lines, num_parallel_calls=tf.data.AUTOTUNE)
                .unbatch().shuffle(SHUFFLE_LINES, seed=seed, reshuffle_each_iteration=True)
                .repeat().batch(batch_size)
                .map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE))

    def dataset_fn(self, global_batch_size: int, seed: int
                   ) -> Callable[[tf.distribute.InputContext], tf.data.Dataset]:
        """A dataset function for `strategy.distribute_datasets_from_function`.

        Each input pipeline reads its share (`worker_share`) in per-replica batches.
        """

        def build(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return self.dataset(context.get_per_replica_batch_size(global_batch_size), seed,
                                context.num_input_pipelines, context.input_pipeline_id)

        return build


def fingerprint(pattern: str) -> dict[str, str]:
    """SHA-256 of the shards `pattern` matches: each file's name and bytes, in sorted order."""
    digest = hashlib.sha256()
    files = list_shards(pattern)
    for path in files:
        digest.update(path.rsplit("/", 1)[-1].encode() + b"\0")
        with tf.io.gfile.GFile(path, "rb") as handle:
            for chunk in iter(lambda handle=handle: handle.read(1 << 20), b""):
                digest.update(chunk)
    return {"source": f"{pattern} ({len(files)} files)", "sha256": digest.hexdigest()}


"""The one pass over every line of streamed shards: row counts, checks and uniform samples.

`scan_rows` reads every line once, files interleaved and batches decoded in parallel, and in that
same pass counts the rows of each split, notes every field that is not a number and every class,
and draws the samples held in memory: for each split, a seeded uniform sample over all of its
rows (`Reservoir`). Nothing in the pass depends on the schema, so the schema can be inferred on
the sample afterwards; `check_rows` then holds what the pass found against that schema.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import tensorflow as tf

from common import problems
from common.errors import InputError
from datasets.frame_checks import MAX_MAGNITUDE
from datasets.stream_text import (
    SCAN_BATCH,
    SPLITS,
    SplitRanges,
    assign_splits,
    canonical_text,
    nonblank,
    odd_values,
)
from datasets.tabular import TabularSchema, warn

# Second half of the SipHash key of `sample_keys`: not the split's, so a line's sample key says
# nothing about its split.
SAMPLE_SALT = 0x5A3B1E
KEY_RANGE = 2**63 - 1  # sample keys are in [0, KEY_RANGE)
# Distinct classes the pass tallies; a classification target with more is a mistake anyway
# (`infer_schema` allows at most a fifth of the sample's rows as classes).
MAX_TALLIED_CLASSES = 100_000


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


def sample_keys(lines: tf.Tensor, seed: int) -> tf.Tensor:
    """A seeded pseudo-random key in `[0, KEY_RANGE)` for each raw line (int64).

    SipHash of the line's text keyed by `[seed, SAMPLE_SALT]`: the same line always gets the same
    key for a seed, whoever reads it and in whatever order.
    """
    return tf.strings.to_hash_bucket_strong(lines, KEY_RANGE, key=[seed, SAMPLE_SALT])


class Reservoir:
    """A uniform sample of `size` lines drawn in one pass: the lines with the smallest keys.

    Keeping the `size` smallest of independent uniform keys is reservoir sampling with random
    keys (Efraimidis and Spirakis' A-Res with equal weights): every subset of `size` lines is
    equally likely. The keys are a seeded hash of each line (`sample_keys`) rather than draws
    from a generator, so the sample depends only on the lines and the seed: not on the order
    they arrive in, on how files are interleaved, nor on which worker reads them. Identical
    lines share a key, so they are drawn together, as they share a split. Memory: `size` lines
    and keys, and the batch being offered.

    Args:
        size: Lines to keep (0: none).

    Example:
        >>> reservoir = Reservoir(2)
        >>> reservoir.offer(np.array([5, 1, 9]), np.array([b"a", b"b", b"c"], dtype=object))
        >>> reservoir.lines()
        [b'b', b'a']
    """

    def __init__(self, size: int):
        self.size = max(0, size)
        self.keys = np.empty(0, np.int64)
        self.values = np.empty(0, object)

    def offer(self, keys: np.ndarray, lines: np.ndarray) -> None:
        """Keeps those of `lines` (with their `keys`) that are among the `size` smallest keys."""
        if len(self.keys) == self.size:  # full: only a key below the largest kept can enter
            below = keys < self.keys.max(initial=-1)
            keys, lines = keys[below], lines[below]
        if not len(keys):
            return
        keys, lines = np.concatenate([self.keys, keys]), np.concatenate([self.values, lines])
        if len(keys) > self.size:
            kept = np.argpartition(keys, self.size - 1)[:self.size]
            keys, lines = keys[kept], lines[kept]
        self.keys, self.values = keys, lines

    def bound(self) -> int:
        """Keys from this one up can no longer enter (`KEY_RANGE` until the sample is full)."""
        return int(self.keys.max()) if self.size and len(self.keys) == self.size else KEY_RANGE

    def lines(self) -> list[bytes]:
        """The sample, in key order (a seeded order, the same on every run and worker)."""
        return self.values[np.argsort(self.keys, kind="stable")].tolist()


@dataclass
class Scan:
    """What `scan_rows` found.

    Attributes:
        samples: The sampled raw lines of each split (rows with a target only).
        counts: Rows per split, rows without a target, lines read.
        not_numbers: Per header column, present fields that are not numbers (columns not
            checked: 0).
        first_not_number: Column index -> (file, value) of such a field, from the first file
            that has one.
        classes: Classification: canonical target text -> rows and the first file holding it.
        all_classes: False when more than `MAX_TALLIED_CLASSES` classes were seen (later ones
            were not tallied).
    """

    samples: dict[str, list[bytes]]
    counts: RowCounts
    not_numbers: np.ndarray
    first_not_number: dict[int, tuple[str, str]] = field(default_factory=dict)
    classes: dict[str, list] = field(default_factory=dict)
    all_classes: bool = True


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


def decode_error(files: Sequence[str], header: Sequence[str], error: Exception) -> InputError:
    """The one-line error for a line `tf.io.decode_csv` could not split into the header's fields."""
    message = getattr(error, "message", str(error)).split(" [Op:")[0]
    return InputError(f"{_locate_malformed(files, header, message)}. Fix or remove that line "
                      "(a quoted field may hold commas, not line breaks).")


def scan_rows(files: Sequence[str], header: Sequence[str], target: str, seed: int,
              ranges: SplitRanges, quotas: dict[str, int], classify: bool = False,
              text_columns: Sequence[str] = ()) -> Scan:
    """One pass over every line: counts, number checks, classes and uniform samples.

    Args:
        files: The shards (any order: nothing found depends on it).
        header: Their shared header.
        target: The target column; rows without a value in it are counted and left out.
        seed: Keys the split hash and the sample keys.
        ranges: The split's bucket ranges.
        quotas: Lines to sample per split (`{"train": n, "validation": m, "test": m}`).
        classify: Tally the target's classes (else the target is checked for numbers).
        text_columns: Columns not checked for numbers (`--categorical`).

    Raises:
        InputError: For a line whose field count is not the header's.

    Example:
        >>> scan = scan_rows(files, header, "bought", 0, split_ranges(0.2, 0.2),
        ...                  {"train": 20_000, "validation": 10_000, "test": 10_000}, True)
    """
    target_index = list(header).index(target)
    checked = [index for index, name in enumerate(header) if name not in text_columns
               and not (classify and index == target_index)]
    paths = tf.constant(list(files))
    reservoirs = {name: Reservoir(quotas.get(name, 0)) for name in SPLITS}
    # Each reservoir's bound, read by the parallel batches: most lines never leave TensorFlow
    # (a batch may read a bound a little old, which only lets through lines `offer` drops).
    bounds = tf.Variable([KEY_RANGE] * len(SPLITS), dtype=tf.int64, trainable=False)

    def examine(lines, file_index):
        lines = tf.boolean_mask(lines, nonblank(lines))
        fields = tf.io.decode_csv(lines, record_defaults=[""] * len(header))
        text, missing = canonical_text(fields[target_index])
        kept = tf.logical_not(missing)
        split = assign_splits(lines, seed, ranges)
        keys = sample_keys(lines, seed)
        found = {"lines": tf.size(lines), "file": file_index,
                 "missing": tf.reduce_sum(tf.cast(missing, tf.int32)),
                 "splits": tf.math.bincount(tf.cast(tf.boolean_mask(split, kept), tf.int32),
                                            minlength=3, maxlength=3)}
        odd = [odd_values(fields[index]) for index in checked]
        bad = [tf.size(values) for values in odd]
        first_bad = [tf.concat([values, [""]], 0)[0] for values in odd]
        found["bad"], found["first_bad"] = tf.stack(bad or [0]), tf.stack(first_bad or [""])
        if classify:
            classes, _, rows = tf.unique_with_counts(tf.boolean_mask(text, kept))
            found["classes"], found["class_rows"] = classes, rows
        for index, name in enumerate(SPLITS):
            if quotas.get(name, 0) > 0:  # only keys below the bound, and the batch's smallest
                chosen = tf.logical_and(kept, tf.equal(split, index))
                chosen = tf.logical_and(chosen, keys < bounds[index])
                candidates = tf.boolean_mask(keys, chosen)
                smallest = tf.math.top_k(-candidates, tf.minimum(quotas[name],
                                                                 tf.size(candidates)))
                found[name] = (-smallest.values,
                               tf.gather(tf.boolean_mask(lines, chosen), smallest.indices))
        return found

    batches = tf.data.Dataset.from_tensor_slices((paths, tf.range(len(files)))).interleave(
        lambda path, index: tf.data.TextLineDataset(path, buffer_size=1 << 20).skip(1).batch(
            SCAN_BATCH).map(lambda lines: (lines, index)),
        cycle_length=min(len(files), 4), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=False).map(examine, num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=False).prefetch(2)
    scan = Scan(samples={}, counts=RowCounts(), not_numbers=np.zeros(len(header), np.int64))
    counts = scan.counts
    try:
        for found in batches.as_numpy_iterator():
            counts.lines += int(found["lines"])
            counts.missing_target += int(found["missing"])
            counts.train, counts.validation, counts.test = (
                total + int(rows) for total, rows in zip(
                    (counts.train, counts.validation, counts.test), found["splits"], strict=True))
            path = files[int(found["file"])]
            for position in np.flatnonzero(found["bad"][:len(checked)]):
                index = checked[position]
                scan.not_numbers[index] += int(found["bad"][position])
                if index not in scan.first_not_number or path < scan.first_not_number[index][0]:
                    scan.first_not_number[index] = (path, found["first_bad"][position].decode())
            if classify:
                _tally(scan, found["classes"], found["class_rows"], path)
            for name, reservoir in reservoirs.items():
                if name in found:
                    reservoir.offer(*found[name])
            bounds.assign([reservoir.bound() for reservoir in reservoirs.values()])
    except tf.errors.InvalidArgumentError as error:
        raise decode_error(files, header, error) from None
    scan.samples = {name: reservoir.lines() for name, reservoir in reservoirs.items()}
    return scan


def _tally(scan: Scan, classes: np.ndarray, rows: np.ndarray, path: str) -> None:
    for label, count in zip(classes.tolist(), rows.tolist(), strict=True):
        label = label.decode()
        if label in scan.classes:
            tally = scan.classes[label]
            tally[0] += count
            tally[1] = min(tally[1], path)
        elif len(scan.classes) < MAX_TALLIED_CLASSES:
            scan.classes[label] = [count, path]
        else:
            scan.all_classes = False


def check_rows(scan: Scan, header: Sequence[str], schema: TabularSchema, source: str) -> None:
    """Holds every row the pass read against the schema inferred on the sample.

    Warns about rows without a target (they are dropped).

    Raises:
        InputError: For a number column holding something else, a regression target that is not
            a number, or a class the sample's schema does not know (naming file and value).
    """
    position = {name: index for index, name in enumerate(header)}
    classifies = problems.get(schema.problem).classifies
    numbers = [c.name for c in schema.columns if c.kind == "numeric"]
    for name in numbers + ([] if classifies else [schema.target]):
        count = int(scan.not_numbers[position[name]])
        if not count:
            continue
        path, value = scan.first_not_number[position[name]]
        if name != schema.target:
            raise InputError(f"column '{name}' of {source} holds numbers in the sample, but "
                             f"{value!r} in '{path}' is not a number, or is infinite or over "
                             f"{MAX_MAGNITUDE:.0e} in size ({count} such value(s) in all). Fix "
                             f"or blank out those values, or pass --categorical {name}.")
        raise InputError(f"regression needs a numeric target, but target '{schema.target}' of "
                         f"{source} holds {value!r} in '{path}' (not a number, infinite, or "
                         f"over {MAX_MAGNITUDE:.0e} in size; {count} such value(s)). Fix or "
                         "remove those rows.")
    known = {str(label) for label in schema.labels}
    unknown = sorted(label for label in scan.classes if label not in known)
    if classifies and (unknown or not scan.all_classes):
        rows = sum(scan.classes[label][0] for label in unknown)
        shown = ", ".join(repr(label) for label in unknown[:5])
        where = min((scan.classes[label][1] for label in unknown), default="the data")
        raise InputError(f"target '{schema.target}' of {source} has "
                         f"{'' if scan.all_classes else 'more than '}{rows} row(s) of class(es) "
                         f"{shown} (first in '{where}') that the sample the classes were learned "
                         f"from never saw (classes: {', '.join(map(str, schema.labels))}). "
                         "Remove those rows, or raise --set data.sample_rows so the sample "
                         "includes them.")
    if scan.counts.missing_target:
        warn(f"dropped {scan.counts.missing_target} row(s) of {source} with no value in target "
             f"'{schema.target}'.")


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
        raise decode_error(files, header, error) from None
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

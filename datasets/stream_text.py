"""How streamed CSV lines are read: fields as pandas reads them, and the split of each line.

The pieces the counting pass (`datasets.stream_scan`) and the training stream
(`datasets.streaming`) share, so both read a line the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from datasets.frame_checks import MAX_MAGNITUDE

# Lines are hashed into this many buckets; split fractions are rounded to 1 / BUCKETS.
BUCKETS = 10_000
# Second half of the SipHash key of `assign_splits` (the first half is the run's seed).
HASH_SALT = 0x5EED
SPLITS = ("train", "validation", "test")
SCAN_BATCH = 4096  # lines per step of the scans and of the line filter
# pandas.read_csv's default missing-value markers (its `na_values` documentation).
NA_VALUES = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
             "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
NUMBER = r"(?i)[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|inf|infinity|nan)"  # any case


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


def nonblank(lines: tf.Tensor) -> tf.Tensor:
    """Lines that hold something (`read_csv` skips blank lines)."""
    return tf.strings.length(tf.strings.strip(lines)) > 0


def canonical_text(values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """CSV fields as `pandas.read_csv` plus the in-memory path see them.

    Returns:
        `(text, missing)`: the field stripped, with an integral decimal written as an integer
        (`"3.0"` -> `"3"`, like a float category in memory), and whether it is a missing-value
        marker (`NA_VALUES`).
    """
    text = tf.strings.strip(values)
    return tf.strings.regex_replace(text, r"^([+-]?\d+)\.0*$", r"\1"), missing_markers(text)


def missing_markers(text: tf.Tensor) -> tf.Tensor:
    """Where stripped fields are missing-value markers (`NA_VALUES`)."""
    return tf.reduce_any(tf.equal(tf.expand_dims(text, -1), tf.constant(NA_VALUES)), axis=-1)


def not_numbers(text: tf.Tensor, missing: tf.Tensor) -> tf.Tensor:
    """Where a canonical field is present but not a number."""
    valid = tf.strings.regex_full_match(text, NUMBER)
    return tf.logical_and(tf.logical_not(missing), tf.logical_not(valid))


def odd_values(values: tf.Tensor) -> tf.Tensor:
    """The raw fields, stripped, that are neither usable numbers nor missing, for a check.

    `not_numbers(*canonical_text(values))`, cheaper where most fields are numbers (only fields
    the number pattern refuses are compared with the missing markers), and stricter: a number
    that is infinite or larger than `MAX_MAGNITUDE` in size is refused too, as the in-memory
    path refuses it (`frame_checks.check_finite`: float32 arithmetic overflows on it).
    """
    text = tf.strings.strip(values)
    number = tf.strings.regex_full_match(text, NUMBER)
    size = tf.abs(tf.strings.to_number(tf.where(number, text, "0"), tf.float64))
    usable = tf.logical_and(number, tf.logical_not(size > MAX_MAGNITUDE))  # NaN is missing
    refused = tf.boolean_mask(text, tf.logical_not(usable))
    return tf.boolean_mask(refused, tf.logical_not(missing_markers(refused)))


def parse_numbers(text: tf.Tensor, missing: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Numbers of canonical fields.

    Returns:
        `(numbers, bad)`: float32 values (NaN where missing or not a number), and where a present
        field is not a number.
    """
    bad = not_numbers(text, missing)
    numbers = tf.strings.to_number(tf.where(tf.logical_or(missing, bad), "nan", text),
                                   tf.float32)
    return numbers, bad

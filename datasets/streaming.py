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
* **One pass before training** (`datasets.stream_scan.scan_rows`) decodes every line once and
  counts rows per split (steps per epoch come from the training count) and rows without a
  target (dropped with a warning, as in memory). In the same pass it draws the samples held in
  memory: `sample_rows` training rows and `held_out_rows` rows of validation and of test, each a
  seeded uniform sample over all rows of its split, wherever they sit in the files (a reservoir
  keyed by a hash of the line and the seed, so every run and every worker draws the same rows).
  Schema inference, labels and the preprocessing statistics (normalization, missing values,
  vocabularies) come from the training sample, as do the scikit-learn baselines and the int8
  calibration; validation (early stopping) and test (scores, export parity) are the held-out
  samples. `--test-data` replaces the test split with a sample drawn the same way from its
  file(s). The pass then holds every row against the schema (`check_rows`): numbers that are
  not numbers and classes the sample never saw are errors before any training (raise
  `data.sample_rows` to let the sample see a rare class).
* **Training.** Each epoch streams every training row: shards reshuffled, read interleaved,
  lines shuffled in a `SHUFFLE_LINES` buffer, batched, decoded and put through the adapted Keras
  preprocessing inside `Dataset.map`, prefetched (`TrainingStream`). Under a multi-worker
  strategy each worker reads a disjoint share of the files (`worker_share`).

Values are read the way `pandas.read_csv` reads them (fields stripped, pandas' missing-value
markers such as empty, `NA`, `null` or `nan` are missing, `3.0` in a category is `3`), through
one function (`datasets.stream_text.canonical_text`) that the sample and the stream share. A line
is one row: quoted fields may hold commas and quotes, not line breaks.
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import tensorflow as tf

from common import problems
from common.errors import InputError
from datasets.stream_scan import RowCounts, check_rows, sample_frame, scan_rows
from datasets.stream_text import (
    BUCKETS,
    SCAN_BATCH,
    SPLITS,
    SplitRanges,
    assign_splits,
    canonical_text,
    nonblank,
    parse_numbers,
    split_ranges,
)
from datasets.tabular import (
    MISSING_CATEGORY,
    TabularSchema,
    TabularSplits,
    infer_schema,
    is_pattern,
    warn,
)

TRAIN_CYCLE = 8  # shards a training epoch reads in turn
SHUFFLE_LINES = 10_000  # training lines in the shuffle buffer (a few MB of text)


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
class StreamingSplits(TabularSplits):
    """`TabularSplits` whose frames are bounded samples of shards that are streamed to train.

    `train` holds a seeded uniform sample of `sample_rows` training rows (schema, preprocessing
    statistics, baselines, calibration); `validation` and `test` one of `held_out_rows` rows of
    theirs, each drawn over all rows of its split (`datasets.stream_scan.Reservoir`).

    Attributes:
        pattern: `--data` as given.
        files: The shards, sorted.
        header: Their shared header.
        seed: Key of the split hash.
        ranges: The split's bucket ranges.
        counts: Rows per split over all shards (`datasets.stream_scan.scan_rows`).
        sample_rows: The configured sample size ...
        held_out_rows: ... and held-out size.
        scanned_lines: Lines the samples were drawn from (every non-blank line).
        test_source: `--test-data`, when it replaces the test split.
        seconds: Listing, checking, counting and sampling took this long.
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


def _test_frame(test_data: str, rows: int, target: str, seed: int,
                keep_text: Sequence[str]) -> pd.DataFrame:
    """A seeded uniform sample of `rows` rows of `--test-data` (a file or a pattern), streamed."""
    files = list_shards(test_data) if is_pattern(test_data) else [test_data]
    if not tf.io.gfile.exists(files[0]):
        raise InputError(f"test data file not found: '{test_data}'. Pass an existing CSV file "
                         "or pattern.")
    test_header = check_headers(files)
    if target not in test_header:
        raise InputError(f"test data '{test_data}' has no target column '{target}'; its "
                         f"columns are: {', '.join(test_header)}.")
    everything = SplitRanges(BUCKETS, BUCKETS)  # every row is a test row
    scan = scan_rows(files, test_header, target, seed, everything, {"test": rows},
                     text_columns=test_header)  # only sampled: its rows are checked when scored
    if scan.counts.missing_target:
        warn(f"dropped {scan.counts.missing_target} row(s) of '{test_data}' with no value in "
             f"target '{target}'.")
    return sample_frame(scan.samples["test"], test_header, files, keep_text)


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
    """Lists, checks, counts and samples streamed CSV shards (see the module docstring).

    One pass over every line (`scan_rows`) counts the splits and draws the samples; the schema
    is inferred on the samples; then what the pass found is held against it (`check_rows`).

    Args:
        data: A file pattern, or one CSV path (with `--stream`).
        problem: `"binary"`, `"multiclass"` or `"regression"`.
        target: The target column (required).
        test_data: Optional file or pattern from which a sample of `held_out_rows` rows is the
            test set; then `data` is split into train and validation only.
        validation_fraction: Fraction of the non-test rows for validation.
        test_fraction: Fraction of all rows for test (ignored with `test_data`).
        seed: Key of the split hash and of the samples.
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
    classify = problems.get(problem).classifies
    scan = scan_rows(files, header, target, seed, ranges, quotas, classify=classify,
                     text_columns=categorical)
    keep_text = [*categorical] + ([target] if classify else [])
    frames = {name: sample_frame(scan.samples[name], header, files, keep_text)
              for name in SPLITS}
    if classify:  # integer class values stay numbers, as read_csv makes them
        present = pd.concat([frame[target] for frame in frames.values()]).dropna()
        if len(present) and present.str.fullmatch(r"[+-]?\d+").all():
            for frame in frames.values():
                frame[target] = pd.to_numeric(frame[target]).astype("Int64").astype(object)
    if test_data:
        frames["test"] = _test_frame(test_data, held_out_rows, target, seed, keep_text)
    needed = SPLITS if not test_data else SPLITS[:2]
    short = [name for name in needed if len(frames[name]) == 0]
    if short:
        raise InputError(f"{source} has {scan.counts.lines} data lines and none "
                         f"of them fell in the {' and '.join(short)} split. Add rows, or raise "
                         "data.validation_fraction / data.test_fraction.")
    sample = pd.concat([frames[name] for name in needed], ignore_index=True)
    schema = infer_schema(sample, target, problem, source=f"the sample of {source}",
                          categorical=categorical, positive_label=positive_label,
                          max_classes=max(2, len(sample) // 5))
    check_rows(scan, header, schema, source)
    return StreamingSplits(
        name=(Path(data).parent.name or "shards") if len(files) > 1 or is_pattern(data)
        else Path(data).stem,
        schema=schema, train=frames["train"], validation=frames["validation"],
        test=frames["test"], pattern=data, files=files, header=header, seed=seed,
        ranges=ranges, counts=scan.counts, sample_rows=sample_rows,
        held_out_rows=held_out_rows, scanned_lines=scan.counts.lines, test_source=test_data,
        seconds=time.perf_counter() - started)

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
        problem = problems.get(self.splits.schema.problem)
        if problem.per_class_outputs:
            return tf.cast(table.lookup(text), tf.int32)
        if problem.classifies:
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
        table = (self.decoder.label_table() if problems.get(splits.schema.problem).classifies
                 else None)

        def training_lines(lines):
            lines = tf.boolean_mask(lines, nonblank(lines))
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


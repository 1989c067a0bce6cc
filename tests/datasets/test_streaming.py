"""Streamed CSV shards: split assignment, bounded samples, row checks and worker shares."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from common.errors import InputError
from datasets.preprocessing import TabularPreprocessor
from datasets.stream_scan import Reservoir, sample_keys, scan_rows
from datasets.streaming import (
    RowDecoder,
    TrainingStream,
    assign_splits,
    load_streaming,
    share_lines,
    split_ranges,
    worker_share,
)
from datasets.tabular import features_from_frame, streams
from tests.helpers import PRICE_ROWS, PRICE_SHARDS, make_user_frame, price_table

ROWS = 900


def user_rows(rows: int = ROWS, seed: int = 3) -> pd.DataFrame:
    """The user-like table with a unique `row_id` first, to tell rows apart."""
    frame = make_user_frame(rows, seed)
    frame.insert(0, "row_id", np.arange(rows))
    return frame


def write_shards(folder, frame: pd.DataFrame, parts: int, order=None) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rows = frame if order is None else frame.iloc[order]
    for index, chunk in enumerate(np.array_split(np.arange(len(rows)), parts)):
        rows.iloc[chunk].to_csv(folder / f"part-{index:02d}.csv", index=False)
    return str(folder / "*.csv")


def load(pattern: str, **settings):
    settings = {"sample_rows": 200, "held_out_rows": 60, "seed": 0, **settings}
    return load_streaming(pattern, "binary", "bought", **settings)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("shards"), user_rows(), 3)


@pytest.fixture(scope="module")
def splits(shards):
    return load(shards)


def data_lines(pattern: str) -> list[bytes]:
    return [line for line in share_lines(worker_share(sorted(tf.io.gfile.glob(pattern)), 1, 0))
            .as_numpy_iterator()]


def row_ids(lines) -> np.ndarray:
    return np.array([int(line.split(b",")[0]) for line in lines])


def test_a_pattern_streams_and_a_file_does_not(tmp_path):
    (tmp_path / "odd[1].csv").write_text("a,y\n1,2\n")
    assert streams("shards/*.csv") and streams("part-?.csv") and streams("part-[01].csv")
    assert not streams("my.csv") and not streams("smartwatch")
    assert not streams(str(tmp_path / "odd[1].csv"))  # an existing file is that file
    assert streams("my.csv", stream=True)


def test_split_ranges_follow_the_fractions():
    ranges = split_ranges(0.2, 0.2)
    assert (ranges.test_end, ranges.validation_end) == (2000, 3600)
    assert split_ranges(0.25, 0.0).validation_end == 2500


def test_split_of_a_line_is_deterministic_and_independent_of_order_and_batch():
    lines = tf.constant([f"{i},{i * 7 % 13},row text {i}" for i in range(20_000)])
    ranges = split_ranges(0.2, 0.2)
    split = assign_splits(lines, 0, ranges).numpy()
    assert np.array_equal(split, assign_splits(lines, 0, ranges).numpy())
    order = np.random.default_rng(0).permutation(20_000)
    shuffled = assign_splits(tf.gather(lines, order), 0, ranges).numpy()
    assert np.array_equal(shuffled, split[order])
    one_by_one = [int(assign_splits(lines[i], 0, ranges)) for i in range(0, 20_000, 997)]
    assert one_by_one == split[::997].tolist()
    shares = np.bincount(split, minlength=3) / len(split)
    assert shares == pytest.approx([0.64, 0.16, 0.20], abs=0.015)
    other_seed = assign_splits(lines, 1, ranges).numpy()
    assert 0.3 < (other_seed != split).mean() < 0.7  # another seed, another split


def test_splits_agree_however_the_rows_are_sharded(tmp_path, splits):
    frame = user_rows()
    order = np.random.default_rng(1).permutation(len(frame))
    other = load(write_shards(tmp_path / "reshuffled", frame, 5, order))
    assert other.counts == splits.counts
    for name in ("train", "validation", "test"):  # the same rows, in the same order
        assert getattr(other, name)["row_id"].tolist() == getattr(splits, name)["row_id"].tolist()
    assert sum((splits.counts.train, splits.counts.validation, splits.counts.test)) == ROWS
    single = load(write_shards(tmp_path / "one", frame, 1), sample_rows=ROWS,
                  held_out_rows=ROWS)
    assert len(single.train) == splits.counts.train  # the sample is the whole split here
    assert len(single.validation) == splits.counts.validation
    assert len(single.test) == splits.counts.test
    train, validation, test = (set(single.train["row_id"]), set(single.validation["row_id"]),
                               set(single.test["row_id"]))
    assert not train & validation and not train & test and not validation & test
    assert train | validation | test == set(range(ROWS))
    for name in ("train", "validation", "test"):  # each bounded sample is from its own split
        assert set(getattr(splits, name)["row_id"]) <= {"train": train, "validation": validation,
                                                        "test": test}[name]


def test_samples_are_bounded_and_the_schema_comes_from_them(splits):
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (200, 60, 60)
    assert splits.counts.train > 500 and splits.counts.lines == ROWS
    assert splits.schema.labels == ["no", "yes"]
    assert splits.schema.numeric == ["row_id", "age", "annual income"]
    assert splits.schema.categorical == ["color"]
    assert splits.scanned_lines == ROWS  # the samples are drawn from every line


def test_stream_decodes_rows_exactly_as_the_in_memory_path(splits):
    """The sample frame (what baselines and preprocessing see) and the stream agree."""
    scan = scan_rows(splits.files, splits.header, "bought", splits.seed, splits.ranges,
                     {"train": 200}, classify=True)
    decoder = RowDecoder(splits.header, splits.schema)
    streamed, bad = decoder.features(decoder.fields(tf.constant(scan.samples["train"])))
    expected = features_from_frame(splits.train, splits.schema)
    assert not bad.numpy().any()
    for name, values in expected.items():
        got = streamed[name].numpy()
        if values.dtype == object:
            assert got.astype(str).tolist() == values.astype(str).tolist(), name
        else:
            np.testing.assert_array_equal(got, values, err_msg=name)
    preprocessor = TabularPreprocessor(splits.schema).adapt(expected)
    np.testing.assert_allclose(preprocessor.transform_tensors(streamed).numpy(),
                               preprocessor.transform(expected), rtol=1e-6)


def test_one_epoch_streams_every_training_row_once(splits):
    ids = {}

    def identity(features):
        return features["row_id"]

    stream = TrainingStream(splits, identity)
    batches = stream.dataset(batch_size=32, seed=0).unbatch().take(2 * len(stream))
    ids = np.array([int(x[0]) for x, _ in batches.as_numpy_iterator()])
    first, second = ids[:len(stream)], ids[len(stream):]
    assert len(set(first)) == len(stream) == len(set(second))
    assert set(first) == set(second)
    assert not np.array_equal(first, second)  # reshuffled every epoch
    held_out = set(splits.validation["row_id"]) | set(splits.test["row_id"])
    assert not held_out & set(first)


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_worker_shares_are_disjoint_and_cover_every_line(shards, workers):
    files = sorted(tf.io.gfile.glob(shards))
    everything = row_ids(data_lines(shards))
    seen = []
    for index in range(workers):
        share = worker_share(files, workers, index)
        assert (share.row_shards == 1) == (len(files) >= workers)
        seen.append(set(row_ids(share_lines(share).as_numpy_iterator())))
    assert set().union(*seen) == set(everything)
    assert sum(len(part) for part in seen) == len(everything)  # disjoint


def test_worker_share_splits_files_first():
    files = [f"part-{i}" for i in range(5)]
    assert [worker_share(files, 2, i).files for i in range(2)] == [
        ["part-0", "part-2", "part-4"], ["part-1", "part-3"]]
    assert worker_share(files[:1], 2, 1) == worker_share(["part-0"], 2, 1)
    assert worker_share(files[:1], 2, 1).row_shards == 2
    with pytest.raises(ValueError, match="worker_index"):
        worker_share(files, 2, 2)


def test_rows_without_target_are_dropped_with_a_warning(tmp_path, capsys):
    frame = user_rows(300)
    frame.loc[frame.index[-20:], "bought"] = np.nan
    result = load(write_shards(tmp_path / "s", frame, 2), sample_rows=50, held_out_rows=20)
    assert result.counts.missing_target == 20
    assert result.counts.train + result.counts.validation + result.counts.test == 280
    assert "dropped 20 row(s) of" in capsys.readouterr().err


@pytest.mark.parametrize(("change", "fragments"), [
    (lambda frame: frame.assign(bought=frame["bought"].where(frame.index != 1290, "maybe")),
     ["1 row(s) of class(es) 'maybe'", "part-01.csv", "never saw", "data.sample_rows"]),
    (lambda frame: frame.assign(age=frame["age"].astype(object).where(frame.index != 1290,
                                                                       "forty")),
     ["column 'age'", "'forty' in '", "part-01.csv", "not a number", "(1 such value",
      "--categorical age"]),
])
def test_bad_rows_beyond_the_sample_stop_before_training(tmp_path, change, fragments):
    """One odd row in 2,000 is almost surely outside the samples; the pass still finds it."""
    pattern = write_shards(tmp_path / "s", change(user_rows(2000)), 2)
    with pytest.raises(InputError) as error:
        load(pattern, sample_rows=30, held_out_rows=10)
    for fragment in fragments:
        assert fragment in str(error.value), str(error.value)


@pytest.mark.parametrize("value", ["inf", "-Infinity", "1e400", "2e15"])
@pytest.mark.parametrize("every_row", [False, True], ids=["one_row", "every_row"])
def test_infinite_and_huge_numbers_are_refused_as_in_memory(tmp_path, value, every_row):
    """As `frame_checks.check_finite` refuses them in a loaded CSV: float32 training overflows.
    The pass finds one such row anywhere (or the sample's own check, if it drew that row)."""
    frame = user_rows(2000)
    frame["age"] = frame["age"].astype(object)
    frame.loc[frame.index if every_row else 1290, "age"] = value
    pattern = write_shards(tmp_path / "s", frame, 2)
    with pytest.raises(InputError) as error:
        load(pattern, sample_rows=30, held_out_rows=10)
    message = str(error.value)
    assert "column 'age'" in message and "1e+15" in message, message
    assert "\n" not in message


def test_a_malformed_line_is_named_by_file_and_line(tmp_path):
    pattern = write_shards(tmp_path / "s", user_rows(300), 2)
    path = tmp_path / "s" / "part-01.csv"
    path.write_text(path.read_text() + "1,2,3\n")
    with pytest.raises(InputError, match=r"line 152 of '.*part-01.csv' has 3 fields but the "
                                         r"header has 5"):
        load(pattern, sample_rows=30, held_out_rows=10)


def test_test_data_replaces_the_test_split(tmp_path):
    pattern = write_shards(tmp_path / "s", user_rows(300), 2)
    holdout = tmp_path / "holdout.csv"
    user_rows(50, seed=9).to_csv(holdout, index=False)
    result = load(pattern, test_data=str(holdout), sample_rows=50, held_out_rows=20)
    assert result.counts.test == 0 and result.counts.train + result.counts.validation == 300
    ids = result.test["row_id"].tolist()
    assert len(set(ids)) == 20 and set(ids) <= set(range(50))
    assert max(ids) >= 25  # drawn from the whole file, not its first rows


@pytest.mark.parametrize("problem", ["regression", "multiclass"])
def test_streamed_targets_match_the_in_memory_targets(tmp_path, problem):
    frame = user_rows(300)
    target = "annual income" if problem == "regression" else "color"
    frame = frame.dropna(subset=[target])
    if problem == "multiclass":
        frame = frame.drop(columns="bought")
    pattern = write_shards(tmp_path / problem, frame, 2)
    result = load_streaming(pattern, problem, target, sample_rows=1000, held_out_rows=1000)
    stream = TrainingStream(result, lambda features: features["row_id"], target_mean=50_000.0,
                            target_std=10_000.0)
    x, y = next(iter(stream.dataset(batch_size=len(stream), seed=0)))
    by_id = frame.set_index("row_id")[target]
    expected = by_id.loc[x.numpy().reshape(-1).astype(int)]
    if problem == "regression":
        assert y.shape == (len(stream), 1) and y.dtype == tf.float32
        np.testing.assert_allclose(y.numpy().reshape(-1), (expected - 50_000) / 10_000,
                                   rtol=1e-5)
    else:
        assert y.shape == (len(stream),) and y.dtype == tf.int32
        assert result.schema.labels == ["blue", "green", "red"]
        assert [result.schema.labels[i] for i in y.numpy()] == expected.tolist()


# A price table sorted by price, cut into shards (tests.helpers.price_table says why).
@pytest.fixture(scope="module")
def sorted_splits(tmp_path_factory):
    pattern = write_shards(tmp_path_factory.mktemp("sorted"), price_table(), PRICE_SHARDS)
    return load_streaming(pattern, "regression", "price", sample_rows=400, held_out_rows=200)


@pytest.mark.parametrize(("name", "rows", "tolerance"), [
    ("train", 400, 0.2), ("validation", 200, 0.25), ("test", 200, 0.25)])
def test_samples_of_sorted_shards_are_representative(sorted_splits, name, rows, tolerance):
    table = price_table()
    sample = getattr(sorted_splits, name)
    assert len(sample) == rows
    deviation = (sample["price"].mean() - table["price"].mean()) / table["price"].std()
    assert abs(deviation) < tolerance, f"{name} mean is {deviation:+.2f} standard deviations off"
    per_shard = PRICE_ROWS // PRICE_SHARDS
    shard, position = np.divmod(sample["row_id"].to_numpy(), per_shard)
    assert set(shard) == set(range(PRICE_SHARDS))  # from every shard ...
    assert (position >= per_shard // 2).mean() > 0.35  # ... and from all along each one


def test_a_mean_predictor_scores_alike_on_test_rows_and_on_the_whole_table(sorted_splits):
    """The issue's symptom: the mean baseline's test RMSE was 899 against 3,981 overall."""
    prediction = sorted_splits.train["price"].mean()
    table = price_table()

    def rmse(values):
        return float(np.sqrt(np.mean((values - prediction) ** 2)))

    ratio = rmse(sorted_splits.test["price"]) / rmse(table["price"])
    assert 0.8 < ratio < 1.2, ratio


def test_samples_depend_on_the_seed_not_on_the_file_order(sorted_splits):
    files = sorted_splits.files
    quotas = {"train": 400, "validation": 200, "test": 200}
    backwards = scan_rows(files[::-1], sorted_splits.header, "price", 0, sorted_splits.ranges,
                          quotas)
    assert backwards.counts == sorted_splits.counts
    for name in ("train", "validation", "test"):
        ids = row_ids(backwards.samples[name])
        assert ids.tolist() == getattr(sorted_splits, name)["row_id"].tolist(), name
    other_seed = scan_rows(files, sorted_splits.header, "price", 1, sorted_splits.ranges, quotas)
    assert set(row_ids(other_seed.samples["test"])) != set(sorted_splits.test["row_id"])


def test_reservoir_keeps_the_smallest_keys_in_any_order_and_batching():
    rng = np.random.default_rng(0)
    keys = rng.permutation(10_000).astype(np.int64)
    lines = np.array([f"line {key}".encode() for key in keys], dtype=object)
    expected = [f"line {key}".encode() for key in range(300)]
    for batch in (1, 97, 4096, 10_000):
        order = rng.permutation(len(keys))
        reservoir = Reservoir(300)
        for start in range(0, len(keys), batch):
            chosen = order[start:start + batch]
            reservoir.offer(keys[chosen], lines[chosen])
            assert len(reservoir.keys) <= 300  # memory: never more than the sample
        assert reservoir.lines() == expected, batch
    few = Reservoir(300)
    few.offer(keys[:5], lines[:5])
    assert sorted(few.lines()) == sorted(lines[:5].tolist())
    empty = Reservoir(0)
    empty.offer(keys, lines)
    assert empty.lines() == []


def test_sample_keys_are_seeded_and_unrelated_to_the_split():
    lines = tf.constant([f"{i},{i % 7},text {i}" for i in range(20_000)])
    keys = sample_keys(lines, 0).numpy()
    assert np.array_equal(keys, sample_keys(lines, 0).numpy())
    assert (keys != sample_keys(lines, 1).numpy()).all()
    split = assign_splits(lines, 0, split_ranges(0.2, 0.2)).numpy()
    smallest = np.argsort(keys)[:2000]  # what a sample of 2,000 would take
    shares = np.bincount(split[smallest], minlength=3) / 2000
    assert shares == pytest.approx([0.64, 0.16, 0.20], abs=0.04)

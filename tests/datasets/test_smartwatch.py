"""Tests of `datasets.smartwatch`: the seeded generator and the committed CSV it produced."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets import smartwatch
from datasets.smartwatch import (
    COLUMNS,
    DEFAULT_PATH,
    FLIP_RATE,
    MISSING_RATE,
    TARGET,
    clean_rule,
    generate_smartwatch,
    round_columns,
    write_csv,
)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_smartwatch()


def _is_yes(frame: pd.DataFrame) -> np.ndarray:
    return (frame[TARGET] == "yes").to_numpy()


def test_same_seed_same_frame():
    first, second = generate_smartwatch(300, seed=3), generate_smartwatch(300, seed=3)
    pd.testing.assert_frame_equal(first, second)


def test_different_seeds_differ():
    first, second = generate_smartwatch(300, seed=3), generate_smartwatch(300, seed=4)
    assert not first.equals(second)
    assert not np.array_equal(first["age"].to_numpy(), second["age"].to_numpy())
    assert not np.array_equal(_is_yes(first), _is_yes(second))


def test_committed_csv_matches_generator(frame):
    committed = pd.read_csv(DEFAULT_PATH)
    pd.testing.assert_frame_equal(committed, round_columns(frame))


def test_write_csv_round_trips(tmp_path):
    path = write_csv(tmp_path / "sub" / "smartwatch.csv")
    assert path.exists()
    assert path.read_bytes() == DEFAULT_PATH.read_bytes()


def test_generator_output_is_already_rounded(frame):
    pd.testing.assert_frame_equal(round_columns(frame), frame)
    assert (frame["annual_salary"] == frame["annual_salary"].round()).all()


def test_size_columns_and_dtypes(frame):
    assert len(frame) >= 2000
    assert len(frame) == 2500
    assert tuple(frame.columns) == COLUMNS
    assert set(COLUMNS) == {"height_cm", "age", "annual_salary", "daily_travel_km",
                            "occupation", TARGET}
    for column in ("height_cm", "annual_salary", "daily_travel_km"):
        assert pd.api.types.is_float_dtype(frame[column]), column
    assert pd.api.types.is_integer_dtype(frame["age"])
    assert pd.api.types.is_string_dtype(frame["occupation"])
    assert pd.api.types.is_string_dtype(frame[TARGET])


def test_value_ranges(frame):
    assert frame["age"].between(16, 80).all()
    assert frame["annual_salary"].between(15_000, 200_000).all()
    assert frame["annual_salary"].median() == pytest.approx(50_000, rel=0.2)
    assert (frame["daily_travel_km"] >= 0).all()
    assert frame["height_cm"].dropna().between(145, 205).all()
    assert set(frame["occupation"].dropna()) == set(smartwatch.OCCUPATIONS)


def test_target_values_and_balance(frame):
    assert set(frame[TARGET]) == {"yes", "no"}
    assert 0.35 <= _is_yes(frame).mean() <= 0.50
    for seed in range(3):
        assert 0.35 <= _is_yes(generate_smartwatch(seed=seed)).mean() <= 0.50


def test_missing_values_where_documented(frame):
    missing = frame.isna().mean()
    for column in ("height_cm", "occupation"):
        assert 0.01 <= missing[column] <= 0.03, column
        assert missing[column] == pytest.approx(MISSING_RATE) == pytest.approx(0.02)
    for column in ("age", "annual_salary", "daily_travel_km", TARGET):
        assert missing[column] == 0, column
    committed = pd.read_csv(DEFAULT_PATH)
    assert committed["occupation"].isna().sum() == frame["occupation"].isna().sum()


def test_label_noise_rate_matches_flip_rate(frame):
    clean = clean_rule(frame)
    assert clean.dtype == bool
    assert clean.shape == (len(frame),)
    noise = (clean != _is_yes(frame)).mean()
    assert FLIP_RATE == 0.08  # the rate the module docstring states
    assert noise == pytest.approx(FLIP_RATE, abs=0.005)
    # The Bayes-optimal classifier is the clean rule: 1 - flip rate on the whole dataset.
    assert (clean == _is_yes(frame)).mean() == pytest.approx(smartwatch.BAYES_ACCURACY, abs=0.005)


def test_clean_rule_is_not_trivial(frame):
    clean = clean_rule(frame)
    assert 0.35 <= clean.mean() <= 0.50
    # Each feature of the rule matters: changing it changes some clean labels.
    for column, change in (("age", 15), ("annual_salary", 20_000), ("daily_travel_km", 15)):
        shifted = frame.assign(**{column: frame[column] + change})
        assert (clean_rule(shifted) != clean).mean() > 0.05, column
    healthcare = frame.assign(occupation="healthcare")
    assert clean_rule(healthcare).sum() > clean.sum()


def test_clean_rule_treats_missing_occupation_as_not_healthcare(frame):
    rows = frame[frame["occupation"].isna()]
    assert len(rows) > 0
    as_office = rows.assign(occupation="office")
    np.testing.assert_array_equal(clean_rule(rows), clean_rule(as_office))


def test_height_is_a_distractor(frame):
    clean = clean_rule(frame)
    rng = np.random.default_rng(0)
    shuffled = frame.assign(height_cm=rng.permutation(frame["height_cm"].to_numpy()))
    np.testing.assert_array_equal(clean_rule(shuffled), clean)
    np.testing.assert_array_equal(clean_rule(frame.drop(columns="height_cm")), clean)
    known = frame["height_cm"].notna().to_numpy()
    correlation = np.corrcoef(frame["height_cm"].to_numpy()[known], _is_yes(frame)[known])[0, 1]
    assert abs(correlation) < 0.05
    # Independent of the other features too, so it cannot carry their signal either.
    for column in ("age", "annual_salary", "daily_travel_km"):
        values = frame[column].to_numpy(dtype=float)[known]
        assert abs(np.corrcoef(frame["height_cm"].to_numpy()[known], values)[0, 1]) < 0.08, column
    by_occupation = frame.groupby("occupation")["height_cm"].mean()
    assert by_occupation.max() - by_occupation.min() < 3.0


def test_rejects_empty_request():
    with pytest.raises(ValueError, match="n_rows"):
        generate_smartwatch(0)

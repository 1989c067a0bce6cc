"""Tests of `datasets.store_sales`: the seeded generator and the committed CSV it produced."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets import store_sales
from datasets.store_sales import (
    COLUMNS,
    DEFAULT_PATH,
    FEATURES,
    LOCATION_TYPES,
    MISSING_RATE,
    NOISE_SIGMA,
    TARGET,
    clean_sales,
    generate_store_sales,
    round_columns,
    write_csv,
)

NUMERIC = ("floor_area_m2", "floors", "distance_to_apartments_km", "distance_to_competitor_km")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_store_sales()


def _rmse(truth: np.ndarray, prediction: np.ndarray) -> float:
    return float(np.sqrt(np.mean((truth - prediction) ** 2)))


def _r2(truth: np.ndarray, prediction: np.ndarray) -> float:
    return 1.0 - np.sum((truth - prediction) ** 2) / np.sum((truth - truth.mean()) ** 2)


def test_same_seed_same_frame():
    first, second = generate_store_sales(300, seed=3), generate_store_sales(300, seed=3)
    pd.testing.assert_frame_equal(first, second)


def test_different_seeds_differ():
    first, second = generate_store_sales(300, seed=3), generate_store_sales(300, seed=4)
    assert not first.equals(second)
    assert not np.array_equal(first["floor_area_m2"].to_numpy(), second["floor_area_m2"].to_numpy())
    assert not np.array_equal(first[TARGET].to_numpy(), second[TARGET].to_numpy())


def test_committed_csv_matches_generator(frame):
    committed = pd.read_csv(DEFAULT_PATH)
    pd.testing.assert_frame_equal(committed, round_columns(frame))
    pd.testing.assert_frame_equal(committed, frame)


def test_write_csv_round_trips(tmp_path):
    path = write_csv(tmp_path / "sub" / "store_sales.csv")
    assert path.exists()
    assert path.read_bytes() == DEFAULT_PATH.read_bytes()


def test_generator_output_is_already_rounded(frame):
    pd.testing.assert_frame_equal(round_columns(frame), frame)
    assert (frame[TARGET] == frame[TARGET].round()).all()
    assert (frame["floor_area_m2"] == frame["floor_area_m2"].round(1)).all()


def test_size_columns_and_dtypes(frame):
    assert len(frame) >= 2000
    assert len(frame) == 2000
    assert tuple(frame.columns) == COLUMNS == (*FEATURES, TARGET)
    assert set(COLUMNS) == {*NUMERIC, "location_type", TARGET}
    assert TARGET == "monthly_sales"
    for column in ("floor_area_m2", "distance_to_apartments_km", "distance_to_competitor_km",
                   TARGET):
        assert pd.api.types.is_float_dtype(frame[column]), column
    assert pd.api.types.is_integer_dtype(frame["floors"])
    assert pd.api.types.is_string_dtype(frame["location_type"])


def test_feature_ranges(frame):
    assert frame["floor_area_m2"].between(150, 3000).all()
    assert frame["floors"].between(1, 4).all()
    assert set(frame["floors"]) == {1, 2, 3, 4}
    assert (frame["distance_to_apartments_km"] >= 0).all()
    assert (frame["distance_to_competitor_km"].dropna() >= 0).all()
    assert set(frame["location_type"].dropna()) == set(LOCATION_TYPES)
    assert 3 <= len(LOCATION_TYPES) <= 4


def test_target_positive_and_in_stated_range(frame):
    sales = frame[TARGET]
    assert (sales > 0).all()
    # Docstring: 52,988 .. 2,120,507 with the default seed, median about 330,000.
    assert sales.min() == 52_988 and sales.max() == 2_120_507
    assert sales.median() == pytest.approx(330_000, rel=0.05)
    for seed in range(3):
        other = generate_store_sales(seed=seed)[TARGET]
        assert other.between(20_000, 3_000_000).all(), seed
        assert other.median() == pytest.approx(330_000, rel=0.1), seed
    # Realistic currency units: spans tens of thousands to millions, so target scaling matters.
    assert sales.max() / sales.min() > 20


def test_missing_values_where_documented(frame):
    missing = frame.isna().mean()
    for column in ("distance_to_competitor_km", "location_type"):
        assert 0.01 <= missing[column] <= 0.03, column
        assert missing[column] == pytest.approx(MISSING_RATE) == pytest.approx(0.02)
    for column in ("floor_area_m2", "floors", "distance_to_apartments_km", TARGET):
        assert missing[column] == 0, column
    # Chosen independently: the two blanked sets are not the same rows.
    both = frame["distance_to_competitor_km"].isna() & frame["location_type"].isna()
    assert both.sum() < frame["location_type"].isna().sum()
    committed = pd.read_csv(DEFAULT_PATH)
    assert committed["location_type"].isna().sum() == frame["location_type"].isna().sum()


def test_noise_level_matches_stated_sigma(frame):
    clean = clean_sales(frame)
    assert clean.dtype == float
    assert clean.shape == (len(frame),)
    assert np.isfinite(clean).all() and (clean > 0).all()
    log_ratio = np.log(frame[TARGET].to_numpy() / clean)
    assert NOISE_SIGMA == 0.15  # the level the module docstring states
    assert log_ratio.std() == pytest.approx(NOISE_SIGMA, abs=0.01)
    assert log_ratio.mean() == pytest.approx(-NOISE_SIGMA**2 / 2, abs=0.01)
    # Unbiased: the clean rule is the conditional mean.
    assert frame[TARGET].mean() / clean.mean() == pytest.approx(1.0, abs=0.02)
    # Noise independent of the features.
    for column in ("floor_area_m2", "distance_to_apartments_km"):
        assert abs(np.corrcoef(frame[column].to_numpy(), log_ratio)[0, 1]) < 0.06, column


def test_noise_floor_matches_docstring(frame):
    clean, sales = clean_sales(frame), frame[TARGET].to_numpy()
    assert _rmse(sales, clean) == pytest.approx(65_212, abs=1)
    assert _r2(sales, clean) == pytest.approx(0.910, abs=0.0005)
    assert f"RMSE {65_212:,} and R2 0.910" in store_sales.__doc__


def test_clean_sales_uses_published_missing_values(frame):
    no_competitor = frame[frame["distance_to_competitor_km"].isna()]
    assert len(no_competitor) > 0
    far = no_competitor.assign(distance_to_competitor_km=1e6)
    np.testing.assert_allclose(clean_sales(no_competitor), clean_sales(far))
    no_location = frame[frame["location_type"].isna()]
    assert len(no_location) > 0
    np.testing.assert_allclose(clean_sales(no_location),
                               clean_sales(no_location.assign(location_type="suburb")))


def test_every_feature_matters(frame):
    clean = clean_sales(frame)
    for column, factor in (("floor_area_m2", 2.0), ("floors", 2),
                           ("distance_to_apartments_km", 2.0),
                           ("distance_to_competitor_km", 2.0)):
        changed = clean_sales(frame.assign(**{column: frame[column] * factor}))
        assert np.mean(np.abs(changed / clean - 1) > 0.02) > 0.3, column
    assert not np.allclose(clean_sales(frame.assign(location_type="mall")),
                           clean_sales(frame.assign(location_type="highway")))


def test_rule_is_non_linear_with_interactions(frame):
    base = frame.iloc[:1].assign(floors=1, distance_to_apartments_km=0.5,
                                 distance_to_competitor_km=np.nan, location_type="suburb")
    # Sub-linear in the area: doubling it multiplies sales by 2 ** 0.6, not by 2.
    ratio = (clean_sales(base.assign(floor_area_m2=2000.0))
             / clean_sales(base.assign(floor_area_m2=1000.0)))[0]
    assert ratio == pytest.approx(2**0.6)
    # A competitor next door hurts a highway store far more than a mall store (interaction).
    penalty = {}
    for location in ("highway", "mall"):
        near = clean_sales(base.assign(location_type=location, distance_to_competitor_km=0.0))
        none = clean_sales(base.assign(location_type=location))
        penalty[location] = 1 - (near / none)[0]
    assert penalty["highway"] > 3 * penalty["mall"] > 0
    # Sales decay with the distance to the apartments, and not linearly.
    by_km = [clean_sales(base.assign(distance_to_apartments_km=km))[0] for km in (0, 1, 2, 8)]
    assert by_km[0] > by_km[1] > by_km[2] > by_km[3] > 0
    assert by_km[0] - by_km[1] > 1.2 * (by_km[1] - by_km[2])


def test_linear_model_leaves_much_larger_error_than_clean_rule(frame):
    numbers = frame[list(NUMERIC)].astype(float)
    numbers = numbers.fillna(numbers.median())
    design = pd.concat([numbers, pd.get_dummies(frame["location_type"], dummy_na=True,
                                                dtype=float)], axis=1).to_numpy()
    design = np.column_stack([np.ones(len(design)), design])
    sales = frame[TARGET].to_numpy()
    coefficients, *_ = np.linalg.lstsq(design, sales, rcond=None)
    linear = _rmse(sales, design @ coefficients)  # in-sample: the best any linear fit can do
    floor = _rmse(sales, clean_sales(frame))
    assert linear > 1.5 * floor
    assert _r2(sales, design @ coefficients) < 0.8 < _r2(sales, clean_sales(frame))


def test_models_learn_it(frame):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import train_test_split

    features = frame[list(FEATURES)].assign(
        location_type=frame["location_type"].astype("category"))
    train, test, y_train, y_test = train_test_split(features, frame[TARGET].to_numpy(),
                                                    test_size=0.2, random_state=0)
    boosted = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0)
    boosted_r2 = _r2(y_test, boosted.fit(train, y_train).predict(test))
    encoded = pd.get_dummies(features, columns=["location_type"], dummy_na=True, dtype=float)
    encoded = encoded.fillna(encoded.loc[train.index].median())
    mean, std = encoded.loc[train.index].mean(), encoded.loc[train.index].std().replace(0, 1)
    scaled = (encoded - mean) / std
    ridge = Ridge().fit(scaled.loc[train.index], y_train)
    ridge_r2 = _r2(y_test, ridge.predict(scaled.loc[test.index]))
    assert 0.8 <= boosted_r2 <= 0.92
    assert ridge_r2 < boosted_r2 - 0.1
    assert boosted_r2 < _r2(y_test, clean_sales(test))


def test_rejects_empty_request():
    with pytest.raises(ValueError, match="n_rows"):
        generate_store_sales(0)

"""Seeded generator of the bundled `store_sales` demo dataset (the course regression example).

Each row is a store; the task is to predict its monthly sales (`monthly_sales`, in whole currency
units) from its floor area, number of floors, distance to the nearest apartment complex, distance
to the nearest competing mart and location type. `python -m datasets.store_sales` regenerates the
committed `datasets/data/store_sales.csv` (2,000 rows, seed 11) byte for byte.

Features (numbers are rounded as published: area to 0.1 m2, distances to 0.01 km):
    location_type: "downtown" (25%), "suburb" (40%), "mall" (15%) or "highway" (20%).
    floor_area_m2: Log-normal (sigma 0.6) with a median of 500 / 800 / 1,000 / 1,400 m2 for
        downtown / suburb / mall / highway, clipped to 150..3000.
    floors: Integer 1..4, 1 + Binomial(3, p) with p growing with the log of the area and 0.25
        higher downtown (mostly 1 or 2 floors).
    distance_to_apartments_km: Gamma (shape 2) with a mean of 0.6 / 1.2 / 1.6 / 3.0 km by
        location type.
    distance_to_competitor_km: Gamma (shape 1.5) with a mean of 0.6 / 1.8 / 0.75 / 3.0 km.

Rule (the clean target): the expected monthly sales are
    clean = 550,000 * (floor_area_m2 / 1,000) ** 0.6 * floors ** 0.3
            * (0.35 + 0.65 * exp(-distance_to_apartments_km / 1.2))
            * (1 - sensitivity[location_type] * exp(-distance_to_competitor_km / 0.8))
            * multiplier[location_type],
    multiplier = downtown 1.25, suburb 1.0, mall 1.45, highway 0.85;
    sensitivity = downtown 0.20, suburb 0.45, mall 0.10, highway 0.55.
Sales grow sub-linearly with the area (doubling it gives +52%), extra floors help less than
proportionally (2 / 3 / 4 floors give x1.23 / x1.39 / x1.52), sales decay with the distance to the
apartments towards 35% of their nearby level, and a competitor next door costs 55% of the sales on
a highway and 45% in a suburb but only 20% downtown and 10% in a mall (an interaction of the
competitor distance with the location type); the location type also scales everything. All
factors multiply, so every feature interacts with the area. `clean_sales` computes this value.

Noise: multiplicative and log-normal, monthly_sales = clean * exp(e) with e ~ Normal(-0.15 ** 2 /
2, 0.15) drawn independently of the features, then rounded to whole units. So ln(monthly_sales /
clean) has a standard deviation of 0.15 (about 15% relative noise) and E[monthly_sales] = clean:
`clean_sales` is the conditional mean, the best possible predictor in squared error.

Missing values: exactly 2% of the rows have no `distance_to_competitor_km` and another,
independently chosen 2% have no `location_type` (NaN; an empty field in the CSV). The target and
the other columns are never missing. The target is computed from the features as published, after
rounding and blanking: a missing competitor distance counts as no competitor nearby (the factor
is 1, the limit of a far competitor) and a missing location type counts as "suburb" (multiplier
1.0, sensitivity 0.45). The clean target therefore stays a deterministic function of the observed
features and the noise floor below is exact.

Target range: with the default seed 52,988 to 2,120,507 (median 329,260, mean 379,837, standard
deviation 217,569); seeds 0..9 give 35,000 to 2.2 million, median about 330,000.

Noise floor (best possible), `clean_sales` against the noisy target on the whole default dataset:
RMSE 65,212 and R2 0.910 (on the 400 test rows of the split below: RMSE 63,795, R2 0.914).

Measured with seed 11 (default 2,000 rows), 80/20 split (`random_state=0`), scikit-learn 1.9,
target not scaled or transformed:
    DummyRegressor (mean): RMSE 217,554, R2 -0.000
    Ridge (median imputation + standard scaling, "missing" category + one-hot location):
        RMSE 119,152, R2 0.700 (the rule is neither linear nor additive)
    HistGradientBoostingRegressor (native NaN handling, location as a categorical feature,
        random_state=0): RMSE 73,663, R2 0.885
    Clean rule (noise floor) on the same 400 test rows: RMSE 63,795, R2 0.914
Mean R2 over the split seeds 0..4: -0.003 / 0.711 / 0.869 / 0.913. A linear regression on the raw
features (median-imputed, one-hot location) fitted on all 2,000 rows still has an in-sample RMSE
of 116,152, 1.8 times the noise floor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TARGET = "monthly_sales"
FEATURES = ("floor_area_m2", "floors", "distance_to_apartments_km", "distance_to_competitor_km",
            "location_type")
COLUMNS = (*FEATURES, TARGET)
LOCATION_TYPES = ("downtown", "suburb", "mall", "highway")

DEFAULT_ROWS = 2000
DEFAULT_SEED = 11
NOISE_SIGMA = 0.15
MISSING_RATE = 0.02
DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "store_sales.csv"
# Decimals of each float column as published (generator output and CSV alike).
DECIMALS = {"floor_area_m2": 1, "distance_to_apartments_km": 2, "distance_to_competitor_km": 2,
            TARGET: 0}

# Rule constants (see the module docstring).
BASE_SALES = 550_000.0
AREA_REFERENCE = 1000.0
AREA_EXPONENT = 0.6
FLOORS_EXPONENT = 0.3
APARTMENT_FLOOR = 0.35
APARTMENT_SCALE_KM = 1.2
COMPETITOR_SCALE_KM = 0.8
REFERENCE_LOCATION = "suburb"
LOCATION_MULTIPLIER = {"downtown": 1.25, "suburb": 1.0, "mall": 1.45, "highway": 0.85}
COMPETITOR_SENSITIVITY = {"downtown": 0.20, "suburb": 0.45, "mall": 0.10, "highway": 0.55}

# Generation constants, per location type: probability, median floor area, mean km to apartments
# and to the nearest competitor.
_LOCATION_PROBABILITIES = (0.25, 0.40, 0.15, 0.20)
_AREA_MEDIAN = {"downtown": 500.0, "suburb": 800.0, "mall": 1000.0, "highway": 1400.0}
_AREA_SIGMA = 0.6
_APARTMENT_MEAN_KM = {"downtown": 0.6, "suburb": 1.2, "mall": 1.6, "highway": 3.0}
_COMPETITOR_MEAN_KM = {"downtown": 0.6, "suburb": 1.8, "mall": 0.75, "highway": 3.0}


def _lookup(location: pd.Series, table: dict[str, float]) -> np.ndarray:
    return location.fillna(REFERENCE_LOCATION).map(table).to_numpy(dtype=float)


def clean_sales(frame: pd.DataFrame) -> np.ndarray:
    """The noise-free expected monthly sales of each store, from its published features.

    Args:
        frame: Rows with at least the columns `FEATURES`. A missing `distance_to_competitor_km`
            counts as no competitor nearby and a missing `location_type` as "suburb".

    Returns:
        A float array of expected sales (the mean of the noisy target given the features).
    """
    area = frame["floor_area_m2"].to_numpy(dtype=float)
    floors = frame["floors"].to_numpy(dtype=float)
    apartments_km = frame["distance_to_apartments_km"].to_numpy(dtype=float)
    competitor_km = frame["distance_to_competitor_km"].to_numpy(dtype=float)
    location = frame["location_type"]
    apartments = APARTMENT_FLOOR + (1 - APARTMENT_FLOOR) * np.exp(-apartments_km
                                                                  / APARTMENT_SCALE_KM)
    nearby = np.nan_to_num(np.exp(-competitor_km / COMPETITOR_SCALE_KM), nan=0.0)
    competitor = 1 - _lookup(location, COMPETITOR_SENSITIVITY) * nearby
    return (BASE_SALES * (area / AREA_REFERENCE) ** AREA_EXPONENT * floors ** FLOORS_EXPONENT
            * apartments * competitor * _lookup(location, LOCATION_MULTIPLIER))


def round_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Rounds the float columns to their published decimals (idempotent).

    Args:
        frame: A store_sales frame.

    Returns:
        A copy with the floor area to 0.1 m2, distances to 0.01 km and sales to whole units.
    """
    frame = frame.copy()
    for column, decimals in DECIMALS.items():
        frame[column] = frame[column].astype(float).round(decimals)
    return frame


def generate_store_sales(n_rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Generates the store_sales dataset; the same seed always gives the same frame.

    Args:
        n_rows: Number of stores (rows).
        seed: Seed of `numpy.random.default_rng`, the only source of randomness.

    Returns:
        A frame with the columns `COLUMNS`, floats already rounded as published (see
        `DECIMALS`), missing values in `distance_to_competitor_km` and `location_type`, and the
        noisy target.

    Example:
        >>> frame = generate_store_sales(500, seed=1)
        >>> frame[TARGET].describe()
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    rng = np.random.default_rng(seed)
    location = np.asarray(LOCATION_TYPES, dtype=object)[
        rng.choice(len(LOCATION_TYPES), size=n_rows, p=_LOCATION_PROBABILITIES)]
    area_median = np.array([_AREA_MEDIAN[loc] for loc in location])
    area = np.clip(area_median * np.exp(rng.normal(0.0, _AREA_SIGMA, n_rows)), 150.0, 3000.0)
    # Bigger stores and downtown stores have more floors: 1 + Binomial(3, p).
    p_floor = np.clip(0.05 + 0.25 * np.log(area / 150.0) / np.log(20.0)
                      + 0.25 * (location == "downtown"), 0.0, 1.0)
    floors = (1 + rng.binomial(3, p_floor)).astype(np.int64)
    apartments_mean = np.array([_APARTMENT_MEAN_KM[loc] for loc in location])
    apartments_km = rng.gamma(2.0, apartments_mean / 2.0)
    competitor_mean = np.array([_COMPETITOR_MEAN_KM[loc] for loc in location])
    competitor_km = rng.gamma(1.5, competitor_mean / 1.5)

    n_missing = round(MISSING_RATE * n_rows)
    competitor_km[rng.permutation(n_rows)[:n_missing]] = np.nan
    location[rng.permutation(n_rows)[:n_missing]] = np.nan

    frame = round_columns(pd.DataFrame({
        "floor_area_m2": area,
        "floors": floors,
        "distance_to_apartments_km": apartments_km,
        "distance_to_competitor_km": competitor_km,
        "location_type": location,
        TARGET: np.zeros(n_rows),
    }))
    noise = np.exp(rng.normal(-NOISE_SIGMA ** 2 / 2, NOISE_SIGMA, n_rows))
    frame[TARGET] = np.round(clean_sales(frame) * noise, DECIMALS[TARGET])
    return frame


def write_csv(path: str | Path | None = None) -> Path:
    """Writes the default dataset (2,000 rows, seed 11) as CSV, creating the folder.

    Args:
        path: Where to write; defaults to `datasets/data/store_sales.csv` in this package.

    Returns:
        The path written.
    """
    path = DEFAULT_PATH if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    round_columns(generate_store_sales()).to_csv(path, index=False, lineterminator="\n")
    return path


if __name__ == "__main__":
    print(f"wrote {write_csv()}")

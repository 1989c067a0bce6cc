"""A tiny seeded CSV like a user's, and one short training run on it shared by the task tests."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def make_user_frame(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numbers, a text category, missing values in both, and yes/no labels."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 70, rows).round()
    income = rng.lognormal(10.5, 0.4, rows).round()
    color = rng.choice(["red", "green", "blue"], rows).astype(object)
    score = (age - 44) / 15 + (color == "red") * 1.5 - 0.5
    label = np.where(score + rng.normal(0, 0.3, rows) > 0, "yes", "no")
    frame = pd.DataFrame({"age": age, "annual income": income, "color": color,
                          "bought": label})
    frame.loc[rng.choice(rows, 12, replace=False), "annual income"] = np.nan
    frame.loc[rng.choice(rows, 8, replace=False), "color"] = np.nan
    return frame


@pytest.fixture(scope="session")
def user_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "shoppers.csv"
    make_user_frame().to_csv(path, index=False)
    return path


FAST = ["--epochs", "8", "--set", "train.early_stopping_patience=0"]


@pytest.fixture(scope="session")
def trained_run(user_csv, tmp_path_factory) -> Path:
    """A finished run of the binary task on `user_csv` (8 epochs: fast, not accurate), with
    every export format."""
    from tasks.binary_classify import main

    run_dir = tmp_path_factory.mktemp("runs") / "shoppers"
    code = main(["--data", str(user_csv), "--target", "bought", "--run-dir", str(run_dir),
                 "--export", "all", *FAST])
    assert code == 0
    return run_dir


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())

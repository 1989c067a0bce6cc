"""A tiny seeded CSV like a user's, and one short training run on it shared by the task tests."""

from pathlib import Path

import pytest

from tests.helpers import FAST, make_user_frame


@pytest.fixture(scope="session")
def user_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "shoppers.csv"
    make_user_frame().to_csv(path, index=False)
    return path


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

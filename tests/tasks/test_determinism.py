"""The same command with the same --seed gives the same results on a CPU, to 1e-6.

Each command runs twice in fresh processes, as a user would run it again; only `--run-dir`
differs. What may differ is listed in `VARIES` (time, sizes of files that embed paths). The
search's trial table is checked the same way in tests/tasks/test_tuning_runs.py. GPUs and several
replicas are not bit-for-bit deterministic (docs/reliability.md says where).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datasets.synthetic_images import generate_image_folder
from tests.helpers import FAST, run_cli

TOLERANCE = 1e-6
VARIES = ("seconds", "latency", "timing", "bytes", "per_second", "rows_per_second")


def numbers(tree: dict, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of metrics.json by dotted path, except those that measure time."""
    found = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if any(word in path for word in VARIES):
            continue
        if isinstance(value, dict):
            found.update(numbers(value, f"{path}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[path] = float(value)
    return found


def run_twice(module: str, args: list[str], tmp_path: Path, env: dict[str, str] | None = None
              ) -> tuple[Path, Path]:
    folders = (tmp_path / "first", tmp_path / "second")
    for folder in folders:
        result = run_cli(module, *args, "--run-dir", folder, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    return folders


def assert_same_results(first: Path, second: Path) -> None:
    a, b = (numbers(json.loads((folder / "metrics.json").read_text()))
            for folder in (first, second))
    assert a.keys() == b.keys()
    assert {"test.accuracy", "validation.accuracy"} <= a.keys()
    differences = {key: abs(a[key] - b[key]) for key in a}
    assert max(differences.values()) <= TOLERANCE, sorted(differences.items(),
                                                          key=lambda item: -item[1])[:5]
    histories = [pd.read_csv(folder / "history.csv") for folder in (first, second)]
    assert list(histories[0].columns) == list(histories[1].columns)
    assert len(histories[0]) == len(histories[1]) > 0
    np.testing.assert_allclose(histories[0].to_numpy(float), histories[1].to_numpy(float),
                               rtol=0, atol=TOLERANCE)


@pytest.mark.slow
def test_a_table_task_run_twice_gives_the_same_metrics(user_csv, tmp_path):
    """With oneDNN forced on (as CI's CPU has it by default), the riskier case for threads."""
    first, second = run_twice(
        "tasks.binary_classify",
        ["--data", str(user_csv), "--target", "bought", "--seed", "7", "--export", "keras",
         "--set", "export.latency=false", *FAST],
        tmp_path, env={"TF_ENABLE_ONEDNN_OPTS": "1"})
    assert_same_results(first, second)


@pytest.mark.slow
def test_an_image_task_run_twice_gives_the_same_metrics(tmp_path):
    """The CNN's random augmentation, dropout and shuffling are all drawn from the seed."""
    folder = generate_image_folder(tmp_path / "shapes", classes=3, per_class=24, size=20, seed=0)
    first, second = run_twice(
        "tasks.image_classify",
        ["--data", str(folder), "--seed", "3", "--epochs", "4", "--image-size", "16",
         "--set", "train.early_stopping_patience=0", "--export", "keras",
         "--set", "export.latency=false"],
        tmp_path)
    assert_same_results(first, second)

"""What a user gets from a run does not change when the code behind it moves.

Four commands, as a user types them (a default binary run, an image run, a tuned run and a
streamed run), each in its own process. For each, the file list of the run directory and the key
tree of `metrics.json` (values aside) must equal the recorded contract in
`run_contract.json`. A refactor that renames, drops or adds a file or a metrics key fails here;
a deliberate change of the contract is recorded with
`UPDATE_RUN_CONTRACT=1 python -m pytest tests/tasks/test_run_contract.py -n 0` and reviewed in
the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.helpers import run_cli

CONTRACT = Path(__file__).with_name("run_contract.json")
QUICK = ["--set", "train.early_stopping_patience=0"]


def key_tree(value: Any) -> Any:
    """The keys of nested dicts, with every value that is not a dict replaced by None."""
    if isinstance(value, dict):
        return {key: key_tree(item) for key, item in value.items()}
    return None


def file_list(run_dir: Path) -> list[str]:
    """Every file under `run_dir`, as sorted paths relative to it."""
    return sorted(path.relative_to(run_dir).as_posix()
                  for path in run_dir.rglob("*") if path.is_file())


def shards(folder: Path) -> str:
    """Three CSV shards of a seeded regression table; returns their pattern."""
    rng = np.random.default_rng(3)
    rows = 600
    frame = pd.DataFrame({"size": rng.uniform(20, 200, rows),
                          "rooms": rng.integers(1, 6, rows),
                          "district": rng.choice(["north", "south", "east"], rows)})
    frame["price"] = frame["size"] * 3 + frame["rooms"] * 10 + rng.normal(0, 5, rows)
    folder.mkdir()
    for index, part in enumerate(np.array_split(np.arange(rows), 3)):
        frame.iloc[part].to_csv(folder / f"part-{index}.csv", index=False)
    return str(folder / "*.csv")


def commands(root: Path) -> dict[str, tuple[str, list[str]]]:
    return {
        "binary": ("tasks.binary_classify", ["--epochs", "2", *QUICK]),
        "image": ("tasks.image_classify", ["--epochs", "1", "--image-size", "8", *QUICK]),
        "tuned": ("tasks.binary_classify", ["--tune", "--trials", "2", "--max-epochs", "2",
                                            *QUICK]),
        "streamed": ("tasks.regression", ["--data", shards(root / "shards"), "--target", "price",
                                          "--epochs", "2", "--set", "data.sample_rows=200",
                                          "--set", "data.held_out_rows=80", *QUICK]),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["binary", "image", "tuned", "streamed"])
def test_run_directory_and_metrics_keys_match_the_contract(name, tmp_path):
    module, args = commands(tmp_path)[name]
    run_dir = tmp_path / "run"
    result = run_cli(module, *args, "--run-dir", run_dir, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    shape = {"files": file_list(run_dir),
             "metrics": key_tree(json.loads((run_dir / "metrics.json").read_text()))}
    if os.environ.get("UPDATE_RUN_CONTRACT"):
        recorded = json.loads(CONTRACT.read_text()) if CONTRACT.exists() else {}
        recorded[name] = shape
        CONTRACT.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    expected = json.loads(CONTRACT.read_text())[name]
    assert shape["files"] == expected["files"]
    assert shape["metrics"] == expected["metrics"]

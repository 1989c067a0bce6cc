"""Helpers shared by the test modules: data, CLI runs, the one-line error contract, processes.

Test modules and conftest files import these from here, never from one another: a test file
holds tests and its own local helpers, a conftest holds fixtures (tests/test_shared_helpers.py
checks it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

# --- Data --------------------------------------------------------------------------------


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


# A price table sorted by price, cut into shards, as in issue 13 (point 8): the first rows of
# each shard are its cheapest. Small on purpose; the tolerances in tests/datasets/
# test_streaming.py hold for a uniform sample of these sizes with probability above 99.7%
# (checked by simulation), and the old first-rows sample misses each of them (test mean 0.38
# standard deviations low, RMSE ratio 0.73).
PRICE_ROWS, PRICE_SHARDS = 4000, 4


def price_table(rows: int = PRICE_ROWS, seed: int = 5) -> pd.DataFrame:
    """A skewed `price` (gamma), one feature that follows it, a category; sorted by price."""
    rng = np.random.default_rng(seed)
    price = np.sort(rng.gamma(4.0, 250.0, rows)).round(2)
    return pd.DataFrame({"row_id": np.arange(rows),
                         "carat": (price / 1000 + rng.normal(0, 0.1, rows)).round(3),
                         "cut": rng.choice(["fair", "good", "ideal"], rows), "price": price})


# --- Runs and their outputs --------------------------------------------------------------

# A short binary run: few epochs, no early stopping (fast, not accurate).
FAST = ["--epochs", "8", "--set", "train.early_stopping_patience=0"]


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def epochs_done(history: Path) -> int:
    """Epochs recorded in a history.csv so far (0 before it exists)."""
    return max(0, len(history.read_text().splitlines()) - 1) if history.exists() else 0


def completed(trial_folder: Path) -> set[str]:
    """IDs of the trials a keras-tuner folder marks COMPLETED (skips one being written)."""
    done = set()
    for path in trial_folder.glob("trial_*/trial.json"):
        try:
            trial = json.loads(path.read_text())
        except json.JSONDecodeError:  # being written
            continue
        if trial["status"] == "COMPLETED":
            done.add(trial["trial_id"])
    return done


def printed_trials(output: str) -> list[str]:
    """Trial IDs in the order a search printed them."""
    return [line.split()[1].rstrip(":") for line in output.splitlines()
            if line.startswith("  trial ")]


# --- Processes and the machine ----------------------------------------------------------

def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def network_is_reachable():
    if any(urllib.request.getproxies().values()):
        return True
    try:
        socket.getaddrinfo("storage.googleapis.com", 443)
    except OSError:
        return False
    return True


# --- The one-line error contract ---------------------------------------------------------

def run_main(capsys, *argv):
    """`tasks.binary_classify.main(argv)` in this process: its exit code and stderr lines."""
    from tasks.binary_classify import main

    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


def assert_one_error_line(lines, *fragments):
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def run_cli(module: str, *args: str, env: dict[str, str] | None = None,
            cwd: str | Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in a fresh process; text stdout and stderr captured.

    The environment is the test's, minus TF_CPP_MIN_LOG_LEVEL (a user does not set it; the CLI
    must be quiet by itself), plus `env`.
    """
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd,
                          env=_user_environment(env), capture_output=True, text=True,
                          timeout=timeout)


def run_script(script: str | Path, *args: str, cwd: str | Path | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """`python <script> <args>` in a fresh process, in `run_cli`'s environment.

    Example:
        >>> run_script(ROOT / "benchmarks" / "fit_speed.py", "--smoke", cwd=tmp_path)
    """
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=cwd,
                          env=_user_environment(), capture_output=True, text=True,
                          timeout=timeout)


def _user_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without TF_CPP_MIN_LOG_LEVEL, the repository first on the path."""
    environment = {key: value for key, value in os.environ.items()
                   if key != "TF_CPP_MIN_LOG_LEVEL"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])])
    environment.update(env or {})
    return environment


def assert_cli_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2 and exactly one stderr line, `error: ...`, holding every fragment.

    Returns:
        The error line.
    """
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]

"""TensorFlow's and LiteRT's native logging stays off the terminal, on any CPU.

`TF_ENABLE_ONEDNN_OPTS=1` makes TensorFlow print absl's "All log messages before
absl::InitializeLog()" line and its oneDNN notice at import on every x86 or Arm CPU, as some CPUs
do by default; LiteRT announces its XNNPACK delegate everywhere. These tests force them on, so
they prove the filtering instead of depending on which CPU runs them.
"""

import os

import pandas as pd
import pytest

from common import native_output
from tasks.engine import native_logs
from tests.helpers import assert_cli_error, run_cli

FORCED = {"TF_ENABLE_ONEDNN_OPTS": "1"}
ONEDNN = "oneDNN custom operations are on"
# Fails in the runner, after TensorFlow has loaded (the data loads first, without it).
AFTER_TENSORFLOW = ("tasks.binary_classify", "--model", "transformer")


@pytest.mark.slow
def test_an_error_after_tensorflow_loads_is_one_line_with_the_notices_forced_on(tmp_path):
    result = run_cli(*AFTER_TENSORFLOW, "--run-dir", tmp_path / "run", env=FORCED, cwd=tmp_path)
    assert_cli_error(result, "unknown model 'transformer'")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_verbose_shows_the_native_logging(tmp_path):
    """The same command as above, with --verbose: the notices are there to be filtered."""
    result = run_cli(*AFTER_TENSORFLOW, "--verbose", env=FORCED, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert any(ONEDNN in line for line in lines), lines
    assert lines[-1].startswith("error: unknown model 'transformer'")


@pytest.mark.slow
def test_predict_with_litert_prints_only_its_own_line(trained_run, user_csv, tmp_path):
    """TensorFlow's import and LiteRT's "Created TensorFlow Lite XNNPACK delegate" are set
    aside; the predictions are still written."""
    output = tmp_path / "predictions.csv"
    result = run_cli("tasks.predict", "--run-dir", trained_run, "--data", user_csv,
                     "--format", "tflite", "--output", output, env=FORCED, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = len(pd.read_csv(user_csv))
    assert result.stderr.strip().splitlines() == [f"wrote {rows} predictions to {output}"]
    assert len(pd.read_csv(output)) == rows


def test_set_aside_drops_native_writes_and_gives_them_back_on_failure(capfd):
    with native_logs.set_aside(always=True):
        os.write(2, b"native chatter\n")
    assert capfd.readouterr().err == ""
    with pytest.raises(RuntimeError), native_logs.set_aside(always=True):
        os.write(2, b"why it failed\n")
        raise RuntimeError("boom")
    assert capfd.readouterr().err == "why it failed\n"


@pytest.mark.parametrize("user_level, verbose, quiet", [
    (None, False, True),   # the default: set aside
    ("2", False, True),    # the user asked for warnings and errors only
    ("3", False, True),
    ("0", False, False),   # the user asked for everything
    ("1", False, False),
    (None, True, False),   # --verbose
])
def test_a_level_the_user_sets_is_respected(monkeypatch, user_level, verbose, quiet):
    monkeypatch.setattr(native_output, "_state", {"user_level": user_level, "show": verbose})
    assert native_logs.quiet() is quiet

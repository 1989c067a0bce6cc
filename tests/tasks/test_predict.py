"""`tasks.predict` on every artifact of a run: same answers, the user's own label values."""

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tasks.predict import main
from tests.helpers import make_user_frame

# Every test predicts with the trained run, a whole training run.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def new_rows(tmp_path_factory):
    """Unlabelled rows, with missing values and a category never seen in training."""
    frame = make_user_frame(rows=40, seed=11).drop(columns="bought")
    frame.loc[3, "color"] = "purple"
    path = tmp_path_factory.mktemp("new") / "new.csv"
    frame.to_csv(path, index=False)
    return path


def predict(trained_run, new_rows, tmp_path, *extra):
    output = tmp_path / f"preds-{'-'.join(extra) or 'keras'}.csv"
    assert main(["--run-dir", str(trained_run), "--data", str(new_rows), "--output", str(output),
                 *extra]) == 0
    return pd.read_csv(output)


def test_predictions_are_in_the_users_labels(trained_run, new_rows, tmp_path):
    result = predict(trained_run, new_rows, tmp_path)
    original = pd.read_csv(new_rows)
    assert list(result.columns) == [*original.columns, "predicted_bought", "probability_no",
                                    "probability_yes"]
    assert set(result["predicted_bought"]) <= {"yes", "no"}
    np.testing.assert_allclose(result["probability_no"] + result["probability_yes"], 1.0,
                               atol=1e-6)
    expected = np.where(result["probability_yes"] >= 0.5, "yes", "no")
    assert (result["predicted_bought"].to_numpy() == expected).all()


@pytest.mark.parametrize("artifact", ["savedmodel", "tflite"])
def test_float_formats_agree_row_by_row(trained_run, new_rows, tmp_path, artifact):
    reference = predict(trained_run, new_rows, tmp_path)
    other = predict(trained_run, new_rows, tmp_path, "--format", artifact)
    np.testing.assert_allclose(other["probability_yes"], reference["probability_yes"], atol=1e-4)
    assert (other["predicted_bought"] == reference["predicted_bought"]).all()


@pytest.mark.parametrize("artifact", ["tflite_float16", "tflite_dynamic_int8", "tflite_int8"])
def test_reduced_precision_formats_agree_row_by_row(trained_run, new_rows, tmp_path, artifact):
    """Within quantization error; the row-level label agreement is what metrics.json reports."""
    reference = predict(trained_run, new_rows, tmp_path)
    other = predict(trained_run, new_rows, tmp_path, "--format", artifact)
    np.testing.assert_allclose(other["probability_yes"], reference["probability_yes"], atol=0.05)
    assert (other["predicted_bought"] == reference["predicted_bought"]).mean() >= 0.95
    assert not (other["probability_yes"] == reference["probability_yes"]).all()


def test_predict_runs_in_a_fresh_process(trained_run, new_rows, tmp_path):
    """As users run it: `python -m tasks.predict` must load our custom layers by itself."""
    output = tmp_path / "fresh.csv"
    completed = subprocess.run(
        [sys.executable, "-m", "tasks.predict", "--run-dir", str(trained_run), "--data",
         str(new_rows), "--output", str(output)], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_csv(output),
                                  predict(trained_run, new_rows, tmp_path))


def test_model_flag_loads_a_keras_file(trained_run, new_rows, tmp_path):
    reference = predict(trained_run, new_rows, tmp_path)
    output = tmp_path / "direct.csv"
    assert main(["--model", str(trained_run / "model.keras"), "--data", str(new_rows),
                 "--output", str(output)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(output), reference)


def test_stdout_is_the_default_output(trained_run, new_rows, capsys):
    assert main(["--run-dir", str(trained_run), "--data", str(new_rows)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].endswith("predicted_bought,probability_no,probability_yes")
    assert len(lines) == 41


def test_errors_are_one_line_with_exit_code_2(trained_run, new_rows, tmp_path, capsys):
    cases = [
        (["--run-dir", str(tmp_path / "nowhere"), "--data", str(new_rows)],
         "run directory not found"),
        (["--run-dir", str(trained_run), "--data", str(tmp_path / "none.csv")],
         "data file not found"),
        (["--model", str(trained_run / "metrics.json"), "--data", str(new_rows)],
         "--model takes a .keras file"),
        (["--model", str(trained_run / "model.keras"), "--data", str(new_rows), "--format",
          "tflite"], "use --run-dir with --format tflite"),
        (["--data", str(new_rows)], "one of the arguments --run-dir --model is required"),
        (["--run-dir", str(trained_run), "--data", str(new_rows), "--format", "onnx"],
         "argument --format: invalid choice: 'onnx'"),
    ]
    lacking = pd.read_csv(new_rows).drop(columns="age")
    lacking.to_csv(tmp_path / "lacking.csv", index=False)
    cases.append((["--run-dir", str(trained_run), "--data", str(tmp_path / "lacking.csv")],
                  "lacking.csv lacks the feature column age"))
    partial = tmp_path / "partial_run"
    shutil.copytree(trained_run, partial)
    (partial / "export" / "model_float16.tflite").unlink()
    cases.append((["--run-dir", str(partial), "--data", str(new_rows), "--format",
                   "tflite_float16"], "did not export the tflite_float16 format"))
    for argv, fragment in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert fragment in lines[0], (fragment, lines[0])

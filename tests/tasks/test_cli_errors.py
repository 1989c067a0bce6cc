"""Every bad input ends with exit code 2 and one line `error: ...` that says what and how to fix."""

import subprocess
import sys

import pandas as pd
import pytest

from tests.helpers import assert_one_error_line, make_user_frame, run_main


@pytest.fixture
def csv(tmp_path):
    def write(frame: pd.DataFrame, name: str = "data.csv"):
        path = tmp_path / name
        frame.to_csv(path, index=False)
        return str(path)

    return write


def test_missing_file(capsys, tmp_path):
    code, lines = run_main(capsys, "--data", str(tmp_path / "nope.csv"), "--target", "y")
    assert code == 2
    assert_one_error_line(lines, "data file not found", "nope.csv", "existing CSV")


def test_empty_csv(capsys, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    code, lines = run_main(capsys, "--data", str(tmp_path / "empty.csv"), "--target", "y")
    assert code == 2
    assert_one_error_line(lines, "empty.csv' is empty", "header row")


def test_header_only_csv(capsys, tmp_path):
    (tmp_path / "header.csv").write_text("a,b,y\n")
    code, lines = run_main(capsys, "--data", str(tmp_path / "header.csv"), "--target", "y")
    assert code == 2
    assert_one_error_line(lines, "no data rows", "a, b, y")


def test_target_column_absent_lists_columns(capsys, csv):
    code, lines = run_main(capsys, "--data", csv(make_user_frame()), "--target", "purchased")
    assert code == 2
    assert_one_error_line(lines, "target column 'purchased' is not in data.csv",
                          "age, annual income, color, bought", "--target")


def test_csv_without_target_flag_lists_columns(capsys, csv):
    code, lines = run_main(capsys, "--data", csv(make_user_frame()))
    assert code == 2
    assert_one_error_line(lines, "no --target given for data.csv", "bought")


def test_target_with_one_class(capsys, csv):
    frame = make_user_frame().assign(bought="yes")
    code, lines = run_main(capsys, "--data", csv(frame), "--target", "bought")
    assert code == 2
    assert_one_error_line(lines, "one class ('yes')", "240 rows", "two classes")


def test_target_with_more_than_two_classes_points_to_multiclass(capsys, csv):
    frame = make_user_frame().dropna(subset=["color"])
    code, lines = run_main(capsys, "--data", csv(frame), "--target", "color")
    assert code == 2
    assert_one_error_line(lines, "has 3 classes ('blue', 'green', 'red')",
                          "python -m tasks.multiclass_classify")


def test_junk_in_a_numeric_column_names_column_and_line(capsys, csv):
    frame = make_user_frame()
    frame["age"] = frame["age"].astype(object)
    frame.loc[6, "age"] = "forty"
    code, lines = run_main(capsys, "--data", csv(frame), "--target", "bought")
    assert code == 2
    assert_one_error_line(lines, "column 'age' of data.csv", "'forty' at line 8",
                          "--categorical age")


def test_too_few_rows(capsys, csv):
    frame = make_user_frame().groupby("bought").head(4)
    code, lines = run_main(capsys, "--data", csv(frame), "--target", "bought")
    assert code == 2
    assert_one_error_line(lines, "has 8 rows", "too few to split", "--test-data")


@pytest.mark.parametrize(("argv", "fragments"), [
    (["--epochs", "abc"], ["argument --epochs: invalid int value: 'abc'", "--help"]),
    (["--epochs", "0"], ["--epochs) must be at least 1", "Received: 0"]),
    (["--batch-size", "-3"], ["--batch-size) must be at least 1", "Received: -3"]),
    (["--learning-rate", "-0.1"], ["must be positive", "Received: -0.1"]),
    (["--optimizer", "adamax"], ["invalid choice: 'adamax'", "adam"]),
    (["--strategy", "tpu_pod"], ["invalid choice: 'tpu_pod'"]),
    (["--export", "keras,onnx"], ["unknown export format onnx", "keras, savedmodel, tflite"]),
    (["--set", "train.epoch=3"], ["unknown setting 'train.epoch'", "epochs"]),
    (["--set", "epochs"], ["--set takes KEY=VALUE", "Received: --set epochs"]),
    (["--bogus"], ["unrecognized arguments: --bogus"]),
    (["--data", "wine_quality"], ["'wine_quality' is neither a dataset name nor an existing "
                                  "file", "breast_cancer", "smartwatch"]),
])
def test_invalid_flag_values(capsys, argv, fragments):
    code, lines = run_main(capsys, *argv)
    assert code == 2
    assert_one_error_line(lines, *fragments)


def test_unknown_model_and_model_setting(capsys):
    code, lines = run_main(capsys, "--data", "breast_cancer", "--model", "transformer")
    assert code == 2
    assert_one_error_line(lines, "unknown model 'transformer'", "mlp")
    code, lines = run_main(capsys, "--data", "breast_cancer", "--set", "model.hidden_unit=[8]")
    assert code == 2
    assert_one_error_line(lines, "model 'mlp' has no setting 'hidden_unit'", "hidden_units")


def test_a_real_process_prints_no_traceback(tmp_path):
    """The console path: exit status 2 and a single stderr line, before TensorFlow loads."""
    result = subprocess.run(
        [sys.executable, "-m", "tasks.binary_classify", "--data", str(tmp_path / "gone.csv"),
         "--target", "y"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: data file not found: '{tmp_path / 'gone.csv'}'. Pass the path of an existing "
        "CSV file or a dataset name."]
    assert "Traceback" not in result.stderr


def test_run_dir_that_is_not_a_run_is_refused(capsys, tmp_path):
    precious = tmp_path / "my_project"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    code, lines = run_main(capsys, "--data", "breast_cancer", "--run-dir", str(precious))
    assert code == 2
    assert_one_error_line(lines, "holds files that are not a run's", "new or empty folder")
    assert (precious / "notes.txt").read_text() == "keep me"


def test_a_builder_rejecting_a_model_setting_is_one_error_line(capsys, csv, tmp_path):
    code, lines = run_main(capsys, "--data", csv(make_user_frame()), "--target", "bought",
                           "--set", "model.dropout_rate=1.5", "--epochs", "1",
                           "--run-dir", str(tmp_path / "run"))
    assert code == 2
    assert_one_error_line(lines, "model 'mlp'", "dropout_rate", "1.5", "--set model.NAME")

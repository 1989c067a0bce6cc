"""Regression and multiclass on the shared pipeline: the same contracts as binary."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks import multiclass_classify, predict, regression
from tasks.config import EXPORT_FORMATS
from tasks.engine import inference
from tasks.engine.export import FLOAT_FORMATS, REDUCED_FORMATS
from tests.helpers import assert_one_error_line

FAST = ["--epochs", "6", "--set", "train.early_stopping_patience=0"]
ROOT = Path(__file__).resolve().parents[2]


def sales_frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    area = rng.uniform(100, 2000, rows)
    kind = rng.choice(["mall", "street", "outlet"], rows).astype(object)
    sales = 300 * area * np.where(kind == "mall", 1.5, 1.0) + rng.normal(0, 20000, rows)
    frame = pd.DataFrame({"area": area.round(1), "kind": kind, "sales": sales.round()})
    frame.loc[rng.choice(rows, 6, replace=False), "kind"] = np.nan
    return frame


def species_frame(rows: int = 180, seed: int = 0, labels=(3, 7, 11)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 3, rows)
    x = rng.normal(0, 1, (rows, 2)) + np.stack([ids * 4.0, -ids * 3.0], axis=1)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "species": np.asarray(labels)[ids]})


def write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("regression")
    run_dir = folder / "run"
    assert regression.main(["--data", write(sales_frame(), folder / "sales.csv"), "--target",
                            "sales", "--run-dir", str(run_dir), "--export", "all", *FAST]) == 0
    return run_dir, folder / "sales.csv"


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multiclass")
    run_dir = folder / "run"
    assert multiclass_classify.main(["--data", write(species_frame(), folder / "species.csv"),
                                     "--target", "species", "--run-dir", str(run_dir),
                                     "--export", "all", "--epochs", "30"]) == 0
    return run_dir, folder / "species.csv"


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_regression_metrics_baselines_plots_and_exports(regression_run):
    run_dir, _ = regression_run
    metrics = metrics_of(run_dir)
    assert metrics["problem"] == "regression"
    assert set(metrics["test"]) == {"rmse", "mae", "r2"}
    assert set(metrics["baselines"]) == {"mean", "ridge", "hist_gradient_boosting"}
    for scores in metrics["baselines"].values():
        assert set(scores) == {"rmse", "mae", "r2"}
    assert set(metrics["exports"]) == set(EXPORT_FORMATS)
    for name in FLOAT_FORMATS:
        assert metrics["exports"][name]["max_scaled_diff"] <= 1e-4
    for name in REDUCED_FORMATS:
        result = metrics["exports"][name]
        assert "label_agreement" not in result  # a regression has no labels to agree on
        assert result["metric"]["relative"] is True
        assert result["metric"]["keras"] == pytest.approx(metrics["test"]["rmse"])
        assert result["passed"] == (result["metric"]["drop"] <= 0.01)
    for plot in ("predicted_vs_actual", "residuals", "learning_curves"):
        assert (run_dir / "plots" / f"{plot}.png").exists()
    assert "max diff / target std" in (run_dir / "report.md").read_text()


@pytest.mark.slow
def test_regression_models_output_the_targets_units(regression_run):
    """The network learns a standardized target; every artifact answers in sales units."""
    run_dir, data = regression_run
    frame = pd.read_csv(data)
    for artifact in ("keras", "savedmodel", "tflite"):
        output = run_dir / f"{artifact}.csv"
        assert predict.main(["--run-dir", str(run_dir), "--data", str(data), "--format",
                             artifact, "--output", str(output)]) == 0
        predicted = pd.read_csv(output)["predicted_sales"]
        assert predicted.mean() == pytest.approx(frame["sales"].mean(), rel=0.25)
        assert predicted.std() > 0.3 * frame["sales"].std()
    # Fitting only 6 epochs still beats predicting the mean by a margin on this easy rule.
    metrics = metrics_of(run_dir)
    assert metrics["test"]["rmse"] < metrics["baselines"]["mean"]["rmse"]


@pytest.mark.slow
def test_huber_loss_for_regression_only(regression_run, tmp_path, capsys):
    _, data = regression_run
    assert regression.main(["--data", str(data), "--target", "sales", "--run-dir",
                            str(tmp_path / "huber"), "--export", "none", "--set",
                            "train.loss=huber", *FAST]) == 0
    config = json.loads((tmp_path / "huber" / "config.json").read_text())
    assert config["train"]["loss"] == "huber"
    capsys.readouterr()
    assert multiclass_classify.main(["--data", "iris", "--set", "train.loss=huber"]) == 2
    assert_one_error_line(capsys.readouterr().err.strip().splitlines(),
                          "train.loss 'huber' does not fit a multiclass problem")


@pytest.mark.slow
def test_multiclass_metrics_per_class_table_and_exports(multiclass_run):
    run_dir, _ = multiclass_run
    metrics = metrics_of(run_dir)
    assert metrics["problem"] == "multiclass"
    assert set(metrics["test"]) == {"accuracy", "macro_f1"}
    assert set(metrics["baselines"]) == {"majority", "logistic_regression",
                                         "hist_gradient_boosting"}
    assert [row["class"] for row in metrics["per_class"]] == ["3", "7", "11"]
    assert sum(row["support"] for row in metrics["per_class"]) == metrics["rows"]["test"]
    for name in FLOAT_FORMATS:
        assert metrics["exports"][name]["max_abs_diff"] <= 1e-4
    for name in REDUCED_FORMATS:
        assert metrics["exports"][name]["label_agreement"] >= 0.9
    report = (run_dir / "report.md").read_text()
    assert "### Per class (test)" in report and "plots/confusion_matrix.png" in report
    assert (run_dir / "plots" / "confusion_matrix.png").exists()
    assert metrics["test"]["accuracy"] > 0.8


def predictions_of_every_format(run_dir: Path, data: Path, folder: Path) -> dict:
    """`tasks.predict --format X` for every export format, as data frames."""
    outputs = {}
    for artifact in EXPORT_FORMATS:
        path = folder / f"{artifact}.csv"
        assert predict.main(["--run-dir", str(run_dir), "--data", str(data), "--format",
                             artifact, "--output", str(path)]) == 0
        outputs[artifact] = pd.read_csv(path)
    return outputs


@pytest.mark.slow
def test_multiclass_predictions_in_the_users_labels(multiclass_run, tmp_path):
    run_dir, data = multiclass_run
    outputs = predictions_of_every_format(run_dir, data, tmp_path)
    reference = outputs["keras"]
    assert set(reference["predicted_species"]) <= {3, 7, 11}
    probabilities = reference[["probability_3", "probability_7", "probability_11"]]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    for other in FLOAT_FORMATS:
        np.testing.assert_allclose(outputs[other][probabilities.columns], probabilities,
                                   atol=1e-4)
        assert (outputs[other]["predicted_species"] == reference["predicted_species"]).all()
    for other in REDUCED_FORMATS:
        np.testing.assert_allclose(outputs[other][probabilities.columns], probabilities,
                                   atol=0.1)
        agreement = (outputs[other]["predicted_species"] == reference["predicted_species"])
        assert agreement.mean() >= 0.95
    model = inference.load_keras(run_dir / "model.keras")
    assert model.output_shape == (None, 3)


@pytest.mark.slow
def test_regression_predictions_from_every_format(regression_run, tmp_path):
    run_dir, data = regression_run
    outputs = {name: frame["predicted_sales"].to_numpy()
               for name, frame in predictions_of_every_format(run_dir, data, tmp_path).items()}
    spread = outputs["keras"].std()
    for other in FLOAT_FORMATS:
        np.testing.assert_allclose(outputs[other], outputs["keras"], atol=1e-4 * spread)
    for other in ("tflite_dynamic_int8", "tflite_int8"):
        np.testing.assert_allclose(outputs[other], outputs["keras"], atol=0.1 * spread)


@pytest.mark.slow
def test_float16_cannot_hold_sales_in_the_hundreds_of_thousands(regression_run):
    """float16 tops out at 65504; the output layer's bias in sales units overflows. The judge
    must catch it (documented in tasks/engine/export.py), while the int8 files stay usable."""
    run_dir, data = regression_run
    assert pd.read_csv(data)["sales"].mean() > 65504
    exports = metrics_of(run_dir)["exports"]
    assert exports["tflite_float16"]["passed"] is False
    assert exports["tflite_float16"]["metric"]["drop"] > 0.5
    assert exports["tflite_int8"]["passed"] and exports["tflite_dynamic_int8"]["passed"]


@pytest.mark.slow
def test_string_labels_work_for_multiclass(tmp_path):
    frame = species_frame(labels=("setosa", "versicolor", "virginica"))
    run_dir = tmp_path / "run"
    assert multiclass_classify.main(["--data", write(frame, tmp_path / "s.csv"), "--target",
                                     "species", "--run-dir", str(run_dir), "--export", "none",
                                     *FAST]) == 0
    schema = json.loads((run_dir / "schema.json").read_text())
    assert schema["labels"] == ["setosa", "versicolor", "virginica"]


def run_error(capsys, main, *argv):
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


def test_regression_on_a_non_numeric_target(capsys, tmp_path):
    frame = sales_frame().assign(sales=lambda f: np.where(f["area"] > 1000, "high", "low"))
    code, lines = run_error(capsys, regression.main, "--data", write(frame, tmp_path / "a.csv"),
                            "--target", "sales")
    assert code == 2
    assert_one_error_line(lines, "regression needs a numeric target", "'high'",
                          "classification task")


def test_multiclass_with_one_class(capsys, tmp_path):
    frame = species_frame().assign(species="cat")
    code, lines = run_error(capsys, multiclass_classify.main, "--data",
                            write(frame, tmp_path / "a.csv"), "--target", "species")
    assert code == 2
    assert_one_error_line(lines, "one class ('cat')", "at least two classes")


def test_multiclass_with_more_classes_than_rows_allow(capsys, tmp_path):
    frame = species_frame(rows=40)
    frame["species"] = [f"class_{index % 13}" for index in range(40)]
    code, lines = run_error(capsys, multiclass_classify.main, "--data",
                            write(frame, tmp_path / "a.csv"), "--target", "species")
    assert code == 2
    assert_one_error_line(lines, "has 13 classes in 40 rows", "more than the 8",
                          "merge rare classes")


def test_multiclass_classes_in_test_but_not_in_training(capsys, tmp_path):
    frame = species_frame()
    test = species_frame(rows=30, seed=1, labels=(3, 7, 99))
    code, lines = run_error(capsys, multiclass_classify.main, "--data",
                            write(frame, tmp_path / "a.csv"), "--target", "species",
                            "--test-data", write(test, tmp_path / "t.csv"))
    assert code == 2
    assert_one_error_line(lines, "t.csv has classes not seen in training: 99",
                          "training classes: 3, 7, 11")


def test_named_datasets_point_to_their_task(capsys):
    code, lines = run_error(capsys, regression.main, "--data", "wine")
    assert code == 2
    assert_one_error_line(lines, "'wine' is a multiclass dataset",
                          "python -m tasks.multiclass_classify",
                          "diabetes, store_sales")


@pytest.mark.parametrize("module", ["binary_classify", "multiclass_classify", "regression"])
def test_task_modules_are_configuration_and_main_only(module):
    source = (ROOT / "tasks" / f"{module}.py").read_text()
    assert len(source.splitlines()) < 60
    for forbidden in (".fit(", ".compile(", "import keras", "import tensorflow"):
        assert forbidden not in source

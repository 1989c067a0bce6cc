"""End to end on a user-like CSV: the run directory contract, exports, parity and safety."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from datasets.registry import load_tabular
from datasets.tabular import features_from_frame
from tasks.binary_classify import main
from tasks.config import EXPORT_FORMATS, ExportConfig
from tasks.engine import export, inference, parity
from tests.helpers import FAST, read_metrics

BINARY_METRICS = {"accuracy", "precision", "recall", "f1", "roc_auc"}


@pytest.mark.slow
def test_run_directory_holds_every_contracted_file(trained_run):
    for name in ["config.json", "metrics.json", "history.csv", "model.keras", "report.md",
                 "schema.json", "export/saved_model/saved_model.pb", *EXPORT_FORMATS.values(),
                 "export/schema.json", "plots/learning_curves.png", "plots/confusion_matrix.png",
                 "plots/roc_curve.png"]:
        assert (trained_run / name).exists(), name
    assert not trained_run.with_name("shoppers.partial").exists()


@pytest.mark.slow
def test_metrics_json_follows_the_schema(trained_run):
    metrics = read_metrics(trained_run)
    assert metrics["task"] == "binary_classify"
    assert metrics["problem"] == "binary"
    assert metrics["dataset"] == "shoppers"
    assert set(metrics["test"]) == BINARY_METRICS
    assert set(metrics["validation"]) == BINARY_METRICS
    assert set(metrics["baselines"]) == {"majority", "logistic_regression",
                                         "hist_gradient_boosting"}
    for scores in metrics["baselines"].values():
        assert set(scores) == BINARY_METRICS
    assert metrics["timing"]["fit_seconds"] > 0
    assert metrics["timing"]["total_seconds"] >= metrics["timing"]["fit_seconds"]
    assert list(metrics["exports"]) == list(EXPORT_FORMATS)
    for name, result in metrics["exports"].items():
        assert result["path"] == EXPORT_FORMATS[name]
        assert (trained_run / result["path"]).exists()
        assert result["bytes"] > 0
        assert result["latency"]["single_row_ms"] > 0
        assert result["latency"]["batch_rows_per_s"] > 0
    for name in export.FLOAT_FORMATS:
        assert 0 <= metrics["exports"][name]["max_abs_diff"] <= 1e-4
        assert metrics["exports"][name]["passed"]
    for name in export.REDUCED_FORMATS:
        result = metrics["exports"][name]
        assert 0.9 <= result["label_agreement"] <= 1
        assert result["metric"]["keras"] == pytest.approx(metrics["test"]["accuracy"])
        assert result["metric"]["drop"] == pytest.approx(
            result["metric"]["keras"] - result["metric"]["artifact"])
        assert result["passed"] == (result["label_agreement"] >= 0.98
                                    and result["metric"]["drop"] <= 0.01)
    assert set(metrics["latency"]) == {"keras_predict", "keras_call"}
    assert sum(metrics["rows"].values()) == 240


@pytest.mark.slow
def test_test_metrics_are_recomputable_from_the_saved_model(trained_run, user_csv):
    """The reported accuracy is what the saved model scores on the reported test split."""
    config = json.loads((trained_run / "config.json").read_text())
    splits = load_tabular(str(user_csv), "binary", target="bought",
                          seed=config["runtime"]["seed"])
    model = inference.load_keras(trained_run / "model.keras")
    probability = inference.keras_outputs(
        model, features_from_frame(splits.test, splits.schema)).reshape(-1)
    truth = (splits.test["bought"] == "yes").to_numpy()
    accuracy = float(((probability >= 0.5) == truth).mean())
    assert accuracy == pytest.approx(read_metrics(trained_run)["test"]["accuracy"])


@pytest.mark.slow
def test_history_has_one_row_per_epoch_with_validation_loss(trained_run):
    history = pd.read_csv(trained_run / "history.csv")
    assert len(history) == 8
    assert {"epoch", "loss", "val_loss", "learning_rate"} == set(history.columns)
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]


@pytest.mark.slow
def test_model_keras_takes_raw_columns_by_name(trained_run):
    model = inference.load_keras(trained_run / "model.keras")
    inputs = {tensor.name: tensor.dtype for tensor in model.inputs}
    assert inputs == {"age": "float32", "annual_income": "float32", "color": "string"}
    rows = {"age": np.array([[30.0], [65.0]], "float32"),
            "annual_income": np.array([[np.nan], [50000.0]], "float32"),
            "color": np.array([["red"], ["never seen"]], dtype=object)}
    output = inference.keras_outputs(model, rows)
    assert output.shape == (2, 1) and np.isfinite(output).all()


@pytest.mark.slow
def test_savedmodel_signature_takes_raw_columns(trained_run):
    signature = inference.load_savedmodel(trained_run / "export" / "saved_model")
    _, kwargs = signature.structured_input_signature
    assert {name: spec.dtype for name, spec in kwargs.items()} == {
        "age": tf.float32, "annual_income": tf.float32, "color": tf.string}


@pytest.mark.parametrize("name", [name for name in EXPORT_FORMATS if name.startswith("tflite")])
@pytest.mark.slow
def test_every_tflite_file_uses_builtin_ops_only(trained_run, name):
    interpreter = inference.load_tflite(trained_run / EXPORT_FORMATS[name])
    operators = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "FULLY_CONNECTED" in operators and "HASHTABLE_FIND" in operators
    assert not [name for name in operators if name.startswith("Flex")], operators


@pytest.mark.slow
def test_int8_file_quantizes_the_network_and_keeps_preprocessing_float(trained_run):
    interpreter = inference.load_tflite(trained_run / EXPORT_FORMATS["tflite_int8"])
    tensors = {detail["name"]: detail["dtype"] for detail in interpreter.get_tensor_details()}
    network = [dtype for name, dtype in tensors.items() if "/mlp" in name]
    featurizer = [dtype for name, dtype in tensors.items() if "/featurizer" in name]
    assert np.int8 in network and set(network) <= {np.int8, np.int32}  # int32: biases
    assert featurizer and all(dtype != np.int8 for dtype in featurizer)
    # So missing numbers (NaN) and unseen categories still work in the int8 file.
    rows = {"age": np.array([[30.0], [65.0], [50.0]], "float32"),
            "annual_income": np.array([[np.nan], [50000.0], [np.nan]], "float32"),
            "color": np.array([["red"], ["never seen"], ["[missing]"]], dtype=object)}
    keras_model = inference.load_keras(trained_run / "model.keras")
    np.testing.assert_allclose(inference.tflite_outputs(interpreter, rows),
                               inference.keras_outputs(keras_model, rows), atol=0.05)


@pytest.mark.slow
def test_client_schema_records_vocabulary_and_normalization(trained_run, user_csv):
    schema = json.loads((trained_run / "export" / "schema.json").read_text())
    by_input = {entry["input"]: entry for entry in schema["inputs"]}
    assert by_input["color"]["vocabulary"][0] == "[UNK]"
    assert set(by_input["color"]["vocabulary"][1:]) == {"red", "green", "blue", "[missing]"}
    # Normalization statistics come from the training split only.
    splits = load_tabular(str(user_csv), "binary", target="bought", seed=0)
    assert by_input["age"]["mean"] == pytest.approx(splits.train["age"].mean(), rel=1e-5)
    assert by_input["age"]["mean"] != pytest.approx(
        pd.concat([splits.train, splits.validation, splits.test])["age"].mean(), rel=1e-6)
    assert by_input["annual_income"]["mean"] == pytest.approx(
        splits.train["annual income"].mean(), rel=1e-5)


@pytest.mark.slow
def test_report_shows_model_baselines_and_exports(trained_run):
    report = (trained_run / "report.md").read_text()
    for text in ["## Test metrics against baselines", "logistic_regression", "**model**",
                 "## Exports", "| `tflite_int8` | export/model_int8.tflite |",
                 "### Latency", "| Keras predict() |", "plots/roc_curve.png",
                 "(positive: `yes`)"]:
        assert text in report


@pytest.mark.slow
def test_same_seed_gives_the_same_run(trained_run, user_csv, tmp_path):
    again = tmp_path / "again"
    assert main(["--data", str(user_csv), "--target", "bought", "--run-dir", str(again),
                 "--export", "none", "--tensorboard", *FAST]) == 0
    assert read_metrics(again)["test"] == read_metrics(trained_run)["test"]
    assert read_metrics(again)["exports"] == {}
    assert list((again / "logs" / "train").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_failed_parity_keeps_the_earlier_run(trained_run, user_csv, tmp_path, monkeypatch,
                                             capsys):
    run_dir = tmp_path / "kept"
    assert main(["--data", str(user_csv), "--target", "bought", "--run-dir", str(run_dir),
                 "--export", "keras", *FAST]) == 0
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    original = inference.tflite_outputs
    monkeypatch.setattr(inference, "tflite_outputs",
                        lambda *args: original(*args) + 1e-3)  # a broken converter
    capsys.readouterr()
    code = main(["--data", str(user_csv), "--target", "bought", "--run-dir", str(run_dir),
                 *FAST])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert error[-1].startswith("error: export parity failed: tflite differs by 0.001")
    after = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    assert after == before
    failed = run_dir.with_name("kept.failed")
    assert json.loads((failed / "metrics.json").read_text())["exports"]["tflite"][
        "max_abs_diff"] > 1e-4


@pytest.mark.slow
def test_bad_input_keeps_the_earlier_run(trained_run, tmp_path, capsys):
    before = {path: path.stat().st_mtime_ns for path in trained_run.rglob("*")}
    code = main(["--data", str(tmp_path / "missing.csv"), "--target", "bought",
                 "--run-dir", str(trained_run)])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: data file not found")
    assert {path: path.stat().st_mtime_ns for path in trained_run.rglob("*")} == before


@pytest.mark.slow
def test_explicit_test_file_is_the_test_split(user_csv, tmp_path):
    frame = pd.read_csv(user_csv)
    frame.iloc[:180].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[180:].to_csv(tmp_path / "holdout.csv", index=False)
    run_dir = tmp_path / "with_test_file"
    assert main(["--data", str(tmp_path / "train.csv"), "--target", "bought", "--test-data",
                 str(tmp_path / "holdout.csv"), "--run-dir", str(run_dir), "--export", "none",
                 *FAST]) == 0
    rows = read_metrics(run_dir)["rows"]
    assert rows == {"train": 144, "validation": 36, "test": 60}


@pytest.mark.slow
def test_mirrored_strategy_on_logical_cpus_trains(user_csv, tmp_path):
    keras.backend.clear_session()
    run_dir = tmp_path / "mirrored"
    assert main(["--data", str(user_csv), "--target", "bought", "--run-dir", str(run_dir),
                 "--strategy", "mirrored", "--export", "none", *FAST]) == 0
    assert read_metrics(run_dir)["test"]["accuracy"] > 0.5


@pytest.mark.slow
def test_tflite_takes_raw_text_columns_on_standalone_litert(trained_run):
    interpreter = inference.load_tflite(trained_run / "export" / "model.tflite")
    inputs = interpreter.get_signature_runner().get_input_details()
    assert inputs["color"]["dtype"] is np.bytes_
    assert inputs["age"]["dtype"] is np.float32
    rows = {"age": np.array([[30.0], [65.0]], "float32"),
            "annual_income": np.array([[np.nan], [50000.0]], "float32"),
            "color": np.array([["[missing]"], ["never seen"]], dtype=object)}
    keras_model = inference.load_keras(trained_run / "model.keras")
    np.testing.assert_allclose(inference.tflite_outputs(interpreter, rows),
                               inference.keras_outputs(keras_model, rows), atol=1e-5)


def test_a_model_needing_flex_ops_fails_tflite_export_loudly(tmp_path):
    """A TensorFlow op with no LiteRT builtin (here StringLength) must not export silently."""
    import keras

    @keras.saving.register_keras_serializable(package="tests")
    class TextLength(keras.layers.Layer):
        def call(self, inputs):
            return tf.cast(tf.strings.length(inputs), "float32")

    text = keras.Input(shape=(1,), dtype="string", name="text")
    model = keras.Model({"text": text}, keras.layers.Dense(1)(TextLength()(text)))

    features = {"text": np.array([["abc"], ["de"]], dtype=object)}
    with pytest.raises(export.ExportError, match=r"\(tflite\) failed: .* outside LiteRT's"):
        export.export_all(model, export.ExportInputs(features, features), tmp_path,
                          ExportConfig(formats=["keras", "tflite"]))


@pytest.mark.slow
def test_run_card_records_versions_seed_and_hashes(trained_run, user_csv):
    import hashlib

    import keras

    card = json.loads((trained_run / "run_card.json").read_text())
    assert card["seed"] == 0
    assert card["versions"]["keras"] == keras.__version__
    assert card["versions"]["tensorflow"] == tf.__version__
    for name in ("python", "keras_tuner", "ai_edge_litert", "scikit_learn"):
        assert card["versions"][name]
    assert card["data"]["data"]["sha256"] == hashlib.sha256(user_csv.read_bytes()).hexdigest()
    assert list(card["artifacts"]) == list(EXPORT_FORMATS)
    tflite = trained_run / "export" / "model.tflite"
    assert card["artifacts"]["tflite"]["sha256"] == hashlib.sha256(tflite.read_bytes()).hexdigest()
    assert card["artifacts"]["keras"]["sha256"] == hashlib.sha256(
        (trained_run / "model.keras").read_bytes()).hexdigest()
    metrics = read_metrics(trained_run)
    for name, artifact in card["artifacts"].items():
        assert artifact["parity"]["passed"] == metrics["exports"][name]["passed"]
    assert card["artifacts"]["tflite"]["parity"]["tolerance"] == 1e-4
    assert card["artifacts"]["tflite_int8"]["parity"]["thresholds"] == {
        "min_label_agreement": 0.98, "max_metric_drop": 0.01}
    assert card["artifacts"]["tflite_int8"]["parity"]["label_agreement"] == metrics["exports"][
        "tflite_int8"]["label_agreement"]
    assert len(card["artifacts"]["savedmodel"]["sha256"]) == 64


def test_named_data_fingerprint_is_stable():
    from tasks.engine.fingerprints import data_fingerprint

    first = data_fingerprint("breast_cancer", "binary")
    assert first == data_fingerprint("breast_cancer", "binary")
    assert first["source"] == "named dataset 'breast_cancer'"
    assert first != data_fingerprint("smartwatch", "binary")


@pytest.mark.slow
def test_a_quantized_file_missing_its_threshold_is_kept_with_a_warning(user_csv, tmp_path,
                                                                        monkeypatch, capsys):
    """Quantization error is reported, not fatal: the run succeeds and says so loudly."""
    original = inference.outputs_of

    def flipped_int8(name, loaded, features):
        outputs = original(name, loaded, features)
        return 1.0 - outputs if name == "tflite_int8" else outputs

    monkeypatch.setattr(inference, "outputs_of", flipped_int8)
    run_dir = tmp_path / "flipped"
    assert main(["--data", str(user_csv), "--target", "bought", "--run-dir", str(run_dir),
                 "--export", "keras,tflite_int8", "--set", "export.latency=false", *FAST]) == 0
    out = capsys.readouterr().out
    assert "warning: tflite_int8 misses its quality threshold (label agreement 0.0" in out
    metrics = read_metrics(run_dir)
    assert metrics["exports"]["tflite_int8"]["passed"] is False
    assert metrics["exports"]["keras"]["passed"] is True
    assert "latency" not in metrics["exports"]["keras"] and metrics["latency"] == {}
    assert "| `tflite_int8` |" in (run_dir / "report.md").read_text()
    assert "| **NO** |" in (run_dir / "report.md").read_text()
    card = json.loads((run_dir / "run_card.json").read_text())
    assert card["artifacts"]["tflite_int8"]["parity"]["passed"] is False


def test_judging_reduced_precision_by_labels_and_metric_drop():
    settings = ExportConfig()
    reference = np.array([[0.9], [0.2], [0.6], [0.4]])
    truth = np.array([1, 0, 1, 0])
    inputs = export.ExportInputs({}, {}, score=lambda out: float(
        ((out.reshape(-1) >= 0.5) == truth).mean()), predicted=lambda out: out.reshape(-1) >= 0.5)
    close = parity.judge("tflite_int8", reference, reference + 0.05, inputs, settings)
    assert close["label_agreement"] == 1.0 and close["passed"]
    assert close["metric"] == {"keras": 1.0, "artifact": 1.0, "drop": 0.0, "relative": False}
    assert close["max_abs_diff"] == pytest.approx(0.05)
    one_flip = parity.judge("tflite_int8", reference,
                            reference + np.array([[0], [0], [-0.2], [0]]), inputs, settings)
    assert one_flip["label_agreement"] == 0.75 and one_flip["metric"]["drop"] == 0.25
    assert not one_flip["passed"]
    # A float artifact with the same difference fails the run instead.
    float_result = parity.judge("tflite", reference, reference + 0.05, inputs, settings)
    assert float_result["passed"] is False and "label_agreement" not in float_result
    with pytest.raises(parity.ParityError, match="tflite differs by 0.05"):
        parity.check_parity({"tflite": float_result, "tflite_int8": one_flip}, 1e-4)
    assert parity.check_parity({"tflite_int8": one_flip}, 1e-4) == [
        "warning: tflite_int8 misses its quality threshold (label agreement 0.750, metric drop "
        "0.2500); it is kept, see report.md"]

"""`tasks.transfer_learning`: two phases, one history, and the offline path through `--weights`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from datasets.synthetic_images import generate_image_folder
from tasks import image_classify, predict, transfer_learning
from tasks.engine import inference
from tests.helpers import assert_one_error_line, network_is_reachable

SMALL = ["--image-size", "16", "--set", "train.early_stopping_patience=0",
         "--set", "export.latency=false"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Shapes to pretrain on (circle, square, triangle), and a new problem: cross vs ring."""
    root = tmp_path_factory.mktemp("transfer")
    old = generate_image_folder(root / "old", classes=3, per_class=20, size=16, seed=0)
    new = generate_image_folder(root / "all", classes=5, per_class=15, size=16, seed=1)
    for name in ("circle", "square", "triangle"):
        for path in (new / name).iterdir():
            path.unlink()
        (new / name).rmdir()
    return old, new


@pytest.fixture(scope="module")
def pretrained(folders, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "pretrain"
    assert image_classify.main(["--data", str(folders[0]), "--run-dir", str(run_dir),
                                "--epochs", "3", "--export", "keras",
                                "--set", "model.filters=[8,16]", *SMALL]) == 0
    return run_dir / "model.keras"


@pytest.fixture(scope="module")
def transfer_run(folders, pretrained, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "transfer"
    assert transfer_learning.main([
        "--data", str(folders[1]), "--weights", str(pretrained), "--run-dir", str(run_dir),
        "--epochs", "3", "--fine-tune-epochs", "2", "--fine-tune-layers", "4",
        "--learning-rate", "0.002", "--export", "keras,tflite,tflite_int8", *SMALL]) == 0
    return run_dir


@pytest.mark.slow
def test_both_phases_share_one_history_and_report(transfer_run):
    history = pd.read_csv(transfer_run / "history.csv")
    assert list(history["phase"]) == [1, 1, 1, 2, 2]
    assert list(history["epoch"]) == [0, 1, 2, 3, 4]
    # Phase 2 runs at a tenth of phase 1's learning rate.
    np.testing.assert_allclose(history.loc[history["phase"] == 1, "learning_rate"], 0.002,
                               rtol=1e-5)
    np.testing.assert_allclose(history.loc[history["phase"] == 2, "learning_rate"], 0.0002,
                               rtol=1e-5)
    metrics = json.loads((transfer_run / "metrics.json").read_text())
    assert metrics["task"] == "transfer_learning"
    assert metrics["phases"]["head_epochs"] == 3 and metrics["phases"]["fine_tune_epochs"] == 2
    assert metrics["phases"]["fine_tune_layers"] == 4
    assert metrics["phases"]["kept"] in (1, 2)
    assert [row["class"] for row in metrics["per_class"]] == ["cross", "ring"]
    assert "two phases: 3 epochs training the head" in (transfer_run / "report.md").read_text()


@pytest.mark.slow
def test_the_backbone_is_the_pretrained_feature_extractor(transfer_run, pretrained):
    """With no fine-tuning step kept, the backbone's weights are the pretrained network's; in
    any case its batch-norm layers were frozen, so their statistics are the pretrained ones."""
    import zoo

    before = inference.load_keras(pretrained)
    after = inference.load_keras(transfer_run / "model.keras")
    source = zoo.applications.feature_extractor(before)
    backbone = zoo.applications.backbone_layers(after)
    source_bn = [layer for layer in source.layers
                 if isinstance(layer, keras.layers.BatchNormalization)]
    backbone_bn = [layer for layer in backbone.layers
                   if isinstance(layer, keras.layers.BatchNormalization)]
    assert source_bn and len(source_bn) == len(backbone_bn)
    for old, new in zip(source_bn, backbone_bn, strict=True):
        for old_weight, new_weight in zip(old.get_weights(), new.get_weights(), strict=True):
            np.testing.assert_array_equal(old_weight, new_weight)


@pytest.mark.slow
def test_transferred_model_exports_and_predicts_raw_images(transfer_run, folders, tmp_path):
    metrics = json.loads((transfer_run / "metrics.json").read_text())
    assert metrics["exports"]["tflite"]["max_abs_diff"] <= 1e-4
    assert 0 <= metrics["exports"]["tflite_int8"]["label_agreement"] <= 1
    output = tmp_path / "predictions.csv"
    assert predict.main(["--run-dir", str(transfer_run), "--data", str(folders[1]),
                         "--format", "tflite", "--output", str(output)]) == 0
    predictions = pd.read_csv(output)
    assert len(predictions) == 30
    assert set(predictions["predicted_class"]) <= {"cross", "ring"}


@pytest.mark.skipif(network_is_reachable(), reason="needs a machine without network access")
def test_offline_imagenet_is_one_error_line_and_writes_nothing(tmp_path):
    """The default command, offline: the message names the file and the cache folder to put it
    in (Keras reads KERAS_HOME when imported, hence a fresh process). TensorFlow's native
    start-up notices are forced on (TF_ENABLE_ONEDNN_OPTS=1), as some CPUs print them by
    default, and the user's environment has no TF_CPP_MIN_LOG_LEVEL: still one line."""
    home = tmp_path / "keras_home"
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "tasks.transfer_learning", "--run-dir", str(run_dir)],
        capture_output=True, text=True,
        env={**{key: value for key, value in os.environ.items()
                if key != "TF_CPP_MIN_LOG_LEVEL"},
             "KERAS_HOME": str(home), "TF_ENABLE_ONEDNN_OPTS": "1"},
        cwd=Path(__file__).resolve().parents[2], timeout=300)
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr.strip().splitlines(), "could not be downloaded",
                          "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
                          str(home / "models"), "--weights none", "--weights PATH")
    assert not run_dir.exists() and not run_dir.with_name("run.failed").exists()


def test_transfer_input_errors(tmp_path, capsys):
    code = transfer_learning.main(["--weights", str(tmp_path / "nope.keras")])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err.strip().splitlines(), "--weights takes",
                          "nope.keras")
    assert transfer_learning.main(["--fine-tune-layers", "lots"]) == 2
    assert_one_error_line(capsys.readouterr().err.strip().splitlines(),
                          "--fine-tune-layers", "takes a number of layers or all", "lots")
    code = image_classify.main(["--set", "train.fine_tune_layers=3", "--epochs", "1",
                                "--run-dir", str(tmp_path / "cnn")])
    assert code == 2
    assert_one_error_line(capsys.readouterr().err.strip().splitlines(),
                          "--fine-tune-layers", "--model transfer")

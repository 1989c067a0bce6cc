"""The Python API: `tasks.run` as a notebook uses it, and its errors as exceptions."""

from __future__ import annotations

import json

import keras
import pandas as pd
import pytest

import tasks
from common.errors import InputError
from tasks import predict
from tests.helpers import make_user_frame

QUICK = {"train.early_stopping_patience": 0, "export.formats": ["keras", "tflite"],
         "export.latency": False}


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    frame = make_user_frame()
    frame.to_csv(root / "shoppers.csv", index=False)
    result = tasks.run("binary_classify", data=root / "shoppers.csv", target="bought",
                       epochs=3, run_dir=root / "run", settings=QUICK)
    return result, frame


@pytest.mark.slow
def test_run_returns_the_run_directory_metrics_history_and_model(api_run):
    result, _ = api_run
    assert result.metrics == json.loads((result.run_dir / "metrics.json").read_text())
    assert isinstance(result.history, pd.DataFrame)
    assert len(result.history) == 3 and "val_loss" in result.history
    assert isinstance(result.model, keras.Model)
    assert result.config.train.epochs == 3 and result.config.data.target == "bought"
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved == result.config.to_dict()


@pytest.mark.slow
def test_predict_gives_what_the_predict_cli_gives(api_run, tmp_path):
    result, frame = api_run
    rows = frame.drop(columns="bought").head(20)
    rows.to_csv(tmp_path / "new.csv", index=False)
    from_frame = result.predict(rows)
    assert predict.main(["--run-dir", str(result.run_dir), "--data", str(tmp_path / "new.csv"),
                         "--output", str(tmp_path / "out.csv")]) == 0
    from_cli = pd.read_csv(tmp_path / "out.csv")
    assert list(from_frame.columns) == list(from_cli.columns)
    assert (from_frame["predicted_bought"].to_numpy() == from_cli["predicted_bought"]).all()
    pd.testing.assert_series_equal(from_frame["probability_yes"], from_cli["probability_yes"],
                                   check_exact=False, rtol=1e-5)
    tflite = result.predict(tmp_path / "new.csv", artifact="tflite")
    assert (tflite["predicted_bought"] == from_frame["predicted_bought"]).all()


@pytest.mark.parametrize("call, fragment", [
    (lambda root: tasks.run("no_such_task"), "unknown task 'no_such_task'"),
    (lambda root: tasks.run("binary_classify", data=root / "missing.csv", target="y",
                            run_dir=root / "run"), "missing.csv"),
    (lambda root: tasks.run("binary_classify", epochz=3), "unknown setting 'epochz'"),
    (lambda root: tasks.run("binary_classify", trials=3, run_dir=root / "run"),
     "trials only apply to a hyperparameter search. Pass tune=True"),
    (lambda root: tasks.run("binary_classify", epochs=0, run_dir=root / "run"), "epochs"),
    (lambda root: tasks.run("binary_classify", settings={"model.no_such": 1},
                            run_dir=root / "run"), "no_such"),
])
def test_bad_input_raises_input_error_and_writes_nothing(call, fragment, tmp_path):
    with pytest.raises(InputError, match=fragment.replace("(", r"\(")):
        call(tmp_path)
    assert not (tmp_path / "run").exists()


def test_configure_applies_settings_as_the_cli_does_without_changing_the_given_config():
    from tasks.binary_classify import default_config

    base = default_config()
    config = tasks.configure(base, data="smartwatch", tune=True, trials=4, learning_rate=0.01,
                             settings={"model.dropout_rate": 0.2})
    assert config.tune.enabled and config.tune.trials == 4
    assert config.train.learning_rate == 0.01 and config.model.params["dropout_rate"] == 0.2
    # Settings given explicitly stay fixed in a search, as with --learning-rate / --set.
    assert set(config.tune.fixed) == {"train.learning_rate", "model.dropout_rate"}
    assert base.tune.enabled is False and base.train.learning_rate != 0.01

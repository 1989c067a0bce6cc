"""Tests of `tasks.config` and the shared command line `tasks.cli.config_from_args`."""

from __future__ import annotations

import json

import pytest

from common.errors import InputError
from tasks.binary_classify import default_config
from tasks.cli import config_from_args
from tasks.config import DEFAULT_EXPORTS, EXPORT_FORMATS, TaskConfig, validate
from tasks.settings import apply_mapping, apply_override

PROG = "tasks.binary_classify"


def parse(*argv: str) -> TaskConfig:
    return config_from_args(default_config, list(argv), PROG, "")


def test_no_flags_gives_the_defaults():
    assert parse().to_dict() == default_config().to_dict()


def test_default_config_is_valid_and_fresh():
    config = default_config()
    validate(config)
    assert config.task == "binary_classify"
    assert config.problem == "binary"
    config.model.params["hidden_units"].append(1)
    config.data.categorical.append("x")
    assert default_config().model.params["hidden_units"] == [64, 32]
    assert default_config().data.categorical == []


def test_flags_map_to_fields(tmp_path):
    config = parse(
        "--data", "my.csv", "--target", "bought", "--test-data", "holdout.csv",
        "--positive-label", "yes", "--model", "wide", "--epochs", "5", "--batch-size", "16",
        "--learning-rate", "0.01", "--optimizer", "sgd", "--seed", "3", "--strategy", "mirrored",
        "--run-dir", str(tmp_path), "--tensorboard", "--categorical", "a",
        "--categorical", "b, c", "--export", "keras,tflite",
    )
    assert config.data.data == "my.csv"
    assert config.data.target == "bought"
    assert config.data.test_data == "holdout.csv"
    assert config.data.positive_label == "yes"
    assert config.data.categorical == ["a", "b", "c"]
    assert config.model.name == "wide"
    assert config.train.epochs == 5 and isinstance(config.train.epochs, int)
    assert config.train.batch_size == 16
    assert config.train.learning_rate == 0.01
    assert config.train.optimizer == "sgd"
    assert config.train.tensorboard is True
    assert config.runtime.seed == 3
    assert config.runtime.strategy == "mirrored"
    assert config.runtime.run_dir == str(tmp_path)
    assert config.export.formats == ["keras", "tflite"]


def test_flags_leave_other_fields_at_defaults():
    config = parse("--epochs", "7")
    expected = default_config().to_dict()
    expected["train"]["epochs"] = 7
    assert config.to_dict() == expected


def test_set_train_epochs():
    config = parse("--set", "train.epochs=5")
    assert config.train.epochs == 5
    assert isinstance(config.train.epochs, int)


def test_set_model_keys_go_into_params():
    config = parse("--set", "model.hidden_units=[8,4]", "--set", "model.dropout_rate=0.3")
    assert config.model.params["hidden_units"] == [8, 4]
    assert config.model.params["dropout_rate"] == 0.3
    assert config.model.name == "mlp"
    assert "hidden_units" not in config.to_dict()["model"]


def test_set_model_params_prefix_and_name():
    config = parse("--set", "model.params.dropout_rate=0.5", "--set", "model.name=wide")
    assert config.model.params["dropout_rate"] == 0.5
    assert config.model.name == "wide"


def test_set_list_from_comma_text():
    assert parse("--set", "data.categorical=a,b").data.categorical == ["a", "b"]
    assert parse("--set", 'data.categorical=["a","b"]').data.categorical == ["a", "b"]


def test_set_converts_types():
    config = parse("--set", "data.positive_label=1", "--set", "train.learning_rate=1",
                   "--set", "train.tensorboard=yes", "--set", "data.target=none")
    assert config.data.positive_label == "1"
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    assert config.train.tensorboard is True
    assert config.data.target is None


def test_set_is_applied_after_flags():
    assert parse("--epochs", "5", "--set", "train.epochs=9").train.epochs == 9


def test_set_unknown_section():
    with pytest.raises(InputError, match="unknown setting 'trian.epochs'") as info:
        parse("--set", "trian.epochs=5")
    message = str(info.value)
    assert "data, model, train, runtime, export" in message
    assert "train.epochs=50" in message


def test_set_key_without_section():
    with pytest.raises(InputError, match="unknown setting 'epochs'"):
        parse("--set", "epochs=5")


def test_set_unknown_key_lists_valid_keys():
    with pytest.raises(InputError, match="unknown setting 'train.epoch'") as info:
        parse("--set", "train.epoch=5")
    message = str(info.value)
    for key in ("epochs", "batch_size", "learning_rate", "optimizer"):
        assert key in message


def test_set_without_equals():
    with pytest.raises(InputError, match="KEY=VALUE") as info:
        parse("--set", "train.epochs")
    assert "Received: --set train.epochs" in str(info.value)


@pytest.mark.parametrize("setting, received", [
    ("train.epochs=abc", "'abc'"),
    ("train.epochs=2.5", "2.5"),
    ("train.learning_rate=fast", "'fast'"),
    ("train.tensorboard=maybe", "'maybe'"),
    ("model.params=[1,2]", "[1, 2]"),
])
def test_set_wrong_type(setting, received):
    key = setting.partition("=")[0]
    with pytest.raises(InputError, match="takes") as info:
        parse("--set", setting)
    message = str(info.value)
    assert key in message
    assert f"Received: {key}={received}" in message


@pytest.mark.parametrize("argv, received", [
    (["--epochs", "abc"], "'abc'"),
    (["--learning-rate", "fast"], "'fast'"),
    (["--seed", "1.5"], "'1.5'"),
])
def test_flag_wrong_type(argv, received):
    with pytest.raises(InputError, match=argv[0]) as info:
        parse(*argv)
    message = str(info.value)
    assert received in message
    assert "--help" in message


@pytest.mark.parametrize("argv, text", [
    (["--epochs", "0"], "train.epochs (--epochs) must be at least 1. Received: 0"),
    (["--learning-rate", "-0.1"], "must be positive. Received: -0.1"),
    (["--batch-size", "0"], "--batch-size"),
    (["--seed", "-1"], "--seed"),
    (["--set", "train.optimizer=nope"], "must be one of sgd, momentum"),
    (["--set", "data.validation_fraction=1.5"], "between 0 and 1. Received: 1.5"),
    (["--set", "data.test_fraction=0"], "data.test_fraction"),
    (["--set", "runtime.strategy=tpu_pod"], "Received: 'tpu_pod'"),
])
def test_validate_rejects_bad_values(argv, text):
    with pytest.raises(InputError) as info:
        parse(*argv)
    assert text in str(info.value)


def test_validate_rejects_bad_optimizer_directly():
    config = default_config()
    config.train.optimizer = "nope"
    with pytest.raises(InputError, match="optimizer") as info:
        validate(config)
    assert "Received: 'nope'" in str(info.value)
    assert "adam" in str(info.value)


def test_export_unknown_format():
    with pytest.raises(InputError, match="unknown export format onnx") as info:
        parse("--export", "keras,onnx")
    message = str(info.value)
    for name in EXPORT_FORMATS:
        assert name in message


def test_export_none_all_and_default():
    assert parse("--export", "none").export.formats == []
    assert parse("--export", "None").export.formats == []
    assert parse("--export", "all").export.formats == list(EXPORT_FORMATS)
    assert parse().export.formats == list(DEFAULT_EXPORTS)
    assert set(DEFAULT_EXPORTS) < set(EXPORT_FORMATS)
    assert parse("--export", " savedmodel , keras").export.formats == ["savedmodel", "keras"]


def test_config_file_round_trip(tmp_path):
    mapping = default_config().to_dict()
    mapping["train"]["epochs"] = 7
    mapping["data"]["categorical"] = ["job"]
    mapping["model"]["params"]["hidden_units"] = [16]
    mapping["export"]["formats"] = ["keras"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(mapping))
    config = parse("--config", str(path))
    assert config.to_dict() == mapping
    # A run's own config.json replays the same configuration.
    path.write_text(json.dumps(config.to_dict()))
    assert parse("--config", str(path)).to_dict() == mapping


def test_flags_and_set_override_config_file(tmp_path):
    mapping = default_config().to_dict()
    mapping["train"]["epochs"] = 7
    mapping["train"]["batch_size"] = 8
    path = tmp_path / "config.json"
    path.write_text(json.dumps(mapping))
    config = parse("--config", str(path), "--epochs", "9", "--set", "train.batch_size=4")
    assert config.train.epochs == 9
    assert config.train.batch_size == 4


def test_config_file_missing(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(InputError, match="config file not found") as info:
        parse("--config", str(path))
    assert str(path) in str(info.value)
    assert "config.json" in str(info.value)


def test_config_file_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"train": {"epochs": 5,}}')
    with pytest.raises(InputError, match="not valid JSON") as info:
        parse("--config", str(path))
    assert str(path) in str(info.value)


def test_config_file_not_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object") as info:
        parse("--config", str(path))
    assert str(path) in str(info.value)


def test_config_file_for_another_task(tmp_path):
    mapping = default_config().to_dict()
    mapping["problem"] = "regression"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(mapping))
    with pytest.raises(InputError, match="problem 'regression'") as info:
        parse("--config", str(path))
    message = str(info.value)
    assert str(path) in message
    assert "'binary'" in message
    assert "Use it with that task" in message


def test_config_file_with_other_task_name(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"task": "regression"}))
    with pytest.raises(InputError, match="task 'regression', not 'binary_classify'"):
        parse("--config", str(path))


def test_config_file_with_unknown_key(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"train": {"epochz": 5}}))
    with pytest.raises(InputError, match="unknown setting 'train.epochz'") as info:
        parse("--config", str(path))
    assert "epochs" in str(info.value)


def test_config_file_section_not_an_object(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"train": 5}))
    with pytest.raises(InputError, match="'train' should be an object") as info:
        parse("--config", str(path))
    assert "Received: 5" in str(info.value)


def test_apply_mapping_merges_model_params():
    config = default_config()
    apply_mapping(config, {"model": {"params": {"dropout_rate": 0.5}}}, source="x.json")
    assert config.model.params == {"hidden_units": [64, 32], "dropout_rate": 0.5}
    with pytest.raises(InputError, match="model.params should be an object"):
        apply_mapping(config, {"model": {"params": [1]}}, source="x.json")


def test_apply_override_list_of_numbers_keeps_values():
    config = default_config()
    apply_override(config, "export.formats", "keras, tflite")
    assert config.export.formats == ["keras", "tflite"]


@pytest.mark.parametrize("argv, text", [
    (["--bogus"], "--bogus"),
    (["--optimizer", "nope"], "'nope'"),
    (["--strategy", "tpu_pod"], "'tpu_pod'"),
    (["--epochs"], "--epochs"),
])
def test_usage_errors_raise_input_error(argv, text, capsys):
    with pytest.raises(InputError) as info:
        parse(*argv)
    message = str(info.value)
    assert text in message
    assert "--help" in message
    assert "\n" not in message
    assert capsys.readouterr().err == ""


def test_help_exits_zero_with_usage(capsys):
    with pytest.raises(SystemExit) as info:
        parse("--help")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage:" in out
    assert "--data" in out
    assert "--set" in out
    assert PROG in out
    assert "20% of --data" in " ".join(out.split())

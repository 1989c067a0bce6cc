"""The engine and the CLI read what a model declares at registration, not its name."""

import subprocess
import sys

import keras
import pytest

import zoo
from common.errors import InputError
from tasks import binary_classify, cli, image_classify, transfer_learning
from tasks.config import TaskConfig
from tasks.engine import models
from tests.helpers import ROOT


def options(parser):
    return {option for action in parser._actions for option in action.option_strings}


# --- zoo errors become the user's one line, naming the flag -----------------------------------

def test_a_setting_with_a_flag_is_written_as_the_flag():
    error = ValueError("the pretrained weights could not be downloaded. Train without them: "
                       "weights=None, or from a model you trained: weights='PATH/model.keras'. "
                       "Received: weights='imagenet', backbone='resnet50'")
    message = str(models.settings_error("transfer", error))
    assert message == ("--weights: the pretrained weights could not be downloaded. Train without "
                       "them: --weights none, or from a model you trained: --weights "
                       "PATH/model.keras. Received: --weights imagenet, --backbone resnet50")


def test_a_path_with_a_quote_and_a_line_break_stays_one_line():
    path = "/data/it's\nhere.keras"
    message = str(models.settings_error(
        "transfer", ValueError(f"no model file at {path}. Received: weights={path!r}")))
    assert "\n" not in message
    assert message.startswith("--weights: no model file at")
    assert message.endswith("Received: --weights /data/it's\\nhere.keras")


def test_a_setting_without_a_flag_says_how_to_set_it():
    error = ValueError("dropout_rate must be in [0, 1). Received: dropout_rate=1.5")
    assert str(models.settings_error("mlp", error)) == (
        "model 'mlp': dropout_rate must be in [0, 1). Received: dropout_rate=1.5 (set with --set "
        "model.NAME=VALUE)")


def test_the_declared_check_runs_before_training_and_names_the_flag(tmp_path):
    spec = zoo.get_spec("transfer")
    models.check_settings(spec, {"weights": None, "dropout_rate": 0.1})  # nothing to get
    with pytest.raises(InputError) as raised:
        models.check_settings(spec, {"weights": str(tmp_path / "gone.keras")})
    assert str(raised.value) == (
        f"--weights: no model file at {tmp_path / 'gone.keras'}. Give the model.keras of an "
        f"earlier run, --weights imagenet or --weights none. Received: --weights "
        f"{tmp_path / 'gone.keras'}")


# --- the model's data and settings ---------------------------------------------------------

def test_a_model_for_the_other_kind_of_data_is_one_error_line(capsys):
    capsys.readouterr()
    code = binary_classify.main(["--data", "breast_cancer", "--model", "cnn"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert lines == ["error: model 'cnn' takes images, but this task's data is a table. Choose "
                     "one of: mlp. Received: --model cnn"]


def test_unknown_models_are_listed_for_the_task_s_data():
    with pytest.raises(InputError, match=r"unknown model 'nope'. Choose one of: cnn, resnet, "
                                         r"transfer\.$"):
        models.validate_model("nope", {}, "images")


def test_data_arguments_are_not_settings(registered):
    @registered("test_sized", inputs="images", data_arguments=("input_shape", "problem"))
    def sized(input_shape, problem="binary", num_classes=2, width=4):
        return None

    assert models.validate_model("test_sized", {"num_classes": 3}, "images").name == "test_sized"
    with pytest.raises(InputError, match="model 'test_sized' has no setting 'input_shape'. Its "
                                         r"settings: num_classes, width \(set with --set"):
        models.validate_model("test_sized", {"input_shape": (2, 2, 1)}, "images")


# --- two phases ----------------------------------------------------------------------------

def tiny_two_phase(input_dim, problem="binary", num_classes=None):
    extractor = keras.Sequential([keras.Input((input_dim,)), keras.layers.Dense(3)],
                                 name="encoder")
    inputs = keras.Input((input_dim,))
    return keras.Model(inputs, zoo.add_head(extractor(inputs), problem, num_classes))


def test_the_feature_extractor_is_the_layer_the_registration_names(registered):
    registered("test_encoded", feature_extractor="encoder")(tiny_two_phase)
    spec = zoo.get_spec("test_encoded")
    network = zoo.build_model("test_encoded", input_dim=4)
    assert models.two_phase_layer(spec, network, 5) is network.get_layer("encoder")
    assert models.two_phase_layer(zoo.get_spec("mlp"), network, 0) is None


def test_fine_tuning_a_one_phase_model_lists_the_two_phase_ones(registered):
    registered("test_encoded", feature_extractor="encoder")(tiny_two_phase)
    network = zoo.build_model("mlp", input_dim=4)
    with pytest.raises(InputError) as raised:
        models.two_phase_layer(zoo.get_spec("mlp"), network, 3)
    assert str(raised.value) == (
        "train.fine_tune_layers (--fine-tune-layers) applies to models with a pretrained feature "
        "extractor, trained in two phases (--model test_encoded or --model transfer); 'mlp' has "
        "none. Received: 3")


# --- the CLI offers a two-phase model's flags --------------------------------------------

def test_a_task_offers_the_two_phase_flags_when_its_model_declares_two_phases(registered):
    registered("test_encoded", feature_extractor="encoder")(tiny_two_phase)
    own = TaskConfig(task="own", problem="binary")
    own.model.name = "test_encoded"
    assert set(cli.TWO_PHASE_FLAGS) <= options(cli.build_parser("own", "", own))
    assert not set(cli.TWO_PHASE_FLAGS) & options(
        cli.build_parser("binary", "", binary_classify.default_config()))
    assert not set(cli.TWO_PHASE_FLAGS) & options(
        cli.build_parser("image", "", image_classify.default_config()))


@pytest.mark.parametrize(("argv", "offered"), [
    (["--epochs", "1", "--data", "digits"], False),
    (["--weights=none"], True),
    (["--fine", "3"], True),        # argparse takes an unambiguous prefix
    (["--b", "8"], True),           # ambiguous with the flags: argparse must say so, as before
    (["-h"], True),
    (["--he"], True),
])
def test_the_registration_is_read_only_when_the_arguments_may_use_it(argv, offered):
    parser = cli.build_parser("transfer", "", transfer_learning.default_config(), argv)
    assert (set(cli.TWO_PHASE_FLAGS) <= options(parser)) is offered


def test_bad_data_is_reported_before_tensorflow_loads(tmp_path):
    """Reading the model's registration loads TensorFlow; bad data needs no model."""
    code = ("import sys; from tasks import binary_classify; "
            f"code = binary_classify.main(['--data', {str(tmp_path / 'gone.csv')!r}, "
            "'--target', 'y']); "
            "print(code, 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.split() == ["2", "False"], result.stderr[-2000:]
    assert result.stderr.startswith("error: ")

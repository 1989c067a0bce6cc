"""Transfer learning: pretrained backbones, offline weights, and backbones from earlier runs."""

import socket
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest

import zoo
from common import compat
from datasets.image_preprocessing import ImagePreprocessor, ImageSchema
from tests.helpers import network_is_reachable
from zoo.applications import (
    BACKBONES,
    _backbone_size,
    backbone_layers,
    feature_extractor,
    set_trainable,
    transfer,
    weights_cache_folder,
)
from zoo.layers import ApplicationPreprocessing, MatchChannels, ResizeImages, TrainingOnly

NO_AUGMENTATION = {"rotation": 0.0, "zoom": 0.0, "translation": 0.0, "contrast": 0.0}


def images(shape, count=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, *shape)).astype("float32")


def numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """Points Keras's cache at an empty folder, as `KERAS_HOME=tmp` would.

    Keras reads KERAS_HOME once, when it is imported; so the test sets the value it was read
    into (`compat.set_keras_home`) as well as the variable.
    """
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    previous = compat.set_keras_home(str(tmp_path))
    yield tmp_path
    compat.set_keras_home(previous)


# --- Backbones from keras.applications ---------------------------------------------------

@pytest.mark.parametrize(("backbone", "features"), [
    ("mobilenet_v3_small", 576), ("efficientnet_b0", 1280), ("resnet50", 2048),
    ("resnet50v2", 2048)])
def test_every_backbone_builds_on_small_grayscale_images(backbone, features):
    model = transfer((8, 8, 1), num_classes=5, backbone=backbone)
    output = numpy(model(images((8, 8, 1)), training=False))
    assert output.shape == (3, 5)
    np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("features").output.shape == (None, features)
    assert backbone_layers(model).input_shape == (None, 32, 32, 3)  # at least 32, 3 channels
    assert model.get_layer("preprocess_input").architecture == backbone
    names = [layer.name for layer in model.layers]
    assert names[-6:] == ["match_channels", "preprocess_input", "backbone", "features",
                          "head_dropout", "head"]


def test_layers_between_the_image_and_the_backbone():
    model = transfer((40, 12, 3), problem="binary", dense_units=(8,), flip="horizontal",
                     dropout_rate=0.1, l2=1e-3)
    names = [layer.name for layer in model.layers]
    assert "match_channels" not in names  # RGB already
    assert model.get_layer("resizing").output.shape[1:3] == (40, 32)  # each side >= 32
    # Augmentation acts on raw pixels: the contrast change clips to 0..255, not 0..1.
    assert model.get_layer("random_contrast_in_training").layer.value_range == (0, 255)
    assert model.get_layer("dense_0").units == 8
    assert len(model.losses) == 1  # l2 on the new dense layer only
    assert model.get_layer("head_dropout").rate == pytest.approx(0.1)
    assert "resizing" not in [layer.name for layer in transfer((32, 32, 3), num_classes=3).layers]
    assert _backbone_size(None, "imagenet", (8, 8, 1)) == (224, 224)
    assert _backbone_size(48, None, (8, 8, 1)) == (48, 48)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"backbone": "vgg16"}, ValueError,
     r"backbone must be one of \('resnet50', 'resnet50v2', 'mobilenet_v3_small', "
     r"'efficientnet_b0'\). Received: backbone='vgg16'"),
    ({"weights": 3}, ValueError, "weights must be None, 'imagenet' or the path"),
    ({"weights": "imagenett"}, ValueError,
     "no model file at imagenett. .*Received: weights='imagenett'$"),
    ({"backbone_size": 16}, ValueError, "backbone_size must be"),
    ({"input_shape": (8, 8, 2)}, ValueError, "1 .grayscale. or 3 .RGB. channels"),
    ({"dense_units": (0,)}, ValueError, "dense_units must be"),
])
def test_invalid_arguments_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        transfer(**{"input_shape": (8, 8, 1), "num_classes": 3, **kwargs})


def test_application_preprocessing_is_the_backbones_own_and_serializes():
    x = images((4, 4, 3))
    caffe = ApplicationPreprocessing("resnet50")
    expected = keras.applications.resnet50.preprocess_input(x.copy())
    np.testing.assert_allclose(numpy(caffe(x)), expected, rtol=1e-6)
    np.testing.assert_allclose(numpy(ApplicationPreprocessing("resnet50v2")(x)), x / 127.5 - 1,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(numpy(ApplicationPreprocessing("mobilenet_v3_small")(x)), x)
    clone = ApplicationPreprocessing.from_config(caffe.get_config())
    assert clone.architecture == "resnet50"
    with pytest.raises(ValueError, match="architecture must be one of"):
        ApplicationPreprocessing("vgg16")


def test_a_model_called_without_training_runs_in_inference_mode(tmp_path):
    """`model(x)` is `model(x, training=False)`, also behind the resizing (see ResizeImages).

    With keras.layers.Resizing in its place, the backbone's batch norm normalized with the
    batch's statistics here: the class probabilities moved by up to 0.25.
    """
    model = transfer((16, 16, 3), num_classes=3)
    assert isinstance(model.get_layer("resizing"), ResizeImages)
    x = images((16, 16, 3))
    np.testing.assert_array_equal(numpy(model(x)), numpy(model(x, training=False)))
    assert not np.allclose(numpy(model(x, training=True)), numpy(model(x, training=False)))
    resized = numpy(ResizeImages(32, 24)(x))
    np.testing.assert_allclose(resized, numpy(keras.layers.Resizing(32, 24)(x)), rtol=1e-6)
    assert ResizeImages.from_config(ResizeImages(32, 24).get_config()).width == 24


def test_match_channels_repeats_gray_and_averages_color():
    gray = images((2, 2, 1))
    np.testing.assert_array_equal(numpy(MatchChannels(3)(gray)), np.repeat(gray, 3, axis=-1))
    color = images((2, 2, 3))
    np.testing.assert_allclose(numpy(MatchChannels(1)(color)), color.mean(-1, keepdims=True),
                               rtol=1e-6)
    assert MatchChannels.from_config(MatchChannels(3).get_config()).channels == 3
    with pytest.raises(ValueError, match="1 channel to n or n to 1"):
        MatchChannels(3)(images((2, 2, 2)))


# --- ImageNet weights, offline ----------------------------------------------------------
# (At backbone_size=32, to keep them quick, MobileNetV3 warns that its weights are for 224.)

def refuse_downloads(monkeypatch):
    """What opening a URL does here without a network: a failed name lookup.

    `urllib.request.urlretrieve`, which `keras.utils.get_file` downloads with, opens the URL
    through `urllib.request.urlopen`.
    """
    def urlopen(url, *args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")
@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_imagenet_weights_that_cannot_be_downloaded_name_the_file_and_cache_folder(
        backbone, keras_home, monkeypatch):
    refuse_downloads(monkeypatch)  # also where the network is reachable: no 100 MB downloads
    with pytest.raises(ValueError) as raised:
        transfer((8, 8, 1), num_classes=3, backbone=backbone, weights="imagenet",
                 backbone_size=32)
    message = str(raised.value)
    file_name = BACKBONES[backbone][1]
    assert "\n" not in message
    assert f"the pretrained weights for {backbone} could not be downloaded" in message
    assert f"Place the file {file_name} in the Keras cache folder {keras_home / 'models'} " \
        in message
    # The zoo names builder arguments, never CLI flags (tasks name those).
    assert "weights=None" in message and "weights='PATH/model.keras'" in message
    assert "--" not in message
    assert message.endswith(f"Received: weights='imagenet', backbone={backbone!r}")
    # The file Keras asked for is the one the message names.
    assert str(raised.value.__cause__).startswith("URL fetch failure on https://")
    assert f"/{file_name}:" in str(raised.value.__cause__)
    assert weights_cache_folder() == keras_home / "models"


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")
@pytest.mark.skipif(network_is_reachable(), reason="needs a machine without network access")
def test_without_network_imagenet_weights_fail_fast_with_one_line(keras_home):
    """The real download attempt, no patch: here it fails within a second (name lookup)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10.0)  # a network that drops packets must not hang the test run
    try:
        with pytest.raises(ValueError, match=r"could not be downloaded \(.*\)\. Place the file "
                                             r"weights_mobilenet_v3_small_224_1\.0_float"):
            transfer((8, 8, 1), num_classes=3, weights="imagenet", backbone_size=32)
    finally:
        socket.setdefaulttimeout(previous)


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")
def test_imagenet_weights_found_in_the_keras_cache_are_used_without_network(
        keras_home, monkeypatch):
    # A stand-in for the real file, in the format and under the name keras.applications
    # loads: the same network (without its top) with random weights, in legacy HDF5.
    keras.utils.set_random_seed(1)
    written = keras.applications.MobileNetV3Small(include_top=False, weights=None,
                                                  input_shape=(32, 32, 3))
    folder = keras_home / "models"
    folder.mkdir()
    # A legacy .h5 model file: `load_weights` reads the weights group inside it.
    written.save(folder / BACKBONES["mobilenet_v3_small"][1])
    # Its hash cannot be the real file's: that check alone is patched.
    monkeypatch.setattr(compat.keras_file_utils(), "validate_file", lambda *args, **kwargs: True)

    keras.utils.set_random_seed(2)
    model = transfer((8, 8, 1), num_classes=3, weights="imagenet", backbone_size=32)
    loaded = backbone_layers(model).get_weights()
    expected = written.get_weights()
    assert len(loaded) == len(expected) > 100
    for got, want in zip(loaded, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    keras.utils.set_random_seed(2)
    fresh = backbone_layers(transfer((8, 8, 1), num_classes=3, backbone_size=32)).get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(fresh, expected, strict=True))


# --- Freezing and unfreezing -------------------------------------------------------------

def batch_norms(layer):
    """The batch-norm layers in `layer`, walking nested models through `Model.layers`."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return [layer]
    return [inner for child in getattr(layer, "layers", []) for inner in batch_norms(child)]


def test_phase_1_freezes_the_backbone_and_phase_2_unfreezes_the_top_except_batch_norm():
    model = transfer((8, 8, 1), num_classes=3, dense_units=(4,), **NO_AUGMENTATION)
    backbone = backbone_layers(model)
    head_weights = 4  # dense_0 and head: kernel and bias each

    set_trainable(backbone, 0)
    assert backbone.trainable_weights == []
    assert len(model.trainable_weights) == head_weights

    counts = []
    # Any count from the number of layers up unfreezes all of them (a count just above the
    # number of weighted layers once unfroze only the last one).
    for top in (10, 40, len(backbone.layers), 10_000):
        set_trainable(backbone, top)
        counts.append(len(backbone.trainable_weights))
        assert not any(norm.trainable for norm in batch_norms(backbone))
        top_layers = [layer for layer in backbone.layers[-top:]
                      if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
        assert all(layer.trainable for layer in top_layers)
    assert 0 < counts[0] < counts[1] < counts[2] == counts[3]
    all_kernels = [w for layer in backbone.layers if layer.weights
                   and not isinstance(layer, keras.layers.BatchNormalization)
                   for w in layer.trainable_weights + layer.non_trainable_weights]
    assert counts[3] == len(all_kernels)

    set_trainable(backbone, 0)  # back to phase 1
    assert backbone.trainable_weights == []
    with pytest.raises(ValueError, match="top_layers must be a whole number >= 0"):
        set_trainable(backbone, -1)
    with pytest.raises(ValueError, match="no nested model named 'backbone'"):
        backbone_layers(zoo.build_model("cnn", input_shape=(8, 8, 1), num_classes=3))


def test_frozen_batch_norm_keeps_its_statistics_while_the_top_layers_train(tmp_path):
    # A trained-like backbone whose activations are healthy at any weights: a saved cnn (a
    # random keras.applications network behind frozen, unadapted batch norm hands the head
    # features of about 1e-11, and so almost no gradient).
    keras.utils.set_random_seed(0)
    cnn = zoo.build_model("cnn", input_shape=(8, 8, 1), num_classes=3, filters=(8, 16))
    model = transfer((8, 8, 1), num_classes=3, weights=saved_run(tmp_path, cnn),
                     **NO_AUGMENTATION)
    backbone = backbone_layers(model)
    set_trainable(backbone, 5)  # pooling; block1: max pool, relu, batch norm, convolution
    assert [layer.name for layer in backbone.layers if layer.trainable_weights] == [
        "block1_conv0"]
    norm, convolution = backbone.get_layer("block1_conv0_batch_norm"), backbone.get_layer(
        "block1_conv0")
    before = [numpy(variable) for variable in (norm.moving_mean, convolution.kernel,
                                               backbone.get_layer("block0_conv0").kernel)]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.train_on_batch(images((8, 8, 1), count=8), np.arange(8) % 3)
    np.testing.assert_array_equal(numpy(norm.moving_mean), before[0])  # inference mode
    assert not np.array_equal(numpy(convolution.kernel), before[1])
    np.testing.assert_array_equal(numpy(backbone.get_layer("block0_conv0").kernel), before[2])


# --- A backbone from an earlier run (weights=PATH) ---------------------------------------

def saved_run(tmp_path, network, channels=1, size=(8, 8)):
    """Saves `network` the way an image run does: behind a uint8 image input."""
    schema = ImageSchema(labels=[f"c{index}" for index in range(3)], image_size=size,
                         channels=channels)
    path = tmp_path / "model.keras"
    ImagePreprocessor(schema).compose(network).save(path)
    return path


def pooled(network, x):
    """The network's features: what its head (or the dropout before it) receives."""
    last = "head_dropout" if "head_dropout" in [layer.name for layer in network.layers] else "head"
    return numpy(keras.Model(network.input, network.get_layer(last).input)(x, training=False))


def test_a_saved_cnn_becomes_the_backbone_with_its_trained_weights(tmp_path):
    keras.utils.set_random_seed(0)
    cnn = zoo.build_model("cnn", input_shape=(8, 8, 1), num_classes=3, filters=(8, 16))
    path = saved_run(tmp_path, cnn)

    model = transfer((8, 8, 1), num_classes=5, weights=path)
    backbone = backbone_layers(model)
    weighted = [layer for layer in backbone.layers if layer.weights]
    assert [layer.name for layer in weighted] == [
        "block0_conv0", "block0_conv0_batch_norm", "block1_conv0", "block1_conv0_batch_norm"]
    for layer in weighted:
        for got, want in zip(layer.get_weights(), cnn.get_layer(layer.name).get_weights(),
                             strict=True):
            np.testing.assert_array_equal(got, want)
    # The cnn's augmentation stays behind: the new model augments its own inputs.
    assert not [layer for layer in backbone.layers if isinstance(layer, TrainingOnly)]
    x = images((8, 8, 1))
    np.testing.assert_allclose(numpy(backbone(x)), pooled(cnn, x), rtol=1e-5, atol=1e-6)
    output = numpy(model(x))
    assert output.shape == (3, 5)
    np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-5)
    names = [layer.name for layer in model.layers]
    assert names[-4:] == ["backbone", "features", "head_dropout", "head"]
    assert "resizing" not in names and "match_channels" not in names


def test_color_images_of_another_size_feed_a_saved_grayscale_resnet(tmp_path):
    keras.utils.set_random_seed(0)
    resnet = zoo.build_model("resnet", input_shape=(8, 8, 1), num_classes=3, depth=8,
                             dropout_rate=0.2)
    model = transfer((16, 16, 3), num_classes=5, weights=saved_run(tmp_path, resnet),
                     **NO_AUGMENTATION)
    assert model.get_layer("resizing").output.shape[1:] == (8, 8, 3)
    assert model.get_layer("match_channels").channels == 1
    x = images((16, 16, 3))
    small_gray = numpy(keras.layers.Resizing(8, 8)(x)).mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(numpy(model.get_layer("features")(backbone_layers(model)(
        small_gray))), pooled(resnet, small_gray), rtol=1e-5, atol=1e-6)
    assert numpy(model(x)).shape == (3, 5)
    # The new model saves and reloads in safe mode, and can itself be transferred from.
    path = tmp_path / "transfer.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(numpy(reloaded(x)), numpy(model(x)), atol=1e-6)
    again = transfer((8, 8, 1), num_classes=2, weights=path)
    assert numpy(again(images((8, 8, 1)))).shape == (3, 2)


def test_feature_extractor_finds_the_network_in_a_saved_run_and_can_keep_augmentation(
        tmp_path):
    cnn = zoo.build_model("cnn", input_shape=(8, 8, 1), num_classes=3, filters=(8,),
                          dropout_rate=0.0, flip="horizontal")
    loaded = keras.saving.load_model(saved_run(tmp_path, cnn), safe_mode=True)
    extractor = feature_extractor(loaded)
    assert extractor.name == "backbone"
    assert extractor.output_shape == (None, 8)  # input of "head": no head_dropout
    kept = feature_extractor(cnn, keep_augmentation=True)
    assert len([layer for layer in kept.layers if isinstance(layer, TrainingOnly)]) == 5
    with pytest.raises(ValueError, match="has no layer named 'head'"):
        inputs = keras.Input((3,))
        feature_extractor(keras.Model(inputs, keras.layers.Dense(2)(inputs)))


def test_weights_paths_that_cannot_be_used_are_one_line_value_errors(tmp_path):
    def refused(path, message):
        with pytest.raises(ValueError, match=message) as raised:
            transfer((8, 8, 1), num_classes=3, weights=path)
        text = str(raised.value)
        assert "\n" not in text and "--" not in text
        assert text.endswith(f"Received: weights={str(path)!r}")

    refused(tmp_path / "missing.keras", "no model file at .*missing.keras")
    (tmp_path / "weights.h5").write_bytes(b"not a model")
    refused(tmp_path / "weights.h5", r"weights.h5 is not a \.keras model file")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    refused(tmp_path / "broken.keras", "could not load the model in .*broken.keras")
    inputs = keras.Input((8, 8, 1))
    headless = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    headless.save(tmp_path / "headless.keras")
    refused(str(tmp_path / "headless.keras"), "has no layer named 'head'")

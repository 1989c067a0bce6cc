"""Transfer learning: a pretrained network as the backbone of a new image model.

    raw pixels 0..255 -> augmentation (training only) -> resizing to the backbone's size
      -> channels to 3 (grayscale repeated) -> the backbone's own `preprocess_input`
      -> "backbone" (a `keras.applications` network without its top)
      -> GlobalAveragePooling2D "features" -> [Dropout -> Dense] ... -> Dropout "head_dropout"
      -> "head"

The backbone is one of `BACKBONES`, with random weights (`weights=None`), Keras's ImageNet
weights (`weights="imagenet"`), or the trained network of an earlier run (`weights=PATH` to its
`model.keras`): the cnn, the resnet or another transfer model. Then the backbone is that
network up to its pooled features (`feature_extractor`), with the new images resized and their
channels mapped to what it was trained on, and "features" is an identity (the features are
already pooled).

Training in two phases (the trainer's side, `set_trainable`): first the new head alone on a
frozen backbone, `set_trainable(backbone, 0)`; then the top layers of the backbone too, at a
lower learning rate, `set_trainable(backbone, N)`. Batch normalization layers stay frozen in
both: in Keras 3 a frozen BatchNormalization layer runs in inference mode, so its statistics,
learned on millions of images, are not replaced by those of a few small batches.

Every added layer is a registered Keras layer (no `Lambda`), so a saved model loads with
`safe_mode=True`.
"""

from __future__ import annotations

import http.client
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras

from common import compat
from zoo.cnn import _augmentation, _check_augmentation, _check_fraction
from zoo.heads import add_head
from zoo.layers import ApplicationPreprocessing, MatchChannels, ResizeImages, TrainingOnly
from zoo.loading import load_keras_file
from zoo.registry import register_model

# Backbone name -> (keras.applications constructor, file name of its ImageNet weights without
# the top, as Keras names it in its cache).
BACKBONES = {
    "resnet50": ("ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "resnet50v2": ("ResNet50V2", "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "mobilenet_v3_small": ("MobileNetV3Small",
                           "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"),
    "efficientnet_b0": ("EfficientNetB0", "efficientnetb0_notop.h5"),
}

IMAGENET_SIZE = 224
MIN_BACKBONE_SIDE = 32  # the smallest input keras.applications networks accept


def weights_cache_folder() -> Path:
    """The folder Keras reads and downloads pretrained weights to: `$KERAS_HOME/models`.

    Resolved the way `keras.utils.get_file` does: `KERAS_HOME` (read when Keras is imported),
    by default `~/.keras`, or `/tmp/.keras` when that folder is not writable.
    """
    home = os.path.expanduser(compat.keras_home())
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(home) / "models"


def _is_download_failure(error: Exception) -> bool:
    """Whether `keras.utils.get_file` failed to fetch a file (no network, refused, cut off)."""
    message = str(error)
    return (isinstance(error, OSError | http.client.HTTPException)
            or message.startswith("URL fetch failure")
            or "file hash does not match" in message)


def _reason(error: Exception) -> str:
    """A short one-line reason for an error message: get_file's cause, or the first line."""
    message = str(error).strip()
    if message.startswith("URL fetch failure") and " -- " in message:
        message = message.rsplit(" -- ", 1)[1]  # the cause, without the (long) address
    return message.splitlines()[0] if message else type(error).__name__


def _application(backbone: str, weights: str | None, size: tuple[int, int]) -> keras.Model:
    """The `keras.applications` network without its top, named "backbone"."""
    constructor, file_name = BACKBONES[backbone]
    try:
        # Built under its own name: EfficientNet names its weights file after the model.
        network = getattr(keras.applications, constructor)(
            include_top=False, weights=weights, input_shape=(*size, 3), pooling=None)
    except Exception as error:
        if weights != "imagenet" or not _is_download_failure(error):
            raise
        raise ValueError(
            f"the pretrained weights for {backbone} could not be downloaded ({_reason(error)}). "
            f"Place the file {file_name} in the Keras cache folder {weights_cache_folder()} "
            "(that is $KERAS_HOME/models, by default ~/.keras/models) and Keras uses it "
            "without the network, or train without them: weights=None, or start from a "
            "model you trained: weights='PATH/model.keras'. "
            f"Received: weights={weights!r}, backbone={backbone!r}") from error
    network.name = "backbone"
    return network


def check_weights(backbone: str = "mobilenet_v3_small", weights: str | None = None) -> None:
    """Makes sure `transfer(backbone=..., weights=...)` can get its weights, before a run starts.

    ImageNet weights missing from the Keras cache are downloaded now (the error names the cache
    folder when that fails); a `weights` path must be a loadable `.keras` model with a head.
    It is the `check` of the registered "transfer" model: runs call it before writing anything,
    so a missing file costs no training.

    Raises:
        ValueError: An unknown backbone, or the weights cannot be had; the message says where
            to put them.
    """
    if weights is None or str(weights).lower() == "none":
        return
    if weights == "imagenet":
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {tuple(BACKBONES)}. "
                             f"Received: backbone={backbone!r}")
        if not (weights_cache_folder() / BACKBONES[backbone][1]).is_file():
            _application(backbone, "imagenet", (IMAGENET_SIZE, IMAGENET_SIZE))
        return
    saved_backbone(Path(weights))


def _find_network(model: keras.Model) -> keras.Model | None:
    """The model itself if it has a "head" layer, else the first nested model that has one."""
    if any(layer.name == "head" for layer in model.layers):
        return model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found = _find_network(layer)
            if found is not None:
                return found
    return None


def feature_extractor(model: keras.Model, keep_augmentation: bool = False) -> keras.Model:
    """The trained network of `model` up to its features: what its head's dropout receives.

    Works for the networks the zoo builds for images (cnn, resnet, transfer) and for a saved
    run's `model.keras`, where the trained network is a nested model behind the uint8 image
    input (`datasets.image_preprocessing`).

    Args:
        model: A model whose network has a layer named `"head"`: the model itself or a nested
            model.
        keep_augmentation: Keep the network's random augmentation layers (`TrainingOnly`).
            By default they are left out (they hold no weights): the new model augments its
            own inputs, and the features of an image should not be random.

    Returns:
        A Functional model named `"backbone"` from the network's input (float pixels, 0..255)
        to the input of its `"head_dropout"` layer if it has one, else of its `"head"`: the
        pooled features. It shares the layers, and so the weights, of `model`.

    Raises:
        ValueError: If no network in `model` has a layer named `"head"`.

    Example:
        >>> extractor = feature_extractor(keras.saving.load_model("runs/digits/model.keras"))
        >>> features = extractor(images)  # (batch, features)
    """
    network = _find_network(model)
    if network is None:
        raise ValueError(f"Model {model.name!r} has no layer named 'head', nor any nested model "
                         "with one: it was not built by the zoo's image builders. "
                         f"Received: model={model.name!r}")
    names = [layer.name for layer in network.layers]
    last = "head_dropout" if "head_dropout" in names else "head"
    captured = {}

    def call(layer, *args, **kwargs):
        if layer.name == last:
            captured["features"] = args[0]
        if isinstance(layer, TrainingOnly) and not keep_augmentation:
            return args[0]
        return layer(*args, **kwargs)

    # Reuses the layers (clone_function returns each one itself) and calls them in order on a
    # new input; `call` records what reaches the feature layer and skips the augmentation.
    rebuilt = keras.models.clone_model(network, clone_function=lambda layer: layer,
                                       call_function=call)
    return keras.Model(rebuilt.input, captured["features"], name="backbone")


def backbone_layers(model: keras.Model) -> keras.Model:
    """The nested model named `"backbone"` of a transfer model (or of a saved run around one).

    Raises:
        ValueError: If `model` has no such layer (it was not built by `transfer`).
    """
    for layer in model.layers:
        if layer.name == "backbone" and isinstance(layer, keras.Model):
            return layer
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            try:
                return backbone_layers(layer)
            except ValueError:
                continue
    raise ValueError(f"Model {model.name!r} has no nested model named 'backbone'; only "
                     f"models built by zoo.applications.transfer have one. "
                     f"Received: model={model.name!r}")


def set_trainable(backbone: keras.Model, top_layers: int) -> None:
    """Freezes the backbone, then unfreezes its top `top_layers` layers except batch norm.

    Phase 1 of transfer learning is `set_trainable(backbone, 0)`: the whole backbone frozen,
    like `backbone.trainable = False`, and only the new layers train. Phase 2 unfreezes the
    top N layers (counted from the output, in `backbone.layers` order; a nested model counts
    as one layer). BatchNormalization layers stay frozen in both phases: in Keras 3 a frozen
    BatchNormalization layer runs in inference mode, keeping the statistics it was trained with.
    Compile the model after each call: a compiled model keeps training the weights that were
    trainable when it was compiled.

    Args:
        backbone: The backbone (`backbone_layers(model)`).
        top_layers: How many layers to unfreeze, from the output; 0 freezes all of them, a
            number larger than the backbone's layers unfreezes all.

    Raises:
        ValueError: If `top_layers` is not a whole number >= 0.
    """
    if isinstance(top_layers, bool) or int(top_layers) != top_layers or top_layers < 0:
        raise ValueError(f"top_layers must be a whole number >= 0. Received: "
                         f"top_layers={top_layers}")
    backbone.trainable = True  # a frozen container would hide its unfrozen layers
    layers = [layer for layer in backbone.layers
              if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:
        layer.trainable = False
    for layer in layers[max(0, len(layers) - int(top_layers)):] if top_layers else []:
        layer.trainable = True
        for inner in _nested_layers(layer):
            if isinstance(inner, keras.layers.BatchNormalization):
                inner.trainable = False


def _nested_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """`layer` and, for a nested model, every layer inside it (walking `Model.layers`)."""
    if not isinstance(layer, keras.Model):
        return [layer]
    return [layer] + [inner for child in layer.layers for inner in _nested_layers(child)]


WEIGHTS_HINT = "Give the model.keras of an earlier run, weights='imagenet' or weights=None."


def _load_saved_model(path: Path) -> keras.Model:
    """Loads a run's `model.keras` for `weights=PATH`; a ValueError if it cannot."""
    if not path.exists():
        raise ValueError(f"no model file at {path}. {WEIGHTS_HINT} "
                         f"Received: weights={str(path)!r}")
    if path.suffix != ".keras":
        raise ValueError(f"{path} is not a .keras model file. {WEIGHTS_HINT} "
                         f"Received: weights={str(path)!r}")
    return load_keras_file(path, "weights")


def saved_backbone(path: Path) -> keras.Model:
    """The feature extractor of the image model saved at `path` (`weights=PATH`), checked.

    The file may come from anywhere: it is loaded in safe mode (`zoo.loading`), and it must
    hold an image network of this zoo (a layer named "head" behind one image input), else the
    new model could not be built on it.

    Raises:
        ValueError: Naming the file and what is wrong with it.
    """
    loaded = _load_saved_model(path)
    network = _find_network(loaded)
    if network is None:
        raise ValueError(f"the model in {path} has no layer named 'head' (it was not trained by "
                         "an image task of this zoo), so its features cannot be found. "
                         f"Received: weights={str(path)!r}")
    shapes = [tuple(tensor.shape) for tensor in network.inputs]
    if (len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][-1] not in (1, 3)
            or None in shapes[0][1:]):
        raise ValueError(f"the model in {path} is not an image model (its network takes "
                         f"{', '.join(map(str, shapes))}, not (batch, height, width, 1 or 3 "
                         "channels)). Give the model.keras of an image_classify or "
                         f"transfer_learning run. Received: weights={str(path)!r}")
    return feature_extractor(loaded)


def _backbone_size(backbone_size: int | Sequence[int] | None, weights: str | None,
                   input_shape: tuple[int, int, int]) -> tuple[int, int]:
    if backbone_size is None:
        if weights == "imagenet":
            return IMAGENET_SIZE, IMAGENET_SIZE
        return max(MIN_BACKBONE_SIDE, input_shape[0]), max(MIN_BACKBONE_SIDE, input_shape[1])
    size = (backbone_size, backbone_size) if isinstance(backbone_size, int) else backbone_size
    size = tuple(size)
    if len(size) != 2 or any(int(side) != side or side < MIN_BACKBONE_SIDE for side in size):
        raise ValueError(f"backbone_size must be a side or (height, width), each a whole number "
                         f">= {MIN_BACKBONE_SIDE}. Received: backbone_size={backbone_size}")
    return int(size[0]), int(size[1])


def _adapt(x: keras.KerasTensor, size: tuple[int, int], channels: int) -> keras.KerasTensor:
    """Resizes images to `size` and maps their channels to `channels`, where they differ."""
    if tuple(x.shape[1:3]) != size:
        # Not keras.layers.Resizing: it would put the backbone's batch norm in training mode
        # whenever the model is called without `training` (see ResizeImages). Bilinear without
        # antialiasing: mostly enlarging here, and it converts to builtin TFLite ops.
        x = ResizeImages(*size, interpolation="bilinear", name="resizing")(x)
    if x.shape[-1] != channels:
        x = MatchChannels(channels, name="match_channels")(x)
    return x


@register_model("transfer", inputs="images", feature_extractor="backbone", check=check_weights,
                example_inputs={"input_shape": (12, 10, 3), "backbone_size": 32})
def transfer(
    input_shape: Sequence[int],
    problem: str = "multiclass",
    num_classes: int | None = None,
    backbone: str = "mobilenet_v3_small",
    weights: str | os.PathLike | None = None,
    backbone_size: int | Sequence[int] | None = None,
    dropout_rate: float = 0.2,
    dense_units: Sequence[int] = (),
    flip: str = "none",
    rotation: float = 0.05,
    zoom: float = 0.1,
    translation: float = 0.1,
    contrast: float = 0.1,
    fill_mode: str = "nearest",
    l2: float = 0.0,
    name: str = "transfer",
) -> keras.Model:
    """Builds an image model on a pretrained (or earlier trained) backbone.

    Args:
        input_shape: `(height, width, channels)` of the images; 1 or 3 channels.
        problem: `"multiclass"`, `"binary"` or `"regression"`; picks the head.
        num_classes: Number of classes for `"multiclass"`.
        backbone: One of `BACKBONES`: `"mobilenet_v3_small"` (0.9M weights, the fastest),
            `"efficientnet_b0"` (4M), `"resnet50"` or `"resnet50v2"` (24M). Ignored when
            `weights` is a path.
        weights: `None` (random weights; also `"none"`), `"imagenet"` (Keras's pretrained
            weights, downloaded once to `weights_cache_folder()`), or the path of a `.keras`
            file saved by an earlier run (cnn, resnet or transfer): its trained network up to
            the pooled features becomes the backbone.
        backbone_size: Side (or `(height, width)`) the images are resized to for the
            backbone, at least 32. Default: 224 with ImageNet weights (the size they were
            trained at), else each side of the input but at least 32. Ignored with a path:
            images are resized to the earlier model's input size.
        dropout_rate: Dropout before each dense layer and before the head (0 disables it).
        dense_units: Units of ReLU dense layers between the features and the head.
        flip: Random flips in training: `"none"`, `"horizontal"`, `"vertical"` or
            `"horizontal_and_vertical"`.
        rotation: Random rotation in training, as a fraction of a full turn; 0 disables it.
        zoom: Random zoom in training, as a fraction of the size; 0 disables it.
        translation: Random shift in training, as a fraction of the size; 0 disables it.
        contrast: Random contrast change in training; 0 disables it.
        fill_mode: How augmentation fills pixels from outside the image: `"nearest"`,
            `"reflect"`, `"constant"` or `"wrap"`.
        l2: L2 penalty on the kernels of the new dense layers (not the backbone's).
        name: Model name.

    Returns:
        An uncompiled Functional model mapping float images `(batch, *input_shape)` of raw
        pixel values (0..255) to the head's output; its backbone is the nested model
        `"backbone"` (see `backbone_layers`, `set_trainable`).

    Raises:
        ValueError: For an unknown backbone (the message lists them) or other invalid
            arguments; when the ImageNet weights cannot be downloaded (the message names the
            file and the folder to put it in), or `weights` is a path that does not exist, is
            not a `.keras` file, cannot be loaded or holds no network with a `"head"` layer.

    Example:
        >>> model = transfer((96, 96, 3), num_classes=5, weights="imagenet")
        >>> set_trainable(backbone_layers(model), 0)  # phase 1: the head alone
    """
    if len(input_shape) != 3 or any(int(side) < 1 for side in input_shape):
        raise ValueError("input_shape must be (height, width, channels), each >= 1. "
                         f"Received: input_shape={tuple(input_shape)}")
    input_shape = tuple(int(side) for side in input_shape)
    if input_shape[-1] not in (1, 3):
        raise ValueError("input_shape must have 1 (grayscale) or 3 (RGB) channels. "
                         f"Received: input_shape={input_shape}")
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {tuple(BACKBONES)}. "
                         f"Received: backbone={backbone!r}")
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None
    saved = None
    if weights is not None and weights != "imagenet":
        if not isinstance(weights, str | os.PathLike):
            raise ValueError("weights must be None, 'imagenet' or the path of a .keras file. "
                             f"Received: weights={weights!r}")
        saved = Path(weights)
    size = _backbone_size(backbone_size, weights if saved is None else None, input_shape)
    _check_augmentation(flip, rotation, zoom, translation, contrast, fill_mode)
    _check_fraction("dropout_rate", dropout_rate)
    if any(int(units) != units or units < 1 for units in dense_units):
        raise ValueError("dense_units must be whole numbers >= 1. "
                         f"Received: dense_units={tuple(dense_units)}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0. Received: l2={l2}")

    if saved is not None:
        network = saved_backbone(saved)
        size, channels = tuple(network.input_shape[1:3]), network.input_shape[-1]
    else:
        network = _application(backbone, weights, size)
        channels = 3

    inputs = keras.Input(shape=input_shape, name="image")
    x = _augmentation(inputs, flip, rotation, zoom, translation, contrast, fill_mode,
                      value_range=(0, 255))
    x = _adapt(x, size, channels)
    if saved is None:
        x = ApplicationPreprocessing(backbone, name="preprocess_input")(x)
        x = network(x)
        x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    else:
        x = keras.layers.Identity(name="features")(network(x))  # already pooled
    regularizer = keras.regularizers.L2(l2) if l2 else None
    for index, units in enumerate(dense_units):
        if dropout_rate:
            x = keras.layers.Dropout(dropout_rate, name=f"dense_{index}_dropout")(x)
        x = keras.layers.Dense(int(units), activation="relu", kernel_regularizer=regularizer,
                               name=f"dense_{index}")(x)
    if dropout_rate:
        x = keras.layers.Dropout(dropout_rate, name="head_dropout")(x)
    outputs = add_head(x, problem, num_classes)
    return keras.Model(inputs, outputs, name=name)

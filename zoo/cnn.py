"""Convolutional network for images, with rescaling and data augmentation inside the model.

    raw pixels 0..255 -> Rescaling(1/255) -> augmentation (training only)
      -> blocks of [Conv2D -> BatchNorm -> activation] x convolutions_per_block -> pooling
      -> global pooling (or flatten) -> [Dropout -> Dense] ... -> Dropout -> head

Defaults are chosen for small folders as well as larger sets (see docs/BENCHMARKS.md):

* Four blocks (32, 64, 128, 256 filters, 2x2 max pooling after each): the last block sees about
  46 pixels, enough to cover a whole object in a 64x64 image; with three blocks (22 pixels) a
  small folder of 64x64 shapes learned several times slower. Pooling uses "same" padding, so
  8x8 digits simply end at 1x1.
* Batch norm with momentum 0.9 instead of Keras's 0.99: with a few hundred images an epoch is a
  handful of steps, and with 0.99 the moving statistics (used at inference) still remember their
  initial values after the few epochs early stopping may keep, which wrecks validation and test
  accuracy; with 0.9 they follow the data within about 20 steps.
* Augmentation acts only in training: each random layer is wrapped in `zoo.layers.TrainingOnly`,
  because Keras's random layers treat an unset `training` as training (`model(images)` and
  `model.export` would otherwise augment predictions). Default: small rotations, zooms,
  translations and contrast changes, and no flips: a mirrored digit or letter is another symbol
  or none, so flips are opt-in (`flip="horizontal"` for photos of objects).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras

from zoo.heads import add_head
from zoo.layers import TrainingOnly
from zoo.registry import register_model
from zoo.search_space import Choice, Derived, Float, Int, SearchSpace

FLIPS = ("none", "horizontal", "vertical", "horizontal_and_vertical")
POOLINGS = ("max", "avg", "none")
GLOBAL_POOLINGS = ("avg", "max", "flatten")
PADDINGS = ("same", "valid")
FILL_MODES = ("nearest", "reflect", "constant", "wrap")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}. Received: {name}={value!r}")


def _check_fraction(name: str, value: float, upper: float = 1.0) -> None:
    if not 0.0 <= value < upper:
        raise ValueError(f"{name} must be in [0, {upper:g}). Received: {name}={value}")


def _output_side(side: int, kernel_size: int, strides: int, padding: str) -> int:
    if padding == "same":
        return math.ceil(side / strides)
    return (side - kernel_size) // strides + 1


def _check_augmentation(flip: str, rotation: float, zoom: float, translation: float,
                        contrast: float, fill_mode: str) -> None:
    """Validates the augmentation arguments `_augmentation` takes (shared by the builders)."""
    _check_choice("flip", flip, FLIPS)
    _check_choice("fill_mode", fill_mode, FILL_MODES)
    _check_fraction("rotation", rotation, 0.5)
    for argument, value in (("zoom", zoom), ("translation", translation),
                            ("contrast", contrast)):
        _check_fraction(argument, value)


def _augmentation(x: keras.KerasTensor, flip: str, rotation: float, zoom: float,
                  translation: float, contrast: float, fill_mode: str,
                  value_range: tuple[float, float] = (0, 1)) -> keras.KerasTensor:
    """Random layers on pixels in `value_range`; each is left out when its strength is 0.

    Each is wrapped in `TrainingOnly`, so it acts only in training (see zoo/layers.py). The
    contrast change clips to `value_range`: (0, 1) after rescaling, (0, 255) on raw pixels.
    """
    layers = []
    if flip != "none":
        layers.append(keras.layers.RandomFlip(flip, name="random_flip"))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, fill_mode=fill_mode,
                                                  name="random_rotation"))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, fill_mode=fill_mode, name="random_zoom"))
    if translation:
        layers.append(keras.layers.RandomTranslation(translation, translation,
                                                     fill_mode=fill_mode,
                                                     name="random_translation"))
    if contrast:
        layers.append(keras.layers.RandomContrast(contrast, value_range=value_range,
                                                  name="random_contrast"))
    for layer in layers:
        x = TrainingOnly(layer, name=f"{layer.name}_in_training")(x)
    return x


def widening(width: int, depth: int) -> list[int]:
    """Filters that double block by block: `widening(32, 3) == [32, 64, 128]`."""
    return [int(width) * 2**index for index in range(int(depth))]


# What `--tune` searches for the CNN: step size and weight penalty on a log scale, dropout, and
# the convolution blocks as `depth` blocks starting at `width` filters (width 32, depth 4 is the
# default 32-64-128-256). `optimizer` and `learning_rate` are training settings.
SEARCH_SPACE = SearchSpace(
    hyperparameters={
        "learning_rate": Float(1e-4, 1e-2, log=True),
        "l2": Float(1e-6, 1e-2, log=True),
        "dropout_rate": Float(0.0, 0.5),
        "width": Choice((16, 32, 64)),
        "depth": Int(2, 4),
        "optimizer": Choice(("sgd", "momentum", "rmsprop", "adam")),
    },
    derived={"filters": Derived(("width", "depth"), widening)},
)


@register_model("cnn", search_space=SEARCH_SPACE, inputs="images")
def cnn(
    input_shape: Sequence[int],
    problem: str = "multiclass",
    num_classes: int | None = None,
    filters: Sequence[int] = (32, 64, 128, 256),
    convolutions_per_block: int = 1,
    kernel_size: int = 3,
    strides: int = 1,
    padding: str = "same",
    pooling: str | None = "max",
    batch_norm: bool = True,
    batch_norm_momentum: float = 0.9,
    activation: str = "relu",
    dropout_rate: float = 0.3,
    l2: float = 1e-4,
    global_pooling: str = "avg",
    dense_units: Sequence[int] = (),
    flip: str = "none",
    rotation: float = 0.05,
    zoom: float = 0.1,
    translation: float = 0.1,
    contrast: float = 0.1,
    fill_mode: str = "nearest",
    rescale: bool = True,
    kernel_initializer: str = "he_normal",
    name: str = "cnn",
) -> keras.Model:
    """Builds a CNN: rescaling and augmentation, convolution blocks, global pooling, a head.

    Args:
        input_shape: `(height, width, channels)` of the images.
        problem: `"multiclass"`, `"binary"` or `"regression"`; picks the head.
        num_classes: Number of classes for `"multiclass"`.
        filters: Filters of each block; one block per entry.
        convolutions_per_block: Convolutions in each block (the first one takes `strides`).
        kernel_size: Side of the square convolution kernels.
        strides: Stride of each block's first convolution (2 halves the feature map).
        padding: `"same"` (keep the size) or `"valid"` (shrink by `kernel_size - 1`).
        pooling: `"max"`, `"avg"` or `None` / `"none"`: 2x2 pooling after each block.
        batch_norm: BatchNormalization before each activation (the convolution then has no bias).
        batch_norm_momentum: Momentum of the moving statistics; see the module docstring.
        activation: Any Keras activation name.
        dropout_rate: Dropout before each dense layer and before the head (0 disables it).
        l2: L2 penalty on convolution and dense kernels.
        global_pooling: `"avg"` or `"max"` (global pooling: few parameters, any image size
            works the same), or `"flatten"` (keeps positions; many parameters).
        dense_units: Units of dense layers between the pooling and the head.
        flip: Random flips in training: `"none"`, `"horizontal"`, `"vertical"` or
            `"horizontal_and_vertical"`.
        rotation: Random rotation in training, as a fraction of a full turn (0.05 is up to
            18 degrees either way); 0 disables it.
        zoom: Random zoom in training, as a fraction of the size; 0 disables it.
        translation: Random shift in training, as a fraction of the size; 0 disables it.
        contrast: Random contrast change in training (0.1: factor in [0.9, 1.1]); 0 disables it.
        fill_mode: How augmentation fills pixels from outside the image: `"nearest"`,
            `"reflect"`, `"constant"` (black) or `"wrap"`.
        rescale: Divide the raw 0..255 pixels by 255 inside the model. False only when the
            inputs are already scaled to [0, 1].
        kernel_initializer: Initializer of the convolution and dense kernels.
        name: Model name.

    Returns:
        An uncompiled Functional model mapping float images `(batch, *input_shape)` of raw
        pixel values to the head's output.

    Example:
        >>> model = cnn((28, 28, 1), num_classes=10, filters=(16, 32), dropout_rate=0.2)
    """
    if len(input_shape) != 3 or any(int(side) < 1 for side in input_shape):
        raise ValueError("input_shape must be (height, width, channels), each >= 1. "
                         f"Received: input_shape={tuple(input_shape)}")
    if not filters or any(int(count) < 1 for count in filters):
        raise ValueError(f"filters must list at least one block, each >= 1. "
                         f"Received: filters={tuple(filters)}")
    for argument, value in (("convolutions_per_block", convolutions_per_block),
                            ("kernel_size", kernel_size), ("strides", strides)):
        if int(value) != value or value < 1:
            raise ValueError(f"{argument} must be a whole number >= 1. "
                             f"Received: {argument}={value}")
    pooling = "none" if pooling is None else pooling
    _check_choice("padding", padding, PADDINGS)
    _check_choice("pooling", pooling, POOLINGS)
    _check_choice("global_pooling", global_pooling, GLOBAL_POOLINGS)
    _check_augmentation(flip, rotation, zoom, translation, contrast, fill_mode)
    _check_fraction("dropout_rate", dropout_rate)
    if not 0.0 < batch_norm_momentum < 1.0:
        raise ValueError("batch_norm_momentum must be in (0, 1). "
                         f"Received: batch_norm_momentum={batch_norm_momentum}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0. Received: l2={l2}")

    regularizer = keras.regularizers.L2(l2) if l2 else None
    height, width = int(input_shape[0]), int(input_shape[1])
    inputs = keras.Input(shape=tuple(int(side) for side in input_shape), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(inputs) if rescale else inputs
    x = _augmentation(x, flip, rotation, zoom, translation, contrast, fill_mode)
    for block, count in enumerate(filters):
        for index in range(int(convolutions_per_block)):
            stride = int(strides) if index == 0 else 1
            height, width = (_output_side(side, kernel_size, stride, padding)
                             for side in (height, width))
            if min(height, width) < 1:
                raise ValueError(
                    f"input_shape {tuple(input_shape)} is too small for these blocks: with "
                    f"padding={padding!r}, kernel_size={kernel_size} and strides={strides} the "
                    f"feature map vanishes in block {block}. Use padding='same', fewer blocks "
                    f"or larger images. Received: input_shape={tuple(input_shape)}, "
                    f"filters={tuple(filters)}")
            layer = f"block{block}_conv{index}"
            x = keras.layers.Conv2D(
                int(count), kernel_size, strides=stride, padding=padding,
                use_bias=not batch_norm, kernel_initializer=kernel_initializer,
                kernel_regularizer=regularizer, name=layer)(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(momentum=batch_norm_momentum,
                                                    name=f"{layer}_batch_norm")(x)
            x = keras.layers.Activation(activation, name=f"{layer}_{activation}")(x)
        if pooling != "none":
            pool = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
            # "same" padding: an odd or 1-pixel feature map never pools to nothing.
            x = pool(2, padding="same", name=f"block{block}_{pooling}_pool")(x)
            height, width = math.ceil(height / 2), math.ceil(width / 2)
    x = {"avg": keras.layers.GlobalAveragePooling2D(name="global_avg_pool"),
         "max": keras.layers.GlobalMaxPooling2D(name="global_max_pool"),
         "flatten": keras.layers.Flatten(name="flatten")}[global_pooling](x)
    for index, units in enumerate(dense_units):
        if dropout_rate:
            x = keras.layers.Dropout(dropout_rate, name=f"dense_{index}_dropout")(x)
        x = keras.layers.Dense(int(units), activation=activation,
                               kernel_initializer=kernel_initializer,
                               kernel_regularizer=regularizer, name=f"dense_{index}")(x)
    if dropout_rate:
        x = keras.layers.Dropout(dropout_rate, name="head_dropout")(x)
    outputs = add_head(x, problem, num_classes)
    return keras.Model(inputs, outputs, name=name)

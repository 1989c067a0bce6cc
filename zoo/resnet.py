"""Residual networks for small images, in the style of He et al.'s CIFAR-10 ResNets.

    raw pixels 0..255 -> Rescaling(1/255) -> augmentation (training only)
      -> 3x3 convolution (width filters)
      -> stage 0: n blocks at width -> stage 1: n blocks at 2 * width -> stage 2: at 4 * width
      -> global average pooling ("features") -> Dropout ("head_dropout") -> head

Each stage but the first starts with a stride-2 block, so three stages shrink the feature map
4x ("same" padding: any input of at least 8x8 works; 8x8 digits end at 2x2).

* A **basic** block is two 3x3 convolutions; depth = 6n + 2 (ResNet-20, -32, -56, -110 are
  n = 3, 5, 9, 18). A **bottleneck** block is 1x1 (reduce) -> 3x3 -> 1x1 (expand to 4x the
  stage width); depth = 9n + 2 (ResNet-164 is n = 18).
* **Version 1** (post-activation, He et al. 2015): convolution -> batch norm -> ReLU, and the
  sum of the block and its shortcut goes through a ReLU. **Version 2** (pre-activation, He et
  al. 2016, "Identity Mappings in Deep Residual Networks"): batch norm -> ReLU -> convolution,
  nothing after the sum, so the shortcut path from input to output is a pure identity; one
  batch norm and ReLU close the last stage.
* The shortcut is the identity when the block keeps the shape, and a projection (1x1
  convolution with the block's stride, plus batch norm in version 1) when it changes it:
  the first block of each later stage, and the first bottleneck block (width -> 4 * width).
  Projections make ResNet-20 0.27M parameters at width 16, the paper's count (which used
  parameter-free zero-padding shortcuts instead; the projections add about 3K).
* `shortcuts=False` builds the same stack without any shortcut (a "plain" network, the
  paper's baseline); `tests/zoo/test_resnet.py` measures what that does to the gradient that
  reaches the first layer.

Transfer learning (`zoo.applications`) relies on the layer names: the global pooling is
`"features"`, the optional dropout before the head `"head_dropout"`, and the head `"head"`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from zoo.cnn import _augmentation, _check_augmentation, _check_choice, _check_fraction
from zoo.heads import add_head
from zoo.registry import register_model
from zoo.search_space import Choice, Float, SearchSpace

BLOCKS = ("basic", "bottleneck")
VERSIONS = (1, 2)
# Layers per block: the depth is that times blocks per stage times 3 stages, plus the first
# convolution and the head.
LAYERS_PER_BLOCK = {"basic": 2, "bottleneck": 3}
EXPANSION = {"basic": 1, "bottleneck": 4}


def valid_depths(block: str = "basic", count: int = 6) -> list[int]:
    """The first `count` depths a block type allows: `[8, 14, 20, 26, 32, 38]` for "basic"."""
    _check_choice("block", block, BLOCKS)
    return [3 * LAYERS_PER_BLOCK[block] * n + 2 for n in range(1, count + 1)]


def blocks_per_stage(depth: int, block: str = "basic") -> int:
    """Residual blocks in each of the three stages: `blocks_per_stage(20) == 3`.

    Raises:
        ValueError: If `depth` is not 6n + 2 (basic) or 9n + 2 (bottleneck) for some n >= 1;
            the message lists valid depths.
    """
    _check_choice("block", block, BLOCKS)
    per_stage = 3 * LAYERS_PER_BLOCK[block]
    if int(depth) != depth or depth < per_stage + 2 or (depth - 2) % per_stage:
        formula = f"{per_stage}n + 2"
        raise ValueError(
            f"depth must be {formula} for {block} blocks (3 stages of n blocks of "
            f"{LAYERS_PER_BLOCK[block]} layers, plus the first convolution and the head): "
            f"{', '.join(str(d) for d in valid_depths(block))}, ... "
            f"Received: depth={depth}")
    return int((depth - 2) // per_stage)


class _Builder:
    """Makes the convolutions and normalizations of one network with consistent settings."""

    def __init__(self, l2: float, batch_norm: bool, momentum: float):
        self.regularizer = keras.regularizers.L2(l2) if l2 else None
        self.batch_norm = batch_norm
        self.momentum = momentum

    def conv(self, x, filters: int, kernel_size: int, strides: int, name: str):
        return keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding="same",
            use_bias=not self.batch_norm, kernel_initializer="he_normal",
            kernel_regularizer=self.regularizer, name=name)(x)

    def norm(self, x, name: str):
        if not self.batch_norm:
            return x
        return keras.layers.BatchNormalization(momentum=self.momentum, name=name)(x)

    def norm_relu(self, x, name: str):
        x = self.norm(x, f"{name}_batch_norm")
        return keras.layers.Activation("relu", name=f"{name}_relu")(x)


def _residual_block(build: _Builder, x, filters: int, strides: int, block: str, version: int,
                    shortcuts: bool, name: str):
    """One block: `filters` is the stage width (a bottleneck block outputs 4x as many)."""
    out_filters = filters * EXPANSION[block]
    project = strides != 1 or x.shape[-1] != out_filters
    if block == "basic":
        kernels = [(filters, 3, strides), (out_filters, 3, 1)]
    else:
        kernels = [(filters, 1, 1), (filters, 3, strides), (out_filters, 1, 1)]

    if version == 1:
        shortcut = x
        if shortcuts and project:
            shortcut = build.conv(x, out_filters, 1, strides, f"{name}_projection")
            shortcut = build.norm(shortcut, f"{name}_projection_batch_norm")
        y = x
        for index, (count, size, stride) in enumerate(kernels):
            y = build.conv(y, count, size, stride, f"{name}_conv{index}")
            if index < len(kernels) - 1:
                y = build.norm_relu(y, f"{name}_conv{index}")
            else:
                y = build.norm(y, f"{name}_conv{index}_batch_norm")
        if shortcuts:
            y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
        return keras.layers.Activation("relu", name=f"{name}_out_relu")(y)

    # Version 2: the projection (if any) reads the pre-activated input, as in He et al. 2016.
    preactivated = build.norm_relu(x, f"{name}_preact")
    shortcut = x
    if shortcuts and project:
        shortcut = build.conv(preactivated, out_filters, 1, strides, f"{name}_projection")
    y = preactivated
    for index, (count, size, stride) in enumerate(kernels):
        if index:
            y = build.norm_relu(y, f"{name}_conv{index - 1}")
        y = build.conv(y, count, size, stride, f"{name}_conv{index}")
    if shortcuts:
        y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return y


# What `--tune` searches for the ResNet: step size and weight penalty on a log scale, dropout
# before the head, and the size of the network (depth as 6n + 2 with n = 1, 2, 3; width).
SEARCH_SPACE = SearchSpace(hyperparameters={
    "learning_rate": Float(1e-4, 1e-2, log=True),
    "l2": Float(1e-6, 1e-2, log=True),
    "dropout_rate": Float(0.0, 0.5),
    "depth": Choice((8, 14, 20)),
    "width": Choice((16, 32)),
    "optimizer": Choice(("sgd", "momentum", "rmsprop", "adam")),
})


@register_model("resnet", search_space=SEARCH_SPACE, inputs="images",
                example_inputs={"input_shape": (12, 10, 3), "depth": 8})
def resnet(
    input_shape: Sequence[int],
    problem: str = "multiclass",
    num_classes: int | None = None,
    depth: int = 20,
    block: str = "basic",
    version: int = 1,
    width: int = 16,
    batch_norm_momentum: float = 0.9,
    l2: float = 1e-4,
    dropout_rate: float = 0.0,
    flip: str = "none",
    rotation: float = 0.05,
    zoom: float = 0.1,
    translation: float = 0.1,
    contrast: float = 0.1,
    fill_mode: str = "nearest",
    rescale: bool = True,
    shortcuts: bool = True,
    batch_norm: bool = True,
    name: str = "resnet",
) -> keras.Model:
    """Builds a small-image ResNet: three stages of residual blocks, global pooling, a head.

    Args:
        input_shape: `(height, width, channels)` of the images; each side at least 8.
        problem: `"multiclass"`, `"binary"` or `"regression"`; picks the head.
        num_classes: Number of classes for `"multiclass"`.
        depth: Layers with weights on the main path: 6n + 2 for basic blocks (20, 32, 56,
            110 are ResNet-20, -32, -56, -110), 9n + 2 for bottleneck blocks.
        block: `"basic"` (two 3x3 convolutions) or `"bottleneck"` (1x1, 3x3, 1x1 with 4x
            expansion).
        version: 1 (post-activation) or 2 (pre-activation); see the module docstring.
        width: Filters of the first stage; the second and third have 2x and 4x as many
            (times 4 at the output of bottleneck blocks).
        batch_norm_momentum: Momentum of the moving statistics (0.9 rather than Keras's 0.99,
            for the reason given in `zoo.cnn`).
        l2: L2 penalty on the convolution kernels.
        dropout_rate: Dropout between the pooled features and the head (0 disables it).
        flip: Random flips in training: `"none"`, `"horizontal"`, `"vertical"` or
            `"horizontal_and_vertical"`.
        rotation: Random rotation in training, as a fraction of a full turn; 0 disables it.
        zoom: Random zoom in training, as a fraction of the size; 0 disables it.
        translation: Random shift in training, as a fraction of the size; 0 disables it.
        contrast: Random contrast change in training; 0 disables it.
        fill_mode: How augmentation fills pixels from outside the image: `"nearest"`,
            `"reflect"`, `"constant"` or `"wrap"`.
        rescale: Divide the raw 0..255 pixels by 255 inside the model. False only when the
            inputs are already scaled to [0, 1].
        shortcuts: False builds the same stack with no shortcut connections (a plain network).
        batch_norm: Batch normalization after (v1) or before (v2) each convolution; the
            convolutions then have no bias. False only for experiments: deep networks without
            it train badly.
        name: Model name.

    Returns:
        An uncompiled Functional model mapping float images `(batch, *input_shape)` of raw
        pixel values to the head's output.

    Raises:
        ValueError: For a depth that does not fit the block type (the message lists valid
            depths), images smaller than 8x8, or any other argument out of range.

    Example:
        >>> model = resnet((32, 32, 3), num_classes=10, depth=20)  # ResNet-20, 0.27M weights
    """
    if len(input_shape) != 3 or any(int(side) < 1 for side in input_shape):
        raise ValueError("input_shape must be (height, width, channels), each >= 1. "
                         f"Received: input_shape={tuple(input_shape)}")
    if min(int(input_shape[0]), int(input_shape[1])) < 8:
        raise ValueError("input_shape must be at least 8x8 (two stride-2 stages). "
                         f"Received: input_shape={tuple(input_shape)}")
    _check_choice("block", block, BLOCKS)
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}. Received: version={version!r}")
    n = blocks_per_stage(depth, block)
    if int(width) != width or width < 1:
        raise ValueError(f"width must be a whole number >= 1. Received: width={width}")
    _check_augmentation(flip, rotation, zoom, translation, contrast, fill_mode)
    _check_fraction("dropout_rate", dropout_rate)
    if not 0.0 < batch_norm_momentum < 1.0:
        raise ValueError("batch_norm_momentum must be in (0, 1). "
                         f"Received: batch_norm_momentum={batch_norm_momentum}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0. Received: l2={l2}")

    build = _Builder(l2, batch_norm, batch_norm_momentum)
    inputs = keras.Input(shape=tuple(int(side) for side in input_shape), name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(inputs) if rescale else inputs
    x = _augmentation(x, flip, rotation, zoom, translation, contrast, fill_mode)
    x = build.conv(x, int(width), 3, 1, "stem_conv")
    if version == 1:
        x = build.norm_relu(x, "stem")
    for stage in range(3):
        for index in range(n):
            strides = 2 if stage > 0 and index == 0 else 1
            x = _residual_block(build, x, int(width) * 2**stage, strides, block, version,
                                shortcuts, name=f"stage{stage}_block{index}")
    if version == 2:
        x = build.norm_relu(x, "final")
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    if dropout_rate:
        x = keras.layers.Dropout(dropout_rate, name="head_dropout")(x)
    outputs = add_head(x, problem, num_classes)
    return keras.Model(inputs, outputs, name=name)

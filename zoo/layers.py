"""Small layers our models are made of that Keras does not ship."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class FillMissing(keras.layers.Layer):
    """Replaces NaN (a missing number) by `value`.

    Placed after a `Normalization` layer adapted on the non-missing training values, the default
    `value=0.0` is mean imputation. Written with `x != x` and `where`, so it converts to builtin
    TFLite ops (NOT_EQUAL, SELECT_V2) and runs on the standalone LiteRT interpreter.

    Args:
        value: The replacement for NaN.
    """

    def __init__(self, value: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.value = float(value)

    def call(self, inputs):
        return ops.where(ops.not_equal(inputs, inputs), ops.full_like(inputs, self.value), inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "value": self.value}


@keras.saving.register_keras_serializable(package="zoo")
class MissingIndicator(keras.layers.Layer):
    """Returns 1.0 where a feature is NaN (missing) and 0.0 elsewhere, for chosen features.

    Args:
        features: Indices (last axis) of the features that get an indicator; typically those
            that had missing values in the training data.
    """

    def __init__(self, features: list[int], **kwargs):
        super().__init__(**kwargs)
        self.features = [int(index) for index in features]

    def call(self, inputs):
        chosen = ops.take(inputs, self.features, axis=-1)
        return ops.cast(ops.not_equal(chosen, chosen), "float32")

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.features))

    def get_config(self):
        return {**super().get_config(), "features": self.features}


@keras.saving.register_keras_serializable(package="zoo")
class TrainingOnly(keras.layers.Layer):
    """Runs the wrapped layer only in training (`training=True`); passes inputs through otherwise.

    Keras's random augmentation layers treat an unset `training` as training, so a model called
    as `model(images)` (or exported with `model.export`) would augment every prediction. Wrapped,
    augmentation happens only in `fit` (or with `training=True`).

    Args:
        layer: The layer to run in training, e.g. `keras.layers.RandomRotation(0.05)`.
    """

    def __init__(self, layer: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def build(self, input_shape):
        self.layer.build(input_shape)

    def call(self, inputs, training=None):
        return self.layer(inputs, training=True) if training else inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="zoo")
class MatchChannels(keras.layers.Layer):
    """Maps images to `channels` channels: 1 -> n by repeating, n -> 1 by averaging.

    Used to feed grayscale images to a network made for color ones, and the other way round.

    Args:
        channels: The number of channels of the output.
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        if int(channels) != channels or channels < 1:
            raise ValueError(f"channels must be a whole number >= 1. Received: channels={channels}")
        self.channels = int(channels)

    def build(self, input_shape):
        have = input_shape[-1]
        if have != self.channels and 1 not in (have, self.channels):
            raise ValueError(f"MatchChannels maps 1 channel to n or n to 1, not {have} to "
                             f"{self.channels}. Received: input_shape={input_shape}")

    def call(self, inputs):
        have = inputs.shape[-1]
        if have == self.channels:
            return inputs
        if self.channels == 1:
            return ops.mean(inputs, axis=-1, keepdims=True)
        return ops.repeat(inputs, self.channels, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="zoo")
class ResizeImages(keras.layers.Layer):
    """Resizes images to `(height, width)`, like `keras.layers.Resizing` but without `training`.

    Keras's image preprocessing layers (`Resizing` among them) declare `training=True` as the
    default of their `call`, and when a model is called without `training` (`model(images)`),
    Keras passes that default on to every later layer of the call: batch normalization after a
    `Resizing` layer then normalizes with the statistics of the batch, not its moving ones.
    This layer declares no `training` and leaves the mode alone.

    Args:
        height: Height of the output.
        width: Width of the output.
        interpolation: `"bilinear"`, `"nearest"`, `"bicubic"`, ... (see `keras.ops.image.resize`).
    """

    def __init__(self, height: int, width: int, interpolation: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)
        self.interpolation = interpolation

    def call(self, inputs):
        return ops.image.resize(inputs, (self.height, self.width),
                                interpolation=self.interpolation)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation}


# The `keras.applications` module whose `preprocess_input` each backbone expects.
APPLICATION_MODULES = {
    "resnet50": "resnet50",
    "resnet50v2": "resnet_v2",
    "mobilenet_v3_small": "mobilenet_v3",
    "efficientnet_b0": "efficientnet",
}


@keras.saving.register_keras_serializable(package="zoo")
class ApplicationPreprocessing(keras.layers.Layer):
    """A `keras.applications` network's own `preprocess_input`, as a serializable layer.

    Takes RGB pixels in 0..255 and returns what the pretrained network was trained on:
    BGR with the ImageNet means subtracted (`"resnet50"`), [-1, 1] (`"resnet50v2"`), or the
    pixels unchanged (`"mobilenet_v3_small"`, `"efficientnet_b0"`: those networks rescale
    inside themselves). A layer rather than a `Lambda`, so models load with `safe_mode=True`.

    Args:
        architecture: One of `APPLICATION_MODULES`.
    """

    def __init__(self, architecture: str, **kwargs):
        super().__init__(**kwargs)
        if architecture not in APPLICATION_MODULES:
            raise ValueError(f"architecture must be one of {tuple(APPLICATION_MODULES)}. "
                             f"Received: architecture={architecture!r}")
        self.architecture = architecture

    def call(self, inputs):
        module = getattr(keras.applications, APPLICATION_MODULES[self.architecture])
        return module.preprocess_input(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "architecture": self.architecture}

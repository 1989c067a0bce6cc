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

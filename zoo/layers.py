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

"""Multilayer perceptron for tabular features."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from zoo.heads import add_head
from zoo.registry import register_model
from zoo.search_space import Choice, Derived, Float, Int, SearchSpace, funnel

# What `--tune` searches for the MLP. Step size and weight penalty span orders of magnitude, so
# they are sampled on a log scale; the hidden layers are a funnel of `depth` layers starting at
# `width` (width 64, depth 2 is the templates' default 64-32). `optimizer` and `learning_rate`
# are training settings.
SEARCH_SPACE = SearchSpace(
    hyperparameters={
        "learning_rate": Float(1e-4, 1e-2, log=True),
        "l2": Float(1e-6, 1e-2, log=True),
        "dropout_rate": Float(0.0, 0.5),
        "width": Choice((16, 32, 64, 128)),
        "depth": Int(1, 3),
        "optimizer": Choice(("sgd", "momentum", "rmsprop", "adam")),
    },
    derived={"hidden_units": Derived(("width", "depth"), funnel)},
)


@register_model("mlp", search_space=SEARCH_SPACE)
def mlp(
    input_dim: int,
    problem: str = "binary",
    num_classes: int | None = None,
    hidden_units: Sequence[int] = (64, 32),
    activation: str = "relu",
    dropout_rate: float = 0.0,
    l1: float = 0.0,
    l2: float = 0.0,
    batch_norm: bool = False,
    kernel_initializer: str = "he_normal",
    name: str = "mlp",
) -> keras.Model:
    """Builds an MLP: `Dense -> [BatchNorm] -> activation -> [Dropout]` per layer, then a head.

    Args:
        input_dim: Width of the (already preprocessed) input vector.
        problem: `"binary"`, `"multiclass"` or `"regression"`; picks the head.
        num_classes: Number of classes for `"multiclass"`.
        hidden_units: Units of each hidden layer; `()` gives a linear / logistic model.
        activation: Any Keras activation name (`"relu"`, `"tanh"`, `"gelu"`, ...).
        dropout_rate: Dropout after each hidden layer (0 disables it).
        l1: L1 penalty on hidden kernels.
        l2: L2 penalty on hidden kernels.
        batch_norm: Insert BatchNormalization before each activation (the Dense then has no bias).
        kernel_initializer: Hidden-layer initializer, e.g. `"he_normal"` (for ReLU-like
            activations) or `"glorot_uniform"` (for tanh / sigmoid).
        name: Model name.

    Returns:
        An uncompiled Functional model mapping `(batch, input_dim)` floats to the head's output.

    Example:
        >>> model = mlp(input_dim=30, hidden_units=(32,), dropout_rate=0.1, l2=1e-4)
    """
    if input_dim < 1:
        raise ValueError(f"input_dim must be >= 1. Received: input_dim={input_dim}")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1). Received: dropout_rate={dropout_rate}")
    regularizer = keras.regularizers.L1L2(l1=l1, l2=l2) if (l1 or l2) else None
    inputs = keras.Input(shape=(input_dim,), name="features")
    x = inputs
    for index, units in enumerate(hidden_units):
        x = keras.layers.Dense(
            int(units),
            use_bias=not batch_norm,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=regularizer,
            name=f"dense_{index}",
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"batch_norm_{index}")(x)
        x = keras.layers.Activation(activation, name=f"{activation}_{index}")(x)
        if dropout_rate:
            x = keras.layers.Dropout(dropout_rate, name=f"dropout_{index}")(x)
    outputs = add_head(x, problem, num_classes)
    return keras.Model(inputs, outputs, name=name)

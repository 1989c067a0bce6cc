"""Output heads: the output layer per problem type (declared in `common.problems`)."""

from __future__ import annotations

import keras

from common import problems

PROBLEMS = problems.NAMES


def check_problem(problem: str, num_classes: int | None = None) -> None:
    """Validates a problem name and its class count.

    Raises:
        ValueError: For an unknown problem or a multiclass problem without at least 2 classes
            (two-class tables use the binary head; image tasks use softmax for any count).
    """
    spec = problems.get(problem)
    if spec.per_class_outputs and (num_classes is None or num_classes < spec.min_classes):
        raise ValueError(f"A {spec.name} head needs num_classes >= {spec.min_classes} (a softmax "
                         f"over the classes). Received: num_classes={num_classes}")


def add_head(
    features: keras.KerasTensor,
    problem: str,
    num_classes: int | None = None,
    kernel_initializer: str = "glorot_uniform",
    name: str = "head",
) -> keras.KerasTensor:
    """Adds the output layer for `problem` on top of `features`.

    The head always computes in float32, so it stays numerically safe under a mixed-precision
    policy.

    Args:
        features: The last hidden representation.
        problem: `"binary"` (1 sigmoid unit: probability of the positive class), `"multiclass"`
            (`num_classes` softmax units) or `"regression"` (1 linear unit).
        num_classes: Number of classes, required for `"multiclass"`.
        kernel_initializer: Initializer of the output kernel.
        name: Layer name.

    Returns:
        The output tensor.
    """
    check_problem(problem, num_classes)
    spec = problems.get(problem)
    return keras.layers.Dense(
        spec.output_units(num_classes), activation=spec.activation,
        kernel_initializer=kernel_initializer, dtype="float32", name=name,
    )(features)

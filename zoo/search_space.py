"""Declarative search spaces: what a builder's hyperparameters may be, next to the builder.

A space names each hyperparameter and its range; it imports no tuning library, so the zoo stays
free of keras-tuner. Its `tuning` turns a space into keras-tuner hyperparameters, and names that
are training settings (`learning_rate`, `optimizer`, `batch_size`) set the fit, not the builder.

Example:
    >>> space = SearchSpace(
    ...     hyperparameters={"learning_rate": Float(1e-4, 1e-2, log=True), "depth": Int(1, 3),
    ...                      "width": Choice((32, 64))},
    ...     derived={"hidden_units": Derived(("width", "depth"), funnel)})
    >>> space.arguments({"learning_rate": 1e-3, "width": 64, "depth": 2})
    {'learning_rate': 0.001, 'hidden_units': [64, 32]}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Float:
    """A real number from `low` to `high`; `log=True` samples evenly on a log scale."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self):
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"Float needs low < high (and low > 0 with log=True). Received: "
                             f"low={self.low}, high={self.high}, log={self.log}")

    def contains(self, value: Any) -> bool:
        """Whether `value` is a number inside the range."""
        return isinstance(value, int | float) and self.low <= value <= self.high


@dataclass(frozen=True)
class Int:
    """An integer from `low` to `high`, both included."""

    low: int
    high: int

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"Int needs low < high. Received: low={self.low}, high={self.high}")

    def contains(self, value: Any) -> bool:
        """Whether `value` is an integer inside the range."""
        return isinstance(value, int) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    """One of `values` (numbers or strings)."""

    values: tuple[Any, ...]

    def __post_init__(self):
        if len(self.values) < 2:
            raise ValueError(f"Choice needs at least two values. Received: values={self.values}")

    def contains(self, value: Any) -> bool:
        """Whether `value` is one of the choices."""
        return value in self.values


Range = Float | Int | Choice


@dataclass(frozen=True)
class Derived:
    """A builder argument computed from hyperparameters, e.g. `hidden_units` from width, depth.

    Attributes:
        inputs: The hyperparameters it is computed from, in the order `function` takes them.
        function: `(*input values) -> the argument's value`.
    """

    inputs: tuple[str, ...]
    function: Callable[..., Any]


@dataclass(frozen=True)
class SearchSpace:
    """A builder's hyperparameters and how their values become its arguments.

    Attributes:
        hyperparameters: Name -> range. A name that is not a derived input is passed to the
            builder (or to training) under that name.
        derived: Builder argument -> how it is computed from some of the hyperparameters.
    """

    hyperparameters: dict[str, Range]
    derived: dict[str, Derived] = field(default_factory=dict)

    def arguments(self, values: dict[str, Any]) -> dict[str, Any]:
        """Maps one set of hyperparameter values to keyword arguments.

        A derived argument whose inputs are not all in `values` is left out (the caller fixed it).
        """
        used = self._derived_inputs()
        arguments = {name: value for name, value in values.items() if name not in used}
        for name, derived in self.derived.items():
            if all(key in values for key in derived.inputs):
                arguments[name] = derived.function(*(values[key] for key in derived.inputs))
        return arguments

    def argument_names(self) -> list[str]:
        """The arguments the space sets: its plain hyperparameters, then the derived ones."""
        used = self._derived_inputs()
        return [name for name in self.hyperparameters if name not in used] + list(self.derived)

    def _derived_inputs(self) -> set[str]:
        return {name for derived in self.derived.values() for name in derived.inputs}


def funnel(width: int, depth: int) -> list[int]:
    """Hidden layer sizes that halve with depth: `funnel(64, 3) == [64, 32, 16]`."""
    return [max(1, int(width) // 2**index) for index in range(int(depth))]

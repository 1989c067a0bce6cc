"""A registry of model builders: `@register_model`, `build_model`, `list_models`.

A builder is a plain function taking flat keyword arguments and returning an uncompiled
Functional `keras.Model`. Registering it makes it buildable by name from every task and puts it
under the registry-parametrized test (`tests/zoo/test_registry.py`). A builder may declare its
search space (`zoo.search_space`) next to itself; `--tune` searches it, and the same builder
builds both the default and the tuned model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from zoo.search_space import SearchSpace

ModelBuilder = Callable[..., keras.Model]

_BUILDERS: dict[str, ModelBuilder] = {}
_SEARCH_SPACES: dict[str, SearchSpace] = {}


def register_model(
    name: str, search_space: SearchSpace | None = None
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Registers a model builder under `name`.

    Args:
        name: The name users pass as `--model NAME` or to `build_model`.
        search_space: The hyperparameters `--tune` searches for this builder: its own arguments
            and the training settings `learning_rate`, `optimizer` and `batch_size`.

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Example:
        >>> @register_model("tiny_mlp")
        ... def tiny_mlp(input_dim, problem="binary", **kwargs):
        ...     return mlp(input_dim, problem=problem, hidden_units=(8,), **kwargs)
    """

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"A model named {name!r} is already registered. "
                             f"Received: name={name!r}")
        _BUILDERS[name] = builder
        if search_space is not None:
            _SEARCH_SPACES[name] = search_space
        return builder

    return decorator


def list_models() -> list[str]:
    """Returns the registered model names, sorted."""
    return sorted(_BUILDERS)


def get_builder(name: str) -> ModelBuilder:
    """Returns the builder registered under `name`.

    Raises:
        ValueError: If no model is registered under `name`; the message lists the choices.
    """
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"Unknown model {name!r}. Choose one of: {', '.join(list_models())}. "
            f"Received: name={name!r}"
        ) from None


def get_search_space(name: str) -> SearchSpace | None:
    """Returns the search space declared with the builder `name`, or None if it has none.

    Raises:
        ValueError: If no model is registered under `name`.
    """
    get_builder(name)
    return _SEARCH_SPACES.get(name)


def build_model(name: str, **kwargs: Any) -> keras.Model:
    """Builds the registered model `name` with the given flat keyword arguments.

    Args:
        name: A registered model name (see `list_models()`).
        **kwargs: Passed to the builder, e.g. `input_dim=30, problem="binary", hidden_units=(64,)`.

    Returns:
        An uncompiled Functional `keras.Model`.

    Example:
        >>> model = build_model("mlp", input_dim=4, problem="binary", hidden_units=(16,))
    """
    return get_builder(name)(**kwargs)

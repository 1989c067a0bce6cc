"""A registry of model builders: `@register_model`, `build_model`, `list_models`, `get_spec`.

A builder is a plain function taking flat keyword arguments and returning an uncompiled
Functional `keras.Model`. Registering it makes it buildable by name from every task and puts it
under the registry-parametrized test (`tests/zoo/test_registry.py`). What differs between models
is declared at registration, in a `ModelSpec`, and read from there by the engine, the CLI and the
tests: which data the builder takes (`inputs`), the builder arguments the engine fills from that
data (`data_arguments`), a pretrained feature extractor trained in two phases
(`feature_extractor`), a check of the settings before any training (`check`), the small inputs
the tests build it with (`example_inputs`) and the hyperparameters `--tune` searches
(`search_space`, see `zoo.search_space`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from zoo.search_space import SearchSpace

if TYPE_CHECKING:
    import keras

ModelBuilder = Callable[..., "keras.Model"]

INPUT_KINDS = ("table", "images")
# Per input kind: the builder arguments filled from the data, and small example values of the
# data-derived ones (the tests add `problem` and `num_classes`).
DATA_ARGUMENTS = {"table": ("input_dim", "problem", "num_classes"),
                  "images": ("input_shape", "problem", "num_classes")}
EXAMPLE_INPUTS = {"table": {"input_dim": 7}, "images": {"input_shape": (12, 10, 3)}}


@dataclass(frozen=True)
class ModelSpec:
    """What a registered model declares about itself (see `register_model`).

    Attributes:
        name: The registered name (`--model NAME`, `build_model(NAME)`).
        builder: The builder function.
        inputs: Which data the builder takes: `"table"` (a preprocessed feature vector,
            `input_dim`) or `"images"` (`input_shape`).
        data_arguments: The builder arguments the engine fills from the data; a user sets the
            other ones (`--set model.NAME=VALUE`).
        feature_extractor: The name of the builder's layer that is a pretrained feature
            extractor, trained in two phases (frozen first, then its top layers), or None.
        check: Run on the model's settings before any training (`check_settings`), so a
            setting that cannot work (e.g. weights that cannot be had) costs no training.
        example_inputs: Small builder keyword arguments (besides `problem` and `num_classes`)
            that the registry test builds the model with.
        search_space: The hyperparameters `--tune` searches, or None.
    """

    name: str
    builder: ModelBuilder
    inputs: str = "table"
    data_arguments: tuple[str, ...] = DATA_ARGUMENTS["table"]
    feature_extractor: str | None = None
    check: Callable[..., None] | None = None
    example_inputs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    search_space: SearchSpace | None = field(default=None, hash=False)

    @property
    def two_phase(self) -> bool:
        """Whether the model trains in two phases: its feature extractor frozen, then not."""
        return self.feature_extractor is not None

    def settings(self) -> list[str] | None:
        """The builder arguments a user may set: all but `data_arguments`, in order.

        Returns:
            The names, or None when the builder takes `**kwargs` (any name may be set).
        """
        parameters = inspect.signature(self.builder).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return None
        return [name for name in parameters if name not in self.data_arguments]

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Runs `check` on the settings it takes (all of them if it takes `**kwargs`).

        Raises:
            ValueError: From `check`: a setting that cannot work; the message ends with
                `Received: ...`.
        """
        if self.check is None:
            return
        parameters = inspect.signature(self.check).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            settings = {key: value for key, value in settings.items() if key in parameters}
        self.check(**settings)


_SPECS: dict[str, ModelSpec] = {}


def _unknown_arguments(builder: ModelBuilder, names: Any) -> list[str]:
    parameters = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return []
    return [name for name in names if name not in parameters]


def register_model(
    name: str,
    search_space: SearchSpace | None = None,
    *,
    inputs: str = "table",
    data_arguments: tuple[str, ...] | None = None,
    feature_extractor: str | None = None,
    check: Callable[..., None] | None = None,
    example_inputs: Mapping[str, Any] | None = None,
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Registers a model builder under `name`, with what differs about it (`ModelSpec`).

    Args:
        name: The name users pass as `--model NAME` or to `build_model`.
        search_space: The hyperparameters `--tune` searches for this builder: its own arguments
            and the training settings `learning_rate`, `optimizer` and `batch_size`.
        inputs: `"table"` (the builder takes `input_dim`) or `"images"` (`input_shape`).
        data_arguments: The builder arguments the engine fills from the data. Default:
            `(input_dim | input_shape, "problem", "num_classes")` as `inputs` says.
        feature_extractor: The name of the model's layer that is a pretrained feature
            extractor, to train in two phases; None (the default) trains in one.
        check: A function of (some of) the builder's settings, run before any training; it
            raises `ValueError` for settings that cannot work.
        example_inputs: Small builder arguments besides `problem` and `num_classes` for the
            registry test. Default: `{"input_dim": 7}` or `{"input_shape": (12, 10, 3)}`.

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Raises:
        ValueError: The name is taken by another builder, `inputs` is unknown, or
            `data_arguments` or `example_inputs` name arguments the builder does not take.

    Example:
        >>> @register_model("tiny_mlp")
        ... def tiny_mlp(input_dim, problem="binary", num_classes=None):
        ...     return mlp(input_dim, problem=problem, num_classes=num_classes, hidden_units=(8,))
    """
    if inputs not in INPUT_KINDS:
        raise ValueError(f"inputs must be one of {INPUT_KINDS}. Received: inputs={inputs!r}")

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _SPECS and _SPECS[name].builder is not builder:
            raise ValueError(f"A model named {name!r} is already registered. "
                             f"Received: name={name!r}")
        spec = ModelSpec(
            name, builder, inputs,
            tuple(DATA_ARGUMENTS[inputs] if data_arguments is None else data_arguments),
            feature_extractor, check,
            MappingProxyType(dict(EXAMPLE_INPUTS[inputs] if example_inputs is None
                                  else example_inputs)),
            search_space)
        for what, names in (("data_arguments", spec.data_arguments),
                            ("example_inputs", spec.example_inputs)):
            unknown = _unknown_arguments(builder, names)
            if unknown:
                raise ValueError(f"{what} must be arguments of the builder {name!r}; it has no "
                                 f"{', '.join(unknown)}. Received: {what}={names!r}")
        _SPECS[name] = spec
        return builder

    return decorator


def unregister_model(name: str) -> None:
    """Removes the model `name` from the registry (e.g. to register a new version of it).

    Raises:
        ValueError: If no model is registered under `name`.
    """
    get_spec(name)
    del _SPECS[name]


def list_models() -> list[str]:
    """Returns the registered model names, sorted."""
    return sorted(_SPECS)


def get_spec(name: str) -> ModelSpec:
    """Returns what the model registered under `name` declares (`ModelSpec`).

    Raises:
        ValueError: If no model is registered under `name`; the message lists the choices.

    Example:
        >>> get_spec("transfer").two_phase
        True
    """
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(
            f"Unknown model {name!r}. Choose one of: {', '.join(list_models())}. "
            f"Received: name={name!r}"
        ) from None


def get_builder(name: str) -> ModelBuilder:
    """Returns the builder registered under `name`.

    Raises:
        ValueError: If no model is registered under `name`; the message lists the choices.
    """
    return get_spec(name).builder


def get_search_space(name: str) -> SearchSpace | None:
    """Returns the search space declared with the builder `name`, or None if it has none.

    Raises:
        ValueError: If no model is registered under `name`.
    """
    return get_spec(name).search_space


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

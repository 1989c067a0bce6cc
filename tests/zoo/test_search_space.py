"""Search spaces declared next to the builders: every corner of a space builds a model."""

import itertools

import keras
import pytest

import zoo
from zoo.search_space import Choice, Derived, Float, Int, SearchSpace, funnel

# Hyperparameters that set training, not the builder (see tasks.engine.tuning.TRAIN_SETTINGS).
TRAINING = {"learning_rate", "optimizer", "batch_size"}


def corners(entry):
    if isinstance(entry, Choice):
        return [entry.values[0], entry.values[-1]]
    return [entry.low, entry.high]


@pytest.mark.parametrize("name", [name for name in zoo.list_models()
                                  if zoo.get_search_space(name) is not None])
def test_every_corner_of_a_declared_space_builds(name):
    space = zoo.get_search_space(name)
    names = list(space.hyperparameters)
    for index, values in enumerate(itertools.product(
            *(corners(space.hyperparameters[key]) for key in names))):
        if index % 7:  # a spread of the 2**n corners keeps this quick
            continue
        arguments = space.arguments(dict(zip(names, values, strict=True)))
        builder_arguments = {key: value for key, value in arguments.items()
                             if key not in TRAINING}
        inputs = zoo.get_spec(name).example_inputs
        # The space's values override the example's (e.g. the resnet example's small depth).
        model = zoo.build_model(name, problem="binary", **{**inputs, **builder_arguments})
        assert isinstance(model, keras.Model)


def test_mlp_space_is_log_scale_for_step_size_and_penalty_and_holds_the_default():
    space = zoo.get_search_space("mlp")
    assert space.hyperparameters["learning_rate"] == Float(1e-4, 1e-2, log=True)
    assert space.hyperparameters["l2"] == Float(1e-6, 1e-2, log=True)
    assert space.hyperparameters["dropout_rate"] == Float(0.0, 0.5)
    assert set(space.hyperparameters["optimizer"].values) == {"sgd", "momentum", "rmsprop",
                                                              "adam"}
    # The templates' default 64-32 is a point of the space: width 64, depth 2.
    assert space.arguments({"width": 64, "depth": 2}) == {"hidden_units": [64, 32]}
    assert space.argument_names() == ["learning_rate", "l2", "dropout_rate", "optimizer",
                                      "hidden_units"]


def test_derived_argument_is_left_out_when_its_inputs_are_fixed_elsewhere():
    space = SearchSpace({"width": Choice((8, 16)), "depth": Int(1, 2), "l2": Float(0.0, 1.0)},
                        {"hidden_units": Derived(("width", "depth"), funnel)})
    assert space.arguments({"l2": 0.5}) == {"l2": 0.5}
    assert funnel(64, 3) == [64, 32, 16]
    assert funnel(2, 3) == [2, 1, 1]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Float(1.0, 1.0), "low < high"),
    (lambda: Float(0.0, 1.0, log=True), "low > 0 with log=True"),
    (lambda: Int(3, 2), "low < high"),
    (lambda: Choice(("adam",)), "at least two values"),
])
def test_ranges_refuse_empty_or_impossible_bounds(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_search_space_lookup_by_model_name():
    assert zoo.get_search_space("mlp").hyperparameters
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        zoo.get_search_space("nope")

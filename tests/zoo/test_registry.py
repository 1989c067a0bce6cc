"""Every registered model builds, runs, saves and reloads (safe mode) with the same outputs."""

import keras
import numpy as np
import pytest

import zoo
from tests.helpers import EXAMPLE_INPUTS

PROBLEMS = [("binary", None, 1), ("multiclass", 4, 4), ("regression", None, 1)]


def example_batch(model: keras.Model) -> np.ndarray:
    shape = (5, *model.input_shape[1:])
    return np.random.default_rng(0).normal(size=shape).astype("float32")


@pytest.mark.parametrize("name", zoo.list_models())
@pytest.mark.parametrize(("problem", "num_classes", "width"), PROBLEMS)
def test_every_model_builds_runs_and_saves(name, problem, num_classes, width, tmp_path):
    kwargs = EXAMPLE_INPUTS.get(name, EXAMPLE_INPUTS["default"])
    model = zoo.build_model(name, problem=problem, num_classes=num_classes, **kwargs)
    assert isinstance(model, keras.Model)
    batch = example_batch(model)
    output = keras.ops.convert_to_numpy(model(batch, training=False))
    assert output.shape == (5, width)
    assert np.isfinite(output).all()
    if problem == "binary":
        assert ((output >= 0) & (output <= 1)).all()
    if problem == "multiclass":
        np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-5)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(reloaded(batch, training=False)), output, atol=1e-6)


def test_registry_lists_mlp_and_cnn():
    assert {"mlp", "cnn"} <= set(zoo.list_models())
    assert zoo.list_models() == sorted(zoo.list_models())


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match="Unknown model 'nope'. Choose one of: .*mlp"):
        zoo.build_model("nope", input_dim=3)


def test_registering_a_second_builder_under_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):
        zoo.register_model("mlp")(lambda **kwargs: None)


def test_register_model_makes_a_builder_buildable_by_name():
    @zoo.register_model("test_tiny_linear")
    def tiny_linear(input_dim, problem="binary", num_classes=None):
        return zoo.get_builder("mlp")(input_dim, problem=problem, num_classes=num_classes,
                                      hidden_units=())

    try:
        model = zoo.build_model("test_tiny_linear", input_dim=3)
        assert model.count_params() == 4  # 3 weights + 1 bias: a logistic regression
    finally:
        from zoo import registry

        registry._BUILDERS.pop("test_tiny_linear")


def test_heads_reject_unknown_problem_and_too_few_classes():
    with pytest.raises(ValueError, match="Unknown problem 'ranking'"):
        zoo.build_model("mlp", input_dim=3, problem="ranking")
    with pytest.raises(ValueError, match="num_classes >= 2"):
        zoo.build_model("mlp", input_dim=3, problem="multiclass", num_classes=1)

"""Every registered model builds, runs, saves and reloads (safe mode) with the same outputs.

The models and what each is built with come from the registry alone (`zoo.list_models()`,
`zoo.get_spec(name).example_inputs`): a new builder is tested the moment it is registered.
"""

import keras
import numpy as np
import pytest

import zoo

PROBLEMS = [("binary", None, 1), ("multiclass", 4, 4), ("regression", None, 1)]


def example_batch(model: keras.Model) -> np.ndarray:
    shape = (5, *model.input_shape[1:])
    return np.random.default_rng(0).normal(size=shape).astype("float32")


def check_builds_runs_and_saves(name, problem, num_classes, width, tmp_path):
    """The registry test's checks, on the model `name` built with its declared example inputs."""
    model = zoo.build_model(name, problem=problem, num_classes=num_classes,
                            **zoo.get_spec(name).example_inputs)
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


@pytest.mark.parametrize("name", zoo.list_models())
@pytest.mark.parametrize(("problem", "num_classes", "width"), PROBLEMS)
def test_every_model_builds_runs_and_saves(name, problem, num_classes, width, tmp_path):
    check_builds_runs_and_saves(name, problem, num_classes, width, tmp_path)


def test_a_new_image_builder_needs_no_test_edits(registered, tmp_path):
    """One decorated function: the registry test's checks build it from its registration."""

    @registered("test_tiny_conv", inputs="images")
    def tiny_conv(input_shape, problem="multiclass", num_classes=None, filters=4):
        inputs = keras.Input(shape=input_shape)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(inputs)
        return keras.Model(inputs, zoo.add_head(keras.layers.GlobalAveragePooling2D()(x),
                                                problem, num_classes))

    assert zoo.get_spec("test_tiny_conv").example_inputs == {"input_shape": (12, 10, 3)}
    for problem, num_classes, width in PROBLEMS:
        check_builds_runs_and_saves("test_tiny_conv", problem, num_classes, width, tmp_path)


def test_the_zoo_declares_what_differs_between_its_models():
    mlp, cnn, resnet, transfer = (zoo.get_spec(name)
                                  for name in ("mlp", "cnn", "resnet", "transfer"))
    assert (mlp.inputs, cnn.inputs, resnet.inputs, transfer.inputs) == (
        "table", "images", "images", "images")
    assert mlp.data_arguments == ("input_dim", "problem", "num_classes")
    assert cnn.data_arguments == transfer.data_arguments == (
        "input_shape", "problem", "num_classes")
    assert [spec.two_phase for spec in (mlp, cnn, resnet)] == [False] * 3
    assert transfer.two_phase and transfer.feature_extractor == "backbone"
    assert transfer.check is zoo.applications.check_weights and mlp.check is None
    assert resnet.example_inputs["depth"] == 8
    assert "input_dim" not in mlp.settings() and "hidden_units" in mlp.settings()
    assert zoo.get_search_space("mlp") is mlp.search_space is not None
    model = zoo.build_model("transfer", problem="binary", **transfer.example_inputs)
    assert isinstance(model.get_layer(transfer.feature_extractor), keras.Model)


def test_a_plain_registration_is_a_table_builder_trained_in_one_phase(registered):
    @registered("test_plain")
    def plain(input_dim, problem="binary", num_classes=None, units=3):
        return zoo.build_model("mlp", input_dim=input_dim, problem=problem,
                               num_classes=num_classes, hidden_units=(units,))

    spec = zoo.get_spec("test_plain")
    assert (spec.inputs, spec.data_arguments, dict(spec.example_inputs)) == (
        "table", ("input_dim", "problem", "num_classes"), {"input_dim": 7})
    assert (spec.feature_extractor, spec.two_phase, spec.check) == (None, False, None)
    assert spec.settings() == ["units"]
    spec.check_settings({"units": 4})  # no check declared: nothing to refuse
    with pytest.raises(AttributeError):
        spec.inputs = "images"  # frozen: the registration is the one place to declare it


def test_a_declared_check_gets_the_settings_it_takes(registered):
    seen = []

    def check(weights=None):
        seen.append(weights)
        if weights == "bad":
            raise ValueError(f"weights cannot be had. Received: weights={weights!r}")

    registered("test_checked", check=check)(zoo.get_builder("mlp"))
    spec = zoo.get_spec("test_checked")
    spec.check_settings({"weights": "good", "hidden_units": (4,)})
    assert seen == ["good"]
    with pytest.raises(ValueError, match="Received: weights='bad'"):
        spec.check_settings({"weights": "bad"})


@pytest.mark.parametrize(("declared", "message"), [
    ({"inputs": "audio"}, r"inputs must be one of \('table', 'images'\). Received: inputs='audio'"),
    ({"inputs": "images"}, "data_arguments must be arguments of the builder 'test_wrong'; it has "
                           "no input_shape. Received: data_arguments="),
    ({"example_inputs": {"input_dim": 3, "depth": 2}},
     "example_inputs must be arguments .* no depth. Received: example_inputs="),
])
def test_a_registration_that_does_not_fit_its_builder_is_refused(declared, message):
    def builder(input_dim, problem="binary", num_classes=None):
        return None

    with pytest.raises(ValueError, match=message):
        zoo.register_model("test_wrong", **declared)(builder)
    assert "test_wrong" not in zoo.list_models()


def test_registry_lists_mlp_and_cnn():
    assert {"mlp", "cnn"} <= set(zoo.list_models())
    assert zoo.list_models() == sorted(zoo.list_models())


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match="Unknown model 'nope'. Choose one of: .*mlp"):
        zoo.build_model("nope", input_dim=3)


def test_registering_a_second_builder_under_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):
        zoo.register_model("mlp")(lambda **kwargs: None)


def test_register_model_makes_a_builder_buildable_by_name(registered):
    @registered("test_tiny_linear")
    def tiny_linear(input_dim, problem="binary", num_classes=None):
        return zoo.get_builder("mlp")(input_dim, problem=problem, num_classes=num_classes,
                                      hidden_units=())

    model = zoo.build_model("test_tiny_linear", input_dim=3)
    assert model.count_params() == 4  # 3 weights + 1 bias: a logistic regression


def test_unregistering_frees_the_name_and_unknown_names_are_refused(registered):
    registered("test_again")(zoo.get_builder("mlp"))
    zoo.unregister_model("test_again")
    assert "test_again" not in zoo.list_models()
    registered("test_again", inputs="images")(zoo.get_builder("cnn"))  # a new builder, same name
    with pytest.raises(ValueError, match="Unknown model 'nope'.*Received: name='nope'"):
        zoo.unregister_model("nope")
    with pytest.raises(ValueError, match="Unknown model 'nope'"):
        zoo.get_spec("nope")


def test_heads_reject_unknown_problem_and_too_few_classes():
    with pytest.raises(ValueError, match="Unknown problem 'ranking'"):
        zoo.build_model("mlp", input_dim=3, problem="ranking")
    with pytest.raises(ValueError, match="num_classes >= 2"):
        zoo.build_model("mlp", input_dim=3, problem="multiclass", num_classes=1)

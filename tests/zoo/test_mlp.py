"""The MLP builder's flat keyword arguments each change the network as documented."""

import keras
import numpy as np
import pytest

from zoo import build_model


def layer_types(model):
    return [type(layer).__name__ for layer in model.layers]


def test_hidden_units_set_depth_and_width():
    model = build_model("mlp", input_dim=5, hidden_units=(16, 8, 4))
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [16, 8, 4, 1]


def test_no_hidden_units_is_logistic_regression():
    model = build_model("mlp", input_dim=5, hidden_units=())
    assert model.count_params() == 6
    assert model.layers[-1].activation.__name__ == "sigmoid"


def test_dropout_and_batch_norm_layers_appear_only_when_asked():
    plain = build_model("mlp", input_dim=5, hidden_units=(8, 8))
    assert "Dropout" not in layer_types(plain)
    assert "BatchNormalization" not in layer_types(plain)
    regularized = build_model("mlp", input_dim=5, hidden_units=(8, 8), dropout_rate=0.3,
                              batch_norm=True)
    assert layer_types(regularized).count("Dropout") == 2
    assert layer_types(regularized).count("BatchNormalization") == 2
    dropout = [layer for layer in regularized.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropout[0].rate == pytest.approx(0.3)
    # With batch norm the Dense layers have no bias (BatchNorm's beta replaces it).
    assert not regularized.get_layer("dense_0").use_bias


def test_l1_l2_add_penalties_to_the_loss():
    plain = build_model("mlp", input_dim=5, hidden_units=(8,))
    assert plain.losses == []
    penalized = build_model("mlp", input_dim=5, hidden_units=(8,), l1=1e-3, l2=1e-2)
    assert len(penalized.losses) == 1
    kernel = keras.ops.convert_to_numpy(penalized.get_layer("dense_0").kernel)
    expected = 1e-3 * np.abs(kernel).sum() + 1e-2 * np.square(kernel).sum()
    assert float(penalized.losses[0]) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(("initializer", "expected_std"), [
    ("he_normal", np.sqrt(2.0 / 400)),
    ("glorot_normal", np.sqrt(2.0 / (400 + 300))),
])
def test_kernel_initializer_sets_the_weight_scale(initializer, expected_std):
    keras.utils.set_random_seed(0)
    model = build_model("mlp", input_dim=400, hidden_units=(300,),
                        kernel_initializer=initializer)
    kernel = keras.ops.convert_to_numpy(model.get_layer("dense_0").kernel)
    # Keras rescales its truncated normal so the drawn weights have the nominal std.
    assert kernel.std() == pytest.approx(expected_std, rel=0.05)


def test_activation_by_name():
    model = build_model("mlp", input_dim=3, hidden_units=(4,), activation="tanh")
    assert model.get_layer("tanh_0").activation.__name__ == "tanh"


def test_invalid_arguments_raise_with_the_received_value():
    with pytest.raises(ValueError, match="Received: dropout_rate=1.5"):
        build_model("mlp", input_dim=3, dropout_rate=1.5)
    with pytest.raises(ValueError, match="Received: input_dim=0"):
        build_model("mlp", input_dim=0)

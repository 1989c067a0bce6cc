"""The CNN builder's flat keyword arguments each change the network as documented."""

import keras
import numpy as np
import pytest

from zoo import build_model

SHAPE = (12, 12, 3)


def cnn(**kwargs):
    return build_model("cnn", **{"input_shape": SHAPE, "num_classes": 4, **kwargs})


def layer_types(model):
    """Layer classes, looking inside the TrainingOnly wrappers of the augmentation."""
    return [type(getattr(layer, "layer", layer)).__name__ for layer in model.layers]


def augmentation(model, name):
    return model.get_layer(f"{name}_in_training").layer


def images(count=4, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, *shape)).astype("float32")


def outputs(model, x, training):
    return keras.ops.convert_to_numpy(model(x, training=training))


# Without batch norm and dropout, the random layers are the only source of training-time noise.
DETERMINISTIC = {"batch_norm": False, "dropout_rate": 0.0}
NO_AUGMENTATION = {"rotation": 0.0, "zoom": 0.0, "translation": 0.0, "contrast": 0.0}


def test_augmentation_is_inactive_at_inference():
    model = cnn(flip="horizontal")
    x = images()
    np.testing.assert_array_equal(outputs(model, x, False), outputs(model, x, False))


def test_augmentation_is_inactive_when_training_is_not_said(tmp_path):
    """`model(x)` leaves training unset; Keras's random layers alone would augment then."""
    model = cnn(**DETERMINISTIC, flip="horizontal")
    x = images()
    unset = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_array_equal(unset, keras.ops.convert_to_numpy(model(x)))
    np.testing.assert_allclose(unset, outputs(model, x, False), rtol=1e-6)
    model.save(tmp_path / "cnn.keras")
    reloaded = keras.saving.load_model(tmp_path / "cnn.keras", safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x)), unset, rtol=1e-6)
    assert not np.allclose(outputs(reloaded, x, True), outputs(reloaded, x, True))


def test_augmentation_is_active_in_training():
    keras.utils.set_random_seed(0)
    x = images()
    augmented = cnn(**DETERMINISTIC)
    assert not np.allclose(outputs(augmented, x, True), outputs(augmented, x, True))
    plain = cnn(**DETERMINISTIC, **NO_AUGMENTATION)
    np.testing.assert_allclose(outputs(plain, x, True), outputs(plain, x, True), rtol=1e-6)


def test_default_augmentation_has_no_flips_and_each_strength_zero_removes_its_layer():
    default = layer_types(cnn())
    assert "RandomFlip" not in default
    for layer in ("RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast"):
        assert layer in default
    assert not {"RandomRotation", "RandomZoom", "RandomTranslation",
                "RandomContrast"} & set(layer_types(cnn(**NO_AUGMENTATION)))
    flipped = augmentation(cnn(flip="horizontal"), "random_flip")
    assert flipped.mode == "horizontal"
    assert augmentation(cnn(rotation=0.1), "random_rotation").factor == pytest.approx((-0.1, 0.1))


def test_rescaling_divides_raw_pixels_by_255():
    layer = cnn().get_layer("rescaling")
    assert layer.scale == pytest.approx(1 / 255)
    assert "Rescaling" not in layer_types(cnn(rescale=False))


def test_filters_set_blocks_and_convolutions_per_block_their_depth():
    model = cnn(filters=(8, 16), convolutions_per_block=2)
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.filters for layer in convolutions] == [8, 8, 16, 16]


def test_batch_norm_layers_appear_only_when_asked():
    normalized = cnn(filters=(8, 16), batch_norm_momentum=0.8)
    norms = [layer for layer in normalized.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 2
    assert norms[0].momentum == pytest.approx(0.8)
    assert not normalized.get_layer("block0_conv0").use_bias
    plain = cnn(filters=(8, 16), batch_norm=False)
    assert "BatchNormalization" not in layer_types(plain)
    assert plain.get_layer("block0_conv0").use_bias


def test_flatten_keeps_positions_and_global_pooling_does_not():
    pooled = cnn(filters=(8,), pooling=None, global_pooling="avg", **NO_AUGMENTATION)
    flattened = cnn(filters=(8,), pooling=None, global_pooling="flatten", **NO_AUGMENTATION)
    # The head sees 8 features after global pooling, 12 * 12 * 8 after flattening (4 classes).
    assert flattened.count_params() - pooled.count_params() == (12 * 12 * 8 - 8) * 4
    assert "GlobalMaxPooling2D" in layer_types(cnn(global_pooling="max"))


def test_strides_padding_and_pooling_set_the_feature_map_size():
    def side(**kwargs):
        return cnn(filters=(8,), **kwargs).get_layer("block0_conv0").output.shape[1]

    assert side(pooling=None) == 12
    assert side(strides=2) == 6
    assert side(padding="valid", kernel_size=5) == 8
    model = cnn(filters=(8, 8), pooling="avg")
    assert model.get_layer("block1_avg_pool").output.shape[1:3] == (3, 3)
    assert "MaxPooling2D" not in layer_types(cnn(pooling="none"))


def test_odd_sizes_pool_down_to_one_pixel_not_zero():
    model = build_model("cnn", input_shape=(7, 5, 1), num_classes=3, filters=(4, 4, 4, 4))
    assert model.get_layer("block3_max_pool").output.shape[1:3] == (1, 1)


def test_dense_units_dropout_and_l2():
    model = cnn(filters=(8,), dense_units=(16, 8), dropout_rate=0.4, l2=1e-3)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [16, 8, 4]
    dropout = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert len(dropout) == 3 and dropout[0].rate == pytest.approx(0.4)
    assert len(model.losses) == 3  # one conv kernel and two dense kernels; the head is free
    assert cnn(l2=0.0, dropout_rate=0.0).losses == []
    assert "Dropout" not in layer_types(cnn(dropout_rate=0.0))


def test_problems_pick_the_head():
    assert cnn(problem="binary", num_classes=None).output.shape == (None, 1)
    assert cnn().output.shape == (None, 4)
    assert cnn().get_layer("head").dtype_policy.compute_dtype == "float32"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input_shape": (12, 12)}, "input_shape must be"),
    ({"filters": ()}, "filters must list at least one block"),
    ({"kernel_size": 0}, "kernel_size must be a whole number"),
    ({"strides": 1.5}, "strides must be a whole number"),
    ({"padding": "full"}, "padding must be one of"),
    ({"pooling": "min"}, "pooling must be one of"),
    ({"global_pooling": "sum"}, "global_pooling must be one of"),
    ({"flip": "diagonal"}, "flip must be one of"),
    ({"fill_mode": "mirror"}, "fill_mode must be one of"),
    ({"dropout_rate": 1.0}, r"dropout_rate must be in \[0, 1\)"),
    ({"rotation": 0.6}, r"rotation must be in \[0, 0.5\)"),
    ({"zoom": -0.1}, "zoom must be in"),
    ({"batch_norm_momentum": 1.0}, "batch_norm_momentum must be in"),
    ({"l2": -1.0}, "l2 must be >= 0"),
    ({"padding": "valid", "kernel_size": 5, "filters": (4, 4, 4)}, "too small for these blocks"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cnn(**kwargs)


def test_default_cnn_converts_to_tflite_that_standalone_litert_runs(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    model = build_model("cnn", input_shape=(8, 8, 1), num_classes=3, filters=(4, 8))
    path = tmp_path / "cnn.tflite"
    # Keras's default allows Select TF (Flex) ops; standalone LiteRT refuses a model that uses
    # one, so running it here shows augmentation left nothing but builtins in the graph.
    model.export(str(path), format="litert", verbose=False)
    runner = Interpreter(model_path=str(path)).get_signature_runner()
    x = images(3, (8, 8, 1))
    result = next(iter(runner(**{runner.get_input_details().popitem()[0]: x}).values()))
    np.testing.assert_allclose(result, outputs(model, x, False), atol=1e-5)

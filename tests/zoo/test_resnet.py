"""The ResNet builder: the paper's sizes, its block variants, and what the shortcuts are for."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import build_model
from zoo.resnet import blocks_per_stage, valid_depths

NO_AUGMENTATION = {"rotation": 0.0, "zoom": 0.0, "translation": 0.0, "contrast": 0.0}


def resnet(**kwargs):
    return build_model("resnet", **{"input_shape": (8, 8, 1), "num_classes": 4, **kwargs})


def layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def images(shape, count=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (count, *shape)).astype("float32")


def test_resnet20_at_width_16_has_the_papers_027m_parameters():
    model = build_model("resnet", input_shape=(32, 32, 3), num_classes=10, depth=20)
    assert round(model.count_params() / 1e6, 2) == 0.27
    convolutions = [layer for layer in layers_of(model, keras.layers.Conv2D)
                    if "projection" not in layer.name]
    # 19 convolutions on the main path + the head = 20 layers with weights.
    assert len(convolutions) + 1 == 20
    assert [layer.filters for layer in convolutions][::6] == [16, 16, 32, 64]


@pytest.mark.parametrize(("depth", "block", "blocks"),
                         [(20, "basic", 3), (32, "basic", 5), (56, "basic", 9),
                          (110, "basic", 18), (29, "bottleneck", 3), (164, "bottleneck", 18)])
def test_depth_is_6n_plus_2_for_basic_and_9n_plus_2_for_bottleneck_blocks(depth, block, blocks):
    assert blocks_per_stage(depth, block) == blocks
    assert depth in valid_depths(block, count=18)


@pytest.mark.parametrize(("depth", "block", "listed"),
                         [(21, "basic", "8, 14, 20, 26, 32, 38"), (2, "basic", "8, 14"),
                          (14, "bottleneck", "11, 20, 29"), (20.5, "basic", "20, 26")])
def test_a_depth_that_does_not_fit_the_block_lists_the_valid_ones(depth, block, listed):
    with pytest.raises(ValueError, match=rf"depth must be .n \+ 2 for {block}.*{listed}.*"
                                         rf"Received: depth={depth}"):
        resnet(depth=depth, block=block)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input_shape": (7, 12, 3)}, "at least 8x8"),
    ({"block": "wide"}, "block must be one of"),
    ({"version": 3}, "version must be one of"),
    ({"width": 0}, "width must be"),
    ({"dropout_rate": 1.0}, "dropout_rate must be"),
    ({"flip": "sideways"}, "flip must be one of"),
])
def test_invalid_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resnet(**kwargs)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(("block", "depth"), [("basic", 8), ("bottleneck", 11)])
def test_every_block_and_version_builds_runs_and_has_its_shortcuts(block, depth, version):
    model = resnet(block=block, depth=depth, version=version)
    output = keras.ops.convert_to_numpy(model(images((8, 8, 1)), training=False))
    assert output.shape == (4, 4)
    np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-5)
    assert len(layers_of(model, keras.layers.Add)) == 3  # one block per stage
    # Projections where the shape changes: stride-2 stage starts, and (bottleneck) the first
    # block, which expands width 16 to 64.
    projections = [layer.name for layer in model.layers if layer.name.endswith("_projection")]
    expected = ["stage1_block0_projection", "stage2_block0_projection"]
    if block == "bottleneck":
        expected.insert(0, "stage0_block0_projection")
    assert projections == expected
    expansion = 4 if block == "bottleneck" else 1
    assert model.get_layer("features").input.shape[1:] == (2, 2, 64 * expansion)


def test_version_1_activates_after_the_sum_and_version_2_before_each_convolution():
    def after_add(model):
        add = model.get_layer("stage0_block0_add")
        return [node.operation.name for node in add._outbound_nodes]

    assert after_add(resnet(version=1)) == ["stage0_block0_out_relu"]
    # Pre-activation: the sum goes straight on, the next block normalizes it first.
    assert after_add(resnet(version=2, depth=14)) == ["stage0_block1_preact_batch_norm",
                                                      "stage0_block1_add"]
    assert "final_relu" in [layer.name for layer in resnet(version=2).layers]


def test_shortcuts_false_builds_the_same_main_path_without_any_shortcut():
    residual, plain = resnet(depth=14), resnet(depth=14, shortcuts=False)
    assert not layers_of(plain, keras.layers.Add)
    main_path = [layer.name for layer in layers_of(residual, keras.layers.Conv2D)
                 if "projection" not in layer.name]
    assert [layer.name for layer in layers_of(plain, keras.layers.Conv2D)] == main_path


def test_batch_norm_false_gives_the_convolutions_biases():
    model = resnet(batch_norm=False)
    assert not layers_of(model, keras.layers.BatchNormalization)
    assert model.get_layer("stem_conv").use_bias
    assert not resnet().get_layer("stem_conv").use_bias


def test_transfer_layer_names_and_rescaling():
    model = resnet(dropout_rate=0.2, l2=0.0)
    assert isinstance(model.get_layer("features"), keras.layers.GlobalAveragePooling2D)
    assert model.get_layer("head_dropout").rate == pytest.approx(0.2)
    assert model.get_layer("head").units == 4
    assert model.get_layer("rescaling").scale == pytest.approx(1 / 255)
    assert "head_dropout" not in [layer.name for layer in resnet().layers]
    assert "rescaling" not in [layer.name for layer in resnet(rescale=False).layers]
    assert not model.losses  # l2=0: no penalty


def test_saved_model_reloads_in_safe_mode_with_the_same_outputs(tmp_path):
    model = build_model("resnet", input_shape=(10, 9, 3), problem="binary", depth=11,
                        block="bottleneck", version=2, dropout_rate=0.3, flip="horizontal")
    x = images((10, 9, 3))
    path = tmp_path / "resnet.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x)),
                               keras.ops.convert_to_numpy(model(x)), atol=1e-6)


def gradient_norms(seed, **kwargs):
    """Norms of the loss gradient at initialization w.r.t. the first and the head's kernels."""
    keras.utils.set_random_seed(seed)
    model = build_model("resnet", input_shape=(16, 16, 3), num_classes=10, l2=0.0,
                        **NO_AUGMENTATION, **kwargs)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 10, 16)
    kernels = [model.get_layer("stem_conv").kernel, model.get_layer("head").kernel]
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
            y, model(x, training=True)))
    first, head = (float(tf.norm(gradient)) for gradient in tape.gradient(loss, kernels))
    return first, head, float(loss)


def test_without_batch_norm_only_the_shortcuts_carry_a_gradient_to_the_first_layer():
    """A 56-layer stack without batch norm: residual versus plain, same seed and batch.

    In the plain stack the signal shrinks layer by layer: the output is uniform (the loss is
    ln 10) and the gradient that reaches the first convolution is about 0.005. The identity
    shortcuts of the residual stack carry it back: measured 2e5 to 1.6e6 times larger over
    seeds 0-7 (version 2; version 1 alike). They carry the forward signal as well: without
    normalization it grows with every block (a loss in the hundreds to thousands at
    initialization), which is what the default batch norm is for.
    """
    residual, _, residual_loss = gradient_norms(0, depth=56, version=2, batch_norm=False)
    plain, _, plain_loss = gradient_norms(0, depth=56, version=2, batch_norm=False,
                                          shortcuts=False)
    assert plain_loss == pytest.approx(math.log(10), abs=0.01)
    assert plain < 0.05
    assert residual / plain >= 1e4
    assert residual_loss > 100


def test_with_batch_norm_shortcuts_keep_the_first_layer_gradient_on_the_heads_scale():
    """The paper's setting (version 1, batch norm), 56 layers, residual versus plain.

    Batch norm keeps the plain stack's gradient from vanishing; instead it grows toward the
    input (at initialization, a known effect of batch norm in deep plain networks, Yang et
    al. 2019): the first convolution's gradient is 900 to 2500 times the head's over seeds
    0-7. With shortcuts it stays within 1.2 to 2.5 times the head's.
    """
    first, head, _ = gradient_norms(0, depth=56)
    assert 0.2 <= first / head <= 20
    plain_first, plain_head, _ = gradient_norms(0, depth=56, shortcuts=False)
    assert plain_first / plain_head >= 200

"""Compile presets, optimizers by name and the standard callbacks."""

import keras
import numpy as np
import pytest

from tasks.config import OPTIMIZERS, TrainConfig
from tasks.engine import presets
from tasks.engine.callbacks import standard_callbacks


@pytest.mark.parametrize(("name", "kind", "momentum"), [
    ("sgd", keras.optimizers.SGD, 0.0),
    ("momentum", keras.optimizers.SGD, 0.9),
    ("adagrad", keras.optimizers.Adagrad, None),
    ("rmsprop", keras.optimizers.RMSprop, None),
    ("adam", keras.optimizers.Adam, None),
    ("adamw", keras.optimizers.AdamW, None),
])
def test_optimizers_by_name(name, kind, momentum):
    optimizer = presets.make_optimizer(name, 0.05)
    assert type(optimizer) is kind
    assert float(optimizer.learning_rate) == pytest.approx(0.05)
    if momentum is not None:
        assert optimizer.momentum == pytest.approx(momentum)


def test_every_configurable_optimizer_has_a_factory():
    for name in OPTIMIZERS:
        presets.make_optimizer(name, 1e-3)
    with pytest.raises(ValueError, match="Unknown optimizer 'lbfgs'"):
        presets.make_optimizer("lbfgs", 1e-3)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_lowers_the_loss_of_a_small_problem(name):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
    y = (x[:, :1] + x[:, 1:2] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(**presets.compile_arguments("binary", name, 0.1))
    history = model.fit(x, y, epochs=5, batch_size=64, verbose=0).history["loss"]
    assert history[-1] < history[0]


def test_binary_preset_scores_with_scikit_learn_names():
    preset = presets.get_preset("binary")
    assert preset.loss == "binary_crossentropy"
    scores = preset.score(np.array([0, 1, 1, 0]), np.array([0.2, 0.9, 0.4, 0.6]))
    assert scores == pytest.approx({"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5,
                                    "roc_auc": 0.75})
    with pytest.raises(ValueError, match="Unknown problem 'ranking'"):
        presets.get_preset("ranking")


def test_standard_callbacks_follow_the_train_settings(tmp_path):
    callbacks = standard_callbacks(tmp_path, TrainConfig(tensorboard=True), progress=False)
    kinds = {type(callback).__name__: callback for callback in callbacks}
    assert set(kinds) == {"EarlyStopping", "ReduceLROnPlateau", "CSVLogger", "TensorBoard"}
    assert kinds["EarlyStopping"].restore_best_weights
    assert kinds["EarlyStopping"].monitor == "val_loss"
    off = standard_callbacks(tmp_path, TrainConfig(early_stopping_patience=0,
                                                   reduce_lr_patience=0), progress=False)
    assert [type(callback).__name__ for callback in off] == ["CSVLogger"]


def test_early_stopping_restores_the_best_epoch(tmp_path):
    """On noise the validation loss bottoms out early; the kept weights are that epoch's."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(64, 20)).astype("float32"), rng.integers(0, 2, (64, 1)).astype(
        "float32")
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(**presets.compile_arguments("binary", "adam", 0.01))
    train = TrainConfig(early_stopping_patience=5, reduce_lr_patience=0)
    history = model.fit(x[:48], y[:48], validation_data=(x[48:], y[48:]), epochs=200,
                        verbose=0, callbacks=standard_callbacks(tmp_path, train, progress=False))
    losses = history.history["val_loss"]
    assert len(losses) < 200
    restored = model.evaluate(x[48:], y[48:], verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(min(losses), rel=1e-4)

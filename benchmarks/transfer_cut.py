"""Experiment: transfer from the pretrained ResNet cut at an earlier layer, with a flattened head.

The linear probe (`transfer_digits.py --probe`) found the first stage's output, flattened, more
useful for digits 5-9 than the pooled features the transfer head receives. This tries that as a
recipe, outside the task (plain Keras `fit`, same data, same two phases as the task: head at
1e-2 on the frozen layers, then all layers at 1e-3 with batch norm frozen, patience 30):

    python benchmarks/transfer_cut.py 0 stage0_block2_out_relu   # seed, layer to cut at
    python benchmarks/transfer_cut.py 0 features                 # the task's recipe, for control

Prints the test accuracy after each phase. Not a task option yet (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import transfer_digits as bench  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import zoo.layers  # noqa: E402, F401  (registers the zoo's layers for loading)
from tasks import image_classify  # noqa: E402
from zoo.applications import _find_network  # noqa: E402


def main(seed: int, layer: str) -> None:
    with tempfile.TemporaryDirectory() as work:
        pretrain, _, _ = bench.folders(Path(work), seed, 10)
        run_dir = Path(work) / "pretrain_run"
        bench.run(image_classify.main, ["--data", str(pretrain), "--seed", str(seed),
                                        *bench.RESNET], run_dir, export="keras")
        network = _find_network(keras.saving.load_model(run_dir / "model.keras", safe_mode=True,
                                                        compile=False))
    digits = load_digits()
    labels = digits.target
    rng = np.random.default_rng(seed)  # the same draw as the benchmark's folders
    few = [rng.choice(np.flatnonzero(labels == label), 10, replace=False)
           for label in bench.NEW_CLASSES]
    train = np.concatenate([chosen[:8] for chosen in few])
    validation = np.concatenate([chosen[8:] for chosen in few])
    test = np.setdiff1d(np.flatnonzero(~np.isin(labels, bench.PRETRAIN_CLASSES)),
                        np.concatenate(few))
    pixels = np.rint(digits.images * (255.0 / 16.0)).astype("float32")[..., None]
    targets = labels - min(bench.NEW_CLASSES)

    keras.utils.set_random_seed(seed)
    base = keras.Model(network.input, network.get_layer(layer).output)
    inputs = keras.Input(pixels.shape[1:])
    x = base(inputs)
    x = keras.layers.Flatten()(x) if len(x.shape) == 4 else x
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(len(bench.NEW_CLASSES), activation="softmax")(x)
    model = keras.Model(inputs, outputs)

    def phase(learning_rate: float) -> float:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(pixels[train], targets[train], epochs=60, batch_size=32, verbose=0,
                  validation_data=(pixels[validation], targets[validation]),
                  callbacks=[keras.callbacks.EarlyStopping(patience=30,
                                                           restore_best_weights=True)])
        return model.evaluate(pixels[test], targets[test], verbose=0)[1]

    base.trainable = False
    head = phase(1e-2)
    base.trainable = True
    for inner in base.layers:
        if isinstance(inner, keras.layers.BatchNormalization):
            inner.trainable = False
    tuned = phase(1e-3)
    print(f"seed {seed}, cut at {layer}: head only {head:.4f}, fine-tuned {tuned:.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])

"""Data preparation: preprocessing adapted on the training rows, every split transformed.

The one rule that keeps scores honest lives here: preprocessing (and a regression target's mean
and deviation) learn from the training rows only, then transform every other split as they are.
"""

from __future__ import annotations

import numpy as np

from tasks.engine import presets
from tasks.engine.inputs import ImageInputs, StreamedTableInputs, TableInputs
from tasks.engine.outcomes import PreparedData

SEARCH_SPLITS = ("train", "validation")


def prepare_training_data(problem: str, data: TableInputs | ImageInputs,
                          features: dict[str, dict[str, np.ndarray]],
                          ids: dict[str, np.ndarray]) -> PreparedData:
    """Adapts preprocessing on `features["train"]` and transforms each split in `features`.

    For streamed data `features["train"]` is the training sample: the preprocessing (and a
    regression target's mean and deviation) are adapted on it, and `x["train"]` becomes the
    stream of every training row through that preprocessing.
    """
    preprocessor = data.preprocessor(features["train"])
    x = {name: preprocessor.transform(values) for name, values in features.items()}
    y = {name: presets.training_targets(problem, ids[name]) for name in features}
    mean, std = 0.0, 1.0
    if presets.get_preset(problem).standardize_target:
        mean, std = float(y["train"].mean()), float(y["train"].std() or 1.0)
        y = {name: (values - mean) / std for name, values in y.items()}
    if isinstance(data, StreamedTableInputs):
        x["train"] = data.training_stream(preprocessor, mean, std)
    return PreparedData(preprocessor, x, y, mean, std)


def prepare_fit(problem: str, inputs: TableInputs | ImageInputs) -> PreparedData:
    """Adapted on the training rows; train and validation transformed (a default fit, a search)."""
    return prepare_training_data(problem, inputs, {
        name: inputs.features[name] for name in SEARCH_SPLITS}, inputs.ids)


def prepare_refit(problem: str, inputs: TableInputs | ImageInputs) -> PreparedData:
    """Adapted anew on train + validation, both as training rows (the refit after a search)."""
    features, ids = inputs.features, inputs.ids
    merged = {column: np.concatenate([features["train"][column], features["validation"][column]])
              for column in features["train"]}
    return prepare_training_data(problem, inputs, {"train": merged},
                                 {"train": np.concatenate([ids["train"], ids["validation"]])})

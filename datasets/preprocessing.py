"""Preprocessing that becomes part of the model, adapted on the training split only.

A tabular model is three Keras pieces composed:

    raw columns --lookup--> codes --featurizer--> one float vector --network--> output
                 (strings)          (normalize, impute, one-hot)      (a zoo builder)

* `lookup`: one `StringLookup` per categorical column (string -> integer code).
* `featurizer`: `Normalization` + `FillMissing` (mean imputation) over the numeric columns, a
  missing-value indicator for each numeric column that had missing training values, and
  `CategoryEncoding` (one-hot) per categorical column, concatenated.
* `network`: any registered zoo model taking `(batch, featurizer width)`.

`full = network(featurizer(lookup(raw)))` takes the raw columns by name: it is `model.keras`,
the SavedModel and (converted with builtin ops only) the TFLite file.
The network trains on the featurizer's output computed once, so small tables do not pay for
preprocessing every epoch.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from datasets.tabular import MISSING_CATEGORY, TabularSchema
from zoo.layers import FillMissing, MissingIndicator

OOV_TOKEN = "[UNK]"
TARGET_UNITS = "target_units"  # the Rescaling layer mapping regression outputs to target units


class TabularPreprocessor:
    """Keras preprocessing for one schema, adapted on training features.

    Args:
        schema: The dataset schema.
        max_categories: Most frequent categories kept per column (others share the OOV code).

    Example:
        >>> pre = TabularPreprocessor(schema)
        >>> pre.adapt(features_from_frame(splits.train, schema))
        >>> x = pre.transform(features)            # numpy (rows, pre.width)
        >>> full = pre.compose(network)
    """

    def __init__(self, schema: TabularSchema, max_categories: int = 50):
        self.schema = schema
        self.max_categories = max_categories
        self.lookups: dict[str, keras.layers.StringLookup] = {}
        self.normalizer: keras.layers.Normalization | None = None
        self.with_indicator: list[int] = []
        self.featurizer: keras.Model | None = None

    def adapt(self, features: dict[str, np.ndarray]) -> TabularPreprocessor:
        """Adapts every layer on training features (see `features_from_frame`) and builds them.

        Numeric columns share one `Normalization` layer. Its `adapt()` cannot skip missing
        values, so it is given the mean and variance of the present training values instead;
        categorical columns use `StringLookup.adapt`.

        Returns:
            self.
        """
        numeric = [c.input_name for c in self.schema.columns if c.kind == "numeric"]
        if numeric:
            matrix = np.concatenate([features[name] for name in numeric], axis=1)
            present = ~np.isnan(matrix)
            counts = present.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(counts > 0, np.nansum(matrix, axis=0) / np.maximum(counts, 1), 0.0)
                variance = np.where(counts > 1, np.nanvar(matrix, axis=0), 1.0)
            self.normalizer = keras.layers.Normalization(
                mean=mean.astype("float32"), variance=variance.astype("float32"),
                name="normalize")
            self.with_indicator = [index for index, name in enumerate(numeric)
                                   if not present[:, index].all()]
        for column in self.schema.columns:
            if column.kind == "categorical":
                lookup = keras.layers.StringLookup(
                    max_tokens=self.max_categories + 1, num_oov_indices=1, oov_token=OOV_TOKEN,
                    name=f"lookup_{column.input_name}")
                lookup.adapt(tf.constant(features[column.input_name].reshape(-1).astype(str)))
                self.lookups[column.input_name] = lookup
        self.featurizer = self._build_featurizer()
        return self

    def _inputs(self, category_dtype: str) -> dict[str, keras.KerasTensor]:
        return {
            column.input_name: keras.Input(
                shape=(1,), name=column.input_name,
                dtype="float32" if column.kind == "numeric" else category_dtype)
            for column in self.schema.columns
        }

    def _code_inputs(self) -> dict[str, keras.KerasTensor]:
        """Inputs of the featurizer and the TFLite model: numbers and int64 category codes."""
        return self._inputs("int64")

    def raw_inputs(self) -> dict[str, keras.KerasTensor]:
        """Keras inputs taking the raw columns: float32 numbers, strings for categories."""
        return self._inputs("string")

    def _build_featurizer(self) -> keras.Model:
        # Few, wide layers: tracing cost (export, first fit step) grows with the layer count.
        inputs = self._code_inputs()
        numeric = [inputs[c.input_name] for c in self.schema.columns if c.kind == "numeric"]
        parts = []
        if numeric:
            values = (numeric[0] if len(numeric) == 1
                      else keras.layers.Concatenate(name="numbers")(numeric))
            parts.append(FillMissing(name="impute")(self.normalizer(values)))
            if self.with_indicator:
                parts.append(MissingIndicator(self.with_indicator, name="missing")(values))
        for column in self.schema.columns:
            if column.kind == "categorical":
                name = column.input_name
                parts.append(keras.layers.CategoryEncoding(
                    num_tokens=self.lookups[name].vocabulary_size(), output_mode="one_hot",
                    name=f"one_hot_{name}")(inputs[name]))
        outputs = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
        return keras.Model(inputs, outputs, name="featurizer")

    @property
    def width(self) -> int:
        """Width of the featurizer's output vector (the network's `input_dim`)."""
        return int(self.featurizer.output.shape[-1])

    def builder_inputs(self) -> dict[str, Any]:
        """The zoo builder's input argument: the featurizer's width."""
        return {"input_dim": self.width}

    def transform(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Raw features -> the float32 matrix the network trains on.

        `transform_tensors` on numpy arrays: numbers as float32, categories as strings.
        """
        tensors = {column.input_name: tf.constant(
            features[column.input_name].astype("float32" if column.kind == "numeric" else str))
            for column in self.schema.columns}
        return self.transform_tensors(tensors).numpy()

    def transform_tensors(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        """Raw feature tensors -> the network's input, in graph mode too (`tf.data` maps it).

        Args:
            features: Raw features by input name, shape (rows, 1): float32 numbers with NaN for
                missing, strings for categories (see `features_from_frame`).

        Returns:
            The float32 matrix the network trains on: category strings through their
            `StringLookup`, then the featurizer (missing values, indicators, normalization).
        """
        codes = {name: self.lookups[name](values) if name in self.lookups else values
                 for name, values in features.items()}
        return self.featurizer(codes, training=False)

    def compose(self, network: keras.Model, target_mean: float = 0.0,
                target_std: float = 1.0) -> keras.Model:
        """Puts preprocessing and a trained network together.

        Args:
            network: The trained network on the featurizer's output.
            target_mean: For a network trained on a standardized target, the training mean ...
            target_std: ... and standard deviation: a `Rescaling` layer maps the network's output
                back to the target's own units (`output * std + mean`).

        Returns:
            The model on the raw columns, by name (`model.keras`, SavedModel, TFLite).
        """
        raw = self.raw_inputs()
        encoded = {name: self.lookups[name](tensor) if name in self.lookups else tensor
                   for name, tensor in raw.items()}
        outputs = network(self.featurizer(encoded))
        if (target_mean, target_std) != (0.0, 1.0):
            outputs = keras.layers.Rescaling(scale=target_std, offset=target_mean,
                                             name=TARGET_UNITS)(outputs)
        return keras.Model(raw, outputs, name="model")

    @property
    def float_layers(self) -> tuple[str, ...]:
        """Layers of the composed model that stay float32 in an int8 TFLite file (export.py)."""
        return ("featurizer", TARGET_UNITS, *(lookup.name for lookup in self.lookups.values()))

    def client_schema(self) -> dict[str, Any]:
        """A description of the exported models' inputs for client authors (`schema.json`).

        Every column is one input named `input`, shape (rows, 1): numbers as float32 with NaN for
        missing, text as strings with `[missing]` for missing. `vocabulary` lists the categories
        learned in training (anything else counts as `[UNK]`); `mean` and `variance` are the
        normalization learned for a number.
        """
        inputs = []
        numeric_index = 0
        for column in self.schema.columns:
            entry: dict[str, Any] = {"column": column.name, "input": column.input_name,
                                     "kind": column.kind}
            if column.kind == "numeric":
                mean = np.ravel(keras.ops.convert_to_numpy(self.normalizer.mean))
                variance = np.ravel(keras.ops.convert_to_numpy(self.normalizer.variance))
                entry.update(dtype="float32", missing="NaN", mean=float(mean[numeric_index]),
                             variance=float(variance[numeric_index]))
                numeric_index += 1
            else:
                entry.update(dtype="string", missing=MISSING_CATEGORY,
                             vocabulary=list(self.lookups[column.input_name].get_vocabulary()))
            inputs.append(entry)
        return {"schema": self.schema.to_dict(), "inputs": inputs}

"""What the engine needs to know about a task's kind of input: tables or images.

The engine (`pipeline.py`) is one path for every task; the few steps that depend on the kind
of input are methods here:

* raw features of a split: `{column: values}` from the CSV, or `{"image": uint8 (N, H, W, C)}`;
* preprocessing fitted on the training split: an adapted `TabularPreprocessor`, or an
  `ImagePreprocessor` (nothing to adapt: a uint8 cast before the network);
* scikit-learn baselines: majority, linear and gradient boosting on the columns, or majority,
  logistic regression and an RBF SVM on the pixels;
* extra test plots: none, or a grid of misclassified images.

Streamed CSV shards (`StreamedTableInputs`) are a table whose features are bounded samples; the
one extra step is `training_stream`, which the engine trains on instead of the sample.
Everything else (build, compile, fit, score, export, report) is shared.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import problems
from datasets.image_preprocessing import INPUT_NAME, ImagePreprocessor, ImageSchema
from datasets.preprocessing import TabularPreprocessor
from datasets.streaming import StreamingSplits, TrainingStream
from datasets.tabular import TabularSplits, encode_labels, features_from_frame
from tasks.engine import evaluation, plots
from tasks.engine.outcomes import DataFacts
from tasks.engine.presets import ProblemPreset

SPLITS = ("train", "validation", "test")


class TableInputs:
    """A table's splits as the engine uses them.

    Args:
        splits: The loaded, validated splits.
        max_categories: Most frequent categories kept per categorical column.
    """

    def __init__(self, splits: TabularSplits, max_categories: int):
        self.splits = splits
        self.schema = splits.schema
        self.name = splits.name
        self.max_categories = max_categories
        frames = self._frames()
        self.features = {name: features_from_frame(frame, self.schema, source=f"the {name} split")
                         for name, frame in frames.items()}
        self.ids = {name: encode_labels(frame[self.schema.target], self.schema)
                    for name, frame in frames.items()}

    def _frames(self) -> dict[str, Any]:
        return {"train": self.splits.train, "validation": self.splits.validation,
                "test": self.splits.test}

    def row_counts(self) -> dict[str, int]:
        """Rows per split (`metrics.json`'s `rows`)."""
        return {name: len(values) for name, values in self.ids.items()}

    def describe(self) -> str:
        """The run's first progress line."""
        rows = " / ".join(f"{len(self.ids[name])} {name}" for name in SPLITS)
        return (f"data: {self.name}: {rows} rows; {len(self.schema.numeric)} numeric and "
                f"{len(self.schema.categorical)} categorical features; target "
                f"'{self.schema.target}'")

    def preprocessor(self, train_features: dict[str, np.ndarray]) -> TabularPreprocessor:
        """Preprocessing adapted on `train_features` only."""
        return TabularPreprocessor(self.schema, self.max_categories).adapt(train_features)

    def baselines(self, preset: ProblemPreset, seed: int,
                  with_validation: bool = False) -> dict[str, dict[str, float]]:
        """The problem's baselines, fitted on the training rows, scored on the test rows.

        After a search the network is refit on train + validation, and so are the baselines.
        """
        train = (pd.concat([self.splits.train, self.splits.validation]) if with_validation
                 else self.splits.train)
        return evaluation.score_baselines(
            train, self.splits.test, self.schema, seed, preset.baselines(self.schema, seed),
            preset.baseline_output, preset.score)

    def summary(self, preprocessor: TabularPreprocessor) -> DataFacts:
        """The report's data facts."""
        train = self.splits.train[self.schema.target]
        return DataFacts(
            target=self.schema.target, labels=self.schema.labels,
            target_range=([float(train.min()), float(train.max())]
                          if not problems.get(self.schema.problem).classifies else None),
            features=f"{len(self.schema.numeric)} numeric, {len(self.schema.categorical)} "
                     f"categorical ({preprocessor.width} model inputs after preprocessing)")

    def extra_plots(self, output: np.ndarray, predicted: np.ndarray, plot_dir: Path) -> list[str]:
        """Input-specific test plots (none for tables)."""
        return []


class StreamedTableInputs(TableInputs):
    """Streamed CSV shards as the engine uses them (see `datasets/streaming.py`).

    `features` and `ids` are the bounded samples held in memory, each drawn uniformly over all
    rows of its split: `sample_rows` training rows (preprocessing, baselines, int8 calibration)
    and `held_out_rows` validation and test rows (early stopping, scores, export checks).
    Training itself streams every training row (`training_stream`).

    Args:
        splits: From `datasets.streaming.load_streaming`.
        max_categories: Most frequent categories kept per categorical column.
    """

    splits: StreamingSplits

    def row_counts(self) -> dict[str, int]:
        """Streamed training rows, held-out rows in memory, and the training sample's size."""
        return {"train": self.splits.counts.train, "validation": len(self.ids["validation"]),
                "test": len(self.ids["test"]), "train_sample": len(self.ids["train"])}

    def describe(self) -> str:
        """The run's first progress line."""
        splits, counts = self.splits, self.splits.counts
        return (f"data: {self.name}: streaming {len(splits.files)} file(s), {counts.lines:,} rows "
                f"({counts.train:,} train / {counts.validation:,} validation / "
                f"{counts.test:,} test); in memory: a sample of {len(self.ids['train']):,} "
                f"training rows, {len(self.ids['validation']):,} validation and "
                f"{len(self.ids['test']):,} test rows; {len(self.schema.numeric)} numeric and "
                f"{len(self.schema.categorical)} categorical features; target "
                f"'{self.schema.target}'")

    def streaming_facts(self) -> dict[str, Any]:
        """The `streaming` section of metrics.json: what was streamed, what was sampled."""
        splits, counts = self.splits, self.splits.counts
        return {
            "pattern": splits.pattern, "files": len(splits.files), "rows": counts.lines,
            "rows_by_split": {"train": counts.train, "validation": counts.validation,
                              "test": counts.test},
            "rows_without_target": counts.missing_target,
            "sample_rows": len(self.ids["train"]), "held_out_rows": {
                "validation": len(self.ids["validation"]), "test": len(self.ids["test"])},
            "scanned_lines": splits.scanned_lines, "load_seconds": splits.seconds,
            "fitted_on_sample": ["schema", "preprocessing", "baselines", "int8 calibration"],
            "test_data": splits.test_source,
        }

    def summary(self, preprocessor: TabularPreprocessor) -> DataFacts:
        """The report's data facts, with what was streamed and what was sampled."""
        counts = self.splits.counts
        return dataclasses.replace(super().summary(preprocessor), streaming=(
            f"{counts.train:,} training rows streamed from {len(self.splits.files)} file(s) "
            f"(`{self.splits.pattern}`) every epoch; the schema, preprocessing statistics, "
            f"baselines and int8 calibration come from a seeded uniform sample of "
            f"{len(self.ids['train']):,} of them; validation and test are seeded uniform "
            f"samples of {len(self.ids['validation']):,} and {len(self.ids['test']):,} of "
            "all their rows"))

    def training_stream(self, preprocessor: TabularPreprocessor, target_mean: float = 0.0,
                        target_std: float = 1.0) -> TrainingStream:
        """Every training row, preprocessed by `preprocessor` (adapted on the sample)."""
        return TrainingStream(self.splits, preprocessor.transform_tensors, target_mean,
                              target_std)


class ImageInputs:
    """An image dataset's splits as the engine uses them.

    Args:
        splits: A `datasets.images.ImageSplits`.
    """

    def __init__(self, splits: Any):
        self.splits = splits
        self.name = splits.name
        self.schema = ImageSchema(labels=list(splits.labels), image_size=splits.image_size,
                                  channels=splits.channels)
        sets = {name: getattr(splits, name) for name in SPLITS}
        self.features = {name: {INPUT_NAME: images.images} for name, images in sets.items()}
        self.ids = {name: images.labels.astype("int64") for name, images in sets.items()}

    def row_counts(self) -> dict[str, int]:
        """Images per split (`metrics.json`'s `rows`)."""
        return {name: len(values) for name, values in self.ids.items()}

    def describe(self) -> str:
        """The run's first progress line."""
        height, width = self.schema.image_size
        rows = " / ".join(f"{len(self.ids[name])} {name}" for name in SPLITS)
        kind = "grayscale" if self.schema.channels == 1 else "RGB"
        skipped = (f"; skipped {len(self.splits.skipped)} unreadable files"
                   if self.splits.skipped else "")
        return (f"data: {self.name}: {rows} images; {height}x{width} {kind}; "
                f"{len(self.schema.labels)} classes{skipped}")

    def preprocessor(self, train_features: dict[str, np.ndarray]) -> ImagePreprocessor:
        """Nothing to adapt: rescaling and augmentation are layers of the network."""
        return ImagePreprocessor(self.schema)

    def baselines(self, preset: ProblemPreset, seed: int,
                  with_validation: bool = False) -> dict[str, dict[str, float]]:
        """Pixel baselines, fitted on the training images, scored on the test images.

        After a search the network is refit on train + validation, and so are the baselines.
        """
        splits = ("train", "validation") if with_validation else ("train",)
        return evaluation.score_image_baselines(
            np.concatenate([self.features[name][INPUT_NAME] for name in splits]),
            np.concatenate([self.ids[name] for name in splits]),
            self.features["test"][INPUT_NAME], self.ids["test"], seed, preset.score)

    def summary(self, preprocessor: ImagePreprocessor) -> DataFacts:
        """The report's data facts."""
        height, width = self.schema.image_size
        return DataFacts(
            target=self.schema.target, labels=self.schema.labels, target_range=None,
            features=f"{height}x{width} pixels, {self.schema.channels} channel(s), taken as raw "
                     "uint8" + (f"; {len(self.splits.skipped)} unreadable files skipped"
                                if self.splits.skipped else ""))

    def extra_plots(self, output: np.ndarray, predicted: np.ndarray, plot_dir: Path) -> list[str]:
        """A grid of misclassified test images."""
        drawn = plots.plot_misclassified(self.features["test"][INPUT_NAME], self.ids["test"],
                                          predicted, output, self.schema.labels,
                                          plot_dir / "misclassified.png")
        return ["plots/misclassified.png"] if drawn else []


def inputs_for(splits: Any, inputs: str, max_categories: int) -> TableInputs | ImageInputs:
    """Wraps loaded splits for the engine (`inputs` is `TaskConfig.inputs`)."""
    if inputs == "images":
        return ImageInputs(splits)
    if isinstance(splits, StreamingSplits):
        return StreamedTableInputs(splits, max_categories)
    return TableInputs(splits, max_categories)

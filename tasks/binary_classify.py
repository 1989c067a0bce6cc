"""Binary classification of a table: does this row belong to the positive class?

Default data: `smartwatch` (does a person buy a smartwatch, from height, age, salary, daily
travel and occupation). Any CSV works: `--data my.csv --target column`, with numeric and text
columns, missing values, and any two label values (yes/no, 0/1, ...). Predictions come back in
your own label values. Each run reports scikit-learn baselines on the same split and exports a
Keras model, a SavedModel and a TFLite file, each checked against the Keras model.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks import cli
from tasks.config import ModelConfig, TaskConfig


def default_config() -> TaskConfig:
    """The binary classification template: an MLP with light dropout and early stopping."""
    return TaskConfig(
        task="binary_classify",
        problem="binary",
        model=ModelConfig(name="mlp", params={"hidden_units": [64, 32], "dropout_rate": 0.1}),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    return cli.main(default_config, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())

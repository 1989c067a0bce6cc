"""The problem types, declared once: what differs between binary, multiclass and regression.

Every package reads these declarations instead of comparing problem names: `datasets` (labels,
stratified splits, numeric targets), `zoo.heads` (the output layer) and `tasks` (schema checks,
training targets, predictions, the report). `tasks.engine.presets` adds what a problem needs to
train and be scored (loss, scikit-learn scores, baselines). Adding a problem means a `Problem`
here, a preset there; `tests/test_problem_types.py` keeps name comparisons out of other modules.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """What a problem type means for data, model output and predictions.

    Attributes:
        name: The name configs, `schema.json` and `metrics.json` use.
        classifies: The target is a class label: the schema holds the class labels, splits are
            stratified by class, targets map to class ids. Otherwise the target is a number,
            checked as one (finite, not text).
        per_class_outputs: The model outputs one probability per class (a softmax) and its loss
            takes class ids; otherwise it outputs one value per row.
        activation: The output layer's activation (`None`: linear).
        min_classes: The fewest class labels a schema of this problem holds.
        max_classes: The most class labels (`None`: no fixed limit).
        standardize_target: Train on `(y - mean) / std` of the training targets; the exported
            model rescales its output back to the target's units.
        task: The task template that solves this problem (named in messages).
    """

    name: str
    classifies: bool
    per_class_outputs: bool
    activation: str | None
    min_classes: int
    max_classes: int | None
    standardize_target: bool
    task: str

    @property
    def positive_class(self) -> bool:
        """Whether the one output is the probability of a positive class (the last label)."""
        return self.classifies and not self.per_class_outputs

    def output_units(self, num_classes: int | None) -> int:
        """Units of the output layer: one per class for a softmax, else one.

        Example:
            >>> MULTICLASS.output_units(4), BINARY.output_units(2)
            (4, 1)
        """
        return num_classes if self.per_class_outputs else 1

    def num_classes(self, labels: int) -> int | None:
        """A builder's `num_classes` argument for a schema with `labels` class labels."""
        return labels if self.per_class_outputs else None

    def accepts_classes(self, count: int) -> bool:
        """Whether a schema of this problem may hold `count` class labels."""
        return self.min_classes <= count and (self.max_classes is None
                                              or count <= self.max_classes)


BINARY = Problem(name="binary", classifies=True, per_class_outputs=False, activation="sigmoid",
                 min_classes=2, max_classes=2, standardize_target=False,
                 task="tasks.binary_classify")
MULTICLASS = Problem(name="multiclass", classifies=True, per_class_outputs=True,
                     activation="softmax", min_classes=2, max_classes=None,
                     standardize_target=False, task="tasks.multiclass_classify")
REGRESSION = Problem(name="regression", classifies=False, per_class_outputs=False,
                     activation=None, min_classes=0, max_classes=0, standardize_target=True,
                     task="tasks.regression")

PROBLEMS: dict[str, Problem] = {problem.name: problem
                                for problem in (BINARY, MULTICLASS, REGRESSION)}
NAMES: tuple[str, ...] = tuple(PROBLEMS)
# Image tasks classify class folders with a softmax over any number of classes, two included.
IMAGE_PROBLEM = MULTICLASS


def get(name: str) -> Problem:
    """Returns the declaration of problem `name`.

    Raises:
        ValueError: For an unknown name, listing the choices.

    Example:
        >>> get("regression").classifies
        False
    """
    if not isinstance(name, str) or name not in PROBLEMS:
        raise ValueError(f"Unknown problem {name!r}; choose one of {', '.join(NAMES)}. "
                         f"Received: problem={name!r}")
    return PROBLEMS[name]

"""Scores and baselines with scikit-learn, on the same split and the same predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import SVC

from datasets.tabular import TabularSchema, encode_labels, features_from_frame


def binary_scores(y_true: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """Binary metrics from the probability of the positive class.

    Args:
        y_true: Class ids, 1 = positive.
        output: Probability of the positive class, shape (rows,) or (rows, 1).

    Returns:
        `accuracy, precision, recall, f1, roc_auc` (threshold 0.5 for the first four).
    """
    probability = np.asarray(output, dtype="float64").reshape(-1)
    predicted = (probability >= 0.5).astype(int)
    scores = {
        "accuracy": metrics.accuracy_score(y_true, predicted),
        "precision": metrics.precision_score(y_true, predicted, zero_division=0),
        "recall": metrics.recall_score(y_true, predicted, zero_division=0),
        "f1": metrics.f1_score(y_true, predicted, zero_division=0),
        "roc_auc": (metrics.roc_auc_score(y_true, probability)
                    if len(np.unique(y_true)) == 2 else float("nan")),
    }
    return {name: float(value) for name, value in scores.items()}


def binary_labels(output: np.ndarray) -> np.ndarray:
    """Class ids from the positive-class probability (threshold 0.5)."""
    return (np.asarray(output).reshape(-1) >= 0.5).astype(int)


def multiclass_labels(output: np.ndarray) -> np.ndarray:
    """Class ids from class probabilities (the most probable class)."""
    return np.asarray(output).argmax(axis=1)


def multiclass_scores(y_true: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """`accuracy` and `macro_f1` (every class weighs the same) from class probabilities."""
    predicted = multiclass_labels(output)
    return {"accuracy": float(metrics.accuracy_score(y_true, predicted)),
            "macro_f1": float(metrics.f1_score(y_true, predicted, average="macro",
                                               labels=np.arange(np.shape(output)[1]),
                                               zero_division=0))}


def per_class_table(y_true: np.ndarray, output: np.ndarray, labels: list[Any]) -> list[dict]:
    """Precision, recall, F1 and support of every class (scikit-learn's classification report)."""
    report = metrics.classification_report(
        y_true, multiclass_labels(output), labels=list(range(len(labels))),
        target_names=[str(label) for label in labels], output_dict=True, zero_division=0)
    return [{"class": str(label), **{key: float(value) for key, value in
                                      report[str(label)].items()}} for label in labels]


def regression_scores(y_true: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """`rmse`, `mae` and `r2` in the target's own units."""
    predicted = np.asarray(output, dtype="float64").reshape(-1)
    return {"rmse": float(np.sqrt(metrics.mean_squared_error(y_true, predicted))),
            "mae": float(metrics.mean_absolute_error(y_true, predicted)),
            "r2": float(metrics.r2_score(y_true, predicted))}


def identity(output: np.ndarray) -> np.ndarray:
    """Regression outputs are already the predictions."""
    return np.asarray(output).reshape(-1)


def _baseline_frame(frame: pd.DataFrame, schema: TabularSchema) -> pd.DataFrame:
    """The feature columns as the model sees them: float numbers, category strings."""
    features = features_from_frame(frame, schema)
    return pd.DataFrame({column.name: features[column.input_name].reshape(-1)
                         for column in schema.columns})


def _linear_preprocessing(schema: TabularSchema) -> ColumnTransformer:
    return ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="mean", add_indicator=True),
                                  StandardScaler()), schema.numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), schema.categorical),
    ])


def _tree_preprocessing(schema: TabularSchema) -> ColumnTransformer:
    # Categories as ordinal codes (unknown and missing -> NaN, which the trees handle natively).
    return ColumnTransformer([
        ("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                       encoded_missing_value=np.nan), schema.categorical),
        ("numeric", "passthrough", schema.numeric),
    ])


def classification_baselines(schema: TabularSchema, seed: int) -> dict[str, Any]:
    """The scikit-learn baselines every binary and multiclass run reports."""
    categorical = list(range(len(schema.categorical)))
    return {
        "majority": DummyClassifier(strategy="most_frequent"),
        "logistic_regression": Pipeline([
            ("preprocess", _linear_preprocessing(schema)),
            ("model", LogisticRegression(max_iter=2000)),
        ]),
        "hist_gradient_boosting": Pipeline([
            ("preprocess", _tree_preprocessing(schema)),
            ("model", HistGradientBoostingClassifier(
                categorical_features=categorical or None, random_state=seed)),
        ]),
    }


def regression_baselines(schema: TabularSchema, seed: int) -> dict[str, Any]:
    """The scikit-learn baselines every regression run reports."""
    categorical = list(range(len(schema.categorical)))
    return {
        "mean": DummyRegressor(strategy="mean"),
        "ridge": Pipeline([
            ("preprocess", _linear_preprocessing(schema)),
            ("model", Ridge(alpha=1.0)),
        ]),
        "hist_gradient_boosting": Pipeline([
            ("preprocess", _tree_preprocessing(schema)),
            ("model", HistGradientBoostingRegressor(
                categorical_features=categorical or None, random_state=seed)),
        ]),
    }


def class_probabilities(estimator: Any, frame: pd.DataFrame) -> np.ndarray:
    """The fitted classifier's probability of every class id (columns in class-id order)."""
    return estimator.predict_proba(frame)


def regression_predictions(estimator: Any, frame: pd.DataFrame) -> np.ndarray:
    """The fitted regressor's predictions."""
    return estimator.predict(frame)


def positive_probability(estimator: Any, frame: pd.DataFrame) -> np.ndarray:
    """The fitted classifier's probability of class id 1."""
    return estimator.predict_proba(frame)[:, 1]


def score_baselines(
    train: pd.DataFrame,
    test: pd.DataFrame,
    schema: TabularSchema,
    seed: int,
    baselines: dict[str, Any],
    output_fn: Any,
    score_fn: Any,
) -> dict[str, dict[str, float]]:
    """Fits each baseline on the training split and scores it on the test split.

    Baselines see exactly the rows the network's weights were fitted on (not the validation
    rows, which the network uses only for early stopping; with them after a search, whose refit
    trains on train + validation), and are scored with the same metric function on the same
    test rows.
    """
    return fit_and_score(
        _baseline_frame(train, schema), encode_labels(train[schema.target], schema),
        _baseline_frame(test, schema), encode_labels(test[schema.target], schema),
        baselines, output_fn, score_fn)


def fit_and_score(x_train: Any, y_train: np.ndarray, x_test: Any, y_test: np.ndarray,
                  baselines: dict[str, Any], output_fn: Any,
                  score_fn: Any) -> dict[str, dict[str, float]]:
    """Fits each baseline on `x_train` and scores its output on `x_test` with `score_fn`."""
    results = {}
    for name, estimator in baselines.items():
        estimator.fit(x_train, y_train)
        results[name] = score_fn(y_test, output_fn(estimator, x_test))
    return results


# Image baselines learn from at most this many training images (seeded sample): a kernel SVM on
# pixels grows quadratically, and the point of a baseline is a reference, not a second model.
IMAGE_BASELINE_ROWS = 5000


def image_baselines(seed: int, smallest_class: int = 5) -> dict[str, Any]:
    """Classifiers on raw pixels: the majority class, logistic regression, an RBF-kernel SVM.

    The SVM is the classic reference for small images (about 0.98 on `digits` in 5-fold CV). Its
    probabilities are calibrated by cross-validation over up to 5 folds, no more than the
    smallest class has training images (a folder of 5 images per class trains on 4 of each); a
    class with a single training image leaves the SVM out.

    Args:
        seed: Unused (the baselines are deterministic); kept for symmetry with the tables'.
        smallest_class: Training images of the rarest class.
    """
    baselines = {
        "majority": DummyClassifier(strategy="most_frequent"),
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    }
    if smallest_class >= 2:
        # Platt-calibrated probabilities, as scikit-learn >= 1.9 recommends over probability=True.
        baselines["svm_rbf"] = make_pipeline(StandardScaler(), CalibratedClassifierCV(
            SVC(), cv=min(5, smallest_class), ensemble=False))
    return baselines


def score_image_baselines(train_images: np.ndarray, train_ids: np.ndarray,
                          test_images: np.ndarray, test_ids: np.ndarray, seed: int,
                          score_fn: Any) -> dict[str, dict[str, float]]:
    """Fits `image_baselines` on flattened training pixels and scores them on the test images."""
    rows = np.arange(len(train_ids))
    if len(rows) > IMAGE_BASELINE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, IMAGE_BASELINE_ROWS,
                                                          replace=False))

    def flat(images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1).astype("float32")

    return fit_and_score(flat(train_images[rows]), train_ids[rows], flat(test_images), test_ids,
                         image_baselines(seed, int(np.bincount(train_ids[rows]).min())),
                         class_probabilities, score_fn)

"""Tests of `datasets.registry`: named datasets and CSV paths -> validated splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.errors import InputError
from datasets.registry import load_frame, load_tabular, tabular_names


def _write_csv(path, rows: int = 60, seed: int = 0, labels=("no", "yes")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "id": np.arange(rows) + 1000 * seed,
        "age": rng.integers(18, 80, rows),
        "job": rng.choice(["nurse", "pilot", "chef"], rows),
        "bought": [labels[i % len(labels)] for i in range(rows)],
    })
    frame.to_csv(path, index=False)
    return frame


def test_breast_cancer_by_name():
    splits = load_tabular("breast_cancer", "binary", seed=0)
    schema = splits.schema
    assert splits.name == "breast_cancer"
    assert schema.target == "diagnosis"
    assert schema.problem == "binary"
    assert schema.labels == ["benign", "malignant"]
    assert schema.labels[1] == "malignant"
    assert len(schema.columns) == 30
    assert schema.numeric == [column.name for column in schema.columns]
    assert all(column.input_name.isidentifier() for column in schema.columns)
    sizes = [len(part) for part in (splits.train, splits.validation, splits.test)]
    assert sum(sizes) == 569
    assert all(size > 0 for size in sizes)
    assert set(splits.test["diagnosis"]) == {"benign", "malignant"}


def test_breast_cancer_positive_label_can_be_overridden():
    splits = load_tabular("breast_cancer", "binary", positive_label="benign")
    assert splits.schema.labels == ["malignant", "benign"]


def test_unknown_bare_name_lists_named_datasets():
    with pytest.raises(InputError, match="'breast_cancr'") as info:
        load_tabular("breast_cancr", "binary")
    message = str(info.value)
    assert "neither a dataset name nor an existing file" in message
    for name in tabular_names("binary"):
        assert name in message
    assert "breast_cancer" in message
    assert "CSV path" in message


def test_missing_csv_path_says_not_found(tmp_path):
    path = tmp_path / "missing.csv"
    with pytest.raises(InputError, match="not found") as info:
        load_tabular(str(path), "binary", target="bought")
    assert str(path) in str(info.value)


def test_csv_path_with_target(tmp_path):
    path = tmp_path / "shop.csv"
    frame = _write_csv(path)
    splits = load_tabular(str(path), "binary", target="bought", seed=0)
    assert splits.name == "shop"
    assert splits.schema.target == "bought"
    assert splits.schema.labels == ["no", "yes"]
    assert {c.name: c.kind for c in splits.schema.columns} == {
        "id": "numeric", "age": "numeric", "job": "categorical"}
    ids = [set(part["id"]) for part in (splits.train, splits.validation, splits.test)]
    assert ids[0] | ids[1] | ids[2] == set(frame["id"])
    assert sum(len(part) for part in ids) == len(frame)


def test_csv_path_is_seeded(tmp_path):
    path = tmp_path / "shop.csv"
    _write_csv(path)
    first = load_tabular(str(path), "binary", target="bought", seed=1)
    again = load_tabular(str(path), "binary", target="bought", seed=1)
    assert first.test["id"].tolist() == again.test["id"].tolist()
    assert first.train["id"].tolist() == again.train["id"].tolist()


def test_csv_path_without_target_lists_columns(tmp_path):
    path = tmp_path / "shop.csv"
    _write_csv(path)
    with pytest.raises(InputError, match="no --target") as info:
        load_tabular(str(path), "binary")
    message = str(info.value)
    assert "shop.csv" in message
    assert "id, age, job, bought" in message


def test_csv_path_with_wrong_target_lists_columns(tmp_path):
    path = tmp_path / "shop.csv"
    _write_csv(path)
    with pytest.raises(InputError, match="'buys'") as info:
        load_tabular(str(path), "binary", target="buys")
    assert "id, age, job, bought" in str(info.value)


def test_csv_rows_without_target_are_dropped(tmp_path, capsys):
    path = tmp_path / "gaps.csv"
    frame = _write_csv(path)
    frame.loc[[3, 9, 20], "bought"] = None
    frame.to_csv(path, index=False)
    splits = load_tabular(str(path), "binary", target="bought")
    total = len(splits.train) + len(splits.validation) + len(splits.test)
    assert total == len(frame) - 3
    assert "dropped 3 row(s)" in capsys.readouterr().err


def test_test_data_is_the_test_split(tmp_path):
    train_path, test_path = tmp_path / "train.csv", tmp_path / "holdout.csv"
    train_frame = _write_csv(train_path, rows=40, seed=0)
    test_frame = _write_csv(test_path, rows=12, seed=1)
    splits = load_tabular(str(train_path), "binary", target="bought", test_data=str(test_path),
                          validation_fraction=0.25, seed=0)
    assert splits.test["id"].tolist() == test_frame["id"].tolist()
    assert list(splits.test.index) == list(range(12))
    fit_ids = set(splits.train["id"]) | set(splits.validation["id"])
    assert fit_ids == set(train_frame["id"])
    assert len(splits.train) + len(splits.validation) == 40
    assert abs(len(splits.validation) - 10) <= 1


def test_test_data_with_unseen_class(tmp_path):
    train_path, test_path = tmp_path / "train.csv", tmp_path / "holdout.csv"
    _write_csv(train_path, rows=40, seed=0)
    _write_csv(test_path, rows=12, seed=1, labels=("no", "yes", "maybe"))
    with pytest.raises(InputError, match="not seen in training") as info:
        load_tabular(str(train_path), "binary", target="bought", test_data=str(test_path))
    message = str(info.value)
    assert "maybe" in message
    assert "holdout.csv" in message
    assert "training classes: no, yes" in message


def test_test_data_without_target(tmp_path):
    train_path, test_path = tmp_path / "train.csv", tmp_path / "holdout.csv"
    _write_csv(train_path, rows=40, seed=0)
    _write_csv(test_path, rows=12, seed=1).drop(columns="bought").to_csv(test_path, index=False)
    with pytest.raises(InputError, match="'bought'") as info:
        load_tabular(str(train_path), "binary", target="bought", test_data=str(test_path))
    message = str(info.value)
    assert "holdout.csv" in message
    assert "id, age, job" in message


def test_named_dataset_for_another_problem():
    with pytest.raises(InputError, match="breast_cancer") as info:
        load_frame("breast_cancer", "regression")
    message = str(info.value)
    assert "binary dataset" in message
    assert "regression problems" in message
    assert "python -m tasks.binary_classify" in message


def test_load_frame_csv_path(tmp_path):
    path = tmp_path / "shop.csv"
    frame = _write_csv(path, rows=5)
    loaded, source, entry = load_frame(str(path), "binary")
    assert source == "shop.csv"
    assert entry is None
    pd.testing.assert_frame_equal(loaded, frame)


def test_tabular_names_filters_by_problem():
    assert "breast_cancer" in tabular_names("binary")
    assert "breast_cancer" not in tabular_names("regression")
    assert tabular_names() == sorted(tabular_names())


@pytest.mark.parametrize(("name", "problem", "target", "labels"), [
    ("wine", "multiclass", "cultivar", ["class_0", "class_1", "class_2"]),
    ("iris", "multiclass", "species", ["setosa", "versicolor", "virginica"]),
    ("diabetes", "regression", "progression", []),
    ("store_sales", "regression", "monthly_sales", []),
])
def test_named_datasets_of_every_problem(name, problem, target, labels):
    splits = load_tabular(name, problem, seed=0)
    assert splits.schema.target == target
    assert splits.schema.labels == labels
    assert len(splits.train) > len(splits.test) > 0

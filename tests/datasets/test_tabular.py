"""Tests of `datasets.tabular`: reading, schema inference, label encoding, features, splits."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from common.errors import InputError
from datasets.tabular import (
    MISSING_CATEGORY,
    Column,
    TabularSchema,
    drop_missing_targets,
    encode_labels,
    features_from_frame,
    infer_schema,
    read_csv,
    split_frame,
)


def _frame(rows: int = 20, seed: int = 0) -> pd.DataFrame:
    """A small mixed frame: a numeric, a float, a text feature and a yes/no target."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(18, 80, rows),
        "salary": rng.normal(50_000, 10_000, rows).round(2),
        "city": rng.choice(["paris", "rome", "oslo"], rows),
        "bought": rng.choice(["yes", "no"], rows),
    })


def _binary_schema(labels: list) -> TabularSchema:
    return TabularSchema(target="y", problem="binary",
                         columns=[Column("x", "numeric", "x")], labels=labels)


# read_csv -----------------------------------------------------------------------------------


def test_read_csv_reads_rows_and_strips_column_names(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(" age , city  ,bought \n30,paris,yes\n41, rome,no\n")
    frame = read_csv(path)
    assert list(frame.columns) == ["age", "city", "bought"]
    assert len(frame) == 2
    assert frame["city"].tolist() == ["paris", "rome"]
    assert frame["age"].tolist() == [30, 41]


def test_read_csv_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(InputError, match="not found") as info:
        read_csv(path)
    assert str(path) in str(info.value)
    assert "CSV" in str(info.value)


def test_read_csv_folder(tmp_path):
    with pytest.raises(InputError, match="folder") as info:
        read_csv(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_read_csv_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty") as info:
        read_csv(path)
    assert str(path) in str(info.value)
    assert "header row" in str(info.value)


def test_read_csv_header_only(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("age,city,bought\n")
    with pytest.raises(InputError, match="no data rows") as info:
        read_csv(path)
    message = str(info.value)
    assert str(path) in message
    assert "age, city, bought" in message


def test_read_csv_row_with_more_fields_than_the_header(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(InputError, match="has 4 fields, but the header has 2") as info:
        read_csv(path)
    message = str(info.value)
    assert f"line 3 of '{path}'" in message
    assert "quote values" in message
    assert "\n" not in message


def test_read_csv_not_text(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"a,b\n\xff\xfe\xfa,\xc3\x28\n")
    with pytest.raises(InputError, match=r"is not UTF-8 text \(byte 0xff") as info:
        read_csv(path)
    assert str(path) in str(info.value)
    assert "Save it as UTF-8" in str(info.value)


# infer_schema: kinds ------------------------------------------------------------------------


def test_infer_schema_kinds():
    frame = _frame()
    frame["member"] = [True, False] * 10
    schema = infer_schema(frame, "bought", "binary")
    kinds = {column.name: column.kind for column in schema.columns}
    assert kinds == {"age": "numeric", "salary": "numeric", "city": "categorical",
                     "member": "categorical"}
    assert schema.numeric == ["age", "salary"]
    assert schema.categorical == ["city", "member"]
    assert schema.target == "bought"
    assert schema.problem == "binary"


def test_infer_schema_keeps_column_order_and_skips_target():
    frame = _frame()[["bought", "city", "age"]]
    schema = infer_schema(frame, "bought", "binary")
    assert [column.name for column in schema.columns] == ["city", "age"]


def test_infer_schema_categorical_override():
    frame = _frame()
    schema = infer_schema(frame, "bought", "binary", categorical=["age"])
    kinds = {column.name: column.kind for column in schema.columns}
    assert kinds["age"] == "categorical"
    assert kinds["salary"] == "numeric"


def test_infer_schema_unknown_categorical_name():
    frame = _frame()
    with pytest.raises(InputError, match="--categorical") as info:
        infer_schema(frame, "bought", "binary", source="data.csv", categorical=["agee"])
    message = str(info.value)
    assert "agee" in message
    assert "data.csv" in message
    assert "age, salary, city, bought" in message


def test_infer_schema_target_is_not_a_categorical_feature():
    with pytest.raises(InputError, match="bought"):
        infer_schema(_frame(), "bought", "binary", categorical=["bought"])


def test_infer_schema_mostly_text_column_is_categorical():
    frame = _frame()
    frame["code"] = ["1", "2", "a", "b", "c"] * 4
    schema = infer_schema(frame, "bought", "binary")
    assert {c.name: c.kind for c in schema.columns}["code"] == "categorical"


def test_infer_schema_numeric_column_with_junk_names_line(tmp_path):
    frame = _frame()
    values = [str(v) for v in range(19)]
    bad_row = 7
    values.insert(bad_row, "abc")
    frame["height"] = values[:20]
    path = tmp_path / "people.csv"
    frame.to_csv(path, index=False)
    lines = path.read_text().splitlines()
    # The file's own 1-based line holding the junk value.
    line = next(i for i, text in enumerate(lines, start=1) if text.endswith(",abc"))
    assert line == bad_row + 2
    with pytest.raises(InputError) as info:
        infer_schema(read_csv(path), "bought", "binary", source=path.name)
    message = str(info.value)
    assert "'height'" in message
    assert "'abc'" in message
    assert f"line {line} of people.csv" in message
    assert "--categorical height" in message
    assert "1 such value)" in message


def test_infer_schema_numeric_junk_counts_and_row_hint_without_csv_source():
    frame = _frame()
    values = [str(v) for v in range(20)]
    values[3], values[11] = "n/a", "?"
    frame["height"] = values
    with pytest.raises(InputError) as info:
        infer_schema(frame, "bought", "binary", source="my table")
    message = str(info.value)
    assert "'n/a'" in message
    assert "row 4" in message
    assert "2 such values" in message
    assert "line" not in message


def test_infer_schema_junk_column_forced_categorical_is_accepted():
    frame = _frame()
    frame["height"] = [str(v) for v in range(19)] + ["abc"]
    schema = infer_schema(frame, "bought", "binary", categorical=["height"])
    assert {c.name: c.kind for c in schema.columns}["height"] == "categorical"


def test_infer_schema_drops_all_missing_column_with_warning(capsys):
    frame = _frame()
    frame["empty"] = np.nan
    schema = infer_schema(frame, "bought", "binary", source="data.csv")
    assert "empty" not in [column.name for column in schema.columns]
    err = capsys.readouterr().err
    assert "warning" in err
    assert "'empty'" in err
    assert "data.csv" in err


def test_infer_schema_no_feature_columns():
    frame = pd.DataFrame({"only": [np.nan] * 6, "bought": ["yes", "no"] * 3})
    with pytest.raises(InputError, match="no feature columns") as info:
        infer_schema(frame, "bought", "binary", source="data.csv")
    assert "data.csv" in str(info.value)
    assert "'bought'" in str(info.value)


def test_infer_schema_missing_target_lists_columns():
    with pytest.raises(InputError, match="'buys'") as info:
        infer_schema(_frame(), "buys", "binary", source="data.csv")
    message = str(info.value)
    assert "age, salary, city, bought" in message
    assert "--target" in message
    assert "data.csv" in message


# infer_schema: targets and labels -----------------------------------------------------------


def test_infer_schema_one_class_target():
    frame = _frame()
    frame["bought"] = "yes"
    with pytest.raises(InputError, match="one class") as info:
        infer_schema(frame, "bought", "binary")
    message = str(info.value)
    assert "'yes'" in message
    assert "20 rows" in message


def test_infer_schema_binary_with_three_classes():
    frame = _frame()
    frame["bought"] = ["yes", "no", "maybe", "no"] * 5
    with pytest.raises(InputError, match="3 classes") as info:
        infer_schema(frame, "bought", "binary")
    message = str(info.value)
    assert "'maybe'" in message
    assert "tasks.multiclass_classify" in message


@pytest.mark.parametrize("values, expected", [
    (["yes", "no"], ["no", "yes"]),
    (["no", "yes"], ["no", "yes"]),
    (["Yes", "No"], ["No", "Yes"]),
    (["TRUE", "FALSE"], ["FALSE", "TRUE"]),
    ([1, 0], [0, 1]),
    ([0, 1], [0, 1]),
    (["cat", "dog"], ["cat", "dog"]),
    (["dog", "cat"], ["cat", "dog"]),
    (["positive", "negative"], ["negative", "positive"]),
])
def test_binary_label_order(values, expected):
    frame = _frame()
    frame["bought"] = values * 10
    assert infer_schema(frame, "bought", "binary").labels == expected


def test_binary_labels_from_floats_are_plain_ints():
    frame = _frame()
    frame["bought"] = [0.0, 1.0] * 10
    labels = infer_schema(frame, "bought", "binary").labels
    assert labels == [0, 1]
    assert all(type(label) is int for label in labels)


def test_binary_labels_from_numpy_ints_are_plain_ints():
    frame = _frame()
    frame["bought"] = np.array([1, 0] * 10, dtype="int64")
    labels = infer_schema(frame, "bought", "binary").labels
    assert all(type(label) is int for label in labels)


def test_binary_labels_ignore_missing_targets():
    frame = _frame()
    frame["bought"] = ["yes", "no", None, "no"] * 5
    assert infer_schema(frame, "bought", "binary").labels == ["no", "yes"]


def test_positive_label_override():
    frame = _frame()
    frame["bought"] = ["yes", "no"] * 10
    assert infer_schema(frame, "bought", "binary", positive_label="no").labels == ["yes", "no"]
    frame["bought"] = ["cat", "dog"] * 10
    assert infer_schema(frame, "bought", "binary", positive_label="cat").labels == ["dog", "cat"]


def test_positive_label_override_matches_numbers_by_text():
    frame = _frame()
    frame["bought"] = [0, 1] * 10
    assert infer_schema(frame, "bought", "binary", positive_label="0").labels == [1, 0]


def test_bad_positive_label():
    frame = _frame()
    with pytest.raises(InputError, match="'maybe'") as info:
        infer_schema(frame, "bought", "binary", positive_label="maybe")
    message = str(info.value)
    assert "'bought'" in message
    assert "'no', 'yes'" in message


def test_input_names_are_safe_and_unique():
    frame = pd.DataFrame({
        "annual salary ($)": [1.0, 2.0, 3.0, 4.0],
        "annual-salary ($)": [1, 2, 3, 4],
        "2nd job": ["a", "b", "a", "b"],
        "Age": [1, 2, 3, 4],
        "age": [1, 2, 3, 4],
        "plain_name": [1, 2, 3, 4],
        "y": ["a", "b"] * 2,
    })
    schema = infer_schema(frame, "y", "binary")
    names = [column.input_name for column in schema.columns]
    assert len(names) == len(frame.columns) - 1
    for name in names:
        assert name.isidentifier(), name
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name), name
    # Unique even ignoring case (file systems and some runtimes fold case).
    assert len({name.lower() for name in names}) == len(names)
    by_column = {column.name: column.input_name for column in schema.columns}
    assert by_column["plain_name"] == "plain_name"
    assert by_column["Age"] == "Age"
    assert by_column["annual salary ($)"].startswith("annual_salary")
    assert by_column["annual-salary ($)"].startswith("annual_salary")
    assert "2nd_job" in by_column["2nd job"]


def test_regression_target_must_be_numeric():
    frame = _frame()
    frame["price"] = [str(v) for v in range(19)] + ["cheap"]
    with pytest.raises(InputError, match="numeric target") as info:
        infer_schema(frame.drop(columns="bought"), "price", "regression", source="d.csv")
    message = str(info.value)
    assert "'price'" in message
    assert "'cheap'" in message
    assert "classification" in message


def test_regression_schema_has_no_labels():
    frame = _frame().drop(columns="bought")
    schema = infer_schema(frame, "salary", "regression")
    assert schema.labels == []
    assert [c.name for c in schema.columns] == ["age", "city"]


def test_multiclass_labels_and_max_classes():
    frame = _frame()
    frame["bought"] = ["a", "b", "c", "d"] * 5
    assert infer_schema(frame, "bought", "multiclass").labels == ["a", "b", "c", "d"]
    assert infer_schema(frame, "bought", "multiclass", max_classes=4).labels == ["a", "b", "c", "d"]
    with pytest.raises(InputError, match="4 classes") as info:
        infer_schema(frame, "bought", "multiclass", source="d.csv", max_classes=3)
    message = str(info.value)
    assert "the 3 this data" in message
    assert "20 rows" in message
    assert "merge rare classes" in message


def test_schema_dict_round_trip():
    schema = infer_schema(_frame(), "bought", "binary")
    assert TabularSchema.from_dict(schema.to_dict()) == schema


# encode_labels ------------------------------------------------------------------------------


def test_encode_labels_uses_schema_order():
    schema = _binary_schema(["yes", "no"])
    ids = encode_labels(pd.Series(["no", "yes", "yes", "no"]), schema)
    assert ids.dtype == np.int32
    assert ids.tolist() == [1, 0, 0, 1]


def test_encode_labels_compares_by_text():
    # Labels learnt as strings; a test file whose column pandas reads as ints.
    schema = _binary_schema(["0", "1"])
    assert encode_labels(pd.Series([1, 0, 1]), schema).tolist() == [1, 0, 1]
    # Labels learnt as ints (from a float column with gaps); test values read as floats.
    schema = _binary_schema([0, 1])
    assert encode_labels(pd.Series([1.0, 0.0]), schema).tolist() == [1, 0]
    assert encode_labels(pd.Series(["1", "0"]), schema).tolist() == [1, 0]


def test_encode_labels_unseen_class():
    schema = _binary_schema(["no", "yes"])
    with pytest.raises(InputError, match="not seen in training") as info:
        encode_labels(pd.Series(["yes", "maybe", "no", "perhaps"]), schema, source="test.csv")
    message = str(info.value)
    assert "maybe, perhaps" in message
    assert "training classes: no, yes" in message
    assert "test.csv" in message
    assert "'y'" in message


def test_encode_labels_regression():
    schema = TabularSchema("y", "regression", [Column("x", "numeric", "x")])
    values = encode_labels(pd.Series([1, 2.5, -3]), schema)
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, [1.0, 2.5, -3.0])


# features_from_frame ------------------------------------------------------------------------


def _feature_schema() -> TabularSchema:
    return TabularSchema("y", "binary", [
        Column("height cm", "numeric", "height_cm"),
        Column("job", "categorical", "job"),
        Column("floor", "categorical", "floor"),
    ], labels=["no", "yes"])


def test_features_from_frame_numeric_and_categorical():
    frame = pd.DataFrame({
        "job": ["nurse", None, " pilot"],
        "height cm": [170, np.nan, 181.5],
        "floor": [3.0, np.nan, 12.0],
        "extra": [1, 2, 3],
    })
    features = features_from_frame(frame, _feature_schema())
    assert set(features) == {"height_cm", "job", "floor"}
    height = features["height_cm"]
    assert height.dtype == np.float32
    assert height.shape == (3, 1)
    assert height[0, 0] == 170 and height[2, 0] == 181.5
    assert math.isnan(height[1, 0])
    job = features["job"]
    assert job.dtype == object
    assert job.shape == (3, 1)
    assert job[:, 0].tolist() == ["nurse", MISSING_CATEGORY, "pilot"]
    assert features["floor"][:, 0].tolist() == ["3", MISSING_CATEGORY, "12"]


def test_features_from_frame_numeric_text_values_parse():
    frame = pd.DataFrame({"height cm": ["170", "", None], "job": ["a", "b", "c"],
                          "floor": [1, 2, 3]})
    frame["height cm"] = frame["height cm"].replace("", None)
    height = features_from_frame(frame, _feature_schema())["height_cm"][:, 0]
    assert height[0] == 170
    assert np.isnan(height[1:]).all()


def test_features_from_frame_missing_column():
    frame = pd.DataFrame({"job": ["a"], "other": [1]})
    with pytest.raises(InputError, match="lacks the feature columns") as info:
        features_from_frame(frame, _feature_schema(), source="new.csv")
    message = str(info.value)
    assert "height cm, floor" in message
    assert "its columns are: job, other" in message
    assert "new.csv" in message


def test_features_from_frame_junk_in_numeric_column():
    frame = pd.DataFrame({"height cm": ["170", "tall", "180"], "job": ["a", "b", "c"],
                          "floor": [1, 2, 3]})
    with pytest.raises(InputError, match="'height cm'") as info:
        features_from_frame(frame, _feature_schema(), source="new.csv")
    message = str(info.value)
    assert "'tall'" in message
    assert "line 3 of new.csv" in message


# split_frame --------------------------------------------------------------------------------


def _split_data(
    rows: int = 200, positive_share: float = 0.25
) -> tuple[pd.DataFrame, TabularSchema]:
    rng = np.random.default_rng(1)
    positives = int(rows * positive_share)
    frame = pd.DataFrame({
        "id": np.arange(rows),
        "x": rng.normal(size=rows),
        "y": ["yes"] * positives + ["no"] * (rows - positives),
    })
    return frame, infer_schema(frame, "y", "binary")


def test_split_sizes_follow_fractions():
    frame, schema = _split_data(200)
    train, validation, test = split_frame(frame, schema, 0.25, 0.2, seed=0)
    assert len(train) + len(validation) + len(test) == 200
    assert abs(len(test) - 0.2 * 200) <= 1
    assert abs(len(validation) - 0.25 * (200 - len(test))) <= 1
    for part in (train, validation, test):
        assert list(part.index) == list(range(len(part)))
        assert list(part.columns) == ["id", "x", "y"]


def test_split_rows_are_disjoint_and_complete():
    frame, schema = _split_data(200)
    train, validation, test = split_frame(frame, schema, 0.2, 0.2, seed=3)
    ids = [set(part["id"]) for part in (train, validation, test)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]
    assert ids[0] | ids[1] | ids[2] == set(frame["id"])
    # Each row keeps its own values.
    merged = pd.concat([train, validation, test]).sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, frame)


def test_split_is_seeded():
    frame, schema = _split_data(200)
    first = split_frame(frame, schema, 0.2, 0.2, seed=7)
    again = split_frame(frame, schema, 0.2, 0.2, seed=7)
    other = split_frame(frame, schema, 0.2, 0.2, seed=8)
    for a, b in zip(first, again, strict=True):
        assert a["id"].tolist() == b["id"].tolist()
    assert first[2]["id"].tolist() != other[2]["id"].tolist()
    assert set(first[0]["id"]) != set(other[0]["id"])


def test_split_is_stratified():
    frame, schema = _split_data(200, positive_share=0.25)
    for seed in range(3):
        for part in split_frame(frame, schema, 0.2, 0.2, seed=seed):
            share = (part["y"] == "yes").mean()
            assert abs(share - 0.25) <= 0.03, (seed, share)


def test_split_regression():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=50), "t": rng.normal(size=50)})
    schema = infer_schema(frame, "t", "regression")
    train, validation, test = split_frame(frame, schema, 0.2, 0.2, seed=0)
    assert len(train) + len(validation) + len(test) == 50
    assert abs(len(test) - 10) <= 1


def test_split_without_test_fraction():
    frame, schema = _split_data(100)
    train, validation, test = split_frame(frame, schema, 0.2, 0.0, seed=0)
    assert len(test) == 0
    assert list(test.columns) == list(frame.columns)
    assert len(train) + len(validation) == 100
    assert abs(len(validation) - 20) <= 1


def test_split_too_few_rows():
    frame, schema = _split_data(12, positive_share=0.5)
    with pytest.raises(InputError, match="12 rows") as info:
        split_frame(frame, schema, 0.2, 0.2, seed=0, source="small.csv")
    message = str(info.value)
    assert "small.csv" in message
    assert "at least 15 rows" in message
    assert "--test-data" in message


def test_split_too_few_rows_without_test():
    frame, schema = _split_data(8, positive_share=0.5)
    with pytest.raises(InputError, match="8 rows") as info:
        split_frame(frame, schema, 0.2, 0.0, seed=0, source="small.csv")
    message = str(info.value)
    assert "train and validation" in message
    assert "at least 10 rows" in message


def test_split_too_few_of_one_class():
    frame, schema = _split_data(40, positive_share=0.05)
    assert (frame["y"] == "yes").sum() == 2
    with pytest.raises(InputError, match="40 rows") as info:
        split_frame(frame, schema, 0.2, 0.2, seed=0, source="rare.csv")
    message = str(info.value)
    assert "class 'yes' has 2" in message
    assert "3 of each class" in message
    assert "Add rows" in message


def test_split_more_classes_than_test_rows():
    frame = pd.DataFrame({"x": np.arange(15.0), "y": ["a", "b", "c", "d", "e"] * 3})
    schema = infer_schema(frame, "y", "multiclass")
    with pytest.raises(InputError, match="too few rows") as info:
        split_frame(frame, schema, 0.2, 0.2, seed=0, source="many.csv")
    message = str(info.value)
    assert "15 rows" in message
    assert "many.csv" in message
    assert "\n" not in message


# drop_missing_targets -----------------------------------------------------------------------


def test_drop_missing_targets_warns_with_count(capsys):
    frame = pd.DataFrame({"x": range(6), "y": ["a", None, "b", np.nan, "a", "b"]})
    kept = drop_missing_targets(frame, "y", "data.csv")
    assert kept["x"].tolist() == [0, 2, 4, 5]
    assert list(kept.index) == [0, 1, 2, 3]
    err = capsys.readouterr().err
    assert "dropped 2 row(s)" in err
    assert "data.csv" in err
    assert "'y'" in err


def test_drop_missing_targets_silent_when_complete(capsys):
    frame = pd.DataFrame({"x": range(3), "y": ["a", "b", "a"]})
    assert len(drop_missing_targets(frame, "y", "data.csv")) == 3
    assert capsys.readouterr().err == ""


def test_object_column_of_numbers_is_numeric():
    schema = infer_schema(pd.DataFrame({"x": ["1", "2", "3", None], "y": ["a", "b", "a", "b"]}),
                          "y", "binary")
    assert [(column.name, column.kind) for column in schema.columns] == [("x", "numeric")]


def test_true_false_column_with_blanks_is_categorical(tmp_path):
    path = tmp_path / "flags.csv"
    path.write_text("flag,x,y\nTrue,1,a\nFalse,2,b\n,3,a\nTrue,4,b\n")
    schema = infer_schema(read_csv(path), "y", "binary", source="flags.csv")
    assert {column.name: column.kind for column in schema.columns} == {
        "flag": "categorical", "x": "numeric"}


def test_target_without_values_is_an_input_error():
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [np.nan] * 3})
    with pytest.raises(InputError, match="target column 'y' of the data has no values"):
        infer_schema(frame, "y", "regression")


def test_number_labels_sort_numerically():
    frame = pd.DataFrame({"x": range(6), "y": [2, 10, 2, 10, 2, 10]})
    assert infer_schema(frame, "y", "binary").labels == [2, 10]
    frame = pd.DataFrame({"x": range(6), "y": [1, 10, 2, 1, 10, 2]})
    assert infer_schema(frame, "y", "multiclass").labels == [1, 2, 10]


def test_non_numeric_regression_target_in_test_rows_is_an_input_error():
    schema = infer_schema(pd.DataFrame({"x": [1, 2, 3], "t": [1.5, 2.5, 3.5]}), "t", "regression")
    with pytest.raises(InputError, match=r"'abc' at line 3 of rt.csv is not a number"):
        encode_labels(pd.Series(["1.0", "abc"]), schema, source="rt.csv")


# Bad CSVs the fuzzed battery (tests/test_fuzz_inputs.py) covers, kept as regular cases --------

def _rows(**replace: str) -> str:
    """20 `x,y` rows that load (binary), with `x` of row `_N` replaced: `_rows(_3="inf")`."""
    return "".join(f"{replace.get(f'_{i}', i)},{'yes' if i % 2 else 'no'}\n" for i in range(20))


ROWS = _rows()


def _load(tmp_path, content: str | bytes, problem: str = "binary", name: str = "data.csv",
          test_content: str | bytes | None = None):
    from datasets.registry import load_tabular

    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    test_data = None
    if test_content is not None:
        test_data = tmp_path / "holdout.csv"
        test_data.write_bytes(test_content.encode() if isinstance(test_content, str)
                              else test_content)
    return load_tabular(str(path), problem, target="y",
                        test_data=None if test_data is None else str(test_data))


BAD_CSVS = [
    pytest.param("x,x,y\n" + "".join(f"{i},{i},a\n" for i in range(20)), "binary",
                 ["duplicate column names", "'x' (2 times)", "Rename"], id="duplicate_header"),
    pytest.param("y, y ,x\n" + "1,2,3\n" * 20, "binary",
                 ["duplicate column names", "'y' (2 times)"], id="duplicate_after_stripping"),
    pytest.param("x,y\n" + _rows(_3="inf"), "binary",
                 ["column 'x' of data.csv holds inf at line 5", "finite", "Blank those values"],
                 id="inf_in_a_feature"),
    pytest.param("x,y\n" + _rows(_3="-Infinity", _5="inf"),
                 "binary", ["holds -inf at line 5", "(2 such values)"], id="minus_infinity"),
    pytest.param("x,y\n" + _rows(_3="1e400"), "binary",
                 ["holds inf at line 5"], id="1e400_overflows_to_inf"),
    pytest.param("x,y\n" + _rows(_3="1e16"), "binary",
                 ["holds 1e+16 at line 5", "at most 1e+15 in size", "float32"],
                 id="too_large_for_float32_squares"),
    pytest.param("x,y\n" + "".join(f"{i},{'inf' if i == 4 else i}\n" for i in range(20)),
                 "regression", ["target 'y' of data.csv holds inf at line 6"],
                 id="regression_target_inf"),
    pytest.param("x,y\n" + "".join(f"{i},{'-1e308' if i == 2 else i}\n" for i in range(20)),
                 "regression", ["target 'y' of data.csv holds -1e+308 at line 4"],
                 id="regression_target_beyond_float32"),
    pytest.param(("x,y\n" + _rows().replace("1,yes", "1,oui très")).encode("latin-1"), "binary",
                 ["is not UTF-8 text (byte 0xe8", "CSV UTF-8", "iconv"], id="latin1_encoding"),
    pytest.param(("x,y\n" + ROWS).encode("utf-16"), "binary", ["is not UTF-8 text (byte 0xff"],
                 id="utf16_encoding"),
    pytest.param("x,y\n1,yes\n2,no\n3,yes,4\n" + ROWS, "binary",
                 ["line 4 of", "has 3 fields, but the header has 2 (comma-separated)"],
                 id="row_with_an_extra_field"),
    pytest.param("x;y\n1;yes\n2;no;7\n", "binary",
                 ["line 3 of", "has 3 fields, but the header has 2 (semicolon-separated)"],
                 id="semicolon_row_with_an_extra_field"),
    pytest.param('x,y\n1,"yes\n2,no\n' + ROWS, "binary",
                 ["ends inside a quoted value", "never closed"], id="unterminated_quote"),
    pytest.param("x,y\n" + "".join(f"{i},yes,{i}\n" for i in range(20)), "binary",
                 ["rows of", "have more fields than the 2 names of its header",
                  "would land in the wrong columns"], id="every_row_has_an_extra_value"),
    pytest.param("\n\n\n\n", "binary", ["is empty", "header row"], id="only_blank_lines"),
    pytest.param("\ufeffx,y\n", "binary", ["has a header (x, y) but no data rows"],
                 id="bom_and_header_only"),
    pytest.param('"price\nin euros",z\n1,2\n', "binary",
                 ["target column 'y' is not in data.csv", "price\\nin euros, z"],
                 id="line_break_in_a_header_name"),
    pytest.param("x,y\n" + "1,yes\n2,no\n", "binary", ["has 2 rows", "too few to split"],
                 id="two_rows"),
]


@pytest.mark.parametrize(("content", "problem", "fragments"), BAD_CSVS)
def test_bad_csv_is_one_line_input_error(tmp_path, content, problem, fragments):
    with pytest.raises(InputError) as info:
        _load(tmp_path, content, problem)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize(("test_content", "problem", "fragment"), [
    pytest.param("x,y\n1,yes\ninf,no\n", "binary", "column 'x' of holdout.csv holds inf at line 3",
                 id="test_data_feature_inf"),
    pytest.param("x,y\n1,2\n2,1e39\n", "regression",
                 "target 'y' of holdout.csv holds 1e+39 at line 3", id="test_data_target_huge"),
])
def test_bad_numbers_in_test_data_are_one_line_input_errors(tmp_path, test_content, problem,
                                                            fragment):
    rows = ROWS if problem == "binary" else "".join(f"{i},{i % 7}\n" for i in range(20))
    with pytest.raises(InputError, match=re.escape(fragment)):
        _load(tmp_path, "x,y\n" + rows, problem, test_content=test_content)


def _xy(frame: pd.DataFrame) -> list[tuple]:
    return list(zip(frame["x"].tolist(), frame["y"].tolist(), strict=True))


EXPECTED = [(i, "yes" if i % 2 else "no") for i in range(20)]


@pytest.mark.parametrize("content", [
    pytest.param("x;y\n" + ROWS.replace(",", ";"), id="semicolons"),
    pytest.param("x\ty\n" + ROWS.replace(",", "\t"), id="tabs"),
    pytest.param("x|y\n" + ROWS.replace(",", "|"), id="vertical_bars"),
    pytest.param("\ufeffx,y\n" + ROWS, id="utf8_bom"),
    pytest.param("\ufeffx;y\n" + ROWS.replace(",", ";"), id="utf8_bom_and_semicolons"),
    pytest.param(("x,y\n" + ROWS).replace("\n", "\r\n"), id="windows_line_ends"),
    pytest.param(" x ; y \n" + ROWS.replace(",", "; "), id="semicolons_and_spaces"),
    # A delimiter after each row's last value: pandas made the first column the index (x held
    # the labels, y was empty); the empty field is dropped instead.
    pytest.param("x,y\n" + ROWS.replace("\n", ",\n"), id="a_delimiter_ending_each_row"),
])
def test_csv_dialects_that_just_work(tmp_path, content):
    frame = read_csv(_write(tmp_path, content))
    assert list(frame.columns) == ["x", "y"]
    assert _xy(frame) == EXPECTED


def _write(tmp_path, content: str):
    path = tmp_path / "data.csv"
    path.write_text(content, encoding="utf-8")
    return path


def test_semicolon_file_with_decimal_commas_reads_numbers(tmp_path):
    path = _write(tmp_path, "price;city;qty\n3,5;paris;1\n-0,25;rome;2\n12;oslo;3\n;rome;4\n")
    frame = read_csv(path)
    assert frame["price"].tolist()[:3] == [3.5, -0.25, 12.0]
    assert math.isnan(frame["price"].tolist()[3])
    assert frame["city"].tolist() == ["paris", "rome", "oslo", "rome"]
    assert frame["qty"].tolist() == [1, 2, 3, 4]


def test_decimal_commas_mixed_with_text_stay_text(tmp_path):
    frame = read_csv(_write(tmp_path, "code;y\n3,5;a\nA12;b\n"))
    assert frame["code"].tolist() == ["3,5", "A12"]


def test_quoted_commas_and_line_breaks_stay_in_their_field(tmp_path):
    path = _write(tmp_path, 'note,"a;b",y\n"one, two",1,yes\n"three\nlines",2,no\n')
    frame = read_csv(path)
    assert list(frame.columns) == ["note", "a;b", "y"]
    assert frame["note"].tolist() == ["one, two", "three\nlines"]


def test_an_empty_header_name_is_pandas_unnamed(tmp_path):
    frame = read_csv(_write(tmp_path, ",y\n1,yes\n2,no\n"))
    assert list(frame.columns) == ["Unnamed: 0", "y"]


@pytest.mark.parametrize("separator", ["\n", "\r\n", "\r", "\u2028", "\x85"])
def test_input_error_is_always_one_line(separator):
    message = str(InputError(f"column 'a{separator}b' is bad"))
    assert len(message.splitlines()) == 1
    assert message.startswith("column 'a") and message.endswith("b' is bad")

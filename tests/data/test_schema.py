"""Schema and task inference, target checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from honing.data.builtin import load_builtin
from honing.data.schema import KINDS, Column, Schema, check_target, infer_kind, infer_schema, infer_task
from honing.errors import DataError

N = 40


def _frame() -> pd.DataFrame:
    """One column of every kind (plus an entirely missing one), 40 rows."""
    rng = np.random.default_rng(0)
    words = ["red", "green", "blue", "big", "small", "old", "new", "fast"]
    return pd.DataFrame(
        {
            "row_id": np.arange(1, N + 1),
            "age": rng.normal(40, 10, N).round(1),
            "count": rng.integers(0, 5, N),
            "colour": rng.choice(["red", "green", "blue"], N),
            "member": rng.choice(["Yes", "no", "YES", "No"], N),
            "flag01": rng.integers(0, 2, N),
            "active": rng.choice([True, False], N),
            "signup": pd.date_range("2021-01-01", periods=N, freq="D").strftime("%Y-%m-%d"),
            "stamp": pd.date_range("2021-01-01", periods=N, freq="h"),
            "comment": [" ".join(rng.choice(words, 5)) + f" {i}" for i in range(N)],
            "code": [f"X{i:05d}Z" for i in rng.permutation(N)],
            "photo": [f"img/{i}.PNG" if i % 2 else f"img/{i}.jpg" for i in range(N)],
            "empty": [np.nan] * N,
            "label": rng.choice(["a", "b"], N),
        }
    )


def test_every_kind_is_inferred():
    schema = infer_schema(_frame(), target="label")
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {
        "row_id": "identifier",
        "age": "numeric",
        "count": "numeric",
        "colour": "categorical",
        "member": "categorical",  # four spellings, not two values
        "flag01": "boolean",
        "active": "boolean",
        "signup": "datetime",
        "stamp": "datetime",
        "comment": "text",
        "code": "identifier",
        "photo": "image",
        "empty": "identifier",
        "label": "categorical",
    }
    assert set(kinds.values()) == set(KINDS)
    assert schema.target == "label"


def test_features_exclude_target_and_identifiers():
    df = _frame().drop(columns="member")
    schema = infer_schema(df, target="label")
    assert schema.feature_names == ["age", "count", "colour", "flag01", "active", "signup", "stamp", "comment",
                                    "photo"]
    assert [c.name for c in schema.features] == schema.feature_names


def test_case_insensitive_yes_no_pair_is_boolean():
    df = pd.DataFrame({"m": ["Yes", "no", "YES", "No", "yes"], "y": [1, 2, 3, 4, 5]})
    # four distinct spellings → not a two-value column; two spellings → boolean
    assert infer_schema(df).column("m").kind == "categorical"
    df["m"] = ["Yes", "No", "Yes", "No", None]
    column = infer_schema(df).column("m")
    assert column.kind == "boolean"
    assert column.missing == pytest.approx(0.2)
    assert column.categories == ["Yes", "No"]


def test_identifier_notes():
    schema = infer_schema(_frame(), target="label")
    row_id = schema.column("row_id")
    assert row_id.note == (
        f"looks like an identifier ({N} unique values in {N} rows); dropped — set data.types.row_id: "
        "categorical to keep it"
    )
    assert "entirely missing" in schema.column("empty").note


def test_titanic_columns():
    titanic = load_builtin("titanic")
    schema = infer_schema(titanic.frame, target="Survived")
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds["PassengerId"] == "identifier"
    assert "891 unique values in 891 rows" in schema.column("PassengerId").note
    assert kinds["Name"] == "text"
    assert kinds["Sex"] == kinds["Embarked"] == "categorical"
    assert kinds["Age"] == kinds["Fare"] == "numeric"
    assert schema.column("Age").missing == pytest.approx(177 / 891)
    assert schema.column("Embarked").categories == ["S", "C", "Q"]


def test_small_frames_do_not_lose_columns():
    df = pd.DataFrame({"x": [1, 2, 3, 4, 5], "name": ["a", "b", "c", "d", "e"], "y": [0, 1, 0, 1, 0]})
    kinds = {c.name: c.kind for c in infer_schema(df, target="y").columns}
    assert kinds == {"x": "numeric", "name": "categorical", "y": "boolean"}


def test_target_is_never_an_identifier():
    df = pd.DataFrame({"x": np.arange(30) % 3, "id_target": np.arange(30)})
    assert infer_schema(df, target="id_target").column("id_target").kind == "numeric"


def test_overrides_and_drop():
    df = _frame()
    schema = infer_schema(df, target="label", overrides={"row_id": "categorical", "count": "categorical"},
                          drop=["comment", "code"])
    assert schema.column("row_id").kind == "categorical"
    assert schema.column("row_id").note == "kind set by data.types.row_id"
    assert schema.column("count").kind == "categorical"
    assert schema.column("count").categories is not None
    names = [c.name for c in schema.columns]
    assert "comment" not in names and "code" not in names
    assert schema.dropped == ["comment", "code"]


def test_unknown_override_column():
    with pytest.raises(DataError, match=r"data\.types\.colr: no column 'colr'") as err:
        infer_schema(_frame(), overrides={"colr": "categorical"})
    assert "colour" in err.value.hint


def test_bad_override_kind_and_drop():
    with pytest.raises(DataError, match="data.types.age: unknown kind"):
        infer_schema(_frame(), overrides={"age": "numerical"})
    with pytest.raises(DataError, match="data.drop: no column 'agee'"):
        infer_schema(_frame(), drop=["agee"])


def test_schema_json_round_trip():
    schema = infer_schema(_frame(), target="label", drop=["code"])
    text = json.dumps(schema.to_dict())
    again = Schema.from_dict(json.loads(text))
    assert again == schema
    assert Column.from_dict(schema.columns[1].to_dict()) == schema.columns[1]


def test_categories_are_python_scalars_most_frequent_first():
    df = pd.DataFrame({"c": [3, 3, 3, 1, 1, 2] * 5, "n": np.arange(30.0)})
    column = infer_schema(df, overrides={"c": "categorical"}).column("c")
    assert column.categories == [3, 1, 2]
    assert all(type(v) is int for v in column.categories)
    many = pd.DataFrame({"c": [f"v{i % 150}" for i in range(300)]})
    assert len(infer_schema(many).column("c").categories) == 100


def test_column_lookup_error():
    schema = infer_schema(_frame())
    with pytest.raises(DataError, match="no column 'agee'"):
        schema.column("agee")


# --------------------------------------------------------------------------- task


@pytest.mark.parametrize(
    "values, task",
    [
        (["a", "b", "a"], "classification"),
        ([True, False, True], "classification"),
        ([0, 1, 1, 0], "classification"),
        ([1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0], "classification"),
        ([0.5, 1.5, 2.25, 3.0], "regression"),
        (list(range(100)), "regression"),
        ([i % 30 for i in range(300)], "regression"),
        ([i % 7 for i in range(300)] + [None], "classification"),
    ],
)
def test_infer_task(values, task):
    assert infer_task(pd.Series(values)) == task


def test_infer_task_on_builtins():
    assert infer_task(load_builtin("titanic").frame["Survived"]) == "classification"
    assert infer_task(load_builtin("california_housing").frame["median_house_value"]) == "regression"


def test_infer_task_of_nothing():
    with pytest.raises(DataError, match="has no values"):
        infer_task(pd.Series([None, None], name="y"))


# --------------------------------------------------------------------------- target checks


def test_missing_target_suggests_close_match():
    df = load_builtin("titanic").frame
    with pytest.raises(DataError, match="no column 'survived'") as err:
        check_target(df, "survived", "classification")
    assert "'Survived'" in err.value.hint
    with pytest.raises(DataError, match="no column 'survived'"):
        infer_schema(df, target="survived")


def test_single_class_target():
    df = pd.DataFrame({"x": [1, 2, 3], "y": ["a", "a", None]})
    with pytest.raises(DataError) as err:
        check_target(df, "y", "classification")
    assert err.value.what == "target 'y' has a single class 'a'; a classifier needs at least two"


def test_all_missing_target():
    df = pd.DataFrame({"x": [1, 2], "y": [np.nan, np.nan]})
    with pytest.raises(DataError, match="every row is missing"):
        check_target(df, "y", "regression")


def test_regression_needs_numbers():
    df = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    with pytest.raises(DataError, match="not numeric"):
        check_target(df, "y", "regression")
    check_target(df, "y", "classification")


def test_valid_targets_pass_with_missing_rows():
    df = pd.DataFrame({"x": [1, 2, 3], "y": [1.5, None, 2.5]})
    check_target(df, "y", "regression")
    check_target(df, "y", "classification")


@pytest.mark.parametrize(
    "values, kind",
    [
        (["1st", "2nd", "3rd"], "categorical"),
        (["1-2", "3-4", "5-6"], "categorical"),
        (["10%", "20%", "30%"], "categorical"),
        (["555-1234", "555-9876", "555-1111"], "categorical"),
        (["2020-01-05", "2021-03-04", "2019-12-31"], "datetime"),
        (["1/5/2020", "3/4/2021", "12/31/2019"], "datetime"),
        (["Jan 2020", "Feb 2021", "Mar 2019"], "datetime"),
        (["2020-01-05T10:00:00Z", "2020-01-05T11:00:00+01:00", "2020-02-05 10:00"], "datetime"),
    ],
)
def test_dates_and_look_alikes(values, kind):
    df = pd.DataFrame({"c": values * 10})
    assert infer_schema(df).column("c").kind == kind


# --------------------------------------------------------------------------- dirty and label-like targets


def _prices(rows: int = 300, bad: int = 0) -> pd.Series:
    values: list = [str(round(100 + 3.7 * i, 1)) for i in range(rows - bad)]
    values += ["about 300"] + ["n/a?"] * (bad - 1) if bad else []
    return pd.Series(values + [None], name="price", dtype=object)


def test_mostly_numeric_target_is_refused():
    with pytest.raises(DataError) as err:
        infer_task(_prices(bad=10))
    assert err.value.what == "target 'price' is mostly numbers but has 10 values that are not (e.g. 'about 300')"
    assert err.value.hint == "clean those values, or set data.task: classification if the target is really a label"
    with pytest.raises(DataError, match="has 1 value that is not"):
        infer_task(_prices(bad=1))
    frame = _prices(bad=10).to_frame()
    with pytest.raises(DataError, match="mostly numbers"):
        check_target(frame, "price", "regression")


def test_infinite_regression_target_is_refused_naming_the_row():
    frame = pd.DataFrame({"y": [1.0, 2.0, np.nan, np.inf, -np.inf, 3.0]})
    with pytest.raises(DataError) as err:
        check_target(frame, "y", "regression")
    assert err.value.what == "target 'y' has 2 infinite value(s) (the first in row 3)"
    check_target(frame.drop(index=[3, 4]), "y", "regression")  # missing values are allowed


def test_mostly_text_target_is_still_classification():
    # 1 label in 5 is a number: labels, not dirty numbers
    y = pd.Series(["a", "b", "c", "1", "a"] * 10, name="y")
    assert infer_task(y) == "classification"


def test_numbers_written_as_text_count_as_numbers():
    y = pd.Series([1.5, "2.25", " 3.0", 4, "5.5"] * 4, name="y", dtype=object)
    assert infer_task(y) == "regression"
    check_target(y.to_frame(), "y", "regression")
    labels = pd.Series(["1", "2", 3, "1"] * 5, name="y", dtype=object)
    assert infer_task(labels) == "classification"


def test_booleans_are_not_numbers_for_regression():
    df = pd.DataFrame({"y": [True, False, True]})
    with pytest.raises(DataError, match="not numeric"):
        check_target(df, "y", "regression")


def test_too_many_classes():
    names = pd.DataFrame({"name": [f"person {i % 258}" for i in range(300)]})
    with pytest.raises(DataError) as err:
        check_target(names, "name", infer_task(names["name"]))
    assert err.value.what == "target 'name' has 258 distinct values in 300 rows — too many classes to learn"
    assert err.value.hint == "set data.task: regression for a number, or choose another data.target"
    numbers = pd.DataFrame({"n": np.arange(300) % 201})
    with pytest.raises(DataError, match="201 distinct values in 300 rows"):
        check_target(numbers, "n", "classification")


def test_enough_rows_per_class_passes():
    check_target(pd.DataFrame({"c": np.arange(1000) % 200}), "c", "classification")  # 200 classes, 5 rows each
    check_target(pd.DataFrame({"c": np.arange(100) % 50}), "c", "classification")  # exactly half unique
    check_target(pd.DataFrame({"c": np.arange(49)}), "c", "classification")  # under 50 rows: not judged


@pytest.mark.parametrize("name", ["titanic", "iris", "digits", "breast_cancer", "wine_quality",
                                  "california_housing", "diabetes"])
def test_builtin_targets_pass(name):
    builtin = load_builtin(name)
    y = builtin.frame[builtin.target]
    check_target(builtin.frame, builtin.target, builtin.task)
    if name != "wine_quality":  # 6 integer grades read as classes; its builtin task is regression
        assert infer_task(y) == builtin.task
    check_target(builtin.frame, builtin.target, infer_task(y))


def test_numbers_with_a_decimal_comma_are_categories_with_a_note():
    """A European CSV's 36,59: not numbers to pandas; the note says what to do (plain categories: none)."""
    rng = np.random.default_rng(0)
    commas = pd.Series([f"{v:.2f}".replace(".", ",") for v in rng.uniform(10, 90, 25)] * 2)
    kind, note = infer_kind(commas, "income")
    assert kind == "categorical" and "comma" in note and commas.iloc[0] in note
    assert infer_kind(pd.Series(["a,b", "c,d"] * 25), "pair") == ("categorical", "")


def test_integers_with_leading_zeros_are_codes_with_a_note():
    """What the reader keeps as text (zip codes): categories, and the note names the key to make them numbers."""
    zips = pd.Series(["02134", "10001", "94110", "00501"] * 10)
    kind, note = infer_kind(zips, "zip")
    assert kind == "categorical" and "'02134'" in note and "data.types: {zip: numeric}" in note
    assert infer_kind(pd.Series(["a1", "b2"] * 20), "plain") == ("categorical", "")


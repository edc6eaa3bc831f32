"""Train / validation / test splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from honing.data.split import split_frame
from honing.errors import DataError, SplitError


def _frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "row": np.arange(rows),
            "x": rng.normal(size=rows),
            "y": rng.choice(["a", "b", "c"], size=rows, p=[0.6, 0.3, 0.1]),
            "patient": rng.integers(0, 40, size=rows),
            "when": pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.permutation(rows), unit="D"),
        }
    )


def _split(df: pd.DataFrame, **kwargs) -> dict[str, pd.DataFrame]:
    args = {"target": "y", "task": "classification", "validation": 0.15, "test": 0.2, "stratify": None,
            "group": None, "time": None, "seed": 7}
    args.update(kwargs)
    return split_frame(df, **args)


def _rows(parts: dict[str, pd.DataFrame]) -> list[set]:
    return [set(parts[name]["row"]) for name in ("train", "validation", "test")]


@pytest.mark.parametrize("rows, validation, test", [(200, 0.15, 0.2), (101, 0.1, 0.1), (57, 0.3, 0.0), (33, 0.0, 0.25)])
@pytest.mark.parametrize("stratify", [False, None])
@pytest.mark.filterwarnings("ignore:cannot stratify")
def test_fractions_and_partition(rows, validation, test, stratify):
    df = _frame(rows)
    parts = _split(df, validation=validation, test=test, stratify=stratify)
    assert abs(len(parts["validation"]) - rows * validation) <= 1
    assert abs(len(parts["test"]) - rows * test) <= 1
    train, val, tst = _rows(parts)
    assert train | val | tst == set(range(rows))
    assert len(train) + len(val) + len(tst) == rows
    for part in parts.values():
        assert list(part.columns) == list(df.columns)
        assert part.index.equals(pd.RangeIndex(len(part)))


def test_stratified_keeps_class_proportions():
    df = _frame(1000)
    parts = _split(df, validation=0.2, test=0.2, stratify=True)
    overall = df["y"].value_counts(normalize=True)
    for part in parts.values():
        share = part["y"].value_counts(normalize=True).reindex(overall.index)
        assert np.allclose(share, overall, atol=0.006)


def test_random_split_is_not_stratified_for_regression():
    df = _frame(1000)
    parts = _split(df, task="regression", target="x")
    assert abs(len(parts["test"]) - 200) <= 1


def test_stratified_regression_bins_the_target():
    df = _frame(1000)
    parts = _split(df, task="regression", target="x", stratify=True)
    medians = [part["x"].median() for part in parts.values()]
    assert max(medians) - min(medians) < 0.1


def test_rare_class_falls_back_with_a_warning():
    df = _frame(100)
    df.loc[0, "y"] = "lonely"
    with pytest.warns(UserWarning, match="cannot stratify by 'y'.*only 1 row"):
        parts = _split(df)
    assert sum(len(p) for p in parts.values()) == 100


def test_grouped_split_keeps_groups_apart():
    df = _frame(400)
    parts = _split(df, group="patient", validation=0.2, test=0.2)
    groups = [set(parts[name]["patient"]) for name in ("train", "validation", "test")]
    assert not groups[0] & groups[1] and not groups[0] & groups[2] and not groups[1] & groups[2]
    assert sum(len(p) for p in parts.values()) == 400
    # about 80 rows each (groups hold about 10 rows)
    assert abs(len(parts["test"]) - 80) <= 20 and abs(len(parts["validation"]) - 80) <= 20


def test_grouped_split_needs_enough_groups():
    df = _frame(50)
    df["patient"] = df["row"] % 2
    with pytest.raises(DataError, match="2 distinct value"):
        _split(df, group="patient")


def test_time_split_orders_rows():
    df = _frame(300)
    parts = _split(df, time="when", validation=0.2, test=0.1)
    train, val, test = (parts[name]["when"] for name in ("train", "validation", "test"))
    assert train.max() <= val.min() <= val.max() <= test.min()
    assert len(test) == 30 and len(val) == 60


def test_time_split_parses_text_dates():
    df = _frame(100)
    df["when"] = df["when"].dt.strftime("%d %b %Y")
    parts = _split(df, time="when")
    train = pd.to_datetime(parts["train"]["when"], format="%d %b %Y")
    test = pd.to_datetime(parts["test"]["when"], format="%d %b %Y")
    assert train.max() < test.min()


def test_time_split_on_numbers():
    df = _frame(100)
    parts = _split(df, time="x", validation=0.0)
    assert parts["train"]["x"].max() <= parts["test"]["x"].min()
    assert parts["validation"].empty


def test_time_column_without_dates():
    df = _frame(50)
    df["when"] = "soon"
    with pytest.raises(DataError, match="data.split.time"):
        _split(df, time="when")


@pytest.mark.parametrize("kwargs", [{}, {"stratify": False}, {"group": "patient"}, {"task": "regression", "target": "x"}])
def test_seeded(kwargs):
    df = _frame(300)
    first, again, other = (_split(df, seed=seed, **kwargs) for seed in (1, 1, 2))
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name])
    assert _rows(first) != _rows(other)


@pytest.mark.parametrize("key, kwargs", [("data.split.group", {"group": "patiant"}),
                                         ("data.split.time", {"time": "wen"})])
def test_unknown_columns(key, kwargs):
    with pytest.raises(DataError, match=f"{key}: no column") as err:
        _split(_frame(), **kwargs)
    assert "did you mean" in err.value.hint


def test_too_few_rows():
    """A SplitError (a DataError), which the audit command recognises to give its own hint."""
    with pytest.raises(SplitError, match="empty test split"):
        _split(_frame(3), validation=0.0, test=0.1)
    with pytest.raises(SplitError, match="leave 1 for training"):
        _split(_frame(3), validation=0.3, test=0.3, stratify=False)


def test_zero_fractions_give_empty_frames():
    df = _frame(20)
    parts = _split(df, validation=0.0, test=0.0)
    assert len(parts["train"]) == 20
    assert parts["validation"].empty and parts["test"].empty
    assert list(parts["test"].columns) == list(df.columns)


# --------------------------------------------------------------------------- rare classes


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.filterwarnings("ignore:cannot stratify")
def test_rare_classes_keep_a_training_row(seed):
    df = _frame(60)
    df.loc[[3], "y"] = "single"
    df.loc[[10, 11], "y"] = "pair"
    parts = _split(df, seed=seed, validation=0.2, test=0.3)
    assert set(parts["train"]["y"]) == set(df["y"])
    assert [len(parts[name]) for name in ("train", "validation", "test")] == [30, 12, 18]
    assert set().union(*_rows(parts)) == set(range(60))


def test_rare_class_fallback_is_seeded():
    df = _frame(50)
    df.loc[0, "y"] = "lonely"
    with pytest.warns(UserWarning, match="keeps a row of every class in training"):
        first = _split(df, seed=3)
    with pytest.warns(UserWarning):
        again = _split(df, seed=3)
    assert _rows(first) == _rows(again)


def test_without_stratification_a_singleton_can_miss_training():
    df = _frame(40)
    df.loc[0, "y"] = "lonely"
    missed = [seed for seed in range(30) if "lonely" not in set(_split(df, stratify=False, seed=seed)["train"]["y"])]
    assert missed  # load_dataset turns this into a DataError (tests/data/test_dataset.py)


def test_more_classes_than_training_rows_keeps_the_rarest():
    df = pd.DataFrame({"row": range(10), "y": ["a"] * 4 + ["b", "c", "d", "e", "f", "g"]})
    with pytest.warns(UserWarning, match="cannot stratify"):
        parts = _split(df, validation=0.3, test=0.4)
    assert len(parts["train"]) == 3 and "a" not in set(parts["train"]["y"])


# --------------------------------------------------------------------------- empty splits


@pytest.mark.parametrize("kwargs", [{}, {"stratify": False}, {"group": "patient"}, {"time": "when"},
                                    {"task": "regression", "target": "x", "stratify": True}])
@pytest.mark.parametrize("validation, test", [(0.0, 0.0), (0.2, 0.0), (0.0, 0.2)])
def test_empty_splits_keep_columns_and_dtypes(kwargs, validation, test):
    from honing.data.preprocess import coerce_features
    from honing.data.schema import infer_schema

    df = _frame(120)
    df["note"] = [f"some words for row {i}" for i in range(120)]
    df["flag"] = np.where(df["row"] % 3 == 0, "yes", "no")
    df["colour"] = np.array(["red", "green", "blue"])[df["row"] % 3]
    df["when_text"] = df["when"].dt.strftime("%Y-%m-%d")
    parts = _split(df, validation=validation, test=test, **kwargs)
    schema = infer_schema(df, target="y", drop=["row"])
    kinds = {c.kind for c in schema.features}
    assert kinds == {"numeric", "categorical", "boolean", "datetime", "text"}
    for name, fraction in (("validation", validation), ("test", test)):
        part = parts[name]
        assert (len(part) == 0) == (fraction == 0)
        assert list(part.columns) == list(df.columns)
        assert part.dtypes.equals(df.dtypes)
        x = coerce_features(part, schema)
        assert list(x.columns) == schema.feature_names and len(x) == len(part)

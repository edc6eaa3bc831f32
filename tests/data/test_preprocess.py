"""Row cleaning, feature coercion and the preprocessor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from honing.data.preprocess import (
    TRUSTED_TYPES,
    DatetimeFeatures,
    build_preprocessor,
    clean_rows,
    coerce_features,
    extra_columns,
)
from honing.data.schema import infer_schema
from honing.errors import DataError
from honing.recipe import DataConfig

WORDS = ["storm", "rain", "sunny", "cloud", "wind", "snow", "fog", "heat"]


def _frame(rows: int = 80, seed: int = 0) -> pd.DataFrame:
    """One feature of every kind, some missing values, and a target."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "id": np.arange(rows),
            "num": rng.normal(10, 3, rows),
            "cat": rng.choice(["a", "b", "c"], rows),
            "flag": rng.choice(["yes", "no"], rows),
            "when": (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 5000, rows), unit="h")).astype(str),
            "note": [" ".join(rng.choice(WORDS, 4)) + f" w{i}" for i in range(rows)],
            "y": rng.choice([0, 1], rows),
        }
    )
    df.loc[[1, 5], "num"] = np.nan
    df.loc[[2], "cat"] = None
    return df


def _cfg(**kwargs) -> DataConfig:
    return DataConfig(source="x.csv", target="y", **kwargs)


def _fit(df: pd.DataFrame, **kwargs):
    schema = infer_schema(df, target="y")
    pre = build_preprocessor(schema, _cfg(**kwargs)).fit(coerce_features(df, schema))
    return schema, pre


def test_schema_of_the_fixture():
    kinds = {c.name: c.kind for c in infer_schema(_frame(), target="y").features}
    assert kinds == {"num": "numeric", "cat": "categorical", "flag": "boolean", "when": "datetime", "note": "text"}


# --------------------------------------------------------------------------- rows


def test_clean_rows_drops_duplicates_and_missing_targets():
    df = pd.DataFrame({"x": [1, 1, 2, 3, 3, 4], "y": ["a", "a", None, "b", "b", "c"]})
    out, notes = clean_rows(df, "y", "drop")
    assert out.to_dict("list") == {"x": [1, 3, 4], "y": ["a", "b", "c"]}
    assert out.index.equals(pd.RangeIndex(3))
    assert notes == ["dropped 2 rows that duplicated earlier rows", "dropped 1 row whose target 'y' is missing"]
    kept, notes = clean_rows(df, "y", "keep")
    assert len(kept) == 5 and notes == ["dropped 1 row whose target 'y' is missing"]
    assert clean_rows(df.iloc[[0, 3]], None, "drop")[1] == []


# --------------------------------------------------------------------------- coercion


def test_coerce_features_types_and_order():
    df = _frame()
    schema = infer_schema(df, target="y")
    x = coerce_features(df[df.columns[::-1]], schema)
    assert list(x.columns) == ["num", "cat", "flag", "when", "note"]
    assert x["num"].dtype == np.float64
    assert pd.api.types.is_datetime64_any_dtype(x["when"])
    assert x["cat"].dtype == object and pd.isna(x["cat"].iloc[2])
    assert set(x["flag"]) == {"true", "false"}
    assert x["note"].dtype == object


def test_coercion_maps_equivalent_values_together():
    train = pd.DataFrame({"c": ["1", "2", "2", "3"], "b": ["yes", "no", "no", "yes"], "t": [1.0, 2, 3, 4]})
    schema = infer_schema(train, target="t", overrides={"c": "categorical"})
    scoring = pd.DataFrame({"c": [1, 2.0, None, " 3"], "b": [True, "N", 0, np.nan], "extra": 1})
    x = coerce_features(scoring, schema)
    assert x["c"].tolist()[:2] == ["1", "2"] and pd.isna(x["c"].iloc[2]) and x["c"].iloc[3] == "3"
    assert x["b"].tolist()[:3] == ["true", "false", "false"] and pd.isna(x["b"].iloc[3])
    assert extra_columns(scoring, schema) == ["extra"]


def test_coercion_of_bad_values():
    train = pd.DataFrame({"n": [1.5, 2.5, 3.5], "d": ["2020-01-01", "2020-02-01", "2020-03-01"], "y": [0, 1, 0]})
    schema = infer_schema(train, target="y")
    with pytest.warns(UserWarning) as caught:
        x = coerce_features(pd.DataFrame({"n": ["2,5", "7", None], "d": ["soon", "2021-05-06", None]}), schema)
    assert [str(w.message) for w in caught] == [
        "column 'n': 1 value is not a number (e.g. '2,5'); treated as missing",
        "column 'd': 1 value is not a date (e.g. 'soon'); treated as missing",
    ]
    assert np.isnan(x["n"].iloc[0]) and x["n"].iloc[1] == 7.0 and np.isnan(x["n"].iloc[2])
    assert pd.isna(x["d"].iloc[0]) and x["d"].iloc[1] == pd.Timestamp("2021-05-06")


def test_unparsable_numbers_warn_once_per_column():
    train = pd.DataFrame({"area": [50.0, 72.5, 105.0], "rooms": [1, 2, 3], "y": [0, 1, 0]})
    schema = infer_schema(train, target="y")
    new = pd.DataFrame({"area": ["105.2 m2", "80", "n/a", "big\nflat", None, "  "], "rooms": [1, 2, 3, 4, 5, 6]})
    with pytest.warns(UserWarning) as caught:
        x = coerce_features(new, schema)
    assert [str(w.message) for w in caught] == [
        "column 'area': 3 values are not numbers (e.g. '105.2 m2'); treated as missing"
    ]
    assert caught[0].filename == __file__  # stacklevel points at the caller
    assert x["area"].isna().tolist() == [True, False, True, True, True, True]


def test_infinite_numbers_become_missing_with_a_warning():
    train = pd.DataFrame({"a": [1.0, np.inf, 3.0, 4.0], "b": [1.0, float("1e400"), -np.inf, 2.0], "y": [0, 1, 0, 1]})
    schema = infer_schema(train, target="y")
    with pytest.warns(UserWarning) as caught:
        x = coerce_features(train, schema)
    assert [str(w.message).split(" (")[0] for w in caught] == ["column 'a': 1 value is infinite",
                                                               "column 'b': 2 values are infinite"]
    assert x["a"].isna().tolist() == [False, True, False, False] and x["b"].isna().sum() == 2
    matrix = build_preprocessor(schema, DataConfig(source="x.csv", target="y")).fit_transform(x)
    assert np.isfinite(matrix).all()  # scikit-learn's imputers and scalers refuse infinities


def test_unparsable_dates_warn_on_one_line():
    train = pd.DataFrame({"d": ["2020-01-01", "2020-02-01", "2020-03-01"], "y": [0, 1, 0]})
    schema = infer_schema(train, target="y")
    long_value = "not a date\n" + "x" * 100
    with pytest.warns(UserWarning, match=r"^column 'd': 2 values are not dates \(e\.g\. 'not a date x+…'\); treated as"):
        x = coerce_features(pd.DataFrame({"d": [long_value, "2021-05-06", "later", None]}), schema)
    assert x["d"].isna().tolist() == [True, False, True, True]


def test_numbers_in_a_date_column_read_as_their_text():
    """Numbers given for dates read as their text, whatever their type: years are years, and epoch
    timestamps are missing with a warning (they were nanoseconds since 1970 when they came as numbers)."""
    train = pd.DataFrame({"d": ["2020-01-01", "2020-02-01", "2020-03-01"], "y": [0, 1, 0]})
    schema = infer_schema(train, target="y")
    for values in ([1624147200, 1624233600], ["1624147200", "1624233600"]):
        with pytest.warns(UserWarning, match=r"2 values are not dates .*seconds or milliseconds since 1970"):
            x = coerce_features(pd.DataFrame({"d": values}), schema)
        assert x["d"].isna().all()
    for years in ([2017, 2019], [2017.0, 2019.0], ["2017", "2019"]):
        x = coerce_features(pd.DataFrame({"d": years}), schema)
        assert x["d"].dt.year.tolist() == [2017, 2019]


def test_durations_are_seconds_whatever_their_unit():
    seconds = np.array([30, 600, 5400])
    train = pd.DataFrame({"dur": pd.to_timedelta(seconds, unit="s"), "y": [0, 1, 0]})
    schema = infer_schema(train, target="y")
    assert schema.column("dur").kind == "numeric" and "seconds" in schema.column("dur").note
    for unit in ("s", "ms", "us", "ns"):
        x = coerce_features(train.assign(dur=train["dur"].astype(f"timedelta64[{unit}]")), schema)
        assert x["dur"].tolist() == seconds.tolist()


def test_clean_values_do_not_warn(recwarn):
    df = _frame()
    schema = infer_schema(df, target="y")
    coerce_features(df, schema)
    blanks = df.assign(num=[""] * len(df), when=[None] * len(df))
    coerce_features(blanks, schema)
    coerce_features(df.iloc[:0], schema)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_missing_columns_are_listed():
    df = _frame()
    schema = infer_schema(df, target="y")
    with pytest.raises(DataError) as err:
        coerce_features(df.drop(columns=["num", "note"]), schema)
    assert err.value.what == "input lacks columns: num, note"


def test_extra_columns_ignore_known_ones():
    df = _frame()
    schema = infer_schema(df, target="y", drop=["note"])
    assert extra_columns(df.assign(new=1), schema) == ["new"]


def test_no_features_left():
    df = pd.DataFrame({"id": np.arange(30), "y": np.arange(30) % 2})
    schema = infer_schema(df, target="y")
    with pytest.raises(DataError, match="no feature columns left") as err:
        build_preprocessor(schema, _cfg())
    assert "data.drop" in err.value.hint
    with pytest.raises(DataError, match="no feature columns left"):
        coerce_features(df, schema)
    texts = pd.DataFrame({"t": [f"some words here {i}" for i in range(30)], "y": np.arange(30) % 2})
    with pytest.raises(DataError, match="no feature columns left"):
        build_preprocessor(infer_schema(texts, target="y"), _cfg(text="drop"))


# --------------------------------------------------------------------------- preprocessor


def test_fitted_on_train_only():
    df = _frame(200)
    train, rest = df.iloc[:120], df.iloc[120:]
    schema, pre = _fit(train)
    scaler = pre.named_transformers_["numeric"].named_steps["scale"]
    train_num = train["num"].to_numpy()
    assert scaler.mean_[0] == pytest.approx(np.mean(np.where(np.isnan(train_num), np.nanmedian(train_num), train_num)))
    assert scaler.mean_[0] != pytest.approx(np.nanmean(df["num"]), abs=1e-6)
    out = pre.transform(coerce_features(rest, schema))
    assert out.dtype == np.float64 and out.shape[0] == 80
    assert not np.isnan(out).any()


def test_output_is_dense_and_named():
    df = _frame()
    schema, pre = _fit(df)
    out = pre.transform(coerce_features(df, schema))
    names = list(pre.get_feature_names_out())
    assert isinstance(out, np.ndarray) and out.shape[1] == len(names) == len(set(names))
    assert "when__when_hour" in names or "when_hour" in names or any(n.endswith("when_hour") for n in names)


def test_unprefixed_names_without_text():
    df = _frame().drop(columns="note")
    _, pre = _fit(df)
    names = list(pre.get_feature_names_out())
    assert names[:4] == ["num", "cat_a", "cat_b", "cat_c"]
    assert "flag_true" in names and "when_timestamp" in names


def test_unseen_category_does_not_crash():
    df = _frame()
    schema, pre = _fit(df.drop(columns="note"))
    new = df.drop(columns="note").head(2).copy()
    new["cat"] = ["zebra", "a"]
    new["flag"] = ["maybe", "yes"]
    out = pre.transform(coerce_features(new, schema))
    names = list(pre.get_feature_names_out())
    cat_columns = [names.index(n) for n in ("cat_a", "cat_b", "cat_c")]
    assert out[0, cat_columns].tolist() == [0, 0, 0]
    assert out[1, cat_columns].tolist() == [1, 0, 0]
    schema, ordinal = _fit(df.drop(columns="note"), encode="ordinal")
    assert ordinal.transform(coerce_features(new, schema))[0, 1] == -1


def test_missing_indicator_adds_columns():
    df = _frame()
    _, plain = _fit(df)
    _, flagged = _fit(df, clean={"missing": {"indicator": True}})
    plain_names = set(plain.get_feature_names_out())
    added = set(flagged.get_feature_names_out()) - plain_names
    assert {n.split("__")[-1] for n in added} == {"missingindicator_num", "missingindicator_cat"}


def test_infrequent_categories_share_a_column():
    df = pd.DataFrame({"c": [f"v{i % 12}" for i in range(120)], "y": np.arange(120) % 2})
    schema = infer_schema(df, target="y")
    pre = build_preprocessor(schema, _cfg(max_categories=4)).fit(coerce_features(df, schema))
    assert len(pre.get_feature_names_out()) == 4


@pytest.mark.parametrize("scale", ["standard", "minmax", "robust", "none"])
def test_scalers(scale):
    df = _frame().drop(columns="note")
    schema, pre = _fit(df, scale=scale)
    out = pre.transform(coerce_features(df, schema))
    num = out[:, 0]
    if scale == "standard":
        assert num.mean() == pytest.approx(0, abs=1e-9)
    elif scale == "minmax":
        assert num.min() == pytest.approx(0) and num.max() == pytest.approx(1)
    elif scale == "none":
        assert num.max() == pytest.approx(df["num"].max())


def test_text_can_be_dropped():
    df = _frame()
    _, tfidf = _fit(df)
    _, dropped = _fit(df, text="drop")
    assert len(tfidf.get_feature_names_out()) > len(dropped.get_feature_names_out())
    assert not any("storm" in n for n in dropped.get_feature_names_out())


def test_datetime_features():
    frame = pd.DataFrame({"d": pd.to_datetime(["2021-03-04 05:00", None, "2020-02-29 00:00"])})
    dt = DatetimeFeatures().fit(frame)
    out = dt.transform(frame)
    assert list(dt.get_feature_names_out()) == ["d_year", "d_month", "d_day", "d_dayofweek", "d_hour", "d_timestamp"]
    assert out[0].tolist() == [2021, 3, 4, 3, 5, pd.Timestamp("2021-03-04 05:00").timestamp()]
    assert np.isnan(out[1]).all()
    days = DatetimeFeatures().fit(frame.iloc[[2]])
    assert "d_hour" not in days.get_feature_names_out() and days.transform(frame).shape == (3, 5)


def test_skops_round_trip(tmp_path):
    df = _frame()
    schema, pre = _fit(df, clean={"missing": {"indicator": True}})
    path = tmp_path / "pre.skops"
    sio.dump(pre, path)
    # exactly TRUSTED_TYPES together with a tokens preprocessor: tests/data/test_text.py
    assert set(sio.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)
    loaded = sio.load(path, trusted=TRUSTED_TYPES)
    x = coerce_features(_frame(seed=1), schema)
    np.testing.assert_array_equal(loaded.transform(x), pre.transform(x))
    assert list(loaded.get_feature_names_out()) == list(pre.get_feature_names_out())


@pytest.mark.parametrize("kwargs", [{"encode": "ordinal", "scale": "none"}, {"scale": "robust", "text": "drop"}])
def test_skops_trust_list_covers_other_settings(tmp_path, kwargs):
    _, pre = _fit(_frame(), **kwargs)
    path = tmp_path / "pre.skops"
    sio.dump(pre, path)
    assert set(sio.get_untrusted_types(file=path)) <= set(TRUSTED_TYPES)
    sio.load(path, trusted=TRUSTED_TYPES)


def test_two_text_columns_with_awkward_names():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({
        "a__b": [" ".join(rng.choice(WORDS, 4)) + f" x{i}" for i in range(40)],
        "a_b": [" ".join(rng.choice(WORDS, 4)) + f" y{i}" for i in range(40)],
        "y": np.arange(40) % 2,
    })
    schema, pre = _fit(df)
    assert [c.kind for c in schema.features] == ["text", "text"]
    names = list(pre.get_feature_names_out())
    assert len(names) == len(set(names)) == pre.transform(coerce_features(df, schema)).shape[1]
    assert "text_a_b__storm" in names and "text_a_b_2__storm" in names

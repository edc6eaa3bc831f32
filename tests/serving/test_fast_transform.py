"""honing.serving.fast_transform against its oracle, the fitted scikit-learn preprocessor's own
``transform``: titanic, california_housing and synthetic recipes (every scaler, both encoders, every
imputation strategy, missing indicators, a boolean column), unseen / missing / infrequent values,
hand-built ColumnTransformers for options honing does not use, what it refuses, the inputs it hands
back to scikit-learn, and the scorer using it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, OrdinalEncoder

import honing
from honing.serving import app, fast_transform
from honing.serving.fast_transform import compile_transform

BUILTIN = Path(honing.__file__).parent / "data" / "builtin"
RARE = ["teal", "navy", "olive", "coral", "plum", "rust"]


def train(tmp: Path, name: str, data: dict, model: str = "logistic_regression") -> honing.Bundle:
    run = honing.train({"name": name, "data": data, "model": {"type": model},
                        "evaluate": {"explain": False, "bootstrap": 0}}, out=tmp / name, track=False)
    return honing.load(run.bundle_dir)


def sklearn_transform(preprocessor, frame: pd.DataFrame) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown categories
        X = preprocessor.transform(frame)
    return X.toarray() if hasattr(X, "toarray") else np.asarray(X)


def assert_same(bundle, raw: pd.DataFrame, singles: int = 0) -> np.ndarray:
    """The fast path (taken, never handed back) equals scikit-learn on ``raw``, as a batch and row by
    row: one-hot and indicator columns exactly, the rest to 1e-12."""
    fast = compile_transform(bundle.preprocessor)
    assert fast is not None
    prepared = bundle.prepare(raw)
    frames = [prepared] + [prepared.iloc[[i]] for i in range(min(singles, len(prepared)))]
    for frame in frames:
        got, expected = fast.transform(frame), sklearn_transform(bundle.preprocessor, frame)
        assert got.dtype == np.float64 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
        for name, out in bundle.preprocessor.output_indices_.items():
            if name.startswith("categorical"):
                np.testing.assert_array_equal(got[:, out], expected[:, out])
    assert fast.fallbacks == 0
    return fast.transform(prepared)


def column(bundle, name: str) -> int:
    return list(bundle.preprocessor.get_feature_names_out()).index(name)


# ---------------------------------------------------------------------------------------------- bundles


@pytest.fixture(scope="module")
def titanic(tmp_path_factory):
    return train(tmp_path_factory.mktemp("titanic"), "titanic",
                 {"source": "builtin:titanic", "drop": ["PassengerId", "Name"]})


@pytest.fixture(scope="module")
def titanic_raw():
    return pd.read_csv(BUILTIN / "titanic.csv")


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory) -> Path:
    """Numbers with gaps, a colour with five common and six rare values, a size, a yes/no flag."""
    rng = np.random.default_rng(7)
    n = 300
    color = rng.choice(["red", "green", "blue", "yellow", "purple"], n).astype(object)
    color[:len(RARE) * 2] = RARE * 2  # each rare value twice
    frame = pd.DataFrame({
        "num1": rng.normal(10, 3, n).round(3), "num2": rng.integers(0, 100, n).astype(float),
        "color": color, "size": rng.choice(["S", "M", "L"], n), "flag": rng.choice(["yes", "no"], n)})
    frame["y"] = ((frame.num1 > 10) ^ (frame.flag == "yes")).astype(int)
    for name, step in [("num1", 11), ("num2", 13), ("color", 17), ("size", 19), ("flag", 23)]:
        frame.loc[3::step, name] = None
    path = tmp_path_factory.mktemp("synthetic") / "synthetic.csv"
    frame.to_csv(path, index=False)
    return path


RECIPES = {
    "minmax_onehot_mean": {"scale": "minmax", "max_categories": 4, "clean": {"missing": {"numeric": "mean"}}},
    "robust_ordinal_most_frequent": {"scale": "robust", "encode": "ordinal",
                                     "clean": {"missing": {"numeric": "most_frequent"}}},
    "none_constant_indicator": {"scale": "none", "clean": {"missing": {
        "numeric": "constant", "categorical": "constant", "fill_value": -1, "indicator": True}}},
}


@pytest.fixture(scope="module")
def synthetic(synthetic_csv, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recipes")
    return {name: train(tmp, name, {"source": str(synthetic_csv), "target": "y", **data})
            for name, data in RECIPES.items()}


def odd_rows() -> pd.DataFrame:
    """Unseen values, an all-missing row, rare (infrequent) colours, boolean spellings, big numbers."""
    return pd.DataFrame({
        "num1": [1.0, None, 5.5, -1e12, 0.0, 2.0, 1e12],
        "num2": [3, None, 99, 0, None, 1e9, 7],
        "color": ["zebra", None, RARE[0], RARE[5], "red", "blue", "green"],
        "size": ["XXL", None, "S", "M", "L", "M", "S"],
        "flag": ["maybe", None, True, "Y", "0", False, "no"],
    })


# ---------------------------------------------------------------------------------------------- parity


def test_titanic_batch_and_single_rows(titanic, titanic_raw):
    assert_same(titanic, titanic_raw, singles=40)


def test_titanic_unseen_missing_and_infrequent_values(titanic, titanic_raw):
    encoder = titanic.preprocessor.named_transformers_["categorical"].named_steps["encode"]
    rare_ticket = encoder.infrequent_categories_[1][0]
    row = titanic_raw.iloc[[0]].drop(columns=["Survived"])
    raw = pd.concat([row] * 4, ignore_index=True)
    raw.loc[0, ["Sex", "Ticket", "Embarked"]] = ["robot", "NO-SUCH-TICKET", "X"]
    raw.loc[1, :] = None  # every value missing
    raw.loc[2, "Ticket"] = rare_ticket
    raw.loc[3, "Age"] = np.nan
    X = assert_same(titanic, raw)
    infrequent = column(titanic, "Ticket_infrequent_sklearn")
    assert X[0, infrequent] == 1 and X[2, infrequent] == 1  # unseen and rare tickets share it
    assert X[0, column(titanic, "Sex_male")] == X[0, column(titanic, "Sex_female")] == 0  # no rare Sex: zeros
    assert X[1, column(titanic, "Sex_male")] == 1  # missing → the most frequent sex
    assert X[1, column(titanic, "Embarked_S")] == 1  # missing → the most frequent port


def test_california_housing(tmp_path_factory):
    """Regression: eight numeric columns (total_bedrooms with blanks) and ocean_proximity."""
    bundle = train(tmp_path_factory.mktemp("housing"), "housing", {"source": "builtin:california_housing"},
                   "ridge")
    raw = pd.read_csv(BUILTIN / "california_housing.csv")
    assert raw["total_bedrooms"].isna().any()
    assert_same(bundle, raw, singles=10)


@pytest.mark.parametrize("recipe", RECIPES)
def test_synthetic_recipes(synthetic, synthetic_csv, recipe):
    bundle = synthetic[recipe]
    assert_same(bundle, pd.read_csv(synthetic_csv), singles=15)
    assert_same(bundle, odd_rows(), singles=7)


def test_infrequent_and_unseen_colours_share_the_infrequent_column(synthetic):
    bundle = synthetic["minmax_onehot_mean"]
    X = assert_same(bundle, odd_rows())
    infrequent = column(bundle, "color_infrequent_sklearn")
    assert X[[0, 2, 3], infrequent].tolist() == [1, 1, 1]  # zebra (unseen), teal, rust (rare)
    assert X[4, column(bundle, "color_red")] == 1 and X[4, infrequent] == 0


def test_ordinal_codes_follow_sorted_categories(synthetic):
    bundle = synthetic["robust_ordinal_most_frequent"]
    X = assert_same(bundle, odd_rows())
    size = column(bundle, "size")
    assert X[[2, 3, 4, 0], size].tolist() == [2.0, 1.0, 0.0, -1.0]  # S, M, L in sorted order L<M<S; XXL unseen


def test_constant_fill_and_indicators(synthetic):
    bundle = synthetic["none_constant_indicator"]
    X = assert_same(bundle, odd_rows())
    assert X[1, column(bundle, "num1")] == X[1, column(bundle, "num2")] == -1.0  # unscaled constant
    assert X[1, column(bundle, "color_-1")] == 1  # the categorical constant is the string "-1"
    indicators = [i for i, n in enumerate(bundle.preprocessor.get_feature_names_out()) if "missingindicator" in n]
    assert len(indicators) == 5 and X[1, indicators].tolist() == [1.0] * 5 and X[6, indicators].tolist() == [0.0] * 5


# ---------------------------------------------------------------------------------------------- refused


def test_text_and_datetime_bundles_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    n = 80
    frame = pd.DataFrame({"x": rng.normal(size=n), "note": [f"word{i % 7} other{i % 3}" for i in range(n)],
                          "when": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
                          "y": np.arange(n) % 2})
    frame.drop(columns="when").to_csv(tmp_path / "text.csv", index=False)
    frame.drop(columns="note").to_csv(tmp_path / "dates.csv", index=False)
    text = train(tmp_path, "text", {"source": str(tmp_path / "text.csv"), "target": "y", "types": {"note": "text"}})
    dates = train(tmp_path, "dates", {"source": str(tmp_path / "dates.csv"), "target": "y",
                                      "types": {"when": "datetime"}})
    assert compile_transform(text.preprocessor) is None
    assert compile_transform(dates.preprocessor) is None


def fit(ct: ColumnTransformer, frame: pd.DataFrame) -> ColumnTransformer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ct.fit(frame)


@pytest.fixture(scope="module")
def frame():
    return pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0, 10.0, np.nan], "b": [np.nan] * 6,
                         "c": ["x", "y", "x", "z", "x", np.nan], "d": ["p", "q", "p", "p", "r", "r"],
                         "e": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})


@pytest.mark.parametrize("transformer", [
    make_pipeline(OneHotEncoder(drop="first")),
    make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="error")),
    make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(drop="first")),
    FunctionTransformer(np.log1p),
])
def test_unsupported_steps_are_refused(frame, transformer):
    ct = fit(ColumnTransformer([("t", transformer, ["e"] if isinstance(transformer, FunctionTransformer)
                                 else ["c"])]), frame)
    assert compile_transform(ct) is None
    assert compile_transform("not a preprocessor") is None


def test_options_honing_does_not_use(frame):
    """Empty columns dropped (keep_empty_features=False), indicator columns, clipping, min_frequency
    with ignored unknowns, infrequent ordinal codes, a passthrough remainder, pandas str columns."""
    ct = fit(ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="mean", add_indicator=True),
                              MinMaxScaler(feature_range=(-1, 1), clip=True)), ["a", "b"]),
        ("hot", make_pipeline(SimpleImputer(strategy="constant", fill_value="?"),
                              OneHotEncoder(min_frequency=2, handle_unknown="ignore", sparse_output=True)), ["c", "d"]),
        ("ord", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OrdinalEncoder(max_categories=2, handle_unknown="use_encoded_value",
                                             unknown_value=np.nan)), ["d", "c"]),
        ("seen", MissingIndicator(features="all"), ["a", "c"]),
    ], remainder="passthrough", sparse_threshold=0.9), frame)
    fast = compile_transform(ct)
    assert fast is not None
    probe = pd.DataFrame({"a": [100.0, np.nan, -5.0, 2.0], "b": [1.0, np.nan, np.nan, 3.0],
                          "c": ["x", "unseen", np.nan, "z"], "d": ["q", "r", "new", "p"], "e": [0.5, 1.0, 2.0, 3.0]})
    for candidate in (probe, probe.astype({"c": "str", "d": "str"})):
        got, expected = fast.transform(candidate), sklearn_transform(ct, candidate)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    assert fast.fallbacks == 0
    assert got[0, 0] == 1.0 and got[2, 0] == -1.0  # clipped to the feature range


def test_a_wrong_compilation_is_caught_by_the_self_check(titanic, monkeypatch):
    monkeypatch.setattr(fast_transform, "_shift_scale", lambda shift, scale: lambda X: X)  # forgets to scale
    assert compile_transform(titanic.preprocessor) is None


def test_many_categories():
    """5,000 training values (the self-check probes a subset) grouped by max_categories."""
    values = pd.DataFrame({"k": [f"v{i}" for i in range(5000)] + ["common"] * 100})
    ct = fit(ColumnTransformer([("k", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(
        max_categories=3, handle_unknown="infrequent_if_exist", sparse_output=False)), ["k"])]), values)
    fast = compile_transform(ct)
    rows = pd.DataFrame({"k": ["common", "v17", "never", np.nan, "v4999"]}, dtype=object)
    np.testing.assert_array_equal(fast.transform(rows), sklearn_transform(ct, rows))
    assert fast.transform(rows)[:, -1].tolist() == [0, 1, 1, 0, 1] and fast.fallbacks == 0


# ---------------------------------------------------------------------------------------------- handed back


def test_inputs_outside_the_fast_path_get_sklearns_answer_or_error(titanic, titanic_raw):
    fast = compile_transform(titanic.preprocessor)
    prepared = titanic.prepare(titanic_raw.head(3))
    ints = prepared.astype({"Pclass": "int64"})  # sklearn casts int columns: same numbers
    np.testing.assert_array_equal(fast.transform(ints), sklearn_transform(titanic.preprocessor, ints))
    assert fast.fallbacks == 1
    bad = {"inf": prepared.assign(Fare=np.inf), "pd.NA": prepared.assign(Sex=pd.Series([pd.NA] * 3, dtype=object)),
           "missing column": prepared.drop(columns="Fare")}
    for frame in bad.values():
        with pytest.raises(Exception) as sklearn_error:
            titanic.preprocessor.transform(frame)
        with pytest.raises(type(sklearn_error.value)):
            fast.transform(frame)
    assert fast.fallbacks == 1 + len(bad)


# ---------------------------------------------------------------------------------------------- the scorer


def test_scorer_scores_without_sklearn_transform_and_like_it(titanic, titanic_raw, monkeypatch):
    columns = [c for c in titanic_raw.columns if c not in ("Survived", "PassengerId", "Name")]
    rows = titanic_raw.head(32)[columns].astype(object).where(titanic_raw.head(32)[columns].notna(), None)
    rows = rows.to_dict("records")
    monkeypatch.setattr(app, "compile_transform", lambda preprocessor: None)
    expected = app.scorer(titanic, columns)(rows)
    monkeypatch.undo()
    score = app.scorer(titanic, columns)
    calls = []
    original = titanic.preprocessor.transform
    monkeypatch.setattr(titanic.preprocessor, "transform", lambda X: calls.append(1) or original(X))
    got = score(rows)
    assert calls == []
    assert got.predictions == expected.predictions
    np.testing.assert_allclose(got.proba, expected.proba, rtol=1e-12, atol=0)


def test_an_overridden_bundle_transform_is_kept(titanic, titanic_raw, monkeypatch):
    columns = [c for c in titanic_raw.columns if c not in ("Survived", "PassengerId", "Name")]
    compiled = []
    monkeypatch.setattr(app, "compile_transform", lambda p: compiled.append(p))
    monkeypatch.setattr(titanic, "transform", lambda frame: np.zeros((len(frame), 70)))
    app.scorer(titanic, columns)
    assert compiled == []

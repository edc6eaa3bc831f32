"""Explanations over raw columns against scikit-learn called directly (the oracle) and against
closed forms (linear models)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn import inspection
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from honing.evaluation.explain import (
    FrameModel,
    local_explanation,
    partial_dependence,
    permutation_importances,
)


def _mixed(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """A raw frame: an informative number, an informative string column, two noise columns."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "sex": rng.choice(["female", "male"], size=n),
        "noise1": rng.normal(size=n),
        "noise2": rng.uniform(size=n),
    })


def _mixed_preprocessor() -> ColumnTransformer:
    return ColumnTransformer([
        ("num", StandardScaler(), ["x", "noise1", "noise2"]),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), ["sex"]),
    ])


def _fit(frame: pd.DataFrame, y: np.ndarray, estimator, task: str) -> tuple[FrameModel, Pipeline]:
    """The same fitted preprocessor + estimator as a FrameModel and as an sklearn Pipeline."""
    pipe = Pipeline([("pre", _mixed_preprocessor()), ("est", estimator)]).fit(frame, y)
    return FrameModel(pipe["pre"].transform, pipe["est"], task), pipe


@pytest.fixture(scope="module")
def regression():
    frame = _mixed()
    rng = np.random.default_rng(1)
    y = 3.0 * frame["x"] + 2.0 * (frame["sex"] == "male") + rng.normal(scale=0.3, size=len(frame))
    return frame, y.to_numpy()


@pytest.fixture(scope="module")
def binary():
    frame = _mixed()
    rng = np.random.default_rng(2)
    logit = 2.0 * frame["x"] + 1.5 * (frame["sex"] == "male") - 0.7
    y = (rng.uniform(size=len(frame)) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return frame, y


# --------------------------------------------------------------------------- FrameModel


def test_frame_model_is_a_fitted_classifier_or_regressor(binary, regression):
    frame, y = binary
    clf, pipe = _fit(frame, y, LogisticRegression(), "classification")
    assert is_classifier(clf) and not is_regressor(clf)
    check_is_fitted(clf)
    assert clf.fit(frame, y) is clf and clone(clf) is clf
    np.testing.assert_array_equal(clf.classes_, [0, 1])
    np.testing.assert_allclose(clf.predict_proba(frame), pipe.predict_proba(frame))
    np.testing.assert_array_equal(clf.predict(frame), pipe.predict(frame))

    frame, y = regression
    reg, pipe = _fit(frame, y, LinearRegression(), "regression")
    assert is_regressor(reg) and not is_classifier(reg)
    assert not hasattr(reg, "predict_proba")
    np.testing.assert_allclose(reg.predict(frame), pipe.predict(frame))


def test_frame_model_pads_probabilities_to_n_classes(binary):
    frame, y = binary
    model = FrameModel(_mixed_preprocessor().fit(frame).transform,
                       LogisticRegression().fit(_mixed_preprocessor().fit_transform(frame), y * 2),
                       "classification", n_classes=3)  # classes 0 and 2 seen, 1 never
    proba = model.predict_proba(frame)
    assert proba.shape == (len(frame), 3) and np.all(proba[:, 1] == 0)
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])


# --------------------------------------------------------------------------- permutation importance


@pytest.mark.parametrize("metric, scoring", [("auto", "r2"), ("mse", "neg_mean_squared_error"),
                                             ("mae", "neg_mean_absolute_error")])
def test_permutation_importances_equal_sklearn_on_a_pipeline(regression, metric, scoring):
    frame, y = regression
    model, pipe = _fit(frame, y, LinearRegression(), "regression")
    ours = permutation_importances(model, frame, y, "regression", metric, repeats=4, seed=7)
    oracle = inspection.permutation_importance(pipe, frame, y, scoring=scoring, n_repeats=4,
                                               random_state=7)
    by_name = {row["feature"]: row for row in ours}
    for j, name in enumerate(frame.columns):
        row = by_name[name]
        assert row["mean"] == pytest.approx(oracle.importances_mean[j], abs=1e-10)
        assert row["std"] == pytest.approx(oracle.importances_std[j], abs=1e-10)
        half = 1.96 * row["std"] / 2.0
        assert row["low"] == pytest.approx(row["mean"] - half) and row["high"] == pytest.approx(row["mean"] + half)
    means = [row["mean"] for row in ours]
    assert means == sorted(means, reverse=True)


def test_permutation_importances_rank_informative_columns_above_noise(binary):
    frame, y = binary
    model, pipe = _fit(frame, y, LogisticRegression(), "classification")
    ours = permutation_importances(model, frame, y, "classification", repeats=5, seed=3)
    assert {ours[0]["feature"], ours[1]["feature"]} == {"x", "sex"}  # the string column too
    assert all(row["mean"] < ours[1]["mean"] for row in ours[2:])
    oracle = inspection.permutation_importance(pipe, frame, y, scoring="accuracy", n_repeats=5,
                                               random_state=3)
    ranked = [row["feature"] for row in ours]
    np.testing.assert_allclose([row["mean"] for row in ours],
                               [oracle.importances_mean[list(frame.columns).index(f)] for f in ranked])


def test_permutation_importances_with_a_probability_metric(binary):
    frame, y = binary
    model, pipe = _fit(frame, y, LogisticRegression(), "classification")
    ours = permutation_importances(model, frame, y, "classification", "log_loss", repeats=3, seed=0)
    oracle = inspection.permutation_importance(pipe, frame, y, scoring="neg_log_loss", n_repeats=3,
                                               random_state=0)
    got = {row["feature"]: row["mean"] for row in ours}
    np.testing.assert_allclose([got[c] for c in frame.columns], oracle.importances_mean, atol=1e-10)
    assert got["x"] > 0 and got["sex"] > 0
    json.dumps(ours)


# --------------------------------------------------------------------------- partial dependence


def _numeric(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.uniform(-2, 2, size=n),
                         "c": rng.normal(size=n)})


def test_partial_dependence_equals_sklearn_brute_on_numeric_columns():
    frame = _numeric()
    rng = np.random.default_rng(4)
    y = np.sin(frame["a"]) + frame["a"] * frame["b"] + rng.normal(scale=0.1, size=len(frame))
    pipe = Pipeline([("pre", StandardScaler()),
                     ("est", RandomForestRegressor(n_estimators=10, random_state=0))]).fit(frame, y)
    model = FrameModel(pipe["pre"].transform, pipe["est"], "regression")
    for feature in ("a", "b"):
        ours = partial_dependence(model, frame, feature, grid=7, task="regression")
        assert ours["kind"] == "numeric" and len(ours["values"]) == 7
        lo, hi = np.percentile(frame[feature], [5, 95])
        assert ours["values"][0] == pytest.approx(lo) and ours["values"][-1] == pytest.approx(hi)
        oracle = inspection.partial_dependence(pipe, frame, [feature], method="brute",
                                               custom_values={feature: ours["values"]})
        np.testing.assert_allclose(ours["average"], oracle["average"][0], rtol=1e-12)


def test_partial_dependence_of_a_linear_model_has_the_coefficient_as_slope():
    frame = _numeric()
    y = 1.5 * frame["a"] - 0.5 * frame["b"] + 4.0
    est = LinearRegression().fit(frame.to_numpy(), y)
    model = FrameModel(lambda f: f.to_numpy(), est, "regression")
    ours = partial_dependence(model, frame, "b", grid=11, task="regression")
    slope, intercept = np.polyfit(ours["values"], ours["average"], 1)
    assert slope == pytest.approx(est.coef_[1], abs=1e-9)
    residuals = np.asarray(ours["average"]) - (slope * np.asarray(ours["values"]) + intercept)
    assert np.max(np.abs(residuals)) < 1e-9
    # at the grid point v: coef_b * v + the mean of everything else
    others = est.predict(frame.assign(b=0.0).to_numpy()).mean()
    assert intercept == pytest.approx(others, abs=1e-9)


def test_partial_dependence_of_classifiers_equals_sklearn():
    frame = _numeric()
    rng = np.random.default_rng(5)
    y3 = np.digitize(frame["a"] + rng.normal(scale=0.3, size=len(frame)), [-0.5, 0.5])
    pipe = Pipeline([("pre", StandardScaler()), ("est", LogisticRegression())]).fit(frame, y3)
    model = FrameModel(pipe["pre"].transform, pipe["est"], "classification")
    for target in range(3):
        ours = partial_dependence(model, frame, "a", grid=6, task="classification", target_class=target)
        oracle = inspection.partial_dependence(pipe, frame, ["a"], method="brute",
                                               custom_values={"a": ours["values"]})
        np.testing.assert_allclose(ours["average"], oracle["average"][target], rtol=1e-10)
    y2 = (y3 == 2).astype(int)
    pipe.fit(frame, y2)
    one = partial_dependence(model, frame, "a", grid=6, task="classification")
    zero = partial_dependence(model, frame, "a", grid=6, task="classification", target_class=0)
    oracle = inspection.partial_dependence(pipe, frame, ["a"], method="brute",
                                           custom_values={"a": one["values"]})
    np.testing.assert_allclose(one["average"], oracle["average"][0], rtol=1e-10)
    np.testing.assert_allclose(np.add(one["average"], zero["average"]), 1.0)
    with pytest.raises(ValueError, match="target_class"):
        partial_dependence(model, frame, "a", task="classification", target_class=2)


def test_partial_dependence_of_a_binary_classifier_on_two_rows():
    """scikit-learn's brute method takes two rows for two classes and fails; ours averages them."""
    frame = _numeric()
    pipe = Pipeline([("pre", StandardScaler()), ("est", LogisticRegression())]).fit(frame, frame["a"] > 0)
    model = FrameModel(pipe["pre"].transform, pipe["est"], "classification")
    two = frame.head(2)
    ours = partial_dependence(model, two, "a", task="classification")
    by_hand = [pipe.predict_proba(two.assign(a=v))[:, 1].mean() for v in ours["values"]]
    assert len(ours["values"]) == 2
    np.testing.assert_allclose(ours["average"], by_hand, rtol=1e-12)


def test_partial_dependence_on_raw_mixed_columns(regression):
    frame, y = regression
    frame = frame.assign(count=np.arange(len(frame)) % 4)  # an integer column
    frame.loc[5, "sex"] = None  # a missing category elsewhere in the frame
    pre = ColumnTransformer([("num", StandardScaler(), ["x", "noise1", "noise2", "count"]),
                             ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                   OneHotEncoder(handle_unknown="ignore")), ["sex"])])
    pipe = Pipeline([("pre", pre), ("est", LinearRegression())]).fit(frame, y)
    model = FrameModel(pipe["pre"].transform, pipe["est"], "regression")
    sex = partial_dependence(model, frame, "sex", task="regression")
    assert sex["kind"] == "categorical" and set(sex["values"]) == {"female", "male"}
    for value, average in zip(sex["values"], sex["average"]):  # brute force by hand
        assert average == pytest.approx(pipe.predict(frame.assign(sex=value)).mean())
    gap = dict(zip(sex["values"], sex["average"]))
    assert gap["male"] - gap["female"] == pytest.approx(2.0, abs=0.3)
    count = partial_dependence(model, frame, "count", task="regression")
    assert count["kind"] == "numeric" and count["values"] == [0.0, 1.0, 2.0, 3.0]
    json.dumps([sex, count])


def test_partial_dependence_keeps_the_20_most_frequent_categories():
    rng = np.random.default_rng(0)
    levels = [f"level{i:02d}" for i in range(30)]
    weights = np.linspace(3, 1, 30) / np.linspace(3, 1, 30).sum()
    frame = pd.DataFrame({"cat": rng.choice(levels, size=600, p=weights), "x": rng.normal(size=600)})
    pre = ColumnTransformer([("num", "passthrough", ["x"]),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["cat"])]).fit(frame)
    est = LinearRegression().fit(pre.transform(frame), rng.normal(size=600))
    ours = partial_dependence(FrameModel(pre, est, "regression"), frame, "cat", task="regression")
    assert ours["values"] == frame["cat"].value_counts().index[:20].tolist()
    assert len(ours["average"]) == 20 and all(isinstance(v, float) for v in ours["average"])


# --------------------------------------------------------------------------- local explanation


def test_local_explanation_of_a_linear_model_is_exact():
    frame = _numeric(n=120)
    rng = np.random.default_rng(6)
    y = 2.0 * frame["a"] - 3.0 * frame["b"] + 0.1 * frame["c"] + rng.normal(scale=0.1, size=len(frame))
    pipe = Pipeline([("pre", StandardScaler()), ("est", LinearRegression())]).fit(frame, y)
    model = FrameModel(pipe["pre"].transform, pipe["est"], "regression")
    coef_raw = pipe["est"].coef_ / pipe["pre"].scale_  # slopes in raw units
    background, row = frame.iloc[:80], frame.iloc[[100]]
    out = local_explanation(model, row, background, task="regression", top=None, samples=80)
    expected = coef_raw * (row.to_numpy()[0] - background.mean().to_numpy())
    got = {c["feature"]: c["contribution"] for c in out["contributions"]}
    np.testing.assert_allclose([got[f] for f in frame.columns], expected, atol=1e-8)
    assert out["prediction"] == pytest.approx(pipe.predict(row)[0])
    assert out["base"] == pytest.approx(pipe.predict(background).mean())
    # additive: the contributions add up to prediction - base
    assert sum(got.values()) == pytest.approx(out["prediction"] - out["base"], abs=1e-8)
    assert [c["feature"] for c in out["contributions"]][:2] == sorted(
        ["a", "b"], key=lambda f: -abs(got[f]))
    json.dumps(out)


class _Product:
    """A model of a product of the first two columns: the third is irrelevant."""

    def predict(self, X):
        X = np.asarray(X, dtype=float)
        return X[:, 0] * X[:, 1]


def test_an_irrelevant_feature_contributes_nothing():
    frame = _numeric(n=150)
    model = FrameModel(lambda f: f.to_numpy(), _Product(), "regression")
    out = local_explanation(model, frame.iloc[[0]], frame, task="regression", top=None, samples=50)
    got = {c["feature"]: c["contribution"] for c in out["contributions"]}
    assert got["c"] == 0.0 and abs(got["a"]) > 0 and abs(got["b"]) > 0
    assert [c["feature"] for c in out["contributions"]][-1] == "c"
    # 50 of 150 background rows, drawn reproducibly
    again = local_explanation(model, frame.iloc[[0]], frame, task="regression", top=None, samples=50)
    assert again == out
    assert local_explanation(model, frame.iloc[[0]], frame, task="regression", samples=50, seed=1) != out


def test_local_explanation_of_a_classifier_on_raw_mixed_columns(binary):
    frame, y = binary
    model, pipe = _fit(frame, y, LogisticRegression(), "classification")
    row, background = frame.iloc[[3]], frame.iloc[20:120]
    out = local_explanation(model, row, background, task="classification", top=2)
    proba = pipe.predict_proba(row)[0]
    cls = int(pipe.predict(row)[0])
    assert out["prediction"] == out["class"] == cls
    assert out["output"] == pytest.approx(proba[cls])
    assert out["base"] == pytest.approx(pipe.predict_proba(background)[:, cls].mean())
    assert len(out["contributions"]) == 2
    sizes = [abs(c["contribution"]) for c in out["contributions"]]
    assert sizes == sorted(sizes, reverse=True)
    assert {c["feature"] for c in out["contributions"]} == {"x", "sex"}
    sex = next(c for c in out["contributions"] if c["feature"] == "sex")
    assert sex["value"] == row["sex"].iloc[0] and isinstance(sex["value"], str)
    occluded = pipe.predict_proba(background.assign(**{c: row[c].iloc[0] for c in frame.columns if c != "sex"}))
    assert sex["contribution"] == pytest.approx(proba[cls] - occluded[:, cls].mean())
    json.dumps(out)


def test_local_explanation_rejects_bad_input(regression):
    frame, y = regression
    model, _ = _fit(frame, y, LinearRegression(), "regression")
    with pytest.raises(ValueError, match="one-row"):
        local_explanation(model, frame.iloc[:2], frame, task="regression")
    with pytest.raises(ValueError, match="background"):
        local_explanation(model, frame.iloc[[0]], frame.iloc[:0], task="regression")
    with pytest.raises(ValueError, match="task"):
        local_explanation(model, frame.iloc[[0]], frame, task="clustering")
    assert not math.isnan(local_explanation(model, frame.iloc[[0]], frame, task="regression")["base"])

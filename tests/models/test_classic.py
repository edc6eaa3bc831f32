"""The classic model registry: every type fits for its tasks; mistakes name the recipe key."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, make_classification, make_regression
from sklearn.preprocessing import StandardScaler

from honing.errors import ModelError
from honing.models.classic import (
    MODELS,
    core_estimator,
    make_baseline,
    make_model,
    model_table,
    resolve_candidates,
)

# classic types only; the neural ones (mlp, cnn) are tested in test_estimators.py
CLASSIFIERS = [n for n in MODELS.names(tasks="classification") if not MODELS.entry(n).meta.get("neural")]
REGRESSORS = [n for n in MODELS.names(tasks="regression") if not MODELS.entry(n).meta.get("neural")]


@pytest.fixture(scope="module")
def cls_data():
    X, y = make_classification(
        n_samples=150, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def reg_data():
    X, y = make_regression(n_samples=150, n_features=6, noise=5.0, random_state=0)
    # target std 10: SVR (epsilon 0.1) and lasso (alpha 1) defaults are target-scale dependent
    return StandardScaler().fit_transform(X), 10 * y / y.std()


def test_registry_has_every_contract_type():
    assert set(MODELS.names()) == {
        "logistic_regression", "linear_regression", "ridge", "lasso", "elastic_net",
        "decision_tree", "random_forest", "extra_trees", "lightgbm", "svm", "knn", "naive_bayes",
        "mlp", "cnn", "rnn", "lstm", "gru", "transformer", "pretrained",
    }
    assert "lasso" not in CLASSIFIERS and "naive_bayes" not in REGRESSORS


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_fits_and_predicts_probabilities(name, cls_data):
    X, y = cls_data
    model = make_model(name, "classification", seed=0).fit(X, y)
    pred = model.predict(X)
    proba = model.predict_proba(X)
    assert set(np.unique(pred)) <= {0, 1, 2}
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (pred == y).mean() > 0.5  # learned something (chance is 1/3)


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressor_fits_and_predicts(name, reg_data):
    X, y = reg_data
    pred = make_model(name, "regression", seed=0).fit(X, y).predict(X)
    assert pred.shape == y.shape
    r2 = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert r2 > 0.3


@pytest.mark.parametrize(
    ("name", "task"), [(n, "classification") for n in CLASSIFIERS] + [(n, "regression") for n in REGRESSORS]
)
def test_same_seed_same_model(name, task, cls_data, reg_data):
    X, y = cls_data if task == "classification" else reg_data
    first = make_model(name, task, seed=7).fit(X, y)
    second = make_model(name, task, seed=7).fit(X, y)
    out = "predict_proba" if task == "classification" else "predict"
    # parallel forests sum their trees in thread order: equal up to float rounding
    np.testing.assert_allclose(getattr(first, out)(X), getattr(second, out)(X), rtol=1e-12, atol=1e-12)


def test_target_scale_does_not_change_scale_sensitive_regressors(reg_data):
    """lasso / elastic_net / svm fit a standardised target: dollars or millions, same fit."""
    X, y = reg_data
    for name in ("lasso", "elastic_net", "svm"):
        small = make_model(name, "regression").fit(X, y).predict(X)
        large = make_model(name, "regression").fit(X, y * 1e5).predict(X)
        np.testing.assert_allclose(large, small * 1e5, rtol=1e-4, atol=1e-3 * 1e5 * np.std(y))


def test_seed_reaches_the_estimator(cls_data):
    X, y = cls_data
    assert make_model("random_forest", "classification", seed=3).random_state == 3
    assert core_estimator(make_model("svm", "classification", seed=3)).random_state == 3
    a = make_model("random_forest", "classification", {"n_estimators": 5}, seed=1).fit(X, y)
    b = make_model("random_forest", "classification", {"n_estimators": 5}, seed=2).fit(X, y)
    assert not np.array_equal(a.predict_proba(X), b.predict_proba(X))


def test_user_params_override_defaults(cls_data):
    X, y = cls_data
    forest = make_model("random_forest", "classification", {"n_estimators": 5}).fit(X, y)
    assert len(forest.estimators_) == 5
    assert make_model("random_forest", "regression").n_estimators == 200
    assert make_model("logistic_regression", "classification").max_iter == 2000
    gbm = make_model("lightgbm", "regression", {"learning_rate": 0.2})
    assert (gbm.learning_rate, gbm.n_estimators) == (0.2, 300)
    assert core_estimator(make_model("svm", "classification", {"C": 3.0})).C == 3.0


def test_breast_cancer_binary_lightgbm():
    X, y = load_breast_cancer(return_X_y=True)
    model = make_model("lightgbm", "classification", {"n_estimators": 30}).fit(X[:400], y[:400])
    assert model.predict_proba(X[400:]).shape == (len(X) - 400, 2)
    assert (model.predict(X[400:]) == y[400:]).mean() > 0.85


def test_baselines(cls_data, reg_data):
    X, y = cls_data
    baseline = make_baseline("classification").fit(X, y)
    assert (baseline.predict(X) == np.bincount(y).argmax()).all()
    # probabilities are the class frequencies, so the log loss is the entropy of the labels
    np.testing.assert_allclose(baseline.predict_proba(X), np.tile(np.bincount(y) / len(y), (len(y), 1)))
    Xr, yr = reg_data
    np.testing.assert_allclose(make_baseline("regression").fit(Xr, yr).predict(Xr), yr.mean())


def test_unknown_type_suggests():
    with pytest.raises(ModelError) as err:
        make_model("random_forrest", "classification")
    assert str(err.value).startswith("model.type:")
    assert "did you mean 'random_forest'" in str(err.value)


def test_type_that_does_not_do_the_task():
    with pytest.raises(ModelError) as err:
        make_model("lasso", "classification")
    assert err.value.what == "model.type: 'lasso' does not do classification"
    assert "logistic_regression" in err.value.hint and "lasso" not in err.value.hint


def test_unknown_param_suggests():
    with pytest.raises(ModelError) as err:
        make_model("random_forest", "classification", {"n_estimatrs": 10})
    assert err.value.what == "model.params.n_estimatrs: not a parameter of random_forest"
    assert err.value.hint == "did you mean 'n_estimators'?"
    with pytest.raises(ModelError, match="model.params.random_state"):
        make_model("linear_regression", "regression", {"random_state": 1})


@pytest.mark.parametrize(
    ("name", "task", "params", "key"),
    [
        ("random_forest", "classification", {"max_depth": -3}, "max_depth"),
        ("logistic_regression", "classification", {"C": -1}, "C"),
        ("svm", "classification", {"kernel": "wavy"}, "kernel"),
        ("knn", "regression", {"n_neighbors": 0}, "n_neighbors"),
        ("lightgbm", "classification", {"n_estimators": -5}, "n_estimators"),
        ("lightgbm", "regression", {"learning_rate": -0.1}, "learning_rate"),
        ("lightgbm", "regression", {"num_leaves": 0}, "num_leaves"),
    ],
)
def test_invalid_param_value_names_the_key(name, task, params, key):
    with pytest.raises(ModelError) as err:
        make_model(name, task, params)
    assert err.value.what.startswith(f"model.params.{key}: ")
    assert "must be" in err.value.what


def test_resolve_candidates():
    names = ["linear", "random_forest", "lightgbm"]
    assert resolve_candidates(names, "classification") == ["logistic_regression", "random_forest", "lightgbm"]
    assert resolve_candidates(names, "regression") == ["ridge", "random_forest", "lightgbm"]
    assert resolve_candidates(["lasso", "knn", "knn", "naive_bayes"], "regression") == ["lasso", "knn"]
    assert resolve_candidates(["ridge", "linear", "ridge"], "regression") == ["ridge"]
    with pytest.raises(ModelError, match="model.candidates: .*did you mean 'lightgbm'"):
        resolve_candidates(["linear", "lightgmb"], "classification")
    with pytest.raises(ModelError, match="model.candidates"):
        resolve_candidates(["lasso"], "classification")


def test_model_table():
    rows = {row["name"]: row for row in model_table()}
    assert set(rows) == set(MODELS.names())
    assert rows["random_forest"]["estimators"] == ["RandomForestClassifier", "RandomForestRegressor"]
    assert rows["svm"]["estimators"] == ["CalibratedClassifierCV(SVC)", "TransformedTargetRegressor(SVR)"]
    assert rows["lasso"]["tasks"] == ["regression"]
    assert all(row["description"] for row in rows.values())

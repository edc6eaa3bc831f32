"""Metrics against scikit-learn called directly (the oracle) and against hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_diabetes, load_iris, make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import label_binarize

from honing.errors import ModelError
from honing.evaluation.metrics import (
    METRIC_NAMES,
    classification_metrics,
    compute_metrics,
    confusion,
    primary_metric,
    regression_metrics,
)


def _fitted_predictions(X, y):
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.4, random_state=0, stratify=y)
    model = LogisticRegression(max_iter=2000).fit(X_tr, y_tr)
    return y_te, model.predict(X_te), model.predict_proba(X_te)


@pytest.fixture(scope="module")
def binary():
    X, y = make_classification(n_samples=200, n_features=6, flip_y=0.1, random_state=1)
    return _fitted_predictions(X, y)


@pytest.fixture(scope="module")
def multiclass():
    X, y = load_iris(return_X_y=True)
    return _fitted_predictions(X[:, :2], y)  # two features: imperfect predictions


def _label_oracle(y, pred):
    out = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
    }
    for avg in ("macro", "weighted"):
        out[f"precision_{avg}"] = skm.precision_score(y, pred, average=avg, zero_division=0)
        out[f"recall_{avg}"] = skm.recall_score(y, pred, average=avg, zero_division=0)
        out[f"f1_{avg}"] = skm.f1_score(y, pred, average=avg, zero_division=0)
    return out


def test_binary_metrics_equal_sklearn(binary):
    y, pred, proba = binary
    got = classification_metrics(y, pred, proba, n_classes=2)
    want = _label_oracle(y, pred) | {
        "roc_auc": skm.roc_auc_score(y, proba[:, 1]),
        "pr_auc": skm.average_precision_score(y, proba[:, 1]),
        "log_loss": skm.log_loss(y, proba),
    }
    assert set(got) == set(METRIC_NAMES["classification"])
    assert got == pytest.approx(want)
    assert all(type(v) is float for v in got.values())
    assert 0.5 < got["accuracy"] < 1.0  # a real, imperfect model


def test_multiclass_metrics_equal_sklearn(multiclass):
    y, pred, proba = multiclass
    got = classification_metrics(y, pred, proba, n_classes=3)
    onehot = label_binarize(y, classes=[0, 1, 2])
    per_class_ap = [skm.average_precision_score(onehot[:, k], proba[:, k]) for k in range(3)]
    want = _label_oracle(y, pred) | {
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
        "pr_auc": float(np.mean(per_class_ap)),
        "log_loss": skm.log_loss(y, proba),
    }
    assert got == pytest.approx(want)
    assert got["accuracy"] < 0.95


def test_without_proba_only_label_metrics(multiclass):
    y, pred, _ = multiclass
    assert "roc_auc" not in classification_metrics(y, pred)


def test_hand_computed_values():
    got = classification_metrics([0, 1, 1, 0], [0, 1, 0, 0])
    assert got["accuracy"] == 0.75
    assert got["recall_macro"] == pytest.approx((1.0 + 0.5) / 2)
    reg = regression_metrics([1, 2], [2, 4])
    assert reg["mae"] == 1.5
    assert reg["mse"] == 2.5
    assert reg["rmse"] == pytest.approx(math.sqrt(2.5))
    assert reg["mape"] == pytest.approx((1 / 1 + 2 / 2) / 2)


def test_one_class_split_gives_nan_not_crash():
    y = [1, 1, 1]
    proba = np.array([[0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    got = classification_metrics(y, [1, 0, 1], proba, n_classes=2)
    assert math.isnan(got["roc_auc"])
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert math.isfinite(got["log_loss"])


def test_multiclass_missing_class_gives_nan():
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    got = classification_metrics([0, 1, 0], [0, 1, 0], proba, n_classes=3)
    assert math.isnan(got["roc_auc"]) and math.isnan(got["pr_auc"])
    assert got["log_loss"] == pytest.approx(skm.log_loss([0, 1, 0], proba, labels=[0, 1, 2]))


def test_confusion_uses_all_classes():
    assert confusion([0, 1, 1], [0, 1, 0], n_classes=3) == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]


def test_regression_metrics_equal_sklearn():
    X, y = load_diabetes(return_X_y=True)
    pred = LinearRegression().fit(X[:300], y[:300]).predict(X[300:])
    truth = y[300:]
    got = compute_metrics("regression", truth, pred)
    want = {
        "mse": skm.mean_squared_error(truth, pred),
        "rmse": skm.root_mean_squared_error(truth, pred),
        "mae": skm.mean_absolute_error(truth, pred),
        "r2": skm.r2_score(truth, pred),
        "mape": skm.mean_absolute_percentage_error(truth, pred),
    }
    assert got == pytest.approx(want)
    assert set(got) == set(METRIC_NAMES["regression"])


def test_compute_metrics_dispatches(binary):
    y, pred, proba = binary
    assert compute_metrics("classification", y, pred, proba, 2) == classification_metrics(y, pred, proba, 2)
    with pytest.raises(ValueError):
        compute_metrics("clustering", y, pred)


def test_primary_metric():
    assert primary_metric("classification") == ("accuracy", True)
    assert primary_metric("regression", "auto") == ("r2", True)
    assert primary_metric("regression", "rmse") == ("rmse", False)
    assert primary_metric("classification", "log_loss") == ("log_loss", False)
    assert primary_metric("classification", "f1_macro") == ("f1_macro", True)


def test_primary_metric_unknown_name():
    with pytest.raises(ModelError) as err:
        primary_metric("classification", "f1_macor")
    assert str(err.value).startswith("evaluate.metric:")
    assert "did you mean 'f1_macro'" in str(err.value)
    with pytest.raises(ModelError, match="regression metric"):
        primary_metric("classification", "r2")

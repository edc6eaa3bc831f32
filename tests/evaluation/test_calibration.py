"""Reliability against hand computation and sklearn's calibration_curve; the Calibrator against
scikit-learn's CalibratedClassifierCV on a frozen model; the skops round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import skops.io as sio
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.datasets import make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB

from honing.evaluation.calibration import TRUSTED_TYPES, Calibrator, reliability


def _splits(n_classes: int, seed: int = 0):
    """Train / calibration / test splits of correlated features (GaussianNB is overconfident on them)."""
    X, y = make_classification(n_samples=3000, n_features=20, n_informative=4, n_redundant=12,
                               n_classes=n_classes, n_clusters_per_class=1, random_state=seed)
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, test_size=0.6, random_state=seed, stratify=y)
    X_cal, X_te, y_cal, y_te = train_test_split(X_rest, y_rest, test_size=0.5, random_state=seed,
                                                stratify=y_rest)
    return X_tr, y_tr, X_cal, y_cal, X_te, y_te


@pytest.fixture(scope="module")
def binary():
    return _splits(2)


@pytest.fixture(scope="module")
def multiclass():
    return _splits(3, seed=1)


def test_reliability_by_hand_binary():
    y = [0, 0, 1, 1, 1]
    p1 = np.array([0.1, 0.3, 0.35, 0.8, 0.9])
    rel = reliability(y, np.column_stack([1 - p1, p1]), bins=2)
    low, high = rel["bins"]
    # [0, 0.5]: conf (0.1+0.3+0.35)/3 = 0.25, 1 of 3 positive; (0.5, 1]: conf 0.85, 2 of 2 positive
    assert (low["low"], low["high"], low["count"]) == (0.0, 0.5, 3)
    assert low["confidence"] == pytest.approx(0.25) and low["accuracy"] == pytest.approx(1 / 3)
    assert high["count"] == 2 and high["confidence"] == pytest.approx(0.85) and high["accuracy"] == 1.0
    assert rel["ece"] == pytest.approx(3 / 5 * abs(1 / 3 - 0.25) + 2 / 5 * 0.15)
    assert rel["mce"] == pytest.approx(0.15)
    assert rel["brier"] == pytest.approx(np.mean((p1 - np.array(y)) ** 2))
    assert rel["mode"] == "positive_class" and rel["n"] == 5
    json.dumps(rel)


def test_reliability_by_hand_multiclass_and_empty_bins():
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.4, 0.35, 0.25]])
    y = [0, 2, 2, 1]  # top-label hits: yes, no, yes, no
    rel = reliability(y, proba, bins=4)
    counts = [b["count"] for b in rel["bins"]]
    assert counts == [0, 2, 1, 1]  # 0.4, 0.5 → (0.25, 0.5]; 0.7 → (0.5, 0.75]; 0.8 → (0.75, 1]
    assert rel["bins"][0]["confidence"] is None and rel["bins"][0]["accuracy"] is None
    assert rel["bins"][1]["confidence"] == pytest.approx(0.45) and rel["bins"][1]["accuracy"] == 0.0
    gaps = [0.45, 0.3, 0.2]
    assert rel["ece"] == pytest.approx((2 * 0.45 + 0.3 + 0.2) / 4)
    assert rel["mce"] == pytest.approx(max(gaps))
    assert rel["mode"] == "top_label" and rel["brier"] is None
    json.dumps(rel)


def test_reliability_matches_calibration_curve(binary):
    X_tr, y_tr, _, _, X_te, y_te = binary
    p1 = GaussianNB().fit(X_tr, y_tr).predict_proba(X_te)[:, 1]
    rel = reliability(y_te, p1, bins=10)  # a 1-D array is P(class 1)
    prob_true, prob_pred = calibration_curve(y_te, p1, n_bins=10, strategy="uniform")
    filled = [b for b in rel["bins"] if b["count"]]
    assert [b["accuracy"] for b in filled] == pytest.approx(prob_true.tolist())
    assert [b["confidence"] for b in filled] == pytest.approx(prob_pred.tolist())
    assert sum(b["count"] for b in rel["bins"]) == len(y_te)


def _oracle(model, method, X_cal, y_cal, X_te):
    return CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(X_cal, y_cal).predict_proba(X_te)


def test_isotonic_equals_sklearn_binary_and_multiclass(binary, multiclass):
    for X_tr, y_tr, X_cal, y_cal, X_te, _ in (binary, multiclass):
        model = GaussianNB().fit(X_tr, y_tr)  # predict_proba only: sklearn calibrates the probabilities
        ours = Calibrator("isotonic").fit(model.predict_proba(X_cal), y_cal).transform(model.predict_proba(X_te))
        np.testing.assert_allclose(ours, _oracle(model, "isotonic", X_cal, y_cal, X_te), atol=1e-12)
        np.testing.assert_allclose(ours.sum(axis=1), 1.0)


def test_sigmoid_equals_sklearn_on_logistic_regression(binary):
    # sklearn fits Platt scaling on decision_function, which for binary logistic regression is the
    # logit of P(1): the same feature this Calibrator fits on, so the two must agree.
    X_tr, y_tr, X_cal, y_cal, X_te, _ = binary
    model = LogisticRegression(C=100.0, max_iter=2000).fit(X_tr, y_tr)
    ours = Calibrator("sigmoid").fit(model.predict_proba(X_cal), y_cal).transform(model.predict_proba(X_te))
    np.testing.assert_allclose(ours, _oracle(model, "sigmoid", X_cal, y_cal, X_te), atol=1e-6)


def test_sigmoid_multiclass_is_normalised_and_monotone(multiclass):
    X_tr, y_tr, X_cal, y_cal, X_te, _ = multiclass
    model = GaussianNB().fit(X_tr, y_tr)
    cal = Calibrator("sigmoid").fit(model.predict_proba(X_cal), y_cal)
    out = cal.transform(model.predict_proba(X_te))
    assert out.shape == (len(X_te), 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert all(m[0] > 0 for m in cal.maps_)  # a higher raw probability is never made less likely


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_lowers_ece_on_held_out_data(binary, multiclass, method):
    for X_tr, y_tr, X_cal, y_cal, X_te, y_te in (binary, multiclass):
        model = GaussianNB().fit(X_tr, y_tr)
        raw = model.predict_proba(X_te)
        calibrated = Calibrator(method).fit(model.predict_proba(X_cal), y_cal).transform(raw)
        before, after = reliability(y_te, raw)["ece"], reliability(y_te, calibrated)["ece"]
        assert before > 0.05  # deliberately miscalibrated
        assert after < 0.6 * before, (before, after)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_skops_round_trip(binary, method):
    X_tr, y_tr, X_cal, y_cal, X_te, _ = binary
    model = GaussianNB().fit(X_tr, y_tr)
    cal = Calibrator(method).fit(model.predict_proba(X_cal), y_cal)
    blob = sio.dumps(cal)
    assert set(sio.get_untrusted_types(data=blob)) <= set(TRUSTED_TYPES)
    loaded = sio.loads(blob, trusted=TRUSTED_TYPES)
    raw = model.predict_proba(X_te)
    np.testing.assert_array_equal(loaded.transform(raw), cal.transform(raw))


def test_misuse_is_refused():
    with pytest.raises(ValueError, match="method"):
        Calibrator("temperature")
    with pytest.raises(RuntimeError, match="not fitted"):
        Calibrator().transform(np.full((2, 2), 0.5))
    cal = Calibrator().fit(np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), [0, 1, 1])
    with pytest.raises(ValueError, match="2 classes"):
        cal.transform(np.full((2, 3), 1 / 3))

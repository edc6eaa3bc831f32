"""Threshold curve and choice against scikit-learn's metrics evaluated by brute force."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from honing.evaluation.threshold import apply_threshold, choose_threshold, threshold_curve


@pytest.fixture(scope="module")
def scores():
    """Noisy scores of an imbalanced binary problem, with ties (rounded to 2 decimals)."""
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    p = np.clip(0.35 * y + rng.normal(0.35, 0.18, y.size), 0, 0.99).round(2)
    return y, p


def _brute(y, p, t):
    """Rates at threshold t by scikit-learn, with the module's zero-division conventions."""
    pred = (p >= t).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "precision": skm.precision_score(y, pred, zero_division=1.0),
        "recall": skm.recall_score(y, pred, zero_division=0.0),
        "f1": skm.f1_score(y, pred, zero_division=0.0),
        "tpr": tp / (tp + fn),
        "fpr": fp / (fp + tn),
    }


def test_curve_matches_sklearn_at_every_threshold(scores):
    y, p = scores
    curve = threshold_curve(y, p, points=21)
    assert curve["threshold"] == pytest.approx(np.linspace(0, 1, 21).tolist())
    for i, t in enumerate(curve["threshold"]):
        expected = _brute(y, p, t)
        for name in ("precision", "recall", "f1"):
            assert curve[name][i] == pytest.approx(expected[name]), (t, name)
    # nothing predicted positive above the top score: precision 1 (zero_division), recall 0
    assert curve["precision"][-1] == 1.0 and curve["recall"][-1] == 0.0 and curve["f1"][-1] == 0.0
    assert curve["recall"][0] == 1.0  # everything positive at t = 0
    json.dumps(curve)
    assert all(type(v) is float for values in curve.values() for v in values)


def test_f1_threshold_is_the_brute_force_best(scores):
    y, p = scores
    chosen = choose_threshold(y, p, "f1")
    best = max(skm.f1_score(y, (p >= t).astype(int)) for t in np.unique(p))
    assert chosen["f1"] == pytest.approx(best)
    assert chosen["threshold"] in set(np.unique(p).tolist())
    expected = _brute(y, p, chosen["threshold"])
    for name, value in expected.items():
        assert chosen[name] == pytest.approx(value), name
    assert chosen["method"] == "f1"
    json.dumps(chosen)


def test_youden_threshold_is_the_brute_force_best(scores):
    y, p = scores
    chosen = choose_threshold(y, p, "youden")
    j = [np.mean(p[y == 1] >= t) - np.mean(p[y == 0] >= t) for t in np.unique(p)]  # TPR − FPR by hand
    assert chosen["tpr"] - chosen["fpr"] == pytest.approx(max(j))
    fpr, tpr, _ = skm.roc_curve(y, p)
    assert chosen["tpr"] - chosen["fpr"] == pytest.approx(np.max(tpr - fpr))
    assert 0.0 <= chosen["threshold"] <= 1.0


def test_youden_clips_an_infinite_threshold():
    # the scores anti-correlate with y: J is best (0) at roc_curve's first threshold, inf
    y = np.array([1, 1, 0, 0])
    p = np.array([0.1, 0.2, 0.8, 0.9])
    chosen = choose_threshold(y, p, "youden")
    assert chosen["threshold"] == 1.0
    assert chosen["tpr"] == 0.0 and chosen["fpr"] == 0.0 and chosen["precision"] == 1.0


def test_fixed_threshold_and_errors(scores):
    y, p = scores
    chosen = choose_threshold(y, p, "fixed", value=0.5)
    assert chosen["threshold"] == 0.5
    assert chosen["f1"] == pytest.approx(skm.f1_score(y, (p >= 0.5).astype(int)))
    with pytest.raises(ValueError, match="method"):
        choose_threshold(y, p, "best")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        choose_threshold(y, p, "fixed", value=1.5)
    with pytest.raises(ValueError, match="both classes"):
        choose_threshold(np.zeros(4), np.full(4, 0.3), "f1")


def test_apply_threshold():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    assert apply_threshold(proba, 0.5).tolist() == [0, 0, 1, 1]
    assert apply_threshold(proba, 0.35).tolist() == [0, 1, 1, 1]
    assert apply_threshold(proba, 0.5).dtype.kind == "i"
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        apply_threshold(np.ones((3, 3)) / 3, 0.5)

"""Mitigations on a planted biased dataset, measured with fairlearn; reweighing checked by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from fairlearn.reductions import DemographicParity, ExponentiatedGradient
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from honing.audit.mitigation import (
    TRUSTED_TYPES,
    FairEnsemble,
    GroupThresholds,
    check_mitigation,
    check_sample_weight,
    exponentiated_gradient,
    reweigh,
    supports_sample_weight,
)
from honing.errors import DataError, RecipeError

N_TRAIN = 1200


def _planted(n: int = 2000, seed: int = 0):
    """Group A gets the positive label far more often, directly and through feature x1."""
    rng = np.random.default_rng(seed)
    a = rng.random(n) < 0.5
    x1 = rng.normal(size=n) + 1.0 * a
    x2 = rng.normal(size=n)
    logit = 1.5 * x1 + 0.8 * x2 + 1.5 * a - 1.2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = np.column_stack([x1, x2, a.astype(float)])
    return X, y, pd.Series(np.where(a, "A", "B"), name="group")


@pytest.fixture(scope="module")
def planted():
    """Train/test split of the planted data and the unmitigated model's DP difference and accuracy."""
    X, y, g = _planted()
    tr, te = np.arange(N_TRAIN), np.arange(N_TRAIN, len(y))
    data = {"X_tr": X[tr], "y_tr": y[tr], "g_tr": g.iloc[tr].reset_index(drop=True),
            "X_te": X[te], "y_te": y[te], "g_te": g.iloc[te].reset_index(drop=True)}
    base = LogisticRegression().fit(data["X_tr"], data["y_tr"])
    data["base"] = base
    data["base_dp"], data["base_acc"] = _measure(data, base.predict(data["X_te"]))
    assert data["base_dp"] > 0.4 and data["base_acc"] > 0.75  # the bias is real, the model decent
    return data


def _measure(data, y_pred) -> tuple[float, float]:
    """fairlearn's demographic parity difference and the accuracy on the held-out rows."""
    dp = demographic_parity_difference(data["y_te"], y_pred, sensitive_features=data["g_te"])
    return dp, float((y_pred == data["y_te"]).mean())


def _reasonable(acc: float, data) -> bool:
    majority = max(data["y_te"].mean(), 1 - data["y_te"].mean())
    return acc >= 0.62 and acc > majority + 0.05


# --------------------------------------------------------------------------- reweighing


def test_reweigh_by_hand():
    # A: 3 rows (2 positive), B: 5 rows (1 positive); P(y=1) = 3/8.
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    g = pd.Series(["A"] * 3 + ["B"] * 5)
    w = reweigh(y, g)
    expected = {("A", 1): (3 / 8) * (3 / 8) / (2 / 8), ("A", 0): (3 / 8) * (5 / 8) / (1 / 8),
                ("B", 1): (5 / 8) * (3 / 8) / (1 / 8), ("B", 0): (5 / 8) * (5 / 8) / (4 / 8)}
    assert w == pytest.approx([expected[(gi, yi)] for gi, yi in zip(g, y, strict=True)])
    assert w.sum() == pytest.approx(len(y))


@pytest.mark.parametrize("seed", range(8))
def test_reweigh_makes_label_independent_of_group(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(100, 500))
    g = pd.Series(rng.choice(["p", "q", "r"], n, p=[0.2, 0.3, 0.5]))
    classes = 2 + seed % 2  # binary and multiclass
    y = rng.integers(0, classes, n)
    y[(g == "p").to_numpy()] = 0  # group p: mostly one class
    y[:classes] = np.arange(classes)
    g.iloc[:classes] = "p"
    w = reweigh(y, g)
    overall = np.bincount(y, minlength=classes) / n
    for group in "pqr":
        m = (g == group).to_numpy()
        weighted = np.bincount(y[m], weights=w[m], minlength=classes) / w[m].sum()
        assert weighted == pytest.approx(overall)  # every group's weighted label rates = overall rates
    assert w.sum() == pytest.approx(n)


def test_reweigh_reduces_demographic_parity_difference(planted):
    w = reweigh(planted["y_tr"], planted["g_tr"])
    model = LogisticRegression().fit(planted["X_tr"], planted["y_tr"], sample_weight=w)
    dp, acc = _measure(planted, model.predict(planted["X_te"]))
    assert dp <= 0.5 * planted["base_dp"]
    assert _reasonable(acc, planted)


def test_reweigh_errors():
    g = pd.Series(["A", "B", "A", "B"], name="sex")
    with pytest.raises(RecipeError, match="regression"):
        reweigh(np.array([0.1, 2.5, 3.7, 1.2]), g)
    with pytest.raises(DataError, match="column 'sex' has one group only"):
        reweigh(np.array([0, 1, 0, 1]), pd.Series(["A"] * 4, name="sex"))


# --------------------------------------------------------------------------- checks


def test_check_mitigation():
    for mitigation in ("reweigh", "threshold", "exponentiated_gradient"):
        check_mitigation(mitigation, "classification", n_classes=2)
        with pytest.raises(RecipeError, match=f"'{mitigation}' does not apply to a regression task"):
            check_mitigation(mitigation, "regression")
    check_mitigation("reweigh", "classification", n_classes=4)
    with pytest.raises(RecipeError, match="binary classification only") as err:
        check_mitigation("threshold", "classification", n_classes=3)
    assert "for multiclass use mitigation 'reweigh'" in str(err.value)
    with pytest.raises(RecipeError, match="did you mean 'reweigh'"):
        check_mitigation("reweight", "binary")


def test_sample_weight_support():
    assert supports_sample_weight(LogisticRegression())
    assert not supports_sample_weight(KNeighborsClassifier())
    check_sample_weight(LogisticRegression(), "reweigh")
    with pytest.raises(RecipeError, match="KNeighborsClassifier cannot take") as err:
        check_sample_weight(KNeighborsClassifier(), "reweigh")
    assert "'reweigh'" in str(err.value) and "'threshold'" in str(err.value)
    X, y, g = _planted(100)
    with pytest.raises(RecipeError, match="KNeighborsClassifier"):
        exponentiated_gradient(KNeighborsClassifier(), X, y, g)


# --------------------------------------------------------------------------- group thresholds


def test_group_thresholds_reduce_demographic_parity_difference(planted):
    base = planted["base"]
    fitted = GroupThresholds().fit(base.predict_proba(planted["X_tr"]), planted["y_tr"], planted["g_tr"])
    y_pred = fitted.predict(base.predict_proba(planted["X_te"]), planted["g_te"])
    dp, acc = _measure(planted, y_pred)
    assert dp < 0.1 and dp <= 0.5 * planted["base_dp"]
    assert _reasonable(acc, planted)
    assert np.array_equal(y_pred, fitted.predict(base.predict_proba(planted["X_te"])[:, 1], planted["g_te"]))
    json.dumps(fitted.to_dict(), allow_nan=False)
    assert set(fitted.thresholds_) == {"A", "B"} and all(type(t) is float for t in fitted.thresholds_.values())
    restored = GroupThresholds.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert np.array_equal(y_pred, restored.predict(base.predict_proba(planted["X_te"]), planted["g_te"]))


@pytest.mark.parametrize("seed", range(6))
def test_group_thresholds_equal_rates_and_best_accuracy(seed):
    rng = np.random.default_rng(seed)
    n = 300
    g = rng.choice(["u", "v", "w"], n, p=[0.5, 0.3, 0.2])
    scores = 1 / (1 + np.exp(-rng.normal(np.where(g == "u", 0.5, -0.5), 1.0)))  # no ties
    y = (rng.random(n) < scores).astype(int)
    fitted = GroupThresholds(grid=101).fit(scores, y, g)
    y_pred = fitted.predict(scores, g)
    assert (y_pred == y).mean() == pytest.approx(fitted.accuracy_)
    assert y_pred.mean() == pytest.approx(fitted.rate_)
    sizes = {group: (g == group).sum() for group in "uvw"}
    rates = {group: y_pred[g == group].mean() for group in "uvw"}
    for one in "uvw":  # equal selection rates, up to rounding to whole rows
        for other in "uvw":
            assert abs(rates[one] - rates[other]) <= 0.5 / sizes[one] + 0.5 / sizes[other] + 1e-9
    # brute force: every group selecting its top round(r·n_g) scores, for each rate on the grid
    best = 0.0
    for rate in np.linspace(0, 1, 101):
        hits = 0
        for group in "uvw":
            m = g == group
            k = int(np.rint(rate * m.sum()))
            chosen = np.zeros(m.sum(), dtype=int)
            chosen[np.argsort(-scores[m], kind="stable")[:k]] = 1
            hits += (chosen == y[m]).sum()
        best = max(best, hits / n)
    assert fitted.accuracy_ == pytest.approx(best)


def test_group_thresholds_unseen_group_and_errors():
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.6, 0.4, 0.1])
    y = np.array([1, 1, 0, 0, 1, 1, 0, 1])
    g = np.array(["a"] * 4 + ["b"] * 4)
    fitted = GroupThresholds().fit(scores, y, g)
    # by hand: selecting the top half of each group is right 7 times in 8 (a quarter or three: 5)
    assert fitted.rate_ == 0.5 and fitted.accuracy_ == 7 / 8
    # halfway between the last selected and the first rejected score
    assert fitted.thresholds_ == pytest.approx({"a": 0.55, "b": 0.5})
    unseen = fitted.predict(np.array([0.0, 0.5, 1.0]), np.array(["zzz"] * 3))
    assert list(unseen) == [int(s >= fitted.default_) for s in (0.0, 0.5, 1.0)]
    with pytest.raises(RecipeError, match="binary classification only"):
        fitted.fit(np.full((8, 3), 1 / 3), y, g)
    with pytest.raises(RecipeError, match="binary classification only"):
        fitted.fit(scores, np.array([0, 1, 2, 0, 1, 2, 0, 1]), g)
    with pytest.raises(DataError, match="one group only"):
        fitted.fit(scores, y, np.array(["a"] * 8))


# --------------------------------------------------------------------------- exponentiated gradient


@pytest.fixture(scope="module")
def ensemble(planted):
    return exponentiated_gradient(LogisticRegression(), planted["X_tr"], planted["y_tr"], planted["g_tr"])


def test_exponentiated_gradient_reduces_demographic_parity_difference(planted, ensemble):
    dp, acc = _measure(planted, ensemble.predict(planted["X_te"]))
    assert dp < 0.1 and dp <= 0.5 * planted["base_dp"]
    assert _reasonable(acc, planted)


@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")  # inside fairlearn's reductions
def test_fair_ensemble_matches_fairlearn_mixture(planted, ensemble):
    mitigator = ExponentiatedGradient(LogisticRegression(), constraints=DemographicParity(), eps=0.01, max_iter=50)
    mitigator.fit(planted["X_tr"], planted["y_tr"], sensitive_features=planted["g_tr"])
    # fairlearn's probability of predicting 1 (what its randomised predict draws from)
    expected = mitigator._pmf_predict(planted["X_te"])[:, 1]
    proba = ensemble.predict_proba(planted["X_te"])
    assert proba[:, 1] == pytest.approx(expected)
    assert proba.sum(axis=1) == pytest.approx(1.0)
    assert ensemble.weights_.sum() == pytest.approx(1.0) and (ensemble.weights_ > 0).all()
    votes = np.column_stack([est.predict(planted["X_te"]) for est in ensemble.estimators_])
    assert proba[:, 1] == pytest.approx(votes @ ensemble.weights_)  # by hand
    assert np.array_equal(ensemble.predict(planted["X_te"]), (proba[:, 1] > 0.5).astype(int))


def test_fair_ensemble_skops_round_trip(planted, ensemble):
    blob = sio.dumps(ensemble)
    assert set(sio.get_untrusted_types(data=blob)) <= set(TRUSTED_TYPES)
    loaded = sio.loads(blob, trusted=TRUSTED_TYPES)
    assert isinstance(loaded, FairEnsemble)
    assert np.array_equal(loaded.predict_proba(planted["X_te"]), ensemble.predict_proba(planted["X_te"]))
    assert np.array_equal(loaded.predict(planted["X_te"]), ensemble.predict(planted["X_te"]))


def test_exponentiated_gradient_equalized_odds(planted):
    base_eo = equalized_odds_difference(planted["y_te"], planted["base"].predict(planted["X_te"]),
                                        sensitive_features=planted["g_te"])
    fair = exponentiated_gradient(LogisticRegression(), planted["X_tr"], planted["y_tr"], planted["g_tr"],
                                  constraint="equalized_odds")
    eo = equalized_odds_difference(planted["y_te"], fair.predict(planted["X_te"]), sensitive_features=planted["g_te"])
    assert eo <= 0.5 * base_eo


def test_exponentiated_gradient_errors():
    X, y, g = _planted(100)
    with pytest.raises(RecipeError, match="did you mean 'demographic_parity'"):
        exponentiated_gradient(LogisticRegression(), X, y, g, constraint="demographic_parit")
    with pytest.raises(RecipeError, match="binary classification only"):
        exponentiated_gradient(LogisticRegression(), X, np.arange(100) % 3, g)
    with pytest.raises(RecipeError, match="regression"):
        exponentiated_gradient(LogisticRegression(), X, X[:, 0], g)
    with pytest.raises(ValueError, match="one weight per estimator"):
        FairEnsemble([], [])

"""Cross-validation against scikit-learn's splitters and its cross_validate with a Pipeline (the
oracles), a leakage trap proving the in-fold refit matters, and paired model comparison."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn import model_selection as skms
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.dummy import DummyClassifier
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from honing.errors import DataError
from honing.evaluation.crossval import CVResult, compare, cross_validate, fold_indices
from honing.evaluation.intervals import t_interval


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def cancer_folds(cancer):
    X, y = cancer
    return fold_indices(len(X), y, folds=5, repeats=2, stratify=True, seed=0)


def _logistic():
    return StandardScaler(), LogisticRegression(max_iter=1000)


# --------------------------------------------------------------------------------- fold_indices


def _same_splits(ours, theirs):
    theirs = list(theirs)
    assert len(ours) == len(theirs)
    for (tr, te), (tr2, te2) in zip(ours, theirs):
        assert np.array_equal(tr, tr2) and np.array_equal(te, te2)


def test_stratified_folds_equal_sklearn(cancer):
    X, y = cancer
    ours = fold_indices(len(y), y, folds=4, repeats=3, stratify=True, seed=42)
    _same_splits(ours, skms.RepeatedStratifiedKFold(n_splits=4, n_repeats=3, random_state=42).split(X, y))


def test_plain_folds_equal_sklearn():
    ours = fold_indices(50, None, folds=5, repeats=2, seed=7)
    _same_splits(ours, skms.RepeatedKFold(n_splits=5, n_repeats=2, random_state=7).split(np.zeros((50, 1))))


def _held_out_once_per_repeat(splits, n_rows, folds):
    for r in range(len(splits) // folds):
        held = np.concatenate([te for _, te in splits[r * folds:(r + 1) * folds]])
        assert np.array_equal(np.sort(held), np.arange(n_rows))
    for tr, te in splits:
        assert not set(tr) & set(te)
        assert len(tr) + len(te) == n_rows


@pytest.mark.parametrize("stratify", [False, True])
def test_grouped_folds_keep_groups_together(stratify):
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 30, 300)
    y = rng.integers(0, 2, 300)
    splits = fold_indices(300, y, folds=5, repeats=3, stratify=stratify, groups=groups, seed=1)
    assert len(splits) == 15
    _held_out_once_per_repeat(splits, 300, 5)
    for tr, te in splits:
        assert not set(groups[tr]) & set(groups[te])
    kind = skms.StratifiedGroupKFold if stratify else skms.GroupKFold
    _same_splits(splits[5:10], kind(n_splits=5, shuffle=True, random_state=2).split(groups, y, groups))
    assert not np.array_equal(splits[0][1], splits[5][1])  # each repeat shuffles anew
    again = fold_indices(300, y, folds=5, repeats=3, stratify=stratify, groups=groups, seed=1)
    _same_splits(splits, again)


def test_every_row_held_out_once_per_repeat(cancer):
    _, y = cancer
    _held_out_once_per_repeat(fold_indices(len(y), y, folds=5, repeats=3, stratify=True), len(y), 5)
    _held_out_once_per_repeat(fold_indices(31, None, folds=4, repeats=2, seed=3), 31, 4)


@pytest.mark.parametrize("kwargs", [
    {"n_rows": 4, "y": None, "folds": 5},
    {"n_rows": 20, "y": np.array([0] * 17 + [1] * 3), "folds": 5, "stratify": True},
    {"n_rows": 20, "y": None, "folds": 5, "groups": np.repeat([0, 1, 2, 3], 5)},
    {"n_rows": 20, "y": None, "folds": 1},
])
def test_too_few_rows_groups_or_class_members_is_a_data_error(kwargs):
    with pytest.raises(DataError) as err:
        fold_indices(**kwargs)
    assert "evaluate.cv.folds" in err.value.what and err.value.hint


# ------------------------------------------------------------------------------- cross_validate


def test_cross_validate_equals_sklearn_pipeline_loop(cancer, cancer_folds):
    X, y = cancer
    ours = cross_validate(X, y, _logistic, cancer_folds, "classification", n_classes=2)
    theirs = skms.cross_validate(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)), X, y, cv=cancer_folds,
        scoring=["accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "neg_log_loss"])
    assert len(ours.metrics) == 10
    for name in ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc"):
        assert ours.scores(name) == pytest.approx(theirs[f"test_{name}"], rel=1e-9), name
    assert ours.scores("log_loss") == pytest.approx(-theirs["test_neg_log_loss"], rel=1e-9)
    assert ours.n_train == round(np.mean([len(tr) for tr, _ in cancer_folds]))
    assert ours.n_test == round(np.mean([len(te) for _, te in cancer_folds]))


def test_cross_validate_regression_equals_sklearn():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    folds = fold_indices(len(X), None, folds=5, seed=0)
    ours = cross_validate(X, y.to_numpy(), lambda: (StandardScaler(), Ridge(alpha=1.0)), folds, "regression")
    theirs = skms.cross_validate(make_pipeline(StandardScaler(), Ridge(alpha=1.0)), X, y, cv=folds,
                                 scoring=["r2", "neg_mean_absolute_error"])
    assert ours.scores("r2") == pytest.approx(theirs["test_r2"], rel=1e-9)
    assert ours.scores("mae") == pytest.approx(-theirs["test_neg_mean_absolute_error"], rel=1e-9)


def _noise(seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(100, 2000)))
    y = np.repeat([0, 1], 50)
    rng.shuffle(y)
    return X, y


def test_leakage_trap_selection_inside_folds_is_honest():
    """Pure noise: choosing the 20 features most correlated with y on all rows, then CV, looks
    great; refitting the choice inside each fold reveals chance."""
    X, y = _noise()
    folds = fold_indices(len(y), y, folds=5, repeats=2, stratify=True, seed=0)
    inside = cross_validate(X, y, lambda: (SelectKBest(f_classif, k=20), LogisticRegression()),
                            folds, "classification")
    leaked = pd.DataFrame(SelectKBest(f_classif, k=20).fit_transform(X, y))
    outside = cross_validate(leaked, y, lambda: (None, LogisticRegression()), folds, "classification")
    assert inside.summary()["accuracy"]["mean"] < 0.65
    assert outside.summary()["accuracy"]["mean"] > 0.8


class _Spy(TransformerMixin, BaseEstimator):
    """Records the index labels of every frame it is fitted on or transforms."""

    def __init__(self, log: list):
        self.log = log

    def fit(self, X, y=None):
        self.log.append(("fit", frozenset(X.index)))
        return self

    def transform(self, X):
        self.log.append(("transform", frozenset(X.index)))
        return X.to_numpy()


def test_spy_preprocessor_never_fits_on_held_out_rows(cancer):
    X, y = cancer
    X = X.set_axis([f"row{i}" for i in range(len(X))])  # index labels that are not positions
    folds = fold_indices(len(y), y, folds=4, repeats=2, stratify=True, seed=5)
    made, log = [], []

    def make():
        spy = _Spy(log)
        made.append(spy)
        return spy, DummyClassifier()

    cross_validate(X, y, make, folds, "classification")
    assert len(made) == len(folds) and len({id(s) for s in made}) == len(folds)  # fresh per fold
    assert [kind for kind, _ in log] == ["fit", "transform", "transform"] * len(folds)
    for f, (train, test) in enumerate(folds):
        fitted, train_out, test_out = (rows for _, rows in log[3 * f:3 * f + 3])
        assert fitted == frozenset(X.index[train]) == train_out
        assert not fitted & frozenset(X.index[test])
        assert test_out == frozenset(X.index[test])


class _Recorder:
    """A Progress stand-in that records bar use."""

    def __init__(self):
        self.events = []

    def bar(self, total, description):
        self.events.append(("bar", total))
        return self

    def advance(self, steps=1, status=""):
        self.events.append(("advance", status))

    def close(self):
        self.events.append(("close",))

    def note(self, message):
        self.events.append(("note", message))


def test_progress_advances_once_per_fold(cancer, cancer_folds):
    X, y = cancer
    recorder = _Recorder()
    cross_validate(X, y, _logistic, cancer_folds[:3], "classification", progress=recorder)
    kinds = [e[0] for e in recorder.events]
    assert kinds[:5] == ["bar", "advance", "advance", "advance", "close"]
    assert recorder.events[0] == ("bar", 3) and "fold 3/3" in recorder.events[3][1]


# ---------------------------------------------------------------------------------- CVResult


def test_summary_and_to_dict_are_json_ready():
    result = CVResult([{"accuracy": 0.8, "roc_auc": math.nan}, {"accuracy": 0.9, "roc_auc": 0.7},
                       {"accuracy": 0.85, "roc_auc": math.nan}], n_train=80, n_test=20)
    summary = result.summary()
    scores = [0.8, 0.9, 0.85]
    assert summary["accuracy"]["mean"] == pytest.approx(np.mean(scores))
    assert summary["accuracy"]["std"] == pytest.approx(np.std(scores, ddof=1))
    assert (summary["accuracy"]["low"], summary["accuracy"]["high"]) == pytest.approx(t_interval(scores))
    assert summary["roc_auc"] == {"mean": 0.7, "std": None, "low": None, "high": None}
    out = result.to_dict()
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text)["folds"][0] == {"accuracy": 0.8, "roc_auc": None}
    assert out["n_train"] == 80 and out["n_test"] == 20
    with pytest.raises(KeyError, match="accurcy"):
        result.scores("accurcy")


def test_intervals_stay_inside_the_metric_range():
    """Three tiny folds: the t interval of accuracy would start below 0 and of log loss too; r2 has no floor."""
    scores = [0.0, 0.6, 0.0]
    low, high = t_interval(scores)
    assert low < 0  # what the t interval alone says
    summary = CVResult([{"accuracy": s, "log_loss": s, "r2": s} for s in scores], 6, 3).summary()
    assert summary["accuracy"]["low"] == 0.0 and summary["accuracy"]["high"] == pytest.approx(min(high, 1.0))
    assert summary["log_loss"]["low"] == 0.0
    assert summary["r2"]["low"] == pytest.approx(low)


# ---------------------------------------------------------------------------------- compare


def test_compare_a_better_model_with_the_dummy(cancer, cancer_folds):
    X, y = cancer
    model = cross_validate(X, y, _logistic, cancer_folds, "classification")
    dummy = cross_validate(X, y, lambda: (None, DummyClassifier()), cancer_folds, "classification")
    out = compare(model, dummy, "accuracy")
    assert out["p_value"] < 0.05 and out["better"] == "a"
    assert out["mean_a"] > out["mean_b"] and out["mean_difference"] == pytest.approx(out["mean_a"] - out["mean_b"])
    assert out["wilcoxon_p_value"] < 0.05
    assert compare(dummy, model, "accuracy")["better"] == "b"
    assert compare(model, dummy, "log_loss", greater_is_better=False)["better"] == "a"
    json.dumps(out, allow_nan=False)


def test_compare_a_model_with_itself_is_a_tie(cancer, cancer_folds):
    X, y = cancer
    model = cross_validate(X, y, _logistic, cancer_folds[:5], "classification")
    out = compare(model, model, "accuracy")
    assert out["better"] == "tie" and out["p_value"] == 1.0 and out["wilcoxon_p_value"] == 1.0
    assert out["mean_difference"] == 0.0


def test_compare_needs_the_same_folds():
    a = CVResult([{"accuracy": 0.8}] * 5, 80, 20)
    b = CVResult([{"accuracy": 0.8}] * 4, 80, 20)
    with pytest.raises(ValueError, match="same folds"):
        compare(a, b, "accuracy")


def test_time_folds_train_only_on_earlier_rows():
    """data.split.time with evaluate.cv: expanding-window folds over the rows in time order, dates parsed
    (12/31/2019 sorts before 03/01/2020, which their text does not)."""
    from honing.data.split import time_order
    from honing.evaluation.crossval import time_folds

    days = pd.Series(pd.date_range("2019-06-01", periods=120, freq="D")).sample(frac=1, random_state=0)
    text = days.dt.strftime("%m/%d/%Y").reset_index(drop=True)
    folds = time_folds(time_order(text), 4, 1)
    expected = list(skms.TimeSeriesSplit(n_splits=4).split(np.arange(120)))
    assert [len(te) for _, te in folds] == [len(te) for _, te in expected]
    when = days.reset_index(drop=True)
    for train, test in folds:
        assert when[train].max() < when[test].min()
    with pytest.raises(DataError, match="evaluate.cv.repeats: 2, but folds in time order"):
        time_folds(time_order(text), 4, 2)

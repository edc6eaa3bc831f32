"""Intervals and paired tests against scipy and hand formulas; the vectorised bootstrap against
compute_metrics called on the very same resampled rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from honing.evaluation.intervals import (
    bootstrap_distribution,
    bootstrap_intervals,
    corrected_resampled_ttest,
    resample_indices,
    t_interval,
    wilcoxon_test,
)
from honing.evaluation.metrics import METRIC_NAMES, compute_metrics


def _classification(n: int, k: int, seed: int, rounding: int | None = 1):
    """Labels, predictions and probabilities of a decent but imperfect classifier (rounded
    logits so scores tie, which the rank metrics must handle)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.2
    if rounding is not None:
        logits = np.round(logits, rounding)
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba.argmax(axis=1), proba


def _regression(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.normal(10.0, 2.0, n)  # far from 0, so mape is tame
    return y, y + rng.normal(0.0, 1.0, n)


# ---------------------------------------------------------------------------------- t interval


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_t_interval_matches_scipy(confidence):
    values = [0.81, 0.84, 0.79, 0.88, 0.83, 0.86]
    expected = stats.t.interval(confidence, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert t_interval(values, confidence) == pytest.approx(expected, rel=1e-12)


def test_t_interval_drops_nan_and_handles_degenerate_inputs():
    values = [0.7, math.nan, 0.9, 0.8]
    clean = [0.7, 0.9, 0.8]
    expected = stats.t.interval(0.95, 2, loc=np.mean(clean), scale=stats.sem(clean))
    assert t_interval(values) == pytest.approx(expected)
    assert all(math.isnan(v) for v in t_interval([0.5]))
    assert all(math.isnan(v) for v in t_interval([0.5, math.nan]))
    assert t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)
    with pytest.raises(ValueError):
        t_interval([0.1, 0.2], confidence=1.5)


# --------------------------------------------------------------------------------- paired tests


def test_corrected_ttest_matches_hand_formula():
    a = [0.90, 0.87, 0.92, 0.88, 0.91, 0.89, 0.93, 0.86, 0.90, 0.92]
    b = [0.85, 0.86, 0.88, 0.84, 0.90, 0.85, 0.89, 0.86, 0.87, 0.88]
    n_train, n_test = 900, 100
    d = [x - y for x, y in zip(a, b)]
    j = len(d)
    mean = sum(d) / j
    var = sum((v - mean) ** 2 for v in d) / (j - 1)
    t = mean / math.sqrt((1 / j + n_test / n_train) * var)
    p = 2 * stats.t.sf(abs(t), j - 1)
    out = corrected_resampled_ttest(a, b, n_train, n_test)
    assert out["mean_difference"] == pytest.approx(mean)
    assert out["t"] == pytest.approx(t)
    assert out["p_value"] == pytest.approx(p)
    # the correction makes it more conservative than the naive paired t-test
    assert out["p_value"] > stats.ttest_rel(a, b).pvalue
    swapped = corrected_resampled_ttest(b, a, n_train, n_test)
    assert swapped["t"] == pytest.approx(-t) and swapped["p_value"] == pytest.approx(p)


def test_corrected_ttest_degenerate_cases_are_json_ready():
    same = corrected_resampled_ttest([0.8, 0.9, 0.7], [0.8, 0.9, 0.7], 80, 20)
    assert same == {"mean_difference": 0.0, "t": 0.0, "p_value": 1.0}
    shifted = corrected_resampled_ttest([0.75, 1.0, 0.5], [0.5, 0.75, 0.25], 80, 20)
    assert shifted["p_value"] == 0.0 and shifted["t"] is None
    single = corrected_resampled_ttest([0.9], [0.8], 80, 20)
    assert single["t"] is None and single["p_value"] is None
    with_nan = corrected_resampled_ttest([0.9, math.nan, 0.8, 0.85], [0.8, 0.7, 0.75, 0.8], 80, 20)
    assert with_nan == corrected_resampled_ttest([0.9, 0.8, 0.85], [0.8, 0.75, 0.8], 80, 20)
    for out in (same, shifted, single, with_nan):
        json.dumps(out, allow_nan=False)


def test_wilcoxon_matches_scipy():
    a = [0.91, 0.85, 0.88, 0.93, 0.86, 0.90, 0.87, 0.92]
    b = [0.89, 0.86, 0.84, 0.90, 0.83, 0.88, 0.88, 0.87]
    expected = stats.wilcoxon(a, b)
    out = wilcoxon_test(a, b)
    assert out["statistic"] == pytest.approx(expected.statistic)
    assert out["p_value"] == pytest.approx(expected.pvalue)
    assert wilcoxon_test(a, a) == {"statistic": 0.0, "p_value": 1.0}


# ------------------------------------------------------------------------------------ bootstrap


@pytest.mark.parametrize("k", [2, 3, 5])
def test_bootstrap_matches_plain_loop_classification(k):
    y, pred, proba = _classification(400, k, seed=k)
    values = bootstrap_distribution("classification", y, pred, proba, k, resamples=8, seed=7)
    rows = resample_indices("classification", y, resamples=8, seed=7)
    assert set(values) == set(METRIC_NAMES["classification"])
    for b in range(8):
        expected = compute_metrics("classification", y[rows[b]], pred[rows[b]], proba[rows[b]], k)
        for name, value in expected.items():
            assert values[name][b] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_bootstrap_matches_plain_loop_labels_only_and_unpredicted_class():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    pred = np.where(y == 2, 1, y)  # class 2 is never predicted
    pred[:40] = 0
    values = bootstrap_distribution("classification", y, pred, None, 3, resamples=6, seed=1)
    rows = resample_indices("classification", y, resamples=6, seed=1)
    for b in range(6):
        expected = compute_metrics("classification", y[rows[b]], pred[rows[b]], None, 3)
        assert set(values) == set(expected)
        for name, value in expected.items():
            assert values[name][b] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_bootstrap_matches_plain_loop_regression():
    y, pred = _regression(300, seed=4)
    values = bootstrap_distribution("regression", y, pred, resamples=8, seed=2)
    rows = resample_indices("regression", y, resamples=8, seed=2)
    for b in range(8):
        for name, value in compute_metrics("regression", y[rows[b]], pred[rows[b]]).items():
            assert values[name][b] == pytest.approx(value, rel=1e-9), name


def test_bootstrap_falls_back_to_compute_metrics_for_unnormalised_scores():
    y, pred, proba = _classification(200, 3, seed=0)
    scores = proba * 0.9  # not probabilities: sklearn's multiclass roc_auc refuses them
    values = bootstrap_distribution("classification", y, pred, scores, 3, resamples=4, seed=0)
    rows = resample_indices("classification", y, resamples=4, seed=0)
    for b in range(4):
        expected = compute_metrics("classification", y[rows[b]], pred[rows[b]], scores[rows[b]], 3)
        for name, value in expected.items():
            if math.isnan(value):
                assert math.isnan(values[name][b]), name
            else:
                assert values[name][b] == pytest.approx(value, rel=1e-9), name


def test_stratified_resamples_keep_every_class_count():
    y = np.array([0] * 50 + [1] * 7 + [2] * 3)
    rows = resample_indices("classification", y, resamples=200, seed=0)
    for r in rows:
        assert np.array_equal(np.bincount(y[r], minlength=3), [50, 7, 3])
    assert rows.min() >= 0 and rows.max() < len(y)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_bootstrap_intervals_contain_full_sample_metric_and_narrow_with_rows(task):
    def data(n):
        if task == "classification":
            y, pred, proba = _classification(n, 3, seed=11, rounding=None)
            return (y, pred, proba, 3)
        return (*_regression(n, seed=11), None, None)

    small, large = data(100), data(2000)
    wide = bootstrap_intervals(task, *small, resamples=400, seed=0)
    narrow = bootstrap_intervals(task, *large, resamples=400, seed=0)
    full = compute_metrics(task, *large)
    assert set(narrow) == set(full)
    for name, value in full.items():
        low, high = narrow[name]
        assert low <= value <= high, name
        assert (high - low) < (wide[name][1] - wide[name][0]), name
    json.dumps(narrow, allow_nan=False)


def test_bootstrap_is_deterministic_for_a_seed():
    y, pred, proba = _classification(300, 2, seed=5)
    first = bootstrap_intervals("classification", y, pred, proba, 2, resamples=200, seed=3)
    assert first == bootstrap_intervals("classification", y, pred, proba, 2, resamples=200, seed=3)
    assert first != bootstrap_intervals("classification", y, pred, proba, 2, resamples=200, seed=4)


def test_bootstrap_interval_is_the_percentiles_of_the_distribution():
    y, pred = _regression(150, seed=8)
    values = bootstrap_distribution("regression", y, pred, resamples=300, seed=9)
    intervals = bootstrap_intervals("regression", y, pred, resamples=300, confidence=0.9, seed=9)
    for name, v in values.items():
        assert intervals[name] == pytest.approx(tuple(np.percentile(v, [5, 95])))


def test_bootstrap_metric_undefined_everywhere_is_none():
    y = np.zeros(30, dtype=int)  # a single class: roc_auc is undefined on every resample
    proba = np.tile([0.7, 0.3], (30, 1))
    out = bootstrap_intervals("classification", y, np.zeros(30, dtype=int), proba, 2, resamples=50)
    assert out["roc_auc"] == (None, None)
    assert out["accuracy"] == (1.0, 1.0)
    json.dumps(out, allow_nan=False)

"""Each evaluation plot writes a decodable, non-trivial PNG (no pixel asserts)."""

from __future__ import annotations

import warnings

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from honing.evaluation.calibration import reliability
from honing.evaluation.errors import confusion_analysis, residual_analysis
from honing.evaluation.threshold import choose_threshold, threshold_curve
from honing.report import evaluation_plots as plots


def _check_png(path):
    assert path.exists() and path.stat().st_size > 5_000
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.parametrize("k", [3, 12])
def test_confusion_matrix_plot(tmp_path, k):
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 500)
    pred = np.where(rng.random(500) < 0.6, y, rng.integers(0, k, 500))
    analysis = confusion_analysis(y, pred, [f"class {i}" for i in range(k)])
    path = plots.confusion_matrix_plot(analysis, tmp_path / "nested" / "confusion.png", "confusion (test)")
    _check_png(path)


@pytest.mark.parametrize("with_choice", [True, False])
def test_threshold_plot(tmp_path, with_choice):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    chosen = choose_threshold(y, p, "f1") if with_choice else None
    _check_png(plots.threshold_plot(threshold_curve(y, p), chosen, tmp_path / "threshold.png", "threshold"))


def test_reliability_plot_with_empty_bins(tmp_path):
    rng = np.random.default_rng(1)
    p1 = rng.uniform(0.6, 1.0, 300)  # the low bins stay empty
    y = (rng.random(300) < p1 * 0.8).astype(int)
    rel = reliability(y, np.column_stack([1 - p1, p1]))
    assert any(b["count"] == 0 for b in rel["bins"])
    _check_png(plots.reliability_plot(rel, tmp_path / "reliability.png", "reliability (test)"))
    proba = rng.dirichlet(np.ones(4), 200)
    top = reliability(rng.integers(0, 4, 200), proba)
    _check_png(plots.reliability_plot(top, tmp_path / "multiclass.png", "reliability (top label)"))


def test_residual_plot(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.normal(size=400)
    pred = y + rng.normal(scale=0.5, size=400)
    residuals = residual_analysis(pd.DataFrame({"x": rng.normal(size=400)}), y, pred)
    _check_png(plots.residual_plot(residuals, tmp_path / "residuals.png", "residuals (test)"))


@pytest.mark.parametrize("k", [2, 4])
def test_roc_and_pr_plots(tmp_path, k):
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 300)
    proba = rng.dirichlet(np.ones(k), 300) + np.eye(k)[y]  # informative scores
    proba /= proba.sum(axis=1, keepdims=True)
    classes = [f"class {i}" for i in range(k)]
    for draw in (plots.roc_plot, plots.pr_plot):
        _check_png(draw(y, proba, classes, tmp_path / "nested" / f"{draw.__name__}.png"))


@pytest.mark.parametrize("label", [0, 1])
def test_curves_of_a_single_class_say_so_without_a_warning(tmp_path, label):
    y, proba = np.full(5, label), np.tile([0.7, 0.3], (5, 1))  # a tiny test split of one class
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn warns on one class, matplotlib on a legend without artists
        for draw in (plots.roc_plot, plots.pr_plot):
            _check_png(draw(y, proba, ["a", "b"], tmp_path / f"{draw.__name__}.png"))

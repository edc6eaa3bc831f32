"""Explanation plots write decodable PNGs, also from real explanations and awkward input."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from honing.evaluation.explain import FrameModel, partial_dependence, permutation_importances
from honing.report.explain_plots import importance_plot, partial_dependence_plot


def _png(path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    return image


@pytest.fixture(scope="module")
def explained():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=150), "z": rng.uniform(size=150),
                          "colour": rng.choice(["red", "green", "blue"], size=150)})
    y = 2 * frame["x"] + (frame["colour"] == "red") + rng.normal(scale=0.1, size=150)

    def encode(f: pd.DataFrame) -> np.ndarray:
        return np.column_stack([f["x"], f["z"], f["colour"] == "red", f["colour"] == "green"]).astype(float)

    model = FrameModel(encode, LinearRegression().fit(encode(frame), y), "regression")
    importances = permutation_importances(model, frame, y.to_numpy(), "regression", repeats=3)
    pds = [partial_dependence(model, frame, f, grid=8, task="regression") for f in frame.columns]
    return importances, pds


def test_plots_of_real_explanations(tmp_path, explained):
    importances, pds = explained
    out = importance_plot(importances, tmp_path / "deep" / "er" / "importance.png", "importance")
    assert out == tmp_path / "deep" / "er" / "importance.png"
    _png(out)
    out = partial_dependence_plot(pds, tmp_path / "pd" / "pd.png", "partial dependence")
    assert out.parent.is_dir()
    _png(out)


def test_importance_plot_keeps_the_top_15_and_survives_missing_values(tmp_path):
    rows = [{"feature": f"a rather long feature name {i}", "mean": 1.0 / (i + 1), "std": 0.01,
             "low": 1.0 / (i + 1) - 0.02, "high": 1.0 / (i + 1) + 0.02} for i in range(40)]
    rows.append({"feature": "undefined", "mean": None, "std": None, "low": None, "high": None})
    rows.append({"feature": "harmful", "mean": -0.05, "std": 0.0, "low": -0.05, "high": -0.05})
    image = _png(importance_plot(rows, tmp_path / "many.png", "many features"))
    assert image.shape[1] == pytest.approx(7 * 110, abs=2)
    _png(importance_plot([], tmp_path / "none.png", "nothing"))


def test_partial_dependence_plot_lays_out_many_panels(tmp_path):
    numeric = {"feature": "age", "kind": "numeric", "values": [float(v) for v in range(10)],
               "average": [0.1 * v for v in range(10)]}
    categorical = {"feature": "a category with a long name", "kind": "categorical",
                   "values": [f"value number {i}" for i in range(20)], "average": [None] + [0.5] * 19}
    image = _png(partial_dependence_plot([numeric, categorical] * 4, tmp_path / "eight.png", "pd"))
    assert image.shape[0] > image.shape[1] * 0.6  # three rows of panels are taller than one
    _png(partial_dependence_plot([numeric], tmp_path / "one.png", "one feature"))
    _png(partial_dependence_plot([], tmp_path / "empty.png", "no features"))

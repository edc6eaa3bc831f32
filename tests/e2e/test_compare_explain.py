"""`honing compare` (two cross-validated runs on the same folds) and `honing explain` (one prediction)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.datasets import make_regression

import honing
from conftest import assert_user_error

pytestmark = pytest.mark.slow


def _run(tmp_path, name: str, model: dict, seed: int = 42, cv: bool = True):
    recipe = {"name": name, "seed": seed, "data": {"source": "builtin:breast_cancer"}, "model": model,
              "evaluate": {"bootstrap": 0, "explain": False, **({"cv": {"folds": 5, "repeats": 2}} if cv else {})}}
    return honing.train(recipe, out=tmp_path / name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    return (tmp, _run(tmp, "logistic", {"type": "logistic_regression"}),
            _run(tmp, "stump", {"type": "decision_tree", "params": {"max_depth": 1}}))


def test_compare_two_runs_on_the_same_folds(runs, cli):
    _, logistic, stump = runs
    result = honing.api.compare(logistic.run_dir, stump.run_dir)
    a = [f["accuracy"] for f in logistic.metrics["cv"]["model"]["folds"]]
    b = [f["accuracy"] for f in stump.metrics["cv"]["model"]["folds"]]
    d = np.subtract(a, b)  # Nadeau & Bengio by hand: variance inflated by 1/J + n_test/n_train
    cv = logistic.metrics["cv"]["model"]
    t = d.mean() / np.sqrt((1 / len(d) + cv["n_test"] / cv["n_train"]) * d.var(ddof=1))
    p = 2 * stats.t.sf(abs(t), len(d) - 1)
    test = result["comparison"]
    assert test["p_value"] == pytest.approx(p) and test["wilcoxon_p_value"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert test["better"] == ("a" if p < 0.05 and d.mean() > 0 else "tie")
    out = cli("compare", logistic.run_dir, stump.run_dir)
    assert out.code == 0 and "baseline" in out.out and "Wilcoxon" in out.out


def test_compare_refuses_runs_on_other_folds_or_without_cv(runs, cli):
    tmp, logistic, _ = runs
    other_seed = _run(tmp, "seed7", {"type": "logistic_regression"}, seed=7)
    assert_user_error(cli("compare", logistic.run_dir, other_seed.run_dir), "different folds", "seed")
    no_cv = _run(tmp, "nocv", {"type": "logistic_regression"}, cv=False)
    assert_user_error(cli("compare", logistic.run_dir, no_cv.run_dir), "nocv", "evaluate.cv")
    assert_user_error(cli("compare", logistic.run_dir, tmp / "nothing"), "not a run directory")


def test_explain_is_exact_for_a_linear_model(tmp_path, cli):
    X, y = make_regression(n_samples=300, n_features=4, noise=1.0, random_state=0)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(y=y)
    frame.to_csv(tmp_path / "data.csv", index=False)
    recipe = {"data": {"source": str(tmp_path / "data.csv"), "target": "y", "scale": "none"},
              "model": {"type": "linear_regression"}, "evaluate": {"bootstrap": 0, "explain": False}}
    run = honing.train(recipe, out=tmp_path / "run")
    coef = honing.load(run.bundle_dir).model.coef_
    rows = frame.drop(columns="y").iloc[:150]
    result = honing.api.explain(run.bundle_dir, rows, row=7, top=None, samples=1000)
    expected = coef * (rows.iloc[7].to_numpy() - rows.mean().to_numpy())
    got = {c["feature"]: c["contribution"] for c in result["contributions"]}
    assert np.allclose([got[c] for c in "abcd"], expected, atol=1e-6)
    out = cli("explain", run.bundle_dir, tmp_path / "data.csv", "--row", "2")
    assert out.code == 0 and "contribution" in out.out
    assert_user_error(cli("explain", run.bundle_dir, tmp_path / "data.csv", "--row", "999"), "--row 999", "300 rows")

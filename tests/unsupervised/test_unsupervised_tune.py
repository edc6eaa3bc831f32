"""``honing tune`` on clustering / anomaly recipes: a silhouette (or ROC AUC) objective on validation
(honing.unsupervised_tune)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sklearn import metrics
from sklearn.cluster import KMeans

from honing import api
from honing.errors import RecipeError
from honing.recipe import load_recipe
from honing.unsupervised_flow import load_unsupervised
from honing.unsupervised_tune import tune_trial


def _recipe(**extra):
    return {"name": "t", "tracking": False, "data": {"source": "builtin:iris", "task": "clustering"},
            "model": {"type": "kmeans"}, **extra}


def test_trial_scores_the_validation_silhouette_as_sklearn():
    recipe = load_recipe(_recipe(model={"type": "kmeans", "params": {"k": 4}}))
    (value,), attrs = tune_trial(recipe)
    data = load_unsupervised(recipe)
    data.fit_preprocessing(recipe)
    kmeans = KMeans(n_clusters=4, random_state=42, n_init="auto").fit(data.X["train"])
    X = data.X["validation"]
    assert value == pytest.approx(metrics.silhouette_score(X, kmeans.predict(X)))
    assert attrs["model"] == "kmeans" and attrs["validation"]["silhouette"] == value


def test_tune_searches_k_and_refits_the_best(tmp_path):
    result = api.tune(_recipe(tune={"trials": 4, "sampler": "grid",
                                       "space": {"model.params.k": {"choice": [2, 3, 6, 9]}}}), out=tmp_path / "tune")
    summary = json.loads((tmp_path / "tune" / "tune.json").read_text())
    board = pd.read_csv(tmp_path / "tune" / "leaderboard.csv")
    assert sorted(board["model.params.k"]) == [2, 3, 6, 9] and summary["trials"] == {"complete": 4}
    # every trial's score is its own validation silhouette, and the best is the highest
    for _, row in board.iterrows():
        (value,), _ = tune_trial(load_recipe(_recipe(model={"type": "kmeans", "params": {"k": int(row["model.params.k"])}})))
        assert row["silhouette"] == pytest.approx(value)
    best = load_recipe(tmp_path / "tune" / "best.yaml").model.params["k"]
    assert best == int(board.loc[board["silhouette"].idxmax(), "model.params.k"])
    assert summary["best"]["values"] == {"model.params.k": best}
    assert result.run_dir == tmp_path / "tune"
    assert (tmp_path / "tune" / "best" / "bundle" / "manifest.json").is_file()  # refitted like any tuned recipe


def test_tune_mistakes_are_recipe_errors(tmp_path):
    with pytest.raises(RecipeError, match="evaluate.metric: 'accuracy' is not a clustering metric"):
        api.tune(_recipe(evaluate={"metric": "accuracy"}, tune={"trials": 1}), out=tmp_path / "a")
    with pytest.raises(RecipeError, match="tune.space"):
        api.tune(_recipe(tune={"trials": 1, "space": {"model.type": {"choice": ["kmeans", "ridge"]}}}),
                    out=tmp_path / "b")

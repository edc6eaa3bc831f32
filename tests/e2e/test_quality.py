"""Model quality on the bundled data with model.type: auto, determinism, and honest metrics."""

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, r2_score, roc_auc_score

import honing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def titanic_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("titanic") / "run"
    return honing.train({"name": "titanic", "data": {"source": "builtin:titanic", "drop": ["PassengerId", "Name"]}},
                        out=out)


def test_titanic_auto_accuracy(titanic_run):
    assert titanic_run.task == "classification"
    assert titanic_run.metrics["test"]["accuracy"] >= 0.78
    assert titanic_run.metrics["test"]["accuracy"] > titanic_run.metrics["baseline"]["test"]["accuracy"]
    models = {row["model"] for row in titanic_run.leaderboard}
    assert {"logistic_regression", "random_forest", "lightgbm", "baseline"} <= models


def test_california_housing_auto_r2(tmp_path):
    run = honing.train({"name": "housing", "data": {"source": "builtin:california_housing"}},
                       out=tmp_path / "run")
    assert run.task == "regression"
    assert run.metrics["test"]["r2"] >= 0.80


def test_same_recipe_twice_gives_identical_metrics(titanic_run, tmp_path):
    again = honing.train(titanic_run.run_dir / "recipe.yaml", out=tmp_path / "again")
    first = json.loads((titanic_run.run_dir / "metrics.json").read_text())
    second = json.loads((again.run_dir / "metrics.json").read_text())
    for row in first["leaderboard"] + second["leaderboard"]:
        row.pop("fit_seconds")
    assert first == second


def test_run_directory_contents(titanic_run):
    names = {p.name for p in titanic_run.run_dir.iterdir()}
    assert {"recipe.yaml", "metrics.json", "leaderboard.csv", "schema.json", "bundle"} <= names
    manifest = json.loads((titanic_run.bundle_dir / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["task"] == "classification"
    assert manifest["classes"] == [0, 1] and manifest["recipe"]["data"]["target"] == "Survived"
    assert manifest["data_fingerprint"] and manifest["files"]


def test_bundle_metrics_match_scikit_learn(titanic_run):
    """Scoring the loaded bundle with honing.evaluate equals scikit-learn on its predictions."""
    from honing.data.builtin import load_builtin

    frame = load_builtin("titanic").frame
    model = honing.load(titanic_run.bundle_dir)
    scored = honing.evaluate(model, frame)
    y = frame["Survived"].to_numpy()
    pred = model.predict(frame)
    proba = model.predict_proba(frame)
    assert scored["rows"] == len(frame)
    assert np.isclose(scored["accuracy"], accuracy_score(y, pred))
    assert np.isclose(scored["f1_macro"], f1_score(y, pred, average="macro"))
    assert np.isclose(scored["roc_auc"], roc_auc_score(y, proba["1"]))


def test_unseen_category_and_extra_columns_are_handled(titanic_run):
    from honing.data.builtin import load_builtin

    frame = load_builtin("titanic").frame.head(5).copy()
    frame["Embarked"] = "Atlantis"  # a port never seen in training
    frame["comment"] = "extra column"
    pred = honing.load(titanic_run.bundle_dir).predict(frame)
    assert len(pred) == 5


def test_regression_predictions_match_metrics(tmp_path):
    from honing.data.builtin import load_builtin

    run = honing.train({"data": {"source": "builtin:diabetes"}, "model": {"type": "ridge"}}, out=tmp_path / "r")
    frame = load_builtin("diabetes").frame
    scored = honing.evaluate(run.bundle_dir, frame)
    assert np.isclose(scored["r2"], r2_score(frame["target"], honing.load(run.bundle_dir).predict(frame)))


@pytest.mark.parametrize("name", ["iris", "breast_cancer", "digits", "wine_quality"])
def test_every_builtin_trains(name, tmp_path):
    run = honing.train({"data": {"source": f"builtin:{name}"}, "model": {"type": "logistic_regression"
                        if name != "wine_quality" else "ridge"}}, out=tmp_path / name)
    baseline = run.metrics["baseline"]["test"]
    key = "accuracy" if run.task == "classification" else "r2"
    assert run.metrics["test"][key] > baseline[key]

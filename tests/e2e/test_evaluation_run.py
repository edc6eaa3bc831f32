"""What `honing train` reports about the chosen model: cross-validation against the baseline,
bootstrap intervals, error analysis, explanations, and a threshold/calibration the bundle applies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, make_regression
from sklearn.metrics import accuracy_score, confusion_matrix, roc_auc_score

import honing
from conftest import assert_user_error

pytestmark = pytest.mark.slow


def _cancer(tmp_path) -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["target"] = np.where(frame["target"] == 1, "benign", "malignant")
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    return frame


def _train(tmp_path, source: str, target: str, data_split: dict | None = None, **sections):
    recipe = {"name": "eval", "data": {"source": source, "target": target, **({"split": data_split} if data_split else {})},
              "model": {"type": "logistic_regression"}, **sections}
    return honing.train(recipe, out=tmp_path / "run")


@pytest.fixture(scope="module")
def cancer_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cancer")
    _cancer(tmp)
    return _train(tmp, str(tmp / "cancer.csv"), "target",
                  evaluate={"cv": {"folds": 5, "repeats": 2}, "bootstrap": 300, "threshold": "f1",
                            "importance_repeats": 3})


def test_cross_validation_against_the_baseline(cancer_run):
    cv = cancer_run.metrics["cv"]
    assert len(cv["model"]["folds"]) == len(cv["baseline"]["folds"]) == 10
    summary = cv["model"]["summary"]["accuracy"]
    scores = [fold["accuracy"] for fold in cv["model"]["folds"]]
    assert summary["mean"] == pytest.approx(np.mean(scores)) and summary["low"] < summary["mean"] < summary["high"]
    assert cv["comparison"]["p_value"] < 0.01 and cv["comparison"]["better"] == "a"


def test_bootstrap_intervals_hold_the_test_metric(cancer_run):
    intervals = cancer_run.metrics["intervals"]
    low, high = intervals["test"]["accuracy"]
    assert low <= cancer_run.metrics["test"]["accuracy"] <= high and high - low < 0.2


def test_error_analysis_and_explanations(cancer_run):
    errors = cancer_run.metrics["errors"]
    assert len(errors["worst_rows"]) == 10
    assert errors["worst_rows"][0]["loss"] >= errors["worst_rows"][-1]["loss"]
    assert errors["confusion"]["labels"] == ["benign", "malignant"]
    assert errors["slices"] and "flagged" in errors["slices"][0]
    importance = cancer_run.metrics["explain"]["importance"]
    assert len(importance) == 30 and importance[0]["mean"] >= importance[-1]["mean"]
    plots = {p.name for p in (cancer_run.run_dir / "plots").iterdir()}
    assert {"confusion_matrix.png", "roc.png", "pr.png", "reliability.png", "threshold.png", "importance.png",
            "partial_dependence.png"} <= plots


def test_the_chosen_threshold_is_used_by_predict(cancer_run, tmp_path):
    decision = cancer_run.metrics["decision"]
    assert decision["method"] == "f1" and 0 < decision["threshold"] < 1
    model = honing.load(cancer_run.bundle_dir)
    frame = pd.read_csv(cancer_run.recipe.data.source).drop(columns=["target"])
    proba = model.predict_proba(frame)["malignant"].to_numpy()
    expected = np.where(proba >= decision["threshold"], "malignant", "benign")
    assert (model.predict(frame) == expected).all()


def test_a_fixed_threshold_and_calibration_change_what_predict_says(tmp_path):
    frame = _cancer(tmp_path)
    run = _train(tmp_path, str(tmp_path / "cancer.csv"), "target",
                 evaluate={"threshold": "fixed", "threshold_value": 0.9, "calibrate": "isotonic",
                           "bootstrap": 0, "explain": False})
    model = honing.load(run.bundle_dir)
    assert (run.bundle_dir / "calibrator.skops").is_file() and model.calibrator is not None
    features = frame.drop(columns=["target"])
    proba = model.predict_proba(features)["malignant"].to_numpy()
    raw = model.model.predict_proba(model.transform(model.prepare(features)))[:, 1]
    assert not np.allclose(proba, raw)  # calibrated
    assert (model.predict(features) == np.where(proba >= 0.9, "malignant", "benign")).all()
    calibration = run.metrics["calibration"]
    assert calibration["method"] == "isotonic" and "ece" in calibration["after"]
    result = honing.evaluate(run.bundle_dir, frame)
    assert result["accuracy"] == pytest.approx(accuracy_score(frame["target"], model.predict(features)))


def test_calibrated_thresholded_metrics_are_what_the_bundle_predicts(tmp_path):
    """Evaluation predicts each split once and calibrates and thresholds those probabilities itself:
    its test metrics must be the saved bundle's predictions scored by scikit-learn."""
    frame = _cancer(tmp_path)
    frame["split"] = np.resize(["train", "train", "train", "validation", "test"], len(frame))
    frame.to_csv(tmp_path / "split.csv", index=False)
    run = _train(tmp_path, str(tmp_path / "split.csv"), "target", data_split={"column": "split"},
                 evaluate={"threshold": "f1", "calibrate": "sigmoid", "bootstrap": 0, "explain": False})
    model = honing.load(run.bundle_dir)
    for split in ("validation", "test"):
        rows = frame[frame["split"] == split]
        predicted = model.predict(rows.drop(columns=["target", "split"]))
        proba = model.predict_proba(rows.drop(columns=["target", "split"]))["malignant"]
        scores = run.metrics[split]
        assert scores["accuracy"] == pytest.approx(accuracy_score(rows["target"], predicted), abs=1e-12)
        assert scores["roc_auc"] == pytest.approx(roc_auc_score(rows["target"] == "malignant", proba), abs=1e-12)
        assert scores["confusion_matrix"] == confusion_matrix(rows["target"], predicted).tolist()


def test_regression_residuals(tmp_path):
    X, y = make_regression(n_samples=600, n_features=4, noise=5.0, random_state=0)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(y=y)
    frame.to_csv(tmp_path / "reg.csv", index=False)
    run = _train(tmp_path, str(tmp_path / "reg.csv"), "y", model={"type": "ridge"},
                 evaluate={"bootstrap": 100, "cv": {"folds": 3}})
    residuals = run.metrics["errors"]["residuals"]
    assert residuals["summary"]["mae"] == pytest.approx(run.metrics["test"]["mae"], rel=1e-6)
    assert (run.run_dir / "plots" / "residuals.png").is_file()
    assert run.metrics["cv"]["comparison"]["better"] == "a"


def test_a_column_without_values_in_the_test_rows_is_left_out_of_partial_dependence(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    frame["y"] = 2 * frame["a"] + frame["b"] + rng.normal(scale=0.1, size=300)
    frame["split"] = np.where(np.arange(300) < 240, "train", "test")
    frame.loc[frame["split"] == "test", "b"] = np.nan  # e.g. a tiny test split where it happens to be missing
    frame.to_csv(tmp_path / "reg.csv", index=False)
    run = _train(tmp_path, str(tmp_path / "reg.csv"), "y", data_split={"column": "split"}, model={"type": "ridge"})
    assert [c["feature"] for c in run.metrics["explain"]["partial_dependence"]] == ["a"]
    assert {row["feature"] for row in run.metrics["explain"]["importance"]} == {"a", "b"}


def test_evaluation_mistakes_name_the_key(cli, tmp_path):
    frame = _cancer(tmp_path)
    recipe = {"data": {"source": str(tmp_path / "cancer.csv"), "target": "target", "split": {"validation": 0}},
              "model": {"type": "logistic_regression"}, "evaluate": {"threshold": "f1"}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert_user_error(cli("train", tmp_path / "r.yaml"), "evaluate.threshold", "validation")
    multiclass = frame.assign(target=pd.qcut(frame["mean_radius"], 3, labels=["s", "m", "l"]).astype(str))
    multiclass.to_csv(tmp_path / "three.csv", index=False)
    recipe["data"] = {"source": str(tmp_path / "three.csv"), "target": "target"}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert_user_error(cli("train", tmp_path / "r.yaml"), "evaluate.threshold", "binary")
    recipe["evaluate"] = {"cv": {"folds": 5, "group": "nope"}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert_user_error(cli("train", tmp_path / "r.yaml"), "evaluate.cv.group", "nope")


def test_settings_that_cannot_apply_fail_before_training(cli, tmp_path):
    X, y = make_regression(n_samples=200, n_features=3, random_state=0)
    pd.DataFrame(X, columns=list("abc")).assign(y=y).to_csv(tmp_path / "reg.csv", index=False)
    recipe = {"data": {"source": str(tmp_path / "reg.csv"), "target": "y"}, "model": {"type": "ridge"},
              "evaluate": {"calibrate": "isotonic"}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    result = cli("train", tmp_path / "r.yaml")
    assert_user_error(result, "evaluate.calibrate", "regression")
    assert "fitting" not in result.err  # refused before any model was fitted
    recipe["evaluate"] = {}
    recipe["audit"] = {"fail_on": [{"demographic_parity_difference": 0.1}]}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    assert_user_error(cli("train", tmp_path / "r.yaml"), "demographic_parity_difference", "audit.sensitive")
    _cancer(tmp_path)
    recipe = {"data": {"source": str(tmp_path / "cancer.csv"), "target": "target"},
              "model": {"type": "logistic_regression"}, "evaluate": {"threshold": "f1"}}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(recipe))
    assert_user_error(cli("tune", tmp_path / "t.yaml"), "tune.refit", "evaluate.threshold")
    assert_user_error(cli("audit", tmp_path / "cancer.csv", "--target", "target", "--fail-on",
                          "disparate_impact=0.8"), "--fail-on disparate_impact", "honing train")


def test_cross_validation_follows_a_time_split(tmp_path, cli):
    """data.split.time: evaluate.cv's folds are in time order too (each trains on earlier rows only),
    and say so; repeats of the same folds are refused."""
    frame = _cancer(tmp_path)
    frame["day"] = pd.date_range("2019-01-01", periods=len(frame), freq="2D").strftime("%m/%d/%Y")
    frame.sample(frac=1, random_state=0).to_csv(tmp_path / "dated.csv", index=False)
    run = _train(tmp_path, str(tmp_path / "dated.csv"), "target", {"time": "day"},
                 evaluate={"cv": {"folds": 4}, "bootstrap": 0, "explain": False})
    cv = run.metrics["cv"]
    assert cv["time"] == "day" and len(cv["model"]["folds"]) == 4
    assert cv["model"]["n_train"] < cv["model"]["n_test"] * 3  # expanding windows: 1 to 3 folds' rows to train on
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"source": str(tmp_path / "dated.csv"), "target": "target",
                                               "split": {"time": "day"}},
                                      "model": {"type": "logistic_regression"},
                                      "evaluate": {"cv": {"folds": 4, "repeats": 2}, "bootstrap": 0}}))
    assert_user_error(cli("train", recipe, "--out", tmp_path / "r2"), "evaluate.cv.repeats", "time order")

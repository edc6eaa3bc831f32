"""``honing monitor`` on unsupervised bundles: their reference profile (features, and the cluster ids or
anomaly scores the server answers), judged on traffic logged by the real app and prediction log."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

import honing
from honing.data.builtin import load_builtin
from honing.recipe import MonitorConfig, ServeConfig
from honing.serving import monitor
from honing.serving.app import create_app
from honing.serving.predict_log import PredictionLog

pytestmark = pytest.mark.slow
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def _bundle(tmp_path, task: str, model: dict):
    run = honing.train({"name": task, "data": {"source": "builtin:iris", "task": task, "drop": ["species"]},
                        "model": model, "tracking": False}, out=tmp_path / task, track=False)
    return honing.load(run.bundle_dir)


def _serve(bundle, url: str, frame) -> list:
    answers = []
    with TestClient(create_app(bundle, ServeConfig(), PredictionLog(url))) as client:
        for start in range(0, len(frame), 10):
            rows = json.loads(frame[FEATURES][start:start + 10].to_json(orient="records"))
            answer = client.post("/v1/predict", json={"instances": rows})
            assert answer.status_code == 200, answer.text
            answers += answer.json()["predictions"]
    return answers


@pytest.fixture(scope="module")
def iris():
    return load_builtin("iris").frame


def test_clustering_reference_profile_and_drift(tmp_path, iris):
    bundle = _bundle(tmp_path, "clustering", {"type": "kmeans", "params": {"k": 3}})
    reference = bundle.manifest["reference"]
    assert set(reference["features"]) == set(FEATURES) and reference["prediction"]["kind"] == "categorical"
    assert set(reference["prediction"]["proportions"]) == {"0", "1", "2"}

    same = iris.sample(400, replace=True, random_state=1).reset_index(drop=True)
    _serve(bundle, f"sqlite:///{tmp_path / 'same.db'}", same)
    calm = monitor.run(bundle, MonitorConfig(log=f"sqlite:///{tmp_path / 'same.db'}", window="all"))
    assert not calm.breached, calm.breaches
    assert calm.prediction is not None and not calm.prediction["drifted"]

    shifted = same.copy()
    shifted["petal length (cm)"] = shifted["petal length (cm)"] + 10  # every flower nearest the long-petal cluster
    answers = _serve(bundle, f"sqlite:///{tmp_path / 'shifted.db'}", shifted)
    alarm = monitor.run(bundle, MonitorConfig(log=f"sqlite:///{tmp_path / 'shifted.db'}", window="all"))
    assert {r["feature"] for r in alarm.drift if r["drifted"]} == {"petal length (cm)"}
    assert alarm.prediction["drifted"] and any(b.startswith("prediction drift") for b in alarm.breaches)
    shares = alarm.prediction["shares"]  # the served cluster ids, counted by hand
    expected = [float(np.mean(np.asarray(answers) == int(label))) for label in shares["labels"][:-1]]
    assert shares["current"][:-1] == pytest.approx(expected)


def test_anomaly_scores_are_profiled_as_numbers_and_feedback_is_not_scored(tmp_path, iris):
    bundle = _bundle(tmp_path, "anomaly", {"type": "isolation_forest"})
    reference = bundle.manifest["reference"]["prediction"]
    assert reference["kind"] == "numeric"
    scores = bundle.predict(iris)["anomaly_score"].to_numpy()
    assert min(reference["quantiles"]) >= scores.min() - 1e-9 and max(reference["quantiles"]) <= scores.max() + 1e-9

    url = f"sqlite:///{tmp_path / 'log.db'}"
    outliers = iris.sample(300, replace=True, random_state=2).reset_index(drop=True)
    outliers[FEATURES] = outliers[FEATURES] * 3  # far from every training flower: high scores
    _serve(bundle, url, outliers)
    with TestClient(create_app(bundle, ServeConfig(), PredictionLog(url))) as client:
        rows = json.loads(iris[FEATURES].head(2).to_json(orient="records"))
        request = client.post("/v1/predict", json={"instances": rows}).json()["request_id"]
        assert client.post("/v1/feedback", json={"request_id": request, "labels": [1, 0]}).status_code == 202
    result = monitor.run(bundle, MonitorConfig(log=url, window="all"))
    assert result.prediction["drifted"]
    assert result.performance is None and any("not scored against labels" in n for n in result.notes)
    assert np.mean([r["drifted"] for r in result.drift]) == 1.0  # every feature was scaled

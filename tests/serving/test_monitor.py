"""honing monitor end to end: a served model, traffic logged by the real app and prediction log, then the
monitor's verdicts — same-distribution traffic (no alert), shifted traffic (an alert on the shifted
features only), feedback labels (performance against scikit-learn), the retraining trigger, windows."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

import honing
from honing.data.dataset import load_dataset
from honing.errors import MonitorError
from honing.recipe import MonitorConfig, ServeConfig, load_recipe
from honing.serving import monitor
from honing.serving.app import create_app
from honing.serving.log_store import read_events
from honing.serving.predict_log import PredictionLog

RECIPE = {"name": "titanic", "data": {"source": "builtin:titanic", "drop": ["PassengerId", "Name"]},
          "model": {"type": "logistic_regression"}, "evaluate": {"explain": False, "bootstrap": 0},
          "audit": {"sensitive": ["Sex"]}}
SHIFTED = {"Age", "Fare"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The titanic bundle and raw rows it has never seen (validation + test splits)."""
    root = tmp_path_factory.mktemp("monitor")
    run = honing.train(RECIPE, out=root / "run", track=False)
    splits = load_dataset(load_recipe(RECIPE).data, 42).splits
    unseen = pd.concat([splits["validation"], splits["test"]], ignore_index=True)
    return honing.load(run.bundle_dir), unseen


def _instances(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
    rows = frame[columns].astype(object).where(frame[columns].notna(), None)
    return rows.to_dict(orient="records")


def _serve(bundle, url: str, frame: pd.DataFrame, per_request: int = 4) -> list[dict]:
    """POST ``frame`` in requests of ``per_request`` rows through the real app; the log is flushed on exit."""
    columns = [c["name"] for c in bundle.features["columns"] if c["name"] in frame.columns and c["name"] != "Survived"]
    answers = []
    with TestClient(create_app(bundle, ServeConfig(), PredictionLog(url))) as client:
        for start in range(0, len(frame), per_request):
            response = client.post("/v1/predict", json={"instances": _instances(frame[start:start + per_request], columns)})
            assert response.status_code == 200, response.text
            answers.append(response.json())
    return answers


def _traffic(unseen: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return unseen.sample(rows, replace=True, random_state=seed).reset_index(drop=True)


def test_traffic_like_training_raises_no_alert(served, tmp_path):
    bundle, unseen = served
    url = f"sqlite:///{tmp_path / 'log.db'}"
    _serve(bundle, url, _traffic(unseen, 600, seed=1))
    result = monitor.run(bundle, MonitorConfig(log=url, window="all"))
    assert result.rows == 600 and result.requests == 150
    assert not result.breached, result.breaches
    assert {row["feature"] for row in result.drift} >= {"Pclass", "Sex", "Age", "Fare", "Embarked"}
    assert all(row["psi"] < 0.1 for row in result.drift if row.get("psi") is not None)
    assert result.latency["requests"] == 150 and result.latency["p50_ms"] > 0


def test_shifted_traffic_alerts_on_the_shifted_features_only(served, tmp_path):
    bundle, unseen = served
    shifted = _traffic(unseen, 600, seed=2)
    shifted["Age"] = shifted["Age"] + 30
    shifted["Fare"] = shifted["Fare"] * 5 + 40
    url = f"sqlite:///{tmp_path / 'log.db'}"
    _serve(bundle, url, shifted)
    result = monitor.run(bundle, MonitorConfig(log=url, window="all"))
    drifted = {row["feature"] for row in result.drift if row["drifted"]}
    assert drifted == SHIFTED
    assert result.breached
    assert all(any(name in b for name in SHIFTED) or b.startswith("prediction drift") for b in result.breaches)


def test_feedback_gives_the_training_metrics_and_a_performance_breach(served, tmp_path):
    bundle, unseen = served
    url = f"sqlite:///{tmp_path / 'log.db'}"
    frame = _traffic(unseen, 200, seed=3)
    columns = [c for c in frame.columns if c != "Survived"]
    predicted, survived, log = [], [], PredictionLog(url)
    with TestClient(create_app(bundle, ServeConfig(), log)) as client:
        for start in range(0, len(frame), 10):
            part = frame[start:start + 10]
            answer = client.post("/v1/predict", json={"instances": _instances(part, columns)}).json()
            predicted += answer["predictions"]
            survived += [p["1"] for p in answer["probabilities"]]
            labels = part["Survived"].tolist()
            assert client.post("/v1/feedback", json={"request_id": answer["request_id"], "labels": labels}).status_code == 202
    expected = accuracy_score(frame["Survived"], predicted)
    config = MonitorConfig(log=url, window="all", performance={"min_accuracy": round(expected + 0.05, 3)},
                           on_breach=f"{sys.executable} -c \"open(r'{tmp_path / 'retrained'}', 'w').write('yes')\"")
    result = monitor.run(bundle, config)
    assert result.labelled == 200
    assert result.performance["accuracy"] == pytest.approx(expected)
    # a two-class model: the probability metrics too, from each row's chosen-class probability in the log
    assert result.performance["roc_auc"] == pytest.approx(roc_auc_score(frame["Survived"], survived))
    assert result.performance["log_loss"] == pytest.approx(log_loss(frame["Survived"], survived))
    assert any("monitor.performance.min_accuracy" in b for b in result.breaches)
    by_group = result.fairness["Sex"]["by_group"]  # per sensitive group, against scikit-learn on the same rows
    for group in ("male", "female"):
        rows = (frame["Sex"] == group).to_numpy()
        assert by_group[group]["accuracy"] == pytest.approx(
            accuracy_score(frame["Survived"][rows], np.asarray(predicted)[rows]))
    outcome = monitor.trigger(config.on_breach, url)
    assert outcome["exit_status"] == 0 and (tmp_path / "retrained").read_text() == "yes"
    assert "retrain" in set(read_events(url)["kind"])
    assert not monitor.run(bundle, config.model_copy(update={"performance": {"min_accuracy": expected - 0.05}})).breaches


def test_the_window_selects_rows_by_time(served, tmp_path):
    bundle, unseen = served
    url = f"sqlite:///{tmp_path / 'log.db'}"
    _serve(bundle, url, _traffic(unseen, 20, seed=4))
    assert monitor.run(bundle, MonitorConfig(log=url, window="1h")).rows == 20
    later = monitor.run(bundle, MonitorConfig(log=url, window="1h"), now=time.time() + 2 * 3600)
    assert later.rows == 0 and "no predictions" in later.notes[0]
    few = monitor.run(bundle, MonitorConfig(log=url, window="all"))
    assert not few.breached and any("monitor.min_rows" in note for note in few.notes)


def test_monitor_cli_exits_3_on_a_breach_and_writes_json_and_html(served, tmp_path, cli):
    bundle, unseen = served
    shifted = _traffic(unseen, 300, seed=5)
    shifted["Age"] = shifted["Age"] + 30
    url = f"sqlite:///{tmp_path / 'log.db'}"
    _serve(bundle, url, shifted, per_request=10)
    result = cli("monitor", str(bundle.path), "--log", url, "--window", "all", "--json", str(tmp_path / "m.json"),
                 "--html", str(tmp_path / "m.html"), "--no-trigger")
    assert result.code == 3
    written = json.loads((tmp_path / "m.json").read_text())
    assert written["breached"] and {r["feature"] for r in written["drift"] if r["drifted"]} == {"Age"}
    page = (tmp_path / "m.html").read_text()
    assert "breach" in page and "Age" in page and page.count("data:image/png;base64") >= 2
    assert "breach" in set(read_events(url)["kind"])
    calm = cli("monitor", str(bundle.path), "--log", url, "--window", "all", "--set", "monitor.drift.psi=50",
               "--set", "monitor.drift.missing_change=null")
    assert calm.code == 0


@pytest.mark.parametrize("config, words", [
    (MonitorConfig(log=None), ["monitor.log is null"]),
    (MonitorConfig(window="all", performance={"min_acuracy": 0.5}), ["monitor.performance.min_acuracy", "min_accuracy"]),
])
def test_monitor_mistakes_are_one_line_errors(served, tmp_path, config, words):
    bundle, unseen = served
    url = f"sqlite:///{tmp_path / 'log.db'}"
    if config.log is not None:
        config = config.model_copy(update={"log": url})
        log = PredictionLog(url).start()
        frame = _traffic(unseen, 5, seed=6)
        log.submit([{"request_id": "r", "row": i, "timestamp": time.time(), "model_name": "titanic",
                     "model_version": bundle.version, "features": {}, "prediction": 1,
                     "probability": 0.9, "latency_ms": 1.0} for i in range(len(frame))])
        log.add_feedback("r", [1] * len(frame))
        log.close()
    with pytest.raises(MonitorError) as error:
        monitor.run(bundle, config)
    assert all(word in str(error.value) for word in words)


def test_window_durations():
    assert monitor.window_seconds("30m") == 1800 and monitor.window_seconds("2w") == 14 * 86400
    assert monitor.window_seconds("all") is None
    with pytest.raises(MonitorError, match="--window 3x"):
        monitor.window_seconds("3x")


def test_bounds_the_log_cannot_measure_say_why():
    """A multiclass model's log keeps each row's chosen-class probability only: no roc_auc bound on it;
    an unknown bound lists every bound there is, not the first twelve."""
    measured = {"accuracy": 0.9, "f1_macro": 0.8, "rows": 30}
    with pytest.raises(MonitorError, match="roc_auc needs every class's probability.*two-class model only"):
        monitor._bound_breach("min_roc_auc", 0.5, measured)
    with pytest.raises(MonitorError) as error:
        monitor._bound_breach("min_zzz", 0.5, measured)
    assert error.value.hint == "choose one of: max_accuracy, max_f1_macro, min_accuracy, min_f1_macro"

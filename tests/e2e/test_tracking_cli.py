"""`honing train` logs to MLflow by default; `honing runs`, `runs compare` and `promote` read it back."""

from __future__ import annotations

import pytest
import yaml

import honing

pytestmark = pytest.mark.slow


@pytest.fixture
def tracked(tmp_path, monkeypatch):
    monkeypatch.setenv("HONING_TRACKING", "1")
    monkeypatch.setenv("COLUMNS", "200")  # rich tables at full width
    monkeypatch.chdir(tmp_path)  # the default store: sqlite:///mlruns.db in the working directory
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def _recipe(path, **model):
    path.write_text(yaml.safe_dump({"name": "cancer", "data": {"source": "builtin:breast_cancer"},
                                    "model": model, "evaluate": {"bootstrap": 0, "explain": False}}))
    return path


def test_train_logs_to_the_default_store_and_the_cli_reads_it(tracked, cli):
    recipe = _recipe(tracked / "a.yaml", type="logistic_regression")
    first = cli("train", recipe, "--out", tracked / "run_a")
    assert first.code == 0, first.err
    assert (tracked / "mlruns.db").is_file() and (tracked / "mlartifacts").is_dir()
    assert (tracked / "run_a" / "report.html").is_file()
    second = cli("train", _recipe(tracked / "b.yaml", type="decision_tree"), "--out", tracked / "run_b")
    assert second.code == 0, second.err

    rows = honing.api.runs()
    assert [r["model"] for r in rows] == ["decision_tree", "logistic_regression"]  # newest first
    listed = cli("runs")
    assert listed.code == 0 and "logistic_regression" in listed.out and "decision_tree" in listed.out
    compared = cli("runs", "compare", rows[0]["id"], rows[1]["id"])
    assert compared.code == 0 and "model.type" in compared.out
    assert rows[0]["id"][:8] in compared.out and "{'id'" not in compared.out  # a run per column, by name and id

    promoted = cli("promote", "cancer", "2", "--alias", "production")
    assert promoted.code == 0 and "version 2" in promoted.out
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tracked / 'mlruns.db'}")
    assert str(client.get_model_version_by_alias("cancer", "production").version) == "2"
    assert client.get_run(client.get_model_version("cancer", "2").run_id).data.tags["honing.model_type"] == "decision_tree"


def test_tracking_off_and_an_unreachable_store(tracked, cli):
    recipe = _recipe(tracked / "a.yaml", type="logistic_regression")
    assert cli("train", recipe, "--out", tracked / "r1", "--set", "tracking=false").code == 0
    assert not (tracked / "mlruns.db").exists()
    result = cli("train", recipe, "--out", tracked / "r2", "--set", "tracking.uri=http://127.0.0.1:9")
    assert result.code == 0 and (tracked / "r2" / "bundle").is_dir()  # the run is kept
    assert "warning:" in result.err and "cannot reach the MLflow store" in result.err
    assert cli("promote", "nope", "1").code == 2


def test_the_runs_appear_in_the_mlflow_ui(tracked):
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    honing.train({"name": "cancer", "data": {"source": "builtin:breast_cancer"},
                  "model": {"type": "logistic_regression"}, "evaluate": {"bootstrap": 0, "explain": False}},
                 out=tracked / "run")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "honing.cli", "ui", "--port", str(port)], cwd=tracked,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "the MLflow UI did not start"
                time.sleep(0.5)
        experiments = json.load(urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=cancer"))
        body = json.dumps({"experiment_ids": [experiments["experiment"]["experiment_id"]]}).encode()
        request = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search", data=body,
                                         headers={"Content-Type": "application/json"})
        found = json.load(urllib.request.urlopen(request))["runs"]
        assert [r["info"]["run_name"] for r in found] == ["run"]
        assert (urllib.request.urlopen(f"{base}/").status == 200)  # the UI page itself
    finally:
        import os
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

"""The real server (honing.serving.server.run) in a child process on a free port: it serves and says
where, two workers both answer and /metrics adds them up, and SIGTERM lets a slow request in flight
finish and flushes the prediction log."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

import honing
from honing.errors import ServingError
from honing.recipe import MonitorConfig, ServeConfig
from honing.serving import server

ROW = {"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Ticket": "A/5 21171", "Fare": 7.25,
       "Cabin": None, "Embarked": "S"}
SLOW_FARE = 12345.0  # the child's model sleeps on a row with this fare

# The child serves the bundle; with SLOW set its model takes 3 s on a row whose Fare is SLOW_FARE (a
# test-only patch of the child's Bundle class: the production code has no hook for it).
CHILD = f"""
import sys, time
from honing.recipe import MonitorConfig, ServeConfig
from honing.serving import server
if sys.argv[4] == "slow":
    from honing.bundle.predictor import Bundle
    scores = Bundle.scores
    def slow(self, X, rows=None):
        if rows is not None and (rows["Fare"] == {SLOW_FARE}).any():
            time.sleep(3)
        return scores(self, X, rows)
    Bundle.scores = slow
server.run(sys.argv[1], ServeConfig(port=0, workers=int(sys.argv[2])), MonitorConfig(log=sys.argv[3]))
"""
ANNOUNCE = re.compile(r"^serving titanic \(logistic_regression, version ([0-9a-f]{12})\) "
                      r"on (http://127\.0\.0\.1:\d+) — API docs at /docs$")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    recipe = {"name": "titanic", "data": {"source": "builtin:titanic", "drop": ["PassengerId", "Name"]},
              "model": {"type": "logistic_regression"}, "evaluate": {"explain": False, "bootstrap": 0}}
    run = honing.train(recipe, out=tmp_path_factory.mktemp("server") / "run", track=False)
    return run.bundle_dir


class Served:
    """A server child process: ``url`` once it has announced itself; stopped with SIGTERM."""

    def __init__(self, bundle_dir: Path, log_url: str, *, workers: int = 1, slow: bool = False,
                 command: list[str] | None = None):
        command = command or [sys.executable, "-c", CHILD, str(bundle_dir), str(workers), log_url,
                              "slow" if slow else "-"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.version, self.url = self._announced(timeout=180)

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _announced(self, timeout: float) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            self.output.append(line)
            if match := ANNOUNCE.match(line):
                return match.group(1), match.group(2)
        self.stop()
        pytest.fail("the server did not announce itself:\n" + "\n".join(self.output))

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def test_serves_announces_and_logs(bundle_dir, tmp_path):
    from honing.serving.log_store import read_predictions

    log_url = sqlite_url(tmp_path / "predictions.db")
    with Served(bundle_dir, log_url) as served:
        assert not served.url.endswith(":8000")
        answer = httpx.post(f"{served.url}/v1/predict", json={"instances": [ROW, {**ROW, "Sex": "female"}]})
        assert served.stop() is not None
    assert answer.status_code == 200
    expected = honing.load(bundle_dir).predict(pd.DataFrame([ROW, {**ROW, "Sex": "female"}]))
    assert answer.json()["predictions"] == expected.tolist()
    assert answer.json()["model_version"] == served.version
    logged = read_predictions(log_url)
    assert logged["request_id"].tolist() == [answer.headers["x-request-id"]] * 2


def test_two_workers_answer_and_metrics_add_up(bundle_dir, tmp_path):
    with Served(bundle_dir, sqlite_url(tmp_path / "predictions.db"), workers=2) as served:
        def health(_: int) -> int:
            with httpx.Client() as fresh:  # a new connection each time, so either worker may take it
                return fresh.get(f"{served.url}/v1/health").json()["worker"]

        workers: set[int] = set()
        with ThreadPoolExecutor(8) as pool:
            for _ in range(25):
                workers |= set(pool.map(health, range(16)))
                if len(workers) == 2:
                    break
        assert len(workers) == 2, workers

        def predict(_: int) -> int:
            with httpx.Client() as fresh:
                return fresh.post(f"{served.url}/v1/predict", json={"instances": [ROW]}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(predict, range(40))) == {200}
        scrapes = [httpx.get(f"{served.url}/metrics").text for _ in range(6)]
    for text in scrapes:  # whichever worker answers, the counts are the sum of both
        assert metric(text, "honing_requests_total", endpoint="/v1/predict", status="200") == 40
        assert metric(text, "honing_prediction_rows_total") == 40


def test_sigterm_lets_the_request_in_flight_finish_and_flushes_the_log(bundle_dir, tmp_path):
    from honing.serving.log_store import read_predictions

    log_url = sqlite_url(tmp_path / "predictions.db")
    answers: list[httpx.Response] = []
    with Served(bundle_dir, log_url, slow=True) as served:
        slow = threading.Thread(target=lambda: answers.append(httpx.post(
            f"{served.url}/v1/predict", json={"instances": [{**ROW, "Fare": SLOW_FARE}]},
            headers={"X-Request-ID": "slow-one"}, timeout=60)))
        slow.start()
        deadline = time.monotonic() + 30
        # in flight: the slow request and the scrape itself
        while metric(httpx.get(f"{served.url}/metrics").text, "honing_requests_in_flight") < 2:
            assert time.monotonic() < deadline, "the slow request never started"
            time.sleep(0.05)
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        slow.join(60)
        code = served.stop()
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json()["request_id"] == "slow-one"
    assert time.monotonic() - started > 1  # the server waited for it
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
    logged = read_predictions(log_url)
    assert logged["request_id"].tolist() == ["slow-one"]
    assert logged["Fare"].tolist() == [SLOW_FARE]


def test_a_busy_port_is_a_serving_error(bundle_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServingError, match=f"cannot listen on 127.0.0.1:{port}") as error:
            server.run(bundle_dir, ServeConfig(port=port), MonitorConfig(log=None))
    assert "--port" in error.value.hint


def test_bad_settings_fail_before_anything_is_served(bundle_dir, monkeypatch):
    monkeypatch.delenv("TEST_HONING_UNSET_KEY", raising=False)
    with pytest.raises(ServingError, match="TEST_HONING_UNSET_KEY"):
        server.run(bundle_dir, ServeConfig(port=0, api_key_env="TEST_HONING_UNSET_KEY"),
                   MonitorConfig(log=None))


def test_worker_settings_round_trip(bundle_dir, monkeypatch, tmp_path):
    """What a worker process rebuilds from the environment is the app the settings describe."""
    from fastapi.testclient import TestClient

    serve = ServeConfig(max_rows=7, unknown_categories="reject")
    settings = {"bundle": str(bundle_dir), "serve": serve.model_dump(mode="json"),
                "monitor": MonitorConfig(log=None).model_dump(mode="json"), "backend": "native"}
    monkeypatch.setenv(server.SETTINGS_ENV, json.dumps(settings))
    with TestClient(server.worker_app()) as c:
        card = c.get("/v1/model").json()
        too_many = c.post("/v1/predict", json={"instances": [ROW] * 8})
    assert card["serve"]["max_rows"] == 7 and card["serve"]["unknown_categories"] == "reject"
    assert too_many.status_code == 413


def test_the_serve_command_takes_its_settings_from_options_and_set(bundle_dir, tmp_path):
    from honing.serving.log_store import read_predictions

    log_url = sqlite_url(tmp_path / "cli.db")
    command = [sys.executable, "-m", "honing.cli", "serve", str(bundle_dir), "--port", "0", "--log", log_url,
               "--set", "serve.max_rows=2"]
    with Served(bundle_dir, log_url, command=command) as served:
        two = httpx.post(f"{served.url}/v1/predict", json={"instances": [ROW, ROW]})
        three = httpx.post(f"{served.url}/v1/predict", json={"instances": [ROW, ROW, ROW]})
        served.stop()
    assert two.status_code == 200 and three.status_code == 413
    assert len(read_predictions(log_url)) == 2

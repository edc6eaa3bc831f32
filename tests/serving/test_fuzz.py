"""Fuzzing the REST app with schemathesis against its own OpenAPI spec: valid and invalid bodies,
headers and paths on every operation must never get a 5xx answer."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

import honing
from honing.recipe import ServeConfig
from honing.serving.app import create_app

KEY = "fuzz-key"


class MemoryLog:
    """The PredictionLog interface, keeping nothing (feedback must find a log, or it answers 503)."""

    dropped = written = failed = 0
    url = "memory://"

    def start(self):
        return self

    def submit(self, records):
        return True

    def add_feedback(self, request_id, labels, rows=None):
        return True

    def close(self, timeout=10.0):
        pass


@pytest.fixture(scope="module")
def api(tmp_path_factory, request):
    """A titanic bundle's app with strict settings (unknown categories and nulls rejected, small limits,
    an API key), as schemathesis sees it through its OpenAPI spec."""
    recipe = {"name": "titanic", "data": {"source": "builtin:titanic", "drop": ["PassengerId", "Name"]},
              "model": {"type": "logistic_regression"}, "evaluate": {"explain": False, "bootstrap": 0}}
    run = honing.train(recipe, out=tmp_path_factory.mktemp("fuzz") / "run", track=False)
    patch = pytest.MonkeyPatch()
    request.addfinalizer(patch.undo)
    patch.setenv("TEST_HONING_FUZZ_KEY", KEY)
    serve = ServeConfig(unknown_categories="reject", missing="reject", max_rows=20, max_body_kb=16,
                        api_key_env="TEST_HONING_FUZZ_KEY")
    app = create_app(honing.load(run.bundle_dir), serve, MemoryLog())
    return schemathesis.openapi.from_asgi("/openapi.json", app)


OPERATIONS = [("POST", "/v1/predict"), ("POST", "/v1/feedback"), ("GET", "/v1/health"), ("GET", "/v1/ready"),
              ("GET", "/v1/model"), ("GET", "/metrics")]
CASES = [(method, path, mode) for method, path in OPERATIONS
         for mode in ([GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if method == "POST"
                      else [GenerationMode.POSITIVE])]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
@pytest.mark.parametrize("key", [True, False], ids=["key", "no-key"])
def test_no_server_errors(api, method, path, mode, key):
    """Generated requests (valid ones and, for the bodies, invalid ones), with and without the API key:
    never a 5xx."""
    operation = api[path][method]
    headers = {"Authorization": f"Bearer {KEY}"} if key else {}
    answered: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=40 if key else 10, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
        answered.append(response.status_code)

    check()
    assert answered and max(answered) < 500
    if not key and path not in ("/v1/health", "/v1/ready"):
        assert set(answered) == {401}
    if key and mode == GenerationMode.POSITIVE:  # valid requests reach the model (or the log) and succeed
        assert {200, 202} & set(answered), answered

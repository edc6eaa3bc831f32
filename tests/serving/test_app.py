"""The REST app (honing.serving.app) in-process with FastAPI's TestClient: predictions against the
bundle's own predict/predict_proba (the oracle), field-level validation, limits, API key, CORS, the
model card, Prometheus metrics, the prediction log, feedback, readiness and micro-batching."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import honing
from conftest import strict_json
from honing.data.preprocess import coerce_features
from honing.data.schema import Column, Schema
from honing.errors import ServingError
from honing.recipe import ServeConfig
from honing.serving.app import MicroBatcher, Scored, create_app
from honing.serving.request import PredictRequests, canonical

BUILTIN = Path(honing.__file__).parent / "data" / "builtin"
TITANIC_FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Ticket", "Fare", "Cabin", "Embarked"]


def train(tmp: Path, name: str, data: dict, model: str) -> Path:
    run = honing.train({"name": name, "data": data, "model": {"type": model},
                        "evaluate": {"explain": False, "bootstrap": 0}}, out=tmp / name, track=False)
    return run.bundle_dir


@pytest.fixture(scope="module")
def titanic(tmp_path_factory):
    path = train(tmp_path_factory.mktemp("titanic"), "titanic",
                 {"source": "builtin:titanic", "drop": ["PassengerId", "Name"]}, "logistic_regression")
    return honing.load(path)


@pytest.fixture(scope="module")
def housing(tmp_path_factory):
    path = train(tmp_path_factory.mktemp("housing"), "housing", {"source": "builtin:california_housing"},
                 "ridge")
    return honing.load(path)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A bundle with numeric, boolean, datetime, text and categorical features."""
    tmp = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    n = 240
    words = np.array(["good", "bad", "great", "awful", "fine", "meh", "super", "poor"])
    frame = pd.DataFrame({
        "amount": rng.normal(50, 10, n).round(2), "flag": rng.choice(["yes", "no"], n),
        "when": pd.date_range("2023-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "note": [" ".join(rng.choice(words, 4)) + f" item{i}" for i in range(n)],
        "color": rng.choice(["red", "green", "blue"], n)})
    frame["y"] = ((frame.amount > 50) ^ (frame.flag == "yes")).astype(int)
    frame.loc[::17, "amount"] = np.nan
    frame.to_csv(tmp / "mixed.csv", index=False)
    path = train(tmp, "mixed", {"source": str(tmp / "mixed.csv"), "target": "y",
                                "types": {"note": "text", "when": "datetime"}}, "logistic_regression")
    return honing.load(path)


def raw_rows(name: str, features: list[str], count: int, start: int = 0) -> pd.DataFrame:
    """Rows of a bundled dataset's CSV, as a user would send them."""
    return pd.read_csv(BUILTIN / f"{name}.csv").iloc[start:start + count][features].reset_index(drop=True)


def instances(frame: pd.DataFrame) -> list[dict]:
    """A frame's rows as JSON instances (NaN → null, numpy scalars → Python)."""
    return json.loads(frame.to_json(orient="records"))


def client(bundle, log=None, **serve) -> TestClient:
    return TestClient(create_app(bundle, ServeConfig(**serve), log))


class FakeLog:
    """The PredictionLog interface, in memory."""

    def __init__(self, accept: bool = True, fail: bool = False):
        self.accept, self.fail = accept, fail
        self.records: list[dict] = []
        self.feedback: list[tuple] = []
        self.started = self.closed = False
        self.dropped = self.written = self.failed = 0
        self.url = "fake://"

    def start(self):
        self.started = True
        return self

    def submit(self, records):
        if self.fail:
            raise RuntimeError("the log broke")
        if self.accept:
            self.records.extend(records)
        return self.accept

    def add_feedback(self, request_id, labels, rows=None):
        self.feedback.append((request_id, labels, rows))
        return self.accept

    def close(self, timeout=10.0):
        self.closed = True


def samples(text: str) -> dict:
    """Prometheus text → {(sample name, sorted labels): value}."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# ---------------------------------------------------------------------------------------------- predictions


def test_classifier_predictions_equal_the_bundles_own(titanic):
    frame = raw_rows("titanic", TITANIC_FEATURES, 40)  # rows with missing Age and Cabin among them
    assert frame["Age"].isna().any() and frame["Cabin"].isna().any()
    with client(titanic) as c:
        answer = c.post("/v1/predict", json={"instances": instances(frame)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["predictions"] == titanic.predict(frame).tolist()
    expected = titanic.predict_proba(frame)
    assert body["classes"] == [0, 1]
    got = pd.DataFrame(body["probabilities"])[list(expected.columns)]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert body["model_version"] == titanic.manifest["manifest_sha256"][:12]
    assert body["request_id"] == answer.headers["x-request-id"]


def test_one_instance(titanic):
    frame = raw_rows("titanic", TITANIC_FEATURES, 1, start=7)
    with client(titanic) as c:
        body = c.post("/v1/predict", json={"instances": instances(frame)}).json()
    assert body["predictions"] == titanic.predict(frame).tolist()
    assert math.isclose(sum(body["probabilities"][0].values()), 1.0)


def test_regression_predictions_equal_the_bundles_own(housing):
    features = Schema.from_dict(housing.features).feature_names
    frame = raw_rows("california_housing", features, 25, start=100)
    with client(housing) as c:
        body = c.post("/v1/predict", json={"instances": instances(frame)}).json()
    np.testing.assert_allclose(body["predictions"], housing.predict(frame), rtol=1e-12)
    assert "probabilities" not in body and "classes" not in body


def test_every_feature_kind_predicts_like_the_bundle(mixed):
    frame = pd.DataFrame({"amount": [41.5, None, 63.0], "flag": ["yes", False, 1],
                          "when": ["2023-03-01", "2023-05-07T10:30:00", "2023-08-01T00:00:00Z"],
                          "note": ["good bad fine", "awful", "super super poor"],
                          "color": ["red", "blue", "green"]},
                         dtype=object)
    with client(mixed) as c:
        body = c.post("/v1/predict", json={"instances": frame.to_dict("records")}).json()
    assert body["predictions"] == mixed.predict(frame).tolist()
    np.testing.assert_allclose(pd.DataFrame(body["probabilities"]).to_numpy(),
                               mixed.predict_proba(frame).to_numpy())


def test_extra_keys_are_ignored(titanic):
    row = instances(raw_rows("titanic", TITANIC_FEATURES, 1))[0]
    with client(titanic) as c:
        plain = c.post("/v1/predict", json={"instances": [row]}).json()
        extra = c.post("/v1/predict", json={"instances": [{**row, "Name": "Smith", "nested": {"a": [1]}}]})
    assert extra.status_code == 200
    assert extra.json()["probabilities"] == plain["probabilities"]


# ---------------------------------------------------------------------------------------------- validation

ROW = {"Pclass": 3, "Sex": "male", "Age": 22.0, "SibSp": 1, "Parch": 0, "Ticket": "A/5 21171", "Fare": 7.25,
       "Cabin": "C85", "Embarked": "S"}


@pytest.mark.parametrize(("change", "field", "words", "serve"), [
    ({"Age": "22"}, "Age", "valid number", {}),
    ({"Age": True}, "Age", "valid number", {}),
    ({"Pclass": [3]}, "Pclass", "valid number", {}),
    ({"Sex": {"value": "male"}}, "Sex", "", {}),
    ({"Embarked": "X"}, "Embarked", "known: C, Q, S", {"unknown_categories": "reject"}),
    ({"Sex": "robot"}, "Sex", "known: female, male", {"unknown_categories": "reject"}),
    ({"Age": None}, "Age", "serve.missing: reject", {"missing": "reject"}),
    ({"Embarked": None}, "Embarked", "serve.missing: reject", {"missing": "reject"}),
    ({"Fare": 1.5e18}, "Fare", "less than or equal to 1000000000000000000", {}),
], ids=["numeric-string", "numeric-bool", "numeric-list", "category-object", "unknown-embarked",
        "unknown-sex", "null-numeric", "null-category", "numeric-huge"])
def test_bad_values_are_field_level_422s(titanic, change, field, words, serve):
    with client(titanic, **serve) as c:
        answer = c.post("/v1/predict", json={"instances": [ROW, {**ROW, **change}]})
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "instances", 1, field]
    assert words in error["msg"]


def test_accept_policies_let_unknown_and_null_values_through(titanic):
    rows = [{**ROW, "Embarked": "X", "Sex": "robot", "Age": None}]
    with client(titanic) as c:  # defaults: accept both
        answer = c.post("/v1/predict", json={"instances": rows})
    assert answer.status_code == 200
    assert answer.json()["predictions"] == titanic.predict(pd.DataFrame(rows)).tolist()


def test_values_the_preprocessing_cannot_take_are_422(titanic, monkeypatch):
    transform = titanic.transform

    def overflowing(frame):
        X = transform(frame)
        X[frame["Fare"].to_numpy() == 1e18] = np.inf  # as a scaler dividing a huge value would
        return X

    monkeypatch.setattr(titanic, "transform", overflowing)
    with client(titanic) as c:
        answer = c.post("/v1/predict", json={"instances": [ROW, {**ROW, "Fare": 1e18}]})
    assert answer.status_code == 422
    assert answer.json()["detail"] == [{"loc": ["body", "instances", 1], "type": "value_out_of_range",
                                        "msg": "values too large for the model's preprocessing"}]


def test_missing_feature_names_it(titanic):
    row = {k: v for k, v in ROW.items() if k != "Fare"}
    with client(titanic) as c:
        answer = c.post("/v1/predict", json={"instances": [row]})
    assert answer.status_code == 422
    assert answer.json()["detail"] == [{"loc": ["body", "instances", 0, "Fare"], "msg": "Field required",
                                        "type": "missing"}]


@pytest.mark.parametrize("body", [b'{"instances": [{"Age": NaN}]}', b'{"instances": [{"Age": Infinity}]}',
                                  b"{not json", b"[]", b'{"instances": []}', b'{"instances": {"Age": 1}}',
                                  b"", b'{"rows": []}', b'{"instances": [1, "a", null]}',
                                  "é".encode("latin-1")])
def test_malformed_bodies_are_422_never_500(titanic, body):
    with client(titanic) as c:
        answer = c.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"] and all("loc" in e and "msg" in e for e in answer.json()["detail"])


def test_non_finite_numbers_name_the_field(titanic):
    body = json.dumps({"instances": [ROW]}).replace('"Age": 22.0', '"Age": NaN').encode()
    with client(titanic) as c:
        [error] = c.post("/v1/predict", content=body).json()["detail"]
    assert error["loc"] == ["body", "instances", 0, "Age"] and "finite" in error["msg"]


def test_kind_rules_for_boolean_datetime_and_text(mixed):
    good = {"amount": 50.0, "flag": "yes", "when": "2023-02-01", "note": "fine", "color": "red"}
    cases = {"flag": ("maybe", "not a boolean"), "when": ("next tuesday", "ISO 8601"),
             "note": (5, "valid string")}
    with client(mixed, unknown_categories="reject") as c:
        assert c.post("/v1/predict", json={"instances": [good]}).status_code == 200
        for field, (value, words) in cases.items():
            [error] = c.post("/v1/predict", json={"instances": [{**good, field: value}]}).json()["detail"]
            assert error["loc"][-1] == field and words in error["msg"], error
        [error] = c.post("/v1/predict", json={"instances": [{**good, "color": "mauve"}]}).json()["detail"]
    assert "known: blue, green, red" in error["msg"]


def test_categories_compare_in_trainings_representation():
    """canonical() agrees with the coercion training applies (the oracle: coerce_features)."""
    values = [1, 1.0, "1", " 1 ", 2.5, True, False, "male", 0, -3, 1e20, "x y"]
    schema = Schema([Column("c", "categorical", "object", 0.0, len(values))])
    coerced = coerce_features(pd.DataFrame({"c": pd.Series(values, dtype=object)}), schema)["c"].tolist()
    assert [canonical(v) for v in values] == coerced


def test_only_complete_category_lists_reject():
    """Schema categories are the top values only: a column with more distinct values accepts unknowns."""
    class Fake:
        features: ClassVar[dict] = {"target": "y", "columns": [
            {"name": "few", "kind": "categorical", "dtype": "str", "missing": 0, "unique": 2,
             "categories": ["a", "b"]},
            {"name": "many", "kind": "categorical", "dtype": "str", "missing": 0, "unique": 500,
             "categories": ["a", "b"]},
            {"name": "y", "kind": "boolean", "dtype": "int64", "missing": 0, "unique": 2,
             "categories": [0, 1]}]}
        manifest: ClassVar[dict] = {}
        decision: ClassVar[dict] = {}

    requests = PredictRequests(Fake(), ServeConfig(unknown_categories="reject"))
    assert requests.parse(b'{"instances": [{"few": "a", "many": "zzz"}]}') == [{"few": "a", "many": "zzz"}]
    with pytest.raises(Exception, match="known: a, b"):
        requests.parse(b'{"instances": [{"few": "zzz", "many": "a"}]}')
    # a reference profile with no 'other' share lists every value, and wins over the schema
    profile = {"kind": "categorical", "proportions": {"a": 0.5, "q": 0.5}, "other": 0.0}
    Fake.manifest = {"reference": {"features": {"many": profile}}}
    requests = PredictRequests(Fake(), ServeConfig(unknown_categories="reject"))
    assert requests.parse(b'{"instances": [{"few": "a", "many": "q"}]}')[0]["many"] == "q"
    with pytest.raises(Exception, match="known: a, q"):
        requests.parse(b'{"instances": [{"few": "a", "many": "b"}]}')


# ---------------------------------------------------------------------------------------------- limits


def test_too_many_rows_is_413(titanic):
    with client(titanic, max_rows=3) as c:
        assert c.post("/v1/predict", json={"instances": [ROW] * 3}).status_code == 200
        answer = c.post("/v1/predict", json={"instances": [ROW] * 4})
    assert answer.status_code == 413
    assert "4 instances" in answer.json()["detail"] and "serve.max_rows" in answer.json()["detail"]


def test_too_large_a_body_is_413_by_header_and_by_stream(titanic):
    body = json.dumps({"instances": [ROW] * 12}).encode()  # about 1.9 KiB
    assert 1024 < len(body) < 2048
    with client(titanic, max_body_kb=1) as c:
        declared = c.post("/v1/predict", content=body)
        streamed = c.post("/v1/predict", content=iter([body[:700], body[700:1400], body[1400:]]))
        small = c.post("/v1/predict", content=json.dumps({"instances": [ROW]}).encode())
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    assert declared.status_code == streamed.status_code == 413
    assert "serve.max_body_kb" in declared.json()["detail"]
    assert small.status_code == 200


# ---------------------------------------------------------------------------------------------- auth, CORS


def test_api_key(titanic, monkeypatch):
    monkeypatch.setenv("TEST_HONING_KEY", "s3cret")
    with client(titanic, api_key_env="TEST_HONING_KEY") as c:
        bare = c.post("/v1/predict", json={"instances": [ROW]})
        wrong = c.post("/v1/predict", json={"instances": [ROW]}, headers={"Authorization": "Bearer nope"})
        right = c.post("/v1/predict", json={"instances": [ROW]}, headers={"Authorization": "Bearer s3cret"})
        metrics = c.get("/metrics")
        probes = [c.get(path).status_code for path in ("/v1/health", "/v1/ready", "/openapi.json", "/docs")]
        spec = c.get("/openapi.json").json()
    assert bare.status_code == wrong.status_code == metrics.status_code == 401
    assert bare.headers["www-authenticate"] == "Bearer" and "Authorization: Bearer" in bare.json()["detail"]
    assert right.status_code == 200
    assert probes == [200, 200, 200, 200]
    assert spec["paths"]["/v1/predict"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/v1/health"]["get"]


def test_api_key_variable_must_be_set(titanic, monkeypatch):
    monkeypatch.delenv("TEST_HONING_NO_KEY", raising=False)
    with pytest.raises(ServingError, match="TEST_HONING_NO_KEY is not set"):
        create_app(titanic, ServeConfig(api_key_env="TEST_HONING_NO_KEY"))


def test_cors_is_off_by_default_and_on_when_configured(titanic):
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    with client(titanic) as c:
        off = c.get("/v1/health", headers={"Origin": "https://app.example.com"})
        off_preflight = c.options("/v1/predict", headers=preflight)
    with client(titanic, cors_origins=["https://app.example.com"]) as c:
        on = c.get("/v1/health", headers={"Origin": "https://app.example.com"})
        on_preflight = c.options("/v1/predict", headers=preflight)
        other = c.get("/v1/health", headers={"Origin": "https://evil.example.com"})
    assert not any(k.lower().startswith("access-control-") for k in [*off.headers, *off_preflight.headers])
    assert on.headers["access-control-allow-origin"] == "https://app.example.com"
    assert on_preflight.status_code == 200 and "POST" in on_preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in other.headers


# ------------------------------------------------------------------------------------------- model, metrics


def test_model_card(titanic):
    with client(titanic) as c:
        card = c.get("/v1/model").json()
    manifest = titanic.manifest
    assert card["name"] == "titanic" and card["task"] == "classification" and card["target"] == "Survived"
    assert card["version"] == manifest["manifest_sha256"][:12]
    assert card["model_type"] == "logistic_regression" and card["classes"] == [0, 1]
    assert [f["name"] for f in card["features"]] == TITANIC_FEATURES
    assert {f["name"]: f["kind"] for f in card["features"]}["Sex"] == "categorical"
    assert card["metrics"] == json.loads(json.dumps(manifest["metrics"]))
    assert card["fingerprint"] == {"manifest_sha256": manifest["manifest_sha256"],
                                   "data": manifest["data_fingerprint"]}


def test_model_card_is_strict_json_for_an_older_bundle_with_nan_metrics(titanic, tmp_path):
    """Bundles saved before manifests were strict JSON may hold NaN metrics: the card says null (FastAPI's
    encoder does it; a guard that the card stays strict JSON, not a test of honing's own NaN handling)."""
    from honing.bundle.manifest import manifest_checksum

    path = tmp_path / "old"
    shutil.copytree(titanic.path, path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["metrics"] = {**manifest["metrics"], "test": {"roc_auc": float("nan"), "accuracy": 0.8}}
    manifest["manifest_sha256"] = manifest_checksum(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))
    with client(honing.load(path)) as c:
        response = c.get("/v1/model")
    assert response.status_code == 200
    assert strict_json(response.text)["metrics"]["test"] == {"roc_auc": None, "accuracy": 0.8}

def test_metrics_count_what_was_sent(titanic):
    frame = raw_rows("titanic", TITANIC_FEATURES, 6, start=20)
    labels = titanic.predict(frame).tolist()
    with client(titanic) as c:
        for part in (frame.iloc[:2], frame.iloc[2:4], frame.iloc[4:]):
            assert c.post("/v1/predict", json={"instances": instances(part)}).status_code == 200
        assert c.post("/v1/predict", json={"instances": [{}]}).status_code == 422
        c.get("/v1/nowhere")
        text = c.get("/metrics").text
    got = samples(text)
    assert got[("honing_requests_total", (("endpoint", "/v1/predict"), ("status", "200")))] == 3
    assert got[("honing_requests_total", (("endpoint", "/v1/predict"), ("status", "422")))] == 1
    assert got[("honing_requests_total", (("endpoint", "other"), ("status", "404")))] == 1
    assert got[("honing_request_duration_seconds_count", (("endpoint", "/v1/predict"),))] == 4
    assert got[("honing_request_duration_seconds_bucket", (("endpoint", "/v1/predict"), ("le", "+Inf")))] == 4
    assert got[("honing_prediction_rows_total", ())] == 6
    for label in set(labels):
        assert got[("honing_predicted_class_total", (("class", str(label)),))] == labels.count(label)
    assert got[("honing_requests_in_flight", ())] == 1  # the scrape itself
    version = titanic.manifest["manifest_sha256"][:12]
    assert got[("honing_model_info", (("backend", "native"), ("model_type", "logistic_regression"),
                                      ("name", "titanic"), ("version", version)))] == 1


def test_two_apps_in_one_process_keep_their_own_metrics(titanic, housing):
    with client(titanic) as a, client(titanic) as b:
        a.post("/v1/predict", json={"instances": [ROW]})
        count = samples(b.get("/metrics").text).get(
            ("honing_requests_total", (("endpoint", "/v1/predict"), ("status", "200"))), 0)
    assert count == 0


# ---------------------------------------------------------------------------------------------- log, feedback


def test_every_row_is_logged(titanic):
    log = FakeLog()
    frame = raw_rows("titanic", TITANIC_FEATURES, 3, start=5)
    sent = [{**row, "unused": 1} for row in instances(frame)]
    with client(titanic, log) as c:
        assert log.started
        body = c.post("/v1/predict", json={"instances": sent}, headers={"X-Request-ID": "order-17"}).json()
    assert log.closed
    assert [r["row"] for r in log.records] == [0, 1, 2]
    proba = titanic.predict_proba(frame).to_numpy()
    for i, record in enumerate(log.records):
        assert record["request_id"] == "order-17" == body["request_id"]
        assert record["features"] == instances(frame)[i]  # as sent, without the keys that are not features
        assert record["prediction"] == body["predictions"][i]
        assert record["probability"] == pytest.approx(proba[i, [0, 1].index(record["prediction"])])
        assert record["model_name"] == "titanic" and record["model_version"] == body["model_version"]
        assert record["latency_ms"] > 0 and record["timestamp"] > 1.7e9


def test_a_full_or_broken_log_never_fails_a_request(titanic):
    for log in (FakeLog(accept=False), FakeLog(fail=True)):
        with client(titanic, log) as c:
            assert c.post("/v1/predict", json={"instances": [ROW, ROW]}).status_code == 200
            dropped = samples(c.get("/metrics").text)[("honing_prediction_log_dropped_rows_total", ())]
        assert dropped == (2 if not log.fail else 0)


def test_logged_to_sqlite_with_feedback(titanic, tmp_path):
    from honing.serving.log_store import read_predictions
    from honing.serving.predict_log import PredictionLog

    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    frame = raw_rows("titanic", TITANIC_FEATURES, 2)
    with client(titanic, PredictionLog(url)) as c:
        body = c.post("/v1/predict", json={"instances": instances(frame)}).json()
        answer = c.post("/v1/feedback", json={"request_id": body["request_id"], "labels": ["1", 0]})
        # a row index SQLite cannot store is refused here, not queued to fail the writer's batch
        huge = c.post("/v1/feedback", json={"request_id": "r2", "labels": [0], "rows": [2**63]})
    assert answer.status_code == 202 and answer.json() == {"request_id": body["request_id"], "labels": 2}
    assert huge.status_code == 422 and huge.json()["detail"][0]["loc"] == ["body", "rows", 0]
    logged = read_predictions(url)
    assert logged["request_id"].tolist() == [body["request_id"]] * 2
    assert logged["prediction"].tolist() == body["predictions"]
    assert logged["label"].tolist() == [1, 0]
    assert logged["Sex"].tolist() == frame["Sex"].tolist()


def test_feedback_validation_and_storage(titanic):
    log = FakeLog()
    with client(titanic, log) as c:
        ok = c.post("/v1/feedback", json={"request_id": "r1", "labels": [1, "0"], "rows": [3, 1]})
        unknown = c.post("/v1/feedback", json={"request_id": "r1", "labels": [2]})
        mismatch = c.post("/v1/feedback", json={"request_id": "r1", "labels": [1], "rows": [0, 1]})
        bad_id = c.post("/v1/feedback", json={"request_id": "no spaces please", "labels": [1]})
        empty = c.post("/v1/feedback", json={"request_id": "r1", "labels": []})
        junk = c.post("/v1/feedback", content=b"[")
    assert ok.status_code == 202
    assert log.feedback == [("r1", [1, 0], [3, 1])]
    assert unknown.status_code == 422 and "classes: 0, 1" in unknown.json()["detail"][0]["msg"]
    assert unknown.json()["detail"][0]["loc"] == ["body", "labels", 0]
    for answer in (mismatch, bad_id, empty, junk):
        assert answer.status_code == 422, answer.text


def test_feedback_rows_are_row_indices_of_a_request(titanic):
    log = FakeLog()
    with client(titanic, log, max_rows=5) as c:
        answers = [c.post("/v1/feedback", json={"request_id": "r1", "labels": [1, 0], "rows": rows})
                   for rows in ([2**63, 0], [0, -1], [4, 5], [4, 0])]
        schema = c.get("/openapi.json").json()["components"]["schemas"]["Feedback"]
    for answer, index, value in zip(answers, (0, 1, 1), (2**63, -1, 5), strict=False):
        detail = answer.json()["detail"]
        assert answer.status_code == 422 and detail[0]["loc"] == ["body", "rows", index], answer.text
        assert detail[0]["msg"] == (f"{value} is not a row index of a request: send 0 to 4 (a request has at most "
                                    "serve.max_rows = 5 rows)")
    assert answers[3].status_code == 202 and log.feedback == [("r1", [1, 0], [4, 0])]
    assert schema["properties"]["rows"]["anyOf"][0]["items"] == {"type": "integer", "minimum": 0, "maximum": 4}


def test_feedback_without_a_log_or_with_a_full_one_is_503(titanic, housing):
    with client(titanic) as c:
        none = c.post("/v1/feedback", json={"request_id": "r1", "labels": [1]})
    with client(housing, FakeLog(accept=False)) as c:
        full = c.post("/v1/feedback", json={"request_id": "r1", "labels": [123.5]})
    assert none.status_code == 503 and "monitor.log" in none.json()["detail"]
    assert full.status_code == 503 and full.headers["retry-after"] == "1"


# ---------------------------------------------------------------------------------------------- lifecycle


def test_ready_only_after_warm_up(titanic, monkeypatch):
    calls = []
    scores = titanic.scores
    monkeypatch.setattr(titanic, "scores", lambda X, rows=None: calls.append(len(X)) or scores(X, rows))
    c = client(titanic)
    assert c.get("/v1/ready").status_code == 503  # the app has not started: no warm-up yet
    assert c.get("/v1/health").json()["status"] == "ok"
    assert calls == []
    with c:
        assert calls  # the warm-up predicted before any request
        assert c.get("/v1/ready").json() == {"status": "ready"}


def test_a_model_that_fails_at_warm_up_stops_the_start(titanic, monkeypatch):
    monkeypatch.setattr(titanic, "scores", lambda X, rows=None: 1 / 0)
    with pytest.raises(ServingError, match="warm-up: division by zero"), client(titanic):
        pass


def test_a_model_failure_is_a_one_line_500(titanic, monkeypatch):
    scores = titanic.scores

    def failing(X, rows=None):
        if rows is not None and (rows["Fare"] == 666).any():
            raise RuntimeError("weights on fire\nsecond line")
        return scores(X, rows)

    monkeypatch.setattr(titanic, "scores", failing)
    with client(titanic) as c:
        answer = c.post("/v1/predict", json={"instances": [{**ROW, "Fare": 666}]})
        after = c.post("/v1/predict", json={"instances": [ROW]})
    assert answer.status_code == 500
    assert answer.json() == {"detail": "the model failed on this request: weights on fire"}
    assert after.status_code == 200


@pytest.mark.parametrize(("sent", "kept"), [("abc-123", True), ("a" * 128, True), ("has space", False),
                                            ("x" * 129, False), ("", False)])
def test_request_ids(titanic, sent, kept):
    with client(titanic) as c:
        answer = c.post("/v1/predict", json={"instances": [ROW]}, headers={"X-Request-ID": sent})
    rid = answer.headers["x-request-id"]
    assert answer.json()["request_id"] == rid
    assert (rid == sent) if kept else (len(rid) == 32 and int(rid, 16) >= 0)


def test_openapi_describes_the_generated_body(titanic):
    with client(titanic, max_rows=50) as c:
        spec = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/PredictRequest"}
    schemas = spec["components"]["schemas"]
    assert schemas["PredictRequest"]["properties"]["instances"]["maxItems"] == 50
    assert schemas["Instance"]["required"] == TITANIC_FEATURES
    assert {"type": "null"} in schemas["Instance"]["properties"]["Age"]["anyOf"]
    assert sorted(body["example"]["instances"][0]) == sorted(TITANIC_FEATURES)


# ------------------------------------------------------------------------------------------- micro-batching


def test_concurrent_requests_share_model_calls_and_keep_their_own_rows(titanic):
    requests = PredictRequests(titanic, ServeConfig())
    frame = raw_rows("titanic", TITANIC_FEATURES, 30)
    calls: list[int] = []
    gate = threading.Event()

    def score(rows):
        calls.append(len(rows))
        gate.wait(5)  # the first call holds the model thread while the others queue
        proba = titanic.predict_proba(pd.DataFrame(rows)).to_numpy()
        return Scored(titanic.predict(pd.DataFrame(rows)).tolist(), proba.tolist(), proba.argmax(1).tolist())

    async def main():
        batcher = MicroBatcher(score)
        parsed = [requests.parse(json.dumps({"instances": instances(frame.iloc[i:i + 3])}).encode())
                  for i in range(0, 30, 3)]
        first = asyncio.create_task(batcher(parsed[0]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(batcher(rows)) for rows in parsed[1:]]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(first, *rest)
        batcher.close()
        return results

    results = asyncio.run(main())
    assert calls == [3, 27]  # one call for the first request, one for the nine that queued behind it
    expected = titanic.predict(frame).tolist()
    assert [p for r in results for p in r.predictions] == expected


def test_a_failing_request_in_a_batch_fails_alone():
    def score(rows):
        if any(row["x"] < 0 for row in rows):
            raise ValueError("negative")
        return Scored([row["x"] * 2 for row in rows])

    async def main():
        batcher = MicroBatcher(score)
        batches = [[{"x": 1}], [{"x": -1}], [{"x": 2}, {"x": 3}]]
        results = await asyncio.gather(*(batcher(rows) for rows in batches), return_exceptions=True)
        batcher.close()
        return results

    ok1, bad, ok2 = asyncio.run(main())
    assert ok1.predictions == [2] and ok2.predictions == [4, 6]
    assert isinstance(bad, ValueError)


def test_a_boolean_target_keys_its_probabilities_as_its_predictions_are_written(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    pd.DataFrame({"x": x, "y": x + 0.5 * rng.normal(size=120) > 0}).to_csv(tmp_path / "bool.csv", index=False)
    bundle = honing.load(train(tmp_path, "bool", {"source": str(tmp_path / "bool.csv"), "target": "y"},
                               "logistic_regression"))
    with client(bundle) as c:
        body = c.post("/v1/predict", json={"instances": [{"x": 2.0}, {"x": -2.0}]}).json()
    assert body["predictions"] == [True, False]
    assert [sorted(p) for p in body["probabilities"]] == [["false", "true"]] * 2
    assert body["probabilities"][0]["true"] == pytest.approx(bundle.predict_proba(pd.DataFrame({"x": [2.0]}))["True"][0])

"""The fairness audit of a streamed run (``audit.sensitive`` with ``data.streaming``): the data's bias
on the row sample, per-group metrics of every test row (fairlearn on the saved bundle's own
predictions as oracle), ``audit.mitigate: threshold`` narrowing a planted gap, and what is refused."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_difference, selection_rate
from sklearn.metrics import accuracy_score

import honing
from conftest import assert_user_error
from honing.audit.fairness import group_labels
from honing.data.streaming import split_codes
from honing.train_flow import train

pytestmark = pytest.mark.slow


def _biased(n: int, seed: int = 0) -> pd.DataFrame:
    """Group 'a' gets the positive label far more often, through the group itself and a correlated
    feature; ``income`` is a many-valued numeric column (audited by quartiles)."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    x1 = rng.normal(size=n) + 0.8 * (group == "a")
    x2 = rng.normal(size=n)
    y = (x1 + 1.2 * (group == "a") + 0.5 * x2 + rng.normal(scale=0.7, size=n) > 1.2).astype(int)
    frame = pd.DataFrame({"group": group, "x1": x1, "x2": x2, "income": rng.lognormal(3, 1, n).round(2),
                          "label": np.where(y == 1, "yes", "no")})
    frame.loc[rng.random(n) < 0.02, "group"] = None  # audited as the group 'missing'
    return frame


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    frame = _biased(20_000)
    path = tmp_path_factory.mktemp("fair") / "t.parquet"
    frame.to_parquet(path, row_group_size=3000, index=False)
    return frame, path


def _recipe(path, audit: dict, workers: int = 0) -> dict:
    return {"data": {"source": str(path), "target": "label", "streaming": True, "workers": workers},
            "model": {"type": "mlp", "params": {"hidden": [16]}}, "train": {"epochs": 3, "batch_size": 256},
            "evaluate": {"explain": False, "bootstrap": 0}, "audit": audit, "tracking": False}


def _test_rows(frame: pd.DataFrame, seed: int = 42) -> pd.DataFrame:
    """The test rows of a streamed run: a row's split is a function of its position and the seed."""
    return frame[split_codes(np.arange(len(frame), dtype=np.uint64), seed, 0.15, 0.15) == 2]


def test_a_streamed_run_reports_the_fairness_of_every_test_row(table, tmp_path):
    frame, path = table
    run = train(_recipe(path, {"sensitive": ["group", "income"]}, workers=1), out=tmp_path / "s", track=False)
    audit = json.loads((run.run_dir / "audit.json").read_text())
    assert set(audit["bias"]) >= {"group", "income"}  # the data's bias, on the row sample
    report = audit["fairness"]["test"]
    assert set(report) == {"group", "income", "group×income"}

    test = _test_rows(frame)
    predicted = honing.load(run.bundle_dir).predict(test)
    assert accuracy_score(test["label"], predicted) == pytest.approx(run.metrics["test"]["accuracy"], abs=1e-9)
    groups = group_labels(test.reset_index(drop=True), ["group", "income"])  # quartiles of every test row
    y, p = (test["label"] == "yes").to_numpy(int), (predicted == "yes").astype(int)
    for column in ("group", "income"):
        oracle = MetricFrame(metrics={"accuracy": accuracy_score, "selection_rate": selection_rate},
                             y_true=y, y_pred=p, sensitive_features=groups[column].to_numpy())
        by_group = report[column]["by_group"]
        assert set(by_group) == set(oracle.by_group.index)
        for name, row in oracle.by_group.iterrows():
            assert by_group[name]["accuracy"] == pytest.approx(row["accuracy"], abs=1e-9)
            assert by_group[name]["selection_rate"] == pytest.approx(row["selection_rate"], abs=1e-9)
            assert by_group[name]["count"] == int((groups[column] == name).sum())
    assert "missing" in report["group"]["by_group"]
    gap = demographic_parity_difference(y, p, sensitive_features=groups["group"].to_numpy())
    assert report["group"]["measures"]["demographic_parity_difference"] == pytest.approx(gap, abs=1e-9)


def test_streamed_threshold_mitigation_narrows_the_gap(table, tmp_path):
    frame, path = table
    recipe = _recipe(path, {"sensitive": ["group"], "mitigate": "threshold", "exclude_sensitive": True})
    run = train(recipe, out=tmp_path / "s", track=False)
    schema = json.loads((run.run_dir / "schema.json").read_text())
    assert "group" not in [c["name"] for c in schema["columns"]] and "group" in schema["dropped"]
    side = json.loads((run.run_dir / "audit.json").read_text())["fairness"]["mitigation"]
    before = side["before"]["measures"]["group"]["demographic_parity_difference"]
    after = side["after"]["measures"]["group"]["demographic_parity_difference"]
    assert before > 0.2 and after < 0.5 * before, (before, after)
    assert side["after"]["metrics"]["accuracy"] > 0.6

    test = _test_rows(frame)  # the saved bundle decides per group as the evaluation did
    bundle = honing.load(run.bundle_dir)
    assert set(bundle.decision["groups"]["thresholds"]) >= {"a", "b", "c"}
    predicted = bundle.predict(test)
    assert accuracy_score(test["label"], predicted) == pytest.approx(run.metrics["test"]["accuracy"], abs=1e-9)
    gap = demographic_parity_difference(test["label"] == "yes", predicted == "yes",
                                        sensitive_features=test["group"].fillna("missing"))
    assert gap == pytest.approx(after, abs=1e-9)

    from fastapi.testclient import TestClient

    from honing.recipe import ServeConfig
    from honing.serving.app import create_app

    # served: the warm-up row has a group (not a feature), and rows decide per group as the bundle does
    with TestClient(create_app(bundle, ServeConfig())) as client:
        rows = json.loads(test.head(8).drop(columns="label").to_json(orient="records"))
        answer = client.post("/v1/predict", json={"instances": rows})
    assert answer.status_code == 200 and answer.json()["predictions"] == predicted[:8].tolist()


def test_what_a_streamed_fairness_audit_refuses(table, tmp_path, cli):
    _, path = table
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"data: {{source: {path}, target: label, streaming: true}}\n"
                      "model: {type: mlp}\ntracking: false\n")
    out = tmp_path / "r"
    assert_user_error(cli("train", recipe, "--out", out, "--set", "audit.sensitive=[grup]"),
                      "audit.sensitive", "grup", "group")
    assert_user_error(cli("train", recipe, "--out", out, "--set", "audit.sensitive=[group]",
                          "--set", "audit.mitigate=reweigh"), "audit.mitigate", "threshold")
    assert_user_error(cli("train", recipe, "--out", out, "--set", "audit.sensitive=[group]",
                          "--set", "audit.mitigate=threshold", "--set", "data.split.validation=0"),
                      "audit.mitigate", "validation")
    assert not out.exists()

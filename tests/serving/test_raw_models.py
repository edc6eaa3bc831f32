"""Serving models that take the values as sent, with no imputation: a char_lm (texts), a vae (pixels) and a
tabular agent (state ids). What they cannot score is a 422 naming the field, never a 500 from the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

import honing
from honing.recipe import ServeConfig
from honing.serving.app import create_app

TINY_LM = {"block_size": 16, "d_model": 16, "heads": 2, "layers": 1, "dropout": 0.0}


def trained(folder, recipe: dict) -> honing.Bundle:
    return honing.load(honing.train({"tracking": False, "seed": 0, **recipe}, out=folder / "run").bundle_dir)


@pytest.fixture(scope="module")
def char_lm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("char_lm")
    pd.DataFrame({"text": ["a red cat sees the old dog.", "the old dog likes a red cat."] * 40}).to_csv(
        folder / "text.csv", index=False)
    return trained(folder, {"name": "lm", "data": {"source": str(folder / "text.csv"), "task": "generation",
                                                   "target": "text"},
                            "model": {"type": "char_lm", "params": TINY_LM},
                            "train": {"epochs": 1, "batch_size": 32, "device": "cpu"}})


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("vae"), {
        "name": "vae", "data": {"source": "builtin:digits", "task": "generation"},
        "model": {"type": "vae", "params": {"latent": 2, "hidden": 16}},
        "train": {"epochs": 1, "batch_size": 256, "device": "cpu"}})


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    pytest.importorskip("gymnasium")
    return trained(tmp_path_factory.mktemp("lake"), {
        "name": "lake", "data": {"task": "reinforcement", "env": "FrozenLake-v1", "env_params": {"is_slippery": False}},
        "model": {"type": "q_learning", "params": {"episodes": 50}}, "evaluate": {"episodes": 2}})


def errors(answer) -> list[tuple[list, str]]:
    assert answer.status_code == 422, answer.text
    return [(e["loc"], e["msg"]) for e in answer.json()["detail"]]


def test_a_char_lm_scores_texts_of_two_characters_and_refuses_shorter_ones(char_lm):
    texts = ["ab", "a", "", None, "a red cat"]
    with TestClient(create_app(char_lm, ServeConfig())) as c:
        bad = c.post("/v1/predict", json={"instances": [{"text": t} for t in texts]})
        good = c.post("/v1/predict", json={"instances": [{"text": "ab"}, {"text": "a red cat"}]})
        schema = c.get("/openapi.json").json()["components"]["schemas"]
    found = errors(bad)
    assert [loc for loc, _ in found] == [["body", "instances", i, "text"] for i in (1, 2, 3)]
    assert "at least 2 characters (this one has 1)" in found[0][1]
    assert "at least 2 characters (this one has 0)" in found[1][1]
    assert found[2][1] == "null: this model imputes no missing value; send a string"
    assert good.status_code == 200
    assert good.json()["predictions"] == pytest.approx(char_lm.model.predict(["ab", "a red cat"]).tolist())
    assert schema["Instance"]["properties"]["text"]["minLength"] == 2


def test_a_tabular_agent_takes_only_its_state_ids(lake):
    with TestClient(create_app(lake, ServeConfig())) as c:
        bad = c.post("/v1/predict", json={"instances": [{"obs": v} for v in (99, -1, 1.5, None, 16)]})
        good = c.post("/v1/predict", json={"instances": [{"obs": 0}, {"obs": 15}, {"obs": 3.0}]})
        schema = c.get("/openapi.json").json()["components"]["schemas"]
    found = errors(bad)
    assert [loc for loc, _ in found] == [["body", "instances", i, "obs"] for i in range(5)]
    assert found[0][1] == "99 is not a state id of this agent: send an integer in 0..15"
    assert found[2][1] == "1.5 is not a state id of this agent: send an integer in 0..15"
    assert found[3][1] == "null: this model imputes no missing value; send a JSON number"
    assert good.status_code == 200
    assert good.json()["predictions"] == lake.model.predict(np.array([[0], [15], [3]])).tolist()
    obs = schema["Instance"]["properties"]["obs"]
    assert (obs["type"], obs["minimum"], obs["maximum"]) == ("integer", 0, 15)


@pytest.mark.parametrize("missing", ["accept", "reject"])
def test_a_null_pixel_names_the_field_whatever_serve_missing_says(vae, missing):
    row = {c["name"]: 0.0 for c in vae.features["columns"]}  # 8 × 8 pixels
    with TestClient(create_app(vae, ServeConfig(missing=missing))) as c:
        bad = c.post("/v1/predict", json={"instances": [row, {**row, "pixel_3_4": None}]})
        good = c.post("/v1/predict", json={"instances": [row]})
    assert errors(bad) == [(["body", "instances", 1, "pixel_3_4"],
                            "null: this model imputes no missing value; send a JSON number")]
    assert good.status_code == 200 and np.isfinite(good.json()["predictions"][0])

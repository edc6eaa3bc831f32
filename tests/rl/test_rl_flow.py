"""Reinforcement-learning runs end to end: recipe → honing train → run directory + bundle → honing predict /
honing evaluate, the SB3 bundle loaded without pickle, and one-line errors."""

from __future__ import annotations

import json
import pickle
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

gym = pytest.importorskip("gymnasium")

from conftest import assert_user_error

LAKE = {"name": "lake", "seed": 0, "tracking": False,
        "data": {"task": "reinforcement", "env": "FrozenLake-v1", "env_params": {"is_slippery": False}},
        "model": {"type": "q_learning", "params": {"episodes": 400, "alpha": 0.5, "gamma": 0.9}},
        "evaluate": {"episodes": 20}}
POLE = {"name": "pole", "seed": 0, "tracking": False, "data": {"task": "reinforcement", "env": "CartPole-v1"},
        "model": {"type": "ppo", "params": {"total_timesteps": 256, "n_steps": 64, "batch_size": 64, "n_epochs": 1,
                                            "net_arch": [16]}},
        "evaluate": {"episodes": 3}}


def write(tmp_path, recipe: dict, name: str = "recipe.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_q_learning_run_predicts_and_evaluates_through_the_cli(cli, tmp_path):
    run = tmp_path / "run"
    result = cli("train", write(tmp_path, LAKE), "--out", run)
    assert result.code == 0, result.err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["success_rate"] == 1.0 and metrics["mean_length"] == 6 and metrics["episodes"] == 20
    history = pd.read_csv(run / "history.csv")
    assert list(history["episode"])[-1] == 400 and (run / "plots" / "learning_curve.png").is_file()
    assert (run / "report.html").is_file()
    # the greedy actions of the bundle are the argmax of the Q-table it was trained with
    from safetensors.numpy import load_file

    q_table = load_file(str(run / "bundle" / "model.safetensors"))["q_table"]
    pd.DataFrame({"obs": range(16)}).to_csv(tmp_path / "obs.csv", index=False)
    result = cli("predict", run / "bundle", tmp_path / "obs.csv", "-o", tmp_path / "actions.csv")
    assert result.code == 0, result.err
    actions = pd.read_csv(tmp_path / "actions.csv")["prediction"]
    np.testing.assert_array_equal(actions, q_table.argmax(axis=1))
    pd.DataFrame({"obs": [0, -1]}).to_csv(tmp_path / "bad.csv", index=False)
    result = cli("predict", run / "bundle", tmp_path / "bad.csv", "-o", tmp_path / "bad_actions.csv")
    assert_user_error(result, "row 2: observation -1 is not a state id", "0..15")  # not np.float64(-1.0)
    result = cli("evaluate", run / "bundle", "--episodes", "7", "--out", tmp_path / "eval.json")
    assert result.code == 0, result.err
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["episodes"] == 7 and evaluated["success_rate"] == 1.0


def test_evaluation_is_seeded_and_repeats_the_runs_numbers(tmp_path):
    from honing import api

    slippery = {**LAKE, "data": {**LAKE["data"], "env_params": {"is_slippery": True}}}
    result = api.train(slippery, out=tmp_path / "run")
    first = api.evaluate(result.bundle_dir)
    assert first == api.evaluate(result.bundle_dir)
    for key in ("mean_reward", "std_reward", "success_rate", "episodes"):
        assert first[key] == result.metrics[key]


def test_ppo_bundle_loads_without_pickle_and_acts_like_the_trained_policy(tmp_path, monkeypatch):
    import stable_baselines3

    from honing import api
    from honing.recipe import load_recipe
    from honing.rl_flow import fit_agent

    _, agent = fit_agent(load_recipe(POLE))
    result = api.train(POLE, out=tmp_path / "run")
    files = sorted(p.name for p in result.bundle_dir.iterdir())
    assert files == ["manifest.json", "model.safetensors", "preprocess.skops"]

    def refuse(*args, **kwargs):
        raise AssertionError("a bundle must not unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(stable_baselines3.PPO, "load", refuse)
    bundle = api.load(result.bundle_dir)
    rng = np.random.default_rng(0)
    obs = rng.normal(0, [1.0, 1.0, 0.1, 1.0], size=(64, 4)).astype(np.float32)
    frame = pd.DataFrame(obs, columns=[f"obs_{i}" for i in range(4)])
    expected = agent.policy.predict(obs, deterministic=True)[0]  # the same seed trains the same policy
    np.testing.assert_array_equal(bundle.predict(frame), expected)
    np.testing.assert_array_equal(agent.predict(obs), expected)
    assert len(set(expected.tolist())) == 2  # both actions occur: the comparison is not trivial
    assert api.evaluate(bundle)["episodes"] == 3


def test_unknown_env_names_data_env(cli, tmp_path):
    recipe = {**LAKE, "data": {"task": "reinforcement", "env": "FrozenLak-v1"}}
    assert_user_error(cli("train", write(tmp_path, recipe), "--out", tmp_path / "run"), "data.env", "FrozenLake-v1")


def test_missing_env_and_bad_model_are_one_line_errors(cli, tmp_path):
    recipe = {**LAKE, "data": {"task": "reinforcement"}}
    assert_user_error(cli("train", write(tmp_path, recipe), "--out", tmp_path / "run"), "env is required")
    recipe = {**LAKE, "model": {"type": "random_forest"}}
    assert_user_error(cli("train", write(tmp_path, recipe), "--out", tmp_path / "run"), "model.type", "q_learning")
    recipe = {**LAKE, "data": {"task": "reinforcement", "env": "CartPole-v1"}}  # Box observations
    assert_user_error(cli("train", write(tmp_path, recipe), "--out", tmp_path / "run"), "model.type", "ppo")
    recipe = {**POLE, "model": {"type": "ppo", "params": {"total_timestep": 10}}}
    assert_user_error(cli("train", write(tmp_path, recipe), "--out", tmp_path / "run"),
                      "model.params.total_timestep", "total_timesteps")


def test_without_the_extra_the_error_names_it(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)  # import gymnasium raises ImportError
    assert_user_error(cli("train", write(tmp_path, LAKE), "--out", tmp_path / "run"), "pip install honing[rl]")
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)
    from honing.errors import HoningError
    from honing.models.deep_rl import algorithm

    with pytest.raises(HoningError, match=r"honing\[rl\]"):
        algorithm("ppo")


@pytest.mark.parametrize("kind, params", [
    ("dqn", {"total_timesteps": 200, "learning_starts": 50, "buffer_size": 500, "net_arch": [8]}),
    ("a2c", {"total_timesteps": 100, "n_steps": 10, "net_arch": [8], "activation": "relu"}),
])
def test_dqn_and_a2c_bundles_round_trip(tmp_path, kind, params):
    from honing import api
    from honing.recipe import load_recipe
    from honing.rl_flow import fit_agent

    recipe = {**POLE, "model": {"type": kind, "params": params}}
    _, agent = fit_agent(load_recipe(recipe))
    bundle = api.load(api.train(recipe, out=tmp_path / "run").bundle_dir)
    obs = np.random.default_rng(1).normal(0, 1, size=(32, 4)).astype(np.float32)
    frame = pd.DataFrame(obs, columns=bundle.model.obs_columns)
    np.testing.assert_array_equal(bundle.predict(frame), agent.predict(obs))
    assert bundle.manifest["torch"]["algorithm"] == kind


def test_served_agent_answers_actions(tmp_path):
    from fastapi.testclient import TestClient

    from honing import api
    from honing.recipe import ServeConfig
    from honing.serving.app import create_app

    bundle = api.load(api.train(LAKE, out=tmp_path / "run").bundle_dir)
    client = TestClient(create_app(bundle, ServeConfig()))
    body = client.post("/v1/predict", json={"instances": [{"obs": s} for s in range(16)]}).json()
    assert body["predictions"] == bundle.model.predict(np.arange(16).reshape(-1, 1)).tolist()
    assert all(isinstance(a, int) for a in body["predictions"])


PENDULUM = {"name": "pendulum", "seed": 0, "tracking": False, "data": {"task": "reinforcement", "env": "Pendulum-v1"},
            "evaluate": {"episodes": 2}}


@pytest.mark.parametrize("kind, params", [
    ("sac", {"total_timesteps": 150, "learning_starts": 50, "buffer_size": 500, "net_arch": [16]}),
    ("td3", {"total_timesteps": 150, "learning_starts": 50, "buffer_size": 500, "net_arch": [16]}),
    ("ppo", {"total_timesteps": 128, "n_steps": 64, "batch_size": 64, "n_epochs": 1, "net_arch": [16]}),
])
def test_continuous_actions_round_trip_through_bundle_predict_and_serve(cli, tmp_path, kind, params):
    """A Box action space: the bundle's actions are the trained policy's (vectors within the bounds),
    written as action_0 by honing predict and answered as lists by the server."""
    from fastapi.testclient import TestClient

    from honing import api
    from honing.recipe import ServeConfig, load_recipe
    from honing.rl_flow import fit_agent
    from honing.serving.app import create_app

    recipe = {**PENDULUM, "model": {"type": kind, "params": params}}
    _, agent = fit_agent(load_recipe(recipe))
    run = tmp_path / "run"
    assert cli("train", write(tmp_path, recipe), "--out", run).code == 0
    bundle = api.load(run / "bundle")
    obs = np.random.default_rng(2).normal(0, 1, size=(16, 3)).astype(np.float32)
    frame = pd.DataFrame(obs, columns=bundle.model.obs_columns)
    actions = bundle.predict(frame)
    expected = agent.policy.predict(obs, deterministic=True)[0]  # the same seed trains the same policy
    assert actions.shape == (16, 1) and np.abs(actions).max() <= 2.0  # Pendulum's torque bounds
    np.testing.assert_allclose(actions, expected, rtol=1e-6, atol=1e-6)
    assert len(np.unique(np.round(actions, 6))) > 1  # not one constant action

    frame.to_csv(tmp_path / "obs.csv", index=False)
    assert cli("predict", run / "bundle", tmp_path / "obs.csv", "-o", tmp_path / "actions.csv").code == 0
    written = pd.read_csv(tmp_path / "actions.csv")
    assert list(written.columns) == ["action_0"]
    np.testing.assert_allclose(written["action_0"], actions[:, 0], rtol=1e-6)
    with TestClient(create_app(bundle, ServeConfig())) as client:
        body = client.post("/v1/predict", json={"instances": frame.head(3).to_dict(orient="records")}).json()
    np.testing.assert_allclose(body["predictions"], actions[:3], rtol=1e-5)
    evaluated = api.evaluate(bundle)
    assert evaluated["episodes"] == 2 and evaluated["mean_length"] == 200


def test_action_spaces_an_algorithm_cannot_take_are_one_line_errors(cli, tmp_path):
    recipe = {**PENDULUM, "model": {"type": "dqn", "params": {"total_timesteps": 10}}}
    assert_user_error(cli("train", write(tmp_path, recipe), "--out", tmp_path / "run"), "model.type: dqn",
                      "discrete", "sac")
    recipe = {**POLE, "model": {"type": "sac", "params": {"total_timesteps": 10}}}
    assert_user_error(cli("train", write(tmp_path, recipe), "--out", tmp_path / "run"), "model.type: sac",
                      "continuous", "dqn")

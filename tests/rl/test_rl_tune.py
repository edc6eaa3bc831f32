"""honing tune on a reinforcement recipe: trials scored on seeded validation episodes, intermediate
training reward reported to the pruner, the best recipe trained into best/."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
import yaml

pytest.importorskip("gymnasium")

RECIPE = {"name": "lake-tune", "seed": 0, "tracking": False,
          "data": {"task": "reinforcement", "env": "FrozenLake-v1", "env_params": {"is_slippery": False}},
          "model": {"type": "q_learning", "params": {"episodes": 300, "eval_every": 30}},
          "evaluate": {"episodes": 5},
          "tune": {"trials": 4, "pruner": "median", "refit": False,
                   "space": {"model.params.alpha": {"float": [0.05, 0.5]}}}}


def test_tune_scores_trials_on_validation_episodes_and_trains_the_best(tmp_path):
    from honing import api
    from honing.evaluation.episodes import evaluate_policy
    from honing.recipe import load_recipe
    from honing.rl_flow import TUNE_SEED_OFFSET, fit_agent

    result = api.tune(RECIPE, out=tmp_path / "tune")
    board = pd.read_csv(tmp_path / "tune" / "leaderboard.csv")
    assert len(board) == 4 and set(board["state"]) <= {"complete", "pruned"}
    best = load_recipe(yaml.safe_load((tmp_path / "tune" / "best.yaml").read_text()))
    # the oracle: the best recipe trained again and played on the validation seeds gives the trial's score
    _, agent = fit_agent(best)
    replay = evaluate_policy("FrozenLake-v1", {"is_slippery": False}, agent.act, 5, best.seed + TUNE_SEED_OFFSET)
    assert replay["mean_reward"] == pytest.approx(result.best_score)
    assert json.loads((tmp_path / "tune" / "best" / "metrics.json").read_text())["task"] == "reinforcement"
    assert (tmp_path / "tune" / "best" / "bundle" / "model.safetensors").is_file()


def test_trials_report_their_training_reward_each_window():
    from honing.recipe import load_recipe
    from honing.rl_flow import tune_steps, tune_trial

    recipe = load_recipe(RECIPE)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    (score,), attrs = tune_trial(recipe, trial)
    reported = study.trials[0].intermediate_values
    assert sorted(reported) == list(range(1, 11)) == list(range(1, tune_steps(recipe) + 1))
    assert attrs["epochs"] == 10 and 0.0 <= score <= 1.0


def test_a_bad_space_names_tune_space(tmp_path):
    from honing import api
    from honing.errors import RecipeError

    bad = {**RECIPE, "tune": {**RECIPE["tune"], "space": {"model.params.alpah": {"float": [0.1, 0.2]}}}}
    with pytest.raises(RecipeError, match="alpah"):
        api.tune(bad, out=tmp_path / "tune")


def test_cross_validation_is_refused_for_agents(tmp_path):
    from honing import api
    from honing.errors import RecipeError

    with pytest.raises(RecipeError, match="tune.cv"):
        api.tune({**RECIPE, "tune": {**RECIPE["tune"], "cv": 3}}, out=tmp_path / "tune")

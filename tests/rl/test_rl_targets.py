"""The targets of docs/reinforcement.md with the shipped recipes (examples/rl/): about half a minute of CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("stable_baselines3")

EXAMPLES = Path(__file__).parents[2] / "examples" / "rl"


@pytest.mark.slow
@pytest.mark.parametrize("recipe, metric, bound", [("frozenlake.yaml", "success_rate", 0.70),
                                                   ("cartpole.yaml", "mean_reward", 475.0)])
def test_example_recipes_meet_their_targets(tmp_path, recipe, metric, bound):
    from honing import api

    result = api.train(EXAMPLES / recipe, out=tmp_path / "run")
    assert result.metrics[metric] >= bound
    assert result.metrics["episodes"] == (1000 if recipe == "frozenlake.yaml" else 100)

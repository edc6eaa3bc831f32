"""Tabular agents (Q-learning, SARSA) against independent oracles: the shortest path on the deterministic
FrozenLake 4×4 map (breadth-first search on the map's letters) and its discounted values."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from honing.evaluation.episodes import evaluate_policy, run_episodes, summarize
from honing.models.tabular_rl import TabularAgent, check_params, import_agent, train_tabular

MOVES = {0: (0, -1), 1: (1, 0), 2: (0, 1), 3: (-1, 0)}  # FrozenLake: left, down, right, up


def shortest_steps(desc: list[str]) -> dict[int, int]:
    """Steps from every safe cell to the goal (BFS backwards from G over F/S cells)."""
    n = len(desc)
    goal = next(r * n + c for r in range(n) for c in range(n) if desc[r][c] == "G")
    dist, todo = {goal: 0}, deque([goal])
    while todo:
        cell = todo.popleft()
        r, c = divmod(cell, n)
        for dr, dc in MOVES.values():
            pr, pc = r - dr, c - dc
            if 0 <= pr < n and 0 <= pc < n and desc[pr][pc] in "SF" and pr * n + pc not in dist:
                dist[pr * n + pc] = dist[cell] + 1
                todo.append(pr * n + pc)
    return dist


def greedy_steps(agent: TabularAgent, desc: list[str], start: int, limit: int = 50) -> int | None:
    """Steps the greedy policy takes from ``start`` to the goal on the deterministic map (None: never)."""
    n, cell = len(desc), start
    for step in range(1, limit + 1):
        r, c = divmod(cell, n)
        dr, dc = MOVES[agent.act(cell)]
        r, c = min(max(r + dr, 0), n - 1), min(max(c + dc, 0), n - 1)
        cell = r * n + c
        if desc[r][c] == "H":
            return None
        if desc[r][c] == "G":
            return step
    return None


@pytest.fixture
def lake():
    env = gym.make("FrozenLake-v1", is_slippery=False, map_name="4x4")
    yield env
    env.close()


@pytest.mark.parametrize("kind", ["q_learning", "sarsa"])
def test_learns_the_shortest_path_from_every_cell(lake, kind):
    params = check_params(kind, {"episodes": 1500, "alpha": 0.5, "alpha_end": 0.01, "gamma": 0.9,
                                 "epsilon_end": 0.01})
    agent = train_tabular(lake, kind, params, seed=0)
    desc = ["".join(ch.decode() for ch in row) for row in lake.unwrapped.desc]
    dist = shortest_steps(desc)
    # Q-learning (off-policy) learns the shortest path from every cell; SARSA (on-policy, ε-greedy)
    # from the cells its own policy visits, the start among them
    cells = [c for c, steps in dist.items() if steps] if kind == "q_learning" else [0]
    for cell in cells:
        assert greedy_steps(agent, desc, cell) == dist[cell], (kind, cell)
    played = summarize(run_episodes(lake, agent.act, 5, seed=1), "FrozenLake-v1")
    assert played["success_rate"] == 1.0 and played["mean_length"] == dist[0] == 6


def test_q_learning_values_match_the_discounted_oracle(lake):
    gamma = 0.9
    agent = train_tabular(lake, "q_learning", check_params("q_learning", {"episodes": 2000, "alpha": 0.5,
                                                                          "gamma": gamma}), seed=3)
    desc = ["".join(ch.decode() for ch in row) for row in lake.unwrapped.desc]
    for cell, steps in shortest_steps(desc).items():
        if steps:  # the best action's value: reward 1 after `steps` moves, discounted steps - 1 times
            assert agent.q_table[cell].max() == pytest.approx(gamma ** (steps - 1), abs=1e-3), cell


def test_training_and_evaluation_are_seeded(lake):
    params = check_params("q_learning", {"episodes": 300})
    a, b = train_tabular(lake, "q_learning", params, 7), train_tabular(lake, "q_learning", params, 7)
    np.testing.assert_array_equal(a.q_table, b.q_table)
    assert a.history_ == b.history_ and a.history_[-1]["episode"] == 300
    slippery = {"is_slippery": True}
    first = evaluate_policy("FrozenLake-v1", slippery, a.act, 50, seed=11)
    assert first == evaluate_policy("FrozenLake-v1", slippery, a.act, 50, seed=11)


def test_export_and_import_give_the_same_actions(lake):
    agent = train_tabular(lake, "sarsa", check_params("sarsa", {"episodes": 200}), 1)
    tensors, meta = agent.export_state()
    again = import_agent(tensors, meta)
    states = np.arange(16).reshape(-1, 1)
    np.testing.assert_array_equal(again.predict(states), agent.predict(states))
    np.testing.assert_array_equal(agent.predict(states), np.argmax(agent.q_table, axis=1))


def test_parameter_errors_name_the_key():
    from honing.errors import RecipeError

    with pytest.raises(RecipeError, match="model.params.alpah"):
        check_params("q_learning", {"alpah": 0.1})
    with pytest.raises(RecipeError, match="model.params.gamma"):
        check_params("sarsa", {"gamma": 1.5})
    with pytest.raises(Exception, match="state id"):
        TabularAgent(np.zeros((16, 4))).predict(np.array([[16.0]]))

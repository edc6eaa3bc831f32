"""Tabular reinforcement learning written in honing (numpy): Q-learning and SARSA on environments with
Discrete observation and action spaces (FrozenLake, Taxi, CliffWalking, …).

:func:`train_tabular` fills a Q-table over ``episodes`` episodes with an ε-greedy behaviour policy
(ε decays linearly from ``epsilon_start`` to ``epsilon_end`` over the first ``epsilon_decay`` fraction
of the episodes; the step size α may decay the same way to ``alpha_end``).  The result is a
:class:`TabularAgent`, whose greedy action is the argmax of its Q-table row (ties: the lowest action).

Agents are bundled as weights only: :meth:`TabularAgent.export_state` gives the Q-table as a tensor
and a JSON description; :func:`import_agent` (used by the bundle loader for ``task: reinforcement``)
rebuilds any agent, tabular or stable-baselines3 (:mod:`honing.models.deep_rl`), without pickle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from honing.errors import ModelError, RecipeError

#: The tabular model types and the defaults of their ``model.params``.
TABULAR = ("q_learning", "sarsa")
DEFAULTS: dict[str, Any] = {"episodes": 5000, "alpha": 0.1, "alpha_end": None, "gamma": 0.99,
                            "epsilon_start": 1.0, "epsilon_end": 0.05, "epsilon_decay": 0.5,
                            "eval_every": None}


def check_params(model_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` merged over the defaults, every unknown key or bad value a one-line error."""
    from honing.errors import did_you_mean

    unknown = [k for k in params if k not in DEFAULTS]
    if unknown:
        raise RecipeError(f"model.params.{unknown[0]}: not a parameter of {model_type}",
                          did_you_mean(unknown[0], list(DEFAULTS)) or f"use {', '.join(DEFAULTS)}")
    p = {**DEFAULTS, **params}
    checks = {"episodes": p["episodes"] >= 1 and float(p["episodes"]).is_integer(), "alpha": 0 < p["alpha"] <= 1,
              "gamma": 0 <= p["gamma"] <= 1, "epsilon_start": 0 <= p["epsilon_start"] <= 1,
              "epsilon_end": 0 <= p["epsilon_end"] <= 1, "epsilon_decay": 0 < p["epsilon_decay"] <= 1,
              "alpha_end": p["alpha_end"] is None or 0 < p["alpha_end"] <= 1,
              "eval_every": p["eval_every"] is None or p["eval_every"] >= 1}
    for key, ok in checks.items():
        if not ok:
            raise RecipeError(f"model.params.{key}: {p[key]!r} is out of range for {model_type}",
                              "episodes ≥ 1; alpha in (0, 1]; gamma, epsilon_* in [0, 1]; epsilon_decay in (0, 1]")
    p["episodes"] = int(p["episodes"])
    return p


def discrete_sizes(env: Any, env_id: str) -> tuple[int, int]:
    """(observations, actions) of an environment with Discrete spaces, else a one-line error."""
    from gymnasium import spaces

    obs, act = env.observation_space, env.action_space
    if not isinstance(obs, spaces.Discrete) or not isinstance(act, spaces.Discrete):
        raise RecipeError(f"model.type: tabular agents need Discrete observations and actions, and {env_id} has "
                          f"{type(obs).__name__} observations and {type(act).__name__} actions",
                          "use model.type: dqn, ppo or a2c for this environment")
    return int(obs.n), int(act.n)


class TabularAgent:
    """A greedy policy over a Q-table (observations × actions)."""

    def __init__(self, q_table: np.ndarray, model_type: str = "q_learning", env: dict | None = None):
        self.q_table = np.asarray(q_table, dtype=np.float64)
        self.model_type = model_type
        self.env = env or {}
        self.history_: list[dict] | None = None

    @property
    def obs_columns(self) -> list[str]:
        return ["obs"]

    def act(self, obs: Any) -> int:
        """The greedy action in one observation."""
        return int(np.argmax(self.q_table[int(obs)]))

    def predict(self, X: Any) -> np.ndarray:
        """Greedy actions for observations, one per row of ``X`` (a column of state ids)."""
        X = np.asarray(X, dtype=float).reshape(len(X), -1)
        states = X[:, 0]
        bad = ~np.isfinite(states) | (states != np.round(states)) | (states < 0) | (states >= len(self.q_table))
        if bad.any():
            row, value = int(np.flatnonzero(bad)[0]), float(states[bad][0])
            shown = "missing" if np.isnan(value) else f"{value:g}"
            raise ModelError(f"row {row + 1}: observation {shown} is not a state id of this agent",
                             f"obs must be an integer in 0..{len(self.q_table) - 1}")
        return np.argmax(self.q_table[states.astype(int)], axis=1).astype(np.int64)

    def export_state(self) -> tuple[dict, dict]:
        import torch

        meta = {"estimator": "rl_agent", "kind": "tabular", "algorithm": self.model_type, "env": self.env,
                "obs_columns": self.obs_columns, "n_states": int(self.q_table.shape[0]),
                "n_actions": int(self.q_table.shape[1])}
        return {"q_table": torch.from_numpy(self.q_table.copy())}, meta


def import_agent(tensors: dict, meta: dict) -> Any:
    """A bundled agent rebuilt from its weights and description (no pickle)."""
    if meta.get("kind") == "tabular":
        q_table = tensors["q_table"].numpy()
        if q_table.shape != (meta["n_states"], meta["n_actions"]):
            raise ValueError(f"the Q-table is {tuple(q_table.shape)}, the description says "
                             f"({meta['n_states']}, {meta['n_actions']})")
        return TabularAgent(q_table, meta["algorithm"], meta.get("env"))
    if meta.get("kind") == "sb3":
        from honing.models.deep_rl import import_policy

        return import_policy(tensors, meta)
    raise ValueError(f"unknown agent kind {meta.get('kind')!r}")


def _schedule(start: float, end: float, fraction: float, episodes: int) -> np.ndarray:
    """Linear decay from ``start`` to ``end`` over the first ``fraction`` of the episodes, then flat."""
    ramp = max(1, round(fraction * episodes))
    return np.concatenate([np.linspace(start, end, ramp), np.full(max(0, episodes - ramp), end)])[:episodes]


def train_tabular(env: Any, model_type: str, params: dict, seed: int,
                  report: Callable[[int, float], bool] | None = None) -> TabularAgent:
    """Q-learning (off-policy target max_a' Q(s', a')) or SARSA (on-policy target Q(s', a')) on ``env``.

    ``report(episode, mean reward of the window)`` is called every ``eval_every`` episodes (default:
    episodes / 20); a True return stops training (a pruned tuning trial).  The agent's ``history_`` holds one row per
    reporting window: mean training reward and ε.
    """
    n_states, n_actions = env.observation_space.n, env.action_space.n
    rng = np.random.default_rng(seed)
    q = np.zeros((n_states, n_actions))
    episodes = params["episodes"]
    eps = _schedule(params["epsilon_start"], params["epsilon_end"], params["epsilon_decay"], episodes)
    alpha_end = params["alpha_end"] if params["alpha_end"] is not None else params["alpha"]
    alphas = _schedule(params["alpha"], alpha_end, 1.0, episodes)
    gamma, sarsa = params["gamma"], model_type == "sarsa"
    window = int(params["eval_every"] or max(1, episodes // 20))
    agent = TabularAgent(q, model_type)
    rewards, history = np.zeros(episodes), []

    def choose(state: int, epsilon: float) -> int:
        if rng.random() < epsilon:
            return int(rng.integers(n_actions))
        row = q[state]
        return int(rng.choice(np.flatnonzero(row == row.max())))  # random among ties while learning

    for e in range(episodes):
        state, _ = env.reset(seed=seed + e)
        action, done, total = choose(state, eps[e]), False, 0.0
        while not done:
            nxt, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            nxt_action = choose(nxt, eps[e])
            future = 0.0 if terminated else (q[nxt, nxt_action] if sarsa else q[nxt].max())
            q[state, action] += alphas[e] * (reward + gamma * future - q[state, action])
            state, action, done = nxt, nxt_action, terminated or truncated
        rewards[e] = total
        if (e + 1) % window == 0 or e + 1 == episodes:
            history.append({"episode": e + 1, "reward": float(rewards[max(0, e + 1 - window):e + 1].mean()),
                            "epsilon": float(eps[e]), "alpha": float(alphas[e])})
            if report is not None and report(e + 1, history[-1]["reward"]):
                break
    agent.q_table = q
    agent.history_ = history
    return agent

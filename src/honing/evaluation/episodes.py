"""Environments and seeded episodes for reinforcement learning (``data.task: reinforcement``).

:func:`make_env` builds the recipe's gymnasium environment (extra ``rl``) with one-line errors for an
unknown id, bad parameters or a missing extra; :func:`run_episodes` plays N episodes with a policy,
episode *i* reset with seed ``seed + i`` (so the same policy gives the same numbers twice), and
:func:`summarize` turns them into the metrics a run reports: mean and std of episode reward, mean
length, and the success rate where the environment has one (an episode that ends by termination
with a positive final reward, e.g. FrozenLake's goal).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from honing.errors import HoningError, RecipeError

#: Environments whose episodes succeed or fail (the goal gives a positive reward on termination).
SUCCESS_ENVS = ("FrozenLake", "CliffWalking", "Taxi")
_EXTRA_HINT = "install the reinforcement-learning extra: pip install honing[rl]"


def require_gymnasium() -> Any:
    """The gymnasium module, or a one-line error naming the extra."""
    try:
        import gymnasium
    except ImportError:
        raise HoningError("data.task: reinforcement needs gymnasium, which is not installed", _EXTRA_HINT) from None
    return gymnasium


def make_env(env_id: str, params: dict[str, Any] | None = None) -> Any:
    """``gymnasium.make(env_id, **params)``, errors naming data.env / data.env_params."""
    gym = require_gymnasium()
    known = sorted(gym.envs.registry)
    if env_id not in gym.envs.registry:
        from honing.errors import did_you_mean

        raise RecipeError(f"data.env: unknown gymnasium environment '{env_id}'",
                          did_you_mean(env_id, known) or "e.g. FrozenLake-v1, CartPole-v1")
    try:
        return gym.make(env_id, **(params or {}))
    except TypeError as exc:
        raise RecipeError(f"data.env_params: {env_id} does not accept these parameters ({exc})",
                          "use the keyword arguments of the environment's constructor") from None
    except (ValueError, AssertionError, KeyError) as exc:
        raise RecipeError(f"data.env_params: {env_id} refused them ({type(exc).__name__}: {exc})",
                          "check the values against the environment's documentation") from None
    except gym.error.DependencyNotInstalled as exc:
        raise RecipeError(f"data.env: {env_id} needs a package that is not installed ({exc})",
                          "install it, or choose another environment") from None


def has_success(env_id: str) -> bool:
    """True for environments whose episodes reach a goal (success rate is reported)."""
    return env_id.split("-")[0] in SUCCESS_ENVS


def run_episodes(env: Any, act: Callable[[Any], int], episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Play ``episodes`` episodes with ``act(observation) -> action``; episode i is reset with seed
    ``seed + i``.  Returns per-episode ``reward`` (sum), ``length`` and ``success`` (terminated with a
    positive last reward)."""
    rewards, lengths, successes = np.zeros(episodes), np.zeros(episodes, dtype=int), np.zeros(episodes, dtype=bool)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        env.action_space.seed(seed + i)
        total, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            steps += 1
            done = terminated or truncated
        rewards[i], lengths[i] = total, steps
        successes[i] = bool(terminated) and float(reward) > 0
    return {"reward": rewards, "length": lengths, "success": successes}


def summarize(played: dict[str, np.ndarray], env_id: str) -> dict[str, Any]:
    """The evaluation metrics of :func:`run_episodes`' episodes."""
    rewards = played["reward"]
    out: dict[str, Any] = {"episodes": len(rewards), "mean_reward": float(rewards.mean()),
                           "std_reward": float(rewards.std()), "min_reward": float(rewards.min()),
                           "max_reward": float(rewards.max()), "mean_length": float(played["length"].mean())}
    if has_success(env_id):
        out["success_rate"] = float(played["success"].mean())
    return out


def evaluate_policy(env_id: str, params: dict[str, Any], act: Callable[[Any], int], episodes: int,
                    seed: int) -> dict[str, Any]:
    """Mean / std reward (and success rate) of ``act`` over ``episodes`` seeded episodes."""
    if episodes < 1:
        raise HoningError(f"--episodes {episodes}: must be at least 1", "e.g. --episodes 100")
    env = make_env(env_id, params)
    try:
        return summarize(run_episodes(env, act, episodes, seed), env_id)
    finally:
        env.close()

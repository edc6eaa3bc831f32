"""Deep reinforcement learning through stable-baselines3 (extra ``rl``): DQN, PPO, A2C, SAC and TD3 with
SB3's MLP policies, on environments with vector (Box) or Discrete observations.  Actions: Discrete for
DQN, continuous (a vector Box) for SAC and TD3, either for PPO and A2C.  A discrete agent acts with an
action id; a continuous one with a vector of floats within the action space's bounds.

``model.params`` are honing's own (``total_timesteps``, ``n_envs``, ``lr_schedule``, ``net_arch``,
``activation``, ``eval_every``) plus any keyword of the algorithm's constructor (``learning_rate``,
``n_steps``, ``batch_size``, ``gamma``, …), checked against its signature.

Bundling never pickles: :meth:`PolicyAgent.export_state` gives the policy network's ``state_dict`` and
a JSON description (algorithm, policy kwargs, observation and action spaces, environment);
:func:`import_policy` rebuilds the policy from SB3's classes and loads the weights (SB3's zip files,
which hold pickled objects, are never read).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from honing.errors import HoningError, ModelError, RecipeError

DEEP = ("dqn", "ppo", "a2c", "sac", "td3")
#: The action spaces each algorithm takes.
ACTIONS = {"dqn": ("Discrete",), "ppo": ("Discrete", "Box"), "a2c": ("Discrete", "Box"), "sac": ("Box",),
           "td3": ("Box",)}
OWN = {"total_timesteps": 50_000, "n_envs": 1, "lr_schedule": "constant", "net_arch": None, "activation": None,
       "eval_every": None}
ACTIVATIONS = ("tanh", "relu", "elu", "leaky_relu")
_FIXED = {"self", "policy", "env", "policy_kwargs", "verbose", "seed", "device", "tensorboard_log",
          "_init_setup_model", "rollout_buffer_class", "replay_buffer_class", "rollout_buffer_kwargs",
          "replay_buffer_kwargs"}


def algorithm(model_type: str) -> Any:
    """The SB3 class of a model type, or a one-line error naming the extra."""
    try:
        import stable_baselines3 as sb3
    except ImportError:
        raise HoningError(f"model.type: {model_type} needs stable-baselines3, which is not installed",
                          "install the reinforcement-learning extra: pip install honing[rl]") from None
    return {"dqn": sb3.DQN, "ppo": sb3.PPO, "a2c": sb3.A2C, "sac": sb3.SAC, "td3": sb3.TD3}[model_type]


def check_params(model_type: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(honing's own parameters with defaults, the algorithm's keyword arguments), every unknown key a
    one-line error."""
    from honing.errors import did_you_mean

    accepted = [p for p in inspect.signature(algorithm(model_type).__init__).parameters if p not in _FIXED]
    unknown = [k for k in params if k not in OWN and k not in accepted]
    if unknown:
        raise RecipeError(f"model.params.{unknown[0]}: not a parameter of {model_type}",
                          did_you_mean(unknown[0], [*OWN, *accepted]) or f"use {', '.join([*OWN, *accepted])}")
    own = {**OWN, **{k: v for k, v in params.items() if k in OWN}}
    if not (isinstance(own["total_timesteps"], int) and own["total_timesteps"] >= 1):
        raise RecipeError(f"model.params.total_timesteps: {own['total_timesteps']!r} must be a positive integer",
                          "e.g. total_timesteps: 100000")
    if not (isinstance(own["n_envs"], int) and own["n_envs"] >= 1):
        raise RecipeError(f"model.params.n_envs: {own['n_envs']!r} must be a positive integer", "e.g. n_envs: 8")
    if own["lr_schedule"] not in ("constant", "linear"):
        raise RecipeError(f"model.params.lr_schedule: {own['lr_schedule']!r} is not constant or linear",
                          "linear decays learning_rate to 0 over total_timesteps")
    if own["activation"] is not None and own["activation"] not in ACTIVATIONS:
        raise RecipeError(f"model.params.activation: {own['activation']!r} is not one of {', '.join(ACTIVATIONS)}",
                          "or leave it out for the algorithm's default")
    if own["net_arch"] is not None and not (isinstance(own["net_arch"], list)
                                            and all(isinstance(n, int) and n > 0 for n in own["net_arch"])):
        raise RecipeError(f"model.params.net_arch: {own['net_arch']!r} must be a list of layer sizes",
                          "e.g. net_arch: [64, 64]")
    return own, {k: v for k, v in params.items() if k not in OWN}


def _policy_kwargs(own: dict) -> dict:
    """The JSON policy kwargs (net_arch, activation name)."""
    return {k: own[k] for k in ("net_arch", "activation") if own[k] is not None}


def _torch_kwargs(kwargs: dict) -> dict:
    from torch import nn

    out = dict(kwargs)
    if "activation" in out:
        out["activation_fn"] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU,
                                "leaky_relu": nn.LeakyReLU}[out.pop("activation")]
    return out


def _num(x: float) -> float | str:
    return float(x) if math.isfinite(x) else str(float(x))


def describe_space(space: Any) -> dict:
    """A JSON description of a Box or Discrete space."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": [_num(x) for x in space.low.ravel()], "high": [_num(x) for x in space.high.ravel()]}
    raise TypeError(f"{type(space).__name__} spaces are not supported")


def build_space(desc: dict) -> Any:
    from gymnasium import spaces

    if desc["type"] == "Discrete":
        return spaces.Discrete(int(desc["n"]), start=int(desc.get("start", 0)))
    shape = tuple(desc["shape"])
    low = np.array([float(x) for x in desc["low"]], dtype=desc["dtype"]).reshape(shape)
    high = np.array([float(x) for x in desc["high"]], dtype=desc["dtype"]).reshape(shape)
    return spaces.Box(low, high, shape=shape, dtype=np.dtype(desc["dtype"]))


def check_spaces(env: Any, env_id: str, model_type: str) -> None:
    from gymnasium import spaces

    obs, act = env.observation_space, env.action_space
    kind = "Discrete" if isinstance(act, spaces.Discrete) else "Box" if isinstance(act, spaces.Box) else None
    if kind is None or kind not in ACTIONS[model_type] or (kind == "Box" and len(act.shape) != 1):
        takes = " or ".join("discrete" if a == "Discrete" else "continuous (vector Box)" for a in ACTIONS[model_type])
        fits = [m for m in DEEP if kind in ACTIONS[m]] if kind else []
        raise RecipeError(f"model.type: {model_type} in honing needs {takes} actions, and {env_id} has {act}",
                          f"use model.type: {' or '.join(fits)}" if fits else "choose an environment with discrete "
                          "or vector actions")
    if not isinstance(obs, (spaces.Box, spaces.Discrete)) or (isinstance(obs, spaces.Box) and len(obs.shape) != 1):
        raise RecipeError(f"model.type: {model_type} in honing needs vector (Box) or Discrete observations, and "
                          f"{env_id} has {obs}", "choose an environment with vector observations")


class PolicyAgent:
    """An SB3 policy network acting greedily (``deterministic=True``)."""

    def __init__(self, policy: Any, meta: dict):
        self.policy = policy
        self.meta = meta
        self.model_type = meta["algorithm"]
        self.env = meta.get("env") or {}
        self.history_: list[dict] | None = None

    @property
    def obs_columns(self) -> list[str]:
        return list(self.meta["obs_columns"])

    @property
    def continuous(self) -> bool:
        """Whether actions are vectors of floats (a Box action space) rather than action ids."""
        return self.meta["action_space"]["type"] == "Box"

    @property
    def action_columns(self) -> list[str] | None:
        """``action_0 …`` for a continuous agent's action vector (None: one action id)."""
        return [f"action_{i}" for i in range(int(np.prod(self.meta["action_space"]["shape"])))] \
            if self.continuous else None

    def act(self, obs: Any) -> int | np.ndarray:
        action, _ = self.policy.predict(np.asarray(obs), deterministic=True)
        return np.asarray(action, dtype=np.float32) if self.continuous else int(action)

    def predict(self, X: Any) -> np.ndarray:
        """Greedy actions for a batch of observations, one per row of ``X``: action ids (n,), or action
        vectors (n, d) of a continuous agent."""
        X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
        if not np.isfinite(X).all():
            raise ModelError("an observation has a missing or infinite value", "give every obs column a number")
        space = self.meta["observation_space"]
        if space["type"] == "Discrete":
            X = X[:, 0].astype(np.int64)
        elif X.shape[1] != int(np.prod(space["shape"])):
            raise ModelError(f"observations have {X.shape[1]} values, the policy takes {int(np.prod(space['shape']))}",
                             f"give the columns {', '.join(self.obs_columns)}")
        actions, _ = self.policy.predict(X, deterministic=True)
        if self.continuous:
            return np.asarray(actions, dtype=np.float64).reshape(len(X), -1)
        return np.asarray(actions).reshape(-1).astype(np.int64)

    def export_state(self) -> tuple[dict, dict]:
        return {k: v.detach().cpu().contiguous() for k, v in self.policy.state_dict().items()}, self.meta


def import_policy(tensors: dict, meta: dict) -> PolicyAgent:
    """The policy of ``meta`` rebuilt from SB3's classes, its weights loaded (strictly)."""
    cls = algorithm(meta["algorithm"]).policy_aliases["MlpPolicy"]
    policy = cls(build_space(meta["observation_space"]), build_space(meta["action_space"]),
                 lambda _: 0.0, **_torch_kwargs(meta["policy_kwargs"]))
    policy.load_state_dict(tensors, strict=True)
    policy.set_training_mode(False)
    return PolicyAgent(policy, meta)


def obs_columns(space: Any) -> list[str]:
    from gymnasium import spaces

    return ["obs"] if isinstance(space, spaces.Discrete) else [f"obs_{i}" for i in range(int(np.prod(space.shape)))]


def train_deep(make: Callable[[], Any], env_info: dict, model_type: str, params: dict, seed: int,
               report: Callable[[int, float], bool] | None = None) -> PolicyAgent:
    """Train an SB3 agent on ``n_envs`` copies of ``make()``; the agent's ``history_`` holds the mean
    training episode reward per window of ``eval_every`` timesteps.  ``report(timesteps, that mean)``
    returning True stops training (a pruned tuning trial)."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    own, kwargs = check_params(model_type, params)
    total = own["total_timesteps"]
    if own["lr_schedule"] == "linear":  # from the given rate, else the algorithm's default
        default = inspect.signature(algorithm(model_type).__init__).parameters["learning_rate"].default
        rate = float(kwargs.get("learning_rate", default))
        kwargs["learning_rate"] = lambda progress: progress * rate  # progress goes 1 → 0
    venv = make_vec_env(make, n_envs=own["n_envs"], seed=seed)
    check_spaces(venv, env_info.get("id", "the environment"), model_type)
    try:
        model = algorithm(model_type)("MlpPolicy", venv, seed=seed, verbose=0, device="cpu",
                                      policy_kwargs=_torch_kwargs(_policy_kwargs(own)), **kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise RecipeError(f"model.params: {model_type} refused them ({type(exc).__name__}: {exc})",
                          "check the values against stable-baselines3's documentation") from None
    meta = {"estimator": "rl_agent", "kind": "sb3", "algorithm": model_type, "env": env_info,
            "policy_kwargs": _policy_kwargs(own), "observation_space": describe_space(venv.observation_space),
            "action_space": describe_space(venv.action_space), "obs_columns": obs_columns(venv.observation_space)}
    agent = PolicyAgent(model.policy, meta)
    window = int(own["eval_every"] or max(1, total // 20))

    class Recorder(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.rewards: list[float] = []
            self.history: list[dict] = []
            self.next = window

        def _on_step(self) -> bool:
            self.rewards += [float(i["episode"]["r"]) for i in self.locals["infos"] if "episode" in i]
            if self.num_timesteps < self.next:
                return True
            self.next += window
            recent = self.rewards[-20:]
            self.history.append({"timesteps": self.num_timesteps, "episodes": len(self.rewards),
                                 "reward": float(np.mean(recent)) if recent else float("nan")})
            return not (report is not None and report(self.num_timesteps, self.history[-1]["reward"]))

    recorder = Recorder()
    model.learn(total_timesteps=total, callback=recorder)
    venv.close()
    model.policy.set_training_mode(False)
    agent.history_ = recorder.history
    return agent

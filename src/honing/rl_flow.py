"""The reinforcement-learning flow (``data.task: reinforcement``): recipe → environment → agent →
seeded evaluation episodes → bundle → run directory.  See docs/reinforcement.md.

:func:`train_agent` is called by ``train_flow`` for reinforcement recipes; it writes the run (bundle,
recipe.yaml, metrics.json, history.csv, plots/learning_curve.png, report.html) into ``tmp``.
:func:`evaluate_agent` plays a bundle's greedy policy for ``honing evaluate BUNDLE --episodes N``.
:func:`fit_agent` is the training step alone (what a tuning trial runs, reporting intermediate reward).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from honing.errors import HoningError, RecipeError
from honing.evaluation.episodes import evaluate_policy, make_env, require_gymnasium
from honing.models import deep_rl, tabular_rl
from honing.progress import Progress
from honing.recipe import Recipe

MODEL_TYPES = (*tabular_rl.TABULAR, *deep_rl.DEEP)
#: Evaluation episodes are seeded from here on (training episodes use seed + 0, 1, …).
EVAL_SEED_OFFSET = 1_000_000


def _model_type(recipe: Recipe, env: Any) -> str:
    """model.type, checked; ``auto`` = q_learning on Discrete observations, else ppo."""
    from gymnasium import spaces

    kind = recipe.model.type
    if kind == "auto":
        return "q_learning" if isinstance(env.observation_space, spaces.Discrete) else "ppo"
    if kind not in MODEL_TYPES:
        from honing.errors import did_you_mean

        raise RecipeError(f"model.type: '{kind}' is not a reinforcement-learning model",
                          did_you_mean(kind, list(MODEL_TYPES)) or f"use one of {', '.join(MODEL_TYPES)}")
    return kind


def env_info(recipe: Recipe) -> dict[str, Any]:
    return {"id": recipe.data.env, "params": dict(recipe.data.env_params)}


def fit_agent(recipe: Recipe, report: Callable[[int, float], bool] | None = None) -> tuple[str, Any]:
    """(model type, trained agent) for a reinforcement recipe; ``report(step, mean training reward)`` is called every
    ``model.params.eval_every`` episodes (tabular) or timesteps (SB3), True stopping training."""
    from honing.training.seed import seed_everything

    if recipe.data.task != "reinforcement":
        raise RecipeError("data.task: reinforcement is needed to train an agent", "set data.task: reinforcement")
    require_gymnasium()
    info = env_info(recipe)
    env = make_env(info["id"], info["params"])
    try:
        kind = _model_type(recipe, env)
        seed_everything(recipe.seed)
        if kind in tabular_rl.TABULAR:
            params = tabular_rl.check_params(kind, recipe.model.params)
            tabular_rl.discrete_sizes(env, info["id"])
            agent = tabular_rl.train_tabular(env, kind, params, recipe.seed, report)
            agent.env = info
        else:
            deep_rl.algorithm(kind)  # the extra's error before anything else
            if recipe.train.threads:
                import torch

                torch.set_num_threads(recipe.train.threads)
            agent = deep_rl.train_deep(lambda: make_env(info["id"], info["params"]), info, kind,
                                       recipe.model.params, recipe.seed, report)
    finally:
        env.close()
    return kind, agent


def evaluate(agent: Any, recipe: Recipe, episodes: int | None = None) -> dict[str, Any]:
    """Mean / std reward (and success rate) of the agent's greedy policy over seeded episodes."""
    info = env_info(recipe)
    return evaluate_policy(info["id"], info["params"], agent.act, episodes or recipe.evaluate.episodes,
                           recipe.seed + EVAL_SEED_OFFSET)


def train_agent(recipe: Recipe, run_dir: Path, tmp: Path, progress: Progress,
                checkpoints: Path | None = None) -> Any:
    """Train, evaluate and write a reinforcement-learning run into ``tmp``; the train flow's RunResult.
    ``checkpoints`` is not used: an agent trains again when its run is resumed."""
    from honing.train_flow import RunResult

    info = env_info(recipe)
    started = time.process_time(), time.perf_counter()
    with progress.step(f"training {recipe.model.type} in {info['id']}"):
        kind, agent = fit_agent(recipe)
    cpu, wall = time.process_time() - started[0], time.perf_counter() - started[1]
    with progress.step(f"evaluating over {recipe.evaluate.episodes} seeded episodes"):
        scores = evaluate(agent, recipe)
    metrics = {"task": "reinforcement", "model": kind, "env": info["id"], "env_params": info["params"],
               **scores, "train_cpu_seconds": round(cpu, 2), "train_wall_seconds": round(wall, 2),
               "evaluation_seed": recipe.seed + EVAL_SEED_OFFSET,
               # the seeded evaluation episodes: the held-out scores the report shows (mean reward first)
               "test": {**{k: v for k, v in scores.items() if k != "episodes"}, "episodes": scores["episodes"]}}
    resolved = recipe.model_copy(update={"model": recipe.model.model_copy(update={"type": kind})})
    progress.note(f"mean reward {scores['mean_reward']:.3f} ± {scores['std_reward']:.3f} over "
                  f"{scores['episodes']} episodes" + (f", success rate {scores['success_rate']:.3f}"
                                                       if "success_rate" in scores else ""))
    with progress.step(f"writing {run_dir}"):
        write_run(tmp, resolved, kind, agent, metrics)
    return RunResult(run_dir, resolved, "reinforcement", kind, metrics, [{"model": kind, **scores}])


def _features(columns: list[str], discrete: bool) -> dict:
    from honing.data.schema import Column, Schema

    kind = ("int64", 0) if discrete else ("float64", 0)
    return Schema(columns=[Column(c, "numeric", kind[0], 0.0, 0) for c in columns]).to_dict()


def _passthrough(columns: list[str]) -> Any:
    """The bundle's preprocessor: the observation columns, in order, as a numeric array."""
    from sklearn.compose import ColumnTransformer

    transformer = ColumnTransformer([("obs", "passthrough", columns)])
    return transformer.fit(pd.DataFrame({c: [0.0] for c in columns}))


def write_run(tmp: Path, recipe: Recipe, kind: str, agent: Any, metrics: dict) -> None:
    """Bundle, recipe, metrics, history, learning curve and report of an agent's run."""
    from honing.bundle import save_bundle
    from honing.loading import TRUSTED_TYPES
    from honing.train_flow import write_run_files

    info = env_info(recipe)
    fingerprint = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()
    discrete = agent.obs_columns == ["obs"]
    save_bundle(tmp / "bundle", preprocessor=_passthrough(agent.obs_columns), model=agent, task="reinforcement",
                features=_features(agent.obs_columns, discrete), classes=None, model_type=kind, metrics=metrics,
                recipe=recipe.model_dump(mode="json"), data_fingerprint=fingerprint, trusted=TRUSTED_TYPES,
                extra={"target": None, "env": info, "evaluation_seed": metrics["evaluation_seed"]})
    write_run_files(tmp, recipe, metrics, history=agent.history_, title=f"{kind} on {info['id']}", curve=reward_curve)


def reward_curve(history: list[dict], path: Path, title: str) -> Path:
    """Mean training episode reward per window (episodes or timesteps) as a PNG."""
    from honing.report.plots import PALETTE, pyplot, save

    plt = pyplot()
    x_key = "timesteps" if "timesteps" in history[0] else "episode"
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot([r[x_key] for r in history], [r["reward"] for r in history], color=PALETTE[0], marker="o",
            markersize=3, label="mean training episode reward")
    ax.set_xlabel(x_key)
    ax.set_ylabel("episode reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", frameon=False)
    return save(fig, path)


def evaluate_agent(bundle: Any, episodes: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """``honing evaluate BUNDLE``: the bundle's greedy policy over seeded episodes in its environment
    (by default the run's own evaluation: its episode count and seed)."""
    env = bundle.manifest.get("env")
    if not isinstance(env, dict) or "id" not in env:
        raise HoningError(f"{bundle.path}: the bundle does not name its environment", "retrain it with this honing")
    episodes = episodes or int(bundle.metrics.get("episodes") or 100)
    seed = seed if seed is not None else int(bundle.manifest.get("evaluation_seed", EVAL_SEED_OFFSET))
    return evaluate_policy(env["id"], env.get("params") or {}, bundle.model.act, episodes, seed)


# ---------------------------------------------------------------------------------------------- tuning
#: Tuning trials are scored on their own seeded episodes, apart from the run's final evaluation.
TUNE_SEED_OFFSET = 2_000_000
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "q_learning": {"model.params.alpha": {"float": [0.01, 0.5], "log": True},
                   "model.params.gamma": {"float": [0.9, 0.999]},
                   "model.params.epsilon_decay": {"float": [0.1, 0.9]}},
    "ppo": {"model.params.learning_rate": {"float": [1.0e-4, 3.0e-3], "log": True},
            "model.params.gamma": {"float": [0.95, 0.999]}, "model.params.ent_coef": {"float": [0.0, 0.02]}},
    "dqn": {"model.params.learning_rate": {"float": [1.0e-4, 3.0e-3], "log": True},
            "model.params.gamma": {"float": [0.95, 0.999]},
            "model.params.exploration_fraction": {"float": [0.05, 0.5]}},
    "a2c": {"model.params.learning_rate": {"float": [1.0e-4, 3.0e-3], "log": True},
            "model.params.gamma": {"float": [0.95, 0.999]}},
    "sac": {"model.params.learning_rate": {"float": [1.0e-4, 3.0e-3], "log": True},
            "model.params.gamma": {"float": [0.95, 0.999]}, "model.params.tau": {"float": [0.001, 0.05], "log": True}},
}
DEFAULT_SPACES["td3"] = DEFAULT_SPACES["sac"]
DEFAULT_SPACES["sarsa"] = DEFAULT_SPACES["q_learning"]


def _checked(raw: dict) -> Recipe:
    """A sampled recipe, its model type and parameters checked (no training)."""
    from honing.recipe import validate_recipe

    recipe = validate_recipe(raw)
    kind = recipe.model.type
    if kind in tabular_rl.TABULAR:
        tabular_rl.check_params(kind, recipe.model.params)
    elif kind in deep_rl.DEEP:
        deep_rl.check_params(kind, recipe.model.params)
    else:
        raise RecipeError(f"model.type: {kind!r} is not tuned for data.task: reinforcement",
                          f"set model.type to one of {', '.join(MODEL_TYPES)}")
    return recipe


def tune_space(recipe: Recipe) -> tuple:
    """The checked dimensions of ``tune.space`` (default: the model type's space above)."""
    from honing.tuning.space import check_space, parse_space

    if recipe.tune.objectives != ["metric"]:
        raise RecipeError("tune.objectives: agents are tuned on their mean reward alone (metric)",
                          "set tune.objectives: [metric]")
    if recipe.tune.cv:
        raise RecipeError("tune.cv: agents are scored on seeded validation episodes, not folds",
                          "remove tune.cv (evaluate.episodes sets how many episodes score a trial)")
    raw = recipe.tune.space
    if raw is None:
        raw = DEFAULT_SPACES.get(recipe.model.type)
        if raw is None:
            raise RecipeError(f"tune.space: model.type {recipe.model.type} has no default space",
                              f"give tune.space, or set model.type to one of {', '.join(DEFAULT_SPACES)}")
    dims = parse_space(raw, lambda option: DEFAULT_SPACES.get(str(option), {}))
    check_space(dims, recipe.model_dump(mode="json"), _checked)
    return dims


def tune_steps(recipe: Recipe) -> int:
    """The most intermediate rewards a trial reports (one per ``eval_every`` window)."""
    params, kind = recipe.model.params, recipe.model.type
    if kind in deep_rl.DEEP:
        total = int(params.get("total_timesteps", deep_rl.OWN["total_timesteps"]))
    else:
        total = int(params.get("episodes", tabular_rl.DEFAULTS["episodes"]))
    every = params.get("eval_every") or max(1, total // 20)
    return max(1, -(-total // int(every)))


def tune_trial(recipe: Recipe, trial: Any = None) -> tuple[tuple[float, ...], dict[str, Any]]:
    """One tuning trial: train (reporting the mean training reward of every window to ``trial``, which
    may prune it), then the greedy policy's mean reward over ``evaluate.episodes`` validation episodes
    (seeded apart from the final evaluation's)."""
    import math

    import optuna

    state = {"reports": 0, "pruned": False}

    def report(step: int, reward: float) -> bool:
        state["reports"] += 1
        if trial is None or not math.isfinite(reward):
            return False
        trial.report(reward, state["reports"])
        state["pruned"] = trial.should_prune()
        return state["pruned"]

    start = time.perf_counter()
    kind, agent = fit_agent(_checked(recipe.model_dump(mode="json")), report)
    if state["pruned"]:
        trial.set_user_attr("epochs", state["reports"])
        raise optuna.TrialPruned(f"pruned after {state['reports']} reports of its training reward")
    info = env_info(recipe)
    scores = evaluate_policy(info["id"], info["params"], agent.act, recipe.evaluate.episodes,
                             recipe.seed + TUNE_SEED_OFFSET)
    attrs = {"model": kind, "validation": scores, "fit_seconds": round(time.perf_counter() - start, 3),
             "epochs": state["reports"], "refit": {}}
    return (float(scores["mean_reward"]),), attrs

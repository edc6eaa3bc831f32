"""Tasks whose trials are run by a module of their own (unsupervised, reinforcement, generation).

Each module named in :data:`TASK_TUNERS` offers ``tune_space(recipe)`` (the search space, checked),
``tune_trial(recipe, trial)`` (train one trial and score it, reporting to ``trial`` for pruning) and,
optionally, ``tune_metric(recipe) -> (name, greater_is_better)`` (default: the mean episode reward).
The modules are imported when a study of their task runs, so tuning does not depend on them otherwise.
"""

from __future__ import annotations

import importlib
from types import ModuleType

TASK_TUNERS = {
    "clustering": "honing.unsupervised_tune",
    "reduction": "honing.unsupervised_tune",
    "anomaly": "honing.unsupervised_tune",
    "reinforcement": "honing.rl_flow",
    "generation": "honing.generative_tune",
}


def task_tuner(task: str) -> ModuleType | None:
    """The module that tunes ``task``, or None for classification and regression."""
    name = TASK_TUNERS.get(task)
    return importlib.import_module(name) if name else None


def tune_metric(tuner: ModuleType, recipe) -> tuple[str, bool]:
    """The objective a task's trials report: its module's, else the mean episode reward (maximised)."""
    return tuner.tune_metric(recipe) if hasattr(tuner, "tune_metric") else ("mean_reward", True)

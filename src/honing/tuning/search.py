"""Run a study: the recipe's space, sampler and pruner, N workers, a live bar over the trials."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from honing.data.dataset import Dataset, image_shaped
from honing.errors import HoningError
from honing.progress import SILENT, Progress
from honing.recipe import Recipe
from honing.tuning import study as studies
from honing.tuning.objective import Objective
from honing.tuning.results import best_trial, best_values, leaderboard, objective_names
from honing.tuning.space import Dimension, build_space, params_of


@dataclass
class Search:
    """A study ready to run: the checked space, the objective and where the study lives."""

    recipe: Recipe
    dims: tuple[Dimension, ...]
    objective: Objective
    spec: studies.StudySpec
    names: list[str]

    @property
    def metric(self) -> str:
        return self.objective.metric


def prepare(recipe: Recipe, dataset: Dataset | None, storage_dir: Path, name: str | None = None) -> Search:
    """Check the space against the data's task; the objective reuses the loaded ``dataset`` (None for
    an agent, which has an environment instead)."""
    task = dataset.task if dataset is not None else recipe.data.task
    if dataset is not None:
        recipe = image_shaped(recipe, dataset.image_shape)  # every trial's cnn reads the images as (C, H, W)
    dims = build_space(recipe, task)
    objective = Objective(recipe, dims, task, report=studies.reports(recipe.tune))
    if dataset is not None:
        objective.prime(recipe.data, recipe.seed, dataset)
    spec = studies.study_spec(recipe, storage_dir, objective.directions, name)
    return Search(recipe, dims, objective, spec, objective_names(recipe.tune.objectives, objective.metric))


def open_study(search: Search, create: bool = True, progress: Progress = SILENT) -> optuna.Study:
    """Create the study, or load it (to resume or join: interrupted trials are queued again, and
    the sampler is seeded past the trials so far, so it does not repeat them)."""
    tune, seed = search.recipe.tune, search.recipe.seed
    pruner = studies.make_pruner(tune, studies.max_steps(search.recipe))
    if create:
        return studies.create_study(search.spec, studies.make_sampler(tune, search.dims, seed), pruner)
    study = studies.load_study(search.spec, None, pruner)
    study.sampler = studies.make_sampler(tune, search.dims, studies.sampler_seed(seed, study, search.spec.shared))
    again = studies.requeue_interrupted(study, running=not search.spec.shared)
    if again:
        progress.note(f"{again} interrupted trial(s) will run again")
    return study


def run(search: Search, study: optuna.Study, progress: Progress = SILENT) -> None:
    """Run trials until the budget is used, in ``tune.workers`` processes; this one shows the bar."""
    tune = search.recipe.tune
    limit = studies.budget(tune, search.dims)
    deadline = time.time() + tune.timeout if tune.timeout else None
    progress.note(f"tuning: {studies.describe(tune, limit, tune.workers)}")
    shares = studies.cpu_shares(tune.workers)
    jobs = [studies.WorkerJob(search.spec, search.recipe.model_dump(mode="json"), search.dims, search.objective.task,
                              limit, deadline, worker, shares[worker]) for worker in range(1, tune.workers)]
    bar = progress.bar(limit or 0, "trials")
    watch = _Watch(bar, progress, search.names[0], _finished(study))
    bar.advance(watch.seen)
    try:
        with studies.worker_processes(jobs), studies.pinned(shares[0] if tune.workers > 1 else ()):
            studies.run_trials(study, search.objective, limit, deadline, watch)
    finally:
        bar.close()


def _finished(study: optuna.Study) -> int:
    return sum(studies.counted(t) for t in study.get_trials(deepcopy=False))


class _Watch:
    """After each trial: advance the bar to the study's count (other workers' trials included),
    show the best score so far, and say why a trial failed."""

    def __init__(self, bar: Any, progress: Progress, metric: str, seen: int):
        self.bar, self.progress, self.metric, self.seen = bar, progress, metric, seen

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        done = _finished(study)
        best = best_trial(study)
        status = f"best {self.metric} {best.values[0]:.4g} (trial {best.number})" if best else ""
        self.bar.advance(max(done - self.seen, 0), status)
        self.seen = max(done, self.seen)
        if trial.state == TrialState.FAIL and not trial.user_attrs.get("interrupted"):
            self.progress.note(f"trial {trial.number} failed: {trial.user_attrs.get('error', 'unknown error')}")


@dataclass
class Outcome:
    """What a finished study found."""

    study: optuna.Study
    names: list[str]
    rows: list[dict[str, Any]]
    best: FrozenTrial
    values: dict[str, Any]  # the best values ({} when the recipe as written scored better)
    recipe: Recipe  # the base recipe with the best values
    refit: dict[str, Any]  # what refitting on train + validation fixes (epochs, boosting rounds)
    notes: list[str] = field(default_factory=list)
    trial: int | None = None  # the best trial's number; None when the recipe as written won
    scores: tuple[float, ...] = ()  # the best recipe's validation score(s)
    refitted: Recipe | None = None  # the best recipe with the refit values, for train + validation

    def summary(self, study_name: str, default: float | None, test: dict[str, Any]) -> dict[str, Any]:
        """tune.json: trial counts, epochs spent, the best recipe's values and scores."""
        return {"study": study_name, "objectives": self.names,
                "trials": dict(Counter(row["state"] for row in self.rows)),
                "epochs": int(sum(row.get("epochs") or 0 for row in self.rows)),
                "best": {"trial": self.trial, "scores": dict(zip(self.names, self.scores, strict=False)),
                         "values": params_of(self.values), "refit": self.refit},
                "default_score": default, "test": test}


def outcome(search: Search, study: optuna.Study) -> Outcome:
    """The leaderboard and the best trial (an error when no trial completed); when the recipe as
    written scored better on validation than every trial, it stays the best recipe."""
    rows = leaderboard(study, search.names)
    best = best_trial(study)
    if best is None:
        errors = [t.user_attrs["error"] for t in study.get_trials(deepcopy=False)
                  if t.state == TrialState.FAIL and "error" in t.user_attrs]
        reason = f"; the first error: {errors[0]}" if errors else ""
        raise HoningError(f"tune: no trial completed ({len(rows)} ran){reason}",
                          "check the space's ranges, or raise tune.trials / tune.timeout")
    default = study.user_attrs.get("default")
    if default and len(search.names) == 1 and _better(default["score"], best.values[0], search.objective.greater):
        note = (f"the recipe as written scored better on validation ({default['score']:.4f}) than the best trial "
                f"({best.values[0]:.4f}): best.yaml keeps it")
        return Outcome(study, search.names, rows, best, {}, search.objective.recipe({}), default["refit"], [note],
                       None, (default["score"],), search.objective.recipe(default["refit"]))
    values = best_values(best, search.dims)
    refit = best.user_attrs.get("refit", {})
    return Outcome(study, search.names, rows, best, values, search.objective.recipe(values), refit, [],
                   best.number, tuple(best.values), search.objective.recipe({**values, **refit}))


def _better(a: float, b: float, greater: bool) -> bool:
    return a > b if greater else a < b


def score_default(search: Search, study: optuna.Study, progress: Progress = SILENT) -> float | None:
    """Score the recipe as written once (what tuning has to beat), kept in the study; None for
    ``model.type: auto`` (a portfolio rather than one model) or when it fails to train."""
    if "default" not in study.user_attrs:
        default = None
        if search.recipe.model.type != "auto":
            try:
                values, attrs = search.objective.evaluate({})
            except (HoningError, ValueError, ArithmeticError, RuntimeError) as exc:
                progress.note(f"the recipe as written failed to train ({exc}); tuning goes on without it")
            else:
                if math.isfinite(values[0]):
                    default = {"score": values[0], "refit": attrs["refit"]}
        study.set_user_attr("default", default)
    default = study.user_attrs["default"]
    return default["score"] if default else None

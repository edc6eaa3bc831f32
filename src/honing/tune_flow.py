"""The tune flow: recipe → data (loaded once) → study (create, resume or join) → trials → leaderboard,
best.yaml and plots → the best recipe trained by the train flow into ``best/`` → run dir.

:func:`tune` and :func:`join` are the bodies of ``honing.api.tune`` and ``honing.api.join``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from honing.errors import RecipeError
from honing.progress import SILENT, Progress
from honing.recipe import Recipe, load_recipe
from honing.report.html import build_report
from honing.stream_flow import TUNING_SAMPLE, tuning_sample
from honing.tracking import default_run_dir, run_directory, write_json, write_text
from honing.train_flow import TASK_FLOWS, RunResult, load_data, log_to_mlflow, resumable, train


@dataclass
class TuneResult:
    """What ``tune`` produced: the run directory, the best recipe and its scores."""

    run_dir: Path
    recipe: Recipe  # the best recipe (also best.yaml)
    metric: str
    objectives: list[str]  # the leaderboard's score columns: the metric, latency_ms, size_kb
    best_trial: int | None  # None when no trial beat the recipe as written (best.yaml keeps it)
    best_score: float
    default_score: float | None  # the recipe as written, on the same validation data
    leaderboard: list[dict[str, Any]]
    trained: RunResult | None  # the best recipe's bundle, under best/
    notes: list[str] = field(default_factory=list)


def tune(recipe: str | Path | dict | Recipe | None, overrides: list[str] | None = None,
         out: str | Path | None = None, progress: Progress = SILENT, study: str | None = None,
         resume: bool = False) -> TuneResult:
    """The tuning run of a recipe (see ``honing.api.tune``), logged to MLflow."""
    from honing.evaluation.evaluate import check_refit
    from honing.tuning import search as searching

    if resume:
        recipe = resumable(out, "tune")
    recipe = load_recipe(recipe, overrides)
    check_refit(recipe)
    run_dir = Path(out) if out is not None else default_run_dir(recipe.name)
    with run_directory(run_dir, resume=resume) as tmp:
        progress.note(f"run directory: {run_dir}")
        search = searching.prepare(*_trial_data(recipe, tmp, progress), tmp, study)
        recipe = recipe.model_copy(update={"tune": recipe.tune.model_copy(update={"study": search.spec.name})})
        write_text(tmp / "recipe.yaml", recipe.to_yaml())  # what --resume reads back
        found = searching.open_study(search, create=not resume, progress=progress)
        write_json(tmp / "study.json", {"study": search.spec.name, "storage": search.spec.shown(tmp)})
        with progress.step("scoring the recipe as written"):
            default = searching.score_default(search, found, progress)
        searching.run(search, found, progress)
        outcome = _on_every_row(searching.outcome(search, found), recipe)
        (tmp / TUNING_SAMPLE).unlink(missing_ok=True)  # (a streamed table's, not part of the run)
        result = _write_tuning(search, outcome, default, run_dir, tmp, progress)
    log_to_mlflow(recipe, run_dir, progress)
    return result


def join(recipe: str | Path, overrides: list[str] | None = None, study: str | None = None,
         progress: Progress = SILENT) -> int:
    """Trials of a study in shared storage run on this machine (see ``honing.api.join``); returns how
    many trials the study has finished."""
    from honing.tuning import search as searching

    recipe = load_recipe(recipe, overrides)
    if recipe.tune.storage is None:
        raise RecipeError("--join: tune.storage is empty, so there is no shared study to join",
                          "set tune.storage: postgresql://USER@HOST/DB in the recipe (the same as the first machine's)")
    with tempfile.TemporaryDirectory(prefix="honing-join-") as folder:
        search = searching.prepare(*_trial_data(recipe, Path(folder), progress), Path.cwd(), study)
        found = searching.open_study(search, create=False, progress=progress)
        searching.run(search, found, progress)
    return sum(t.state.is_finished() for t in found.get_trials(deepcopy=False))


def _trial_data(recipe: Recipe, folder: Path, progress: Progress) -> tuple[Recipe, Any]:
    """(the recipe the trials read, its data loaded once): the task flows load their own (None); a
    streamed table is tuned on a uniform sample of it, written into ``folder`` (the best recipe is
    then trained on every row)."""
    from honing.data.streaming import streams

    if recipe.data.task in TASK_FLOWS:
        return recipe, None
    if streams(recipe.data):
        recipe = tuning_sample(recipe, folder, progress)
    return recipe, load_data(recipe, progress)


def _on_every_row(outcome: Any, recipe: Recipe) -> Any:
    """The outcome's recipes reading the data as ``recipe`` does (not a streamed table's tuning sample:
    :func:`~honing.stream_flow.tuning_sample`), with the ``data.*`` values the best trial tuned."""
    def reading(best: Recipe | None) -> Recipe | None:
        if best is None:
            return None
        data = best.data.model_copy(update={
            **{key: getattr(recipe.data, key) for key in ("source", "streaming", "target", "task")},
            "split": best.data.split.model_copy(update={"column": recipe.data.split.column})})
        return best.model_copy(update={"data": data})

    return replace(outcome, recipe=reading(outcome.recipe), refitted=reading(outcome.refitted))


def _write_tuning(search: Any, outcome: Any, default: float | None, run_dir: Path, tmp: Path,
                  progress: Progress) -> TuneResult:
    from honing.report.tuning_plots import tuning_plots

    tune = search.recipe.tune
    for note in outcome.notes:
        progress.note(note)
    with progress.step(f"writing {run_dir}"):
        pd.DataFrame(outcome.rows).to_csv(tmp / "leaderboard.csv", index=False)
        write_text(tmp / "best.yaml", outcome.recipe.to_yaml())
        _, notes = tuning_plots(outcome.study, tmp / "plots", outcome.names)
    for note in notes:
        progress.note(note)
    refit = outcome.refitted if tune.refit else outcome.recipe
    # the task flows (clustering, agents, generative models, …) train the best recipe as `honing train` would
    what = "train + validation" if tune.refit and refit.data.task not in TASK_FLOWS else "train"
    which = "the recipe as written" if outcome.trial is None else f"trial {outcome.trial}"
    progress.note(f"training the best recipe ({which}) on {what}")
    trained = train(refit, out=tmp / "best", progress=progress, fit_on_validation=tune.refit, track=False)
    write_json(tmp / "tune.json", outcome.summary(search.spec.name, default, trained.metrics.get("test", {})))
    build_report(tmp)
    return TuneResult(run_dir, outcome.recipe, search.metric, outcome.names, outcome.trial, outcome.scores[0], default,
                      outcome.rows, trained, [*outcome.notes, *notes])

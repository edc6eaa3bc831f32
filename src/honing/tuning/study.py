"""The Optuna study behind ``honing tune``: storage, sampler, pruner, workers, budget and resume.

* Storage: a journal file in the run directory by default (``JournalFileBackend``: safe for
  several processes on one machine, which SQLite is not); ``tune.storage`` may name a
  PostgreSQL URL (workers on other machines join with ``honing tune --join``; heartbeats let a
  crashed worker's trial be failed and retried) or a journal file on a shared disk.
* Budget: ``tune.trials`` counts finished trials (complete, pruned or failed); a trial cut short by
  Ctrl-C or SIGKILL is marked ``interrupted``, not counted, and run again on resume.
* Workers: ``tune.workers: N`` runs N processes that share the study, each pinned to its share of
  the CPUs; each process seeds its sampler with ``seed + worker``.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from honing.errors import HoningError, RecipeError
from honing.recipe import Recipe, TuneConfig
from honing.tuning.space import Dimension, grid_size

JOURNAL = "study.journal"
#: Seconds between a running trial's heartbeats in a database, and after which a silent one is stale.
HEARTBEAT, GRACE = 20, 90

optuna.logging.set_verbosity(optuna.logging.ERROR)  # honing reports trials itself
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass(frozen=True)
class StudySpec:
    """Everything a worker process needs to open the same study (plain data: it is pickled)."""

    storage: str  # a database URL or a journal file path
    name: str
    directions: tuple[str, ...]

    @property
    def shared(self) -> bool:
        return "://" in self.storage

    def shown(self, run_dir: Path) -> str:
        """The storage as tune.json names it: the journal's file name, or the URL without password."""
        return JOURNAL if self.storage == str(Path(run_dir) / JOURNAL) else _redacted(self.storage)


def storage_spec(tune: TuneConfig, run_dir: Path) -> str:
    """The storage a run uses: ``tune.storage``, else a journal file in the run directory."""
    return tune.storage or str(Path(run_dir) / JOURNAL)


def open_storage(spec: str) -> Any:
    """An Optuna storage for a database URL or a journal file path; one-line errors naming
    ``tune.storage`` when it cannot be reached."""
    if "://" not in spec:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(spec)
        if not path.parent.is_dir():
            raise RecipeError(f"tune.storage: the folder of '{spec}' does not exist", "create it, or fix the path")
        return JournalStorage(JournalFileBackend(str(path)))
    if spec.startswith("sqlite"):
        raise RecipeError("tune.storage: SQLite is not safe for parallel tuning workers",
                          "leave tune.storage empty (a journal file), or use postgresql://…")
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return optuna.storages.RDBStorage(spec, heartbeat_interval=HEARTBEAT, grace_period=GRACE,
                                          heartbeat_stale_trial_callback=_requeue_stale,
                                          engine_kwargs={"pool_pre_ping": True, **_connect_timeout(spec)})
    except (ImportError, ValueError, SQLAlchemyError) as exc:  # driver, network, credentials, database
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HoningError(f"tune.storage: cannot open {_redacted(spec)}: {reason[:200]}",
                          "check that the database server is running and the URL is right") from None


def _connect_timeout(url: str) -> dict:
    return {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}


def _redacted(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        creds = creds.split(":")[0] + ":***"
    return f"{scheme}{sep}{creds}{at}{host}"


def make_sampler(tune: TuneConfig, dims: tuple[Dimension, ...], seed: int) -> optuna.samplers.BaseSampler:
    name = tune.sampler
    if name == "grid":  # enumerates the tree of a conditional space: every distinct recipe once
        grid_size(dims)  # a finite space (ranges with steps), not too large
        return optuna.samplers.BruteForceSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = min(10, max(2, (tune.trials or 20) // 4))  # random trials before the model guides the search
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "nsga2":
        population = min(50, max(4, (tune.trials or 50) // 4))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=tune.workers > 1,
                                      n_startup_trials=startup)


def make_pruner(tune: TuneConfig, steps: int) -> optuna.pruners.BasePruner:
    """The pruner; ``steps`` is the most a trial reports (epochs, boosting rounds or folds): the
    first rung is about 1/27 of it, so no trial is judged on its first few noisy steps."""
    first = max(1, steps // 27)
    if not reports(tune):
        return optuna.pruners.NopPruner()
    if tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=first)
    if tune.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=3)
    return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=steps, reduction_factor=3)


def max_steps(recipe: Recipe) -> int:
    """The most steps a trial of ``recipe`` reports: folds, else epochs or boosting rounds."""
    if recipe.tune.cv:
        return recipe.tune.cv
    if recipe.model.type == "lightgbm":
        return int(recipe.model.params.get("n_estimators", 300))
    return recipe.train.epochs


def create_study(spec: StudySpec, sampler: Any, pruner: Any) -> optuna.Study:
    """A new study; with shared storage, an existing study of the same name is an error."""
    storage = open_storage(spec.storage)
    if spec.shared and spec.name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        raise HoningError(f"tune.study: a study '{spec.name}' already exists in {_redacted(spec.storage)}",
                          "add workers to it with --join, or choose another name with --study")
    return optuna.create_study(storage=storage, study_name=spec.name, sampler=sampler, pruner=pruner,
                               directions=list(spec.directions))


def load_study(spec: StudySpec, sampler: Any, pruner: Any) -> optuna.Study:
    storage = open_storage(spec.storage)
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        raise HoningError(f"tune.study: no study '{spec.name}' in {_redacted(spec.storage)}",
                          "start it first with `honing tune RECIPE`, or check --study") from None
    if list(study.directions) != [optuna.study.StudyDirection[d.upper()] for d in spec.directions]:
        raise HoningError(f"tune.study: '{spec.name}' optimises other objectives than this recipe",
                          "join with the recipe that started the study")
    return study


# --------------------------------------------------------------------------- budget and resume


def counted(trial: FrozenTrial) -> bool:
    """Does the trial use up the budget? Finished ones do; interrupted ones are run again."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and not trial.user_attrs.get("interrupted")


def budget(tune: TuneConfig, dims: tuple[Dimension, ...]) -> int | None:
    """Trials to finish: ``tune.trials``, and for a grid at most its size."""
    if tune.sampler == "grid":
        size = grid_size(dims)
        return size if tune.trials is None else min(tune.trials, size)
    return tune.trials


def requeue_interrupted(study: optuna.Study, running: bool) -> int:
    """Queue again the parameters of interrupted trials; with ``running`` (no other process can be
    running trials: a local journal) first fail every trial left running by a killed process.
    (In a database, heartbeats find the trials of dead workers.)  Returns how many were queued."""
    storage = study._storage
    if not running:
        optuna.storages.fail_stale_trials(study)
    retried = {t.user_attrs.get("retry_of") for t in study.get_trials(deepcopy=False)}
    count = 0
    for trial in study.get_trials(deepcopy=False):
        if running and trial.state == TrialState.RUNNING:
            storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        elif not (trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted")):
            continue
        if trial.number not in retried:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            count += 1
    return count


def _requeue_stale(study: optuna.Study, trial: FrozenTrial) -> None:
    """A database trial whose worker stopped beating: mark it interrupted and run it again."""
    study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


# --------------------------------------------------------------------------- running trials


def run_trials(study: optuna.Study, objective: Callable, limit: int | None, deadline: float | None,
               after_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None) -> None:
    """Run trials one at a time until ``limit`` trials are finished or running (across every
    worker), or until ``deadline`` (a ``time.time()``) has passed."""
    callbacks = [after_trial] if after_trial else []
    while True:
        if deadline is not None and time.time() >= deadline:
            return
        if limit is not None:
            trials = study.get_trials(deepcopy=False)
            if sum(counted(t) or t.state == TrialState.RUNNING for t in trials) >= limit:
                return
        study.optimize(_guarded(objective), n_trials=1, catch=(Exception,), callbacks=callbacks)


def _guarded(objective: Callable) -> Callable:
    """The objective, recording why a trial failed, or that it was interrupted (not counted)."""
    def run(trial: optuna.Trial) -> Any:
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        except Exception as exc:
            trial.set_user_attr("error", str(exc) or type(exc).__name__)
            raise
    return run


@dataclass(frozen=True)
class WorkerJob:
    """What a worker process runs (plain data: it is pickled to the process)."""

    spec: StudySpec
    recipe: dict
    dims: tuple[Dimension, ...]
    task: str
    limit: int | None
    deadline: float | None
    worker: int
    cpus: tuple[int, ...]


def run_worker(job: WorkerJob) -> None:
    """A worker process: open the study and run trials until the shared budget is used."""
    from honing.recipe import validate_recipe
    from honing.tuning.objective import Objective

    recipe = validate_recipe(job.recipe)
    with pinned(job.cpus):
        study = load_study(job.spec, None, make_pruner(recipe.tune, max_steps(recipe)))
        study.sampler = make_sampler(recipe.tune, job.dims, recipe.seed + job.worker + len(study.get_trials(deepcopy=False)))
        objective = Objective(recipe, job.dims, job.task, report=reports(recipe.tune))
        with contextlib.suppress(KeyboardInterrupt):
            run_trials(study, objective, job.limit, job.deadline)


def reports(tune: TuneConfig) -> bool:
    """Do trials report intermediate scores? Only to a pruner, and only with one objective."""
    return tune.pruner != "none" and len(tune.objectives) == 1


def cpu_shares(workers: int) -> list[tuple[int, ...]]:
    """The CPUs of this process split into ``workers`` shares (shared when there are fewer CPUs)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if workers >= len(cpus):
        return [(cpus[i % len(cpus)],) for i in range(workers)]
    size = math.ceil(len(cpus) / workers)
    return [tuple(cpus[i * size:(i + 1) * size]) or tuple(cpus[-1:]) for i in range(workers)]


@contextlib.contextmanager
def pinned(cpus: tuple[int, ...]) -> Iterator[None]:
    """Run on ``cpus`` only, with as many torch threads (LightGBM sizes itself from the affinity)."""
    if not hasattr(os, "sched_setaffinity") or not cpus:
        yield
        return
    import torch

    before, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, cpus)
    torch.set_num_threads(len(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
        torch.set_num_threads(threads)


@contextlib.contextmanager
def worker_processes(jobs: list[WorkerJob]) -> Iterator[list]:
    """Start a process per job (spawned: no state shared with this one); wait for them on exit,
    and stop them if this process is interrupted."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=run_worker, args=(job,), daemon=True) for job in jobs]
    for process in processes:
        process.start()
    try:
        yield processes
    except BaseException:
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join()


def describe(tune: TuneConfig, limit: int | None, workers: int) -> str:
    parts = [f"{limit} trials" if limit else "trials until the timeout",
             f"sampler {tune.sampler}", f"pruner {tune.pruner if reports(tune) else 'none'}"]
    if tune.timeout:
        parts.append(f"timeout {tune.timeout:g}s")
    if tune.cv:
        parts.append(f"{tune.cv}-fold cross-validation")
    if workers > 1:
        parts.append(f"{workers} workers")
    return ", ".join(parts)


def study_spec(recipe: Recipe, run_dir: Path, directions: list[str], name: str | None = None) -> StudySpec:
    return StudySpec(storage_spec(recipe.tune, run_dir), name or recipe.tune.study or recipe.name, tuple(directions))

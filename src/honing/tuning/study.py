"""The Optuna study behind ``honing tune``: storage, sampler, pruner, workers, budget and resume.

* Storage: a journal file in the run directory by default (``JournalFileBackend``: safe for
  several processes on one machine, which SQLite is not); ``tune.storage`` may name a
  PostgreSQL URL (workers on other machines join with ``honing tune --join``) or a journal file on
  a shared disk.
* Heartbeats (database storage): a running trial beats every ``tune.heartbeat`` seconds; one
  silent for :func:`grace` seconds (its worker died) is marked ``interrupted`` and failed by the
  first worker to notice, which queues its parameters again (once: only one worker's FAIL lands).
* Budget: ``tune.trials`` counts finished trials (complete, pruned or failed); a trial cut short by
  Ctrl-C or SIGKILL is marked ``interrupted``, not counted, and run again (on resume, or, in a
  database, by the other workers).  A worker starts a trial only while finished + running trials
  are below the budget, so N workers finish at most N-1 trials more than the budget.
* Workers: ``tune.workers: N`` runs N processes that share the study, each pinned to its share of
  the CPUs; each process seeds its sampler with ``seed + worker``.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState

from honing.errors import HoningError, RecipeError
from honing.recipe import Recipe, TuneConfig
from honing.tuning.heartbeat import (
    HEARTBEAT,
    HeartbeatStorage,
    fail_stale,
    grace,
    lost,
    requeue_orphans,
    requeue_stale,
)
from honing.tuning.space import Dimension, grid_size

JOURNAL = "study.journal"
#: Seconds between two looks at the study while a worker waits for the trials holding the budget.
POLL = 1.0

optuna.logging.set_verbosity(optuna.logging.ERROR)  # honing reports trials itself
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


@dataclass(frozen=True)
class StudySpec:
    """Everything a worker process needs to open the same study (plain data: it is pickled)."""

    storage: str  # a database URL or a journal file path
    name: str
    directions: tuple[str, ...]
    heartbeat: int = HEARTBEAT  # seconds between heartbeats of a running trial (database storage)

    @property
    def shared(self) -> bool:
        return "://" in self.storage

    def shown(self, run_dir: Path) -> str:
        """The storage as tune.json names it: the journal's file name, or the URL without password."""
        return JOURNAL if self.storage == str(Path(run_dir) / JOURNAL) else _redacted(self.storage)


def storage_spec(tune: TuneConfig, run_dir: Path) -> str:
    """The storage a run uses: ``tune.storage``, else a journal file in the run directory."""
    return tune.storage or str(Path(run_dir) / JOURNAL)


def open_storage(spec: str, heartbeat: int = HEARTBEAT) -> Any:
    """An Optuna storage for a database URL or a journal file path; one-line errors naming
    ``tune.storage`` when it cannot be reached.  A database's running trials beat every
    ``heartbeat`` seconds."""
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            return HeartbeatStorage(spec, heartbeat_interval=heartbeat, grace_period=grace(heartbeat),
                                     heartbeat_stale_trial_callback=requeue_stale,
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
    parallel = tune.workers > 1 or tune.storage is not None  # shared storage: other machines may join
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=parallel,
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
    if recipe.data.task == "reinforcement":  # one report per window of episodes / timesteps
        from honing.rl_flow import tune_steps

        return tune_steps(recipe)
    if recipe.model.type == "lightgbm":
        return int(recipe.model.params.get("n_estimators", 300))
    return recipe.train.epochs


def create_study(spec: StudySpec, sampler: Any, pruner: Any) -> optuna.Study:
    """A new study; with shared storage, an existing study of the same name is an error."""
    storage = open_storage(spec.storage, spec.heartbeat)
    if spec.shared and spec.name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
        raise HoningError(f"tune.study: a study '{spec.name}' already exists in {_redacted(spec.storage)}",
                          "add workers to it with --join, or choose another name with --study")
    return optuna.create_study(storage=storage, study_name=spec.name, sampler=sampler, pruner=pruner,
                               directions=list(spec.directions))


def load_study(spec: StudySpec, sampler: Any, pruner: Any) -> optuna.Study:
    storage = open_storage(spec.storage, spec.heartbeat)
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
    (In a database, heartbeats find the trials of dead workers, and the worker that fails one
    queues it: see :func:`_requeue_stale`.)  Returns how many were queued."""
    storage = study._storage
    if not running:
        fail_stale(study)
    retried = {t.user_attrs.get("retry_of") for t in study.get_trials(deepcopy=False)}
    count = 0
    for trial in study.get_trials(deepcopy=False):
        if running and trial.state == TrialState.RUNNING:
            storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        elif trial.state != TrialState.FAIL or trial.user_attrs.get("interrupted") is not True:
            continue  # not interrupted, or found stale by its heartbeat ("heartbeat"): queued by whoever failed it
        if trial.number not in retried:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            count += 1
    return count


# --------------------------------------------------------------------------- running trials


def run_trials(study: optuna.Study, objective: Callable, limit: int | None, deadline: float | None,
               after_trial: Callable[[optuna.Study, FrozenTrial], None] | None = None) -> None:
    """Run trials one at a time until ``limit`` trials are finished (across every worker), or until
    ``deadline`` (a ``time.time()``) has passed.  A trial starts only while finished + running
    trials are below ``limit``.  With heartbeats (a database), return only once no trial runs: a
    running one may belong to a dead worker; when it goes stale it is failed here, and its retry
    run here if the budget is not used.  Without (a journal: this machine's processes only), return
    when the running trials hold the rest of the budget."""
    callbacks = [after_trial] if after_trial else []
    beating = is_heartbeat_enabled(study._storage)
    while True:
        if deadline is not None and time.time() >= deadline:
            return
        if limit is not None:
            trials = study.get_trials(deepcopy=False)
            done = sum(counted(t) for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if done + running >= limit:
                if not (beating and running):
                    return
                time.sleep(POLL if deadline is None else max(0.0, min(POLL, deadline - time.time())))
                fail_stale(study)
                continue
        if beating:  # a stale trial's retry its failer died before queueing
            requeue_orphans(study)
        ran: list[int] = []
        try:
            study.optimize(_guarded(objective, ran), n_trials=1, catch=(Exception,), callbacks=callbacks)
        except (ValueError, UpdateFinishedTrialError, AssertionError):  # Optuna: "Cannot tell a FAIL trial"
            if not (ran and lost(study, ran[-1])):  # (an assertion when the trial is lost as Optuna tells it)
                raise


def _guarded(objective: Callable, ran: list[int] | None = None) -> Callable:
    """The objective, recording why a trial failed, or that it was interrupted (not counted); the
    ids of the trials it runs go to ``ran``."""
    def run(trial: optuna.Trial) -> Any:
        if ran is not None:
            ran.append(trial._trial_id)
        trial.set_user_attr("worker", worker_name())  # who runs it, while it runs
        try:
            value = objective(trial)
            if ran is not None and is_heartbeat_enabled(trial.study._storage) and lost(trial.study, trial._trial_id):
                raise UpdateFinishedTrialError(f"trial {trial.number} was failed as lost while it ran")
            return value
        except (optuna.TrialPruned, UpdateFinishedTrialError):  # the latter: failed under us as stale
            raise
        except KeyboardInterrupt:
            with contextlib.suppress(UpdateFinishedTrialError):
                trial.set_user_attr("interrupted", True)
            raise
        except Exception as exc:
            trial.set_user_attr("error", str(exc) or type(exc).__name__)
            raise
    return run


def worker_name() -> str:
    """``host:pid`` of this process, as trials record it in ``user_attrs["worker"]``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def sampler_seed(seed: int, study: optuna.Study, shared: bool) -> int:
    """The seed of a sampler opening an existing study: past its trials, so it does not repeat
    them; in shared storage also different on every joining process (workers joining at the same
    time would otherwise sample the same points)."""
    offset = len(study.get_trials(deepcopy=False))
    return seed + offset + (int.from_bytes(os.urandom(3), "little") if shared else 0)


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
        study.sampler = make_sampler(recipe.tune, job.dims, sampler_seed(recipe.seed + job.worker, study, job.spec.shared))
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
    return StudySpec(storage_spec(recipe.tune, run_dir), name or recipe.tune.study or recipe.name, tuple(directions),
                     recipe.tune.heartbeat)

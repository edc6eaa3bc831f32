"""One trial of ``honing tune``: the recipe a trial samples, trained and scored on validation.

The data is read and preprocessed once per process and data section (a space that searches
``data.*`` keys gets one cached copy per value).  Neural trials report their validation score after
every epoch and LightGBM trials after every boosting round, so a pruner can stop them early; with
``tune.cv: K`` a trial reports the running mean after each fold instead.  What a trial measured
(every validation metric, epochs or rounds used, fit seconds) is kept in its user attributes.
"""

from __future__ import annotations

import math
import os
import pickle
import socket
import time
from typing import Any

import numpy as np
import optuna

from honing.data.balance import balance_training
from honing.data.dataset import Dataset, load_dataset
from honing.errors import RecipeError
from honing.evaluation.metrics import primary_metric
from honing.models.classic import make_model, neural_options
from honing.models.select import Candidate, fit_candidate, is_lightgbm, is_neural
from honing.recipe import DataConfig, Recipe, validate_recipe
from honing.training.callbacks import Callback, monitor_mode
from honing.tuning.space import Dimension, apply_values, params_of, suggest
from honing.tuning.tasks import task_tuner, tune_metric

#: Rows timed for the latency objective.
LATENCY_ROWS = 1000


class EpochReporter(Callback):
    """Reports the validation score after every epoch and stops the loop when the trial is pruned.

    ``key`` is the logged value (``val_accuracy``, else ``val_loss``) and ``sign`` turns it into
    "greater is better" or not, as the study's direction wants."""

    def __init__(self, trial: optuna.Trial | None, key: str, sign: float):
        self.trial, self.key, self.sign = trial, key, sign
        self.steps = 0
        self.pruned = False

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        self.steps = epoch
        value = logs.get(self.key)
        if self.trial is None or value is None or not math.isfinite(value):
            return
        self.trial.report(self.sign * value, epoch)
        if self.trial.should_prune():
            self.pruned = True
            trainer.stop = True


class RoundReporter:
    """The LightGBM callback: reports the validation score after every boosting round."""

    order = 40  # after LightGBM's own early stopping

    def __init__(self, trial: optuna.Trial | None, greater: bool):
        self.trial, self.greater = trial, greater
        self.steps = 0
        self.pruned = False

    def __call__(self, env: Any) -> None:
        self.steps = env.iteration + 1
        if self.trial is None or not env.evaluation_result_list:
            return
        _, _, value, higher_is_better = env.evaluation_result_list[0][:4]
        self.trial.report(value if higher_is_better == self.greater else -value, env.iteration + 1)
        if self.trial.should_prune():
            self.pruned = True
            self.trial.set_user_attr("epochs", self.steps)
            raise optuna.TrialPruned(f"pruned at boosting round {env.iteration + 1}")


class Objective:
    """Callable by Optuna: sample a recipe, train it, return the objective value(s)."""

    def __init__(self, base: Recipe, dims: tuple[Dimension, ...], task: str, report: bool):
        self.base = base.model_dump(mode="json")
        self.dims = dims
        self.task = task
        self.tune = base.tune
        self.tuner = task_tuner(task)  # unsupervised, reinforcement and generation trials (tuning/tasks.py)
        self.metric, self.greater = (primary_metric(task, base.evaluate.metric) if self.tuner is None
                                     else tune_metric(self.tuner, base))
        self.report = report  # pruning needs one objective and a pruner
        self._data: dict[str, tuple[Dataset, list[dict]]] = {}

    @property
    def directions(self) -> list[str]:
        return ["maximize" if o == "metric" and self.greater else "minimize" for o in self.tune.objectives]

    def recipe(self, values: dict[str, Any]) -> Recipe:
        return validate_recipe(apply_values(self.base, values))

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        values = suggest(trial, self.dims)
        trial.set_user_attr("values", params_of(values))
        out, attrs = self.evaluate(values, trial)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return out[0] if len(out) == 1 else out

    def evaluate(self, values: dict[str, Any], trial: optuna.Trial | None = None) -> tuple[tuple[float, ...], dict]:
        """Train the recipe with ``values`` and score it: the objective values, and what was
        measured on the way.  With a ``trial``, report to it and stop when it is pruned."""
        recipe = self.recipe(values)
        if self.tuner is not None:
            return self.tuner.tune_trial(recipe, trial if self.report else None)
        dataset, parts = self._prepared(recipe.data, recipe.seed)
        trial = trial if self.report else None
        start = time.perf_counter()
        scores, steps = [], 0
        for fold, data in enumerate(parts, 1):
            folding = len(parts) > 1
            fitted, used = self._fit(recipe, dataset, data, None if folding else trial)
            steps += used
            scores.append(fitted.validation)
            if folding and trial is not None:
                trial.report(float(np.mean([s[self.metric] for s in scores])), fold)
                if trial.should_prune():
                    trial.set_user_attr("epochs", steps)
                    raise optuna.TrialPruned(f"pruned after fold {fold}")
        validation = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
        attrs = {"model": fitted.type, "validation": validation, "fit_seconds": round(time.perf_counter() - start, 3),
                 "epochs": steps, "refit": _refit_values(recipe, fitted.estimator),
                 "worker": f"{socket.gethostname()}:{os.getpid()}"}
        objectives = {"metric": validation[self.metric]}
        if "latency" in self.tune.objectives:
            objectives["latency"] = _latency_ms(fitted.estimator, parts[-1]["validation"][0])
        if "size" in self.tune.objectives:
            objectives["size"] = len(pickle.dumps(fitted.estimator)) / 1024
        return tuple(float(objectives[o]) for o in self.tune.objectives), attrs

    def _fit(self, recipe: Recipe, dataset: Dataset, data: dict, trial: optuna.Trial | None) -> tuple[Candidate, int]:
        model = recipe.model
        estimator = make_model(model.type, self.task, model.params, recipe.seed, recipe.train,
                               neural_options(recipe))
        reporter: Any = None
        if is_neural(estimator):
            logged = self.metric == "accuracy" and self.task == "classification"
            key = "val_accuracy" if logged else "val_loss"
            reporter = EpochReporter(trial, key, 1.0 if logged else (-1.0 if self.greater else 1.0))
        elif is_lightgbm(estimator):
            reporter = RoundReporter(trial, self.greater)
        weights = None
        if recipe.data.balance != "none":  # as `honing train` balances the training rows (validation never)
            data, weights = balance_training(data, recipe.data.balance, self.task, recipe.seed)
        X_train, y_train = data["train"]
        X_val, y_val = data["validation"]
        fitted = fit_candidate(model.type, estimator, X_train, y_train, X_val, y_val, self.task,
                               dataset.n_classes, callbacks=[reporter] if reporter else None, sample_weight=weights)
        steps = reporter.steps if reporter else 0
        if reporter is not None and reporter.pruned and trial is not None:
            trial.set_user_attr("epochs", steps)
            raise optuna.TrialPruned(f"pruned at epoch {steps}")
        if not fitted.validation or not math.isfinite(fitted.validation.get(self.metric, math.nan)):
            raise ValueError(f"the validation {self.metric} is not a number (the model diverged?)")
        return fitted, steps

    def prime(self, cfg: DataConfig, seed: int, dataset: Dataset) -> None:
        """Use ``dataset`` (already loaded from ``cfg``) instead of reading it again."""
        self._prepared(cfg, seed, dataset)

    def _prepared(self, cfg: DataConfig, seed: int, dataset: Dataset | None = None) -> tuple[Dataset, list[dict]]:
        """The dataset and its model inputs — one split, or the cross-validation folds — cached by
        data section."""
        key = cfg.model_dump_json()
        if key not in self._data:
            dataset = dataset or load_dataset(cfg, seed)
            if not len(dataset.splits["validation"]) and not self.tune.cv:
                raise RecipeError("tune: trials are scored on the validation split, which is empty",
                                  "set data.split.validation > 0, or tune.cv: 5")
            datasets = dataset.folds(self.tune.cv, cfg.split, seed) if self.tune.cv else [dataset]
            self._data[key] = (dataset, [d.prepared(cfg)[1] for d in datasets])
        return self._data[key]


def _refit_values(recipe: Recipe, estimator: Any) -> dict[str, Any]:
    """What the refit on train + validation fixes, having no validation split to stop on: a neural
    model's best epoch, a LightGBM model's best boosting round."""
    history = getattr(estimator, "history_", None)
    if history:
        stopping = recipe.train.early_stopping
        if stopping is None:
            return {"train.epochs": len(history)}
        values = [row.get(stopping.monitor) for row in history]
        mode = monitor_mode(stopping.monitor, stopping.mode)
        finite = [(v if mode == "min" else -v, i) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
        best = min(finite)[1] + 1 if finite else len(history)
        return {"train.epochs": best, "train.early_stopping": None}
    rounds = getattr(estimator, "best_iteration_", None)
    if is_lightgbm(estimator) and rounds:
        return {"model.params.n_estimators": int(rounds)}
    return {}


def _latency_ms(estimator: Any, X: np.ndarray) -> float:
    """Milliseconds to predict 1000 rows (the validation rows, repeated to fill them), best of 3."""
    if not len(X):
        return math.nan
    rows = np.resize(X, (LATENCY_ROWS, *X.shape[1:]))
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        estimator.predict(rows)
        best = min(best, time.perf_counter() - start)
    return best * 1000

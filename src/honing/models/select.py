"""Fit one model or a portfolio (``model.type: auto``) and keep the best on the validation split."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import has_fit_parameter

from honing.errors import ModelError
from honing.evaluation.metrics import compute_metrics, primary_metric
from honing.evaluation.scoring import predict_scores
from honing.models.classic import make_baseline, make_model, resolve_candidates
from honing.progress import SILENT, Progress
from honing.recipe import ModelConfig, TrainConfig

#: Boosting rounds without improvement on the validation split before LightGBM stops.
LIGHTGBM_PATIENCE = 50


@dataclass
class Candidate:
    """A fitted model and how it scored on the validation split."""

    type: str
    estimator: Any
    fit_seconds: float
    validation: dict[str, float] = field(default_factory=dict)

    def row(self, metric: str) -> dict[str, Any]:
        return {"model": self.type, metric: self.validation.get(metric, float("nan")),
                "fit_seconds": round(self.fit_seconds, 3)}


@dataclass
class Selection:
    """The leaderboard (best first), the chosen model, and the dummy baseline."""

    metric: str
    greater_is_better: bool
    leaderboard: list[Candidate]
    baseline: Candidate

    @property
    def best(self) -> Candidate:
        return self.leaderboard[0]

    def table(self) -> list[dict[str, Any]]:
        return [c.row(self.metric) for c in self.leaderboard] + [self.baseline.row(self.metric)]


def select_model(cfg: ModelConfig, task: str, seed: int, data: dict[str, tuple[np.ndarray, np.ndarray]],
                 n_classes: int | None, metric: str = "auto", progress: Progress = SILENT,
                 train: TrainConfig | None = None, checkpoints: Path | None = None,
                 sample_weight: np.ndarray | None = None, options: dict | None = None,
                 baseline_train: tuple[np.ndarray, np.ndarray] | None = None) -> Selection:
    """Fit ``cfg.type`` (or every candidate for ``auto``) on train; rank them on validation.

    Neural models (configured by ``train``) watch the validation split for early stopping, and with
    ``checkpoints`` (a directory) save a checkpoint there every epoch and resume from it.
    ``sample_weight`` (one per training row, e.g. ``data.balance: class_weight``) goes to every fit;
    ``options`` to every neural model (:func:`honing.models.classic.neural_options`).  The dummy
    baseline learns from ``baseline_train`` when given: the training split before ``data.balance``
    resampled it (on balanced rows "the most frequent class" would be any)."""
    metric, greater = primary_metric(task, metric)
    types = resolve_candidates(cfg.candidates, task) if cfg.type == "auto" else [cfg.type]
    estimators = [(t, make_model(t, task, cfg.params, seed, train, options)) for t in types]
    if checkpoints is not None:
        for name, est in estimators:
            if is_neural(est):
                est.set_params(checkpoint=str(checkpoints / f"{name}.pt"))
    X_train, y_train = data["train"]
    X_val, y_val = data.get("validation", (X_train[:0], y_train[:0]))
    if cfg.type == "auto" and not len(y_val):
        raise ModelError("model.type: auto picks the best model on the validation split, which is empty",
                         "set data.split.validation > 0, or choose one model.type")
    fitted = []
    for name, est in estimators:  # neural models show their own live bar of epochs
        with contextlib.nullcontext() if is_neural(est) else progress.step(f"fitting {name}"):
            fitted.append(fit_candidate(name, est, X_train, y_train, X_val, y_val, task, n_classes, progress,
                                        sample_weight=sample_weight))
    baseline = fit_candidate("baseline", make_baseline(task, seed), *(baseline_train or (X_train, y_train)), X_val, y_val,
                             task, n_classes, SILENT)
    sign = -1.0 if greater else 1.0
    fitted.sort(key=lambda c: sign * _finite(c.validation.get(metric), greater))
    return Selection(metric, greater, fitted, baseline)


def fit_candidate(name: str, est: Any, X_train, y_train, X_val, y_val, task: str, n_classes,
                  progress: Progress = SILENT, callbacks: list | None = None,
                  sample_weight: np.ndarray | None = None) -> Candidate:
    """Fit one estimator on train (neural models and LightGBM stop early on the validation split)
    and score it on validation.  ``callbacks`` go to the training loop of a neural model, or to
    LightGBM's boosting rounds; other models have no loop to call back from."""
    start = time.perf_counter()
    weights = {} if sample_weight is None else {"sample_weight": sample_weight}
    if weights and is_neural(est) and "class_weight" in est.get_params() and task == "classification":
        est.set_params(class_weight="balanced")  # data.balance: class_weight, as a weighted cross-entropy
        weights = {}
    if weights and not has_fit_parameter(est, "sample_weight"):
        raise ModelError(f"data.balance: class_weight weighs the training rows, which {name} cannot take",
                         "use data.balance: oversample (or undersample, smote) instead")
    if is_neural(est):  # live epochs, early stopping on the validation split
        est.fit(X_train, y_train, eval_set=(X_val, y_val) if len(y_val) else None, progress=progress,
                callbacks=callbacks)
    elif is_lightgbm(est) and len(y_val):  # boosting rounds stop early too
        import lightgbm

        est.fit(X_train, y_train, eval_X=(X_val,), eval_y=(y_val,), **weights,
                callbacks=[lightgbm.early_stopping(LIGHTGBM_PATIENCE, verbose=False), *(callbacks or [])])
    else:
        est.fit(X_train, y_train, **weights)
    seconds = time.perf_counter() - start
    scores = {}
    if len(y_val):
        y_pred, proba = predict_scores(est, X_val, task, n_classes)
        scores = compute_metrics(task, y_val, y_pred, proba, n_classes)
    return Candidate(name, est, seconds, scores)


def is_neural(estimator: Any) -> bool:
    """A honing neural estimator (trained by honing's loop, checkpointed, bundled as safetensors)."""
    return hasattr(estimator, "export_state")


def is_lightgbm(estimator: Any) -> bool:
    return type(estimator).__module__.startswith("lightgbm")


def _finite(value: float | None, greater: bool) -> float:
    if value is None or not np.isfinite(value):
        return -np.inf if greater else np.inf
    return value

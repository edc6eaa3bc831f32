"""Metrics of predictions, as plain floats, and the metric that picks among models.

Classification labels are integer-encoded 0..K-1 and probabilities are ``(n, K)``.  A metric that
is undefined on the given split (e.g. ROC AUC when ``y_true`` holds a single class) is ``nan``
instead of an error, so a small split never crashes a run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from honing.errors import ModelError, did_you_mean

_LABEL_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
)
_PROBA_METRICS = ("roc_auc", "pr_auc", "log_loss")

#: The metric names each task produces (classification: the probability ones need ``proba``).
METRIC_NAMES: dict[str, tuple[str, ...]] = {
    "classification": _LABEL_METRICS + _PROBA_METRICS,
    "regression": ("mse", "rmse", "mae", "r2", "mape"),
}

#: Metrics where smaller is better (errors and losses).
LOWER_IS_BETTER = frozenset({"mse", "rmse", "mae", "mape", "log_loss"})

_AUTO = {"classification": "accuracy", "regression": "r2"}

#: What a metric needs to be defined; without it the metric is ``nan`` (shown with this reason).
NEEDS = {
    "r2": "at least 2 rows",
    "roc_auc": "rows of every class",
    "pr_auc": "rows of every class",
    "silhouette": "at least 2 clusters and more rows than clusters",
    "davies_bouldin": "at least 2 clusters and more rows than clusters",
    "calinski_harabasz": "at least 2 clusters and more rows than clusters",
}


def _safe(fn: Callable[[], Any]) -> float:
    """``float(fn())``, or ``nan`` when the metric is undefined (raises or warns it is)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(fn())
        except (ValueError, ZeroDivisionError):
            return math.nan


def classification_metrics(
    y_true: Any, y_pred: Any, proba: Any = None, n_classes: int | None = None
) -> dict[str, float]:
    """Label metrics of ``y_pred`` against ``y_true`` (labels 0..K-1); with ``proba`` ``(n, K)``
    also roc_auc, pr_auc (average precision) and log_loss (one-vs-rest macro when K > 2)."""
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    out = {
        "accuracy": _safe(lambda: skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": _safe(lambda: skm.balanced_accuracy_score(y_true, y_pred)),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0
        )
        out[f"precision_{average}"] = float(p)
        out[f"recall_{average}"] = float(r)
        out[f"f1_{average}"] = float(f)
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        k = n_classes if n_classes is not None else proba.shape[1]
        out.update(_probability_metrics(y_true, proba, k))
    return out


def _probability_metrics(y_true: np.ndarray, proba: np.ndarray, k: int) -> dict[str, float]:
    labels = list(range(k))
    if k == 2:
        roc = _safe(lambda: skm.roc_auc_score(y_true, proba[:, 1]))
        positives = bool(np.any(y_true == 1))
        pr = _safe(lambda: skm.average_precision_score(y_true, proba[:, 1])) if positives else math.nan
    else:
        roc = _safe(
            lambda: skm.roc_auc_score(
                y_true, proba, multi_class="ovr", average="macro", labels=labels
            )
        )
        pr = _multiclass_average_precision(y_true, proba, labels)
    return {
        "roc_auc": roc,
        "pr_auc": pr,
        "log_loss": _safe(lambda: skm.log_loss(y_true, proba, labels=labels)),
    }


def _multiclass_average_precision(y_true: np.ndarray, proba: np.ndarray, labels: list[int]) -> float:
    """Macro average of one-vs-rest average precision; ``nan`` if a class has no true row."""
    onehot = label_binarize(y_true, classes=labels)
    if onehot.shape != proba.shape or not onehot.any(axis=0).all():
        return math.nan
    return _safe(lambda: skm.average_precision_score(onehot, proba, average="macro"))


def confusion(y_true: Any, y_pred: Any, n_classes: int) -> list[list[int]]:
    """The K x K confusion matrix (rows: true class, columns: predicted), as nested int lists."""
    matrix = skm.confusion_matrix(
        np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int), labels=list(range(n_classes))
    )
    return [[int(v) for v in row] for row in matrix]


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """mse, rmse, mae, r2 and mape of ``y_pred`` against ``y_true``."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    mse = _safe(lambda: skm.mean_squared_error(y_true, y_pred))
    return {
        "mse": mse,
        "rmse": math.sqrt(mse) if not math.isnan(mse) else math.nan,
        "mae": _safe(lambda: skm.mean_absolute_error(y_true, y_pred)),
        "r2": _safe(lambda: skm.r2_score(y_true, y_pred)),
        "mape": _safe(lambda: skm.mean_absolute_percentage_error(y_true, y_pred)),
    }


def compute_metrics(
    task: str, y_true: Any, y_pred: Any, proba: Any = None, n_classes: int | None = None
) -> dict[str, float]:
    """The metrics of ``task`` ("classification" or "regression") for these predictions."""
    if task == "classification":
        return classification_metrics(y_true, y_pred, proba=proba, n_classes=n_classes)
    if task == "regression":
        return regression_metrics(y_true, y_pred)
    raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")


def primary_metric(task: str, name: str = "auto") -> tuple[str, bool]:
    """The metric that picks among models, and whether greater is better.

    ``auto`` is accuracy (classification) or r2 (regression); another ``name`` must be one the
    task produces, else a :class:`ModelError` naming ``evaluate.metric``.
    """
    if task not in METRIC_NAMES:
        raise ValueError(f"task must be one of {tuple(METRIC_NAMES)}, got {task!r}")
    if name == "auto":
        name = _AUTO[task]
    if name not in METRIC_NAMES[task]:
        other = next((t for t, names in METRIC_NAMES.items() if name in names), None)
        hint = (
            f"'{name}' is a {other} metric; {task} has: {', '.join(METRIC_NAMES[task])}"
            if other
            else did_you_mean(name, [*METRIC_NAMES[task], "auto"])
        )
        raise ModelError(f"evaluate.metric: unknown metric '{name}' for {task}", hint)
    return name, name not in LOWER_IS_BETTER

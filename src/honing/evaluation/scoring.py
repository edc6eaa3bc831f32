"""Score a fitted estimator on encoded data splits (metrics on validation, test, …)."""

from __future__ import annotations

from typing import Any

import numpy as np

from honing.evaluation.metrics import compute_metrics, confusion


def predict_scores(estimator: Any, X: np.ndarray, task: str,
                   n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and, for classifiers, probabilities with one column per class 0..K-1.

    A class absent from the training split gets a column of zeros, so columns always line up
    with the dataset's classes.
    """
    if task != "classification":
        return np.asarray(estimator.predict(X), dtype=float), None
    proba = np.asarray(estimator.predict_proba(X), dtype=float)
    seen = getattr(estimator, "classes_", None)
    if n_classes is not None and seen is not None and len(seen) != n_classes:
        full = np.zeros((len(proba), n_classes))
        full[:, np.asarray(seen, dtype=int)] = proba
        proba = full
    return proba.argmax(axis=1), proba


def score_splits(estimator: Any, data: dict[str, tuple[np.ndarray, np.ndarray]], task: str,
                 n_classes: int | None = None) -> dict[str, dict[str, Any]]:
    """Metrics per non-empty split; classifiers also get their confusion matrix."""
    out: dict[str, dict[str, Any]] = {}
    for split, (X, y) in data.items():
        if not len(y):
            continue
        y_pred, proba = predict_scores(estimator, X, task, n_classes)
        metrics: dict[str, Any] = compute_metrics(task, y, y_pred, proba, n_classes)
        if task == "classification":
            metrics["confusion_matrix"] = confusion(y, y_pred, n_classes)
        out[split] = metrics
    return out

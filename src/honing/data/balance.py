"""Class balancing of a training split (``data.balance``); classification only.

* ``none``: nothing is changed.
* ``class_weight``: rows are weighted, not resampled.  :func:`class_weights` gives the "balanced"
  weight ``n / (k * count_c)`` of every class (as :func:`sklearn.utils.class_weight.compute_class_weight`),
  :func:`sample_weights` the weight of every row; :func:`resample` leaves the data unchanged.
* ``oversample``: random copies of minority rows until every class has the majority's count
  (:class:`imblearn.over_sampling.RandomOverSampler`).
* ``undersample``: random majority rows are left out until every class has the minority's count
  (:class:`imblearn.under_sampling.RandomUnderSampler`).
* ``smote``: synthetic minority rows on the segments between a row and one of its nearest
  neighbours of the same class (:class:`imblearn.over_sampling.SMOTE`).  ``k_neighbors`` is 5, or
  fewer when the smallest class has 5 rows or fewer; a class with a single row cannot be used.

Resampling works on dense arrays and SciPy sparse matrices and is seeded.  Apply it to the training
split only: validation and test rows must keep the real class mix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from honing.errors import DataError, RecipeError, did_you_mean

METHODS = ("none", "class_weight", "oversample", "undersample", "smote")
SMOTE_NEIGHBOURS = 5

__all__ = ["METHODS", "class_weights", "resample", "sample_weights"]


def class_weights(y: np.ndarray, task: str | None = None) -> dict[Any, float]:
    """The "balanced" weight of every class, ``n / (k * count_c)``, keyed by class label."""
    labels = _classification_labels(y, task)
    classes, counts = np.unique(labels, return_counts=True)
    weights = len(labels) / (len(classes) * counts.astype(float))
    return {_scalar(c): float(w) for c, w in zip(classes, weights)}


def sample_weights(y: np.ndarray, task: str | None = None) -> np.ndarray:
    """Each row's class weight from :func:`class_weights` (they average to 1)."""
    labels = _classification_labels(y, task)
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    per_class = len(labels) / (len(classes) * counts.astype(float))
    return per_class[codes.ravel()]


def resample(X: Any, y: np.ndarray, method: str, seed: int = 0, task: str | None = None) -> tuple[Any, np.ndarray]:
    """``(X, y)`` balanced by ``method`` (see the module doc); ``none`` and ``class_weight`` return them unchanged.

    ``task`` (``"classification"`` / ``"regression"``), when given, decides whether ``y`` holds
    classes; otherwise a float ``y`` with a non-integer value is taken as a regression target.
    """
    if method not in METHODS:
        raise RecipeError(f"data.balance: unknown method '{method}'", did_you_mean(method, METHODS))
    labels = _classification_labels(y, task)
    if method in ("none", "class_weight"):
        return X, y
    if len(labels) != X.shape[0]:
        raise DataError(f"data.balance: {X.shape[0]} rows of features but {len(labels)} labels",
                        "pass the features and the target of the same rows")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise DataError(f"data.balance: the training split holds a single class ({_scalar(classes[0])!r})",
                        "balancing needs at least two classes; set data.balance: none")
    sampler = _sampler(method, counts, classes, seed)
    X_out, y_out = sampler.fit_resample(X, labels)
    return X_out, np.asarray(y_out)


def _sampler(method: str, counts: np.ndarray, classes: np.ndarray, seed: int) -> Any:
    """The imbalanced-learn sampler for ``method``."""
    if method == "oversample":
        from imblearn.over_sampling import RandomOverSampler

        return RandomOverSampler(random_state=seed)
    if method == "undersample":
        from imblearn.under_sampling import RandomUnderSampler

        return RandomUnderSampler(random_state=seed)
    from imblearn.over_sampling import SMOTE

    smallest = int(counts.min())
    if smallest < 2:
        rare = _scalar(classes[int(np.argmin(counts))])
        raise DataError(
            f"data.balance: smote needs at least 2 rows of every class; class {rare!r} has 1 in the training split",
            "use data.balance: oversample or class_weight, or merge or drop the rare class",
        )
    return SMOTE(k_neighbors=min(SMOTE_NEIGHBOURS, smallest - 1), random_state=seed)


def check_task(task: str) -> None:
    """RecipeError when ``data.balance`` is asked of a regression target."""
    if task == "regression":
        raise RecipeError(
            "data.balance: class balancing is for classification, and the target is a regression target",
            "set data.balance: none (or data.task: classification if the target holds classes)",
        )


def _classification_labels(y: Any, task: str | None) -> np.ndarray:
    """``y`` as a 1-d array; RecipeError when it is a regression target."""
    labels = np.asarray(y)
    if labels.ndim != 1:
        labels = labels.ravel()
    regression = task == "regression" if task is not None else _looks_continuous(labels)
    check_task("regression" if regression else "classification")
    if len(labels) == 0:
        raise DataError("data.balance: no rows to balance", "the training split is empty")
    return labels


def _looks_continuous(labels: np.ndarray) -> bool:
    """A float target with a non-integer (or missing) value."""
    if not np.issubdtype(labels.dtype, np.floating):
        return False
    return bool(not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)))


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python scalar (``np.int64(1)`` → ``1``)."""
    return value.item() if hasattr(value, "item") else value


def balance_training(data: dict, method: str, task: str, seed: int = 0) -> tuple[dict, np.ndarray | None]:
    """``data.balance`` applied to the training split of encoded ``data`` (validation and test are
    never touched): resampled rows, or (``class_weight``) one sample weight per training row."""
    if method == "none":
        return data, None
    X, y = data["train"]
    if method == "class_weight":
        return data, sample_weights(y, task=task)
    X, y = resample(X, y, method, seed=seed, task=task)
    return {**data, "train": (X, y)}, None

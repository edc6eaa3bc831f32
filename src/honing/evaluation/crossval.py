"""Repeated K-fold cross-validation with preprocessing refitted inside every fold, fold-score
summaries with t intervals, and paired comparison of two models scored on the same folds.

Every fold gets fresh objects from ``make()``: the preprocessor is fitted on that fold's
training rows only, so nothing learnt from the held-out rows (scaling statistics, selected
features, target encodings) leaks into its score.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from honing.errors import DataError, did_you_mean
from honing.evaluation.intervals import _json_float, corrected_resampled_ttest, t_interval, wilcoxon_test
from honing.evaluation.metrics import compute_metrics
from honing.evaluation.scoring import predict_scores
from honing.progress import SILENT, Progress
from honing.recipe.schema import METRIC_RANGES

_FOLDS_HINT = "lower evaluate.cv.folds (at least 2)"


def fold_indices(n_rows: int, y: np.ndarray | None, *, folds: int = 5, repeats: int = 1,
                 stratify: bool = False, groups: np.ndarray | None = None,
                 seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Repeated (stratified / grouped) K-fold ``(train, test)`` row-index pairs, repeat by repeat.

    RepeatedStratifiedKFold or RepeatedKFold (``random_state=seed``); with ``groups`` a shuffled
    GroupKFold per repeat with ``random_state=seed + repeat`` (StratifiedGroupKFold when also
    stratified), so no group is split between train and test.  Deterministic for a seed.  Too
    few rows, groups or class members for ``folds`` raise a DataError naming evaluate.cv.folds.
    """
    from sklearn.model_selection import (
        GroupKFold,
        RepeatedKFold,
        RepeatedStratifiedKFold,
        StratifiedGroupKFold,
    )

    labels, group_arr = _check_fold_inputs(n_rows, y, folds, repeats, stratify, groups)
    X = np.zeros((n_rows, 1))
    try:
        if group_arr is None:
            splitter = (RepeatedStratifiedKFold if stratify else RepeatedKFold)(
                n_splits=folds, n_repeats=repeats, random_state=seed)
            parts = list(splitter.split(X, labels))
        else:
            kind = StratifiedGroupKFold if stratify else GroupKFold
            parts = [part for r in range(repeats)
                     for part in kind(n_splits=folds, shuffle=True, random_state=seed + r).split(
                         X, labels, group_arr)]
    except ValueError as exc:
        raise DataError(f"evaluate.cv.folds: cannot make {folds} folds of {n_rows} rows: {exc}",
                        _FOLDS_HINT) from None
    return [(np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)) for tr, te in parts]


def time_folds(order: np.ndarray, folds: int, repeats: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds in time order (scikit-learn's TimeSeriesSplit over ``order``, the row
    positions sorted by time): each fold trains on the rows before the ones it tests, never after."""
    from sklearn.model_selection import TimeSeriesSplit

    _check_fold_inputs(len(order), None, folds, repeats, False, None)
    if repeats != 1:
        raise DataError(f"evaluate.cv.repeats: {repeats}, but folds in time order (data.split.time) are the same "
                        "in every repeat", "set evaluate.cv.repeats: 1")
    if len(order) <= folds:
        raise DataError(f"evaluate.cv.folds: cannot make {folds} folds in time order of {len(order)} rows",
                        f"{_FOLDS_HINT}, or add rows")
    return [(order[tr].astype(np.int64), order[te].astype(np.int64))
            for tr, te in TimeSeriesSplit(n_splits=folds).split(order)]


def _check_fold_inputs(n_rows: int, y: np.ndarray | None, folds: int, repeats: int, stratify: bool,
                       groups: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validated labels and groups, or a DataError saying why ``folds`` folds cannot be made."""
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise DataError(f"evaluate.cv.folds: must be an integer of at least 2, got {folds!r}",
                        "use e.g. evaluate.cv.folds: 5")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise DataError(f"evaluate.cv.repeats: must be an integer of at least 1, got {repeats!r}",
                        "use e.g. evaluate.cv.repeats: 1")
    if n_rows < folds:
        raise DataError(f"evaluate.cv.folds: cannot make {folds} folds of {n_rows} rows",
                        f"{_FOLDS_HINT}, or add rows")
    labels = None if y is None else np.asarray(y)
    if labels is not None and len(labels) != n_rows:
        raise ValueError(f"y has {len(labels)} values for {n_rows} rows")
    if stratify:
        if labels is None:
            raise ValueError("stratified folds need the labels y")
        classes, counts = np.unique(labels, return_counts=True)
        if counts.min() < folds:
            raise DataError(f"evaluate.cv.folds: class {classes[counts.argmin()]!r} has only "
                            f"{counts.min()} rows, too few for {folds} stratified folds",
                            f"{_FOLDS_HINT}, or do not stratify")
    group_arr = None if groups is None else np.asarray(groups)
    if group_arr is not None:
        if len(group_arr) != n_rows:
            raise ValueError(f"groups has {len(group_arr)} values for {n_rows} rows")
        n_groups = len(pd.unique(group_arr))
        if n_groups < folds:
            raise DataError(f"evaluate.cv.folds: cannot make {folds} folds of {n_groups} groups",
                            f"{_FOLDS_HINT} (at most the number of groups)")
    return labels, group_arr


@dataclass
class CVResult:
    """Per-fold metrics of one model (fold order) and the mean train / test rows per fold."""

    metrics: list[dict[str, float]]
    n_train: int
    n_test: int

    def scores(self, metric: str) -> list[float]:
        """The fold scores of ``metric`` (``nan`` where a fold could not compute it)."""
        names = set().union(*self.metrics) if self.metrics else set()
        if metric not in names:
            raise KeyError(f"no metric '{metric}' in the fold scores: {did_you_mean(metric, names)}")
        return [float(fold.get(metric, math.nan)) for fold in self.metrics]

    def summary(self, confidence: float = 0.95) -> dict[str, dict]:
        """metric -> ``{"mean", "std", "low", "high"}`` over folds (t interval of the mean, cut to the
        metric's range; ``nan`` fold scores left out; None where undefined)."""
        names = list(dict.fromkeys(name for fold in self.metrics for name in fold))
        out = {}
        for name in names:
            x = np.asarray(self.scores(name), dtype=float)
            x = x[~np.isnan(x)]
            low, high = t_interval(x, confidence)
            bottom, top = METRIC_RANGES.get(name, (-math.inf, math.inf))  # accuracy's interval stays in [0, 1]
            low, high = max(low, bottom), min(high, top)  # (nan stays nan)
            out[name] = {
                "mean": _json_float(x.mean()) if len(x) else None,
                "std": _json_float(x.std(ddof=1)) if len(x) > 1 else None,
                "low": _json_float(low),
                "high": _json_float(high),
            }
        return out

    @classmethod
    def from_dict(cls, saved: dict) -> CVResult:
        """The inverse of :meth:`to_dict` (None fold scores back to ``nan``)."""
        folds = [{k: math.nan if v is None else float(v) for k, v in fold.items()} for fold in saved["folds"]]
        return cls(folds, int(saved["n_train"]), int(saved["n_test"]))

    def to_dict(self, confidence: float = 0.95) -> dict:
        """JSON-ready: ``{"folds": [...], "summary": {...}, "n_train": …, "n_test": …}``."""
        return {
            "folds": [{name: _json_float(v) for name, v in fold.items()} for fold in self.metrics],
            "summary": self.summary(confidence),
            "n_train": int(self.n_train),
            "n_test": int(self.n_test),
        }


def _take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if isinstance(X, (pd.DataFrame, pd.Series)) else np.asarray(X)[rows]


def _fit_transform(preprocessor: Any, X_tr: Any, y_tr: np.ndarray, X_te: Any) -> tuple[Any, Any]:
    """Fit ``preprocessor`` on the training rows only and transform both row sets (None: as is)."""
    if preprocessor is None:
        return X_tr, X_te
    if hasattr(preprocessor, "fit_transform"):  # what a Pipeline calls on its training rows
        Z_tr = preprocessor.fit_transform(X_tr, y_tr)
    else:
        Z_tr = preprocessor.fit(X_tr, y_tr).transform(X_tr)
    return Z_tr, preprocessor.transform(X_te)


def _score_fold(X: Any, y: np.ndarray, make: Callable[[], tuple[Any, Any]], train: np.ndarray,
                test: np.ndarray, task: str, n_classes: int | None, balance: Callable | None = None) -> dict[str, float]:
    """Fresh objects from ``make()``, fitted on ``train`` rows (``balance``d) and scored on ``test`` rows."""
    preprocessor, estimator = make()
    Z_tr, Z_te = _fit_transform(preprocessor, _take(X, train), y[train], _take(X, test))
    Z_tr, y_tr, weights = balance(Z_tr, y[train]) if balance else (Z_tr, y[train], None)
    estimator.fit(Z_tr, y_tr, **({"sample_weight": weights} if weights is not None else {}))
    y_pred, proba = predict_scores(estimator, Z_te, task, n_classes)
    return compute_metrics(task, y[test], y_pred, proba, n_classes)


def cross_validate(X: pd.DataFrame, y: np.ndarray, make: Callable[[], tuple[Any, Any]],
                   folds: list[tuple], task: str, n_classes: int | None = None,
                   progress: Progress = SILENT, balance: Callable | None = None) -> CVResult:
    """Score the model ``make()`` builds on each ``(train, test)`` fold.

    For each fold ``preprocessor, estimator = make()`` must return fresh, unfitted objects (the
    preprocessor may be None); the preprocessor is fitted on the fold's training rows only
    (``fit_transform(X_tr, y_tr)``, as a scikit-learn Pipeline does, so supervised steps see the
    labels of those rows) and transforms the held-out rows; the estimator is fitted on the
    transformed training rows and its predictions (:func:`~honing.evaluation.scoring.predict_scores`)
    scored by :func:`~honing.evaluation.metrics.compute_metrics`.  Classification labels are
    codes 0..K-1; ``n_classes`` defaults to ``max(y) + 1`` so probability columns line up.
    ``balance(Z, y) -> (Z, y, sample_weight or None)`` rebalances each fold's transformed training
    rows (``data.balance``), never the held-out ones.
    """
    if not folds:
        raise ValueError("cross_validate needs at least one (train, test) fold")
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if task == "classification" and n_classes is None:
        n_classes = int(y.max()) + 1
    key = "accuracy" if task == "classification" else "r2"
    bar = progress.bar(len(folds), "cross-validation")
    results = []
    try:
        for i, (train, test) in enumerate(folds):
            train, test = np.asarray(train), np.asarray(test)
            results.append(_score_fold(X, y, make, train, test, task, n_classes, balance))
            bar.advance(1, status=f"fold {i + 1}/{len(folds)}: {key} {results[-1].get(key, math.nan):.4f}")
    finally:
        bar.close()
    n_train = round(float(np.mean([len(tr) for tr, _ in folds])))
    n_test = round(float(np.mean([len(te) for _, te in folds])))
    progress.note(f"{len(folds)}-fold cross-validation: mean {key} "
                  f"{np.nanmean([r.get(key, math.nan) for r in results]):.4f}")
    return CVResult(results, n_train, n_test)


def folds_id(folds: list[tuple[np.ndarray, np.ndarray]]) -> str:
    """A fingerprint of the folds' held-out rows: two runs with the same id were scored on the same folds."""
    import hashlib

    digest = hashlib.sha256()
    for _, held_out in folds:
        digest.update(np.asarray(held_out, dtype=np.int64).tobytes() + b"|")
    return digest.hexdigest()[:16]


def compare(a: CVResult, b: CVResult, metric: str, greater_is_better: bool = True) -> dict:
    """Paired comparison of two models scored on the same folds: the corrected resampled t-test
    and the Wilcoxon signed-rank test of their fold scores of ``metric``.

    Returns ``{"metric", "mean_a", "mean_b", "mean_difference", "t", "p_value",
    "wilcoxon_p_value", "better"}``; ``better`` is the model with the better mean ("a" or "b")
    when the t-test's p < 0.05, else "tie".  Different fold counts raise ValueError.
    """
    if len(a.metrics) != len(b.metrics):
        raise ValueError(f"compare needs the same folds: {len(a.metrics)} fold scores vs {len(b.metrics)}")
    sa, sb = a.scores(metric), b.scores(metric)
    ttest = corrected_resampled_ttest(sa, sb, a.n_train, a.n_test)
    wilcoxon = wilcoxon_test(sa, sb)
    mean_a, mean_b = _nanmean(sa), _nanmean(sb)
    better = "tie"
    p = ttest["p_value"]
    if p is not None and p < 0.05 and mean_a is not None and mean_b is not None and mean_a != mean_b:
        better = "a" if (mean_a > mean_b) == greater_is_better else "b"
    return {
        "metric": metric,
        "mean_a": mean_a,
        "mean_b": mean_b,
        "mean_difference": ttest["mean_difference"],
        "t": ttest["t"],
        "p_value": p,
        "wilcoxon_p_value": wilcoxon["p_value"],
        "better": better,
    }


def _nanmean(values: list[float]) -> float | None:
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    return _json_float(x.mean()) if len(x) else None

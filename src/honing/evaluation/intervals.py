"""Uncertainty of scores: t intervals of fold means, bootstrap intervals of test metrics, and
paired tests between two models scored on the same folds.

Outputs meant for JSON (bootstrap intervals, test results) are plain floats with ``None`` where a
value is undefined; :func:`t_interval` is the numeric building block and keeps ``nan``.

The bootstrap draws rows with replacement (per class for classification, so each resample keeps
every class of ``y_true``).  A resample is a vector of row counts, so the metrics of all resamples
come from a few matrix products and cumulative sums instead of one scikit-learn call per resample;
any metric :func:`~honing.evaluation.metrics.compute_metrics` gives that has no such fast path (or
an input outside it, e.g. probabilities that do not sum to one) is computed by calling
``compute_metrics`` on each resample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from honing.evaluation.metrics import compute_metrics

_EPS64 = float(np.finfo(np.float64).eps)


def _json_float(value: Any) -> float | None:
    """``float(value)``, or ``None`` when it is missing, nan or infinite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of fold scores (nan-safe; (nan, nan) with < 2 values).

    ``nan`` scores are dropped; when every score is equal the interval is that score.
    """
    _check_confidence(confidence)
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return math.nan, math.nan
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / math.sqrt(len(x))
    if sem == 0.0:
        return mean, mean
    low, high = stats.t.interval(confidence, len(x) - 1, loc=mean, scale=sem)
    return float(low), float(high)


# ---------------------------------------------------------------------------------------- bootstrap


def resample_indices(task: str, y_true: Any, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Row indices of each bootstrap resample, ``(resamples, n)``.

    Classification draws each class's rows from that class (stratified), regression draws from
    all rows.  The same ``seed`` gives the same draws.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples!r}")
    rng = np.random.default_rng(seed)
    y = np.asarray(y_true)
    n = len(y)
    if task != "classification":
        return rng.integers(0, n, size=(resamples, n))
    out = np.empty((resamples, n), dtype=np.int64)
    start = 0
    for cls in np.unique(y):
        rows = np.flatnonzero(y == cls)
        out[:, start:start + len(rows)] = rows[rng.integers(0, len(rows), size=(resamples, len(rows)))]
        start += len(rows)
    return out


def _counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each row appears in each resample, ``(resamples, n)`` floats."""
    b = indices.shape[0]
    flat = (indices + n * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(float)


def _safe_divide(num: np.ndarray, den: np.ndarray, fill: float = 0.0) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, fill, dtype=float)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _label_metrics(w: np.ndarray, y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy and macro/weighted precision, recall, F1 of every resample,
    from its weighted confusion matrix (labels present in y_true or y_pred, zero_division=0)."""
    codes = y * k + pred
    onehot = np.zeros((len(y), k * k))
    onehot[np.arange(len(y)), codes] = 1.0
    cm = (w @ onehot).reshape(-1, k, k)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    true_sum, pred_sum = cm.sum(axis=2), cm.sum(axis=1)
    total = true_sum.sum(axis=1)
    present = (true_sum + pred_sum) > 0
    in_true = true_sum > 0
    recall = _safe_divide(tp, true_sum)
    out = {
        "accuracy": tp.sum(axis=1) / total,
        "balanced_accuracy": (recall * in_true).sum(axis=1) / in_true.sum(axis=1),
    }
    per_class = {
        "precision": _safe_divide(tp, pred_sum),
        "recall": recall,
        "f1": _safe_divide(2 * tp, true_sum + pred_sum),
    }
    for name, values in per_class.items():
        out[f"{name}_macro"] = (values * present).sum(axis=1) / present.sum(axis=1)
        out[f"{name}_weighted"] = (values * true_sum).sum(axis=1) / total
    return out


def _ranked_counts(score: np.ndarray, positive: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted positives and negatives per distinct score (ascending), ``(resamples, groups)``."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    wo = w[:, order]
    pos = np.add.reduceat(wo * positive[order], starts, axis=1)
    return pos, np.add.reduceat(wo, starts, axis=1) - pos


def _auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC AUC (ties count one half) per resample; nan without both classes."""
    below = np.cumsum(neg, axis=1) - neg
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    return _safe_divide(num, pos.sum(axis=1) * neg.sum(axis=1), fill=math.nan)


def _average_precision(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Average precision (sum of recall steps times precision, scores descending); nan without
    positives."""
    pos, neg = pos[:, ::-1], neg[:, ::-1]
    tp = np.cumsum(pos, axis=1)
    precision = _safe_divide(tp, tp + np.cumsum(neg, axis=1))
    return _safe_divide((pos * precision).sum(axis=1), pos.sum(axis=1), fill=math.nan)


def _proba_metrics(w: np.ndarray, y: np.ndarray, proba: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """roc_auc, pr_auc and log_loss of every resample (binary, or one-vs-rest macro for K > 2)."""
    n = len(y)
    if k == 2:
        pos, neg = _ranked_counts(proba[:, 1], (y == 1).astype(float), w)
        roc, pr = _auc(pos, neg), _average_precision(pos, neg)
        if not np.any(y == 1):
            pr = np.full(len(w), math.nan)
    else:
        rocs, prs = [], []
        for cls in range(k):
            pos, neg = _ranked_counts(proba[:, cls], (y == cls).astype(float), w)
            rocs.append(_auc(pos, neg))
            prs.append(_average_precision(pos, neg))
        roc, pr = np.mean(rocs, axis=0), np.mean(prs, axis=0)
    row_loss = -np.log(np.clip(proba[np.arange(n), y], _EPS64, 1 - _EPS64))
    return {"roc_auc": roc, "pr_auc": pr, "log_loss": w @ row_loss / n}


def _fast_proba_ok(y: np.ndarray, proba: np.ndarray, k: int) -> bool:
    """Whether the vectorised probability metrics reproduce compute_metrics on this input."""
    return (proba.ndim == 2 and proba.shape == (len(y), k) and k >= 2 and bool(np.all(np.isfinite(proba)))
            and proba.min() >= 0 and proba.max() <= 1 and bool(np.allclose(proba.sum(axis=1), 1.0))
            and y.min() >= 0 and y.max() < k)


def _classification_fast(w: np.ndarray, y_true: Any, y_pred: Any, proba: Any,
                         n_classes: int | None) -> dict[str, np.ndarray]:
    y = np.asarray(y_true).astype(int)
    pred = np.asarray(y_pred).astype(int)
    if y.min() < 0 or pred.min() < 0:
        return {}
    out = _label_metrics(w, y, pred, int(max(y.max(), pred.max())) + 1)
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        k = n_classes if n_classes is not None else proba.shape[1]
        if _fast_proba_ok(y, proba, k):
            out.update(_proba_metrics(w, y, proba, k))
    return out


def _regression_fast(w: np.ndarray, y_true: Any, y_pred: Any) -> dict[str, np.ndarray]:
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    n = len(y)
    if n < 2:
        return {}
    err = p - y
    mse = w @ err**2 / n
    centre = float(y.mean())
    mean = w @ y / n
    sst = w @ (y - centre) ** 2 - n * (mean - centre) ** 2
    sse = mse * n
    r2 = np.where(sst > 0, 1 - _safe_divide(sse, sst), np.where(sse == 0, 1.0, 0.0))
    return {
        "mse": mse,
        "rmse": np.sqrt(mse),
        "mae": w @ np.abs(err) / n,
        "r2": r2,
        "mape": w @ (np.abs(err) / np.maximum(np.abs(y), _EPS64)) / n,
    }


def bootstrap_distribution(task: str, y_true: Any, y_pred: Any, proba: Any = None,
                           n_classes: int | None = None, *, resamples: int = 1000,
                           seed: int = 0) -> dict[str, np.ndarray]:
    """Each metric of ``compute_metrics`` on every resample of :func:`resample_indices`
    (``resamples`` values per metric, in resample order)."""
    n = len(np.asarray(y_true))
    if n == 0:
        raise ValueError("the bootstrap needs at least one row")
    names = list(compute_metrics(task, y_true, y_pred, proba, n_classes))
    indices = resample_indices(task, y_true, resamples, seed)
    w = _counts(indices, n)
    fast = (_classification_fast(w, y_true, y_pred, proba, n_classes) if task == "classification"
            else _regression_fast(w, y_true, y_pred))
    out = {name: np.asarray(fast[name], dtype=float) for name in names if name in fast}
    slow = [name for name in names if name not in out]
    if slow:
        out.update(_loop_metrics(task, slow, indices, y_true, y_pred, proba, n_classes))
    return {name: out[name] for name in names}


def _loop_metrics(task: str, names: list[str], indices: np.ndarray, y_true: Any, y_pred: Any,
                  proba: Any, n_classes: int | None) -> dict[str, np.ndarray]:
    """The plain path: ``compute_metrics`` on each resample, for metrics without a fast path."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    proba = None if proba is None else np.asarray(proba)
    out = {name: np.empty(len(indices)) for name in names}
    for b, rows in enumerate(indices):
        scores = compute_metrics(task, y_true[rows], y_pred[rows],
                                 None if proba is None else proba[rows], n_classes)
        for name in names:
            out[name][b] = scores[name]
    return out


def bootstrap_intervals(task: str, y_true: Any, y_pred: Any, proba: Any = None,
                        n_classes: int | None = None, *, resamples: int = 1000,
                        confidence: float = 0.95, seed: int = 0) -> dict[str, tuple[float | None, float | None]]:
    """Percentile bootstrap CI of every metric compute_metrics gives, resampling rows with
    replacement (stratified by class for classification so every resample has every class of
    ``y_true``).  Resamples where a metric is undefined are left out of its percentiles; a metric
    undefined on every resample gets ``(None, None)``."""
    _check_confidence(confidence)
    values = bootstrap_distribution(task, y_true, y_pred, proba, n_classes, resamples=resamples, seed=seed)
    tail = 100 * (1 - confidence) / 2
    out: dict[str, tuple[float | None, float | None]] = {}
    for name, v in values.items():
        v = v[~np.isnan(v)]
        if not len(v):
            out[name] = (None, None)
            continue
        low, high = np.percentile(v, [tail, 100 - tail])
        out[name] = (_json_float(low), _json_float(high))
    return out


# ------------------------------------------------------------------------------------- paired tests


def _paired(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Differences ``a - b`` of the pairs where both scores are defined."""
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"paired scores need equal lengths, got {len(a_arr)} and {len(b_arr)}")
    d = a_arr - b_arr
    return d[~np.isnan(d)]


def corrected_resampled_ttest(a: Sequence[float], b: Sequence[float], n_train: int, n_test: int) -> dict:
    """Nadeau & Bengio's corrected resampled t-test of paired per-fold scores.

    The variance of the J differences is inflated to ``var × (1/J + n_test/n_train)`` (training
    sets overlap, so fold scores are correlated) and ``t`` has J − 1 degrees of freedom.  Returns
    ``{"mean_difference", "t", "p_value"}`` (two-sided); identical scores give t = 0, p = 1, a
    constant non-zero difference p = 0 (t undefined: None); fewer than two pairs give None.
    """
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}")
    d = _paired(a, b)
    j = len(d)
    mean = float(d.mean()) if j else math.nan
    if j < 2:
        return {"mean_difference": _json_float(mean), "t": None, "p_value": None}
    var = float(d.var(ddof=1)) * (1 / j + n_test / n_train)
    if var == 0.0:
        t, p = (0.0, 1.0) if mean == 0.0 else (None, 0.0)
        return {"mean_difference": mean, "t": t, "p_value": p}
    t = mean / math.sqrt(var)
    return {"mean_difference": mean, "t": t, "p_value": float(2 * stats.t.sf(abs(t), j - 1))}


def wilcoxon_test(a: Sequence[float], b: Sequence[float]) -> dict:
    """Wilcoxon signed-rank test of paired scores (``scipy.stats.wilcoxon``, two-sided):
    ``{"statistic", "p_value"}``; p = 1 when every difference is 0, None without pairs."""
    d = _paired(a, b)
    if not len(d):
        return {"statistic": None, "p_value": None}
    if np.all(d == 0):
        return {"statistic": 0.0, "p_value": 1.0}
    result = stats.wilcoxon(d)
    return {"statistic": _json_float(result.statistic), "p_value": _json_float(result.pvalue)}

"""Error analysis: where a model goes wrong — which classes it confuses, which rows it gets most
wrong, which slices of the data it does worst on, and how its regression residuals are spread.

Labels are integer-encoded 0..K-1 (``classes`` holds the original labels); probabilities are
``(n, K)``.  Features are aligned with the predictions by position (their index labels are only
reported).  Every output is JSON-ready: plain ``int``/``float``/``str``/``bool``, ``None`` for a
missing or undefined value, so it can be written to ``metrics.json`` as is.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from honing.data.schema import infer_kind
from honing.evaluation.metrics import compute_metrics, confusion, primary_metric

_PROBA_CLIP = 1e-15
_MAX_POINTS = 2000
_NEEDS_PROBA = frozenset({"roc_auc", "pr_auc", "log_loss"})
MISSING = "missing"


def _plain(value: Any) -> Any:
    """A JSON-ready copy of one value: numpy scalars unwrapped, NaN/NA → None, timestamps → ISO."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (not isinstance(value, (str, bytes)) and pd.api.types.is_scalar(value)
                         and pd.isna(value)):
        return None
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    return str(value)


def confusion_analysis(y_true: Any, y_pred: Any, classes: list, top: int = 5) -> dict[str, Any]:
    """The confusion matrix, row-normalised, and the class pairs most often confused.

    Returns ``{"labels", "counts", "normalized", "most_confused"}``: ``counts`` is K×K (rows the
    true class, columns the predicted one); ``normalized`` divides each row by its total (the
    diagonal is each class's recall; a class with no rows gives a row of 0); ``most_confused``
    lists the ``top`` off-diagonal cells by count (ties: higher rate first, then matrix order),
    each ``{"true", "predicted", "count", "rate"}`` with ``rate`` the share of the true class.
    """
    labels = [str(c) for c in classes]
    counts = np.asarray(confusion(y_true, y_pred, len(labels)), dtype=int)
    totals = counts.sum(axis=1, keepdims=True)
    normalized = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    cells = [(int(counts[i, j]), float(normalized[i, j]), i, j)
             for i in range(len(labels)) for j in range(len(labels)) if i != j and counts[i, j] > 0]
    cells.sort(key=lambda c: (-c[0], -c[1], c[2], c[3]))
    return {
        "labels": labels,
        "counts": counts.tolist(),
        "normalized": [[float(v) for v in row] for row in normalized],
        "most_confused": [{"true": labels[i], "predicted": labels[j], "count": n, "rate": r}
                          for n, r, i, j in cells[:top]],
    }


def row_losses(y_true: Any, y_pred: Any, task: str, proba: Any = None) -> np.ndarray:
    """Each row's loss: classification −log p(true class) (p clipped at 1e-15), or the 0/1 loss
    without ``proba``; regression the squared error."""
    if task == "regression":
        return (np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float)) ** 2
    if task != "classification":
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    y = np.asarray(y_true).astype(int)
    if proba is None:
        return (y != np.asarray(y_pred).astype(int)).astype(float)
    p = np.asarray(proba, dtype=float)[np.arange(y.size), y]
    return -np.log(np.clip(p, _PROBA_CLIP, 1.0))


def worst_rows(features: pd.DataFrame, y_true: Any, y_pred: Any, task: str, classes: list | None = None,
               proba: Any = None, n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` rows with the highest loss (see :func:`row_losses`), worst first (ties keep row
    order).  Each is ``{"row", "loss", "true", "predicted", "features"}``: ``row`` the index label,
    ``true``/``predicted`` the original labels (``classes[code]``) and ``features`` the row's values."""
    losses = row_losses(y_true, y_pred, task, proba)
    if len(features) != losses.size:
        raise ValueError(f"features has {len(features)} rows but there are {losses.size} predictions")
    order = np.argsort(-losses, kind="stable")[:n]
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)

    def label(code: Any) -> Any:
        if task == "classification" and classes is not None:
            return _plain(classes[int(code)])
        return _plain(code)

    return [{
        "row": _plain(features.index[i]),
        "loss": float(losses[i]),
        "true": label(y_true[i]),
        "predicted": label(y_pred[i]),
        "features": {str(col): _plain(features.iat[i, j]) for j, col in enumerate(features.columns)},
    } for i in order]


def _fmt(x: float) -> str:
    """A bin edge rounded to 4 significant digits, written as a float (``20.0``, ``0.1235``)."""
    return repr(float(f"{x:.4g}"))


def _numeric_slices(s: pd.Series, bins: int) -> list[tuple[str, np.ndarray]]:
    """Quantile bins of a numeric column: edges from :func:`pandas.qcut` (duplicates dropped),
    bins left-closed ``[a, b)`` except the last, ``[a, b]``."""
    values = s.to_numpy(dtype=float, na_value=np.nan)
    present = ~np.isnan(values)
    if present.sum() == 0:
        return []
    _, edges = pd.qcut(values[present], bins, retbins=True, duplicates="drop")
    if len(edges) < 2:  # a single distinct value
        return [(f"[{_fmt(edges[0])}, {_fmt(edges[0])}]", present)]
    out = []
    for k in range(len(edges) - 1):
        low, high, last = edges[k], edges[k + 1], k == len(edges) - 2
        mask = present & (values >= low) & ((values <= high) if last else (values < high))
        out.append((f"[{_fmt(low)}, {_fmt(high)}{']' if last else ')'}", mask))
    return out


def _column_slices(s: pd.Series, name: str, bins: int, max_categories: int) -> list[tuple[str, np.ndarray]]:
    """``(label, mask)`` per slice of one column: numeric → quantile bins; categorical/boolean →
    its ``max_categories`` most frequent values; missing values → a slice of their own.  Text,
    identifier and datetime columns give no slice."""
    kind, _ = infer_kind(s, name)
    if kind == "numeric":
        slices = _numeric_slices(s, bins)
    elif kind in ("categorical", "boolean"):
        top = s.value_counts(dropna=True).index[:max_categories]
        slices = [(str(_plain(v)), s.eq(v).fillna(False).to_numpy(dtype=bool)) for v in top]
    else:
        return []
    missing = s.isna().to_numpy()
    if missing.any():
        slices.append((MISSING, missing))
    return slices


def _score(task: str, metric: str, y_true: np.ndarray, y_pred: np.ndarray, proba: Any,
           n_classes: int | None, mask: np.ndarray | None = None) -> float | None:
    """``metric`` on the rows in ``mask`` (all rows when ``None``); ``None`` when undefined."""
    if mask is not None:
        y_true, y_pred = y_true[mask], y_pred[mask]
        proba = None if proba is None else proba[mask]
    value = compute_metrics(task, y_true, y_pred, proba=proba, n_classes=n_classes).get(metric)
    return None if value is None or math.isnan(value) else float(value)


def slice_metrics(features: pd.DataFrame, y_true: Any, y_pred: Any, task: str, proba: Any = None,
                  n_classes: int | None = None, *, metric: str = "auto", bins: int = 4,
                  min_rows: int = 20, max_categories: int = 20, flag_gap: float = 0.1) -> list[dict[str, Any]]:
    """``metric`` on every slice of the data, and the slices where the model does markedly worse.

    Slices (see :func:`_column_slices`): each value of a categorical or boolean column (its
    ``max_categories`` most frequent), ``bins`` quantile bins of a numeric column (labels like
    ``"[20.0, 28.0)"``), and ``"missing"`` for a column's missing values.  Column kinds are
    inferred as :func:`honing.data.schema.infer_kind` does; text, identifier and datetime columns
    are skipped, and so is a slice holding every row (a constant column).
    ``metric`` "auto" is the task's primary metric (accuracy / r2); probability metrics need ``proba``.
    Each slice is ``{"column", "slice", "rows", metric, "gap", "flagged"}``: ``gap`` = how much worse
    the slice is than all rows (overall − slice when greater is better, slice − overall otherwise;
    ``None`` when undefined); ``flagged`` when ``rows >= min_rows`` and ``gap >= flag_gap``.
    Sorted worst first (largest gap; undefined gaps last).
    """
    metric, greater_is_better = primary_metric(task, metric)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(features) != len(y_true):
        raise ValueError(f"features has {len(features)} rows but there are {len(y_true)} predictions")
    # label metrics do not need the (slower) probability metrics computed on every slice
    proba = None if proba is None or metric not in _NEEDS_PROBA else np.asarray(proba, dtype=float)
    overall = _score(task, metric, y_true, y_pred, proba, n_classes)
    out = []
    for column in features.columns:
        for label, mask in _column_slices(features[column], str(column), bins, max_categories):
            rows = int(mask.sum())
            if rows in (0, len(y_true)):  # empty, or every row (a constant column): nothing to compare
                continue
            value = _score(task, metric, y_true, y_pred, proba, n_classes, mask)
            gap = None
            if value is not None and overall is not None:
                gap = float(overall - value) if greater_is_better else float(value - overall)
            out.append({"column": str(column), "slice": label, "rows": rows, metric: value, "gap": gap,
                        "flagged": bool(gap is not None and rows >= min_rows and gap >= flag_gap)})
    out.sort(key=lambda s: (s["gap"] is None, -(s["gap"] or 0.0)))
    return out


def residual_analysis(features: pd.DataFrame, y_true: Any, y_pred: Any, **slice_kwargs: Any) -> dict[str, Any]:
    """Regression residuals ``y_true − y_pred``: their summary, the mean absolute error per slice and
    points for a residual plot.

    Returns ``{"summary": {"mean", "std", "mae", "max_abs"}, "by_slice", "points"}``: ``std`` is the
    population standard deviation; ``by_slice`` is :func:`slice_metrics` with ``metric="mae"``
    (``slice_kwargs`` are passed on); ``points`` holds up to 2,000 ``[predicted, residual]`` pairs,
    a sample drawn with a fixed seed (in row order).
    """
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    residual = y_true - y_pred
    summary = {
        "mean": float(residual.mean()) if residual.size else None,
        "std": float(residual.std()) if residual.size else None,
        "mae": float(np.abs(residual).mean()) if residual.size else None,
        "max_abs": float(np.abs(residual).max()) if residual.size else None,
    }
    slice_kwargs.setdefault("metric", "mae")
    by_slice = slice_metrics(features, y_true, y_pred, "regression", **slice_kwargs)
    keep = np.arange(residual.size)
    if residual.size > _MAX_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(residual.size, _MAX_POINTS, replace=False))
    points = [[float(y_pred[i]), float(residual[i])] for i in keep]
    return {"summary": {k: _plain(v) for k, v in summary.items()}, "by_slice": by_slice, "points": points}

"""The decision threshold of a binary classifier: the precision/recall trade-off and how to pick it.

A row is predicted positive when its probability of class 1 is **at least** the threshold (the
convention of :func:`sklearn.metrics.precision_recall_curve` and :func:`sklearn.metrics.roc_curve`).

Undefined ratios follow scikit-learn's ``zero_division`` conventions, chosen once for every function
here: precision is ``1.0`` when nothing is predicted positive (the end point of
``precision_recall_curve``: no false alarms were raised); recall (TPR) is ``0.0`` when ``y_true``
has no positive, FPR ``0.0`` when it has no negative; F1 is ``2·tp / (2·tp + fp + fn)``, ``0.0``
when that is ``0 / 0``.  Every value is a plain ``float``, ready for ``metrics.json``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

METHODS = ("f1", "youden", "fixed")


def _binary_inputs(y_true: Any, p_positive: Any) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` as 0/1 ints and ``p_positive`` as floats, checked to be 1-D and aligned."""
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(p_positive, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values but p_positive has {p.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold binary labels 0 and 1")
    return y, p


def _counts(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, ...]:
    """True/false positives and negatives at every threshold (``p >= t`` is positive), by binary
    search in the sorted scores of each class (memory O(n), not O(n × thresholds))."""
    pos = np.sort(p[y == 1])
    neg = np.sort(p[y == 0])
    fn = np.searchsorted(pos, thresholds, side="left")  # positives scored below t
    tn = np.searchsorted(neg, thresholds, side="left")
    return pos.size - fn, neg.size - tn, fn, tn


def _ratio(num: np.ndarray, den: np.ndarray, undefined: float) -> np.ndarray:
    """``num / den`` elementwise, ``undefined`` where ``den`` is 0."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.full(num.shape, undefined), where=den > 0)


def _rates(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1, TPR and FPR at each threshold, with the module's zero-division rules."""
    tp, fp, fn, tn = _counts(y, p, thresholds)
    recall = _ratio(tp, tp + fn, 0.0)
    return {
        "precision": _ratio(tp, tp + fp, 1.0),
        "recall": recall,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, 0.0),
        "tpr": recall,
        "fpr": _ratio(fp, fp + tn, 0.0),
    }


def threshold_curve(y_true: Any, p_positive: Any, points: int = 101) -> dict[str, list[float]]:
    """Precision, recall and F1 at ``points`` evenly spaced thresholds from 0 to 1.

    Returns ``{"threshold", "precision", "recall", "f1"}``, each a list of ``points`` floats.
    """
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    y, p = _binary_inputs(y_true, p_positive)
    thresholds = np.linspace(0.0, 1.0, points)
    rates = _rates(y, p, thresholds)
    out = {"threshold": [float(t) for t in thresholds]}
    for name in ("precision", "recall", "f1"):
        out[name] = [float(v) for v in rates[name]]
    return out


def _f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score maximising F1 among the distinct scores (the lowest one on ties)."""
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    f1 = _ratio(2 * precision * recall, precision + recall, 0.0)
    return float(thresholds[int(np.argmax(f1))])


def _youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The score maximising Youden's J = TPR − FPR (the first, i.e. highest, one on ties)."""
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    return float(thresholds[int(np.argmax(tpr - fpr))])


def choose_threshold(y_true: Any, p_positive: Any, method: str = "f1", value: float = 0.5) -> dict[str, Any]:
    """Pick a decision threshold and report the rates it gives on ``(y_true, p_positive)``.

    ``method``: ``"f1"`` maximises F1 over the distinct scores (``precision_recall_curve``);
    ``"youden"`` maximises TPR − FPR (``roc_curve``); ``"fixed"`` takes ``value``.  The threshold
    is clipped into ``[0, 1]`` (``roc_curve``'s first threshold is ``inf``: predict nothing).
    Returns ``{"method", "threshold", "precision", "recall", "f1", "tpr", "fpr"}``.  Both ``f1``
    and ``youden`` need at least one positive and one negative in ``y_true``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    y, p = _binary_inputs(y_true, p_positive)
    if method == "fixed":
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"a fixed threshold must be in [0, 1], got {value}")
        threshold = float(value)
    else:
        if len(np.unique(y)) < 2:
            raise ValueError(f"method {method!r} needs both classes in y_true")
        threshold = _f1_threshold(y, p) if method == "f1" else _youden_threshold(y, p)
        threshold = float(np.clip(threshold, 0.0, 1.0))
    rates = _rates(y, p, np.array([threshold]))
    return {"method": method, "threshold": threshold, **{k: float(v[0]) for k, v in rates.items()}}


def apply_threshold(proba: np.ndarray, threshold: float) -> np.ndarray:
    """0/1 labels from binary probabilities ``(n, 2)``: 1 where ``proba[:, 1] >= threshold``."""
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != 2:
        raise ValueError(f"apply_threshold needs binary probabilities of shape (n, 2), got {proba.shape}")
    return (proba[:, 1] >= threshold).astype(int)

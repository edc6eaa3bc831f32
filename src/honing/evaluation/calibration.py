"""Whether predicted probabilities mean what they say, and a post-hoc fix for when they do not.

:func:`reliability` bins the predictions by confidence and compares each bin's mean confidence
with how often it was right: the expected (ECE) and maximum (MCE) calibration errors summarise the
gap.  :class:`Calibrator` learns a monotone map of a fitted model's probabilities on a validation
split — isotonic regression or Platt scaling — so it works for any model, classic or neural.
A fitted :class:`Calibrator` is saved with skops; load it with ``trusted=TRUSTED_TYPES``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression

#: Types :func:`skops.io.loads` must be told to trust to load a fitted :class:`Calibrator` (the
#: isotonic regressions, numpy arrays and builtins inside it are trusted by skops by default).
TRUSTED_TYPES: list[str] = ["honing.evaluation.calibration.Calibrator"]

METHODS = ("isotonic", "sigmoid")
_LOGIT_EPS = 1e-12  # probabilities are clipped into [eps, 1 - eps] before the logit (|logit| ≤ 27.6)


def _as_proba(proba: Any) -> np.ndarray:
    """``proba`` as a float ``(n, K)`` array; a 1-D array is read as P(class 1) of a binary task."""
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba])
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(f"probabilities must have shape (n, K) with K >= 2, got {proba.shape}")
    return proba


def _confidence(y_true: Any, proba: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """What each row's confidence is, whether it came true, and the mode: P(class 1) and
    ``y == 1`` for a binary task, else the top-label probability and ``argmax == y``."""
    proba = _as_proba(proba)
    y = np.asarray(y_true).astype(int).ravel()
    if y.shape[0] != proba.shape[0]:
        raise ValueError(f"y_true has {y.shape[0]} rows but proba has {proba.shape[0]}")
    if proba.shape[1] == 2:
        return proba[:, 1], (y == 1).astype(float), "positive_class"
    return proba.max(axis=1), (proba.argmax(axis=1) == y).astype(float), "top_label"


def reliability(y_true: Any, proba: Any, bins: int = 10) -> dict[str, Any]:
    """The reliability diagram's data and the calibration errors of ``proba`` against ``y_true``.

    Binary: P(class 1) against the fraction of positives; multiclass: the top-label confidence
    against accuracy.  ``bins`` equal-width bins on [0, 1], right-closed like
    :func:`sklearn.calibration.calibration_curve` (``[0, 0.1], (0.1, 0.2], …``); an empty bin has
    ``confidence`` and ``accuracy`` ``None``.  ``ece`` = Σ (n_b/n)·|acc_b − conf_b|, ``mce`` the
    largest gap of a non-empty bin, ``brier`` the mean squared error of P(class 1) (binary only,
    else ``None``); ``mode`` is ``"positive_class"`` or ``"top_label"``.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    conf, hit, mode = _confidence(y_true, proba)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.searchsorted(edges[1:-1], conf, side="left")
    rows, ece, mce = [], 0.0, 0.0
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        row = {"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
               "confidence": None, "accuracy": None}
        if count:
            row["confidence"] = float(conf[mask].mean())
            row["accuracy"] = float(hit[mask].mean())
            gap = abs(row["accuracy"] - row["confidence"])
            ece += count / conf.size * gap
            mce = max(mce, gap)
        rows.append(row)
    brier = float(np.mean((conf - hit) ** 2)) if mode == "positive_class" else None
    return {"mode": mode, "n": int(conf.size), "bins": rows, "ece": float(ece), "mce": float(mce),
            "brier": brier}


def _platt_fit(score: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Platt scaling: ``(a, b)`` of P(1) = sigmoid(a·score + b), by maximum likelihood against
    Platt's smoothed targets ((n₊ + 1)/(n₊ + 2) for positives, 1/(n₋ + 2) for negatives) — the
    objective, start point and L-BFGS-B tolerances of scikit-learn's sigmoid calibration."""
    positive = target > 0
    n_pos, n_neg = float(positive.sum()), float((~positive).sum())
    t = np.where(positive, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def loss_grad(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * score + ab[1]
        loss = float(np.sum(np.logaddexp(0.0, z) - t * z))  # cross-entropy of sigmoid(z) vs t
        g = expit(z) - t
        return loss, np.array([g @ score, g.sum()])

    start = np.array([0.0, np.log((n_pos + 1.0) / (n_neg + 1.0))])
    result = minimize(loss_grad, start, jac=True, method="L-BFGS-B",
                      options={"gtol": 1e-6, "ftol": 64 * np.finfo(float).eps})
    return float(result.x[0]), float(result.x[1])


class Calibrator:
    """Calibrates a classifier's probabilities after the fact, for any model (classic or neural).

    Fitted on validation ``(proba, y)`` (``y`` encoded 0..K-1), one-vs-rest per class, then each
    row renormalised to sum to 1 (a row whose calibrated values are all 0 becomes uniform).
    Binary: only P(class 1) is calibrated and P(0) = 1 − P(1), as scikit-learn does.

    * ``isotonic``: :class:`~sklearn.isotonic.IsotonicRegression` (``out_of_bounds="clip"``) on the
      probability — identical to ``CalibratedClassifierCV(FrozenEstimator(model),
      method="isotonic")`` for a model that has ``predict_proba`` but no ``decision_function``.
    * ``sigmoid``: Platt scaling (scikit-learn's smoothed targets) fitted on the **logit** of the
      probability (clipped into [1e-12, 1 − 1e-12]).  scikit-learn fits it on
      ``decision_function`` when the model has one, else on the raw probability; so this equals
      ``CalibratedClassifierCV(..., method="sigmoid")`` for models whose decision function is that
      logit (binary logistic regression), and is the better-shaped map for the others.
    """

    def __init__(self, method: str = "isotonic"):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method = method

    def _columns(self, k: int) -> list[int]:
        """The probability columns that get their own calibration map."""
        return [1] if k == 2 else list(range(k))

    def fit(self, proba: Any, y: Any) -> Calibrator:
        """Learn the calibration maps from validation probabilities ``(n, K)`` and labels 0..K-1."""
        proba = _as_proba(proba)
        y = np.asarray(y).astype(int).ravel()
        if y.shape[0] != proba.shape[0]:
            raise ValueError(f"y has {y.shape[0]} rows but proba has {proba.shape[0]}")
        self.n_classes_ = int(proba.shape[1])
        self.maps_: list[Any] = []
        for k in self._columns(self.n_classes_):
            target = (y == k).astype(float)
            if self.method == "isotonic":
                self.maps_.append(IsotonicRegression(out_of_bounds="clip").fit(proba[:, k], target))
            else:
                self.maps_.append(np.array(_platt_fit(self._logit(proba[:, k]), target)))
        return self

    @staticmethod
    def _logit(p: np.ndarray) -> np.ndarray:
        return logit(np.clip(p, _LOGIT_EPS, 1.0 - _LOGIT_EPS))

    def _apply(self, m: Any, p: np.ndarray) -> np.ndarray:
        """One fitted map applied to one column of probabilities."""
        if self.method == "isotonic":
            return m.predict(p)
        return expit(m[0] * self._logit(p) + m[1])

    def transform(self, proba: Any) -> np.ndarray:
        """Calibrated probabilities ``(n, K)`` (rows sum to 1) for raw probabilities ``(n, K)``."""
        if not hasattr(self, "maps_"):
            raise RuntimeError("Calibrator is not fitted: call fit(proba, y) first")
        proba = _as_proba(proba)
        k = self.n_classes_
        if proba.shape[1] != k:
            raise ValueError(f"Calibrator was fitted on {k} classes, got probabilities for {proba.shape[1]}")
        out = np.zeros_like(proba)
        for col, m in zip(self._columns(k), self.maps_, strict=True):
            out[:, col] = self._apply(m, proba[:, col])
        if k == 2:
            out[:, 0] = 1.0 - out[:, 1]
        else:
            total = out.sum(axis=1, keepdims=True)
            out = np.divide(out, total, out=np.full_like(out, 1.0 / k), where=total > 0)
        return np.clip(out, 0.0, 1.0)

    def fit_transform(self, proba: Any, y: Any) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same probabilities."""
        return self.fit(proba, y).transform(proba)

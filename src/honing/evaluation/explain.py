"""Explain a trained model in terms of its RAW feature columns.

Users think in the columns of their data, not in the encoded matrix (a one-hot "Sex" is one
feature "Sex"), so every explanation here runs on a :class:`FrameModel`: the fitted preprocessor
and the fitted estimator wrapped as one scikit-learn estimator that takes a raw feature frame.

* :func:`permutation_importances` — how much worse honing's metric gets when one column is
  shuffled (scikit-learn's ``permutation_importance`` with a sign-aware honing scorer);
* :func:`partial_dependence` — the average prediction (or class probability) as one column varies
  over a grid (scikit-learn's ``partial_dependence(method="brute")``);
* :func:`local_explanation` — why one row got its prediction: for each column, the prediction of
  the row minus its average prediction when that column alone takes background rows' values.

Why this and not SHAP: it needs no extra dependency; it works on any model through ``predict`` /
``predict_proba`` (neural networks, boosted trees, pipelines alike); for an additive model (linear
regression, a GAM) the local contributions are exact — ``coef_j * (x_j - mean background x_j)``,
which is what SHAP's interventional values also give there; and its cost is known in advance: one
batched prediction of ``features x samples`` rows.  Unlike SHAP the contributions of a model with
interactions need not add up to ``prediction - base``: each column is occluded on its own.

Every result is JSON-ready: plain floats, ints and strings, ``None`` for NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import inspection
from sklearn.base import BaseEstimator
from sklearn.utils import ClassifierTags, RegressorTags, Tags
from sklearn.utils.metaestimators import available_if

from honing.bundle.manifest import SUPERVISED_TASKS
from honing.errors import ModelError, with_article
from honing.evaluation.metrics import compute_metrics, primary_metric
from honing.evaluation.scoring import predict_scores

_TOP_CATEGORIES = 20


# --------------------------------------------------------------------------- the estimator


def _is_classifier_task(model: FrameModel) -> bool:
    return model.task == "classification"


class FrameModel(BaseEstimator):
    """An already-fitted honing model as a scikit-learn estimator over RAW feature frames.

    ``preprocess(frame) -> matrix`` (a callable, an object with ``transform`` such as a fitted
    ColumnTransformer, or None for no preprocessing) and ``model`` a fitted estimator with
    ``predict`` (and ``predict_proba`` for classifiers, labels 0..K-1).  ``fit`` does nothing and
    :func:`sklearn.base.clone` returns the same object, so nothing ever refits it.  Its tags make
    ``sklearn.inspection`` see a classifier or a regressor according to ``task``.
    """

    def __init__(self, preprocess: Any, model: Any, task: str, n_classes: int | None = None) -> None:
        self.preprocess = preprocess
        self.model = model
        self.task = task
        self.n_classes = n_classes

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        if self.task == "classification":
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags()
        else:
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def __sklearn_clone__(self) -> FrameModel:
        return self

    def fit(self, X: Any = None, y: Any = None, **params: Any) -> FrameModel:
        """Nothing to fit: the preprocessor and the model are already fitted."""
        return self

    @property
    def classes_(self) -> np.ndarray:
        """The class labels 0..K-1 (classifiers only)."""
        if self.task != "classification":
            raise AttributeError("a regression model has no classes_")
        return np.arange(self._k())

    def _k(self) -> int:
        """The number of classes: ``n_classes``, else the estimator's ``classes_``."""
        if self.n_classes is not None:
            return int(self.n_classes)
        seen = getattr(self.model, "classes_", None)
        if seen is None:
            raise AttributeError("pass n_classes: the estimator has no classes_")
        return len(seen)

    def transform(self, frame: pd.DataFrame) -> Any:
        """The raw frame as the estimator's input matrix."""
        if self.preprocess is None:
            return frame
        if callable(self.preprocess):
            return self.preprocess(frame)
        return self.preprocess.transform(frame)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted values (regression) or classes 0..K-1 (the most probable one)."""
        X = self.transform(frame)
        if self.task == "classification" and hasattr(self.model, "predict_proba"):
            return predict_scores(self.model, X, self.task, self._k())[0]
        return np.asarray(self.model.predict(X))

    @available_if(_is_classifier_task)
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities ``(n, K)``, a column of zeros for a class the model never saw."""
        return predict_scores(self.model, self.transform(frame), self.task, self._k())[1]


# --------------------------------------------------------------------------- helpers


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy scalars as Python ones, NaN/NaT/NA as None, others as str."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (pd.Timestamp, pd.Timedelta)):
        return str(value)
    try:
        return None if pd.isna(value) else str(value)
    except (TypeError, ValueError):
        return str(value)


def _float(value: Any) -> float | None:
    """A plain float, or None for NaN."""
    value = float(value)
    return None if math.isnan(value) else value


def _check_task(task: str) -> None:
    if task not in SUPERVISED_TASKS:
        raise ValueError(f"task must be one of {SUPERVISED_TASKS}, got {task!r}")


def check_explainable(bundle: Any) -> None:
    """A user's one-line error for a bundle whose answers are not a value or class probabilities to explain
    (clustering, reduction, anomaly, generation, reinforcement)."""
    if bundle.task not in SUPERVISED_TASKS:
        raise ModelError(f"{bundle.path}: {with_article(bundle.task)} bundle ({bundle.manifest.get('model_type')}) cannot be "
                         "explained", "honing explain is for classification and regression bundles")


def _metric_scorer(task: str, metric: str, n_classes: int | None) -> Callable[..., float]:
    """A scikit-learn scorer ``(estimator, X, y) -> float`` where greater is always better."""
    name, greater = primary_metric(task, metric)
    sign = 1.0 if greater else -1.0
    needs_proba = task == "classification" and name in ("roc_auc", "pr_auc", "log_loss")

    def scorer(estimator: Any, X: Any, y: Any) -> float:
        proba = estimator.predict_proba(X) if needs_proba else None
        y_pred = proba.argmax(axis=1) if proba is not None else estimator.predict(X)
        return sign * compute_metrics(task, y, y_pred, proba, n_classes)[name]

    return scorer


# --------------------------------------------------------------------------- importances


def permutation_importances(model: FrameModel, frame: pd.DataFrame, y: Any, task: str,
                            metric: str = "auto", *, repeats: int = 5, seed: int = 0,
                            n_classes: int | None = None) -> list[dict]:
    """How much worse ``metric`` gets when each raw column is shuffled, most important first.

    scikit-learn's ``permutation_importance`` with honing's metric as the scorer (negated when
    smaller is better), so a positive importance always means "the metric got worse".
    Returns ``[{"feature", "mean", "std", "low", "high"}]`` where low/high is the 95% interval of
    the mean, ``mean ± 1.96·std/√repeats``.
    """
    _check_task(task)
    if n_classes is None and task == "classification":
        n_classes = model._k()
    scorer = _metric_scorer(task, metric, n_classes)
    result = inspection.permutation_importance(model, frame, np.asarray(y), scoring=scorer,
                                               n_repeats=repeats, random_state=seed)
    half = 1.96 * result.importances_std / math.sqrt(repeats)
    rows = [{"feature": str(name), "mean": _float(mean), "std": _float(std),
             "low": _float(mean - h), "high": _float(mean + h)}
            for name, mean, std, h in zip(frame.columns, result.importances_mean,
                                          result.importances_std, half)]
    return sorted(rows, key=lambda row: -math.inf if row["mean"] is None else row["mean"], reverse=True)


# --------------------------------------------------------------------------- partial dependence


def _is_numeric(column: pd.Series) -> bool:
    """Numbers (not booleans) vary over a numeric grid; anything else over its values."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _grid(column: pd.Series, grid: int) -> tuple[str, list]:
    """The values a feature takes in its partial dependence, and its kind.

    Numeric: ``grid`` evenly spaced points from its 5th to its 95th percentile (its distinct
    values when it has at most ``grid`` of them); otherwise its ``20`` most frequent values.
    """
    present = column.dropna()
    if present.empty:
        raise ValueError(f"column '{column.name}' has no values")
    if not _is_numeric(column):
        return "categorical", present.value_counts().index[:_TOP_CATEGORIES].tolist()
    values = present.to_numpy(dtype=float)
    distinct = np.unique(values)
    if len(distinct) <= grid:
        return "numeric", distinct.tolist()
    low, high = np.percentile(values, [5, 95])
    if low == high:
        low, high = distinct[0], distinct[-1]
    return "numeric", np.linspace(low, high, grid).tolist()


def partial_dependence(model: FrameModel, frame: pd.DataFrame, feature: str, *, grid: int = 20,
                       task: str, target_class: int = 1) -> dict:
    """The average prediction as ``feature`` varies over a grid, other columns as in ``frame``.

    Regression: the average predicted value; classification: the average probability of
    ``target_class``.  Brute force, as ``sklearn.inspection.partial_dependence(method="brute")``
    computes it (the tests' oracle), one prediction of the frame per grid value; scikit-learn's own
    mistakes a binary classifier's two rows for its two classes.
    Returns ``{"feature", "kind": "numeric"|"categorical", "values", "average"}``.
    """
    _check_task(task)
    if feature not in frame.columns:
        raise ValueError(f"no column '{feature}' in the frame")
    kind, values = _grid(frame[feature], grid)
    if task == "classification":
        k = len(model.classes_)
        if not 0 <= target_class < k:
            raise ValueError(f"target_class must be in 0..{k - 1}, got {target_class}")
    curve = []
    for value in values:
        data = frame.assign(**{feature: float(value) if kind == "numeric" else value})
        if task == "classification":
            curve.append(np.asarray(model.predict_proba(data), dtype=float)[:, target_class].mean())
        else:
            curve.append(np.asarray(model.predict(data), dtype=float).mean())
    return {"feature": str(feature), "kind": kind, "values": [_plain(v) for v in values],
            "average": [_float(v) for v in curve]}


# --------------------------------------------------------------------------- local explanation


def _occlusion_frame(row: pd.DataFrame, background: pd.DataFrame) -> pd.DataFrame:
    """The row, then the background rows, then for each column j the row with column j replaced
    by each background row's value (``1 + n + p·n`` rows), all from one indexed take."""
    source = pd.concat([row, background[row.columns]], ignore_index=True)
    n, p = len(background), row.shape[1]
    columns = {}
    for j, name in enumerate(row.columns):
        index = np.zeros(1 + n + p * n, dtype=np.intp)  # 0 = the row itself
        index[1:1 + n] = index[1 + n + j * n:1 + n + (j + 1) * n] = np.arange(1, n + 1)
        columns[name] = source[name].take(index).reset_index(drop=True)
    return pd.DataFrame(columns)


def local_explanation(model: FrameModel, row: pd.DataFrame, background: pd.DataFrame, *, task: str,
                      top: int | None = 5, samples: int = 200, seed: int = 0) -> dict:
    """Why one row got its prediction, feature by feature (a permutation/occlusion explanation).

    ``contribution_j = f(row) - mean_b f(row with feature j set to background row b's value)``
    over up to ``samples`` background rows (drawn with ``seed`` when there are more), where f is
    the predicted value (regression) or the predicted class's probability (classification).
    One prediction call on a stacked frame.  Returns ``{"prediction", "output" (f(row)), "base"
    (mean f over the background), "contributions": [{"feature", "value", "contribution"}]}``,
    the ``top`` largest by absolute contribution (all with ``top=None``); classification also
    gives ``"class"``, the explained class (``prediction`` is that class too).
    """
    _check_task(task)
    if len(row) != 1:
        raise ValueError(f"row must be a one-row frame, got {len(row)} rows")
    if background.empty:
        raise ValueError("the background frame has no rows")
    if len(background) > samples:
        picked = np.random.default_rng(seed).choice(len(background), size=samples, replace=False)
        background = background.iloc[np.sort(picked)]
    stacked = _occlusion_frame(row, background)
    n, p = len(background), row.shape[1]
    out: dict[str, Any] = {}
    if task == "classification":
        proba = np.asarray(model.predict_proba(stacked), dtype=float)
        cls = int(proba[0].argmax())
        f = proba[:, cls]
        out["prediction"] = out["class"] = cls
    else:
        f = np.asarray(model.predict(stacked), dtype=float).ravel()
        out["prediction"] = _float(f[0])
    occluded = f[1 + n:].reshape(p, n).mean(axis=1)
    contributions = [{"feature": str(name), "value": _plain(row[name].iloc[0]),
                      "contribution": _float(f[0] - mean)}
                     for name, mean in zip(row.columns, occluded)]
    contributions.sort(key=lambda c: -1.0 if c["contribution"] is None else abs(c["contribution"]),
                       reverse=True)
    out.update(output=_float(f[0]), base=_float(f[1:1 + n].mean()),
               contributions=contributions if top is None else contributions[:top])
    return out

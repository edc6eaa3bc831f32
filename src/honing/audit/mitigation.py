"""Fairness mitigation: before training (reweighing), in training (exponentiated gradient) and
after training (a decision threshold per group).

* :func:`reweigh` — Kamiran & Calders: sample weights that make group and label independent.
  Any classification task; the model must take ``sample_weight``.
* :func:`exponentiated_gradient` — fairlearn's reduction: a weighted mix of classifiers trained
  with reweighted labels, kept as a deterministic :class:`FairEnsemble`.  Binary tasks; the model
  must take ``sample_weight``.
* :class:`GroupThresholds` — one threshold on P(positive) per group, equal selection rates.
  Binary tasks, any model with probabilities.

:func:`check_mitigation` and :func:`check_sample_weight` turn a mitigation that cannot apply into a
one-line :class:`~honing.errors.RecipeError` before anything is trained.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.reductions import (
    DemographicParity,
    EqualizedOdds,
    ErrorRateParity,
    ExponentiatedGradient,
    FalsePositiveRateParity,
    TruePositiveRateParity,
)
from sklearn.base import clone
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import has_fit_parameter

from honing.errors import DataError, RecipeError, did_you_mean

#: The mitigations, and the kinds of task each applies to.
MITIGATIONS: dict[str, tuple[str, ...]] = {
    "reweigh": ("binary", "multiclass"),
    "exponentiated_gradient": ("binary",),
    "threshold": ("binary",),
}

#: The fairness constraints :func:`exponentiated_gradient` can enforce (fairlearn moments).
CONSTRAINTS = {
    "demographic_parity": DemographicParity,
    "equalized_odds": EqualizedOdds,
    "true_positive_rate_parity": TruePositiveRateParity,
    "false_positive_rate_parity": FalsePositiveRateParity,
    "error_rate_parity": ErrorRateParity,
}

#: Types a saved :class:`FairEnsemble` holds beyond skops' defaults and the models' own types.
TRUSTED_TYPES = ["honing.audit.mitigation.FairEnsemble"]

#: honing model types that take sample weights (for hints).
_WEIGHTED_MODELS = "logistic_regression, random_forest, lightgbm, decision_tree, svm"


# --------------------------------------------------------------------------- checks


def check_mitigation(mitigation: str, task: str, n_classes: int | None = None) -> None:
    """Raise a :class:`RecipeError` unless ``mitigation`` applies to the task.

    ``task`` is ``classification`` (with ``n_classes``: 2 or fewer is binary), ``binary``,
    ``multiclass`` or ``regression``.
    """
    if mitigation not in MITIGATIONS:
        raise RecipeError(f"audit.mitigate: unknown mitigation '{mitigation}'", did_you_mean(mitigation, MITIGATIONS))
    kind = task
    if task == "classification":
        kind = "binary" if n_classes is None or n_classes <= 2 else "multiclass"
    if kind == "regression":
        raise RecipeError(f"audit.mitigate '{mitigation}' does not apply to a regression task",
                          "the mitigations are for classification; set audit.mitigate: none (the fairness audit still runs)")
    if kind not in MITIGATIONS[mitigation]:
        suited = [m for m, kinds in MITIGATIONS.items() if kind in kinds]
        raise RecipeError(f"audit.mitigate '{mitigation}' works for binary classification only, this task is {kind}",
                          f"for {kind} use mitigation " + " or ".join(f"'{m}'" for m in suited))


def supports_sample_weight(estimator: Any) -> bool:
    """Whether ``estimator.fit`` takes a ``sample_weight`` argument."""
    return hasattr(estimator, "fit") and has_fit_parameter(estimator, "sample_weight")


def check_sample_weight(estimator: Any, mitigation: str) -> None:
    """Raise a :class:`RecipeError` naming the model when it cannot be trained with sample weights."""
    if not supports_sample_weight(estimator):
        raise RecipeError(
            f"audit.mitigate '{mitigation}' trains the model with sample weights, "
            f"which {type(estimator).__name__} cannot take",
            f"choose a model that can ({_WEIGHTED_MODELS}), or mitigation 'threshold'")


def _labels(y: Any, mitigation: str, binary: bool) -> np.ndarray:
    """Class labels as an array; regression values (or multiclass labels when ``binary``) are refused."""
    y = np.asarray(y)
    kind = type_of_target(y)
    if kind.startswith("continuous"):
        check_mitigation(mitigation, "regression")
    if binary:
        if kind.startswith("multiclass"):
            check_mitigation(mitigation, "multiclass")
        if not set(np.unique(y)) <= {0, 1}:
            raise DataError(f"{mitigation} needs labels encoded as 0/1, got {sorted(np.unique(y))[:4]}",
                            "pass the encoded training labels (the positive class as 1)")
    return y


def _groups(groups: Any, n: int) -> np.ndarray:
    """Group labels as a str array of ``n`` rows, with at least two groups."""
    g = np.asarray(groups).astype(str)
    if len(g) != n:
        raise ValueError(f"groups have {len(g)} rows, the labels {n}")
    if len(np.unique(g)) < 2:
        name = f"column '{groups.name}'" if getattr(groups, "name", None) else "the sensitive column"
        raise DataError(f"audit.sensitive: {name} has one group only ('{g[0] if n else ''}')",
                        "mitigation balances groups; choose a column whose values differ between rows")
    return g


# --------------------------------------------------------------------------- before training


def reweigh(y: np.ndarray, groups: pd.Series) -> np.ndarray:
    """Kamiran & Calders reweighing: the sample weight of a row in group g with label y is
    ``P(g)·P(y) / P(g, y)``, so that group and label are independent in the weighted data (every
    group's weighted label distribution is the overall one) and the weights sum to the row count.
    """
    y = _labels(y, "reweigh", binary=False)
    frame = pd.DataFrame({"g": _groups(groups, len(y)), "y": y})
    n = len(frame)
    p_g = frame["g"].map(frame["g"].value_counts()) / n
    p_y = frame["y"].map(frame["y"].value_counts()) / n
    p_gy = frame.groupby(["g", "y"])["g"].transform("size") / n
    return (p_g * p_y / p_gy).to_numpy(dtype=float)


# --------------------------------------------------------------------------- after training


class GroupThresholds:
    """A decision threshold on P(positive) per group, for binary classifiers.

    :meth:`fit` picks one selection rate *r* for all groups — every group selects the top ``r`` of its
    (validation) scores — and the *r* (on a grid of ``grid`` rates) with the highest accuracy, so the
    selection rates are equal across groups (demographic parity) up to rounding to whole rows.  Each
    group's threshold lies halfway between its last selected and first rejected score.

    Predictions are deterministic, unlike fairlearn's ``ThresholdOptimizer``, which reaches parity by
    randomising between two thresholds per group.

    Attributes after fit: ``thresholds_`` ({group: threshold}, JSON-ready), ``default_`` (the
    threshold that selects the rate *r* over all rows, for groups unseen at fit), ``rate_`` and
    ``accuracy_`` (on the fitting rows).
    """

    def __init__(self, grid: int = 1001):
        self.grid = grid

    def fit(self, scores: Any, y: Any, groups: Any) -> GroupThresholds:
        """Choose the thresholds on scores (P(positive), or a two-column probability array)."""
        s = _positive_scores(scores)
        y = _labels(y, "threshold", binary=True).astype(int)
        if len(y) != len(s):
            raise ValueError(f"scores have {len(s)} rows, the labels {len(y)}")
        g = _groups(groups, len(s))
        rates = np.linspace(0.0, 1.0, self.grid)
        correct = np.zeros(len(rates))
        chosen = {}
        for group in np.unique(g):
            ranked, k, hits = _ranked(s[g == group], y[g == group], rates)
            correct += hits
            chosen[str(group)] = (ranked, k)
        best = int(np.argmax(correct))
        self.thresholds_ = {group: _cut(ranked, k[best]) for group, (ranked, k) in chosen.items()}
        self.rate_ = float(sum(k[best] for _, k in chosen.values()) / len(s))  # as selected, after rounding
        self.accuracy_ = float(correct[best] / len(s))
        overall, k_all, _ = _ranked(s, y, np.array([self.rate_]))
        self.default_ = _cut(overall, k_all[0])
        return self

    def predict(self, scores: Any, groups: Any) -> np.ndarray:
        """0/1 decisions: 1 where the score reaches its group's threshold."""
        s = _positive_scores(scores)
        g = np.asarray(groups).astype(str)
        cut = np.array([self.thresholds_.get(group, self.default_) for group in g], dtype=float)
        return (s >= cut).astype(int)

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as plain JSON values."""
        return {"thresholds": dict(self.thresholds_), "default": self.default_, "rate": self.rate_,
                "accuracy": self.accuracy_}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> GroupThresholds:
        """The inverse of :meth:`to_dict`."""
        fitted = cls()
        fitted.thresholds_ = {str(k): float(v) for k, v in state["thresholds"].items()}
        fitted.default_, fitted.rate_ = float(state["default"]), float(state["rate"])
        fitted.accuracy_ = float(state["accuracy"])
        return fitted


def _positive_scores(scores: Any) -> np.ndarray:
    """P(positive) as a 1-D float array (the second column of a two-column probability array)."""
    s = np.asarray(scores, dtype=float)
    if s.ndim == 2:
        if s.shape[1] != 2:
            check_mitigation("threshold", "multiclass")
        s = s[:, 1]
    return s


def _ranked(scores: np.ndarray, y: np.ndarray, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores sorted high to low, the rows selected at each rate, and the correct decisions then."""
    order = np.argsort(-scores, kind="stable")
    ranked, labels = scores[order], y[order]
    k = np.rint(rates * len(ranked)).astype(int)
    positives = np.concatenate([[0], np.cumsum(labels)])  # positives among the top k
    negatives_left = (len(labels) - positives[-1]) - (k - positives[k])
    return ranked, k, positives[k] + negatives_left


def _cut(ranked: np.ndarray, k: int) -> float:
    """A threshold selecting the top ``k`` of scores sorted high to low."""
    if k <= 0:
        return float(np.nextafter(ranked[0], np.inf))
    if k >= len(ranked):
        return float(ranked[-1])
    return float((ranked[k - 1] + ranked[k]) / 2)


# --------------------------------------------------------------------------- in training


class FairEnsemble:
    """A deterministic classifier from fairlearn's ExponentiatedGradient.

    ``estimators_`` are the fitted predictors it found (those with a positive weight), ``weights_``
    their weights (summing to 1).  ``predict_proba`` is the weighted average of their hard 0/1
    predictions as class probabilities; ``predict`` the argmax (class 0 on an exact tie).  fairlearn's
    own ``predict`` draws one predictor at random per row instead.  Plain attributes, so that
    ``skops.io`` can save it (trusting :data:`TRUSTED_TYPES` and the predictors' types).
    """

    def __init__(self, estimators: list[Any], weights: Any):
        if len(estimators) != len(weights) or not len(estimators):
            raise ValueError("FairEnsemble needs one weight per estimator, and at least one estimator")
        weights = np.asarray(weights, dtype=float)
        self.estimators_ = list(estimators)
        self.weights_ = weights / weights.sum()
        self.classes_ = np.array([0, 1])

    def predict_proba(self, X: Any) -> np.ndarray:
        """Columns P(0), P(1): the weight of the predictors that predict each class."""
        votes = np.column_stack([np.asarray(est.predict(X)) == 1 for est in self.estimators_])
        positive = votes.astype(float) @ self.weights_
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:
        """The class with the larger probability (0 on an exact tie)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def exponentiated_gradient(estimator: Any, X: Any, y: Any, groups: pd.Series, constraint: str = "demographic_parity",
                           seed: int = 0, eps: float = 0.01, max_iter: int = 50) -> FairEnsemble:
    """Train ``estimator`` under a fairness constraint with fairlearn's ExponentiatedGradient.

    ``y`` holds 0/1 labels; ``constraint`` one of :data:`CONSTRAINTS`; ``eps`` the allowed violation
    of the constraint; ``seed`` seeds the estimator's ``random_state`` when it has one left unset.
    """
    if constraint not in CONSTRAINTS:
        raise RecipeError(f"audit.constraint: unknown constraint '{constraint}'", did_you_mean(constraint, CONSTRAINTS))
    check_sample_weight(estimator, "exponentiated_gradient")
    y = _labels(y, "exponentiated_gradient", binary=True).astype(int)
    g = _groups(groups, len(y))
    base = clone(estimator)
    if base.get_params().get("random_state", 0) is None:
        base.set_params(random_state=seed)
    mitigator = ExponentiatedGradient(base, constraints=CONSTRAINTS[constraint](), eps=eps, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the oracle fits
        mitigator.fit(X, y, sensitive_features=g)
    weights = mitigator.weights_
    used = [i for i in weights.index if weights[i] > 1e-12]
    return FairEnsemble([mitigator.predictors_[i] for i in used], weights[used].to_numpy())

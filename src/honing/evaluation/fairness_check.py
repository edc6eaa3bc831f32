"""Fairness of the trained model on the test split (``audit.sensitive``), and the opt-in mitigation
(``audit.mitigate``) that replaces the model or its decision rule, measured before and after."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from honing.audit.fairness import MAX_NUMERIC_GROUPS, group_labels, model_fairness
from honing.audit.findings import Finding
from honing.bundle.predictor import Bundle, group_keys
from honing.data.dataset import Dataset
from honing.errors import RecipeError
from honing.evaluation.metrics import compute_metrics
from honing.progress import SILENT, Progress
from honing.recipe import Recipe

#: Most values of a text/categorical column given one threshold each by ``audit.mitigate: threshold``.
MAX_THRESHOLD_GROUPS = 100
#: Measures shown side by side before and after mitigation.
_HEADLINE = ("accuracy", "balanced_accuracy", "f1_macro")


@dataclass
class Fairness:
    """Per-group results of the final model (and of the model before mitigation), for audit.json."""

    report: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    measured: dict[str, list[tuple[str | None, float]]] = field(default_factory=dict)


@dataclass
class Mitigated:
    model: Any
    decision: dict[str, Any]


def check_mitigation(recipe: Recipe, task: str, n_classes: int | None, train: pd.DataFrame,
                     validation_rows: int) -> None:
    """RecipeError when ``audit.mitigate`` cannot apply to this run (say what would), before training;
    ``train`` holds the training rows (or a sample of them), ``validation_rows`` counts the validation rows."""
    from honing.audit import mitigation

    method = recipe.audit.mitigate
    if method == "none":
        return
    if not recipe.audit.sensitive:
        raise RecipeError(f"audit.mitigate: {method} needs a sensitive column", "set audit.sensitive: [COLUMN]")
    mitigation.check_mitigation(method, task, n_classes)
    if method != "threshold":
        return
    if recipe.evaluate.threshold != "none" or recipe.evaluate.calibrate != "none":
        raise RecipeError("audit.mitigate: threshold sets its own decision thresholds per group",
                          "set evaluate.threshold: none and evaluate.calibrate: none, or choose another mitigation")
    if not validation_rows:
        raise RecipeError("audit.mitigate: threshold fits its thresholds on the validation split, which is empty",
                          "set data.split.validation > 0")
    column = recipe.audit.sensitive[0]
    values = train.get(column)
    if values is None:
        return
    limit = MAX_NUMERIC_GROUPS if pd.api.types.is_numeric_dtype(values) else MAX_THRESHOLD_GROUPS
    if values.nunique() > limit:
        raise RecipeError(f"audit.mitigate: threshold keeps one threshold per value of '{column}', which has "
                          f"{values.nunique()} values in the training rows (at most {limit})",
                          "use reweigh or exponentiated_gradient, or a column of a few groups")


def mitigate(model: Any, preprocessor: Any, dataset: Dataset, data: dict, recipe: Recipe, model_type: str,
             params: dict, progress: Progress = SILENT, sample_weight: np.ndarray | None = None) -> Mitigated:
    """The model (or decision rule) ``audit.mitigate`` gives, on the first sensitive column; reweigh's
    weights multiply ``sample_weight`` (``data.balance: class_weight``'s)."""
    from honing.audit import mitigation
    from honing.models.classic import make_model, neural_options

    method, column = recipe.audit.mitigate, recipe.audit.sensitive[0]
    X, y = data["train"]
    with progress.step(f"mitigating unfairness on '{column}' ({method})"):
        if method == "threshold":
            X_val, y_val = data["validation"]
            return Mitigated(model, group_thresholds(model.predict_proba(X_val), y_val,
                                                     dataset.splits["validation"][column], column))
        fresh = make_model(model_type, dataset.task, params, recipe.seed, recipe.train, neural_options(recipe))
        mitigation.check_sample_weight(fresh, method)
        train_groups = group_labels(dataset.splits["train"], [column])[column]
        if method == "reweigh":
            weights = mitigation.reweigh(y, train_groups)
            fresh.fit(X, y, sample_weight=weights if sample_weight is None else weights * sample_weight)
            return Mitigated(fresh, {})
        return Mitigated(mitigation.exponentiated_gradient(fresh, X, y, train_groups, seed=recipe.seed), {})


def group_thresholds(proba: Any, y: np.ndarray, values: pd.Series, column: str) -> dict[str, Any]:
    """The decision rule of ``audit.mitigate: threshold``: one threshold on P(positive) per group of
    ``column`` (whose raw values are ``values``), fitted on (validation) probabilities and labels."""
    from honing.audit import mitigation

    rule = mitigation.GroupThresholds().fit(np.asarray(proba)[:, 1], y, group_keys(pd.Series(values)))
    groups = {"column": column, "thresholds": dict(rule.thresholds_), "default": float(rule.default_)}
    return {"groups": groups, "method": "audit.mitigate: threshold"}


def assess(y_final: np.ndarray, before: Bundle | None, dataset: Dataset, data: dict, recipe: Recipe) -> Fairness:
    """Per-group metrics and fairness measures of the final model's test predictions ``y_final``;
    with ``before`` (the model before mitigation) both, side by side."""
    X, y = data["test"]
    rows = dataset.splits["test"]
    y_before = before.scores(X, rows)[0] if before is not None else None
    return assess_predictions(y, y_final, y_before, rows, recipe, dataset.task, dataset.n_classes)


def assess_predictions(y: np.ndarray, y_final: np.ndarray, y_before: np.ndarray | None, rows: pd.DataFrame,
                       recipe: Recipe, task: str, n_classes: int | None) -> Fairness:
    """:func:`assess` on given test labels and predictions; ``rows`` holds the test rows' sensitive
    columns (at least), in the same order."""
    groups = group_labels(rows, recipe.audit.sensitive)
    report, findings = model_fairness(y, y_final, groups, task)
    out = Fairness({"test": report}, findings, _measured(report))
    if y_before is not None:
        earlier, _ = model_fairness(y, y_before, groups, task)
        out.report["mitigation"] = {
            "method": recipe.audit.mitigate, "column": recipe.audit.sensitive[0],
            "before": _side(earlier, y, y_before, task, n_classes),
            "after": _side(report, y, y_final, task, n_classes),
        }
    return out


def _side(report: dict, y: np.ndarray, y_pred: np.ndarray, task: str, n_classes: int | None) -> dict[str, Any]:
    """Headline metrics and every fairness measure of one model, for the before/after table."""
    scores = compute_metrics(task, y, y_pred, n_classes=n_classes)
    return {"metrics": {k: scores[k] for k in _HEADLINE if k in scores},
            "measures": {column: part.get("measures", {}) for column, part in report.items()}}


def _measured(report: dict) -> dict[str, list[tuple[str | None, float]]]:
    """Every measure per column (check → [(column, value)]), for the gate."""
    out: dict[str, list[tuple[str | None, float]]] = {}
    for column, part in report.items():
        for name, value in part.get("measures", {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(name, []).append((column, float(value)))
    return out

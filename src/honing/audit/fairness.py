"""Fairness: bias in the data before training, and in a model's predictions after.

Groups come from the recipe's sensitive columns (``audit.sensitive``): one grouping per column and,
when several are named, their intersection ``A×B`` (values ``a×b``).  Missing values form the group
``missing``; a numeric column with more than :data:`MAX_NUMERIC_GROUPS` distinct values (an age, an
income) is cut into quartiles.

*Before training* (:func:`data_bias`) uses SageMaker Clarify's pre-training measures, each group
(facet *d*) against the rest (facet *a*):

* class imbalance ``CI = (n_a − n_d) / (n_a + n_d)`` — positive when the group is the smaller side;
* difference in positive proportions in labels ``DPL = q_a − q_d`` — positive when the group gets
  the positive label less often than the rest.

*After training* (:func:`model_fairness`) uses fairlearn's :class:`~fairlearn.metrics.MetricFrame`;
each measure equals fairlearn's own function of the same name (between-groups differences and
ratios over every group of the column).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    mean_absolute_error,
    precision_score,
    r2_score,
)

from honing.audit.findings import Finding
from honing.errors import DataError, RecipeError, did_you_mean

#: The group given to rows whose sensitive value is missing.
MISSING = "missing"
#: Joins column names and group values of an intersection: ``sex×race`` / ``female×black``.
CROSS = "×"
#: A numeric sensitive column with more distinct values than this is cut into quartiles.
MAX_NUMERIC_GROUPS = 10
#: The tasks these functions accept (``classification`` is split into binary / multiclass by the labels).
TASKS = ("classification", "binary", "multiclass", "regression")


@dataclass(frozen=True)
class FairnessLimits:
    """When a measure becomes a finding.  Differences flag at or above their limit, the ratio
    (``disparate_impact``) below it.

    ``label_mean`` is for regression targets: the gap in mean target between a group and the rest,
    in standard deviations of the target.  ``mae_difference`` is relative: the ``mae_difference``
    finding (whose value is the raw MAE gap, in target units, as fairlearn computes it) is raised when
    the gap is at least this fraction of the overall MAE (raw gaps depend on the target's scale).
    Groups with fewer than ``min_group_size`` rows are too small for their rates to mean much: they
    are reported, but left out of the model measures, and a label-rate finding needs that many rows
    in the group and in the rest.
    """

    group_imbalance: float = 0.2
    label_rate: float = 0.1
    label_mean: float = 0.2
    demographic_parity_difference: float = 0.1
    equalized_odds_difference: float = 0.1
    equal_opportunity_difference: float = 0.1
    disparate_impact: float = 0.8
    accuracy_difference: float = 0.1
    mae_difference: float = 0.1
    min_group_size: int = 30


# --------------------------------------------------------------------------- groups


def group_labels(frame: pd.DataFrame, sensitive: list[str]) -> dict[str, pd.Series]:
    """One series of group names (str) per sensitive column, plus the intersection ``A×B`` when
    several columns are given.  Missing values become the group ``missing``.

    Raises :class:`DataError` naming ``audit.sensitive`` when a column is absent or has one group only.
    """
    names = [sensitive] if isinstance(sensitive, str) else list(dict.fromkeys(sensitive))
    if not names:
        raise RecipeError("audit.sensitive is empty", "name at least one column to audit for fairness")
    groups: dict[str, pd.Series] = {}
    for name in names:
        if name not in frame.columns:
            raise DataError(f"audit.sensitive: column '{name}' is not in the data", did_you_mean(name, frame.columns))
        labels = _column_groups(frame[name]).rename(name)
        values = labels.unique()
        if len(values) < 2:
            raise DataError(f"audit.sensitive: column '{name}' has one group only ('{values[0]}')",
                            "fairness compares groups; choose a column whose values differ between rows")
        groups[name] = labels
    if len(names) > 1:
        cross = CROSS.join(names)
        joined = groups[names[0]]
        for name in names[1:]:
            joined = joined + CROSS + groups[name]
        groups[cross] = joined.rename(cross)
    return groups


def _column_groups(column: pd.Series) -> pd.Series:
    """Group names for one column: its values as text, quartiles for a many-valued numeric column."""
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric and column.nunique() > MAX_NUMERIC_GROUPS:
        bins, edges = pd.qcut(column, q=4, retbins=True, duplicates="drop", labels=False)
        names = [f"{lo:.4g}–{hi:.4g}" for lo, hi in itertools.pairwise(edges)]
        labels = bins.map(lambda b: MISSING if pd.isna(b) else names[int(b)])
    else:
        labels = column.map(lambda v: MISSING if pd.isna(v) else _text(v))
    return labels.astype(str)


def _text(value: Any) -> str:
    """A value as a group name: ``1`` rather than ``1.0`` for whole floats."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- before training


def data_bias(frame: pd.DataFrame, target: str, sensitive: list[str], task: str,
              positive: Any = None, limits: FairnessLimits = FairnessLimits()) -> tuple[dict, list[Finding]]:
    """Bias in the labels before training, per sensitive column (and their intersection).

    For each group: its size and share, its label rate (positive rate for binary classification,
    class distribution for multiclass, mean target for regression), CI and DPL against the rest
    (DPL per class for multiclass; for regression the mean target difference, also in standard
    deviations).  ``positive`` is the positive class of a binary target (default: the second in
    sorted order, the class honing encodes as 1).  Rows without a target are left out.
    Findings: ``group_imbalance`` (|CI| ≥ limits.group_imbalance, the most imbalanced group) and
    ``label_rate_difference`` (|DPL| ≥ limits.label_rate, groups and rests of at least
    limits.min_group_size rows) — ``label_mean_difference`` (|gap| ≥ limits.label_mean) for regression.
    """
    if target not in frame.columns:
        raise DataError(f"target column '{target}' is not in the data", did_you_mean(target, frame.columns))
    groups = group_labels(frame, sensitive)
    labelled = frame[target].notna().to_numpy()
    y = frame[target][labelled].reset_index(drop=True)
    kind = _label_kind(task, y)
    classes = _sorted(y.unique())
    if kind == "binary":
        positive = _positive_class(classes, positive, target)
    elif kind == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise DataError(f"target column '{target}' is not numeric, but the task is regression",
                        "set task: classification, or pick a numeric target")
    report: dict[str, Any] = {}
    findings: list[Finding] = []
    for name, labels in groups.items():
        g = labels[labelled].reset_index(drop=True)
        rows = {str(group): _group_bias(g == group, y, kind, classes, positive) for group in _sorted(g.unique())}
        report[name] = {"kind": kind, "groups": rows}
        if kind == "binary":
            report[name]["positive"] = _plain(positive)
        findings += _bias_findings(name, rows, kind, limits)
    return report, findings


def _label_kind(task: str, labels: Any) -> str:
    """``binary``, ``multiclass`` or ``regression`` from the task and the labels seen."""
    if task not in TASKS:
        raise RecipeError(f"unknown task '{task}'", did_you_mean(task, TASKS))
    if task in ("regression", "binary", "multiclass"):
        return task
    return "binary" if len(pd.unique(np.asarray(labels))) <= 2 else "multiclass"


def _positive_class(classes: list, positive: Any, target: str) -> Any:
    """The positive class: the one given (checked to occur), else the second in sorted order."""
    if positive is None:
        return classes[-1]
    match = [c for c in classes if c == positive or str(c) == str(positive)]
    if not match:
        raise DataError(f"positive class '{positive}' is not a value of target '{target}'",
                        did_you_mean(str(positive), [str(c) for c in classes]))
    return match[0]


def _group_bias(member: pd.Series, y: pd.Series, kind: str, classes: list, positive: Any) -> dict[str, Any]:
    """Size, label rate, CI and DPL of one group (facet d = ``member``) against the rest (facet a)."""
    member = member.to_numpy()
    n_d, n_a = int(member.sum()), int((~member).sum())
    row: dict[str, Any] = {"count": n_d, "share": n_d / len(member), "ci": (n_a - n_d) / (n_a + n_d)}
    if kind == "regression":
        values = y.to_numpy(dtype=float)
        mean_d, mean_a = values[member].mean(), values[~member].mean() if n_a else math.nan
        spread = values.std()
        row |= {"label_mean": mean_d, "rest_label_mean": mean_a, "mean_difference": mean_a - mean_d,
                "standardized_mean_difference": (mean_a - mean_d) / spread if spread > 0 else 0.0}
    elif kind == "binary":
        hits = (y == positive).to_numpy()
        q_d, q_a = hits[member].mean(), hits[~member].mean() if n_a else math.nan
        row |= {"label_rate": q_d, "rest_label_rate": q_a, "dpl": q_a - q_d}
    else:
        rates = {_text(c): (y == c).to_numpy()[member].mean() for c in classes}
        rest = {_text(c): (y == c).to_numpy()[~member].mean() if n_a else math.nan for c in classes}
        row |= {"label_rate": rates, "rest_label_rate": rest, "dpl": {c: rest[c] - rates[c] for c in rates}}
    return _plain(row)


def _bias_findings(name: str, rows: dict[str, dict], kind: str, limits: FairnessLimits) -> list[Finding]:
    """``group_imbalance`` and the label-difference finding for one column, worst group each."""
    findings = []
    group, ci = _worst({g: r["ci"] for g, r in rows.items()})
    if group is not None and abs(ci) >= limits.group_imbalance:
        flagged = sorted(g for g, r in rows.items() if abs(r["ci"]) >= limits.group_imbalance)
        findings.append(Finding(
            "group_imbalance", "warning",
            f"group '{group}' of '{name}' is {rows[group]['share']:.0%} of the rows (CI = {ci:+.2f} against the rest)",
            column=name, count=rows[group]["count"], value=ci,
            details={"group": group, "limit": limits.group_imbalance, "groups": flagged}))
    total = sum(r["count"] for r in rows.values())
    # a label rate needs enough rows on both sides of the comparison
    sized = {g: r for g, r in rows.items() if min(r["count"], total - r["count"]) >= limits.min_group_size}
    return findings + _label_findings(name, rows, sized, kind, limits)


def _label_findings(name: str, rows: dict[str, dict], sized: dict[str, dict], kind: str,
                    limits: FairnessLimits) -> list[Finding]:
    """The label-difference finding of one column: the group (and class) with the largest gap."""
    findings = []
    if kind == "regression":
        gaps = {g: r["standardized_mean_difference"] for g, r in sized.items()}
        group, gap = _worst(gaps)
        if group is not None and abs(gap) >= limits.label_mean:
            r = rows[group]
            findings.append(Finding(
                "label_mean_difference", "warning",
                f"mean target is {r['label_mean']:.4g} in group '{group}' of '{name}' vs {r['rest_label_mean']:.4g} "
                f"in the rest ({gap:+.2f} standard deviations)",
                column=name, count=r["count"], value=gap,
                details={"group": group, "limit": limits.label_mean, "mean_difference": r["mean_difference"]}))
        return findings
    pairs = {(g, c): d for g, r in sized.items()
             for c, d in (r["dpl"].items() if kind == "multiclass" else [(None, r["dpl"])])}
    (group, cls), dpl = _worst(pairs) if pairs else ((None, None), None)
    if group is not None and abs(dpl) >= limits.label_rate:
        r = rows[group]
        rate, rest = (r["label_rate"], r["rest_label_rate"]) if cls is None else \
            (r["label_rate"][cls], r["rest_label_rate"][cls])
        label = "positive label" if cls is None else f"class '{cls}'"
        findings.append(Finding(
            "label_rate_difference", "warning",
            f"{label} rate is {rate:.1%} in group '{group}' of '{name}' vs {rest:.1%} in the rest (DPL = {dpl:+.2f})",
            column=name, count=r["count"], value=dpl,
            details={"group": group, "class": cls, "limit": limits.label_rate}))
    return findings


def _worst(values: dict) -> tuple[Any, Any]:
    """The key with the largest |value| (ties: the positive value, then the first key); NaN/None skipped."""
    valid = {k: v for k, v in values.items() if v is not None}
    if not valid:
        return None, None
    key = max(valid, key=lambda k: (abs(valid[k]), valid[k]))
    return key, valid[key]


# --------------------------------------------------------------------------- after training


def model_fairness(y_true: Any, y_pred: Any, groups: dict[str, pd.Series], task: str, positive_label: int = 1,
                   limits: FairnessLimits = FairnessLimits()) -> tuple[dict, list[Finding]]:
    """Fairness of predictions, per group column, on encoded labels (0..K-1) or regression values.

    Returns ``{column: {"by_group": {group: {metric: value}}, "overall": {metric: value},
    "measures": {measure: value}, "small_groups": {group: rows}}}`` (JSON-ready, NaN as None) and the
    findings.  Binary: count, accuracy, selection rate, TPR, FPR, precision per group;
    ``demographic_parity_difference``, ``demographic_parity_ratio``, ``equalized_odds_difference``,
    ``equal_opportunity_difference``, ``disparate_impact`` (the selection-rate ratio; the four-fifths
    rule flags it below 0.8) and ``accuracy_difference``.  Multiclass: count, accuracy, balanced
    accuracy; ``accuracy_difference``.  Regression: count, MAE, R²; ``mae_difference`` (the finding's
    value) and ``mae_relative_difference`` (what limits.mae_difference is compared with).  The
    measures compare the groups with at least ``limits.min_group_size`` rows (none when fewer than
    two are that large) and equal fairlearn's functions on those rows.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} rows, y_pred {len(y_pred)}")
    kind = _label_kind(task, np.concatenate([y_true, y_pred]))
    report: dict[str, Any] = {}
    findings: list[Finding] = []
    for name, labels in groups.items():
        g = np.asarray(labels).astype(str)
        if len(g) != len(y_true):
            raise ValueError(f"group column '{name}' has {len(g)} rows, the predictions {len(y_true)}")
        sizes = pd.Series(g).value_counts()
        small = sizes[sizes < limits.min_group_size]
        keep = ~np.isin(g, small.index.to_numpy())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty classes in a group: zero-division / undefined metrics
            frame = _frame(kind, positive_label, y_true, y_pred, g)
            measures = {}
            if len(sizes) - len(small) >= 2:
                measured = frame if small.empty else _frame(kind, positive_label, y_true[keep], y_pred[keep], g[keep])
                measures = _measures(kind, measured)
        by_group = {str(k): _plain(v) | {"count": int(v["count"])}
                    for k, v in frame.by_group.to_dict(orient="index").items()}
        overall = _plain(frame.overall.to_dict()) | {"count": len(g)}
        report[name] = {"by_group": by_group, "overall": overall, "measures": measures,
                        "small_groups": {str(k): int(v) for k, v in small.items()}}
        measured_groups = {k: v for k, v in by_group.items() if k not in report[name]["small_groups"]}
        findings += _model_findings(name, measured_groups, measures, limits)
    return report, findings


def _frame(kind: str, positive: int, y_true: np.ndarray, y_pred: np.ndarray, g: np.ndarray) -> MetricFrame:
    """fairlearn's per-group table of the task kind's metrics."""
    return MetricFrame(metrics=_metrics(kind, positive), y_true=y_true, y_pred=y_pred, sensitive_features=g)


def _metrics(kind: str, positive: int) -> dict[str, Any]:
    """The per-group metrics of a task kind."""
    if kind == "binary":
        return {"count": count, "accuracy": accuracy_score,
                "selection_rate": partial(selection_rate, pos_label=positive),
                "true_positive_rate": partial(true_positive_rate, pos_label=positive),
                "false_positive_rate": partial(false_positive_rate, pos_label=positive),
                "precision": partial(precision_score, pos_label=positive, zero_division=0.0)}
    if kind == "multiclass":
        return {"count": count, "accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score}
    return {"count": count, "mae": mean_absolute_error, "r2": r2_score}


def _measures(kind: str, frame: MetricFrame) -> dict[str, float | None]:
    """The disparity measures (between groups), as fairlearn's functions compute them."""
    diff, ratio = frame.difference(), frame.ratio()
    if kind == "binary":
        return _plain({
            "demographic_parity_difference": diff["selection_rate"],
            "demographic_parity_ratio": ratio["selection_rate"],
            # fairlearn: max over [TPR difference, FPR difference], in that order
            "equalized_odds_difference": max([diff["true_positive_rate"], diff["false_positive_rate"]]),
            "equal_opportunity_difference": diff["true_positive_rate"],
            "disparate_impact": ratio["selection_rate"],
            "accuracy_difference": diff["accuracy"],
        })
    if kind == "multiclass":
        return _plain({"accuracy_difference": diff["accuracy"]})
    overall = frame.overall["mae"]
    return _plain({"mae_difference": diff["mae"],
                   "mae_relative_difference": diff["mae"] / overall if overall > 0 else 0.0})


#: Measure → (the per-group metric it compares, what it is called in a message).
_MEASURED = {
    "demographic_parity_difference": ("selection_rate", "selection rate"),
    "equalized_odds_difference": ("true_positive_rate", "TPR/FPR"),
    "equal_opportunity_difference": ("true_positive_rate", "true positive rate"),
    "disparate_impact": ("selection_rate", "selection rate"),
    "accuracy_difference": ("accuracy", "accuracy"),
    "mae_difference": ("mae", "MAE"),
}


def _model_findings(name: str, by_group: dict[str, dict], measures: dict[str, Any],
                    limits: FairnessLimits) -> list[Finding]:
    """One finding per measure past its limit (``disparate_impact``: below it)."""
    findings = []
    for check, (metric, label) in _MEASURED.items():
        value = measures.get(check)
        # the MAE gap is judged relative to the overall MAE (raw gaps depend on the target's scale)
        judged = measures.get("mae_relative_difference") if check == "mae_difference" else value
        if value is None or judged is None:
            continue
        limit = getattr(limits, check)
        if not ((judged >= limit) if check != "disparate_impact" else (judged < limit)):
            continue
        if check == "equalized_odds_difference" and _spread(by_group, "false_positive_rate") > value - 1e-12:
            metric, label = "false_positive_rate", "false positive rate"
        per_group = {g: row[metric] for g, row in by_group.items()}
        known = {g: v for g, v in per_group.items() if v is not None}
        if not known:
            continue
        low, high = min(known, key=known.get), max(known, key=known.get)
        if check == "disparate_impact":
            what = f"disparate impact {value:.2f} < {limit:g} (four-fifths rule)"
        elif check == "mae_difference":
            what = f"MAE gap {value:.4g} is {judged:.0%} of the overall MAE (limit {limit:.0%})"
        else:
            what = f"{check} {value:.2f} ≥ {limit:g}"
        findings.append(Finding(
            check, "warning",
            f"'{name}': {what} — {label} {known[low]:.3g} for '{low}' vs {known[high]:.3g} for '{high}'",
            column=name, count=sum(row["count"] for row in by_group.values()), value=value,
            details={"limit": limit, "lowest": low, "highest": high, metric: per_group}
            | ({"relative": judged} if check == "mae_difference" else {})))
    return findings


def _spread(by_group: dict[str, dict], metric: str) -> float:
    """Largest minus smallest value of a metric over the groups (0 when none is known)."""
    known = [row[metric] for row in by_group.values() if row.get(metric) is not None]
    return max(known) - min(known) if known else 0.0


# --------------------------------------------------------------------------- helpers


def _sorted(values: Any) -> list:
    """Values in sorted order (by text when they do not compare, e.g. mixed types)."""
    values = list(values)
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN/inf/NA to None, through dicts and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value if isinstance(value, str) else str(value)

"""Data-quality audit: checks on the raw table for what would spoil a model or its metrics.

:func:`check_quality` runs the checks of :data:`CHECKS` on the table before any cleaning and returns
one :class:`~honing.audit.findings.Finding` per problem, in :data:`CHECKS` order.  Thresholds live in
:class:`QualityLimits`.  Blank strings count as missing; columns of unhashable objects (lists, dicts)
are compared as text when rows are, and otherwise only checked for missing values; ``ignore`` columns
are not looked at.

``value`` per check: missing_values, duplicate_rows (surplus copies), conflicting_labels, outliers,
split_leakage, mixed_types (minority type): the share of rows or values involved; constant_column 1.0;
near_constant_column the top value's share; identifier_column the distinct share; high_cardinality the
distinct count; class_imbalance majority / minority count; target_leakage the single-feature CV score;
distribution_shift the KS D or Cramér's V.  split_leakage is a warning, not an error, when rows repeat
within train at least half as often as across the splits (few distinct rows: repeats are expected).

Severity is ``error`` for what makes metrics untrustworthy (target or split leakage, an entirely
missing column, conflicting labels on more than ``limits.conflicts`` of the rows), ``info`` for mild
notes (a few missing values, a near-constant column, numbers mixed into a text column), else ``warning``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as pdt
from sklearn.metrics import balanced_accuracy_score, r2_score, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from honing.audit.findings import Finding
from honing.audit.splits import as_float, as_text, distribution_shift, finding, row_hashes, split_leakage
from honing.bundle.manifest import SUPERVISED_TASKS
from honing.data.image_sources import looks_like_image_paths
from honing.data.schema import looks_like_dates

CHECKS: tuple[str, ...] = (
    "missing_values", "duplicate_rows", "conflicting_labels", "constant_column", "near_constant_column",
    "identifier_column", "high_cardinality", "outliers", "class_imbalance", "target_leakage",
    "split_leakage", "distribution_shift", "mixed_types",
)
_ID_WORDS = {"id", "uuid", "guid", "uid", "key"}
_MIN_LEAKAGE_ROWS = 30  # fewer labelled rows: no leakage check
_EXAMPLES = 5


@dataclass(frozen=True)
class QualityLimits:
    """Thresholds of the quality checks (defaults in brackets), as shares of rows unless noted.

    Missing ``missing`` (0.05) or more: warning, else info.  Conflicting labels on more than
    ``conflicts`` (0.05): error.  Top value on ``near_constant`` (0.99) of the rows: near-constant.
    Identifiers: ``identifier`` (0.95) distinct values (text, or integer counters), ``identifier_name``
    (0.8) for id-like names (``id``, ``*_id``, ``*Id``, ``uuid``…), at least ``min_rows`` (20) values
    (also the least for outliers) and fewer than ``free_text_words`` (6) words on average.  More than
    ``max_categories`` (50) distinct values: high cardinality.  Outliers: beyond Q1 − k·IQR or Q3 + k·IQR
    (k = ``outlier_k``, 3) or robust z above ``outlier_z`` (3.5), on more than ``outliers`` (0.01).
    Class counts ratio ``imbalance`` (3) or more: imbalanced.  Leakage: single-feature score of a tree of
    depth ``leakage_depth`` (6) on ``leakage_rows`` (5000) rows of at least ``leakage`` (0.98, AUC or
    balanced accuracy) or ``leakage_r2`` (0.98).  Shift: p below ``shift_p`` (0.01, Bonferroni-corrected)
    and KS D or Cramér's V of at least ``shift_effect`` (0.1), the ``shift_categories`` (20) most common
    categories kept.  Mixed types with ``mostly_numbers`` (0.9) numbers: warning, else info.
    """

    missing: float = 0.05
    conflicts: float = 0.05
    near_constant: float = 0.99
    identifier: float = 0.95
    identifier_name: float = 0.8
    min_rows: int = 20
    free_text_words: float = 6.0
    max_categories: int = 50
    outlier_k: float = 3.0
    outlier_z: float = 3.5
    outliers: float = 0.01
    imbalance: float = 3.0
    leakage: float = 0.98
    leakage_r2: float = 0.98
    leakage_rows: int = 5000
    leakage_depth: int = 6
    shift_p: float = 0.01
    shift_effect: float = 0.1
    shift_categories: int = 20
    mostly_numbers: float = 0.9


@dataclass
class _Table:
    """A frame prepared for the checks: ignored columns dropped, blank strings made missing."""

    frame: pd.DataFrame
    kinds: dict[Any, str]  # 'bool', 'numeric', 'datetime' or 'text'
    columns: list[Any]  # the hashable columns: per-column checks (but missing_values) look only at these
    target: Any = None
    task: str | None = None
    limits: QualityLimits = field(default_factory=QualityLimits)
    identifiers: dict[Any, float] = field(default_factory=dict)  # column: distinct share

    @property
    def features(self) -> list[Any]:
        return [c for c in self.columns if c != self.target]


def check_quality(frame: pd.DataFrame, target: str | None, task: str | None = None, *,
                  splits: dict[str, pd.DataFrame] | None = None, ignore: Iterable[str] = (),
                  limits: QualityLimits = QualityLimits(), seed: int = 0) -> list[Finding]:
    """All checks on the raw table (before any cleaning), findings in :data:`CHECKS` order.

    ``task`` is "classification", "regression" or None (no target or unknown: the target-based
    checks are skipped).  ``splits`` (e.g. ``{"train": df, "validation": df, "test": df}``, raw rows
    with the target column) enables split_leakage and distribution_shift: each other split against
    "train".  ``ignore``: columns to skip entirely (dropped by the user).  ``seed`` fixes the rows
    sampled and the folds of the leakage check.
    """
    if task not in (None, *SUPERVISED_TASKS):
        raise ValueError(f"task must be one of {SUPERVISED_TASKS} or None, not {task!r}")
    ignored = set(ignore)
    t = _prepare(frame, ignored)
    if t.frame.empty:
        return []
    t.target = target if target in t.frame.columns else None
    t.task, t.limits = (task if t.target in t.columns else None), limits
    t.identifiers = {c: r for c in t.features if (r := _identifier_ratio(t, c)) is not None}
    findings = _duplicate_rows(t) + _conflicting_labels(t) + _class_imbalance(t) + _target_leakage(t, seed)
    for check in (_missing_values, _constant_column, _identifier_column, _high_cardinality, _outliers,
                  _mixed_types):
        findings += [f for col in t.frame.columns if (f := check(t, col)) is not None]
    if splits and "train" in splits:
        train = _prepare(splits["train"], ignored)
        held = {name: _prepare(df, ignored) for name, df in splits.items() if name != "train"}
        findings += [f for name, h in held.items()
                     for f in split_leakage(train.frame, h.frame, train.kinds, t.target, name)]
        for name, h in held.items():  # the hashable features of both splits, identifiers left out
            columns = [c for c in train.columns
                       if c != t.target and c not in t.identifiers and c in h.columns]
            findings += distribution_shift(train.frame, h.frame, columns, train.kinds, name,
                                           shift_p=t.limits.shift_p, shift_effect=t.limits.shift_effect,
                                           categories=t.limits.shift_categories)
    return sorted(findings, key=lambda f: CHECKS.index(f.check))


def _prepare(frame: pd.DataFrame, ignored: set) -> _Table:
    """Drop ignored (and repeated) columns, make blank strings missing, sort out the kinds."""
    keep = np.array([c not in ignored for c in frame.columns], dtype=bool) & ~frame.columns.duplicated()
    frame = frame.loc[:, keep].copy()
    kinds = {c: _kind(frame[c]) for c in frame.columns}
    for col in [c for c in frame.columns if kinds[c] == "text"]:
        s = frame[col]
        blank = s.str.strip().eq("").fillna(False) if isinstance(s.dtype, pd.StringDtype) \
            else s.map(lambda v: isinstance(v, str) and not v.strip())
        frame[col] = s.mask(blank.astype(bool))
        if looks_like_dates(frame[col]):  # dates as a file gives them (strings)
            kinds[col] = "datetime"
    return _Table(frame, kinds, [c for c in frame.columns if _hashable(frame[c])])


def _kind(s: pd.Series) -> str:
    """'bool', 'numeric', 'datetime' (dates, durations, periods) or 'text' (anything else; text that
    reads as dates is made 'datetime' by :func:`_prepare`)."""
    if pdt.is_bool_dtype(s.dtype):
        return "bool"
    if pdt.is_datetime64_any_dtype(s.dtype) or pdt.is_timedelta64_dtype(s.dtype) \
            or isinstance(s.dtype, pd.PeriodDtype):
        return "datetime"
    return "numeric" if pdt.is_numeric_dtype(s.dtype) and not pdt.is_complex_dtype(s.dtype) else "text"


def _hashable(s: pd.Series) -> bool:
    try:
        s.nunique()
    except TypeError:
        return False
    return True


def _missing_values(t: _Table, col: Any) -> Finding | None:
    """Rows missing in ``col`` (blank strings included)."""
    n, count = len(t.frame), int(t.frame[col].isna().sum())
    if not count:
        return None
    severity = "error" if count == n else "warning" if count / n >= t.limits.missing else "info"
    return finding("missing_values", severity, f"column '{col}': {count} of {n} rows missing "
                    f"({count / n:.1%})", col, count, count / n)


def _duplicate_rows(t: _Table) -> list[Finding]:
    """Exact copies of earlier rows (all columns)."""
    repeated = pd.Series(row_hashes(t.frame, list(t.frame.columns), t.kinds)).duplicated().to_numpy()
    count, n = int(repeated.sum()), len(t.frame)
    if not count:
        return []
    return [finding("duplicate_rows", "warning", f"{count} duplicate rows ({count / n:.1%} of {n}): "
                     "exact copies of earlier rows", None, count, count / n,
                     examples=list(t.frame.index[repeated][:_EXAMPLES]))]


def _conflicting_labels(t: _Table) -> list[Finding]:
    """Rows with identical features (all columns but the target) but different targets."""
    features = [c for c in t.frame.columns if c != t.target]
    if t.task is None or not features:
        return []
    labelled = t.frame[t.frame[t.target].notna()]
    hashes = row_hashes(labelled, features, t.kinds)
    labels = pd.Series(pd.factorize(as_text(labelled[t.target]))[0])
    involved = (labels.groupby(hashes).transform("nunique") > 1).to_numpy()
    count, n = int(involved.sum()), len(labelled)
    if not count:
        return []
    groups = len(np.unique(hashes[involved]))
    first = np.flatnonzero(hashes == hashes[involved][0])[:_EXAMPLES]
    severity = "error" if count / n > t.limits.conflicts and t.task == "classification" else "warning"
    return [finding("conflicting_labels", severity, f"{count} of {n} rows ({count / n:.1%}) in {groups} "
                     f"groups have identical features but different '{t.target}'", t.target, count,
                     count / n, groups=groups, example={"rows": list(labelled.index[first]),
                                                        "labels": list(labelled[t.target].iloc[first])})]


def _constant_column(t: _Table, col: Any) -> Finding | None:
    """One distinct value (constant_column) or one value covering nearly all rows (near_constant)."""
    if col not in t.columns or (n := int((counts := t.frame[col].value_counts()).sum())) < 2:
        return None
    top, share = counts.index[0], counts.iloc[0] / n
    if len(counts) == 1:
        return finding("constant_column", "warning", f"column '{col}' has a single value ({top!s}) in "
                        f"all {n} non-missing rows", col, n, 1.0, top=top)
    if share < t.limits.near_constant or (col == t.target and t.task == "classification"):
        return None
    return finding("near_constant_column", "info", f"column '{col}': one value ({top!s}) covers "
                    f"{share:.1%} of {n} non-missing rows", col, int(n - counts.iloc[0]), share, top=top)


def _id_like(name: str) -> bool:
    """Named like an identifier: id, uuid, key, customer_id, PassengerId, userID…"""
    if re.search(r"[a-z0-9](Id|ID|Uuid|UUID|Guid|GUID|Key)$", name):
        return True
    return re.split(r"[\s_.\-]+", name.strip().lower())[-1] in _ID_WORDS


def _identifier_ratio(t: _Table, col: Any) -> float | None:
    """The distinct share of ``col`` if it looks like an identifier, else None."""
    values, kind = t.frame[col].dropna(), t.kinds[col]
    if len(values) < t.limits.min_rows or kind in ("bool", "datetime") or _image_paths(t, col):
        return None
    ratio = values.nunique() / len(values)
    whole = kind == "text" or bool(np.all(np.isfinite(x := as_float(values)) & (x == np.round(x))))
    if _id_like(str(col)) and whole and ratio >= t.limits.identifier_name:
        return ratio
    if ratio < t.limits.identifier:
        return None
    if kind == "numeric":  # a unique integer column is a measurement unless it counts the rows
        return ratio if whole and (values.is_monotonic_increasing or values.is_monotonic_decreasing) else None
    return ratio if as_text(values).str.split().str.len().mean() < t.limits.free_text_words else None


def _image_paths(t: _Table, col: Any) -> bool:
    """A column of image file paths (a feature whose values are all distinct by nature)."""
    return t.kinds[col] == "text" and looks_like_image_paths(t.frame[col])


def _identifier_column(t: _Table, col: Any) -> Finding | None:
    if (ratio := t.identifiers.get(col)) is None:
        return None
    n = int(t.frame[col].notna().sum())
    return finding("identifier_column", "warning", f"column '{col}' looks like an identifier: "
                    f"{round(ratio * n)} distinct values in {n} non-missing rows ({ratio:.1%})",
                    col, round(ratio * n), ratio)


def _high_cardinality(t: _Table, col: Any) -> Finding | None:
    if col not in t.features or t.kinds[col] != "text" or col in t.identifiers or _image_paths(t, col):
        return None
    if (distinct := t.frame[col].nunique()) <= t.limits.max_categories:
        return None
    return finding("high_cardinality", "warning", f"column '{col}': {distinct} distinct values (more "
                    f"than {t.limits.max_categories} categories)", col, distinct, distinct)


def _outliers(t: _Table, col: Any) -> Finding | None:
    """Numeric values beyond the IQR fences or with a robust z-score above the limit."""
    lim = t.limits
    if col not in t.columns or t.kinds[col] != "numeric" or col in t.identifiers \
            or (col == t.target and t.task != "regression"):
        return None
    x = as_float(t.frame[col])
    x = x[~np.isnan(x)]
    finite = x[np.isfinite(x)]
    if len(finite) < lim.min_rows or len(np.unique(finite)) <= 2:
        return None
    q1, median, q3 = np.percentile(finite, [25, 50, 75])
    iqr, mad = q3 - q1, 1.4826 * np.median(np.abs(finite - median))
    if iqr == 0:  # then half the values are equal and MAD is 0 too: no spread to judge by
        return None
    low, high = q1 - lim.outlier_k * iqr, q3 + lim.outlier_k * iqr
    by_iqr = (x < low) | (x > high)
    with np.errstate(all="ignore"):
        by_z = np.abs(x - median) / mad > lim.outlier_z if mad > 0 else np.zeros(len(x), bool)
    flagged = by_iqr | by_z
    if (share := flagged.mean()) <= lim.outliers:
        return None
    extremes = pd.unique(x[flagged][np.argsort(-np.abs(x[flagged] - median))])[:_EXAMPLES]
    # far outside the quartiles is worth a look; a long tail that only the z-score sees is a note
    severity = "warning" if by_iqr.mean() > lim.outliers else "info"
    return finding("outliers", severity, f"column '{col}': {flagged.sum()} of {len(x)} values "
                    f"({share:.1%}) are outliers (IQR rule: {by_iqr.sum()}, robust z: {by_z.sum()})",
                    col, flagged.sum(), share, iqr=by_iqr.sum(), robust_z=by_z.sum(), lower=low,
                    upper=high, examples=extremes)


def _class_imbalance(t: _Table) -> list[Finding]:
    if t.task != "classification" or len(counts := t.frame[t.target].value_counts()) < 2:
        return []
    if (ratio := counts.iloc[0] / counts.iloc[-1]) < t.limits.imbalance:
        return []
    return [finding("class_imbalance", "warning", f"target '{t.target}': majority class "
                     f"'{counts.index[0]}' has {counts.iloc[0]} rows, minority class '{counts.index[-1]}' "
                     f"{counts.iloc[-1]} (ratio {ratio:.1f})", t.target, counts.iloc[-1], ratio,
                     counts=counts.to_dict())]


def _target_leakage(t: _Table, seed: int) -> list[Finding]:
    """Features that alone predict the target almost perfectly (3-fold CV of a shallow tree)."""
    if t.task is None:
        return []
    rows = t.frame[t.frame[t.target].notna()]
    if t.task == "regression":
        y = as_float(rows[t.target])
        rows, y = rows[np.isfinite(y)], y[np.isfinite(y)]
    else:
        y = pd.factorize(as_text(rows[t.target]))[0]
    if len(rows) > t.limits.leakage_rows:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), t.limits.leakage_rows, replace=False))
        rows, y = rows.iloc[pick], y[pick]
    if len(rows) < _MIN_LEAKAGE_ROWS or len(np.unique(y)) < 2:
        return []
    metric = "R²" if t.task == "regression" else "ROC AUC" if len(np.unique(y)) == 2 else "balanced accuracy"
    limit = t.limits.leakage_r2 if t.task == "regression" else t.limits.leakage
    stratify = t.task == "classification" and np.bincount(y).max() >= 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class with fewer than 3 rows
        folds = list((StratifiedKFold if stratify else KFold)(3, shuffle=True, random_state=seed)
                     .split(np.zeros(len(y)), y))
    out = []
    for col in t.features:
        if col in t.identifiers:
            continue
        values = rows[col] if t.kinds[col] != "text" else as_text(rows[col])  # codes: sorted values,
        codes = pd.factorize(values, sort=True)[0].astype(np.float32).reshape(-1, 1)  # missing -1
        score = _tree_score(codes, y, folds, metric, t.limits.leakage_depth, seed)
        if score is not None and score >= limit:
            out.append(finding("target_leakage", "error", f"column '{col}' alone predicts '{t.target}' "
                                f"with {metric} {score:.3f} (3-fold CV): likely target leakage", col,
                                len(rows), score, metric=metric))
    return out


def _tree_score(x: np.ndarray, y: np.ndarray, folds: list, metric: str, depth: int,
                seed: int) -> float | None:
    """Mean cross-validated ``metric`` of a decision tree on the single feature ``x``."""
    if len(np.unique(x)) < 2:
        return None
    scores = []
    for train, test in folds:
        if metric == "R²":
            tree = DecisionTreeRegressor(max_depth=depth, random_state=seed).fit(x[train], y[train])
            scores.append(r2_score(y[test], tree.predict(x[test])))
            continue
        tree = DecisionTreeClassifier(max_depth=depth, random_state=seed).fit(x[train], y[train])
        if metric == "ROC AUC" and len(np.unique(y[test])) == 2 == len(tree.classes_):
            scores.append(roc_auc_score(y[test], tree.predict_proba(x[test])[:, 1]))
        elif metric == "balanced accuracy":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores.append(balanced_accuracy_score(y[test], tree.predict(x[test])))
    return float(np.mean(scores)) if scores else None


def _mixed_types(t: _Table, col: Any) -> Finding | None:
    """A text column mixing numbers and words (dirty numbers, or numbers among labels)."""
    if col not in t.columns or t.kinds[col] != "text":
        return None
    values = as_text(t.frame[col]).dropna().str.strip()
    numeric = pd.to_numeric(values, errors="coerce").notna().to_numpy()
    if values.empty or (share := numeric.mean()) in (0.0, 1.0):
        return None
    minority = ~numeric if share >= 0.5 else numeric
    examples = list(pd.unique(values[minority]))[:_EXAMPLES]
    severity = "warning" if share >= t.limits.mostly_numbers else "info"
    what = "are not numbers while the rest are" if share >= 0.5 else "are numbers while the rest are not"
    return finding("mixed_types", severity, f"column '{col}': {minority.sum()} of {len(values)} values "
                    f"({minority.mean():.1%}) {what} (e.g. {', '.join(map(repr, examples[:3]))})",
                    col, minority.sum(), minority.mean(), examples=examples)

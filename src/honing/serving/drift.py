"""Drift of logged data against the training reference profile (:mod:`honing.serving.profile`).

Per feature, and for the predictions:

* **PSI**, the population stability index ``sum((a - e) * ln(a / e))`` over the training bins
  (numeric) or categories (categorical), shares clipped to ``eps``.  For categorical features, a
  category is its own bucket only when it is expected at least 5 times both in training and in the
  current sample (``share * min(training count, current count) >= 5``, the chi-square rule of
  thumb); rarer ones are pooled with the training "other" share and with values never seen in
  training into one other/unseen bucket, so sparse categories (ticket numbers, cabins) do not fake
  drift.  Numeric bins need no pooling: the profile's bins each hold at least 1/(2·bins) of training.
* **KS** (numeric): the profile keeps quantiles, not the training sample, so the Kolmogorov-Smirnov
  statistic compares the current sample's empirical CDF with the reference CDF interpolated linearly
  between the stored quantiles (exact steps at repeated quantiles, so discrete features keep their
  jumps).  It is an approximation of the two-sample statistic, off by at most about one quantile step
  (1/100 with 101 quantiles); the p-value is the two-sample asymptotic one (Smirnov's distribution
  with ``n·m/(n+m)`` observations, as ``scipy.stats.ks_2samp(method="asymp")``), with the training
  count as the reference sample size.
* **Chi-square** (categorical): Pearson's test, without continuity correction, on the 2×K table of
  training counts (share × training count) and current counts over the same buckets as PSI,
  empty columns dropped.
* **Missing rates** of training and now.
* **Shares** (``shares``: ``labels``, ``reference``, ``current``): the training and current shares of
  the buckets PSI compared (numeric bins named "≤ 1", "(1, 2]", "> 2"; categories and
  "other/unseen"), for plots.

Every statistic is a plain float (None when there is nothing to measure: no value present), so the
rows are JSON as they are.

Logged values may be raw (JSON numbers, strings) or already coerced: they are coerced as training
coerced the feature (:func:`honing.serving.profile.coerce_values`), so "1", 1 and 1.0 agree.
:func:`judge` turns these statistics into drift verdicts with the recipe's ``monitor.drift``
thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from honing.recipe import DriftThresholds
from honing.serving.profile import bin_counts, coerce_values

#: Fewest expected occurrences (in training and now) for a category to be its own bucket.
MIN_EXPECTED = 5
_OTHER = "\x00other"
#: The name of the pooled bucket in ``shares``.
OTHER_LABEL = "other/unseen"


def psi(expected: Sequence[float], actual: Sequence[float], eps: float = 1e-4) -> float:
    """Population stability index of two share vectors over the same buckets:
    ``sum((a - e) * ln(a / e))`` with every share clipped to at least ``eps``."""
    e = np.maximum(np.asarray(expected, dtype="float64"), eps)
    a = np.maximum(np.asarray(actual, dtype="float64"), eps)
    if e.shape != a.shape:
        raise ValueError(f"psi needs share vectors of the same length (got {e.size} and {a.size})")
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_drift(ref: dict, values: pd.Series) -> dict:
    """PSI, KS statistic and p-value, missing rates and means of ``values`` against the numeric
    profile ``ref``.  ``rows`` counts the non-missing values, ``total`` all of them."""
    kind = ref.get("schema_kind", "numeric")
    numbers = coerce_values(values, kind).to_numpy(dtype="float64")
    present = np.sort(numbers[~np.isnan(numbers)])
    out: dict[str, Any] = {"kind": "numeric", "rows": int(present.size), "total": int(numbers.size),
                           "psi": None, "ks_statistic": None, "ks_pvalue": None,
                           "missing_ref": ref["missing"], "missing_now": _rate(numbers.size - present.size, numbers.size),
                           "mean_ref": ref["mean"], "mean_now": None}
    if present.size == 0:
        return out
    shares = bin_counts(present, ref["edges"]) / present.size
    statistic = ks_statistic(ref["quantiles"], present)
    out.update(psi=psi(ref["proportions"], shares), ks_statistic=statistic,
               ks_pvalue=ks_pvalue(statistic, ref["count"], present.size), mean_now=float(np.mean(present)),
               shares={"labels": bin_labels(ref["edges"]), "reference": list(ref["proportions"]),
                       "current": [float(v) for v in shares]})
    return out


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Readable names of the bins of ``edges``: "≤ 1", "(1, 2]", "> 2" ("all" without edges)."""
    if not len(edges):
        return ["all"]
    inner = [f"({lo:g}, {hi:g}]" for lo, hi in pairwise(edges)]
    return [f"≤ {edges[0]:g}", *inner, f"> {edges[-1]:g}"]


def ks_statistic(quantiles: Sequence[float], values: np.ndarray) -> float:
    """The largest gap between the empirical CDF of sorted ``values`` and the reference CDF rebuilt
    from ``quantiles`` (evenly spaced levels 0 … 1), checked on both sides of every jump."""
    q = np.asarray(quantiles, dtype="float64")
    points = np.union1d(values, q)
    now_right = np.searchsorted(values, points, side="right") / values.size
    now_left = np.searchsorted(values, points, side="left") / values.size
    gaps = np.maximum(np.abs(now_right - _reference_cdf(q, points, "right")),
                      np.abs(now_left - _reference_cdf(q, points, "left")))
    return float(np.max(gaps)) if gaps.size else 0.0


def _reference_cdf(q: np.ndarray, points: np.ndarray, side: str) -> np.ndarray:
    """The CDF whose quantile at level ``k/(len(q)-1)`` is ``q[k]``, linear between distinct
    quantiles, at ``points`` (its value just after them for side="right", just before for "left")."""
    levels = np.linspace(0.0, 1.0, q.size)
    k = np.searchsorted(q, points, side=side)  # quantiles at or below (right) / below (left) each point
    inside = (k > 0) & (k < q.size)
    out = np.where(k >= q.size, 1.0, 0.0)
    lo, hi = k[inside] - 1, k[inside]
    span = q[hi] - q[lo]
    fraction = np.divide(points[inside] - q[lo], span, out=np.zeros_like(span), where=span > 0)
    out[inside] = levels[lo] + (levels[hi] - levels[lo]) * fraction
    return out


def ks_pvalue(statistic: float, n_ref: int, n_now: int) -> float | None:
    """Two-sided asymptotic two-sample KS p-value of ``statistic`` for samples of ``n_ref`` and
    ``n_now`` values (as ``scipy.stats.ks_2samp(method="asymp")``); None when either is empty."""
    if n_ref <= 0 or n_now <= 0:
        return None
    effective = round(n_ref * n_now / (n_ref + n_now))
    if effective < 1:
        return 1.0
    return float(np.clip(stats.kstwo.sf(statistic, effective), 0.0, 1.0))


def categorical_drift(ref: dict, values: pd.Series) -> dict:
    """PSI, chi-square statistic and p-value, missing rates and the unseen share of ``values`` against
    the categorical profile ``ref``."""
    kind = ref.get("schema_kind", "categorical")
    coerced = coerce_values(values, kind).tolist()
    present = [v for v in coerced if isinstance(v, str)]
    proportions: dict[str, float] = ref["proportions"]
    out: dict[str, Any] = {"kind": "categorical", "rows": len(present), "total": len(coerced),
                           "psi": None, "chi2": None, "chi2_pvalue": None, "missing_ref": ref["missing"],
                           "missing_now": _rate(len(coerced) - len(present), len(coerced)), "unseen": None}
    if not present:
        return out
    expected, actual = category_buckets(ref, present)
    out["unseen"] = _rate(sum(1 for v in present if v not in proportions), len(present))
    current = [actual[b] / len(present) for b in expected]
    out["psi"] = psi(list(expected.values()), current)
    out["chi2"], out["chi2_pvalue"] = _chi_square(expected, actual, ref["count"])
    out["shares"] = {"labels": [OTHER_LABEL if b == _OTHER else b for b in expected],
                     "reference": list(expected.values()), "current": current}
    return out


def category_buckets(ref: dict, present: list[str]) -> tuple[dict[str, float], dict[str, int]]:
    """The buckets that PSI and chi-square compare: {bucket: training share} and {bucket: current
    count}.  Categories expected fewer than :data:`MIN_EXPECTED` times (in training or now) and values
    unseen in training share the last bucket (``"\\x00other"``)."""
    floor = min(int(ref["count"]), len(present))
    kept = {v: s for v, s in ref["proportions"].items() if s * floor >= MIN_EXPECTED}
    expected = dict(kept)
    expected[_OTHER] = max(0.0, 1.0 - sum(kept.values()))
    actual = dict.fromkeys(expected, 0)
    for value in present:
        actual[value if value in kept else _OTHER] += 1
    return expected, actual


def _chi_square(expected: dict[str, float], actual: dict[str, int], count: int) -> tuple[float, float]:
    """Pearson chi-square (no continuity correction) on the 2×K table of training counts
    (share × ``count``) and current counts, empty columns dropped; (0, 1) with fewer than 2 columns."""
    table = np.array([[round(expected[b] * count) for b in expected], [actual[b] for b in expected]], dtype="float64")
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def feature_drift(profile: dict, frame: pd.DataFrame) -> list[dict]:
    """One row of drift statistics per profiled feature, in profile order: ``{"feature": name,
    **stats}``; a feature missing from ``frame`` gives ``{"feature", "kind", "rows": 0, "total": 0,
    "absent": True}``.  ``frame`` holds raw logged values or coerced ones."""
    rows = []
    for name, ref in profile["features"].items():
        if name not in frame.columns:
            rows.append({"feature": name, "kind": ref["kind"], "rows": 0, "total": 0, "absent": True})
        else:
            rows.append({"feature": name, **_drift(ref, frame[name])})
    return rows


def prediction_drift(profile: dict, predictions: pd.Series) -> dict | None:
    """Drift statistics of the model's ``predictions`` against the training predictions; None when
    the profile has no prediction part."""
    ref = profile.get("prediction")
    if ref is None:
        return None
    return _drift(ref, predictions if isinstance(predictions, pd.Series) else pd.Series(list(predictions)))


def _drift(ref: dict, values: pd.Series) -> dict:
    """Numeric or categorical drift, as ``ref`` says."""
    return numeric_drift(ref, values) if ref["kind"] == "numeric" else categorical_drift(ref, values)


def _rate(part: int, whole: int) -> float | None:
    """``part / whole``, None for an empty whole."""
    return float(part) / whole if whole else None


# --------------------------------------------------------------------------- verdicts


def judge(rows: list[dict], thresholds: DriftThresholds, min_rows: int) -> list[dict]:
    """Copies of drift ``rows`` with ``drifted`` (bool), ``reasons`` (why it drifted; empty when not)
    and ``note`` (why it was not fully judged, else None).

    A row with fewer than ``min_rows`` values in all (``total``), or absent from the data, is never
    drifted.  The missing-rate change is judged on all values; PSI, KS and chi-square only when at least
    ``min_rows`` values are present (non-missing).  A threshold set to None is not checked."""
    return [_judge_row(row, thresholds, min_rows) for row in rows]


def _judge_row(row: dict, thresholds: DriftThresholds, min_rows: int) -> dict:
    """One row's verdict (see :func:`judge`)."""
    out = {**row, "drifted": False, "reasons": [], "note": None}
    total = int(row.get("total", row.get("rows", 0)))
    if row.get("absent"):
        out["note"] = "absent from the data"
        return out
    if total < min_rows:
        out["note"] = f"too few rows ({total} < {min_rows})"
        return out
    reasons = _missing_reasons(row, thresholds)
    if row.get("rows", 0) < min_rows:
        out["note"] = f"too few values present for psi/KS/chi-square ({row.get('rows', 0)} < {min_rows})"
    else:
        reasons += _distribution_reasons(row, thresholds)
    out["reasons"], out["drifted"] = reasons, bool(reasons)
    return out


def _missing_reasons(row: dict, thresholds: DriftThresholds) -> list[str]:
    """"missing A → B" when the missing rate moved by at least ``missing_change``."""
    before, now, limit = row.get("missing_ref"), row.get("missing_now"), thresholds.missing_change
    if limit is None or before is None or now is None:
        return []
    if abs(now - before) >= limit - 1e-12:
        return [f"missing {_fmt(before)} → {_fmt(now)}"]
    return []


def _distribution_reasons(row: dict, thresholds: DriftThresholds) -> list[str]:
    """Reasons from PSI, the KS p-value (numeric) and the chi-square p-value (categorical)."""
    reasons = []
    value = row.get("psi")
    if thresholds.psi is not None and value is not None and value >= thresholds.psi:
        reasons.append(f"psi {_fmt(value)} ≥ {thresholds.psi:g}")
    value = row.get("ks_pvalue")
    if thresholds.ks_pvalue is not None and value is not None and value < thresholds.ks_pvalue:
        reasons.append(f"KS p-value {value:.2g} < {thresholds.ks_pvalue:g}")
    value = row.get("chi2_pvalue")
    if thresholds.chi2_pvalue is not None and value is not None and value < thresholds.chi2_pvalue:
        reasons.append(f"chi-square p-value {value:.2g} < {thresholds.chi2_pvalue:g}")
    return reasons


def _fmt(value: float) -> str:
    """A share or index with two decimals (three significant digits below 0.01)."""
    return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.3g}"


__all__ = ["categorical_drift", "category_buckets", "feature_drift", "judge", "ks_pvalue", "ks_statistic", "numeric_drift",
           "prediction_drift", "psi"]

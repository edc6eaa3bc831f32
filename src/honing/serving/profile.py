"""The training reference profile: a compact summary of every feature (and of the predictions) that
``honing monitor`` compares logged data against (:mod:`honing.serving.drift`).

:func:`build_profile` runs at training time on the training split; the result is stored in the
bundle manifest under ``reference``.  It is plain JSON (ints, finite floats, strings; no NaN or
infinity), a few KB per feature, and the same input always gives the same profile.

Values are first coerced as :func:`honing.data.preprocess.coerce_features` does for the column's
kind (:func:`coerce_values`), so a raw frame and an already coerced one give the same profile, and
``1``, ``1.0`` and ``"1"`` are the same category.  Infinite numbers count as missing.

Numeric features (``kind: numeric``)
    ``missing`` (share of rows), ``count`` (non-missing rows), ``edges``, ``proportions``,
    ``quantiles``, ``mean``, ``std`` (population).  ``edges`` are the inner bin edges: the
    training values at the quantile levels 1/bins … (bins-1)/bins (the empirical, "inverted CDF"
    quantile, always a value that occurs), deduplicated, without the maximum, and with bins holding
    less than half a bin's share (1 / (2·bins)) merged into their smaller neighbour.  Bins are
    closed on the right: bin ``i`` holds ``edges[i-1] < v <= edges[i]``, the first bin every value
    ``<= edges[0]`` and the last every value ``> edges[-1]``.  So a discrete feature gets one bin
    per frequent value (Pclass ∈ {1, 2, 3} → ``edges [1, 2]``: ≤1, 2, >2) and every bin holds
    training values.  ``proportions`` are the training shares of the ``len(edges) + 1`` bins.
    ``quantiles`` are the empirical quantiles at ``quantiles`` evenly spaced levels from 0 to 1
    (minimum … maximum), from which drift rebuilds the reference CDF for the KS test.

Categorical and boolean features (``kind: categorical``)
    ``missing``, ``count``, ``proportions`` ({value: share among non-missing values} for the
    ``top`` most frequent values, most frequent first, ties by value; fewer when their names would
    pass 4,000 characters), ``other`` (the share of the remaining values).

Every profiled feature also has ``schema_kind``, its kind in the schema (``boolean`` columns are
profiled as ``categorical`` but coerced as booleans: "yes" → "true").  Text, datetime and image
columns are not profiled; ``skipped`` says why (datetime drift is out of scope), as it does for a
feature with no training values.  ``prediction`` profiles the model's predictions on the same rows:
the predicted labels as a categorical feature (classification), or the predicted values as a
numeric one (regression); None without predictions.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from honing.data.preprocess import coerce_features
from honing.data.schema import Column, Schema

#: Kinds that are profiled, and the profile kind each gets.
PROFILED = {"numeric": "numeric", "categorical": "categorical", "boolean": "categorical"}
_SKIP_REASONS = {
    "text": "text column: drift of free text is not measured",
    "datetime": "datetime column: drift of dates is out of scope (their range moves with time)",
    "image": "image column: drift of images is not measured",
}
_MAX_KEY_CHARS = 4000
_SUM_TOLERANCE = 1e-6


def coerce_values(values: Any, kind: str) -> pd.Series:
    """``values`` coerced as training coerces a feature of ``kind`` (numbers → float with infinities
    as NaN, categories → canonical strings, booleans → "true"/"false"); missing stays NaN."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    column = Column(name="value", kind=kind, dtype="", missing=0.0, unique=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unparsable numbers become missing, as in training
        out = coerce_features(pd.DataFrame({"value": series}), Schema(columns=[column]))["value"]
    if kind == "numeric":
        out = out.where(np.isfinite(out.to_numpy(dtype="float64")))
    return out


def build_profile(
    frame: pd.DataFrame,
    schema: Schema,
    predictions: Sequence | np.ndarray | None = None,
    *,
    task: str,
    bins: int = 10,
    quantiles: int | None = None,
    top: int = 50,
) -> dict:
    """The reference profile of the training split's feature columns ``frame`` (raw or coerced) and
    of the model's ``predictions`` on them; ``task`` says how predictions are profiled ("regression":
    numeric, anything else: categorical).  ``quantiles`` per numeric column: by default 101, or 21
    for a table of more than 50 features (a smaller bundle).  See the module docstring for the layout."""
    if quantiles is None:
        quantiles = 101 if len(schema.features) <= 50 else 21
    if bins < 2 or quantiles < 2 or top < 1:
        raise ValueError(f"build_profile needs bins >= 2, quantiles >= 2 and top >= 1 (got {bins}, {quantiles}, {top})")
    features: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for column in schema.features:
        if column.kind not in PROFILED:
            skipped[column.name] = _SKIP_REASONS.get(column.kind, f"{column.kind} column: not profiled")
        elif column.name not in frame.columns:
            skipped[column.name] = "not in the training frame"
        else:
            part = profile_values(frame[column.name], column.kind, bins=bins, quantiles=quantiles, top=top)
            if part is None:
                skipped[column.name] = "every training value is missing"
            else:
                features[column.name] = part
    prediction = None
    if predictions is not None:
        kind = "numeric" if task == "regression" else "categorical"
        values = pd.Series(np.asarray(predictions).tolist(), dtype=object)
        prediction = profile_values(values, kind, bins=bins, quantiles=quantiles, top=top)
    return {"rows": len(frame), "bins": int(bins), "features": features, "skipped": skipped,
            "prediction": prediction}


def profile_values(values: Any, kind: str, *, bins: int = 10, quantiles: int = 101, top: int = 50) -> dict | None:
    """The profile of one column of schema kind ``kind`` (numeric, categorical or boolean); None when
    every value is missing."""
    coerced = coerce_values(values, kind)
    if PROFILED[kind] == "numeric":
        part = _numeric_profile(coerced.to_numpy(dtype="float64"), bins, quantiles)
    else:
        part = _categorical_profile(coerced, top)
    if part is not None:
        part["schema_kind"] = kind
    return part


def _numeric_profile(values: np.ndarray, bins: int, levels: int) -> dict | None:
    """Missing share, bins, quantiles, mean and std of float ``values`` (NaN = missing)."""
    present = np.sort(values[~np.isnan(values)])
    if present.size == 0:
        return None
    edges = _edges(present, bins)
    counts = bin_counts(present, edges)
    qs = np.quantile(present, np.linspace(0.0, 1.0, levels), method="inverted_cdf")
    return {
        "kind": "numeric",
        "missing": _share(values.size - present.size, values.size),
        "count": int(present.size),
        "edges": [float(e) for e in edges],
        "proportions": [_share(c, present.size) for c in counts],
        "quantiles": [float(q) for q in qs],
        "mean": float(np.mean(present)),
        "std": float(np.std(present)),
    }


def _edges(present: np.ndarray, bins: int) -> list[float]:
    """Inner bin edges of sorted ``present``: deduplicated quantiles below the maximum, bins with less
    than 1/(2·bins) of the values merged into their smaller neighbour."""
    levels = np.arange(1, bins) / bins
    candidates = np.quantile(present, levels, method="inverted_cdf")
    edges = [float(e) for e in np.unique(candidates) if e < present[-1]]
    min_share = 1.0 / (2 * bins)
    while edges:
        shares = bin_counts(present, edges) / present.size
        small = int(np.argmin(shares))
        if shares[small] >= min_share:
            break
        if small == 0:
            del edges[0]
        elif small == len(shares) - 1:
            del edges[-1]
        else:  # merge with the smaller neighbour: drop the edge between them
            del edges[small - 1 if shares[small - 1] <= shares[small + 1] else small]
    return edges


def bin_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """How many of the (non-missing) ``values`` fall in each of the ``len(edges) + 1`` bins (closed on
    the right: ``edges[i-1] < v <= edges[i]``)."""
    index = np.searchsorted(np.asarray(edges, dtype="float64"), values, side="left")
    return np.bincount(index, minlength=len(edges) + 1)


def _categorical_profile(values: pd.Series, top: int) -> dict | None:
    """Missing share, the shares of the ``top`` most frequent values, and the share of the rest."""
    present = [v for v in values.tolist() if isinstance(v, str)]
    if not present:
        return None
    ranked = sorted(Counter(present).items(), key=lambda item: (-item[1], item[0]))
    proportions: dict[str, float] = {}
    chars = 0
    for value, count in ranked[:top]:
        chars += len(value)
        if chars > _MAX_KEY_CHARS:
            break
        proportions[value] = _share(count, len(present))
    kept = sum(count for value, count in ranked if value in proportions)
    return {
        "kind": "categorical",
        "missing": _share(len(values) - len(present), len(values)),
        "count": len(present),
        "proportions": proportions,
        "other": _share(len(present) - kept, len(present)),
    }


def _share(part: int, whole: int) -> float:
    """``part / whole`` as a float (0.0 for an empty whole)."""
    return float(part) / whole if whole else 0.0


# --------------------------------------------------------------------------- validation


def profile_problem(profile: Any) -> str | None:
    """What is wrong with a reference ``profile`` read back from a manifest, in one line; None when
    its structure and types are sound."""
    if not isinstance(profile, dict):
        return f"the reference profile is a {type(profile).__name__}, not a mapping"
    for key in ("rows", "bins", "features", "skipped", "prediction"):
        if key not in profile:
            return f"the reference profile lacks '{key}'"
    if not _is_count(profile["rows"]) or not _is_count(profile["bins"]):
        return "the reference profile's 'rows' and 'bins' must be whole numbers >= 0"
    if not isinstance(profile["skipped"], dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in profile["skipped"].items()
    ):
        return "the reference profile's 'skipped' must map feature names to reasons"
    if not isinstance(profile["features"], dict):
        return "the reference profile's 'features' must be a mapping"
    for name, part in profile["features"].items():
        if (problem := part_problem(part)) is not None:
            return f"reference profile, feature '{name}': {problem}"
    if profile["prediction"] is not None and (problem := part_problem(profile["prediction"])) is not None:
        return f"reference profile, prediction: {problem}"
    return None


def part_problem(part: Any) -> str | None:
    """What is wrong with one feature's profile, or None."""
    if not isinstance(part, dict):
        return "not a mapping"
    kind = part.get("kind")
    if kind not in ("numeric", "categorical"):
        return f"unknown kind {kind!r} (numeric or categorical)"
    schema_kind = part.get("schema_kind", kind)
    if schema_kind not in PROFILED or PROFILED[schema_kind] != kind:
        return f"schema_kind {schema_kind!r} does not fit kind '{kind}'"
    if not _is_share(part.get("missing")):
        return "'missing' must be a share between 0 and 1"
    if not _is_count(part.get("count")):
        return "'count' must be a whole number >= 0"
    return _numeric_problem(part) if kind == "numeric" else _categorical_problem(part)


def _numeric_problem(part: dict) -> str | None:
    """Problems of a numeric feature's bins, quantiles and moments."""
    edges, proportions, qs = part.get("edges"), part.get("proportions"), part.get("quantiles")
    if not _numbers(edges) or any(b <= a for a, b in pairwise(edges)):
        return "'edges' must be a list of increasing numbers"
    if not _numbers(proportions) or len(proportions) != len(edges) + 1 or not all(map(_is_share, proportions)):
        return "'proportions' must hold one share per bin (len(edges) + 1)"
    if abs(sum(proportions) - 1.0) > _SUM_TOLERANCE:
        return f"'proportions' sum to {sum(proportions):.6g}, not 1"
    if not _numbers(qs) or len(qs) < 2 or any(b < a for a, b in pairwise(qs)):
        return "'quantiles' must be a list of at least 2 non-decreasing numbers"
    if not _numbers([part.get("mean"), part.get("std")]) or part["std"] < 0:
        return "'mean' and 'std' must be numbers (std >= 0)"
    return None


def _categorical_problem(part: dict) -> str | None:
    """Problems of a categorical feature's shares."""
    proportions, other = part.get("proportions"), part.get("other")
    if not isinstance(proportions, dict) or not all(
        isinstance(k, str) and _is_share(v) for k, v in proportions.items()
    ):
        return "'proportions' must map values (strings) to shares"
    if not _is_share(other):
        return "'other' must be a share between 0 and 1"
    total = sum(proportions.values()) + other
    if abs(total - 1.0) > _SUM_TOLERANCE:
        return f"'proportions' and 'other' sum to {total:.6g}, not 1"
    return None


def _is_number(value: Any) -> bool:
    """An int or float (not a bool) that is finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(values: Any) -> bool:
    """A list of finite numbers."""
    return isinstance(values, list) and all(map(_is_number, values))


def _is_share(value: Any) -> bool:
    """A number between 0 and 1."""
    return _is_number(value) and 0.0 <= value <= 1.0


def _is_count(value: Any) -> bool:
    """A whole number >= 0."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0

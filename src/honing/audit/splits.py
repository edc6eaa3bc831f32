"""Checks that compare the splits of a dataset: rows of validation/test also in train (split leakage),
and per-feature distribution shift.

:func:`split_leakage` and :func:`distribution_shift` compare one held-out split with train; the
caller (:func:`honing.audit.quality.check_quality`) prepares the frames and picks the columns.  The
row hashing and the value helpers they rest on (:func:`row_hashes`, :func:`as_text`, :func:`as_float`,
:func:`finding`) live here too and are shared with the other quality checks, so that imports point one
way only: quality → splits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as pdt
from scipy import stats

from honing.audit.findings import Finding, Severity

_MIN_SHIFT_ROWS = 5  # fewer values on either side: no shift test


def split_leakage(train: pd.DataFrame, held: pd.DataFrame, kinds: dict[Any, str], target: Any,
                  name: str) -> list[Finding]:
    """Rows of a held-out split whose features also appear in train (exactly or once normalised).

    ``kinds``: train's column kinds ('bool', 'numeric', 'datetime' or 'text'); ``target`` is left out
    of the comparison; ``name`` names the held-out split.
    """
    columns = [c for c in train.columns if c in held.columns and c != target]
    if not columns or held.empty:
        return []
    exact = np.isin(row_hashes(held, columns, kinds), row_hashes(train, columns, kinds))
    train_norm = row_hashes(train, columns, kinds, normalize=True)
    normalized = np.isin(row_hashes(held, columns, kinds, normalize=True), train_norm) & ~exact
    count, n = int(exact.sum() + normalized.sum()), len(held)
    if not count:
        return []
    repeats = float(pd.Series(train_norm).duplicated(keep=False).mean())  # as common within train: expected
    return [finding("split_leakage", "error" if count / n > 2 * repeats else "warning",
                    f"split '{name}': {count} of {n} rows ({count / n:.1%}) also appear in train "
                    f"({exact.sum()} exact, {normalized.sum()} only after normalising case, whitespace "
                    "and rounding)", None, count, count / n, exact=exact.sum(),
                    normalized=normalized.sum(), split=name, train_repeats=repeats)]


def distribution_shift(train: pd.DataFrame, held: pd.DataFrame, columns: list, kinds: dict[Any, str],
                       name: str, *, shift_p: float, shift_effect: float,
                       categories: int) -> list[Finding]:
    """Features whose distribution differs between train and a held-out split (KS or chi-square).

    ``columns``: the features to compare (in both splits); datetime columns (by train's ``kinds``) are
    skipped.  A shift is reported when p is below ``shift_p`` (Bonferroni-corrected over the tests) and
    KS D or Cramér's V is at least ``shift_effect``; text keeps its ``categories`` most common values.
    """
    tests = []
    for col in columns:
        if kinds[col] != "datetime":
            result = _shift_test(train[col], held[col], kinds[col], categories)
            tests += [(col, *result)] if result else []
    out = []
    for col, test, statistic, effect, p in tests:
        if p < shift_p / len(tests) and effect >= shift_effect:
            label = "KS D" if test == "ks" else "Cramér's V"
            out.append(finding("distribution_shift", "warning", f"column '{col}': distribution differs "
                               f"between train and {name} ({label} = {effect:.3f}, p = {p:.2g})", col,
                               len(held), effect, test=test, statistic=statistic, p_value=p,
                               split=name, tests=len(tests)))
    return out


def _shift_test(a: pd.Series, b: pd.Series, kind: str, top: int) -> tuple[str, float, float, float] | None:
    """(test, statistic, effect size, p-value) comparing two samples of one column, or None."""
    if kind == "numeric":
        x, y = as_float(a), as_float(b)
        x, y = x[~np.isnan(x)], y[~np.isnan(y)]
        if min(len(x), len(y)) < _MIN_SHIFT_ROWS:
            return None
        result = stats.ks_2samp(x, y)
        return "ks", float(result.statistic), float(result.statistic), float(result.pvalue)
    a, b = as_text(a).fillna("\0missing"), as_text(b).fillna("\0missing")
    kept = pd.concat([a, b]).value_counts().index[:top]  # the rest pooled
    a, b = a.where(a.isin(kept), "\0other"), b.where(b.isin(kept), "\0other")
    table = pd.DataFrame({"a": a.value_counts(), "b": b.value_counts()}).fillna(0).to_numpy().T
    if table.shape[1] < 2 or table.sum(axis=1).min() < _MIN_SHIFT_ROWS:
        return None
    result = stats.chi2_contingency(table, correction=False)
    return "chi2", float(result.statistic), math.sqrt(result.statistic / table.sum()), float(result.pvalue)


# --- shared with the other quality checks -------------------------------------------------------


def row_hashes(frame: pd.DataFrame, columns: list, kinds: dict, normalize: bool = False) -> np.ndarray:
    """One 64-bit hash per row of ``columns``; ``normalize``: strings stripped, lower-cased with
    whitespace collapsed and numbers rounded to 6 significant digits before hashing."""
    parts: dict[str, Any] = {}
    for i, col in enumerate(columns):
        if kinds.get(col) in ("numeric", "bool"):
            if normalize:
                parts[f"{i}"], parts[f"{i}e"] = _round_significant(as_float(frame[col]))
            else:
                parts[f"{i}"] = as_float(frame[col])
        else:
            text = as_text(frame[col])
            if normalize:
                text = text.str.strip().str.lower().str.replace(r"\s+", " ", regex=True)
            parts[f"{i}"] = text.to_numpy(dtype=object)
    if not parts:
        return np.zeros(len(frame), dtype=np.uint64)
    return pd.util.hash_pandas_object(pd.DataFrame(parts), index=False).to_numpy()


def _round_significant(x: np.ndarray, digits: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """``x`` rounded to ``digits`` significant digits, as (integer mantissa, power of ten)."""
    finite = np.isfinite(x) & (x != 0)
    exponent = np.zeros(len(x))
    with np.errstate(all="ignore"):
        exponent[finite] = np.floor(np.log10(np.abs(x[finite]))) - (digits - 1)
        mantissa = np.where(finite, np.round(x * 10.0 ** -exponent), x)
    carry = finite & (np.abs(mantissa) >= 10.0 ** digits)
    mantissa[carry] = np.round(mantissa[carry] / 10)
    exponent[carry] += 1
    return mantissa, exponent


def as_text(s: pd.Series) -> pd.Series:
    """The values as strings, missing values kept missing."""
    return s.astype(str).where(s.notna().to_numpy())


def as_float(s: pd.Series) -> np.ndarray:
    """The values as floats (anything that is not a number: NaN; -0.0 as 0.0)."""
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan) + 0.0


def finding(check: str, severity: Severity, message: str, column: Any = None, count: Any = None,
            value: Any = None, **details: Any) -> Finding:
    """A :class:`Finding` with ``column`` as text and every number unwrapped to plain Python."""
    value = None if value is None else _plain(float(value))
    column = None if column is None else str(column)
    return Finding(check, severity, message, column, _plain(count), value, _plain(details))


def _plain(value: Any) -> Any:
    """``value`` as plain JSON-serialisable Python (numpy scalars unwrapped, NaN as None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Index)):
        return [_plain(v) for v in value]
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return value
    return None if pdt.is_scalar(value) and pd.isna(value) else str(value)

"""Train / validation / test splits: random, stratified, grouped or time-ordered; always seeded.

Split sizes are ``round(rows * fraction)`` for validation and test; the rest is train.  A split
whose fraction is 0 is an empty frame with the same columns.  Every returned frame has a fresh
``RangeIndex``; random and grouped splits keep the original row order inside each split, time
splits are in time order.

* **stratified** (``stratify`` true, or unset and the task is classification): class proportions
  are kept in every split (a regression target asked to stratify is binned into quantiles).  When
  a class is too rare, a :class:`UserWarning` is issued and the split is random, except that one
  row of every class is kept in the training split first (when the sizes allow it).
* **grouped** (``group``): whole groups go to one split (missing values form one group); groups
  are shuffled and cut where the row counts come closest to the fractions.
* **time** (``time``): rows are sorted by the column (numbers, datetimes, or text parsed as dates);
  the earliest rows train, the next validate, the latest test.  Rows without a time train.
* **given** (``column``): a column names each row's split (``train``, ``validation`` — or ``valid``,
  ``val``, ``dev`` — and ``test``, in any case), as in datasets that ship an official test set.
  When no row says ``validation``, the validation split is cut from the training rows (stratified
  like a random split); ``test`` is then ignored.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.api import types as pdt

from honing.errors import DataError, SplitError, did_you_mean

SPLITS = ("train", "validation", "test")


def split_frame(
    df: pd.DataFrame,
    *,
    target: str,
    task: str,
    validation: float,
    test: float,
    stratify: bool | None,
    group: str | None,
    time: str | None,
    seed: int,
    column: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Split ``df`` into ``{"train", "validation", "test"}`` frames (see the module doc)."""
    if column:
        return _given_split(df, column, target=target, task=task, validation=validation, stratify=stratify, seed=seed)
    if group and time:
        raise DataError("data.split: use either group or time, not both", "remove data.split.group or data.split.time")
    n_val, n_test = split_sizes(len(df), validation, test)
    if time:
        parts = _time_split(df, _column(df, time, "data.split.time"), n_val, n_test)
    elif group:
        if stratify:
            warnings.warn("data.split.stratify is ignored for a grouped split", UserWarning, stacklevel=2)
        parts = _group_split(df, _column(df, group, "data.split.group"), n_val, n_test, seed)
    else:
        wants = stratify if stratify is not None else task == "classification"
        labels = _strata(df, target, task) if wants else None
        parts = _random_split(len(df), n_val, n_test, labels, seed, target)
    return {name: df.iloc[rows].reset_index(drop=True) for name, rows in zip(SPLITS, parts)}


_SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                "val": "validation", "dev": "validation", "test": "test", "testing": "test"}


def _given_split(df: pd.DataFrame, column: str, *, target: str, task: str, validation: float,
                 stratify: bool | None, seed: int) -> dict[str, pd.DataFrame]:
    """The splits a column names; validation cut from train when the column has none."""
    names = _column(df, column, "data.split.column").astype("string").str.strip().str.lower().map(_SPLIT_NAMES)
    unknown = df.loc[names.isna(), column]
    if len(unknown):
        raise DataError(f"data.split.column: {len(unknown)} rows of '{column}' name no split (e.g. {unknown.iloc[0]!r})",
                        "use train, validation (or dev) and test")
    parts = {name: df[names == name].reset_index(drop=True) for name in SPLITS}
    if not len(parts["train"]):
        raise DataError(f"data.split.column: no row of '{column}' says train", "mark the training rows 'train'")
    if not len(parts["validation"]) and validation > 0:
        cut = split_frame(parts["train"], target=target, task=task, validation=validation, test=0.0,
                          stratify=stratify, group=None, time=None, seed=seed)
        parts["train"], parts["validation"] = cut["train"], cut["validation"]
    return parts


def split_sizes(rows: int, validation: float, test: float) -> tuple[int, int]:
    """Rows for validation and test; DataError when a split would be empty or train too small."""
    if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
        raise DataError(
            f"data.split: validation ({validation}) and test ({test}) must be in [0, 1) and sum to < 1",
            "e.g. validation: 0.15, test: 0.15",
        )
    n_val, n_test = int(rows * validation + 0.5), int(rows * test + 0.5)
    for name, fraction, count in (("validation", validation, n_val), ("test", test, n_test)):
        if fraction > 0 and count == 0:
            raise SplitError(
                f"too few rows to split: {rows} rows give an empty {name} split ({fraction:g})",
                f"add rows, raise data.split.{name}, or set it to 0",
            )
    if rows - n_val - n_test < 2:
        raise SplitError(
            f"too few rows to split: {rows} rows leave {rows - n_val - n_test} for training",
            "add rows, or lower data.split.validation and data.split.test",
        )
    return n_val, n_test


def _column(df: pd.DataFrame, name: str, key: str) -> pd.Series:
    """``df[name]``, or DataError naming the recipe ``key``."""
    if name not in df.columns:
        raise DataError(f"{key}: no column '{name}' in the data", did_you_mean(name, [str(c) for c in df.columns]))
    return df[name].reset_index(drop=True)


def _strata(df: pd.DataFrame, target: str, task: str) -> np.ndarray:
    """Integer stratum per row: the class, or a quantile bin of a numeric regression target."""
    y = _column(df, target, "data.target")
    if task == "regression" and pdt.is_numeric_dtype(y) and not pdt.is_bool_dtype(y):
        bins = int(min(10, max(2, len(y) // 20)))
        binned = pd.qcut(y.rank(method="first"), q=bins, labels=False)
        return binned.fillna(-1).to_numpy(dtype="int64")
    codes, _ = pd.factorize(y, use_na_sentinel=False)
    return codes


def _random_split(
    rows: int, n_val: int, n_test: int, labels: np.ndarray | None, seed: int, target: str
) -> list[np.ndarray]:
    """Train / validation / test positions, stratified by ``labels`` when given and possible."""
    positions = np.arange(rows)
    if labels is not None:
        try:
            rest, test_rows = _take(positions, n_test, labels, seed)
            train, val = _take(rest, n_val, labels[rest], seed + 1)
        except ValueError as exc:
            warnings.warn(
                f"cannot stratify by '{target}' ({_reason(labels, exc)}); using a random split "
                "that keeps a row of every class in training",
                UserWarning,
                stacklevel=3,
            )
            return _anchored_split(rows, n_val, n_test, labels, seed)
        if len(np.unique(labels[train])) < len(np.unique(labels)):
            return _anchored_split(rows, n_val, n_test, labels, seed)
        return [np.sort(train), np.sort(val), np.sort(test_rows)]
    rest, test_rows = _take(positions, n_test, None, seed)
    train, val = _take(rest, n_val, None, seed + 1)
    return [np.sort(train), np.sort(val), np.sort(test_rows)]


def _anchored_split(rows: int, n_val: int, n_test: int, labels: np.ndarray, seed: int) -> list[np.ndarray]:
    """A random split that first sets aside one random row of every class for training.

    When the training split is too small for a row of every class, the rarest classes go first.
    """
    shuffled = np.random.default_rng(seed).permutation(rows)
    _, first, counts = np.unique(labels[shuffled], return_index=True, return_counts=True)
    anchors = shuffled[first[np.argsort(counts, kind="stable")]][: rows - n_val - n_test]
    rest = np.setdiff1d(np.arange(rows), anchors)
    rest, test_rows = _take(rest, n_test, None, seed)
    train, val = _take(rest, n_val, None, seed + 1)
    return [np.sort(np.concatenate([train, anchors])), np.sort(val), np.sort(test_rows)]


def _take(positions: np.ndarray, k: int, labels: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``positions`` into (rest, k taken), stratified by ``labels`` when given."""
    if k == 0:
        return positions, positions[:0]
    if labels is None:
        shuffled = np.random.default_rng(seed).permutation(positions)
        return shuffled[k:], shuffled[:k]
    from sklearn.model_selection import train_test_split

    rest, taken = train_test_split(positions, test_size=k, stratify=labels, random_state=seed)
    return np.asarray(rest), np.asarray(taken)


def _reason(labels: np.ndarray, exc: ValueError) -> str:
    """Why stratification failed, in words."""
    smallest = int(np.unique(labels, return_counts=True)[1].min())
    if smallest < 3:
        return f"its rarest class has only {smallest} row{'s' if smallest != 1 else ''}"
    return str(exc).split(".")[0]


def _group_split(df: pd.DataFrame, groups: pd.Series, n_val: int, n_test: int, seed: int) -> list[np.ndarray]:
    """Whole groups per split; group cut points chosen to match the row counts best."""
    codes, uniques = pd.factorize(groups, use_na_sentinel=False)
    need = 1 + (n_val > 0) + (n_test > 0)
    if len(uniques) < need:
        raise DataError(
            f"data.split.group: '{groups.name}' has {len(uniques)} distinct value(s); {need} splits need at least {need}",
            "use a column with more groups, or set data.split.validation / data.split.test to 0",
        )
    order = np.random.default_rng(seed).permutation(len(uniques))
    sizes = np.bincount(codes, minlength=len(uniques))[order]
    k_test = _cut(sizes, n_test, keep=need - 1)
    k_val = _cut(sizes[k_test:], n_val, keep=1)
    chosen = [order[k_test + k_val :], order[k_test : k_test + k_val], order[:k_test]]
    parts = [np.flatnonzero(np.isin(codes, g)) for g in chosen]
    if len(parts[0]) < 2:
        raise SplitError(
            f"too few rows to split by group '{groups.name}': {len(parts[0])} row(s) left for training",
            "lower data.split.validation and data.split.test, or add groups",
        )
    return parts


def _cut(sizes: np.ndarray, wanted: int, keep: int) -> int:
    """How many leading groups (at least 1 when ``wanted`` > 0, leaving ``keep``) sum closest to ``wanted``."""
    if wanted == 0:
        return 0
    totals = np.cumsum(sizes)[: len(sizes) - keep]
    return int(np.argmin(np.abs(totals - wanted))) + 1


def time_keys(times: pd.Series) -> pd.Series:
    """Keys that sort a time column in time order: dates (parsed from text too: 03/01/2020 is not after
    12/31/2019), or numbers; DataError when it holds neither."""
    if pdt.is_datetime64_any_dtype(times) or (pdt.is_numeric_dtype(times) and not pdt.is_bool_dtype(times)):
        keys = times
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            keys = pd.to_datetime(times, format="mixed", errors="coerce", utc=True)
    if keys.isna().all():
        raise DataError(
            f"data.split.time: column '{times.name}' holds no dates or numbers",
            "choose a date/time or numeric column, or remove data.split.time",
        )
    return keys


def time_order(times: pd.Series) -> np.ndarray:
    """Row positions in time order (rows without a time first, as the split trains them)."""
    return _in_order(time_keys(times))


def _in_order(keys: pd.Series) -> np.ndarray:
    """The positions of ``keys`` sorted (stable; missing keys first)."""
    return keys.reset_index(drop=True).sort_values(kind="stable", na_position="first").index.to_numpy()


def _time_split(df: pd.DataFrame, times: pd.Series, n_val: int, n_test: int) -> list[np.ndarray]:
    """Earliest rows train, the next validate, the latest test (rows without a time train)."""
    keys = time_keys(times)
    missing = int(keys.isna().sum())
    if missing:
        warnings.warn(f"{missing} rows have no '{times.name}' value; they go to the training split", UserWarning, stacklevel=3)
    order = times.index.to_numpy()[_in_order(keys)]
    n_train = len(order) - n_val - n_test
    return [order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]]
